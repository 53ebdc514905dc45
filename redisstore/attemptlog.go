package redisstore

import (
	"encoding/json"
	"time"

	"github.com/boomerang-dev/boomerang/webhooks"
)

// storedAttempt is an Attempt as kept in Redis: short keys, and without the
// request headers that follow from the delivery and the attempt itself
// (content type, webhook-id, webhook-timestamp, length), which are rebuilt
// on read. It roughly halves the attempt log's memory.
type storedAttempt struct {
	N    int               `json:"n"`
	S    int64             `json:"s"` // start, Unix ms
	D    int64             `json:"d"` // duration, ms
	UA   string            `json:"ua"`
	Sigs int               `json:"g"`           // signatures sent
	TP   string            `json:"t,omitempty"` // traceparent sent, when tracing is on
	SC   int               `json:"c,omitempty"`
	RH   map[string]string `json:"h,omitempty"`
	RB   string            `json:"b,omitempty"`
	EC   string            `json:"k,omitempty"`
	E    string            `json:"e,omitempty"`
	O    string            `json:"o"`
	Next int64             `json:"x,omitempty"` // next attempt, Unix ms
}

func encodeAttempt(a webhooks.Attempt) ([]byte, error) {
	s := storedAttempt{N: a.Number, S: a.StartedAt.UnixMilli(), D: a.DurationMs, UA: a.RequestHeaders["User-Agent"],
		Sigs: max(a.Signatures, 1), TP: a.RequestHeaders["traceparent"], SC: a.StatusCode, RH: a.ResponseHeaders, RB: a.ResponseBody, EC: a.ErrorClass, E: a.Error, O: a.Outcome}
	if a.NextAttemptAt != nil {
		s.Next = a.NextAttemptAt.UnixMilli()
	}
	return json.Marshal(s)
}

// decodeAttempt rebuilds an Attempt of delivery d.
func decodeAttempt(raw []byte, d webhooks.Delivery) (webhooks.Attempt, error) {
	var s storedAttempt
	if err := json.Unmarshal(raw, &s); err != nil {
		return webhooks.Attempt{}, err
	}
	start := time.UnixMilli(s.S).UTC()
	a := webhooks.Attempt{Number: s.N, StartedAt: start, DurationMs: s.D, URL: d.URL, StatusCode: s.SC,
		ResponseHeaders: s.RH, ResponseBody: s.RB, ErrorClass: s.EC, Error: s.E, Outcome: s.O}
	if s.EC != webhooks.ClassCircuit { // a short-circuited attempt sent nothing
		a.RequestHeaders = webhooks.RequestHeaders(d, start.Unix(), s.UA, s.Sigs)
		if s.TP != "" {
			a.RequestHeaders["traceparent"] = s.TP
		}
	}
	if s.Next != 0 {
		next := time.UnixMilli(s.Next).UTC()
		a.NextAttemptAt = &next
	}
	return a, nil
}

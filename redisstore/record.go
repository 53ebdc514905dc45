package redisstore

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// A record is one hash per job, holding the job and, once it has ended,
// its delivery (a job has exactly one): one key instead of four, and few,
// packed fields, because a hash costs per field.
//
//	c      client id
//	j      {"t":type,"u":callback URL,"m":metadata}, written once
//	p      payload, until the job ends
//	s      job state: "<status> <attempts> <updated ns> <completed ns> <not before ms>"
//	r, e   result (raw JSON, byte for byte) or error {"code","message"}
//	le     the last failed attempt's error, while the job waits to retry
//	d      delivery state: "<status> <attempts> <round start> <replays> <created ms>
//	       <updated ms> <last attempt ms> <next attempt ms> <last status code>
//	       <delivered ms> <deferred until ms> <deferred attempt> <deferred reason or ->"
//	de     the delivery's last error
//	a:<n>  attempt n, compact JSON (attemptlog.go); the last maxAttemptLog are kept
//	x      "1" for a job done by external workers
//	lid    the lease id of the external worker's claim
//	q      when an external job was last listed for its workers (Unix ms), until claimed
//	th     the SHA-256 of the job's completion token (async types), kept once used
//	pr     progress {"percent","message","updatedAt"}
//	w      "1" once someone watched the job: its changes are then published
//	ev     the number of the last event of a watched job
//	e:<n>  event n: "<name> <JSON>"; the last maxEvents are kept
//	tp     the W3C traceparent the job's and its delivery's later steps
//	       continue (package tracing): the submission's span, then the one
//	       that ended the job, then a replay's; absent with tracing off
//
// Times of 0 mean none. The job's creation time is its id's; the webhook
// body is rebuilt from the record (jobs.WebhookBody is deterministic), so
// it is not stored twice.
const (
	fClient    = "c"
	fStatic    = "j"
	fPayload   = "p"
	fState     = "s"
	fResult    = "r"
	fError     = "e"
	fLastError = "le"
	fDelivery  = "d"
	fDlvError  = "de"
	fAttempt   = "a:"
	fExternal  = "x"
	fLease     = "lid"
	fListed    = "q"
	fToken     = "th"
	fProgress  = "pr"
	fEvents    = "ev"
	fEvent     = "e:"
	fTrace     = "tp"
)

// maxEvents is how many events a watched job keeps for watchers that
// resume (Last-Event-ID).
const maxEvents = 50

// maxAttemptLog is how many attempts a delivery's log keeps.
const maxAttemptLog = 100

type static struct {
	Type     string            `json:"t"`
	URL      string            `json:"u"`
	Metadata map[string]string `json:"m,omitempty"`
	Deadline int64             `json:"d,omitempty"` // Unix ms
}

// jobState is the s field.
type jobState struct {
	status             jobs.Status
	attempts           int
	updated, completed int64 // ns
	notBefore          int64 // ms
}

func (s jobState) String() string {
	return fmt.Sprintf("%s %d %d %d %d", s.status, s.attempts, s.updated, s.completed, s.notBefore)
}

func parseJobState(v string) jobState {
	f := strings.Fields(v)
	var s jobState
	if len(f) != 5 {
		return s
	}
	s.status = jobs.Status(f[0])
	s.attempts, _ = strconv.Atoi(f[1])
	s.updated, _ = strconv.ParseInt(f[2], 10, 64)
	s.completed, _ = strconv.ParseInt(f[3], 10, 64)
	s.notBefore, _ = strconv.ParseInt(f[4], 10, 64)
	return s
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func millis(t *time.Time) int64 {
	if t == nil || t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromNanos(n int64) *time.Time {
	if n == 0 {
		return nil
	}
	t := time.Unix(0, n).UTC()
	return &t
}

func fromMillis(n int64) *time.Time {
	if n == 0 {
		return nil
	}
	t := time.UnixMilli(n).UTC()
	return &t
}

// decodeJob turns a record into its job.
func decodeJob(body string, f map[string]string) jobs.Job {
	var st static
	_ = json.Unmarshal([]byte(f[fStatic]), &st)
	s := parseJobState(f[fState])
	j := jobs.Job{ID: ids.Request + body, ClientID: f[fClient], Type: st.Type, Status: s.status,
		CallbackURL: st.URL, Metadata: st.Metadata, Attempts: s.attempts}
	if created, ok := ids.Time(ids.Request, j.ID); ok {
		j.CreatedAt = created
	}
	if u := fromNanos(s.updated); u != nil {
		j.UpdatedAt = *u
	}
	j.CompletedAt = fromNanos(s.completed)
	if p, ok := f[fPayload]; ok {
		j.Payload = json.RawMessage(p)
	}
	if r, ok := f[fResult]; ok {
		j.Result = json.RawMessage(r)
	}
	if e := f[fError]; e != "" {
		j.Error = &jobs.Error{}
		_ = json.Unmarshal([]byte(e), j.Error)
	}
	if e := f[fLastError]; e != "" {
		j.LastError = &jobs.Error{}
		_ = json.Unmarshal([]byte(e), j.LastError)
	}
	if f[fDelivery] != "" {
		j.DeliveryID = jobs.DeliveryID(j.ID)
	}
	j.Deadline = fromMillis(st.Deadline)
	if p := f[fProgress]; p != "" {
		j.Progress = &jobs.Progress{}
		_ = json.Unmarshal([]byte(p), j.Progress)
	}
	j.External, j.LeaseID, j.TraceParent = f[fExternal] != "", f[fLease], f[fTrace]
	return j
}

// deliveryState is the d field.
type deliveryState struct {
	status                     webhooks.Status
	attempts, roundStart, reps int
	created, updated           int64 // ms
	lastAttempt, nextAttempt   int64 // ms
	lastCode                   int
	delivered, deferredUntil   int64 // ms
	deferredAttempt            int
	deferredReason             string
}

func (d deliveryState) String() string {
	reason := d.deferredReason
	if reason == "" {
		reason = "-"
	}
	return fmt.Sprintf("%s %d %d %d %d %d %d %d %d %d %d %d %s", d.status, d.attempts, d.roundStart, d.reps,
		d.created, d.updated, d.lastAttempt, d.nextAttempt, d.lastCode, d.delivered, d.deferredUntil, d.deferredAttempt, reason)
}

func parseDeliveryState(v string) (deliveryState, bool) {
	f := strings.Fields(v)
	if len(f) != 13 {
		return deliveryState{}, false
	}
	n := func(i int) int64 { x, _ := strconv.ParseInt(f[i], 10, 64); return x }
	d := deliveryState{status: webhooks.Status(f[0]), attempts: int(n(1)), roundStart: int(n(2)), reps: int(n(3)),
		created: n(4), updated: n(5), lastAttempt: n(6), nextAttempt: n(7), lastCode: int(n(8)),
		delivered: n(9), deferredUntil: n(10), deferredAttempt: int(n(11)), deferredReason: f[12]}
	if d.deferredReason == "-" {
		d.deferredReason = ""
	}
	return d, true
}

// stateOf is the d field of a delivery.
func stateOf(d webhooks.Delivery) deliveryState {
	return deliveryState{status: d.Status, attempts: d.Attempts, roundStart: d.RoundStart, reps: d.Replays,
		created: d.CreatedAt.UnixMilli(), updated: d.UpdatedAt.UnixMilli(), lastAttempt: millis(d.LastAttemptAt),
		nextAttempt: millis(d.NextAttemptAt), lastCode: d.LastStatusCode, delivered: millis(d.DeliveredAt),
		deferredUntil: millis(d.DeferredUntil), deferredAttempt: d.DeferredAttempt, deferredReason: d.DeferredReason}
}

// decodeDelivery turns a record into its delivery, with the webhook body
// and the attempt log if asked; ok is false when the job has none yet.
func decodeDelivery(body string, f map[string]string, withBody, withLog bool) (webhooks.Delivery, bool) {
	st, ok := parseDeliveryState(f[fDelivery])
	if !ok {
		return webhooks.Delivery{}, false
	}
	j := decodeJob(body, f)
	event := jobs.EventType(j.Status)
	d := webhooks.Delivery{ID: ids.Delivery + body, RequestID: j.ID, ClientID: j.ClientID, EventType: event, URL: j.CallbackURL,
		Status: st.status, Attempts: st.attempts, LastAttemptAt: fromMillis(st.lastAttempt), NextAttemptAt: fromMillis(st.nextAttempt),
		LastStatusCode: st.lastCode, LastError: f[fDlvError], Replays: st.reps, DeliveredAt: fromMillis(st.delivered),
		DeferredUntil: fromMillis(st.deferredUntil), DeferredReason: st.deferredReason,
		RoundStart: st.roundStart, DeferredAttempt: st.deferredAttempt, TraceParent: f[fTrace]}
	if c := fromMillis(st.created); c != nil {
		d.CreatedAt = *c
	}
	if u := fromMillis(st.updated); u != nil {
		d.UpdatedAt = *u
	}
	if withBody {
		if b, err := jobs.WebhookBody(j); err == nil {
			d.Payload = b
		}
	}
	if withLog {
		var ns []int
		for k := range f {
			if n, ok := strings.CutPrefix(k, fAttempt); ok {
				if i, err := strconv.Atoi(n); err == nil {
					ns = append(ns, i)
				}
			}
		}
		sort.Ints(ns)
		d.AttemptLog = make([]webhooks.Attempt, 0, len(ns))
		for _, n := range ns {
			if a, err := decodeAttempt([]byte(f[fAttempt+strconv.Itoa(n)]), d); err == nil {
				d.AttemptLog = append(d.AttemptLog, a)
			}
		}
	}
	return d, true
}

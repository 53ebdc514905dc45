// Package jobs is the job domain of Boomerang: a client submits a Job, a
// Processor registered for its type runs it, and its end becomes a webhook.
//
// The flow: Service.Submit validates the job and stores it through the
// Store, which hands it to the ReadyQueue in the same step; a Runner pops it
// and calls Service.Run, which claims it under a lease, runs the processor,
// and stores the outcome together with the webhook's delivery, whose first
// attempt the Deliverer makes. A failed attempt that may be retried is
// stored with the time of the next, which the Enqueuer makes durable (a
// task that calls Service.Run again).
package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/boomerang-dev/boomerang/strictjson"
)

// Status is where a job stands: ACCEPTED → PROCESSING → COMPLETED |
// FAILED, or CANCELED (by its client or an operator) or EXPIRED (its
// deadline passed) from either of the first two.
type Status string

// Job statuses.
const (
	StatusAccepted   Status = "ACCEPTED"
	StatusProcessing Status = "PROCESSING"
	StatusCompleted  Status = "COMPLETED"
	StatusFailed     Status = "FAILED"
	StatusCanceled   Status = "CANCELED"
	StatusExpired    Status = "EXPIRED"
)

var statuses = []string{string(StatusAccepted), string(StatusProcessing), string(StatusCompleted), string(StatusFailed),
	string(StatusCanceled), string(StatusExpired)}

// ValidStatus reports whether s names a job status.
func ValidStatus(s string) bool {
	return slices.Contains(statuses, s)
}

// Statuses lists the job statuses.
func Statuses() []string { return slices.Clone(statuses) }

// Final reports whether a job in this status has ended: it has an outcome
// and a delivery, and nothing changes it any more.
func (s Status) Final() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCanceled || s == StatusExpired
}

// Progress is what a running job last said of itself.
type Progress struct {
	Percent   float64   `json:"percent"`
	Message   string    `json:"message,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Job is one piece of asynchronous work and its outcome.
type Job struct {
	ID          string            `json:"requestId"`
	ClientID    string            `json:"clientId,omitempty"`
	Type        string            `json:"type"`
	Status      Status            `json:"status"`
	Payload     json.RawMessage   `json:"payload,omitempty"`
	Result      json.RawMessage   `json:"result,omitempty"`
	Error       *Error            `json:"error,omitempty"`
	CallbackURL string            `json:"callbackUrl"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	CreatedAt   time.Time         `json:"createdAt"`
	UpdatedAt   time.Time         `json:"updatedAt"`
	CompletedAt *time.Time        `json:"completedAt,omitempty"`
	Attempts    int               `json:"attempts,omitempty"`
	DeliveryID  string            `json:"deliveryId,omitempty"`
	// LastError is why the latest processing attempt failed, while the job
	// waits for its next one.
	LastError *Error `json:"lastError,omitempty"`
	// Deadline, if set, is when the job expires if it has not ended.
	Deadline *time.Time `json:"deadline,omitempty"`
	Progress *Progress  `json:"progress,omitempty"`
	// External jobs are done by workers outside Boomerang, which claim them
	// over HTTP; LeaseID is the current claim's (stored, not shown).
	External bool   `json:"-"`
	LeaseID  string `json:"-"`
	// TokenHash, set by a completion through a token, makes the store
	// accept the write only if the record holds this token's hash.
	TokenHash string `json:"-"`
	// TraceParent is the W3C traceparent the job's later steps continue
	// (tracing): its submission's span, then the span that ended it.
	// Stored, not shown; "" with tracing off.
	TraceParent string `json:"-"`
}

// Error is why a job failed, as clients see it.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Event types of the webhook.
const (
	EventCompleted = "job.completed"
	EventFailed    = "job.failed"
	EventCanceled  = "job.canceled"
	EventExpired   = "job.expired"
)

// EventType is the webhook event of a job that has ended.
func EventType(s Status) string {
	switch s {
	case StatusFailed:
		return EventFailed
	case StatusCanceled:
		return EventCanceled
	case StatusExpired:
		return EventExpired
	}
	return EventCompleted
}

// WebhookBody builds the body of the webhook for a finished job:
//
//	{"type":"job.completed","timestamp":…,"data":{"requestId","type","status",
//	 "result" | "error","metadata","createdAt","completedAt"}}
//
// The result is embedded exactly as the processor produced it, byte for
// byte: never re-encoded, never HTML-escaped.
func WebhookBody(j Job) ([]byte, error) {
	event := EventType(j.Status)
	ts := j.UpdatedAt
	if j.CompletedAt != nil {
		ts = *j.CompletedAt
	}
	if len(j.Result) > 0 {
		if err := CheckResult(j.Result); err != nil {
			return nil, fmt.Errorf("result of %s: %w", j.ID, err)
		}
	}
	var data object
	data.value("requestId", j.ID)
	data.value("type", j.Type)
	data.value("status", j.Status)
	if len(j.Result) > 0 {
		data.raw("result", j.Result)
	}
	if j.Error != nil {
		data.value("error", j.Error)
	}
	if len(j.Metadata) > 0 {
		data.value("metadata", j.Metadata)
	}
	data.value("createdAt", j.CreatedAt)
	if j.CompletedAt != nil {
		data.value("completedAt", j.CompletedAt)
	}
	var body object
	body.value("type", event)
	body.value("timestamp", ts)
	body.raw("data", data.close())
	if body.err != nil || data.err != nil {
		return nil, errors.Join(body.err, data.err)
	}
	return body.close(), nil
}

// object writes a JSON object field by field: values encoded without HTML
// escaping, raw JSON embedded as it is.
type object struct {
	b   []byte
	err error
}

func (o *object) key(k string) {
	if len(o.b) == 0 {
		o.b = append(o.b, '{')
	} else {
		o.b = append(o.b, ',')
	}
	o.b = strconv.AppendQuote(o.b, k) // keys are fixed ASCII names
	o.b = append(o.b, ':')
}

func (o *object) raw(k string, v []byte) {
	o.key(k)
	o.b = append(o.b, v...)
}

func (o *object) value(k string, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		o.err = err
		return
	}
	o.raw(k, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

func (o *object) close() []byte {
	if len(o.b) == 0 {
		return []byte("{}")
	}
	return append(o.b, '}')
}

// DeliveryID is the webhook-id of a job's delivery: derived from the job so a
// job that runs twice after a crash still has exactly one delivery.
func DeliveryID(requestID string) string {
	const p = "req_"
	if len(requestID) > len(p) && requestID[:len(p)] == p {
		return "msg_" + requestID[len(p):]
	}
	return "msg_" + requestID
}

// CheckResult reports whether a result can travel in a webhook byte for
// byte: exactly one JSON value that a strict parser accepts (no repeated
// keys, no lone UTF-16 surrogates, UTF-8, nesting within strictjson's
// bound).
func CheckResult(b []byte) error { return strictjson.Check(b) }

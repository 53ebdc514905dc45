// Package webhooks is the delivery domain of Boomerang: a Delivery is one
// webhook to send for one finished job; each try at sending it is an Attempt.
//
// The flow: Dispatcher.Deliver creates the delivery and makes the first
// attempt at once; a failed attempt records itself and asks the Scheduler for
// a durable, scheduled retry, which comes back as Dispatcher.Attempt. The
// RetryPolicy decides the waits, Retry-After can stretch them, 410 Gone and
// refused destinations stop at once. Replay reopens a finished delivery with
// the same webhook-id, and BulkReplays do that for every match of a filter,
// page by page. Store keeps all of it in Redis with a retention TTL.
package webhooks

import (
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// Status is where a delivery stands.
type Status string

// Delivery statuses: PENDING (scheduled or in flight) → DELIVERED | FAILED.
const (
	StatusPending   Status = "PENDING"
	StatusDelivered Status = "DELIVERED"
	StatusFailed    Status = "FAILED"
)

var statuses = []string{string(StatusPending), string(StatusDelivered), string(StatusFailed)}

// ValidStatus reports whether s names a delivery status.
func ValidStatus(s string) bool {
	return slices.Contains(statuses, s)
}

// Statuses lists the delivery statuses.
func Statuses() []string { return slices.Clone(statuses) }

// Errors of the store, decided with errors.Is.
var (
	ErrNotFound = errors.New("delivery not found")
	ErrConflict = errors.New("delivery is pending")
	// ErrStale: the delivery changed since it was read (another run
	// recorded this attempt first, or it is no longer PENDING).
	ErrStale = errors.New("delivery changed concurrently")
)

// Filter selects deliveries for lists and bulk replays.
type Filter struct {
	Status       Status
	ClientID     string
	Since, Until time.Time
}

// Message is what a finished job hands over to be delivered.
type Message struct {
	ID        string // the webhook-id; derived from the job so retries of the job reuse it
	RequestID string
	ClientID  string
	EventType string // job.completed or job.failed
	URL       string
	Body      []byte // the exact bytes to sign and send
}

// Delivery is one webhook and its progress.
type Delivery struct {
	ID             string     `json:"id"`
	RequestID      string     `json:"requestId"`
	ClientID       string     `json:"clientId"`
	EventType      string     `json:"eventType"`
	URL            string     `json:"url"`
	Status         Status     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastAttemptAt  *time.Time `json:"lastAttemptAt,omitempty"`
	NextAttemptAt  *time.Time `json:"nextAttemptAt,omitempty"`
	LastStatusCode int        `json:"lastStatusCode,omitempty"`
	LastError      string     `json:"lastError,omitempty"`
	Replays        int        `json:"replays,omitempty"`
	CreatedAt      time.Time  `json:"createdAt"`
	UpdatedAt      time.Time  `json:"updatedAt"`
	DeliveredAt    *time.Time `json:"deliveredAt,omitempty"`
	// DeferredUntil and DeferredReason say that the next attempt waits for
	// a circuit or a concurrency cap (the Defer* constants), and till when.
	DeferredUntil  *time.Time      `json:"deferredUntil,omitempty"`
	DeferredReason string          `json:"deferredReason,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	AttemptLog     []Attempt       `json:"attemptLog,omitempty"`

	// RoundStart is the number of attempts made before the latest replay;
	// DeferredAttempt the attempt number DeferredReason applies to. Both
	// are stored, not shown.
	RoundStart      int `json:"-"`
	DeferredAttempt int `json:"-"`
	// TraceParent is the W3C traceparent its attempts continue (package
	// tracing): the span that ended its job, or its replay's. Stored, not
	// shown.
	TraceParent string `json:"-"`
}

// Error classes of failed attempts.
const (
	ClassDNS      = "dns"
	ClassConnect  = "connect"
	ClassTLS      = "tls"
	ClassTimeout  = "timeout"
	ClassStatus   = "status"
	ClassRedirect = "redirect"
	ClassBlocked  = "blocked"
	// ClassCircuit: no request was sent, because the endpoint's or the
	// host's circuit was still open after the attempt had waited once.
	ClassCircuit = "circuit-open"
)

// Outcomes of an attempt.
const (
	OutcomeDelivered = "delivered"
	OutcomeRetry     = "retry"
	OutcomeFailed    = "failed"
)

// Attempt is one try at sending a delivery, as the delivery log shows it.
type Attempt struct {
	Number          int               `json:"number"`
	StartedAt       time.Time         `json:"startedAt"`
	DurationMs      int64             `json:"durationMs"`
	URL             string            `json:"url"`
	RequestHeaders  map[string]string `json:"requestHeaders,omitempty"`
	StatusCode      int               `json:"statusCode,omitempty"`
	ResponseHeaders map[string]string `json:"responseHeaders,omitempty"`
	ResponseBody    string            `json:"responseBody,omitempty"`
	ErrorClass      string            `json:"errorClass,omitempty"`
	Error           string            `json:"error,omitempty"`
	Outcome         string            `json:"outcome"`
	NextAttemptAt   *time.Time        `json:"nextAttemptAt,omitempty"`

	// Signatures is how many signatures were sent (several while a secret
	// rotates); the stored form keeps it instead of the request headers,
	// which RequestHeaders rebuilds.
	Signatures int `json:"-"`
}

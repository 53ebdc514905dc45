// Package jobs is the job domain of Boomerang: a client submits a Job, a
// Processor registered for its type runs it, and its end becomes a webhook.
//
// The flow: Service.Submit validates and stores the job and hands it to the
// Enqueuer (a durable task); the task calls Service.Run, which runs the
// processor, stores the result, and hands the webhook to the Deliverer.
package jobs

import (
	"encoding/json"
	"slices"
	"time"
)

// Status is where a job stands: ACCEPTED → PROCESSING → COMPLETED | FAILED.
type Status string

// Job statuses.
const (
	StatusAccepted   Status = "ACCEPTED"
	StatusProcessing Status = "PROCESSING"
	StatusCompleted  Status = "COMPLETED"
	StatusFailed     Status = "FAILED"
)

var statuses = []string{string(StatusAccepted), string(StatusProcessing), string(StatusCompleted), string(StatusFailed)}

// ValidStatus reports whether s names a job status.
func ValidStatus(s string) bool {
	return slices.Contains(statuses, s)
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
)

// webhookBody is the JSON sent to the callback URL.
type webhookBody struct {
	Type      string      `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      webhookData `json:"data"`
}

type webhookData struct {
	RequestID   string            `json:"requestId"`
	Type        string            `json:"type"`
	Status      Status            `json:"status"`
	Result      json.RawMessage   `json:"result,omitempty"`
	Error       *Error            `json:"error,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	CreatedAt   time.Time         `json:"createdAt"`
	CompletedAt *time.Time        `json:"completedAt,omitempty"`
}

// WebhookBody builds the body of the webhook for a finished job. The result
// is embedded as the raw JSON the processor produced, never re-encoded.
func WebhookBody(j Job) ([]byte, error) {
	event := EventCompleted
	if j.Status == StatusFailed {
		event = EventFailed
	}
	ts := j.UpdatedAt
	if j.CompletedAt != nil {
		ts = *j.CompletedAt
	}
	return json.Marshal(webhookBody{Type: event, Timestamp: ts, Data: webhookData{
		RequestID: j.ID, Type: j.Type, Status: j.Status, Result: j.Result, Error: j.Error,
		Metadata: j.Metadata, CreatedAt: j.CreatedAt, CompletedAt: j.CompletedAt,
	}})
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

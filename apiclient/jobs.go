package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Status is a job's status.
type Status string

// The statuses of a job; the last four are final.
const (
	StatusAccepted   Status = "ACCEPTED"
	StatusProcessing Status = "PROCESSING"
	StatusCompleted  Status = "COMPLETED"
	StatusFailed     Status = "FAILED"
	StatusCanceled   Status = "CANCELED"
	StatusExpired    Status = "EXPIRED"
)

// Final reports whether a job in status s can no longer change.
func (s Status) Final() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCanceled, StatusExpired:
		return true
	}
	return false
}

// JobError is why a job (or one attempt of it) failed.
type JobError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Progress is how far a job has come, as its worker last said.
type Progress struct {
	Percent   float64   `json:"percent"` // 0 to 100
	Message   string    `json:"message,omitempty"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"` // set by the server
}

// Job is the view of a job (GET /v1/jobs/{id}).
type Job struct {
	RequestID   string            `json:"requestId"`
	Type        string            `json:"type"`
	Status      Status            `json:"status"`
	Attempt     int               `json:"attempt,omitempty"`
	LastError   *JobError         `json:"lastError,omitempty"`
	Progress    *Progress         `json:"progress,omitempty"`
	Deadline    *time.Time        `json:"deadline,omitempty"`
	Result      json.RawMessage   `json:"result,omitempty"`
	Error       *JobError         `json:"error,omitempty"`
	CallbackURL string            `json:"callbackUrl,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	CreatedAt   time.Time         `json:"createdAt,omitzero"`
	UpdatedAt   time.Time         `json:"updatedAt,omitzero"`
	CompletedAt *time.Time        `json:"completedAt,omitempty"`

	// Raw is the JSON the server sent, fields this version does not know included.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes a job and keeps its JSON in Raw.
func (j *Job) UnmarshalJSON(b []byte) error {
	type plain Job
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*j = Job(p)
	j.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// Submission is a new job.
type Submission struct {
	Type        string            `json:"type"`
	Payload     json.RawMessage   `json:"payload,omitempty"`
	CallbackURL string            `json:"callbackUrl"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Deadline    *time.Time        `json:"deadline,omitempty"`

	// IdempotencyKey, if set, makes a repeated submission answer as the
	// first did, and lets Submit retry on network errors and 5xx answers.
	IdempotencyKey string `json:"-"`
}

// Accepted is the answer to a submission.
type Accepted struct {
	RequestID string `json:"requestId"`
	Status    Status `json:"status"`
	StatusURL string `json:"statusUrl"`
}

// Submit submits a job.
func (c *Client) Submit(ctx context.Context, s Submission) (Accepted, error) {
	r := request{method: http.MethodPost, path: "/v1/jobs", body: s}
	if s.IdempotencyKey != "" {
		r.header = http.Header{"Idempotency-Key": {s.IdempotencyKey}}
		r.retry = true
	}
	var a Accepted
	if _, err := c.call(ctx, r, &a); err != nil {
		return Accepted{}, fmt.Errorf("submit: %w", err)
	}
	return a, nil
}

// Get returns the job now.
func (c *Client) Get(ctx context.Context, id string) (Job, error) {
	var j Job
	if _, err := c.call(ctx, request{method: http.MethodGet, path: jobPath("/v1", id), retry: true}, &j); err != nil {
		return Job{}, fmt.Errorf("get job %s: %w", id, err)
	}
	return j, nil
}

// Wait returns the job once it is final, or when wait (at most 60 s) has
// passed, whichever comes first: check Status.Final.
func (c *Client) Wait(ctx context.Context, id string, wait time.Duration) (Job, error) {
	var j Job
	r := request{method: http.MethodGet, path: jobPath("/v1", id), retry: true,
		query: url.Values{"wait": {wait.String()}}, wait: wait}
	if _, err := c.call(ctx, r, &j); err != nil {
		return Job{}, fmt.Errorf("wait for job %s: %w", id, err)
	}
	return j, nil
}

// Cancel cancels a job and returns it. A job already final is a *Problem
// with slug job-final.
func (c *Client) Cancel(ctx context.Context, id string) (Job, error) {
	var j Job
	if _, err := c.call(ctx, request{method: http.MethodPost, path: jobPath("/v1", id) + "/cancel"}, &j); err != nil {
		return Job{}, fmt.Errorf("cancel job %s: %w", id, err)
	}
	return j, nil
}

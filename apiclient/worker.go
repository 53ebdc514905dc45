package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// ClaimRequest asks for the next job of one of Types.
type ClaimRequest struct {
	Types []string
	Wait  time.Duration // long poll: how long the server may hold the call (whole seconds, 0–60 s by default)
	Lease time.Duration // how long the job is ours without a heartbeat (whole seconds, rounded up)
}

// Claim is a job given to a worker, until LeaseExpiresAt unless heartbeats
// extend it.
type Claim struct {
	RequestID      string            `json:"requestId"`
	Type           string            `json:"type"`
	Payload        json.RawMessage   `json:"payload"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	Attempt        int               `json:"attempt"`
	LeaseID        string            `json:"leaseId"`
	LeaseExpiresAt time.Time         `json:"leaseExpiresAt"`
	Deadline       *time.Time        `json:"deadline"`
	// TraceParent is the job's W3C traceparent, when the server exports
	// traces: send it back with WithTraceParent.
	TraceParent string `json:"traceparent,omitempty"`
}

type traceParentKey struct{}

// WithTraceParent makes the calls made with ctx send traceparent as their
// W3C traceparent header (a worker's reports, in its job's trace).
func WithTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return context.WithValue(ctx, traceParentKey{}, traceparent)
}

type claimBody struct {
	Types        []string `json:"types"`
	WaitSeconds  int      `json:"waitSeconds"`
	LeaseSeconds int      `json:"leaseSeconds"`
}

// Claim returns the next job, or ok false if none came within r.Wait.
// A claim is not retried: a lost answer leaves a lease that lapses, and the
// server gives the job again.
func (c *Client) Claim(ctx context.Context, r ClaimRequest) (claim Claim, ok bool, err error) {
	body := claimBody{Types: r.Types, WaitSeconds: int(r.Wait / time.Second),
		LeaseSeconds: int((r.Lease + time.Second - 1) / time.Second)}
	wait := time.Duration(body.WaitSeconds) * time.Second
	status, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/worker/claim", body: body, wait: wait}, &claim)
	if err != nil {
		return Claim{}, false, fmt.Errorf("claim: %w", err)
	}
	if status == http.StatusNoContent {
		return Claim{}, false, nil
	}
	return claim, true, nil
}

type heartbeatBody struct {
	LeaseID  string    `json:"leaseId"`
	Progress *Progress `json:"progress,omitempty"`
}

// Heartbeat extends the lease of job id by the claim's lease and reports
// progress (if not nil). It returns the new expiry. A *Problem with slug
// lease-lost, job-canceled or job-expired says: stop, drop the job.
func (c *Client) Heartbeat(ctx context.Context, id, leaseID string, progress *Progress) (time.Time, error) {
	var out struct {
		LeaseExpiresAt time.Time `json:"leaseExpiresAt"`
	}
	r := request{method: http.MethodPost, path: jobPath("/v1/worker", id) + "/heartbeat",
		body: heartbeatBody{LeaseID: leaseID, Progress: progress}, retry: true}
	if _, err := c.call(ctx, r, &out); err != nil {
		return time.Time{}, fmt.Errorf("heartbeat job %s: %w", id, err)
	}
	return out.LeaseExpiresAt, nil
}

type completeBody struct {
	LeaseID string          `json:"leaseId"`
	Result  json.RawMessage `json:"result"`
}

// Complete reports the result of job id (nil sends null).
func (c *Client) Complete(ctx context.Context, id, leaseID string, result json.RawMessage) error {
	if result == nil {
		result = json.RawMessage("null")
	}
	r := request{method: http.MethodPost, path: jobPath("/v1/worker", id) + "/complete",
		body: completeBody{LeaseID: leaseID, Result: result}, retry: true}
	if _, err := c.call(ctx, r, &struct{}{}); err != nil {
		return fmt.Errorf("complete job %s: %w", id, err)
	}
	return nil
}

type failBody struct {
	LeaseID   string   `json:"leaseId"`
	Error     JobError `json:"error"`
	Retryable bool     `json:"retryable"`
}

// Fail reports that this attempt at job id failed. If retryable, the server
// may run it again; it answers the job's status now (PROCESSING when it will
// be retried, FAILED when not).
func (c *Client) Fail(ctx context.Context, id, leaseID string, e JobError, retryable bool) (Status, error) {
	var out struct {
		Status Status `json:"status"`
	}
	r := request{method: http.MethodPost, path: jobPath("/v1/worker", id) + "/fail",
		body: failBody{LeaseID: leaseID, Error: e, Retryable: retryable}, retry: true}
	if _, err := c.call(ctx, r, &out); err != nil {
		return "", fmt.Errorf("fail job %s: %w", id, err)
	}
	return out.Status, nil
}

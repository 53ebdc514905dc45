package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// JobService is what the job handlers need of jobs.Service.
type JobService interface {
	Submit(ctx context.Context, clientID string, sub jobs.Submission) (jobs.Job, bool, error)
	Get(ctx context.Context, clientID, id string) (jobs.Job, error)
	List(ctx context.Context, f jobs.Filter, limit int, cursor string) ([]jobs.Job, string, error)
	Cancel(ctx context.Context, clientID, id string) (jobs.Job, error)
	Watch(ctx context.Context, clientID, id string, lastEventID int, resume bool) (*jobs.Stream, error)
	WaitFinal(ctx context.Context, clientID, id string, wait time.Duration) (jobs.Job, error)
}

type submitRequest struct {
	Type        string            `json:"type"`
	Payload     json.RawMessage   `json:"payload"`
	CallbackURL string            `json:"callbackUrl"`
	Metadata    map[string]string `json:"metadata"`
	Deadline    *string           `json:"deadline"` // RFC 3339; parsed here to name the field when it is not
}

type submitResponse struct {
	RequestID string      `json:"requestId"`
	Status    jobs.Status `json:"status"`
	StatusURL string      `json:"statusUrl"`
}

func submitJob(svc JobService, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(w, r, maxBody)
		if err != nil {
			writeError(w, r, err)
			return
		}
		var req submitRequest
		if err := decodeStrict(body, &req); err != nil {
			writeError(w, r, err)
			return
		}
		deadline, err := parseDeadline(req.Deadline)
		if err != nil {
			writeError(w, r, err)
			return
		}
		client := clientFrom(r.Context())
		sub := jobs.Submission{Type: req.Type, Payload: req.Payload, CallbackURL: req.CallbackURL,
			Metadata: req.Metadata, IdempotencyKey: r.Header.Get("Idempotency-Key"), AllowedTypes: client.JobTypes,
			Deadline: deadline}
		job, created, err := svc.Submit(r.Context(), client.ID, sub)
		if err != nil {
			writeError(w, r, err)
			return
		}
		statusURL := "/v1/jobs/" + job.ID
		w.Header().Set("Location", statusURL)
		w.Header().Set("X-Request-Id", job.ID)
		if !created {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		respond(w, http.StatusAccepted, submitResponse{RequestID: job.ID, Status: job.Status, StatusURL: statusURL})
	})
}

// parseDeadline reads a submission's deadline, an RFC 3339 time.
func parseDeadline(v *string) (*time.Time, error) {
	if v == nil {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		return nil, invalid(FieldError{"deadline", "invalid", "deadline must be an RFC 3339 time such as 2026-12-01T12:00:00Z"})
	}
	return &t, nil
}

type deliverySummary struct {
	ID             string          `json:"id"`
	Status         webhooks.Status `json:"status"`
	Attempts       int             `json:"attempts"`
	LastAttemptAt  *time.Time      `json:"lastAttemptAt,omitempty"`
	NextAttemptAt  *time.Time      `json:"nextAttemptAt,omitempty"`
	LastStatusCode int             `json:"lastStatusCode,omitempty"`
	DeferredUntil  *time.Time      `json:"deferredUntil,omitempty"`
	DeferredReason string          `json:"deferredReason,omitempty"`
}

type jobView struct {
	RequestID   string            `json:"requestId"`
	ClientID    string            `json:"clientId,omitempty"`
	Type        string            `json:"type"`
	Status      jobs.Status       `json:"status"`
	Attempt     int               `json:"attempt,omitempty"`
	LastError   *jobs.Error       `json:"lastError,omitempty"`
	Progress    *jobs.Progress    `json:"progress,omitempty"`
	Deadline    *time.Time        `json:"deadline,omitempty"`
	Result      json.RawMessage   `json:"result,omitempty"`
	Error       *jobs.Error       `json:"error,omitempty"`
	CallbackURL string            `json:"callbackUrl"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	CreatedAt   time.Time         `json:"createdAt"`
	UpdatedAt   time.Time         `json:"updatedAt"`
	CompletedAt *time.Time        `json:"completedAt,omitempty"`
	Delivery    *deliverySummary  `json:"delivery,omitempty"`
}

func viewJob(j jobs.Job) jobView {
	return jobView{RequestID: j.ID, Type: j.Type, Status: j.Status, Attempt: j.Attempts, LastError: j.LastError,
		Progress: j.Progress, Deadline: j.Deadline, Result: j.Result, Error: j.Error,
		CallbackURL: j.CallbackURL, Metadata: j.Metadata, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt,
		CompletedAt: j.CompletedAt}
}

func getJob(svc JobService, deliveries DeliveryReader) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "requestId", ids.Request)
		if err != nil {
			writeError(w, r, err)
			return
		}
		wait, err := waitParam(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		var job jobs.Job
		if wait > 0 {
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + 30*time.Second))
			job, err = svc.WaitFinal(r.Context(), clientFrom(r.Context()).ID, id, wait)
		} else {
			job, err = svc.Get(r.Context(), clientFrom(r.Context()).ID, id)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		v := viewJob(job)
		if job.DeliveryID != "" {
			if d, err := deliveries.GetDelivery(r.Context(), job.DeliveryID, false); err == nil {
				v.Delivery = &deliverySummary{ID: d.ID, Status: d.Status, Attempts: d.Attempts,
					LastAttemptAt: d.LastAttemptAt, NextAttemptAt: d.NextAttemptAt, LastStatusCode: d.LastStatusCode,
					DeferredUntil: d.DeferredUntil, DeferredReason: d.DeferredReason}
			}
		}
		respond(w, http.StatusOK, v)
	})
}

func listJobs(svc JobService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, cursor, err := pageParams(q)
		var status string
		if err == nil {
			status, err = parseStatus(q.Get("status"), jobs.Statuses())
		}
		if err == nil {
			err = checkClientID(q.Get("clientId"))
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		list, next, err := svc.List(r.Context(), jobs.Filter{Status: jobs.Status(status), ClientID: q.Get("clientId")}, limit, cursor)
		if err != nil {
			writeError(w, r, err)
			return
		}
		views := make([]jobView, len(list))
		for i, j := range list {
			views[i] = viewJob(j)
			views[i].ClientID = j.ClientID
		}
		respond(w, http.StatusOK, listPage[jobView]{Data: views, NextCursor: next})
	})
}

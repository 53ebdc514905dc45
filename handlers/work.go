package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/workers"
	"github.com/gorilla/mux"
)

// Work done outside Boomerang: external workers' routes, completion URLs,
// and the operator's worker keys.

// ExternalWork is what the worker routes need of jobs.Service.
type ExternalWork interface {
	Claim(ctx context.Context, o jobs.ClaimOptions) (jobs.Job, bool, error)
	Heartbeat(ctx context.Context, id, leaseID string, p *jobs.Progress) (time.Time, error)
	Complete(ctx context.Context, id, leaseID string, types []string, result json.RawMessage) (jobs.Job, error)
	Fail(ctx context.Context, id, leaseID string, types []string, e jobs.Error, retryable bool) (jobs.Job, error)
	CompleteByToken(ctx context.Context, token string, c jobs.Completion) (jobs.Job, error)
}

// Workers is what the worker routes and the admin API need of
// workers.Registry.
type Workers interface {
	Create(ctx context.Context, name string, types []string) (workers.Worker, string, error)
	List(ctx context.Context) ([]workers.Worker, error)
	Delete(ctx context.Context, id string) error
	Authenticate(ctx context.Context, key string) (workers.Worker, error)
}

// WorkerLimits bound what a claim may ask for.
type WorkerLimits struct {
	WaitMax            time.Duration // default 60 s
	LeaseMin, LeaseMax time.Duration // default 5 s and 1 h
}

func (l WorkerLimits) withDefaults() WorkerLimits {
	if l.WaitMax <= 0 {
		l.WaitMax = time.Minute
	}
	if l.LeaseMin <= 0 {
		l.LeaseMin = 5 * time.Second
	}
	if l.LeaseMax <= 0 {
		l.LeaseMax = time.Hour
	}
	return l
}

const workerKey ctxKey = 100

// workerFrom returns the authenticated worker of a request.
func workerFrom(ctx context.Context) workers.Worker {
	w, _ := ctx.Value(workerKey).(workers.Worker)
	return w
}

const sendWorkerKey = "send Authorization: Bearer <worker key> (bmw_…, from POST /admin/v1/workers)"

// workerAuth admits requests with a valid, unrevoked worker key, and only
// those: a client API key or the admin token is refused here.
func workerAuth(reg Workers) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := bearer(r)
			wk, err := reg.Authenticate(r.Context(), key)
			if errors.Is(err, workers.ErrUnauthorized) {
				hint := "the worker key is unknown or revoked: " + sendWorkerKey
				switch {
				case r.Header.Get("Authorization") == "":
					hint = "no Authorization header: " + sendWorkerKey
				case strings.HasPrefix(key, apiKeyPrefix):
					hint = "this is a client API key, which does not work on /v1/worker routes: " + sendWorkerKey
				case !strings.HasPrefix(key, workerKeyPrefix):
					hint = "worker keys start with bmw_: " + sendWorkerKey
				}
				err = badRequest(probUnauthorized, hint)
			}
			if err != nil {
				writeError(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), workerKey, wk)))
		})
	}
}

type claimRequest struct {
	Types        []string `json:"types"`
	WaitSeconds  *int     `json:"waitSeconds"`
	LeaseSeconds *int     `json:"leaseSeconds"`
}

type claimResponse struct {
	RequestID      string            `json:"requestId"`
	Type           string            `json:"type"`
	Payload        json.RawMessage   `json:"payload"`
	Metadata       map[string]string `json:"metadata"`
	Attempt        int               `json:"attempt"`
	LeaseID        string            `json:"leaseId"`
	LeaseExpiresAt time.Time         `json:"leaseExpiresAt"`
	Deadline       *time.Time        `json:"deadline"`
	// TraceParent is the job's W3C traceparent, for the worker's spans
	// (absent with tracing off).
	TraceParent string `json:"traceparent,omitempty"`
}

func claimJob(svc ExternalWork, limits WorkerLimits, maxBody int64) http.Handler {
	limits = limits.withDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req claimRequest
		if err := decodeBody(w, r, maxBody, &req); err != nil {
			writeError(w, r, err)
			return
		}
		o, err := claimOptions(req, limits, workerFrom(r.Context()))
		if err != nil {
			writeError(w, r, err)
			return
		}
		// The long-poll may outlast the server's write timeout.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(o.Wait + 30*time.Second))
		j, ok, err := svc.Claim(r.Context(), o)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if !ok {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		meta := j.Metadata
		if meta == nil {
			meta = map[string]string{}
		}
		w.Header().Set("X-Request-Id", j.ID)
		respond(w, http.StatusOK, claimResponse{RequestID: j.ID, Type: j.Type, Payload: j.Payload, Metadata: meta,
			Attempt: j.Attempts, LeaseID: j.LeaseID, LeaseExpiresAt: j.UpdatedAt.Add(o.Lease).UTC(), Deadline: j.Deadline,
			TraceParent: j.TraceParent})
	})
}

// claimOptions checks a claim against the worker's types and the limits.
func claimOptions(req claimRequest, l WorkerLimits, wk workers.Worker) (jobs.ClaimOptions, error) {
	o := jobs.ClaimOptions{Types: req.Types, Lease: min(time.Minute, l.LeaseMax)}
	if len(req.Types) == 0 {
		return o, invalid(FieldError{"types", "required", "types must name at least one of this worker's types: " + strings.Join(wk.Types, ", ")})
	}
	for _, t := range req.Types {
		if !wk.May(t) {
			return o, badRequest(probWorkerType, fmt.Sprintf("this worker key may claim %s, not %q", strings.Join(wk.Types, ", "), t),
				FieldError{"types", "forbidden", fmt.Sprintf("%q is not one of this worker's types", t)})
		}
	}
	if req.WaitSeconds != nil {
		wait := time.Duration(*req.WaitSeconds) * time.Second
		if *req.WaitSeconds < 0 || wait > l.WaitMax {
			return o, invalid(FieldError{"waitSeconds", "out-of-range", fmt.Sprintf("waitSeconds must be from 0 to %d", int(l.WaitMax/time.Second))})
		}
		o.Wait = wait
	}
	if req.LeaseSeconds != nil {
		lease := time.Duration(*req.LeaseSeconds) * time.Second
		if *req.LeaseSeconds < 0 || lease < l.LeaseMin || lease > l.LeaseMax {
			return o, invalid(FieldError{"leaseSeconds", "out-of-range", fmt.Sprintf("leaseSeconds must be from %d to %d",
				int(l.LeaseMin/time.Second), int(l.LeaseMax/time.Second))})
		}
		o.Lease = lease
	}
	return o, nil
}

type progressBody struct {
	Percent *float64 `json:"percent"`
	Message string   `json:"message"`
}

type heartbeatRequest struct {
	LeaseID  string        `json:"leaseId"`
	Progress *progressBody `json:"progress"`
}

func heartbeat(svc ExternalWork, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "requestId", ids.Request)
		var req heartbeatRequest
		if err == nil {
			err = decodeBody(w, r, maxBody, &req)
		}
		if err == nil {
			err = requireLease(req.LeaseID)
		}
		var p *jobs.Progress
		if err == nil && req.Progress != nil {
			p, err = checkProgress(*req.Progress)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		until, err := svc.Heartbeat(r.Context(), id, req.LeaseID, p)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, map[string]time.Time{"leaseExpiresAt": until})
	})
}

func requireLease(leaseID string) error {
	if leaseID == "" {
		return invalid(FieldError{"leaseId", "required", "leaseId is required: the one the claim answered"})
	}
	return nil
}

func checkProgress(p progressBody) (*jobs.Progress, error) {
	switch {
	case p.Percent == nil:
		return nil, invalid(FieldError{"progress.percent", "required", "progress.percent is required, from 0 to 100"})
	case *p.Percent < 0 || *p.Percent > 100:
		return nil, invalid(FieldError{"progress.percent", "out-of-range", "progress.percent must be from 0 to 100"})
	case len(p.Message) > jobs.MaxProgressMessage:
		return nil, invalid(FieldError{"progress.message", "too-long",
			fmt.Sprintf("progress.message is %d bytes, at most %d allowed", len(p.Message), jobs.MaxProgressMessage)})
	case !utf8.ValidString(p.Message):
		return nil, invalid(FieldError{"progress.message", "invalid", "progress.message must be valid UTF-8"})
	}
	return &jobs.Progress{Percent: *p.Percent, Message: p.Message}, nil
}

type completeRequest struct {
	LeaseID string          `json:"leaseId"`
	Result  json.RawMessage `json:"result"`
}

type outcomeResponse struct {
	RequestID string      `json:"requestId"`
	Status    jobs.Status `json:"status"`
}

func completeWork(svc ExternalWork, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "requestId", ids.Request)
		var req completeRequest
		if err == nil {
			err = decodeBody(w, r, maxBody, &req)
		}
		if err == nil {
			err = requireLease(req.LeaseID)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		j, err := svc.Complete(r.Context(), id, req.LeaseID, workerFrom(r.Context()).Types, req.Result)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, outcomeResponse{j.ID, j.Status})
	})
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type failRequest struct {
	LeaseID   string     `json:"leaseId"`
	Error     *errorBody `json:"error"`
	Retryable bool       `json:"retryable"`
}

func failWork(svc ExternalWork, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "requestId", ids.Request)
		var req failRequest
		if err == nil {
			err = decodeBody(w, r, maxBody, &req)
		}
		if err == nil {
			err = requireLease(req.LeaseID)
		}
		var e jobs.Error
		if err == nil {
			e, err = checkError(req.Error)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		j, err := svc.Fail(r.Context(), id, req.LeaseID, workerFrom(r.Context()).Types, e, req.Retryable)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, outcomeResponse{j.ID, j.Status})
	})
}

// maxErrorMessage bounds a reported error's message (a 4 KiB stderr tail
// fits, with room for escapes).
const maxErrorMessage = 8 << 10

func checkError(e *errorBody) (jobs.Error, error) {
	switch {
	case e == nil:
		return jobs.Error{}, invalid(FieldError{"error", "required", `error is required: {"code","message"}`})
	case e.Code == "" || len(e.Code) > 100 || !utf8.ValidString(e.Code):
		return jobs.Error{}, invalid(FieldError{"error.code", "invalid", "error.code must be 1 to 100 bytes of UTF-8"})
	case len(e.Message) > maxErrorMessage || !utf8.ValidString(e.Message):
		return jobs.Error{}, invalid(FieldError{"error.message", "invalid", fmt.Sprintf("error.message must be UTF-8 of at most %d bytes", maxErrorMessage)})
	}
	return jobs.Error{Code: e.Code, Message: e.Message}, nil
}

type completionRequest struct {
	Result json.RawMessage `json:"result"`
	Error  *errorBody      `json:"error"`
}

// completeByToken takes an upstream's outcome at a completion URL; the
// token in the path is the only credential (never logged: see logPath).
func completeByToken(svc ExternalWork, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req completionRequest
		err := decodeBody(w, r, maxBody, &req)
		var c jobs.Completion
		switch {
		case err != nil:
		case req.Error != nil && req.Result != nil:
			err = invalid(FieldError{"result", "conflict", "send either result or error, not both"})
		case req.Error != nil:
			var e jobs.Error
			e, err = checkError(req.Error)
			c.Error = &e
		default:
			c.Result = req.Result
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		j, err := svc.CompleteByToken(r.Context(), mux.Vars(r)["token"], c)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, outcomeResponse{j.ID, j.Status})
	})
}

type createWorkerRequest struct {
	Name  string   `json:"name"`
	Types []string `json:"types"`
}

type createdWorker struct {
	workers.Worker
	WorkerKey string `json:"workerKey"`
}

func createWorker(reg Workers, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req createWorkerRequest
		if err := decodeBody(w, r, maxBody, &req); err != nil {
			writeError(w, r, err)
			return
		}
		wk, key, err := reg.Create(r.Context(), req.Name, req.Types)
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/admin/v1/workers/"+wk.ID)
		respond(w, http.StatusCreated, createdWorker{wk, key})
	})
}

func listWorkers(reg Workers) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, err := reg.List(r.Context())
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, listPage[workers.Worker]{Data: list})
	})
}

func deleteWorker(reg Workers) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "id", ids.Worker)
		if err == nil {
			err = reg.Delete(r.Context(), id)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

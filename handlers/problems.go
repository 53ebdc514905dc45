package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/page"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/boomerang-dev/boomerang/workers"
	"github.com/gorilla/mux"
)

// ProblemBase starts every problem type URI; docs/problems.md describes each.
const ProblemBase = "https://boomerang.dev/problems/"

// Problem is an RFC 9457 problem detail.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
}

// FieldError names one field (or parameter, or header) at fault.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// invalid is a validation failure of the request's fields: 422 with the
// problem type of its fields (see validationKind).
func invalid(fields ...FieldError) error {
	return &requestError{kind: validationKind(fields), detail: fieldsDetail(fields), fields: fields}
}

func fieldsDetail(fields []FieldError) string {
	if len(fields) == 0 {
		return "invalid request"
	}
	return "invalid request: " + fields[0].Field + ": " + fields[0].Message
}

// problemKind is one row of the error table.
type problemKind struct {
	slug, title string
	status      int
}

var (
	probValidation   = problemKind{"validation-error", "The request has invalid fields", http.StatusUnprocessableEntity}
	probMalformed    = problemKind{"malformed-json", "The request body is not valid JSON", http.StatusBadRequest}
	probBadUTF8      = problemKind{"invalid-utf8", "The request body is not valid UTF-8", http.StatusBadRequest}
	probDuplicateKey = problemKind{"duplicate-key", "The request body repeats a JSON key", http.StatusBadRequest}
	probUnicode      = problemKind{"invalid-unicode", "The request body holds a lone UTF-16 surrogate", http.StatusUnprocessableEntity}
	probTooLarge     = problemKind{"body-too-large", "The request body is too large", http.StatusRequestEntityTooLarge}
	probMediaType    = problemKind{"unsupported-media-type", "The request body must be application/json", http.StatusUnsupportedMediaType}
	probParameter    = problemKind{"invalid-parameter", "A query parameter is invalid", http.StatusBadRequest}
	probUnauthorized = problemKind{"unauthorized", "Missing or invalid credentials", http.StatusUnauthorized}
	probNotFound     = problemKind{"not-found", "Not found", http.StatusNotFound}
	probMethod       = problemKind{"method-not-allowed", "Method not allowed", http.StatusMethodNotAllowed}
	probIdempotency  = problemKind{"idempotency-conflict", "Idempotency-Key reused with a different request", http.StatusConflict}
	probPending      = problemKind{"delivery-pending", "The delivery is already pending", http.StatusConflict}
	probNotPending   = problemKind{"delivery-not-pending", "Only a PENDING delivery can be retried now", http.StatusConflict}
	probJobType      = problemKind{"invalid-job-type", "The job type is missing, too long or not well-formed", http.StatusUnprocessableEntity}
	probUnknownType  = problemKind{"unknown-job-type", "No processor is registered for this job type", http.StatusUnprocessableEntity}
	probCallbackURL  = problemKind{"invalid-callback-url", "The callback URL is not allowed", http.StatusUnprocessableEntity}
	probPayloadSize  = problemKind{"payload-too-large", "The job payload is too large", http.StatusRequestEntityTooLarge}
	probMetadataSize = problemKind{"metadata-too-large", "The job metadata has too many keys or bytes", http.StatusUnprocessableEntity}
	probMetadata     = problemKind{"invalid-metadata", "The job metadata is not well-formed", http.StatusUnprocessableEntity}
	probIdemKey      = problemKind{"invalid-idempotency-key", "The Idempotency-Key is too long or not UTF-8", http.StatusUnprocessableEntity}
	probRateLimited  = problemKind{"rate-limited", "Too many requests", http.StatusTooManyRequests}
	probUnavailable  = problemKind{"service-unavailable", "Storage is unavailable; retry, with the same Idempotency-Key", http.StatusServiceUnavailable}
	probInternal     = problemKind{"internal-error", "Internal error", http.StatusInternalServerError}
	probJobFinal     = problemKind{"job-final", "The job has ended already", http.StatusConflict}
	probLeaseLost    = problemKind{"lease-lost", "The worker's lease on the job is gone; drop the job", http.StatusConflict}
	probJobCanceled  = problemKind{"job-canceled", "The job was canceled; drop it", http.StatusConflict}
	probJobExpired   = problemKind{"job-expired", "The job's deadline passed; drop it", http.StatusConflict}
	probTokenInvalid = problemKind{"token-invalid", "No job waits for this completion token", http.StatusNotFound}
	probTokenUsed    = problemKind{"token-used", "This completion token was used already", http.StatusConflict}
	probWorkerType   = problemKind{"worker-type-forbidden", "This worker key does not cover the job type", http.StatusForbidden}
	probLease        = problemKind{"invalid-lease", "leaseSeconds is out of bounds", http.StatusUnprocessableEntity}
	probWait         = problemKind{"invalid-wait", "waitSeconds is out of bounds", http.StatusUnprocessableEntity}
	probProgress     = problemKind{"invalid-progress", "The progress report is not well-formed or too large", http.StatusUnprocessableEntity}
	probDeadline     = problemKind{"invalid-deadline", "The deadline has passed or is too far away", http.StatusUnprocessableEntity}
)

// requestError is a fault of the request found while decoding it.
type requestError struct {
	kind   problemKind
	detail string
	fields []FieldError
}

func (e *requestError) Error() string { return e.kind.title + ": " + e.detail }

func badRequest(kind problemKind, detail string, fields ...FieldError) error {
	return &requestError{kind: kind, detail: detail, fields: fields}
}

// writeError maps every error to its problem, in this one place.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	log := loggerFrom(r.Context())
	var (
		reqErr     *requestError
		valErr     *jobs.ValidationError
		wkErr      *workers.ValidationError
		notPending *webhooks.NotPendingError
	)
	p := Problem{Instance: logPath(r)}
	kind := probInternal
	switch {
	case errors.As(err, &reqErr):
		kind, p.Detail, p.Errors = reqErr.kind, reqErr.detail, reqErr.fields
	case errors.As(err, &valErr):
		for _, f := range valErr.Fields {
			p.Errors = append(p.Errors, FieldError(f))
		}
		kind, p.Detail = validationKind(p.Errors), valErr.Error()
	case errors.As(err, &wkErr):
		for _, f := range wkErr.Fields {
			p.Errors = append(p.Errors, FieldError{f.Field, f.Code, f.Message})
		}
		kind, p.Detail = probValidation, wkErr.Error()
	case errors.Is(err, jobs.ErrCanceled):
		kind, p.Detail = probJobCanceled, "the job was canceled; stop working on it"
	case errors.Is(err, jobs.ErrExpired):
		kind, p.Detail = probJobExpired, "the job's deadline passed; stop working on it"
	case errors.Is(err, jobs.ErrLeaseLost):
		kind, p.Detail = probLeaseLost, "this lease lapsed or was never this job's; another claim may hold the job"
	case errors.Is(err, jobs.ErrTokenInvalid):
		kind = probTokenInvalid
	case errors.Is(err, jobs.ErrTokenUsed):
		kind, p.Detail = probTokenUsed, "the job this token completes has its outcome already"
	case errors.Is(err, jobs.ErrTypeForbidden):
		kind, p.Detail = probWorkerType, "this worker key does not cover the job's type"
	case errors.Is(err, jobs.ErrFinished):
		kind, p.Detail = probJobFinal, "the job has ended; it cannot be canceled"
	case errors.Is(err, workers.ErrUnauthorized):
		kind = probUnauthorized
	case errors.Is(err, jobs.ErrNotFound), errors.Is(err, webhooks.ErrNotFound), errors.Is(err, clients.ErrNotFound), errors.Is(err, workers.ErrNotFound),
		errors.Is(err, clients.ErrKeyNotFound), errors.Is(err, webhooks.ErrReplayNotFound), errors.Is(err, errMalformedID):
		kind = probNotFound
	case errors.Is(err, clients.ErrUnauthorized):
		kind = probUnauthorized
	case errors.Is(err, jobs.ErrIdempotencyConflict):
		kind, p.Detail = probIdempotency, "this Idempotency-Key was used within 24 h with a different body"
	case errors.Is(err, webhooks.ErrConflict):
		kind, p.Detail = probPending, "a PENDING delivery is already scheduled; retry it now (POST …/retry-now), or replay it once it is DELIVERED or FAILED"
	case errors.As(err, &notPending):
		kind, p.Detail = probNotPending, "the delivery is "+string(notPending.Status)+"; only a PENDING delivery can be retried now (replay a finished one)"
	case errors.Is(err, page.ErrBadCursor):
		kind, p.Detail = probParameter, "cursor is not one this API returned"
		p.Errors = []FieldError{{Field: "cursor", Code: "invalid", Message: "malformed cursor"}}
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client hung up (a long-poll it left): no one reads this
		// answer, and it is no fault of ours to log as one.
		log.DebugContext(r.Context(), "client closed the request", "path", logPath(r))
	case errors.Is(err, jobs.ErrUnavailable), isUnavailable(err):
		kind = probUnavailable
		w.Header().Set("Retry-After", "5")
		log.WarnContext(r.Context(), "storage unavailable", "path", logPath(r), "error", err)
	default:
		log.ErrorContext(r.Context(), "internal error", "path", logPath(r), "error", err)
	}
	if kind == probUnauthorized { // RFC 9110 §11.6.1: every 401 names its scheme
		w.Header().Set("WWW-Authenticate", `Bearer realm="boomerang"`)
	}
	p.Type, p.Title, p.Status = ProblemBase+kind.slug, kind.title, kind.status
	writeJSON(w, p.Status, p, "application/problem+json")
}

// unrouted answers a request that no route took: 405 with the Allow header
// RFC 9110 §15.5.6 requires when the path exists for other methods, else
// 404. It probes the router for each method itself because gorilla/mux
// 1.8.1 reports a method mismatch as "not found" whenever a later route of
// the same subrouter shares the prefix (PUT /v1/jobs would be a 404).
func unrouted(router *mux.Router) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			probe := *r
			probe.Method = m
			var match mux.RouteMatch
			if m != r.Method && router.Match(&probe, &match) && match.MatchErr == nil {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			writeError(w, r, jobs.ErrNotFound)
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, r, badRequest(probMethod, r.Method+" is not allowed here"))
	})
}

// fieldKinds gives a validation failure of one field and code its own
// problem type, so clients can tell limits apart without parsing text.
var fieldKinds = map[[2]string]problemKind{
	{"type", "required"}:                 probJobType,
	{"type", "too-long"}:                 probJobType,
	{"type", "invalid"}:                  probJobType,
	{"type", "unknown"}:                  probUnknownType,
	{"callbackUrl", "required"}:          probCallbackURL,
	{"callbackUrl", "invalid"}:           probCallbackURL,
	{"payload", "too-large"}:             probPayloadSize,
	{"metadata", "too-many"}:             probMetadataSize,
	{"metadata", "too-large"}:            probMetadataSize,
	{"metadata", "invalid"}:              probMetadata,
	{"Idempotency-Key", "too-long"}:      probIdemKey,
	{"Idempotency-Key", "invalid"}:       probIdemKey,
	{"deadline", "invalid"}:              probDeadline,
	{"deadline", "in-past"}:              probDeadline,
	{"deadline", "too-far"}:              probDeadline,
	{"leaseSeconds", "out-of-range"}:     probLease,
	{"waitSeconds", "out-of-range"}:      probWait,
	{"progress.percent", "required"}:     probProgress,
	{"progress.percent", "out-of-range"}: probProgress,
	{"progress.message", "too-long"}:     probProgress,
	{"progress.message", "invalid"}:      probProgress,
}

// validationKind is the one specific kind all field errors share, or the
// generic validation-error when they differ or have none.
func validationKind(fields []FieldError) problemKind {
	if len(fields) == 0 {
		return probValidation
	}
	kind, ok := fieldKinds[[2]string{fields[0].Field, fields[0].Code}]
	for _, f := range fields[1:] {
		if k := fieldKinds[[2]string{f.Field, f.Code}]; k != kind {
			return probValidation
		}
	}
	if !ok {
		return probValidation
	}
	return kind
}

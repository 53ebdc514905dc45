package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/boomerang-dev/boomerang/ids"

	"github.com/boomerang-dev/boomerang/timeindex"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// Errors of the service, decided with errors.Is.
var (
	ErrNotFound            = errors.New("job not found")
	ErrIdempotencyConflict = errors.New("idempotency key reused with a different request")
	ErrUnavailable         = errors.New("job store unavailable")
)

// FieldError names one field at fault.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ValidationError lists every field at fault in a submission.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	if len(e.Fields) == 0 {
		return "invalid submission"
	}
	return fmt.Sprintf("invalid submission: %s: %s", e.Fields[0].Field, e.Fields[0].Message)
}

// URLChecker validates a callback URL at submission and returns its
// canonical form, the one stored and dialled (egress.Checker).
type URLChecker interface {
	CanonicalURL(raw string) (string, error)
}

// Enqueuer makes a job's processing durable.
type Enqueuer interface {
	EnqueueJob(ctx context.Context, requestID string, timeout time.Duration) error
}

// Deliverer takes the webhook of a finished job. With finish, it must write
// finish (the job's completion) in the same atomic step that creates the
// delivery, and return finish's failed check (timeindex.ErrWrongStatus, ...)
// unchanged.
type Deliverer interface {
	Deliver(ctx context.Context, m webhooks.Message, finish *timeindex.Update) (webhooks.Delivery, error)
}

// Limits bound what a submission may carry. Zero values take the defaults.
type Limits struct {
	MaxPayloadBytes  int            // default 512 KiB
	MaxMetadataKeys  int            // default 32
	MaxMetadataBytes int            // keys and values together; default 4096
	MaxKeyLength     int            // Idempotency-Key; default 255
	MaxTypeLength    int            // default 64
	TypePattern      *regexp.Regexp // default ^[a-z][a-z0-9_.-]*$
}

// DefaultTypePattern is the charset of job type names unless configured.
var DefaultTypePattern = regexp.MustCompile(`^[a-z][a-z0-9_.-]*$`)

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxPayloadBytes, 512<<10)
	def(&l.MaxMetadataKeys, 32)
	def(&l.MaxMetadataBytes, 4096)
	def(&l.MaxKeyLength, 255)
	def(&l.MaxTypeLength, 64)
	if l.TypePattern == nil {
		l.TypePattern = DefaultTypePattern
	}
	return l
}

// Service is the job domain's entry point for the API and the workers.
type Service struct {
	store       *Store
	registry    *Registry
	urls        URLChecker
	enqueuer    Enqueuer
	deliverer   Deliverer
	maxAttempts int
	limits      Limits
	now         func() time.Time
	log         *slog.Logger
}

// ServiceOptions wires a Service.
type ServiceOptions struct {
	Store       *Store
	Registry    *Registry
	URLs        URLChecker
	Enqueuer    Enqueuer
	Deliverer   Deliverer
	MaxAttempts int
	Limits      Limits
	Now         func() time.Time
	Logger      *slog.Logger
}

// NewService returns a Service.
func NewService(o ServiceOptions) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Limits = o.Limits.withDefaults()
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 5
	}
	return &Service{store: o.Store, registry: o.Registry, urls: o.URLs, enqueuer: o.Enqueuer, deliverer: o.Deliverer,
		maxAttempts: o.MaxAttempts, limits: o.Limits, now: o.Now, log: o.Logger}
}

// Submission is what a client asks for.
type Submission struct {
	Type           string
	Payload        json.RawMessage
	CallbackURL    string
	Metadata       map[string]string
	IdempotencyKey string
	// AllowedTypes, when not empty, are the only types this client may
	// submit (clients.Client.JobTypes).
	AllowedTypes []string
}

// validate checks a submission and returns it with its callback URL in
// canonical form.
func (s *Service) validate(sub Submission) (Submission, error) {
	var fe []FieldError
	add := func(field, code, msg string) { fe = append(fe, FieldError{field, code, msg}) }
	switch {
	case sub.Type == "":
		add("type", "required", "type is required")
	case len(sub.Type) > s.limits.MaxTypeLength:
		add("type", "too-long", fmt.Sprintf("type is %d bytes, at most %d allowed", len(sub.Type), s.limits.MaxTypeLength))
	case !s.limits.TypePattern.MatchString(sub.Type):
		add("type", "invalid", "type must match "+s.limits.TypePattern.String())
	default:
		if !s.mayUse(sub.AllowedTypes, sub.Type) {
			usable := s.usableTypes(sub.AllowedTypes)
			msg := "unknown job type " + strconv.Quote(sub.Type) + "; this client may use: " + strings.Join(usable, ", ")
			if len(usable) == 0 {
				msg = "unknown job type " + strconv.Quote(sub.Type) + "; this client may use no job type"
			}
			add("type", "unknown", msg)
		}
	}
	if len(sub.Payload) > s.limits.MaxPayloadBytes {
		add("payload", "too-large", fmt.Sprintf("payload is %d bytes, at most %d allowed", len(sub.Payload), s.limits.MaxPayloadBytes))
	}
	if sub.CallbackURL == "" {
		add("callbackUrl", "required", "callbackUrl is required")
	} else if canonical, err := s.urls.CanonicalURL(sub.CallbackURL); err != nil {
		add("callbackUrl", "invalid", urlMessage(err))
	} else {
		sub.CallbackURL = canonical
	}
	if len(sub.Metadata) > s.limits.MaxMetadataKeys {
		add("metadata", "too-many", fmt.Sprintf("metadata has %d keys, at most %d allowed", len(sub.Metadata), s.limits.MaxMetadataKeys))
	}
	size := 0
	for k, v := range sub.Metadata {
		size += len(k) + len(v)
		if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
			add("metadata", "invalid", "metadata keys must be non-empty and keys and values valid UTF-8")
			break
		}
	}
	if size > s.limits.MaxMetadataBytes {
		add("metadata", "too-large", fmt.Sprintf("metadata is %d bytes, at most %d allowed", size, s.limits.MaxMetadataBytes))
	}
	if len(sub.IdempotencyKey) > s.limits.MaxKeyLength {
		add("Idempotency-Key", "too-long", fmt.Sprintf("Idempotency-Key is %d bytes, at most %d allowed", len(sub.IdempotencyKey), s.limits.MaxKeyLength))
	} else if !utf8.ValidString(sub.IdempotencyKey) {
		add("Idempotency-Key", "invalid", "Idempotency-Key must be valid UTF-8")
	}
	if len(fe) > 0 {
		return sub, &ValidationError{Fields: fe}
	}
	return sub, nil
}

// urlMessage is the client's part of a URL checker's error.
func urlMessage(err error) string {
	var d interface{ Message() string }
	if errors.As(err, &d) {
		return d.Message()
	}
	return err.Error()
}

// mayUse says whether a client allowed the given types may submit typ.
func (s *Service) mayUse(allowed []string, typ string) bool {
	_, ok := s.registry.Lookup(typ)
	return ok && (len(allowed) == 0 || slices.Contains(allowed, typ))
}

// usableTypes are the types a client allowed the given ones may submit:
// those it is allowed that exist, and never the others, whose names are
// the operator's business.
func (s *Service) usableTypes(allowed []string) []string {
	if len(allowed) == 0 {
		return s.registry.Names()
	}
	var out []string
	for _, name := range s.registry.Names() {
		if slices.Contains(allowed, name) {
			out = append(out, name)
		}
	}
	return out
}

// fingerprint hashes what makes two submissions the same request.
func fingerprint(sub Submission) string {
	h := sha256.New()
	keys := make([]string, 0, len(sub.Metadata))
	for k := range sub.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	enc, _ := json.Marshal([]any{sub.Type, sub.CallbackURL, keys, sub.Metadata})
	h.Write(enc)
	h.Write([]byte{0})
	h.Write(sub.Payload)
	return hex.EncodeToString(h.Sum(nil))
}

// Submit validates and stores a job, then makes its processing durable. It
// returns the job and whether it was created now (false: an earlier request
// with the same Idempotency-Key made it). Nothing is left behind on failure.
func (s *Service) Submit(ctx context.Context, clientID string, sub Submission) (Job, bool, error) {
	sub, err := s.validate(sub)
	if err != nil {
		return Job{}, false, err
	}
	now := s.now().UTC()
	j := Job{ID: ids.New(ids.Request, now), ClientID: clientID, Type: sub.Type, Status: StatusAccepted,
		Payload: sub.Payload, CallbackURL: sub.CallbackURL, Metadata: sub.Metadata, CreatedAt: now, UpdatedAt: now}
	var claim idem
	if sub.IdempotencyKey != "" {
		sum := sha256.Sum256([]byte(sub.IdempotencyKey))
		claim = idem{key: idemKey(clientID, hex.EncodeToString(sum[:])), value: j.ID + " " + fingerprint(sub)}
	}
	existing, err := s.store.create(ctx, j, claim)
	if err != nil {
		return Job{}, false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if existing != "" {
		id, hash := parseClaim(existing)
		if _, want := parseClaim(claim.value); hash != want {
			return Job{}, false, ErrIdempotencyConflict
		}
		prior, err := s.Get(ctx, clientID, id)
		if errors.Is(err, ErrNotFound) {
			return Job{}, false, ErrIdempotencyConflict
		}
		if err == nil && prior.Status == StatusAccepted {
			// The first request may have stored the job and lost its answer
			// (and its task) to a Redis failure; make sure the task exists.
			// Enqueueing is idempotent by request id.
			if typ, ok := s.registry.Lookup(prior.Type); ok {
				if err := s.enqueuer.EnqueueJob(ctx, prior.ID, typ.Timeout); err != nil {
					return Job{}, false, fmt.Errorf("%w: enqueue: %w", ErrUnavailable, err)
				}
			}
		}
		prior.Payload = nil
		return prior, false, err
	}
	typ, _ := s.registry.Lookup(j.Type)
	if err := s.enqueuer.EnqueueJob(ctx, j.ID, typ.Timeout); err != nil {
		if rmErr := s.store.remove(context.WithoutCancel(ctx), j, claim); rmErr != nil {
			s.log.ErrorContext(ctx, "could not remove a job whose task failed to enqueue; the recovery sweep will run it", "requestId", j.ID, "error", rmErr)
		}
		return Job{}, false, fmt.Errorf("%w: enqueue: %w", ErrUnavailable, err)
	}
	j.Payload = nil
	return j, true, nil
}

// Get returns a client's job; another client's job is ErrNotFound.
func (s *Service) Get(ctx context.Context, clientID, id string) (Job, error) {
	j, err := s.store.Get(ctx, id)
	if err != nil {
		return Job{}, err
	}
	if j.ClientID != clientID {
		return Job{}, ErrNotFound
	}
	return j, nil
}

// Run processes a job once, the work of one task execution. It returns an
// error when the task should run again later: a retryable processing error,
// or a store that could not be written. A job already finished (the task ran
// again after a crash) only has its delivery handed over again.
func (s *Service) Run(ctx context.Context, id string) error {
	j, err := s.store.claim(ctx, id, s.now().UTC())
	switch {
	case errors.Is(err, ErrNotFound):
		s.log.WarnContext(ctx, "job gone (expired or never stored), nothing to run", "requestId", id)
		return nil
	case errors.Is(err, timeindex.ErrWrongStatus):
		return s.deliver(ctx, j, nil) // finished: ran again after a crash, make sure the webhook goes out
	case err != nil:
		return err
	}
	if j.Attempts > s.maxAttempts { // crashed runs used them all up
		j.Attempts-- // this run does not process
		return s.fail(ctx, j, &Error{Code: "attempts_exhausted", Message: fmt.Sprintf("processing did not succeed in %d attempts", j.Attempts)})
	}

	typ, ok := s.registry.Lookup(j.Type)
	if !ok {
		return s.fail(ctx, j, &Error{Code: "unknown_type", Message: "no processor for job type " + j.Type + " on this worker"})
	}
	pctx, cancel := context.WithTimeout(ctx, typ.Timeout)
	result, perr := typ.Processor.Process(pctx, Input{RequestID: j.ID, Type: j.Type, Payload: j.Payload, Metadata: j.Metadata, Attempt: j.Attempts})
	timedOut := errors.Is(pctx.Err(), context.DeadlineExceeded)
	cancel()
	if perr != nil {
		if ctx.Err() != nil {
			return ctx.Err() // shutting down: run again elsewhere
		}
		if !IsPermanent(perr) && j.Attempts < s.maxAttempts {
			s.log.WarnContext(ctx, "job attempt failed, will retry", "requestId", id, "attempt", j.Attempts, "error", perr)
			return perr
		}
		e := asError(perr)
		if timedOut {
			// The type's timeout cut the processor off, whatever error it
			// made of that (HTTPForwarder: upstream_unreachable).
			e = asError(context.DeadlineExceeded)
		}
		return s.fail(ctx, j, e)
	}
	if len(result) == 0 {
		result = json.RawMessage("null")
	}
	if err := CheckResult(result); err != nil {
		// Results travel byte for byte; a result that is not JSON cannot.
		return s.fail(ctx, j, &Error{Code: "invalid_result", Message: "the processor's result is not JSON: " + err.Error()})
	}
	done := s.now().UTC()
	j.Status, j.Result, j.UpdatedAt, j.CompletedAt, j.DeliveryID = StatusCompleted, result, done, &done, DeliveryID(j.ID)
	return s.finish(ctx, j)
}

func (s *Service) fail(ctx context.Context, j Job, e *Error) error {
	done := s.now().UTC()
	j.Status, j.Error, j.UpdatedAt, j.CompletedAt, j.DeliveryID = StatusFailed, e, done, &done, DeliveryID(j.ID)
	return s.finish(ctx, j)
}

// finish records the job's outcome and creates its delivery in one atomic
// write, then makes the first delivery attempt.
func (s *Service) finish(ctx context.Context, j Job) error {
	upd := s.store.finishUpdate(j)
	err := s.deliver(ctx, j, &upd)
	if isStale(err) || errors.Is(err, timeindex.ErrNoRecord) {
		// Another run of this task finished the job first; it delivers.
		s.log.WarnContext(ctx, "job finished by another run", "requestId", j.ID, "error", err)
		return nil
	}
	var deferred interface{ RetryAfter() time.Duration }
	if err != nil && !errors.As(err, &deferred) {
		return err // nothing written: the task runs again
	}
	// Finished; err may still ask for the first attempt to wait (a busy or
	// failing receiver host), which the task queue does without a failure.
	if j.Status == StatusFailed {
		s.log.WarnContext(ctx, "job failed", "requestId", j.ID, "type", j.Type, "code", j.Error.Code, "attempt", j.Attempts)
	} else {
		s.log.InfoContext(ctx, "job completed", "requestId", j.ID, "type", j.Type, "attempt", j.Attempts)
	}
	return err
}

func (s *Service) deliver(ctx context.Context, j Job, finish *timeindex.Update) error {
	body, err := WebhookBody(j)
	if err != nil {
		return err
	}
	event := EventCompleted
	if j.Status == StatusFailed {
		event = EventFailed
	}
	_, err = s.deliverer.Deliver(ctx, webhooks.Message{ID: DeliveryID(j.ID), RequestID: j.ID, ClientID: j.ClientID,
		EventType: event, URL: j.CallbackURL, Body: body}, finish)
	return err
}

// List pages through jobs for the admin API.
func (s *Service) List(ctx context.Context, f Filter, limit int, cursor string) ([]Job, string, error) {
	return s.store.List(ctx, f, limit, cursor)
}

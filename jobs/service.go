package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/tracing"

	"github.com/boomerang-dev/boomerang/webhooks"
)

// Errors of the service and its store, decided with errors.Is.
var (
	ErrNotFound            = errors.New("job not found")
	ErrIdempotencyConflict = errors.New("idempotency key reused with a different request")
	ErrUnavailable         = errors.New("job store unavailable")
	// ErrFinished: the job is COMPLETED or FAILED already (another run
	// finished it, or this one ran again after a crash).
	ErrFinished = errors.New("job already finished")
)

// LeasedError says that another run holds the job until Until: its lease
// is renewed while it runs, and lapses if that run's process dies.
type LeasedError struct{ Until time.Time }

func (e *LeasedError) Error() string {
	return "job is being processed elsewhere until " + e.Until.UTC().Format(time.RFC3339Nano)
}

// RetryAfter makes a task that met a leased job come back after the lease.
func (e *LeasedError) RetryAfter() time.Duration { return max(0, time.Until(e.Until)) + time.Second }

// Idempotency is a submission's claim on its Idempotency-Key: the key's
// hash, and what makes two submissions the same request.
type Idempotency struct {
	KeyHash     string
	Fingerprint string
}

// Store keeps jobs (redisstore.Store). Every change is atomic; CreateJob
// also hands the job to the workers (ReadyQueue), and FinishJob records a
// job's outcome and creates its delivery in one step, so neither exists
// without the other.
type Store interface {
	// CreateJob stores a new ACCEPTED job, unless idem's key is taken: then
	// it returns the id of the job that took it and its fingerprint.
	CreateJob(ctx context.Context, j Job, idem *Idempotency) (existingID, existingFingerprint string, err error)
	GetJob(ctx context.Context, id string) (Job, error)
	// ClaimJob moves an ACCEPTED job, or a PROCESSING one whose lease has
	// lapsed, to PROCESSING under a lease until leaseUntil, counts the
	// attempt and returns the job. A job whose lease or retry time is still
	// ahead is a *LeasedError; a finished one ErrFinished (with the job).
	ClaimJob(ctx context.Context, id string, now, leaseUntil time.Time) (Job, error)
	// ExtendJobLease keeps attempt j.Attempts's lease until until.
	ExtendJobLease(ctx context.Context, j Job, until time.Time) error
	// RetryJob records a failed attempt (j.LastError) and when the next may
	// run (at); only the run of attempt j.Attempts can.
	RetryJob(ctx context.Context, j Job, at time.Time) error
	// ReleaseJob gives the job back, runnable from at, without counting
	// attempt j.Attempts (its worker shut down); only that run can.
	ReleaseJob(ctx context.Context, j Job, at time.Time) error
	// FinishJob records j's outcome and creates its delivery m, if attempt
	// j.Attempts still holds the job; else ErrFinished or ErrNotFound.
	FinishJob(ctx context.Context, j Job, m webhooks.Message) (webhooks.Delivery, error)
	ListJobs(ctx context.Context, f Filter, limit int, cursor string) ([]Job, string, error)

	// ClaimExternal takes the next ready job of type typ for an external
	// worker under a lease until leaseUntil, whose id is "<attempt>." +
	// lease; ok is false when none is ready.
	ClaimExternal(ctx context.Context, typ string, now, leaseUntil time.Time, lease string) (j Job, ok bool, err error)
	// RequeueExternal hands an external job back to its type's workers,
	// unless it is held or ended.
	RequeueExternal(ctx context.Context, id, typ string, now time.Time) (bool, error)
	// SaveProgress records j.Progress, if attempt j.Attempts holds the job.
	SaveProgress(ctx context.Context, j Job) error
	// SaveToken records j.TokenHash as attempt j.Attempts's completion token.
	SaveToken(ctx context.Context, j Job) error
	// AwaitJob leaves attempt j.Attempts's job PROCESSING, and unclaimable,
	// until until: its upstream completes it through the token.
	AwaitJob(ctx context.Context, j Job, until time.Time) error
	// WatchJob makes the job's changes events from now on and returns the
	// job (no payload, no result) and the number of its last event.
	WatchJob(ctx context.Context, id string) (Job, int, error)
	// JobEvents returns the kept events after after, up to upTo.
	JobEvents(ctx context.Context, id string, after, upTo int) ([]Event, error)
	// AnnounceStop tells the worker processes that a job has ended while
	// it may run (Service.Stop).
	AnnounceStop(ctx context.Context, id string) error
	// ReturnReady puts a job at the head of its partition's ready list,
	// for the workers' next pop.
	ReturnReady(ctx context.Context, id string) error
}

// Filter selects jobs for the admin list.
type Filter struct {
	Status   Status
	ClientID string
}

// Enqueuer makes later work durable (tasks): a processing attempt due at
// at, idempotent per (requestID, attempt); a job's expiry at its deadline,
// idempotent per job; a delivery attempt, idempotent per (delivery,
// attempt), for outcomes recorded outside the workers (a cancel, an
// external worker's result).
type Enqueuer interface {
	EnqueueJob(ctx context.Context, requestID string, attempt int, at time.Time, timeout time.Duration) error
	EnqueueExpiry(ctx context.Context, requestID string, deadline time.Time) error
	ScheduleAttempt(ctx context.Context, deliveryID string, attempt int, at time.Time) error
}

// Deliverer sends a finished job's webhook: FirstAttempt right after the
// outcome is stored, and Attempt(id, 1) for a job claimed again once
// finished, whose earlier run may have ended before its first attempt
// (webhooks.Dispatcher).
type Deliverer interface {
	FirstAttempt(ctx context.Context, d webhooks.Delivery) error
	Attempt(ctx context.Context, deliveryID string, n int) error
}

// URLChecker validates a callback URL at submission and returns its
// canonical form, the one stored and dialled (egress.Checker).
type URLChecker interface {
	// CanonicalURLFor checks raw for a client, whose own recent checks it
	// may reuse (egress.NameCache).
	CanonicalURLFor(clientID, raw string) (string, error)
}

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
	store       Store
	registry    *Registry
	urls        URLChecker
	enqueuer    Enqueuer
	deliverer   Deliverer
	maxAttempts int
	retryDelay  func(failed int) time.Duration
	lease       time.Duration
	partitions  int
	limits      Limits
	maxDeadline time.Duration
	publicURL   string
	now         func() time.Time
	log         *slog.Logger
	tracer      *tracing.Tracer

	running *runningSet // processors running here, by job id (Stop)
	board   *board      // external claims waiting for work here
	beats   *beats      // external heartbeats' last writes (coalescing)
	hub     *hub        // watchers of job events here
}

// ServiceOptions wires a Service.
type ServiceOptions struct {
	Store       Store
	Registry    *Registry
	URLs        URLChecker
	Enqueuer    Enqueuer
	Deliverer   Deliverer
	MaxAttempts int // processing attempts of a job, the first included; 0 means 5
	// RetryDelay is the wait after the failed-th failed processing attempt
	// (webhooks.RetryPolicy.Delay fits); nil means 1 s doubling to 5 min.
	RetryDelay func(failed int) time.Duration
	// Lease is how long a run holds its job without renewing; it renews
	// every third of it while the processor works, so a dead process's job
	// is free again after about Lease. 0 means 30 s.
	Lease time.Duration
	// Partitions is how many partitions jobs are spread over (ids carry
	// theirs); 0 means 1.
	Partitions int
	Limits     Limits
	// MaxDeadline bounds a submission's deadline, and is the deadline of
	// an async job (its completion token) submitted without one; 0 means
	// 30 days.
	MaxDeadline time.Duration
	// PublicURL is the API's address as upstreams reach it: completion
	// URLs start with it.
	PublicURL string
	Now       func() time.Time
	Logger    *slog.Logger
	Tracer    *tracing.Tracer // nil: no spans
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
	if o.RetryDelay == nil {
		o.RetryDelay = func(failed int) time.Duration { return min(time.Second<<min(failed-1, 20), 5*time.Minute) }
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	o.Partitions = max(1, o.Partitions)
	if o.MaxDeadline <= 0 {
		o.MaxDeadline = 30 * 24 * time.Hour
	}
	return &Service{store: o.Store, registry: o.Registry, urls: o.URLs, enqueuer: o.Enqueuer, deliverer: o.Deliverer,
		maxAttempts: o.MaxAttempts, retryDelay: o.RetryDelay, lease: o.Lease, partitions: o.Partitions,
		limits: o.Limits, maxDeadline: o.MaxDeadline, publicURL: strings.TrimRight(o.PublicURL, "/"), now: o.Now, log: o.Logger, tracer: o.Tracer,
		running: newRunningSet(), board: newBoard(), beats: newBeats(), hub: newHub()}
}

// Submission is what a client asks for.
type Submission struct {
	Type           string
	Payload        json.RawMessage
	CallbackURL    string
	Metadata       map[string]string
	IdempotencyKey string
	// Deadline, if not nil, is when the job expires if it has not ended.
	Deadline *time.Time
	// AllowedTypes, when not empty, are the only types this client may
	// submit (clients.Client.JobTypes).
	AllowedTypes []string
}

// validate checks a client's submission and returns it with its callback
// URL in canonical form.
func (s *Service) validate(clientID string, sub Submission) (Submission, error) {
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
	} else if canonical, err := s.urls.CanonicalURLFor(clientID, sub.CallbackURL); err != nil {
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
	if sub.Deadline != nil {
		now := s.now()
		switch {
		case !sub.Deadline.After(now):
			add("deadline", "in-past", "deadline "+sub.Deadline.UTC().Format(time.RFC3339)+" has passed")
		case sub.Deadline.Sub(now) > s.maxDeadline:
			add("deadline", "too-far", fmt.Sprintf("deadline is more than %v away (BOOMERANG_JOB_MAX_DEADLINE)", s.maxDeadline))
		}
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

// Submit validates and stores a job, which hands it to the workers in the
// same step. It returns the job and whether it was created now (false: an
// earlier request with the same Idempotency-Key made it).
func (s *Service) Submit(ctx context.Context, clientID string, sub Submission) (Job, bool, error) {
	sub, err := s.validate(clientID, sub)
	if err != nil {
		return Job{}, false, err
	}
	now := s.now().UTC()
	var idem *Idempotency
	partition := rand.IntN(s.partitions)
	if sub.IdempotencyKey != "" {
		sum := sha256.Sum256([]byte(sub.IdempotencyKey))
		idem = &Idempotency{KeyHash: hex.EncodeToString(sum[:]), Fingerprint: fingerprint(sub)}
		// One key, one partition: a retry must find the first claim.
		h := fnv.New32a()
		h.Write([]byte(clientID + "\x00" + idem.KeyHash))
		partition = int(h.Sum32() % uint32(s.partitions))
	}
	typ, _ := s.registry.Lookup(sub.Type)
	j := Job{ID: ids.NewIn(ids.Request, now, partition), ClientID: clientID, Type: sub.Type, Status: StatusAccepted,
		Payload: sub.Payload, CallbackURL: sub.CallbackURL, Metadata: sub.Metadata,
		CreatedAt: now.Truncate(time.Millisecond), UpdatedAt: now, External: typ.External}
	ctx, span := s.tracer.StartSubmit(ctx, j.ID, j.Type)
	defer span.End(nil)
	j.TraceParent = span.TraceParent()
	if sub.Deadline != nil {
		d := sub.Deadline.UTC().Truncate(time.Millisecond)
		j.Deadline = &d
	} else if typ.Async {
		// Its completion token must die some day, and the job with it.
		d := now.Add(s.maxDeadline).Truncate(time.Millisecond)
		j.Deadline = &d
	}
	existing, existingPrint, err := s.store.CreateJob(ctx, j, idem)
	if err != nil {
		return Job{}, false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if existing == "" && j.Deadline != nil {
		if err := s.enqueuer.EnqueueExpiry(ctx, j.ID, *j.Deadline); err != nil {
			// The job stands; a run that claims it after its deadline
			// expires it instead (runClaimed, claimNext).
			s.log.ErrorContext(ctx, "could not schedule a job's expiry", "requestId", j.ID, "error", err)
		}
	}
	if existing != "" {
		if existingPrint != idem.Fingerprint {
			return Job{}, false, ErrIdempotencyConflict
		}
		prior, err := s.Get(ctx, clientID, existing)
		if errors.Is(err, ErrNotFound) {
			return Job{}, false, ErrIdempotencyConflict
		}
		prior.Payload = nil
		return prior, false, err
	}
	j.Payload = nil
	return j, true, nil
}

// Get returns a client's job; another client's job is ErrNotFound.
func (s *Service) Get(ctx context.Context, clientID, id string) (Job, error) {
	j, err := s.store.GetJob(ctx, id)
	if err != nil {
		return Job{}, err
	}
	if j.ClientID != clientID {
		return Job{}, ErrNotFound
	}
	return j, nil
}

// Run processes a job once: a hint from the ready queue, a retry task, or a
// recovery after a crash. It claims the job under a lease, so no two runs
// process it at once, runs its processor, and records the outcome together
// with the webhook's delivery, whose first attempt it then makes. A failed
// attempt that may be retried is recorded, with the task of the next one.
// A job finished already only has its delivery's first attempt made sure
// of. Run returns an error when its caller should try again later.
func (s *Service) Run(ctx context.Context, id string) error {
	now := s.now().UTC()
	j, err := s.store.ClaimJob(ctx, id, now, now.Add(s.lease))
	if err != nil {
		return s.notClaimed(ctx, id, err)
	}
	return s.runClaimed(ctx, j)
}

// notClaimed handles a claim that did not give this run the job.
func (s *Service) notClaimed(ctx context.Context, id string, err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		s.log.WarnContext(ctx, "job gone (expired or never stored), nothing to run", "requestId", id)
		return nil
	case errors.Is(err, ErrFinished):
		return s.deliverer.Attempt(ctx, DeliveryID(id), 1) // ran again after a crash: make sure the webhook goes out
	case errors.Is(err, ErrExternal):
		j, _ := s.store.GetJob(ctx, id)
		_, err := s.store.RequeueExternal(ctx, id, j.Type, s.now())
		return err
	}
	return err // *LeasedError, or the store failed
}

// runClaimed processes a job this run has claimed.
func (s *Service) runClaimed(ctx context.Context, j Job) (err error) {
	ctx, span := s.tracer.StartProcess(ctx, j.TraceParent, j.ID, j.Type, j.Attempts)
	defer func() { span.End(err) }()
	if j.Attempts > s.maxAttempts { // crashed or interrupted runs used them all up
		// This claim counts in j.Attempts although it does not process: the
		// store only lets the claim's own attempt number write the outcome.
		return s.fail(ctx, j, &Error{Code: "attempts_exhausted", Message: fmt.Sprintf("processing did not succeed in %d attempts", j.Attempts-1)})
	}
	if j.Deadline != nil && !s.now().Before(*j.Deadline) {
		return s.expire(ctx, j) // its expiry task was lost or late
	}
	typ, ok := s.registry.Lookup(j.Type)
	if !ok || typ.Processor == nil {
		return s.fail(ctx, j, &Error{Code: "unknown_type", Message: "no processor for job type " + j.Type + " on this worker"})
	}
	if typ.Async {
		return s.runAsync(ctx, j, typ)
	}
	result, perr, timedOut := s.process(ctx, j, typ)
	if errors.Is(perr, errStopped) {
		return nil // canceled or expired meanwhile: that write delivers
	}
	if perr != nil {
		return s.failed(ctx, j, typ, perr, timedOut)
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

// process runs the processor within the type's timeout, renewing the job's
// lease every third of it meanwhile and saving its progress at most once a
// second. A job canceled or expired meanwhile stops it (errStopped).
func (s *Service) process(ctx context.Context, j Job, typ Type) (json.RawMessage, error, bool) {
	pctx, cancel := context.WithTimeout(ctx, typ.Timeout)
	defer cancel()
	stopped := s.running.add(j.ID, pctx)
	defer s.running.remove(j.ID, stopped)
	pctx = stopped.ctx
	rep := &reporter{}
	pctx = context.WithValue(pctx, reporterKey{}, rep)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		lease := time.NewTicker(s.lease / 3)
		defer lease.Stop()
		flush := time.NewTicker(time.Second)
		defer flush.Stop()
		for {
			var err error
			select {
			case <-pctx.Done():
				return
			case <-flush.C:
				if p := rep.take(); p != nil {
					pj := j
					pj.Progress = p
					err = s.store.SaveProgress(pctx, pj)
				}
			case <-lease.C:
				err = s.store.ExtendJobLease(pctx, j, s.now().Add(s.lease))
			}
			if errors.Is(err, ErrFinished) || errors.Is(err, ErrNotFound) {
				// Another run holds the job now, or it was canceled or it
				// expired: this run's work is wasted.
				s.log.WarnContext(ctx, "job lease lost; processing stopped", "requestId", j.ID, "attempt", j.Attempts, "error", err)
				stopped.stop(err)
				return
			}
			if err != nil && pctx.Err() == nil {
				s.log.WarnContext(ctx, "could not renew a job's lease or save its progress", "requestId", j.ID, "error", err)
			}
		}
	}()
	result, err := typ.Processor.Process(pctx, Input{RequestID: j.ID, Type: j.Type, Payload: j.Payload, Metadata: j.Metadata,
		Attempt: j.Attempts, Deadline: j.Deadline})
	timedOut := errors.Is(pctx.Err(), context.DeadlineExceeded)
	if cause := stopped.cause(); cause != nil {
		s.log.InfoContext(ctx, "processing stopped", "requestId", j.ID, "attempt", j.Attempts, "reason", cause)
		err = errStopped
	}
	cancel()
	<-renewed
	return result, err, timedOut
}

// failed handles a processing error: the job is retried later if it may be,
// else it fails.
func (s *Service) failed(ctx context.Context, j Job, typ Type, perr error, timedOut bool) error {
	e := asError(perr)
	if timedOut {
		// The type's timeout cut the processor off, whatever error it made
		// of that (HTTPForwarder: upstream_unreachable).
		e = asError(context.DeadlineExceeded)
	}
	if ctx.Err() != nil {
		return s.release(ctx, j, typ)
	}
	if IsPermanent(perr) || j.Attempts >= s.maxAttempts {
		return s.fail(ctx, j, e)
	}
	at := s.now().UTC().Add(s.retryDelay(j.Attempts))
	j.LastError, j.UpdatedAt = e, s.now().UTC()
	tracing.JobEnded(ctx, "", e.Code)
	wctx := context.WithoutCancel(ctx)
	if err := s.store.RetryJob(wctx, j, at); errors.Is(err, ErrFinished) || errors.Is(err, ErrNotFound) {
		// This run's lease lapsed and another run took the job over: that
		// one decides what comes next.
		s.log.WarnContext(ctx, "job taken over by another run", "requestId", j.ID, "attempt", j.Attempts, "error", err)
		return nil
	} else if err != nil {
		return fmt.Errorf("record failed attempt %d of %s: %w", j.Attempts, j.ID, err)
	}
	if err := s.enqueuer.EnqueueJob(wctx, j.ID, j.Attempts+1, at, typ.Timeout); err != nil {
		return fmt.Errorf("schedule attempt %d of %s: %w", j.Attempts+1, j.ID, err) // recovery schedules it
	}
	s.log.WarnContext(ctx, "job attempt failed, will retry", "requestId", j.ID, "attempt", j.Attempts,
		"code", e.Code, "nextAttemptAt", at.Format(time.RFC3339Nano), "error", perr)
	return nil
}

// release hands the job of a worker that is shutting down to another at
// once, without counting the interrupted attempt. It returns the context's
// error, so that a task running it is put back in its queue.
func (s *Service) release(ctx context.Context, j Job, typ Type) error {
	now := s.now().UTC()
	j.LastError, j.UpdatedAt = &Error{Code: "interrupted", Message: "the worker shut down during processing"}, now
	wctx := context.WithoutCancel(ctx)
	if err := s.store.ReleaseJob(wctx, j, now); err != nil && !errors.Is(err, ErrFinished) && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("release %s: %w", j.ID, err)
	}
	if err := s.enqueuer.EnqueueJob(wctx, j.ID, j.Attempts, now, typ.Timeout); err != nil {
		s.log.WarnContext(ctx, "could not hand an interrupted job over; recovery will", "requestId", j.ID, "error", err)
	}
	s.log.InfoContext(ctx, "job released at shutdown", "requestId", j.ID, "attempt", j.Attempts)
	return ctx.Err()
}

func (s *Service) fail(ctx context.Context, j Job, e *Error) error {
	done := s.now().UTC()
	j.Status, j.Error, j.LastError, j.UpdatedAt, j.CompletedAt, j.DeliveryID = StatusFailed, e, nil, done, &done, DeliveryID(j.ID)
	return s.finish(ctx, j)
}

// finish records the job's outcome and creates its delivery in one atomic
// write, then makes the first delivery attempt.
func (s *Service) finish(ctx context.Context, j Job) error {
	d, err := s.record(ctx, j)
	if errors.Is(err, ErrFinished) || errors.Is(err, ErrNotFound) {
		// Another run of this job finished it first; it delivers.
		s.log.WarnContext(ctx, "job finished by another run", "requestId", j.ID, "error", err)
		return nil
	}
	if err != nil {
		return err // nothing written: the job runs again
	}
	if j.Status == StatusFailed {
		s.log.WarnContext(ctx, "job failed", "requestId", j.ID, "type", j.Type, "code", j.Error.Code, "attempt", j.Attempts)
	} else {
		s.log.InfoContext(ctx, "job completed", "requestId", j.ID, "type", j.Type, "attempt", j.Attempts)
	}
	return s.deliverer.FirstAttempt(ctx, d)
}

// List pages through jobs for the admin API.
func (s *Service) List(ctx context.Context, f Filter, limit int, cursor string) ([]Job, string, error) {
	return s.store.ListJobs(ctx, f, limit, cursor)
}

package webhooks

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/signing"
	"github.com/boomerang-dev/boomerang/tracing"
)

// Store keeps deliveries and their attempt logs (redisstore.Store). A
// delivery is created with its job's outcome (jobs.Store.FinishJob); every
// change here is one atomic, guarded step.
type Store interface {
	// GetDelivery returns a delivery with its webhook body (Payload), and
	// its attempt log if asked.
	GetDelivery(ctx context.Context, id string, withAttempts bool) (Delivery, error)
	// RecordAttempt appends a to d's log and moves d to status, provided d
	// still has a.Number-1 attempts and is PENDING (else ErrStale).
	RecordAttempt(ctx context.Context, d Delivery, a Attempt, status Status) error
	// PostponeDelivery moves attempt n of d to until, saying why (one of
	// the Defer* reasons), provided no attempt was recorded meanwhile.
	PostponeDelivery(ctx context.Context, d Delivery, n int, until time.Time, reason string) error
	// ReopenDelivery moves a DELIVERED or FAILED delivery back to PENDING
	// for a replay due at now (ErrConflict if it is PENDING), storing
	// traceParent (if not "") for its attempts; the Delivery returned
	// has the TraceParent it had.
	ReopenDelivery(ctx context.Context, id string, now time.Time, traceParent string) (Delivery, error)
	// ExpediteDelivery moves d's next attempt to now, provided d is still
	// PENDING with the attempts it was read with (else ErrStale).
	ExpediteDelivery(ctx context.Context, d Delivery, now time.Time) error
	// ListDeliveries pages through deliveries, newest first.
	ListDeliveries(ctx context.Context, f Filter, limit int, cursor string) ([]Delivery, string, error)
	CountDeliveries(ctx context.Context, f Filter) (int64, error)
	SaveReplay(ctx context.Context, r BulkReplay) error
	GetReplay(ctx context.Context, id string) (BulkReplay, error)
}

// Scheduler makes a later attempt durable: ScheduleAttempt must be
// idempotent per (deliveryID, attempt), because crashes make it repeat.
type Scheduler interface {
	ScheduleAttempt(ctx context.Context, deliveryID string, attempt int, at time.Time) error
}

// AttemptRunner has the workers make an attempt at once (tasks.Queue): the
// bulk retry-now needs it.
type AttemptRunner interface {
	// RunAttemptNow makes attempt n, scheduled for later or not, run at
	// once; the schedule it had becomes a no-op.
	RunAttemptNow(ctx context.Context, deliveryID string, attempt int) error
}

// SecretSource gives the signing secrets of a client at the time of asking.
type SecretSource interface {
	SigningSecrets(ctx context.Context, clientID string) ([]string, error)
}

// ErrEarly means a task ran too long before its attempt was due.
var ErrEarly = errors.New("delivery attempt not due yet")

// maxEarly is how early a task may run and still wait for its attempt.
const maxEarly = 5 * time.Second

// Limits of what Boomerang reads from a receiver's answer.
const (
	maxResponseRead  = 64 << 10
	maxResponseStore = 4 << 10
)

// Dispatcher makes delivery attempts and decides what follows each one.
type Dispatcher struct {
	store     Store
	client    *http.Client
	scheduler Scheduler
	runner    AttemptRunner
	replays   ReplayStarter
	gate      *gate
	deferLog  *rateLog
	signers   *signerCache
	policy    RetryPolicy
	timeout   time.Duration
	userAgent string
	now       func() time.Time
	log       *slog.Logger
	tracer    *tracing.Tracer
}

// DispatcherOptions wires a Dispatcher. Transport carries the SSRF guard
// (egress.Policy.Transport); Now and Policy.Rand are injectable for tests.
type DispatcherOptions struct {
	Store     Store
	Transport http.RoundTripper
	Secrets   SecretSource
	Scheduler Scheduler
	Runner    AttemptRunner // nil: retry-now is refused (ErrNoRunner)
	Replays   ReplayStarter
	Policy    RetryPolicy
	// HostConcurrency caps attempts in flight per receiver host (0: no
	// cap). BreakerThreshold consecutive failures of an endpoint (or
	// host-level failures of a host) defer its attempts for
	// BreakerCooldown, then one probe goes through (0: no breakers). See
	// gate for the rules.
	HostConcurrency  int
	BreakerThreshold int
	BreakerCooldown  time.Duration
	Timeout          time.Duration
	UserAgent        string
	Now              func() time.Time
	Logger           *slog.Logger
	Tracer           *tracing.Tracer // nil: no spans
}

// NewDispatcher returns a Dispatcher; redirects are never followed.
func NewDispatcher(o DispatcherOptions) *Dispatcher {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{
		store: o.Store,
		client: &http.Client{
			Transport:     o.Transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		scheduler: o.Scheduler,
		runner:    o.Runner,
		replays:   o.Replays,
		signers:   &signerCache{src: o.Secrets, m: map[string]*signing.Signer{}},
		gate:      newGate(o.HostConcurrency, o.BreakerThreshold, o.BreakerCooldown, o.Now),
		deferLog:  newRateLog(10 * time.Second),
		policy:    o.Policy,
		timeout:   o.Timeout,
		userAgent: o.UserAgent,
		now:       o.Now,
		log:       o.Logger,
		tracer:    o.Tracer,
	}
}

// FirstAttempt makes the first attempt of a delivery just created with its
// job's outcome, so no queue poll stands between a finished job and its
// webhook. If the attempt must wait (a circuit, a concurrency cap), it is
// scheduled as a task instead.
func (d *Dispatcher) FirstAttempt(ctx context.Context, dl Delivery) error {
	err := d.attempt(ctx, dl)
	var def *DeferError
	if errors.As(err, &def) {
		return d.scheduler.ScheduleAttempt(ctx, dl.ID, 1, def.Until.Add(time.Second))
	}
	return err
}

// Attempt makes attempt number n of a delivery, if it is still due: a
// repeated call for an attempt already recorded only makes sure the next one
// is scheduled. It returns an error only when the outcome could not be
// recorded or scheduled, so the caller's task runs again.
func (d *Dispatcher) Attempt(ctx context.Context, id string, n int) error {
	dl, err := d.store.GetDelivery(ctx, id, false)
	if errors.Is(err, ErrNotFound) {
		d.log.WarnContext(ctx, "delivery gone, nothing to attempt", "deliveryId", id)
		return nil
	}
	if err != nil {
		return err
	}
	if dl.Status != StatusPending {
		return nil
	}
	if dl.Attempts >= n {
		return d.ensureScheduled(ctx, dl)
	}
	if dl.NextAttemptAt != nil && dl.NextAttemptAt.After(d.now()) {
		wait := dl.NextAttemptAt.Sub(d.now())
		// Task queues keep whole seconds and may run a task up to a second
		// early, and workers' clocks may differ by a few more: wait that
		// out. Anything earlier still fails this run, and the queue runs the
		// same task again later (its id is taken, so rescheduling it under
		// that id would be a no-op).
		if wait > maxEarly {
			return &DeferError{Until: *dl.NextAttemptAt, Reason: deferNotDue, Detail: fmt.Sprintf("attempt %d of %s is not due yet", n, id)}
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return d.attempt(ctx, dl)
}

func (d *Dispatcher) ensureScheduled(ctx context.Context, dl Delivery) error {
	if dl.Status != StatusPending || dl.NextAttemptAt == nil {
		return nil
	}
	return d.scheduler.ScheduleAttempt(ctx, dl.ID, dl.Attempts+1, *dl.NextAttemptAt)
}

func (d *Dispatcher) attempt(ctx context.Context, dl Delivery) error {
	return d.attemptOr(ctx, dl, d.postpone)
}

// attemptOr makes the next attempt of dl, or, if the gate defers it, calls
// onDefer instead.
func (d *Dispatcher) attemptOr(ctx context.Context, dl Delivery, onDefer func(context.Context, Delivery, int, *DeferError) error) (err error) {
	signer, err := d.signers.get(ctx, dl.ClientID)
	if err != nil {
		return err
	}
	n := dl.Attempts + 1
	var a Attempt
	ctx, span := d.tracer.StartAttempt(ctx, dl.TraceParent, dl.ID, dl.RequestID, n)
	defer func() { span.End(a.StatusCode, a.ErrorClass, cmp.Or(a.Outcome, "deferred"), err) }()
	var retryAfter time.Duration
	t, deferral := d.gate.acquireWait(ctx, hostOf(dl.URL), endpointOf(dl.ClientID, dl.URL))
	switch {
	case deferral == nil:
		a, retryAfter = d.send(ctx, dl, n, signer)
		t.done(outcomeOf(a))
	case circuitReason(deferral.Reason) && circuitReason(dl.DeferredReason) && dl.DeferredAttempt == n:
		// This attempt waited for the circuit once already: it fails
		// without a request, so the delivery keeps its own schedule and
		// ends on time instead of waiting for probes forever.
		a = Attempt{Number: n, StartedAt: d.now().UTC(), URL: dl.URL, ErrorClass: ClassCircuit,
			Error: "not sent: " + deferral.Reason + " (" + deferral.Detail + ")"}
	default:
		return onDefer(ctx, dl, n, deferral)
	}

	status := StatusPending
	roundAttempts := a.Number - dl.RoundStart
	switch {
	case a.ErrorClass == "":
		status, a.Outcome = StatusDelivered, OutcomeDelivered
	case a.ErrorClass == ClassBlocked || a.StatusCode == http.StatusGone:
		status, a.Outcome = StatusFailed, OutcomeFailed
	case roundAttempts >= d.policy.MaxAttempts:
		status, a.Outcome = StatusFailed, OutcomeFailed
	default:
		wait := d.policy.Delay(roundAttempts)
		if retryAfter > 0 { // Retry-After stretches the wait, never shortens it
			wait = max(wait, d.policy.Cap(retryAfter))
		}
		next := a.StartedAt.Add(time.Duration(a.DurationMs)*time.Millisecond + wait).UTC()
		a.NextAttemptAt, a.Outcome = &next, OutcomeRetry
	}
	if err := d.store.RecordAttempt(ctx, dl, a, status); err != nil {
		if errors.Is(err, ErrStale) {
			return nil // another run recorded this attempt first
		}
		return err
	}
	d.log.InfoContext(ctx, "delivery attempt", "deliveryId", dl.ID, "requestId", dl.RequestID,
		"attempt", a.Number, "outcome", a.Outcome, "statusCode", a.StatusCode,
		"errorClass", a.ErrorClass, "durationMs", a.DurationMs)
	if a.NextAttemptAt != nil {
		return d.scheduler.ScheduleAttempt(ctx, dl.ID, a.Number+1, *a.NextAttemptAt)
	}
	return nil
}

// postpone moves attempt n of a delivery to def.Until without making it, so
// that it does not count, records why, and asks for the task to run again
// then.
func (d *Dispatcher) postpone(ctx context.Context, dl Delivery, n int, def *DeferError) error {
	if err := d.store.PostponeDelivery(ctx, dl, n, def.Until, def.Reason); err != nil && !errors.Is(err, ErrStale) {
		return err
	}
	if ok, suppressed := d.deferLog.allow(def.Reason+" "+endpointOf(dl.ClientID, dl.URL), d.now()); ok {
		d.log.InfoContext(ctx, "delivery attempt deferred", "deliveryId", dl.ID, "requestId", dl.RequestID,
			"attempt", n, "reason", def.Reason, "detail", def.Detail, "until", def.Until.UTC().Format(time.RFC3339Nano),
			"suppressedSinceLast", suppressed)
	}
	return def
}

// send makes one HTTP attempt and describes it; it never returns an error,
// because a failed attempt is a result to record.
func (d *Dispatcher) send(ctx context.Context, dl Delivery, n int, signer *signing.Signer) (Attempt, time.Duration) {
	start := d.now().UTC()
	ts := start.Unix()
	a := Attempt{Number: n, StartedAt: start, URL: dl.URL}
	sig := signer.Sign(dl.ID, ts, dl.Payload)
	a.Signatures = strings.Count(sig, " ") + 1
	a.RequestHeaders = RequestHeaders(dl, ts, d.userAgent, a.Signatures)
	finish := func() { a.DurationMs = d.now().Sub(start).Milliseconds() }

	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.URL, bytes.NewReader(dl.Payload))
	if err != nil {
		finish()
		a.ErrorClass, a.Error = ClassConnect, "invalid request: "+err.Error()
		return a, 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.userAgent)
	req.Header.Set(signing.HeaderID, dl.ID)
	req.Header.Set(signing.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(signing.HeaderSignature, sig)
	tracing.Inject(ctx, req.Header) // the attempt's span
	if tp := req.Header.Get("traceparent"); tp != "" {
		a.RequestHeaders["traceparent"] = tp // the log shows what was sent
	}

	resp, err := d.client.Do(req)
	if err != nil {
		finish()
		a.ErrorClass, a.Error = classify(err)
		return a, 0
	}
	// The status line is the receiver's answer; its body is only kept for
	// the log, and a body that never ends (or is cut off by the timeout)
	// does not change a 2xx into a failure.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
	resp.Body.Close()
	finish()
	a.StatusCode = resp.StatusCode
	a.ResponseHeaders = flatten(resp.Header)
	if len(body) > maxResponseStore {
		body = body[:maxResponseStore]
		// Drop a character the cut split rather than store U+FFFD for it.
		for i := 1; i < utf8.UTFMax && i <= len(body); i++ {
			if utf8.RuneStart(body[len(body)-i]) {
				if !utf8.FullRune(body[len(body)-i:]) {
					body = body[:len(body)-i]
				}
				break
			}
		}
	}
	a.ResponseBody = strings.ToValidUTF8(string(body), "\uFFFD")
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		a.ErrorClass = ClassRedirect
		a.Error = fmt.Sprintf("receiver answered %d (redirects are not followed)", resp.StatusCode)
	default:
		a.ErrorClass = ClassStatus
		a.Error = fmt.Sprintf("receiver answered %d", resp.StatusCode)
	}
	var retryAfter time.Duration
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), d.now())
	}
	return a, retryAfter
}

// maxHeaderLog bounds the response headers kept per attempt, names and
// values together: a receiver cannot make one attempt cost Redis more.
const maxHeaderLog = 8 << 10

// flatten joins each header's values and bounds the whole to maxHeaderLog
// bytes: the longest values are cut first (ending in "…"), and if the names
// alone do not fit, the headers beyond the bound are left out and
// counted under "Boomerang-Omitted-Headers".
func flatten(h http.Header) map[string]string {
	type kv struct{ k, v string }
	all := make([]kv, 0, len(h))
	total := 0
	for k, v := range h {
		joined := strings.Join(v, ", ")
		all = append(all, kv{k, joined})
		total += len(k) + len(joined)
	}
	if total > maxHeaderLog {
		sort.Slice(all, func(i, j int) bool { return all[i].k < all[j].k })
		names := 0
		kept := all[:0:0]
		for _, e := range all {
			if names+len(e.k)+len(cutMark) > maxHeaderLog-64 { // room for the omitted count
				break
			}
			names += len(e.k) + len(cutMark) // room for a cut value's mark
			kept = append(kept, e)
		}
		omitted := len(all) - len(kept)
		// The largest per-value length that fits, found by bisection.
		fits := func(c int) bool {
			n := names
			for _, e := range kept {
				n += min(len(e.v), c)
			}
			return n <= maxHeaderLog-64
		}
		lo, hi := 0, maxHeaderLog
		for lo < hi {
			mid := (lo + hi + 1) / 2
			if fits(mid) {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		for i, e := range kept {
			if len(e.v) > lo {
				kept[i].v = cutUTF8(e.v, max(0, lo-len(cutMark))) + cutMark
			}
		}
		all = kept
		if omitted > 0 {
			all = append(all, kv{"Boomerang-Omitted-Headers", strconv.Itoa(omitted)})
		}
	}
	out := make(map[string]string, len(all))
	for _, e := range all {
		out[e.k] = e.v
	}
	return out
}

const cutMark = "…"

// cutUTF8 cuts s to at most n bytes without splitting a character.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 means absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(365*24*3600))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// classify turns a transport error into an error class and a message.
func classify(err error) (class, msg string) {
	var blocked *egress.BlockedError
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recErr tls.RecordHeaderError
	var netErr net.Error
	switch {
	case errors.As(err, &blocked):
		return ClassBlocked, blocked.Error()
	case errors.As(err, &dnsErr):
		return ClassDNS, "DNS lookup failed: " + dnsErr.Err
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return ClassTimeout, "no answer within the delivery timeout"
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr),
		errors.As(err, &recErr), strings.Contains(err.Error(), "tls: "):
		return ClassTLS, trimURLError(err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return ClassConnect, "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return ClassConnect, "connection reset by the receiver"
	}
	return ClassConnect, trimURLError(err)
}

// trimURLError drops the "Post \"url\": " prefix that repeats the URL.
func trimURLError(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner.Error()
		}
	}
	return err.Error()
}

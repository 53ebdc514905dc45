package webhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/signing"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// The store settings of the tests.
const (
	testRetention    = 24 * time.Hour
	testRecoverAfter = 30 * time.Second
)

// env is a Dispatcher over the real store (redisstore, on a database of
// its own), with fakes at the small seams: the Scheduler, the
// ReplayStarter and the SecretSource.
type env struct {
	rdb        *redis.Client
	store      *redisstore.Store
	clock      *testkit.Clock
	sched      *fakeScheduler
	secrets    *fakeSecrets
	starter    *fakeStarter
	d          *webhooks.Dispatcher
	partitions int
	seq        atomic.Int64
}

type option func(*webhooks.DispatcherOptions, *redisstore.Options)

func withPolicy(p webhooks.RetryPolicy) option {
	return func(o *webhooks.DispatcherOptions, _ *redisstore.Options) { o.Policy = p }
}

func withMaxAttempts(n int) option {
	return func(o *webhooks.DispatcherOptions, _ *redisstore.Options) { o.Policy.MaxAttempts = n }
}

func withTimeout(d time.Duration) option {
	return func(o *webhooks.DispatcherOptions, _ *redisstore.Options) { o.Timeout = d }
}

func withTransport(rt http.RoundTripper) option {
	return func(o *webhooks.DispatcherOptions, _ *redisstore.Options) { o.Transport = rt }
}

func withScheduler(s webhooks.Scheduler) option {
	return func(o *webhooks.DispatcherOptions, _ *redisstore.Options) { o.Scheduler = s }
}

// withGate sets the host cap and the breakers (0: none).
func withGate(hostConcurrency, threshold int, cooldown time.Duration) option {
	return func(o *webhooks.DispatcherOptions, _ *redisstore.Options) {
		o.HostConcurrency, o.BreakerThreshold, o.BreakerCooldown = hostConcurrency, threshold, cooldown
	}
}

func withPartitions(n int) option {
	return func(_ *webhooks.DispatcherOptions, o *redisstore.Options) { o.Partitions = n }
}

// testPolicy is the default policy with the jitter neutralised (Rand 0.5).
func testPolicy() webhooks.RetryPolicy {
	p := webhooks.DefaultRetryPolicy()
	p.Rand = func() float64 { return 0.5 }
	return p
}

// newEnv starts the clock at the current second, so that signatures made
// with it pass verifiers that use the real clock (5 min tolerance).
func newEnv(t testing.TB, opts ...option) *env {
	t.Helper()
	return newEnvOn(t, redistest.Client(t), opts...)
}

func newEnvOn(t testing.TB, rdb *redis.Client, opts ...option) *env {
	t.Helper()
	e := &env{rdb: rdb, clock: testkit.NewClock(time.Now().UTC().Truncate(time.Second)),
		sched: &fakeScheduler{}, secrets: &fakeSecrets{}, starter: &fakeStarter{}}
	tr := egress.Policy{AllowPrivate: true}.Transport()
	t.Cleanup(tr.CloseIdleConnections)
	do := webhooks.DispatcherOptions{Transport: tr, Secrets: e.secrets, Scheduler: e.sched, Runner: e.sched, Replays: e.starter,
		Policy: testPolicy(), Timeout: 5 * time.Second, UserAgent: "Boomerang-test/1.0", Now: e.clock.Now}
	so := redisstore.Options{Retention: testRetention, RecoverAfter: testRecoverAfter, Now: e.clock.Now}
	for _, opt := range opts {
		opt(&do, &so)
	}
	store, err := redisstore.New(context.Background(), rdb, so)
	if err != nil {
		t.Fatalf("redisstore.New(%+v) = %v", so, err)
	}
	e.store, e.partitions = store, store.Partitions()
	do.Store = store
	e.d = webhooks.NewDispatcher(do)
	return e
}

// finishJob makes a delivery the only way there is: a job is created,
// claimed and finished (the store's CreateJob, ClaimJob and FinishJob, as
// jobs.Service does), and its webhook body is jobs.WebhookBody of the
// finished job. The jobs go round-robin over the partitions.
func (e *env) finishJob(ctx context.Context, clientID, url string) (webhooks.Delivery, error) {
	n := e.seq.Add(1)
	now := e.clock.Now()
	id := ids.NewIn(ids.Request, now, int(n)%e.partitions)
	j := jobs.Job{ID: id, ClientID: clientID, Type: "test.echo", Status: jobs.StatusAccepted,
		Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)), CallbackURL: url,
		Metadata: map[string]string{"seq": strconv.FormatInt(n, 10)}, CreatedAt: now.Truncate(time.Millisecond), UpdatedAt: now}
	if _, _, err := e.store.CreateJob(ctx, j, nil); err != nil {
		return webhooks.Delivery{}, fmt.Errorf("CreateJob(%s): %w", id, err)
	}
	claimed, err := e.store.ClaimJob(ctx, id, now, now.Add(time.Minute))
	if err != nil {
		return webhooks.Delivery{}, fmt.Errorf("ClaimJob(%s): %w", id, err)
	}
	done := now.UTC()
	// A result with spaces, HTML characters and a number no float holds:
	// it must reach the receiver byte for byte.
	result := fmt.Sprintf(`{ "n": %d, "html": "<b>&</b>", "big": 123456789012345678901234567890.5 }`, n)
	claimed.Status, claimed.Result, claimed.UpdatedAt, claimed.CompletedAt, claimed.DeliveryID =
		jobs.StatusCompleted, json.RawMessage(result), done, &done, jobs.DeliveryID(id)
	body, err := jobs.WebhookBody(claimed)
	if err != nil {
		return webhooks.Delivery{}, err
	}
	m := webhooks.Message{ID: claimed.DeliveryID, RequestID: id, ClientID: clientID, EventType: jobs.EventCompleted,
		URL: url, Body: body}
	d, err := e.store.FinishJob(ctx, claimed, m)
	if err != nil {
		return webhooks.Delivery{}, fmt.Errorf("FinishJob(%s): %w", id, err)
	}
	return d, nil
}

// newDelivery returns a new PENDING delivery of a job of clientID that
// just finished, due now, for url.
func (e *env) newDelivery(t testing.TB, clientID, url string) webhooks.Delivery {
	t.Helper()
	d, err := e.finishJob(context.Background(), clientID, url)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// first runs FirstAttempt and fails the test on an error.
func (e *env) first(t testing.TB, d webhooks.Delivery) {
	t.Helper()
	if err := e.d.FirstAttempt(context.Background(), d); err != nil {
		t.Fatalf("FirstAttempt(%s to %s) = %v, want nil", d.ID, d.URL, err)
	}
}

// get returns a delivery with its attempt log.
func (e *env) get(t testing.TB, id string) webhooks.Delivery {
	t.Helper()
	d, err := e.store.GetDelivery(context.Background(), id, true)
	if err != nil {
		t.Fatalf("GetDelivery(%s) = %v, want nil", id, err)
	}
	return d
}

// record records attempt 1 of d as its last, answered with code (a 2xx
// delivers, anything else fails), without a request: for fixtures too
// large to send.
func (e *env) record(ctx context.Context, d webhooks.Delivery, code int) error {
	a := webhooks.Attempt{Number: 1, StartedAt: d.CreatedAt, URL: d.URL, StatusCode: code, Outcome: webhooks.OutcomeDelivered}
	status := webhooks.StatusDelivered
	if code >= 300 {
		a.ErrorClass, a.Error, a.Outcome = webhooks.ClassStatus, fmt.Sprintf("receiver answered %d", code), webhooks.OutcomeFailed
		status = webhooks.StatusFailed
	}
	return e.store.RecordAttempt(ctx, d, a, status)
}

// schedCall is one recorded Scheduler call.
type schedCall struct {
	ID      string
	Attempt int
	At      time.Time
}

func (c schedCall) String() string {
	return fmt.Sprintf("{%s %d %s}", c.ID, c.Attempt, c.At.UTC().Format(time.RFC3339Nano))
}

func (c schedCall) equal(o schedCall) bool {
	return c.ID == o.ID && c.Attempt == o.Attempt && c.At.Equal(o.At)
}

// fakeScheduler records every successful ScheduleAttempt call; it fails
// with err, or with err once it has taken okCalls calls.
type fakeScheduler struct {
	mu      sync.Mutex
	calls   []schedCall
	err     error
	okCalls int // > 0: fail with err after this many calls
}

func (s *fakeScheduler) ScheduleAttempt(_ context.Context, id string, n int, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil && (s.okCalls == 0 || len(s.calls) >= s.okCalls) {
		return s.err
	}
	s.calls = append(s.calls, schedCall{id, n, at})
	return nil
}

// RunAttemptNow records a call with a zero At.
func (s *fakeScheduler) RunAttemptNow(ctx context.Context, id string, n int) error {
	return s.ScheduleAttempt(ctx, id, n, time.Time{})
}

func (s *fakeScheduler) setErr(err error, okCalls int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err, s.okCalls = err, okCalls
}

func (s *fakeScheduler) Calls() []schedCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]schedCall(nil), s.calls...)
}

// CallsFor returns the calls for one delivery.
func (s *fakeScheduler) CallsFor(id string) []schedCall {
	var out []schedCall
	for _, c := range s.Calls() {
		if c.ID == id {
			out = append(out, c)
		}
	}
	return out
}

// checkCalls fails unless calls are want, in order.
func checkCalls(t testing.TB, what string, calls, want []schedCall) {
	t.Helper()
	ok := len(calls) == len(want)
	for i := 0; ok && i < len(calls); i++ {
		ok = calls[i].equal(want[i])
	}
	if !ok {
		t.Errorf("%s: Scheduler calls = %v, want %v", what, calls, want)
	}
}

// countingScheduler only counts; it is cheap enough for scale tests.
type countingScheduler struct{ n atomic.Int64 }

func (s *countingScheduler) ScheduleAttempt(context.Context, string, int, time.Time) error {
	s.n.Add(1)
	return nil
}

// fakeSecrets gives each client its secrets (made on first use with
// signing.NewSecret, or set explicitly).
type fakeSecrets struct {
	mu      sync.Mutex
	secrets map[string][]string
	err     error
}

func (f *fakeSecrets) SigningSecrets(_ context.Context, clientID string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if f.secrets == nil {
		f.secrets = map[string][]string{}
	}
	if _, ok := f.secrets[clientID]; !ok {
		s, err := signing.NewSecret()
		if err != nil {
			return nil, err
		}
		f.secrets[clientID] = []string{s}
	}
	return append([]string(nil), f.secrets[clientID]...), nil
}

// Set gives a client its secrets.
func (f *fakeSecrets) Set(clientID string, secrets ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.secrets == nil {
		f.secrets = map[string][]string{}
	}
	f.secrets[clientID] = secrets
}

func (f *fakeSecrets) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// fakeStarter records StartReplay calls.
type fakeStarter struct {
	mu  sync.Mutex
	ids []string
	err error
}

func (f *fakeStarter) StartReplay(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.ids = append(f.ids, id)
	return nil
}

func (f *fakeStarter) IDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids...)
}

// request is what a receiver saw.
type request struct {
	Header http.Header
	Body   []byte
}

// receiver is a loopback httptest server answering with a scripted
// sequence of handlers (the last one repeats) and recording every request.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	reqs     []request
	handlers []http.HandlerFunc
}

func newReceiver(t testing.TB, handlers ...http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{handlers: handlers}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	i := len(r.reqs)
	r.reqs = append(r.reqs, request{Header: req.Header.Clone(), Body: body})
	h := r.handlers[min(i, len(r.handlers)-1)]
	r.mu.Unlock()
	h(w, req)
}

// SetHandlers replaces the receiver's script.
func (r *receiver) SetHandlers(handlers ...http.HandlerFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers = handlers
}

func (r *receiver) Requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

// Reset forgets the recorded requests (benchmarks keep memory flat).
func (r *receiver) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = r.reqs[:0]
}

// newTLSReceiver is a TLS receiver with a certificate nobody trusts.
func newTLSReceiver(t testing.TB) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Errorf("the untrusted TLS receiver got a request")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake errors are expected
	t.Cleanup(srv.Close)
	return srv
}

// status answers with code and a short body.
func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		fmt.Fprintf(w, "answer %d", code)
	}
}

// withHeader answers code with one extra response header.
func withHeader(code int, key, value string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(key, value)
		w.WriteHeader(code)
	}
}

// hold answers code once release is closed (or the request ends, or 10 s
// pass, so that a failing test does not hang).
func hold(release <-chan struct{}, code int) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-release:
		case <-req.Context().Done():
		case <-time.After(10 * time.Second):
		}
		w.WriteHeader(code)
	}
}

// refusedURL returns a loopback URL on which nothing listens.
func refusedURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/hook"
}

// waitUntil polls cond; it only bounds a wait for something that must
// happen, and fails the test after 5 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var errBoom = errors.New("boom")

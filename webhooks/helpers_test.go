package webhooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/signing"
	"github.com/redis/go-redis/v9"
)

// testRetention is the store retention of the tests.
const testRetention = 24 * time.Hour

// fakeClock is an injectable, concurrency-safe clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

// newClock starts a fake clock at the current second, so that signatures
// made with it pass verifiers that use the real clock (5 min tolerance).
func newClock() *fakeClock {
	return &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// schedCall is one recorded Scheduler call.
type schedCall struct {
	ID      string
	Attempt int
	At      time.Time
}

// fakeScheduler records every ScheduleAttempt call.
type fakeScheduler struct {
	mu    sync.Mutex
	calls []schedCall
	err   error
}

func (s *fakeScheduler) ScheduleAttempt(_ context.Context, id string, n int, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.calls = append(s.calls, schedCall{id, n, at})
	return nil
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

// testEnv is a dispatcher over a private Redis database with fakes.
type testEnv struct {
	rdb     *redis.Client
	store   *Store
	clock   *fakeClock
	sched   *fakeScheduler
	secrets *fakeSecrets
	starter *fakeStarter
	d       *Dispatcher
}

type envOption func(*DispatcherOptions)

func withPolicy(p RetryPolicy) envOption { return func(o *DispatcherOptions) { o.Policy = p } }
func withMaxAttempts(n int) envOption {
	return func(o *DispatcherOptions) { o.Policy.MaxAttempts = n }
}
func withTimeout(d time.Duration) envOption { return func(o *DispatcherOptions) { o.Timeout = d } }
func withTransport(rt http.RoundTripper) envOption {
	return func(o *DispatcherOptions) { o.Transport = rt }
}
func withScheduler(s Scheduler) envOption { return func(o *DispatcherOptions) { o.Scheduler = s } }

// testPolicy is the default policy with the jitter neutralised (Rand 0.5).
func testPolicy() RetryPolicy {
	p := DefaultRetryPolicy()
	p.Rand = func() float64 { return 0.5 }
	return p
}

func newEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	rdb := redistest.Client(t)
	e := &testEnv{
		rdb:     rdb,
		store:   NewStore(rdb, testRetention),
		clock:   newClock(),
		sched:   &fakeScheduler{},
		secrets: &fakeSecrets{},
		starter: &fakeStarter{},
	}
	tr := egress.Policy{AllowPrivate: true}.Transport()
	t.Cleanup(tr.CloseIdleConnections)
	o := DispatcherOptions{
		Store: e.store, Transport: tr, Secrets: e.secrets, Scheduler: e.sched, Replays: e.starter,
		Policy: testPolicy(), Timeout: 5 * time.Second, UserAgent: "Boomerang-test/1.0", Now: e.clock.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	e.d = NewDispatcher(o)
	return e
}

var msgSeq atomic.Int64

// msg returns a message with a unique id for client to url.
func msg(client, url string) Message {
	n := msgSeq.Add(1)
	return Message{
		ID:        fmt.Sprintf("msg_test_%06d", n),
		RequestID: fmt.Sprintf("req_test_%06d", n),
		ClientID:  client,
		EventType: "job.completed",
		URL:       url,
		Body:      []byte(fmt.Sprintf(`{"type":"job.completed","data":{"n":%d}}`, n)),
	}
}

// deliver runs Deliver and fails the test on an error.
func (e *testEnv) deliver(t testing.TB, m Message) {
	t.Helper()
	if _, err := e.d.Deliver(context.Background(), m, nil); err != nil {
		t.Fatalf("Deliver(%s to %s) = %v, want nil", m.ID, m.URL, err)
	}
}

// get returns a delivery with its attempt log.
func (e *testEnv) get(t testing.TB, id string) Delivery {
	t.Helper()
	d, err := e.store.GetWithAttempts(context.Background(), id)
	if err != nil {
		t.Fatalf("GetWithAttempts(%s) = %v, want nil", id, err)
	}
	return d
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
	body := make([]byte, 0, 256)
	buf := make([]byte, 4096)
	for {
		n, err := req.Body.Read(buf)
		body = append(body, buf[:n]...)
		if err != nil {
			break
		}
	}
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

func (r *receiver) Requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
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

var errBoom = errors.New("boom")

func ptr[T any](v T) *T { return &v }

package jobs_test

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/timeindex"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/redis/go-redis/v9"
)

const (
	callback    = "https://hooks.example.com:443/boomerang" // canonical: the form stored
	echoTimeout = 30 * time.Second
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a fake clock that moves step forward on every reading.
type clock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.t
	c.t = c.t.Add(c.step)
	return now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

type enqueueCall struct {
	RequestID string
	Timeout   time.Duration
}

// fakeEnqueuer records EnqueueJob calls and fails with err when set.
type fakeEnqueuer struct {
	mu    sync.Mutex
	calls []enqueueCall
	err   error
}

func (f *fakeEnqueuer) EnqueueJob(_ context.Context, requestID string, timeout time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, enqueueCall{requestID, timeout})
	return f.err
}

func (f *fakeEnqueuer) Calls() []enqueueCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]enqueueCall(nil), f.calls...)
}

func (f *fakeEnqueuer) SetErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// fakeDeliverer captures webhook messages and fails with err when set.
type fakeDeliverer struct {
	mu   sync.Mutex
	msgs []webhooks.Message
	err  error
	rdb  *redis.Client // applies the job's completion, as the real one does atomically
}

func (f *fakeDeliverer) Deliver(ctx context.Context, m webhooks.Message, finish *timeindex.Update) (webhooks.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return webhooks.Delivery{}, f.err
	}
	if finish != nil {
		if _, err := finish.Family.Transition(ctx, f.rdb, finish.Change); err != nil {
			return webhooks.Delivery{}, err
		}
	}
	f.msgs = append(f.msgs, m)
	return webhooks.Delivery{ID: m.ID, RequestID: m.RequestID}, nil
}

func (f *fakeDeliverer) Messages() []webhooks.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]webhooks.Message(nil), f.msgs...)
}

func (f *fakeDeliverer) SetErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// env is a Service over a private Redis database with fakes around it.
type env struct {
	rdb   *redis.Client
	store *jobs.Store
	reg   *jobs.Registry
	enq   *fakeEnqueuer
	del   *fakeDeliverer
	clock *clock
	svc   *jobs.Service
}

type envOption func(*jobs.ServiceOptions)

func withMaxAttempts(n int) envOption {
	return func(o *jobs.ServiceOptions) { o.MaxAttempts = n }
}

func withLimits(l jobs.Limits) envOption {
	return func(o *jobs.ServiceOptions) { o.Limits = l }
}

// newEnv registers "echo" (30 s) besides whatever register adds.
func newEnv(t testing.TB, register func(*jobs.Registry), opts ...envOption) *env {
	t.Helper()
	e := &env{rdb: redistest.Client(t), reg: jobs.NewRegistry(), enq: &fakeEnqueuer{}, del: &fakeDeliverer{},
		clock: &clock{t: t0, step: time.Second}}
	e.del.rdb = e.rdb
	e.reg.Register("echo", jobs.Echo, echoTimeout)
	if register != nil {
		register(e.reg)
	}
	e.store = jobs.NewStore(e.rdb, 24*time.Hour)
	o := jobs.ServiceOptions{Store: e.store, Registry: e.reg, URLs: egress.Policy{}, Enqueuer: e.enq,
		Deliverer: e.del, Now: e.clock.Now}
	for _, opt := range opts {
		opt(&o)
	}
	e.svc = jobs.NewService(o)
	return e
}

// service returns another Service over the same store and fakes.
func (e *env) service(reg *jobs.Registry, maxAttempts int) *jobs.Service {
	return jobs.NewService(jobs.ServiceOptions{Store: e.store, Registry: reg, URLs: egress.Policy{},
		Enqueuer: e.enq, Deliverer: e.del, Now: e.clock.Now, MaxAttempts: maxAttempts})
}

func (e *env) submit(t testing.TB, clientID string, sub jobs.Submission) jobs.Job {
	t.Helper()
	j, created, err := e.svc.Submit(context.Background(), clientID, sub)
	if err != nil || !created {
		t.Fatalf("Submit(%s, %+v) = created %v, error %v; want a new job", clientID, sub, created, err)
	}
	return j
}

func (e *env) get(t testing.TB, clientID, id string) jobs.Job {
	t.Helper()
	j, err := e.svc.Get(context.Background(), clientID, id)
	if err != nil {
		t.Fatalf("Get(%s, %s): %v", clientID, id, err)
	}
	return j
}

// keys lists the keys of the test's database matching pattern, sorted.
func (e *env) keys(t testing.TB, pattern string) []string {
	t.Helper()
	ks, err := e.rdb.Keys(context.Background(), pattern).Result()
	if err != nil {
		t.Fatalf("KEYS %s: %v", pattern, err)
	}
	sort.Strings(ks)
	return ks
}

func echoSub(payload string) jobs.Submission {
	return jobs.Submission{Type: "echo", Payload: json.RawMessage(payload), CallbackURL: callback}
}

// countingProcessor counts its calls.
type countingProcessor struct {
	mu    sync.Mutex
	calls int
	fn    jobs.ProcessorFunc
}

func (p *countingProcessor) Process(ctx context.Context, in jobs.Input) (json.RawMessage, error) {
	p.mu.Lock()
	p.calls++
	p.mu.Unlock()
	return p.fn(ctx, in)
}

func (p *countingProcessor) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/redis/go-redis/v9"
)

const (
	callback    = "https://hooks.example.com:443/boomerang" // canonical: the form stored
	echoTimeout = 30 * time.Second
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// guard bounds the waits for something the code under test must do, so a
// broken runner fails the test instead of hanging it; it measures nothing.
const guard = 15 * time.Second

type enqueueCall struct {
	RequestID string
	Attempt   int
	At        time.Time
	Timeout   time.Duration
}

// fakeEnqueuer records EnqueueJob calls and fails with err when set.
type fakeEnqueuer struct {
	mu        sync.Mutex
	calls     []enqueueCall
	expiries  []enqueueCall
	scheduled []attemptCall
	err       error
}

func (f *fakeEnqueuer) EnqueueJob(_ context.Context, requestID string, attempt int, at time.Time, timeout time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, enqueueCall{requestID, attempt, at, timeout})
	return f.err
}

// EnqueueExpiry records an expiry as attempt 0 due at the deadline.
func (f *fakeEnqueuer) EnqueueExpiry(_ context.Context, requestID string, deadline time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expiries = append(f.expiries, enqueueCall{requestID, 0, deadline, 0})
	return f.err
}

// ScheduleAttempt records a delivery attempt scheduled by the service.
func (f *fakeEnqueuer) ScheduleAttempt(_ context.Context, deliveryID string, n int, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scheduled = append(f.scheduled, attemptCall{deliveryID, n})
	return f.err
}

func (f *fakeEnqueuer) Calls() []enqueueCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeEnqueuer) SetErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

type attemptCall struct {
	DeliveryID string
	N          int
}

// fakeDeliverer records the deliveries handed to FirstAttempt and the
// Attempt calls, and fails both with err when set. Every FirstAttempt call
// also sends the job's id on delivered, when set.
type fakeDeliverer struct {
	mu        sync.Mutex
	first     []webhooks.Delivery
	attempts  []attemptCall
	err       error
	delivered chan string
}

func (f *fakeDeliverer) FirstAttempt(_ context.Context, d webhooks.Delivery) error {
	f.mu.Lock()
	f.first = append(f.first, d)
	err, ch := f.err, f.delivered
	f.mu.Unlock()
	if ch != nil {
		ch <- d.RequestID
	}
	return err
}

func (f *fakeDeliverer) Attempt(_ context.Context, deliveryID string, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts = append(f.attempts, attemptCall{deliveryID, n})
	return f.err
}

func (f *fakeDeliverer) First() []webhooks.Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.first)
}

func (f *fakeDeliverer) Attempts() []attemptCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.attempts)
}

func (f *fakeDeliverer) SetErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// env is a Service over the real store on a private Redis database, with
// fakes at the seams around it and a clock that moves only when told.
type env struct {
	rdb   *redis.Client
	store *redisstore.Store
	reg   *jobs.Registry
	enq   *fakeEnqueuer
	del   *fakeDeliverer
	clock *testkit.Clock
	opts  jobs.ServiceOptions
	svc   *jobs.Service
}

type option func(*jobs.ServiceOptions)

func withMaxAttempts(n int) option { return func(o *jobs.ServiceOptions) { o.MaxAttempts = n } }
func withLimits(l jobs.Limits) option {
	return func(o *jobs.ServiceOptions) { o.Limits = l }
}
func withPartitions(n int) option { return func(o *jobs.ServiceOptions) { o.Partitions = n } }
func withLease(d time.Duration) option {
	return func(o *jobs.ServiceOptions) { o.Lease = d }
}

// retryDelay is the tests' RetryDelay: a minute per failed attempt.
func retryDelay(failed int) time.Duration { return time.Duration(failed) * time.Minute }

// newEnv registers "echo" (30 s) besides whatever register adds. The store
// has as many partitions as the service.
func newEnv(t testing.TB, register func(*jobs.Registry), opts ...option) *env {
	t.Helper()
	e := &env{rdb: redistest.Client(t), reg: jobs.NewRegistry(), enq: &fakeEnqueuer{}, del: &fakeDeliverer{},
		clock: testkit.NewClock(t0)}
	e.reg.Register("echo", jobs.Echo, echoTimeout)
	if register != nil {
		register(e.reg)
	}
	e.opts = jobs.ServiceOptions{Registry: e.reg, URLs: egress.Policy{}, Enqueuer: e.enq, Deliverer: e.del,
		RetryDelay: retryDelay, Now: e.clock.Now}
	for _, opt := range opts {
		opt(&e.opts)
	}
	store, err := redisstore.New(context.Background(), e.rdb, redisstore.Options{Partitions: e.opts.Partitions,
		Retention: 24 * time.Hour, RecoverAfter: time.Minute})
	if err != nil {
		t.Fatalf("redisstore.New: %v", err)
	}
	e.store, e.opts.Store = store, handOverRecorder{store, e.enq}
	e.svc = jobs.NewService(e.opts)
	return e
}

// handOverRecorder is the real store, recording each job handed back to
// the workers for its delivery's first attempt (ReturnReady after an end
// recorded outside the workers) as that attempt, in the fake enqueuer's
// Scheduled list.
type handOverRecorder struct {
	*redisstore.Store
	enq *fakeEnqueuer
}

func (h handOverRecorder) ReturnReady(ctx context.Context, id string) error {
	h.enq.mu.Lock()
	h.enq.scheduled = append(h.enq.scheduled, attemptCall{jobs.DeliveryID(id), 1})
	h.enq.mu.Unlock()
	return h.Store.ReturnReady(ctx, id)
}

// service returns another Service (another worker) over the same store,
// fakes and clock, changed by opts.
func (e *env) service(opts ...option) *jobs.Service {
	o := e.opts
	for _, opt := range opts {
		opt(&o)
	}
	return jobs.NewService(o)
}

func (e *env) submit(t testing.TB, clientID string, sub jobs.Submission) jobs.Job {
	t.Helper()
	j, created, err := e.svc.Submit(context.Background(), clientID, sub)
	if err != nil || !created {
		t.Fatalf("Submit(%s, %+v) = created %v, error %v; want a new job", clientID, sub, created, err)
	}
	return j
}

// submitType submits a job of type typ with payload for cli_a.
func (e *env) submitType(t testing.TB, typ, payload string) jobs.Job {
	t.Helper()
	sub := echoSub(payload)
	sub.Type = typ
	return e.submit(t, "cli_a", sub)
}

func (e *env) get(t testing.TB, clientID, id string) jobs.Job {
	t.Helper()
	j, err := e.svc.Get(context.Background(), clientID, id)
	if err != nil {
		t.Fatalf("Get(%s, %s): %v", clientID, id, err)
	}
	return j
}

// job reads a job from the store.
func (e *env) job(t testing.TB, id string) jobs.Job {
	t.Helper()
	j, err := e.store.GetJob(context.Background(), id)
	if err != nil {
		t.Fatalf("GetJob(%s): %v", id, err)
	}
	return j
}

// ready lists the jobs waiting in a partition's ready list, in the order
// the workers get them, without taking them (it reads the list: NextReady
// waits at least a second when it is empty).
func (e *env) ready(t testing.TB, partition int) []string {
	t.Helper()
	key := "bmr:{" + redisstore.PartitionTags(e.store.Partitions())[partition] + "}:ready"
	bodies, err := e.rdb.LRange(context.Background(), key, 0, -1).Result()
	if err != nil {
		t.Fatalf("LRANGE %s: %v", key, err)
	}
	var out []string
	for _, b := range bodies {
		out = append(out, ids.Request+b)
	}
	return out
}

// allReady lists the jobs waiting in every partition's ready list.
func (e *env) allReady(t testing.TB) []string {
	t.Helper()
	var out []string
	for p := range e.store.Partitions() {
		out = append(out, e.ready(t, p)...)
	}
	return out
}

// pop takes the next job of a partition's ready list, as a runner does.
func (e *env) pop(t testing.TB, partition int) string {
	t.Helper()
	id, err := e.store.NextReady(context.Background(), partition, time.Second)
	if err != nil {
		t.Fatalf("NextReady(%d): %v", partition, err)
	}
	return id
}

// dataKeys lists the keys of partitioned data (records, indexes, queues,
// claims) in the test's database: everything but the partition count.
func (e *env) dataKeys(t testing.TB) []string {
	t.Helper()
	ks, err := e.rdb.Keys(context.Background(), "bmr:{*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	slices.Sort(ks)
	return ks
}

// recordKey is the key of a job's record (redisstore/doc.go), for the tests
// that play the part of expiry.
func (e *env) recordKey(id string) string {
	return "bmr:{" + redisstore.PartitionTags(e.store.Partitions())[ids.Partition(id)] + "}:r:" + ids.Body(id)
}

// blockedPops counts the connections of the test's database blocked in
// BLPOP: runners waiting for jobs.
func (e *env) blockedPops(t testing.TB) int {
	t.Helper()
	list, err := e.rdb.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	db := " db=" + strconv.Itoa(e.rdb.Options().DB) + " "
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, db) && strings.Contains(line, " cmd=blpop ") {
			n++
		}
	}
	return n
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

// receive waits for n values on ch, failing the test if they do not come
// within the guard.
func receive[T any](t testing.TB, ch <-chan T, n int, what string) []T {
	t.Helper()
	out := make([]T, 0, n)
	timeout := time.After(guard)
	for len(out) < n {
		select {
		case v := <-ch:
			out = append(out, v)
		case <-timeout:
			t.Fatalf("%s: %d of %d came", what, len(out), n)
		}
	}
	return out
}

// runAsync runs s.Run in the background; its error arrives on the channel.
func runAsync(ctx context.Context, s *jobs.Service, id string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- s.Run(ctx, id) }()
	return ch
}

func errorCode(e *jobs.Error) string {
	if e == nil {
		return ""
	}
	return e.Code
}

func jobIDs(list []jobs.Job) []string {
	out := make([]string, len(list))
	for i, j := range list {
		out[i] = j.ID
	}
	return out
}

// --- issue 10: external workers, async completion, cancel, watch ---

// withNow gives the service another clock (time.Now for the tests that
// measure real delays).
func withNow(now func() time.Time) option { return func(o *jobs.ServiceOptions) { o.Now = now } }

// withStore puts a wrapper of the real store (countingStore) in front of
// the service.
func withStore(s jobs.Store) option { return func(o *jobs.ServiceOptions) { o.Store = s } }

func withPublicURL(u string) option { return func(o *jobs.ServiceOptions) { o.PublicURL = u } }

// externalTypes registers the external types of the tests.
func externalTypes(r *jobs.Registry) {
	r.RegisterExternal("transcode")
	r.RegisterExternal("thumbnail")
}

// listen feeds svc what the store announces, as serve does (events of
// watched jobs, types with work, jobs stopped), once each subscription has
// started: its first message says so, and what is published later is not
// missed. The subscriptions end with the test.
func (e *env) listen(t testing.TB, svc *jobs.Service, events, available, stops bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var ev <-chan jobs.Event
	var av, st <-chan string
	if events {
		ch := e.store.Events(ctx)
		receive(t, ch, 1, "the events subscription's start")
		ev = ch
	}
	if available {
		ch := e.store.Available(ctx)
		receive(t, ch, 1, "the available subscription's start")
		av = ch
	}
	if stops {
		ch := e.store.Stops(ctx)
		receive(t, ch, 1, "the stops subscription's start")
		st = ch
	}
	svc.Listen(ev, av, st)
}

// record is a job's record as Redis holds it (HGETALL).
func (e *env) record(t testing.TB, id string) map[string]string {
	t.Helper()
	f, err := e.rdb.HGetAll(context.Background(), e.recordKey(id)).Result()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", e.recordKey(id), err)
	}
	return f
}

// notBefore is the not-before time of a job's state (the s field:
// "<status> <attempts> <updated ns> <completed ns> <not before ms>"): the
// end of its lease while PROCESSING.
func (e *env) notBefore(t testing.TB, id string) time.Time {
	t.Helper()
	s := e.record(t, id)["s"]
	f := strings.Fields(s)
	if len(f) != 5 {
		t.Fatalf("state of %s = %q, want 5 fields", id, s)
	}
	n, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil {
		t.Fatalf("state of %s = %q: %v", id, s, err)
	}
	return time.UnixMilli(n).UTC()
}

// due is a job's recovery time (its score in the partition's due set).
func (e *env) due(t testing.TB, id string) time.Time {
	t.Helper()
	key := "bmr:{" + redisstore.PartitionTags(e.store.Partitions())[ids.Partition(id)] + "}:due"
	score, err := e.rdb.ZScore(context.Background(), key, ids.Body(id)).Result()
	if err != nil {
		t.Fatalf("ZSCORE %s %s: %v", key, ids.Body(id), err)
	}
	return time.UnixMilli(int64(score)).UTC()
}

// xready lists the jobs waiting in an external type's lists.
func (e *env) xready(t testing.TB, typ string) []string {
	t.Helper()
	var out []string
	for _, tag := range redisstore.PartitionTags(e.store.Partitions()) {
		bodies, err := e.rdb.LRange(context.Background(), "bmr:{"+tag+"}:xready:"+typ, 0, -1).Result()
		if err != nil {
			t.Fatalf("LRANGE xready:%s: %v", typ, err)
		}
		for _, b := range bodies {
			out = append(out, ids.Request+b)
		}
	}
	return out
}

// Scheduled returns the delivery attempts scheduled by the service.
func (f *fakeEnqueuer) Scheduled() []attemptCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.scheduled)
}

// Expiries returns the expiries enqueued (attempt 0, At the deadline).
func (f *fakeEnqueuer) Expiries() []enqueueCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.expiries)
}

// countingStore is the real store, counting the writes that the
// coalescing of heartbeats and progress must keep down.
type countingStore struct {
	*redisstore.Store
	extends, progress atomic.Int64
}

func (c *countingStore) ExtendJobLease(ctx context.Context, j jobs.Job, until time.Time) error {
	c.extends.Add(1)
	return c.Store.ExtendJobLease(ctx, j, until)
}

func (c *countingStore) SaveProgress(ctx context.Context, j jobs.Job) error {
	c.progress.Add(1)
	return c.Store.SaveProgress(ctx, j)
}

// commandCalls returns the calls of every command since the server
// started, from INFO commandstats (which counts the commands scripts run
// too), less INFO's own. INFO is server-wide: the tests that measure with
// it are not parallel, so no other test runs meanwhile.
func commandCalls(t testing.TB, rdb *redis.Client) map[string]int64 {
	t.Helper()
	if redistest.Kind() == "embedded miniredis" {
		t.Skip("INFO commandstats needs a real Redis (redis-server on PATH or BOOMERANG_TEST_REDIS_URL)")
	}
	out, err := redistest.CommandCalls(context.Background(), rdb)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// commandsSince returns the commands run since before (commandCalls),
// their total and a readable breakdown.
func commandsSince(t testing.TB, rdb *redis.Client, before map[string]int64) (int64, string) {
	t.Helper()
	var total int64
	var parts []string
	after := commandCalls(t, rdb)
	names := slices.Sorted(maps.Keys(after))
	for _, c := range names {
		if d := after[c] - before[c]; d != 0 {
			total += d
			parts = append(parts, fmt.Sprintf("%s %d", c, d))
		}
	}
	return total, strings.Join(parts, ", ")
}

package recovery_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/recovery"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/redis/go-redis/v9"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	recoverAfter = 30 * time.Second
	lease        = 30 * time.Second
	retryDelay   = 10 * time.Second // after a failed processing attempt
	jobTimeout   = time.Minute
	replayGrace  = 2 * time.Minute
	retention    = time.Hour
)

// call is one request of the sweep (or of the domain) to the task queue.
type call struct {
	Kind    string // "job", "attempt" or "replay"
	ID      string
	N       int
	At      time.Time
	Timeout time.Duration
}

func (c call) String() string {
	return fmt.Sprintf("%s %s #%d at %s timeout %v", c.Kind, c.ID, c.N, c.At.Format("15:04:05.000"), c.Timeout)
}

// fakeQueue records what it is asked and runs nothing: every task it
// takes is lost, as in a crash right after the write it follows.
type fakeQueue struct {
	mu    sync.Mutex
	calls []call
	err   error // returned by every call when set
}

func (q *fakeQueue) add(c call) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls = append(q.calls, c)
	return q.err
}

func (q *fakeQueue) EnqueueJob(_ context.Context, id string, attempt int, at time.Time, timeout time.Duration) error {
	return q.add(call{"job", id, attempt, at, timeout})
}

func (q *fakeQueue) ScheduleAttempt(_ context.Context, id string, n int, at time.Time) error {
	return q.add(call{Kind: "attempt", ID: id, N: n, At: at})
}

func (q *fakeQueue) EnqueueExpiry(_ context.Context, id string, deadline time.Time) error {
	return q.add(call{Kind: "expire", ID: id, At: deadline})
}

func (q *fakeQueue) StartReplay(_ context.Context, id string) error {
	return q.add(call{Kind: "replay", ID: id})
}

// take returns the calls so far and forgets them.
func (q *fakeQueue) take() []call {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.calls
	q.calls = nil
	return c
}

func (q *fakeQueue) setErr(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.err = err
}

// deliverer is the real Dispatcher, except that it can lose a job's first
// attempt, as a crash right after FinishJob does.
type deliverer struct {
	*webhooks.Dispatcher
	loseFirst atomic.Bool
}

func (d *deliverer) FirstAttempt(ctx context.Context, dl webhooks.Delivery) error {
	if d.loseFirst.Load() {
		return nil
	}
	return d.Dispatcher.FirstAttempt(ctx, dl)
}

// world is one Boomerang process on a Redis of its own, with a task queue
// that loses everything, a clock the test moves and a receiver that
// answers status.
type world struct {
	rdb       *redis.Client
	clk       *testkit.Clock
	store     *redisstore.Store
	queue     *fakeQueue
	clients   *clients.Service
	deliverer *deliverer
	jobs      *jobs.Service
	sweeper   *recovery.Sweeper
	clientID  string
	// receiverURL answers every webhook with status.
	receiverURL string
	status      atomic.Int32
	received    atomic.Int32 // webhooks it got
}

func newWorld(t *testing.T, partitions int) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{rdb: redistest.Client(t), clk: testkit.NewClock(t0), queue: &fakeQueue{}}
	w.status.Store(http.StatusNoContent)
	receiver := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		w.received.Add(1)
		rw.WriteHeader(int(w.status.Load()))
	}))
	t.Cleanup(receiver.Close)
	var err error
	w.store, err = redisstore.New(ctx, w.rdb, redisstore.Options{Partitions: partitions, Retention: retention,
		RecoverAfter: recoverAfter, Now: w.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	w.clients = clients.NewService(w.store, clients.Options{Now: w.clk.Now})
	c, _, _, err := w.clients.Create(ctx, "tenant")
	if err != nil {
		t.Fatal(err)
	}
	w.clientID = c.ID
	policy := egress.Policy{AllowPrivate: true}
	w.deliverer = &deliverer{Dispatcher: webhooks.NewDispatcher(webhooks.DispatcherOptions{
		Store: w.store, Transport: policy.Transport(), Secrets: w.clients, Scheduler: w.queue, Replays: w.queue,
		Now: w.clk.Now, Timeout: 5 * time.Second,
		Policy: webhooks.RetryPolicy{Initial: time.Second, MaxInterval: time.Minute, MaxAttempts: 3, Jitter: -1},
	})}
	reg := jobs.NewRegistry()
	reg.Register("echo", jobs.Echo, time.Minute)
	// flaky fails its first processing attempt.
	reg.Register("flaky", jobs.ProcessorFunc(func(_ context.Context, in jobs.Input) (json.RawMessage, error) {
		if in.Attempt == 1 {
			return nil, errors.New("upstream hiccup")
		}
		return json.RawMessage(`"ok"`), nil
	}), time.Minute)
	w.jobs = jobs.NewService(jobs.ServiceOptions{Store: w.store, Registry: reg, URLs: egress.Checker{Policy: policy},
		Enqueuer: w.queue, Deliverer: w.deliverer, Now: w.clk.Now, MaxAttempts: 3, Lease: lease, Partitions: partitions,
		RetryDelay: func(int) time.Duration { return retryDelay }})
	w.sweeper = &recovery.Sweeper{Store: w.store, Clients: w.clients, Queue: w.queue, JobTimeout: jobTimeout,
		RecoverAfter: recoverAfter, ReplayGrace: replayGrace, Retention: retention, Now: w.clk.Now}
	w.receiverURL = receiver.URL
	return w
}

func (w *world) submit(t *testing.T, typ string) jobs.Job {
	t.Helper()
	j, _, err := w.jobs.Submit(context.Background(), w.clientID, jobs.Submission{Type: typ, Payload: json.RawMessage(`1`), CallbackURL: w.receiverURL})
	if err != nil {
		t.Fatalf("Submit(%s): %v", typ, err)
	}
	return j
}

// createIn stores a new ACCEPTED job in partition p, as Submit would.
func (w *world) createIn(t *testing.T, p int) jobs.Job {
	t.Helper()
	now := w.clk.Now()
	j := jobs.Job{ID: ids.NewIn(ids.Request, now, p), ClientID: w.clientID, Type: "echo", Status: jobs.StatusAccepted,
		Payload: json.RawMessage(`1`), CallbackURL: w.receiverURL, CreatedAt: now.Truncate(time.Millisecond), UpdatedAt: now}
	if _, _, err := w.store.CreateJob(context.Background(), j, nil); err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	return j
}

// popHint takes a job's hint off its ready list, as a worker that dies
// right after the pop does.
func (w *world) popHint(t *testing.T, id string) {
	t.Helper()
	got, err := w.store.NextReady(context.Background(), ids.Partition(id), time.Second)
	if err != nil || got != id {
		t.Fatalf("NextReady = %q, %v; want the hint of %s", got, err, id)
	}
}

// repair runs Repair on id's partition and returns what it asked of the
// queue.
func (w *world) repair(t *testing.T, id string) (recovery.Report, time.Time, []call) {
	t.Helper()
	w.queue.take()
	r, next, err := w.sweeper.Repair(context.Background(), ids.Partition(id))
	if err != nil {
		t.Fatalf("Repair at t0+%v: %v", w.clk.Now().Sub(t0), err)
	}
	return r, next, w.queue.take()
}

// indexKey is a key of partition tag (the layout is redisstore/doc.go's).
func indexKey(tag, suffix string) string { return "bmr:{" + tag + "}:" + suffix }

// deleteRecord removes a job's record, as its expiry does.
func (w *world) deleteRecord(t *testing.T, id string) {
	t.Helper()
	tag := w.store.Tags()[ids.Partition(id)]
	if n := w.rdb.Del(context.Background(), indexKey(tag, "r:"+ids.Body(id))).Val(); n != 1 {
		t.Fatalf("deleted %d keys for the record of %s, want 1 (the key layout changed?)", n, id)
	}
}

// scheduled is how many records partition p has on its recovery schedule.
func (w *world) scheduled(p int) int64 {
	return w.rdb.ZCard(context.Background(), indexKey(w.store.Tags()[p], "due")).Val()
}

func callsString(calls []call) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.String()
	}
	return out
}

// redisZ is a zset entry scored with a time in Unix ms.
func redisZ(at time.Time, member string) redis.Z {
	return redis.Z{Score: float64(at.UnixMilli()), Member: member}
}

package recovery_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/recovery"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/redis/go-redis/v9"
)

// lostQueue accepts work and loses it, like a crash right after a write;
// it records what the sweep asks for.
type lostQueue struct {
	mu       sync.Mutex
	jobs     []string
	attempts []string
	replays  []string
}

func (q *lostQueue) EnqueueJob(_ context.Context, id string, _ time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.jobs = append(q.jobs, id)
	return nil
}

func (q *lostQueue) ScheduleAttempt(_ context.Context, id string, n int, _ time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.attempts = append(q.attempts, id+"#"+itoa(n))
	return nil
}

func (q *lostQueue) StartReplay(_ context.Context, id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.replays = append(q.replays, id)
	return nil
}

func (q *lostQueue) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.jobs, q.attempts, q.replays = nil, nil, nil
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

type secrets struct{}

func (secrets) SigningSecrets(context.Context, string) ([]string, error) {
	return []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type world struct {
	rdb        *redis.Client
	clock      *clock
	queue      *lostQueue
	jobs       *jobs.Service
	jobStore   *jobs.Store
	deliveries *webhooks.Store
	dispatcher *webhooks.Dispatcher
	sweeper    *recovery.Sweeper
	clientID   string
	receiver   *httptest.Server
}

const grace = 2 * time.Minute

func newWorld(t *testing.T, status int) *world {
	t.Helper()
	w := &world{rdb: redistest.Client(t), clock: &clock{t: time.Now().UTC()}, queue: &lostQueue{}}
	w.receiver = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(status) }))
	t.Cleanup(w.receiver.Close)
	cl := clients.NewStore(w.rdb, w.clock.Now)
	c, _, _, err := cl.Create(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	w.clientID = c.ID
	w.deliveries = webhooks.NewStore(w.rdb, time.Hour)
	w.dispatcher = webhooks.NewDispatcher(webhooks.DispatcherOptions{
		Store: w.deliveries, Transport: egress.Policy{AllowPrivate: true}.Transport(), Secrets: secrets{},
		Scheduler: w.queue, Replays: w.queue, Now: w.clock.Now, Timeout: 5 * time.Second,
		Policy: webhooks.RetryPolicy{Initial: time.Second, MaxInterval: time.Minute, MaxAttempts: 2, Jitter: -1},
	})
	reg := jobs.NewRegistry()
	reg.Register("echo", jobs.Echo, time.Minute)
	reg.Register("flaky", jobs.ProcessorFunc(func(context.Context, jobs.Input) (json.RawMessage, error) {
		return nil, errors.New("upstream hiccup")
	}), time.Minute)
	w.jobStore = jobs.NewStore(w.rdb, time.Hour)
	w.jobs = jobs.NewService(jobs.ServiceOptions{Store: w.jobStore, Registry: reg, URLs: egress.Policy{AllowPrivate: true},
		Enqueuer: w.queue, Deliverer: w.dispatcher, Now: w.clock.Now, MaxAttempts: 3})
	w.sweeper = &recovery.Sweeper{Jobs: w.jobStore, Deliveries: w.deliveries, Clients: cl, Queue: w.queue,
		JobAge: 10 * time.Minute, JobTimeout: time.Minute, Grace: grace, Retention: time.Hour, Now: w.clock.Now}
	return w
}

func (w *world) submit(t *testing.T, typ string) jobs.Job {
	t.Helper()
	j, _, err := w.jobs.Submit(context.Background(), w.clientID, jobs.Submission{Type: typ, Payload: json.RawMessage(`1`), CallbackURL: w.receiver.URL})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (w *world) sweep(t *testing.T) recovery.Report {
	t.Helper()
	w.queue.reset()
	r, err := w.sweeper.Sweep(context.Background())
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	return r
}

// Each case leaves what a crash at one point would leave, checks that the
// sweep leaves it alone while asynq could still recover it, and repairs it
// after.
func TestSweepRepairsEachCrashPoint(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		status int                                 // receiver's answer
		crash  func(t *testing.T, w *world) string // leaves the state; returns what the sweep must re-enqueue
		wait   time.Duration
		check  func(q *lostQueue) []string
	}{
		{
			name: "job stored, its task lost before running", status: 204,
			crash: func(t *testing.T, w *world) string { return w.submit(t, "echo").ID },
			wait:  grace + time.Second, check: func(q *lostQueue) []string { return q.jobs },
		},
		{
			name: "job PROCESSING, its retry task lost", status: 204,
			crash: func(t *testing.T, w *world) string {
				j := w.submit(t, "flaky")
				if err := w.jobs.Run(ctx, j.ID); err == nil {
					t.Fatal("flaky job did not fail")
				}
				return j.ID
			},
			wait: 11 * time.Minute, check: func(q *lostQueue) []string { return q.jobs },
		},
		{
			name: "job finished and delivery created, first attempt never made", status: 204,
			crash: func(t *testing.T, w *world) string {
				m := webhooks.Message{ID: "msg_crash1", RequestID: "req_crash1", ClientID: w.clientID, EventType: "job.completed", URL: w.receiver.URL, Body: []byte(`{}`)}
				if _, err := w.deliveries.Create(ctx, m, w.clock.Now(), nil); err != nil {
					t.Fatal(err)
				}
				return "msg_crash1#1"
			},
			wait: grace + time.Second, check: func(q *lostQueue) []string { return q.attempts },
		},
		{
			name: "attempt recorded, its retry task lost", status: 500,
			crash: func(t *testing.T, w *world) string {
				j := w.submit(t, "echo")
				if err := w.jobs.Run(ctx, j.ID); err != nil {
					t.Fatal(err)
				}
				return jobs.DeliveryID(j.ID) + "#2"
			},
			wait: grace + 2*time.Second, check: func(q *lostQueue) []string { return q.attempts },
		},
		{
			name: "replay reopened, its task lost", status: 410,
			crash: func(t *testing.T, w *world) string {
				j := w.submit(t, "echo")
				_ = w.jobs.Run(ctx, j.ID) // 410: FAILED at once
				if _, err := w.dispatcher.Replay(ctx, jobs.DeliveryID(j.ID)); err != nil {
					t.Fatal(err)
				}
				return jobs.DeliveryID(j.ID) + "#2"
			},
			wait: grace + time.Second, check: func(q *lostQueue) []string { return q.attempts },
		},
		{
			name: "bulk replay started, its task lost", status: 410,
			crash: func(t *testing.T, w *world) string {
				j := w.submit(t, "echo")
				_ = w.jobs.Run(ctx, j.ID)
				r, err := w.dispatcher.StartBulkReplay(ctx, webhooks.Filter{Status: webhooks.StatusFailed}, false)
				if err != nil {
					t.Fatal(err)
				}
				return r.ID
			},
			wait: grace + time.Second, check: func(q *lostQueue) []string { return q.replays },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.status)
			want := tt.crash(t, w)
			w.sweep(t)
			if got := tt.check(w.queue); len(got) != 0 {
				t.Errorf("the sweep re-enqueued %v right after the crash; asynq may still be running it", got)
			}
			w.clock.Add(tt.wait)
			w.sweep(t)
			got := tt.check(w.queue)
			if len(got) != 1 || got[0] != want {
				t.Errorf("after %v the sweep re-enqueued %v, want [%s]", tt.wait, got, want)
			}
		})
	}
}

func TestSweepLeavesFinishedWorkAlone(t *testing.T) {
	w := newWorld(t, 204)
	j := w.submit(t, "echo")
	if err := w.jobs.Run(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	w.clock.Add(time.Hour - time.Minute)
	if r := w.sweep(t); r.JobsRequeued+r.DeliveriesRescheduled+r.ReplaysRestarted != 0 {
		t.Errorf("sweep of finished work: %+v, want nothing re-enqueued", r)
	}
}

func TestSweepTrimsExpiredIndexEntries(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 204)
	j := w.submit(t, "echo")
	if err := w.jobs.Run(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	// Retention passes: Redis expires the records (simulated by deleting them).
	w.rdb.Del(ctx, "bmr:job:"+j.ID, "bmr:dlv:"+jobs.DeliveryID(j.ID))
	w.clock.Add(2 * time.Hour)
	r := w.sweep(t)
	if r.JobEntriesTrimmed == 0 || r.DeliveryEntriesTrimmed == 0 {
		t.Errorf("sweep after retention: %+v, want index entries trimmed", r)
	}
	for _, key := range []string{"bmr:job:idx", "bmr:dlv:idx", "bmr:job:idx:c:" + w.clientID, "bmr:dlv:idx:s:DELIVERED"} {
		if n := w.rdb.ZCard(ctx, key).Val(); n != 0 {
			t.Errorf("%s still holds %d entries", key, n)
		}
	}
}

func TestStartStops(t *testing.T) {
	w := newWorld(t, 204)
	w.submit(t, "echo")
	w.clock.Add(time.Hour)
	stop := w.sweeper.Start(context.Background(), time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.queue.mu.Lock()
		n := len(w.queue.jobs)
		w.queue.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Start did not sweep at once")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
}

package metrics_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/metrics"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/redis/go-redis/v9"
)

// commands counts the commands a Redis client sends, pipelined or not.
type commands struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *commands) add(cmds ...redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cmd := range cmds {
		c.n[cmd.Name()]++
	}
}

// take returns the counts since the last take.
func (c *commands) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

func (c *commands) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.add(cmd); return next(ctx, cmd) }
}
func (c *commands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.add(cmds...); return next(ctx, cmds) }
}

func scrapeText(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// TestQueueCollectorReadsAtMostEvery10s: the queue figures come from the
// real queues (an asynq task pending in partition 0, a job waiting in
// partition 1's ready list), and however many scrape, concurrently or
// not, Redis is read once: asynq's Inspector through tasks.Stats, the
// ready lists by the collector, which reads them again only once its
// reading is 10 s old.
func TestQueueCollectorReadsAtMostEvery10s(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	store, err := redisstore.New(ctx, rdb, redisstore.Options{Partitions: 2, RecoverAfter: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tags := store.Tags()
	queue := tasks.NewQueue(rdb, tags, time.Second)
	t.Cleanup(func() { _ = queue.Close() })
	if err := queue.EnqueueJob(ctx, ids.NewIn(ids.Request, time.Now(), 0), 1, time.Time{}, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.CreateJob(ctx, newJob("echo", time.Now().UTC().Truncate(time.Millisecond), 1), nil); err != nil {
		t.Fatal(err)
	}

	cmds := &commands{n: map[string]int{}}
	rdb.AddHook(cmds)
	clock := testkit.NewClock(time.Now())
	m := metrics.New()
	if err := m.WatchQueues(metrics.QueueOptions{Stats: tasks.NewStats(rdb, tags, 0), ReadyLengths: store.ReadyLengths,
		Tags: tags, Now: clock.Now}); err != nil {
		t.Fatal(err)
	}
	h := m.Handler(nil)

	text := scrapeText(t, h)
	for _, want := range []string{
		`boomerang_queue_tasks{queue="` + tags[0] + `",state="pending"} 1`,
		`boomerang_queue_tasks{queue="` + tags[1] + `",state="pending"} 0`,
		`boomerang_queue_tasks{queue="maintenance",state="scheduled"} 0`,
		`boomerang_queue_tasks{queue="ready:` + tags[0] + `",state="pending"} 0`,
		`boomerang_queue_tasks{queue="ready:` + tags[1] + `",state="pending"} 1`,
		`boomerang_queue_latency_seconds{queue="` + tags[0] + `"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("first scrape lacks %s", want)
		}
	}
	if n := cmds.take(); n["llen"] != 2 || n["smembers"] != 1 {
		t.Fatalf("first scrape sent %v; want the Inspector's reading (one SMEMBERS of the queue set) and one LLEN per ready list", n)
	}

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { scrapeText(t, h) })
	}
	wg.Wait()
	clock.Advance(9 * time.Second)
	scrapeText(t, h)
	if n := cmds.take(); len(n) != 0 {
		t.Errorf("51 more scrapes within 10 s sent %v to Redis, want nothing", n)
	}

	clock.Advance(time.Second)
	scrapeText(t, h)
	if n := cmds.take(); n["llen"] != 2 || len(n) != 1 {
		// The Inspector's reading is tasks.Stats', on the real clock: still
		// fresh (its own test moves its clock).
		t.Errorf("a scrape 10 s later sent %v, want 2 llen only (the ready lists read again)", n)
	}
}

type fakeStats struct {
	states []tasks.QueueState
	err    error
}

func (f fakeStats) Queues(context.Context) ([]tasks.QueueState, time.Time, error) {
	return f.states, time.Now(), f.err
}

// TestQueueCollectorFailures: a failed reading of the ready lists serves
// the last good one and is not retried before 10 s; queues that cannot be
// read at all leave the rest of the scrape served.
func TestQueueCollectorFailures(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	calls, fail := 0, false
	ready := func(context.Context) ([]int64, error) {
		calls++
		if fail {
			return nil, errors.New("redis down")
		}
		return []int64{int64(calls)}, nil
	}
	m := metrics.New()
	if err := m.WatchQueues(metrics.QueueOptions{Stats: fakeStats{err: errors.New("inspector down")}, ReadyLengths: ready,
		Tags: []string{"p0"}, Now: clock.Now}); err != nil {
		t.Fatal(err)
	}
	logs := &testkit.SyncBuffer{}
	h := m.Handler(slog.New(slog.NewTextHandler(logs, nil)))
	for i, step := range []struct {
		advance   time.Duration
		fail      bool
		want      string
		wantCalls int
	}{
		{0, false, `boomerang_queue_tasks{queue="ready:p0",state="pending"} 1`, 1},
		{5 * time.Second, false, `boomerang_queue_tasks{queue="ready:p0",state="pending"} 1`, 1},
		{5 * time.Second, true, `boomerang_queue_tasks{queue="ready:p0",state="pending"} 1`, 2},  // failed: the last good one
		{5 * time.Second, false, `boomerang_queue_tasks{queue="ready:p0",state="pending"} 1`, 2}, // not retried within 10 s
		{5 * time.Second, false, `boomerang_queue_tasks{queue="ready:p0",state="pending"} 3`, 3},
	} {
		clock.Advance(step.advance)
		fail = step.fail
		text := scrapeText(t, h)
		if !strings.Contains(text, step.want) || calls != step.wantCalls {
			t.Errorf("step %d: %d readings, ready lists %q; want %d readings and %s", i, calls, readyLines(text), step.wantCalls, step.want)
		}
		if !strings.Contains(text, "go_goroutines") {
			t.Errorf("step %d: a queue reading that failed took the rest of the scrape with it", i)
		}
	}
	if !strings.Contains(logs.String(), "inspector down") {
		t.Errorf("the queues' failed reading was not logged; log:\n%s", logs)
	}
}

func readyLines(text string) []string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, `queue="ready:`) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// TestQueueCollectorRealTime: scraped every 50 ms for 12 s on the real
// clock, the queues are read twice: asynq's Inspector (one SMEMBERS of
// its queue set per reading) and the ready lists each at most once per
// 10 s.
func TestQueueCollectorRealTime(t *testing.T) {
	testkit.Long(t)
	ctx := context.Background()
	rdb := redistest.Client(t)
	store, err := redisstore.New(ctx, rdb, redisstore.Options{Partitions: 2, RecoverAfter: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cmds := &commands{n: map[string]int{}}
	rdb.AddHook(cmds)
	m := metrics.New()
	if err := m.WatchQueues(metrics.QueueOptions{Stats: tasks.NewStats(rdb, store.Tags(), 0), ReadyLengths: store.ReadyLengths,
		Tags: store.Tags()}); err != nil {
		t.Fatal(err)
	}
	h := m.Handler(nil)
	for end := time.Now().Add(12 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		scrapeText(t, h)
	}
	if n := cmds.take(); n["smembers"] != 2 || n["llen"] != 2*2 {
		t.Errorf("12 s of scrapes every 50 ms sent %v; want 2 readings: smembers 2, llen 4", n)
	}
}

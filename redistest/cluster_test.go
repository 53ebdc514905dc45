package redistest_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
)

// Keys with different hash tags spread over the masters; a script may touch
// several keys only if they share a slot.
func TestClusterHashTags(t *testing.T) {
	testkit.Long(t)
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	cl := c.Client(t)
	ctx := context.Background()

	const tags, perTag = 48, 10
	for i := range tags {
		for j := range perTag {
			if err := cl.Set(ctx, fmt.Sprintf("spread:{t%d}:%d", i, j), "x", 0).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
		}
	}
	perMaster, err := c.KeysPerMaster(ctx, "spread:*")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d keys under %d hash tags, keys per master: %v", tags*perTag, tags, perMaster)
	total := 0
	for addr, n := range perMaster {
		if n == 0 {
			t.Errorf("master %s got none of the %d tags", addr, tags)
		}
		total += n
	}
	if len(perMaster) != 3 || total != tags*perTag {
		t.Errorf("KeysPerMaster = %v: want 3 masters holding %d keys", perMaster, tags*perTag)
	}
	// All keys of one tag live on the master that serves the tag's slot.
	for i := range tags {
		tag := fmt.Sprintf("{t%d}", i)
		m, err := c.MasterFor(ctx, tag)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.KeysPerMaster(ctx, "spread:"+tag+":*")
		if err != nil {
			t.Fatal(err)
		}
		if got[m.Addr] != perTag {
			t.Errorf("keys of %s per master = %v, want all %d on %s", tag, got, perTag, m.Addr)
		}
	}

	const script = `redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return redis.call('GET', KEYS[2])`
	for _, tc := range []struct {
		keys    []string
		wantErr string
	}{
		{[]string{"lua:{user1}:a", "lua:{user1}:b"}, ""},
		{[]string{"lua:{user1}:a", "lua:{user2}:b"}, "CROSSSLOT"},
	} {
		got, err := cl.Eval(ctx, script, tc.keys, "v").Result()
		switch {
		case tc.wantErr == "" && (err != nil || got != "v"):
			t.Errorf("EVAL on %v = %v, %v; want v, no error", tc.keys, got, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("EVAL on %v = %v, %v; want a %s error", tc.keys, got, err, tc.wantErr)
		default:
			t.Logf("EVAL on %v: %v, %v", tc.keys, got, err)
		}
	}
}

// asynq runs on the cluster with 16 queues; each queue's keys share a hash
// tag, so each queue lives on one master.
func TestClusterAsynq(t *testing.T) {
	testkit.Long(t)
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	ctx := context.Background()
	opt := asynq.RedisClusterClientOpt{Addrs: c.Addrs()}
	const tasks, nQueues = 2000, 16

	queues := map[string]int{}
	onMaster := map[string][]string{}
	for i := range nQueues {
		q := fmt.Sprintf("q%02d", i)
		queues[q] = 1
		m, err := c.MasterFor(ctx, "asynq:{"+q+"}:pending")
		if err != nil {
			t.Fatal(err)
		}
		onMaster[m.Addr] = append(onMaster[m.Addr], q)
	}
	t.Logf("queues per master: %v", onMaster)

	before, err := c.CommandsPerMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	defer client.Close()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, nQueues)
	for i, q := range slices.Sorted(maps.Keys(queues)) {
		wg.Go(func() {
			for range tasks / nQueues {
				if _, err := client.Enqueue(asynq.NewTask("noop", nil), asynq.Queue(q)); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	enqueued := time.Since(start)
	for _, err := range errs {
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}

	var done atomic.Int64
	finished := make(chan struct{})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 20, Queues: queues, LogLevel: asynq.WarnLevel})
	start = time.Now()
	err = srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		if done.Add(1) == tasks {
			close(finished)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-finished:
	case <-time.After(2 * time.Minute):
		t.Fatalf("processed %d of %d tasks in 2 minutes", done.Load(), tasks)
	}
	processed := time.Since(start)
	srv.Shutdown()

	after, err := c.CommandsPerMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	share := map[string]string{}
	for addr, n := range after {
		total += n - before[addr]
	}
	for addr, n := range after {
		share[addr] = fmt.Sprintf("%d (%.0f%%)", n-before[addr], 100*float64(n-before[addr])/float64(total))
	}
	t.Logf("%d tasks over %d queues: enqueue %.0f tasks/s, process %.0f tasks/s; %.1f commands per task; commands per master %v",
		tasks, nQueues, tasks/enqueued.Seconds(), tasks/processed.Seconds(), float64(total)/tasks, share)
}

// With a replica per master, killing the master of a key while clients write
// it costs seconds of failed writes, then writes succeed on the promoted
// replica. How many seconds depends on the client: go-redis (v9.23) does not
// reload its slot map when a master refuses connections
// (redis/go-redis#3979), only every ClusterStateReloadInterval (60 s by
// default) or on MOVED, so a client with default options, like the one
// asynq.RedisClusterClientOpt makes, keeps writing to the dead master until
// then.
func TestClusterFailover(t *testing.T) {
	testkit.Long(t)
	if os.Getenv(redistest.ClusterEnv) != "" {
		t.Skipf("kills a master, so it needs a cluster of its own: unset %s", redistest.ClusterEnv)
	}
	c := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: 1})
	if n := len(c.Addrs()); n != 6 {
		t.Fatalf("%d nodes, want 6", n)
	}
	ctx := context.Background()
	master, err := c.MasterFor(ctx, "{counter}")
	if err != nil {
		t.Fatal(err)
	}
	reload1s := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: time.Second})
	defer reload1s.Close()
	writers := []*writer{
		{name: "go-redis defaults", key: "failover:{counter}:defaults", cl: c.Client(t)},
		{name: "ClusterStateReloadInterval 1s", key: "failover:{counter}:reload1s", cl: reload1s},
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Go(func() { w.run(wctx) })
	}
	defer func() { stop(); wg.Wait() }()

	waitFor := func(w *writer, n int64, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for w.ok.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d writes ok, want %d within %v (%d failed)", w.name, w.ok.Load(), n, timeout, w.failed.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, w := range writers {
		waitFor(w, 100, 10*time.Second)
	}

	killed := time.Now()
	c.KillMaster(t, master.Addr)
	c.WaitHealthy(t, 30*time.Second)
	healthy := time.Since(killed)
	now, err := c.MasterFor(ctx, "{counter}")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(master.Replicas, now.Addr) {
		t.Errorf("after the failover %s serves the key; want one of %s's replicas %v", now.Addr, master.Addr, master.Replicas)
	}
	t.Logf("SIGKILL of master %s: cluster healthy again after %v (node timeout 2s), its replica %s took over",
		master.Addr, healthy.Round(time.Millisecond), now.Addr)

	// 60 s: go-redis's default ClusterStateReloadInterval.
	for _, w := range writers {
		waitFor(w, w.ok.Load()+100, 75*time.Second)
	}
	stop()
	wg.Wait()
	for _, w := range writers {
		counter, err := w.cl.Get(ctx, w.key).Int64()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: writes failed for %v; %d writes failed, %d acknowledged, counter %d (%d acknowledged writes lost)",
			w.name, time.Duration(w.longestOutage.Load()).Round(time.Millisecond),
			w.failed.Load(), w.ok.Load(), counter, max(0, w.ok.Load()-counter))
	}
}

// writer INCRs key until stopped, counting successes and failures and timing
// the longest run of failures.
type writer struct {
	name, key string
	cl        *redis.ClusterClient

	ok, failed, longestOutage atomic.Int64
}

func (w *writer) run(ctx context.Context) {
	var failingSince time.Time
	for ctx.Err() == nil {
		opCtx, cancel := context.WithTimeout(ctx, time.Second)
		err := w.cl.Incr(opCtx, w.key).Err()
		cancel()
		switch {
		case err == nil:
			w.ok.Add(1)
			if !failingSince.IsZero() {
				w.longestOutage.Store(max(w.longestOutage.Load(), int64(time.Since(failingSince))))
				failingSince = time.Time{}
			}
			time.Sleep(time.Millisecond) // a steady stream, not a flood
		case ctx.Err() == nil:
			w.failed.Add(1)
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

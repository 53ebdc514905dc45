package webhooks_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// createFailed makes n FAILED deliveries, each with one attempt answered
// 410, through the store's real path (CreateJob, ClaimJob, FinishJob,
// RecordAttempt), one call at a time from several goroutines.
//
// It used to pipeline the old store's scripts, and flaked ("script
// answered [0 ]"): go-redis re-sends a whole pipeline after a read timeout
// (3 s, easily reached by a starved -race process), and the scripts that
// had already run then found their record and refused. Here each write is
// one call on a client that never retries and never times out, so a slow
// moment only makes the setup slower.
func createFailed(t *testing.T, e *env, n int, clients []string) {
	t.Helper()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	workers := 8 * runtime.GOMAXPROCS(0)
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				d, err := e.finishJob(ctx, clients[i%len(clients)], "http://127.0.0.1:9/hook")
				if err == nil {
					err = e.record(ctx, d, 410)
				}
				if err != nil {
					errs <- fmt.Errorf("delivery %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating FAILED deliveries: %v", err)
	}
}

// noRetryClient is a client of its own database that neither retries nor
// times out.
func noRetryClient(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries, opt.ReadTimeout, opt.WriteTimeout = -1, -1, -1
	opt.PoolSize = 8*runtime.GOMAXPROCS(0) + 2
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestBulkReplayScale(t *testing.T) {
	testkit.Long(t)
	t.Parallel()
	const n = 100_000
	ctx := context.Background()
	sched := &countingScheduler{}
	e := newEnvOn(t, noRetryClient(t), withScheduler(sched), withPartitions(4), withTimeout(time.Second))

	setup := time.Now()
	createFailed(t, e, n, []string{"cli_a", "cli_b"})
	t.Logf("setup: %d FAILED deliveries in %v", n, time.Since(setup).Round(time.Millisecond))

	r, err := e.d.StartBulkReplay(ctx, webhooks.Filter{Status: webhooks.StatusFailed}, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Matched != n {
		t.Fatalf("StartBulkReplay(FAILED) Matched = %d, want %d", r.Matched, n)
	}
	run := time.Now()
	if err := e.d.RunBulkReplay(ctx, r.ID); err != nil {
		t.Fatalf("RunBulkReplay = %v", err)
	}
	elapsed := time.Since(run)
	got, err := e.d.GetReplay(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != webhooks.ReplayDone || got.Replayed != n || got.Skipped != 0 {
		t.Errorf("GetReplay = state %s, Replayed %d, Skipped %d, want done, %d, 0", got.State, got.Replayed, got.Skipped, n)
	}
	if c := sched.n.Load(); c != n {
		t.Errorf("Scheduler calls = %d, want %d", c, n)
	}
	for _, tt := range []struct {
		status webhooks.Status
		want   int64
	}{{webhooks.StatusFailed, 0}, {webhooks.StatusPending, n}} {
		if c, err := e.store.CountDeliveries(ctx, webhooks.Filter{Status: tt.status}); err != nil || c != tt.want {
			t.Errorf("CountDeliveries(%s) after the replay = %d, %v, want %d", tt.status, c, err, tt.want)
		}
	}
	t.Logf("RunBulkReplay of %d FAILED deliveries: %v (%.0f/s)", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
}

package webhooks

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// createFailed writes n FAILED deliveries (one failed attempt each) through
// the store's own Create and record, from several goroutines.
func createFailed(t testing.TB, s *Store, n int, clients []string, start time.Time) {
	t.Helper()
	ctx := context.Background()
	workers := 8 * runtime.GOMAXPROCS(0)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				created := start.Add(time.Duration(i) * time.Millisecond)
				m := Message{ID: fmt.Sprintf("msg_scale_%07d", i), RequestID: fmt.Sprintf("req_scale_%07d", i),
					ClientID: clients[i%len(clients)], EventType: "job.completed", URL: "http://127.0.0.1:9/hook",
					Body: []byte(`{"n":1}`)}
				d, err := s.Create(ctx, m, created)
				if err != nil {
					errs <- err
					return
				}
				a := Attempt{Number: 1, StartedAt: created, URL: m.URL, StatusCode: 410,
					ErrorClass: ClassStatus, Error: "receiver answered 410", Outcome: OutcomeFailed}
				if err := s.record(ctx, d, a, StatusFailed); err != nil {
					errs <- err
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

func TestBulkReplayScale(t *testing.T) {
	t.Parallel()
	const n = 100_000
	ctx := context.Background()
	e := newEnv(t)
	sched := &countingScheduler{}
	d := NewDispatcher(DispatcherOptions{Store: e.store, Secrets: e.secrets, Scheduler: sched, Replays: e.starter,
		Policy: testPolicy(), Timeout: time.Second, Now: e.clock.Now})

	setup := time.Now()
	createFailed(t, e.store, n, []string{"cl_a", "cl_b"}, e.clock.Now().Add(-time.Hour))
	t.Logf("setup: %d FAILED deliveries in %v", n, time.Since(setup).Round(time.Millisecond))

	r, err := d.StartBulkReplay(ctx, Filter{Status: StatusFailed}, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Matched != n {
		t.Fatalf("StartBulkReplay(FAILED) Matched = %d, want %d", r.Matched, n)
	}
	run := time.Now()
	if err := d.RunBulkReplay(ctx, r.ID); err != nil {
		t.Fatalf("RunBulkReplay = %v", err)
	}
	elapsed := time.Since(run)
	got, err := d.GetReplay(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != ReplayDone || got.Replayed != n || got.Skipped != 0 {
		t.Errorf("GetReplay = state %s, Replayed %d, Skipped %d, want done, %d, 0", got.State, got.Replayed, got.Skipped, n)
	}
	if c := sched.n.Load(); c != n {
		t.Errorf("Scheduler calls = %d, want %d", c, n)
	}
	for _, tt := range []struct {
		status Status
		want   int64
	}{{StatusFailed, 0}, {StatusPending, n}} {
		if c, err := e.store.Count(ctx, Filter{Status: tt.status}); err != nil || c != tt.want {
			t.Errorf("Count(%s) after replay = %d, %v, want %d", tt.status, c, err, tt.want)
		}
	}
	t.Logf("RunBulkReplay of %d FAILED deliveries: %v (%.0f/s)", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
}

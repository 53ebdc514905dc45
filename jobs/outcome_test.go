package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// Two Runs race on one job: the first's lease lapses while it processes
// (its process stalled), a second claims the job. Whichever returns first,
// only the run that holds the job records an outcome and delivers; the
// other is refused (ErrFinished inside Run) and leaves everything as it is.
func TestRunExactlyOneOutcome(t *testing.T) {
	tests := []struct {
		name       string
		staleFirst bool  // the stale run returns before the one holding the job
		staleErr   error // what the stale run's processor returns (nil: a result)
	}{
		{"stale run completes first", true, nil},
		{"stale run completes last", false, nil},
		{"stale run fails for good first", true, jobs.Permanent(errors.New("stale says no"))},
		{"stale run fails, retryable, first", true, errors.New("stale wants a retry")},
		{"stale run fails, retryable, last", false, errors.New("stale wants a retry")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			started := make(chan int, 2)
			release := map[int]chan struct{}{1: make(chan struct{}), 2: make(chan struct{})}
			p := &countingProcessor{fn: func(_ context.Context, in jobs.Input) (json.RawMessage, error) {
				started <- in.Attempt
				<-release[in.Attempt]
				if in.Attempt == 1 && tc.staleErr != nil {
					return nil, tc.staleErr
				}
				return json.RawMessage(fmt.Sprintf(`{"by":%d}`, in.Attempt)), nil
			}}
			// A lease of an hour: it is never renewed during the test, so
			// moving the clock past it is a stalled process.
			e := newEnv(t, func(r *jobs.Registry) { r.Register("work", p, time.Minute) }, withLease(time.Hour))
			j := e.submitType(t, "work", `1`)

			stale := runAsync(ctx, e.svc, j.ID)
			if got := receive(t, started, 1, "first run's start"); got[0] != 1 {
				t.Fatalf("first run processes attempt %d, want 1", got[0])
			}
			e.clock.Advance(2 * time.Hour)
			holder := runAsync(ctx, e.service(), j.ID)
			if got := receive(t, started, 1, "second run's start"); got[0] != 2 {
				t.Fatalf("second run processes attempt %d, want 2", got[0])
			}

			order := []int{2, 1}
			if tc.staleFirst {
				order = []int{1, 2}
			}
			for _, attempt := range order {
				close(release[attempt])
				done := holder
				if attempt == 1 {
					done = stale
				}
				if err := <-done; err != nil {
					t.Fatalf("Run of attempt %d: %v, want nil", attempt, err)
				}
			}

			got := e.job(t, j.ID)
			if got.Status != jobs.StatusCompleted || got.Attempts != 2 || string(got.Result) != `{"by":2}` || got.Error != nil || got.LastError != nil {
				t.Errorf("job = %s attempts %d result %s error %+v last error %+v; want COMPLETED by attempt 2 with {\"by\":2}",
					got.Status, got.Attempts, got.Result, got.Error, got.LastError)
			}
			first := e.del.First()
			want, _ := jobs.WebhookBody(got)
			if len(first) != 1 || !bytes.Equal(first[0].Payload, want) {
				t.Errorf("deliveries = %d, first %s; want exactly one, the holder's: %s", len(first), bodies(first), want)
			}
			if calls := e.enq.Calls(); len(calls) != 0 {
				t.Errorf("EnqueueJob calls %+v; want none (the stale run's retry is not its to make)", calls)
			}
			if n := p.Calls(); n != 2 {
				t.Errorf("processor called %d times, want 2", n)
			}
		})
	}
}

// Many Runs of one job at once (the ready queue's hint, a recovery task, a
// retried task): one claims and processes, every other is refused with
// the lease's end.
func TestRunConcurrentRunsProcessOnce(t *testing.T) {
	ctx := context.Background()
	const n = 8
	p := newBlocking()
	e := newEnv(t, func(r *jobs.Registry) { r.Register("work", p, time.Minute) }, withLease(time.Hour))
	j := e.submitType(t, "work", `1`)

	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- e.service().Run(ctx, j.ID)
		}()
	}
	refused := receive(t, errs, n-1, "refused runs")
	for _, err := range refused {
		var leased *jobs.LeasedError
		if !errors.As(err, &leased) || !leased.Until.Equal(t0.Add(time.Hour)) {
			t.Errorf("a concurrent Run returned %v, want a *LeasedError until %v", err, t0.Add(time.Hour))
		}
	}
	close(p.release)
	wg.Wait()
	if err := <-errs; err != nil {
		t.Errorf("the Run that claimed the job: %v", err)
	}
	if got := p.Calls(); got != 1 {
		t.Errorf("processor called %d times by %d concurrent Runs, want 1", got, n)
	}
	if got := e.job(t, j.ID); got.Status != jobs.StatusCompleted || got.Attempts != 1 {
		t.Errorf("job = %s attempts %d, want COMPLETED 1", got.Status, got.Attempts)
	}
	if got := len(e.del.First()); got != 1 {
		t.Errorf("%d deliveries, want 1", got)
	}
}

func bodies(ds []webhooks.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Payload)
	}
	return out
}

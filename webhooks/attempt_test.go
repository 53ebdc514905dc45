package webhooks_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/webhooks"
)

// With MaxAttempts 3 and a receiver that always fails, attempts 1..3 end
// FAILED; nothing asks for a 4th.
func TestMaxAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, withMaxAttempts(3))
	r := newReceiver(t, status(500))
	created := e.newDelivery(t, "cli_a", r.URL)
	start := e.clock.Now()
	e.first(t, created)
	for n := 2; n <= 3; n++ {
		e.clock.Set(*e.get(t, created.ID).NextAttemptAt)
		if err := e.d.Attempt(ctx, created.ID, n); err != nil {
			t.Fatalf("Attempt(%s, %d) = %v", created.ID, n, err)
		}
	}
	d := e.get(t, created.ID)
	if d.Status != webhooks.StatusFailed || d.Attempts != 3 || len(d.AttemptLog) != 3 {
		t.Fatalf("Status, Attempts, log = %s, %d, %d, want FAILED, 3, 3", d.Status, d.Attempts, len(d.AttemptLog))
	}
	p := testPolicy()
	wantOutcomes := []string{webhooks.OutcomeRetry, webhooks.OutcomeRetry, webhooks.OutcomeFailed}
	at := start
	var wantCalls []schedCall
	for i, a := range d.AttemptLog {
		if a.Number != i+1 || a.Outcome != wantOutcomes[i] {
			t.Errorf("attempt %d: Number, Outcome = %d, %q, want %d, %q", i+1, a.Number, a.Outcome, i+1, wantOutcomes[i])
		}
		if !a.StartedAt.Equal(at) {
			t.Errorf("attempt %d StartedAt = %v, want %v", i+1, a.StartedAt, at)
		}
		if i < 2 {
			at = at.Add(p.Delay(i + 1))
			wantCalls = append(wantCalls, schedCall{created.ID, i + 2, at})
			if a.NextAttemptAt == nil || !a.NextAttemptAt.Equal(at) {
				t.Errorf("attempt %d NextAttemptAt = %v, want %v", i+1, a.NextAttemptAt, at)
			}
		} else if a.NextAttemptAt != nil {
			t.Errorf("last attempt NextAttemptAt = %v, want nil", a.NextAttemptAt)
		}
	}
	if d.NextAttemptAt != nil {
		t.Errorf("FAILED delivery NextAttemptAt = %v, want nil", d.NextAttemptAt)
	}
	checkCalls(t, "three failed attempts", e.sched.Calls(), wantCalls)
	// A FAILED delivery: further Attempts do nothing.
	if err := e.d.Attempt(ctx, created.ID, 4); err != nil {
		t.Errorf("Attempt(%s, 4) on FAILED = %v, want nil", created.ID, err)
	}
	if n := len(r.Requests()); n != 3 {
		t.Errorf("receiver saw %d requests, want 3", n)
	}
	checkCalls(t, "Attempt on FAILED", e.sched.Calls(), wantCalls)
}

// After a crash the task of an attempt runs again (jobs.Service.Run calls
// Attempt(id, 1) for a job it finds finished). If the attempt was recorded,
// it makes no second request and only makes sure the next attempt is
// scheduled, at its recorded time; if it was never made, it makes it.
func TestAttemptAfterACrash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name         string
		answer       int
		firstAttempt bool          // whether attempt 1 was made before the "crash"
		later        time.Duration // how much later the task runs again
		n            int
		wantRequests int
		wantCall     bool // attempt 2 scheduled at the recorded time
	}{
		{"attempt 1 recorded, task again at once", 500, true, 0, 1, 1, true},
		{"attempt 1 recorded, task again an hour later", 500, true, time.Hour, 1, 1, true},
		{"an older attempt number", 500, true, 0, 0, 1, true},
		{"attempt 1 delivered", 200, true, 0, 1, 1, false},
		{"attempt 1 failed for good (410)", 410, true, 0, 1, 1, false},
		{"attempt 1 never made", 200, false, 0, 1, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := newReceiver(t, status(tt.answer))
			created := e.newDelivery(t, "cli_a", r.URL)
			if tt.firstAttempt {
				e.first(t, created)
			}
			before := e.get(t, created.ID)
			calls := len(e.sched.Calls())
			e.clock.Advance(tt.later)
			if err := e.d.Attempt(ctx, created.ID, tt.n); err != nil {
				t.Fatalf("Attempt(%s, %d) = %v, want nil", created.ID, tt.n, err)
			}
			if got := len(r.Requests()); got != tt.wantRequests {
				t.Errorf("receiver saw %d requests, want %d", got, tt.wantRequests)
			}
			var want []schedCall
			if tt.wantCall {
				want = []schedCall{{created.ID, 2, *before.NextAttemptAt}}
			}
			checkCalls(t, "the repeated task", e.sched.Calls()[calls:], want)
			if d := e.get(t, created.ID); d.Attempts != 1 {
				t.Errorf("Attempts = %d, want 1", d.Attempts)
			}
		})
	}
}

// A task that runs early by less than maxEarly (5 s) waits that out and
// sends; one that runs earlier fails with ErrEarly, so the queue runs it
// again later, and sends nothing.
func TestAttemptEarlyWaitsOrFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name     string
		early    time.Duration
		wantSend bool
	}{
		{"300ms early (whole-second rounding)", 300 * time.Millisecond, true},
		{"6s early", 6 * time.Second, false},
		{"an hour early", time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withPolicy(webhooks.RetryPolicy{Initial: 2 * time.Hour, MaxInterval: 10 * time.Hour, MaxAttempts: 5, Jitter: -1}))
			r := newReceiver(t, status(500))
			created := e.newDelivery(t, "cli_a", r.URL)
			e.first(t, created)
			next := *e.get(t, created.ID).NextAttemptAt
			e.clock.Set(next.Add(-tt.early))
			err := e.d.Attempt(ctx, created.ID, 2)
			wantRequests, wantAttempts := 1, 1
			if tt.wantSend {
				wantRequests, wantAttempts = 2, 2
				if err != nil {
					t.Fatalf("Attempt(%s, 2) %v early = %v, want nil", created.ID, tt.early, err)
				}
			} else {
				var de *webhooks.DeferError
				if !errors.Is(err, webhooks.ErrEarly) || !errors.As(err, &de) || !de.Until.Equal(next) {
					t.Fatalf("Attempt(%s, 2) %v early = %v, want ErrEarly until %v so the task runs again", created.ID, tt.early, err, next)
				}
			}
			if got := len(r.Requests()); got != wantRequests {
				t.Errorf("receiver saw %d requests, want %d", got, wantRequests)
			}
			if d := e.get(t, created.ID); d.Attempts != wantAttempts || d.DeferredReason != "" {
				t.Errorf("Attempts, DeferredReason = %d, %q, want %d, none (an early task is not a deferral)", d.Attempts, d.DeferredReason, wantAttempts)
			}
		})
	}
}

// A cancelled context stops the wait of a slightly early task.
func TestAttemptSlightlyEarlyCancelled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	r := newReceiver(t, status(500), status(200))
	created := e.newDelivery(t, "cli_a", r.URL)
	e.first(t, created)
	e.clock.Set(e.get(t, created.ID).NextAttemptAt.Add(-50 * time.Millisecond))

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := e.d.Attempt(cctx, created.ID, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("Attempt(%s, 2) 50ms early with a cancelled context = %v, want context.Canceled", created.ID, err)
	}
	if n := len(r.Requests()); n != 1 {
		t.Fatalf("receiver saw %d requests, want 1", n)
	}
	if err := e.d.Attempt(ctx, created.ID, 2); err != nil {
		t.Fatalf("Attempt(%s, 2) 50ms early = %v, want nil", created.ID, err)
	}
	if d := e.get(t, created.ID); d.Status != webhooks.StatusDelivered || d.Attempts != 2 {
		t.Errorf("Status, Attempts = %s, %d, want DELIVERED, 2", d.Status, d.Attempts)
	}
}

func TestAttemptOnFinishedDoesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, code := range []int{http.StatusOK, http.StatusGone} {
		e := newEnv(t)
		r := newReceiver(t, status(code))
		created := e.newDelivery(t, "cli_a", r.URL)
		e.first(t, created)
		want := e.get(t, created.ID)
		for _, n := range []int{1, 2, 5} {
			if err := e.d.Attempt(ctx, created.ID, n); err != nil {
				t.Errorf("Attempt(%s, %d) on %s = %v, want nil", created.ID, n, want.Status, err)
			}
		}
		if got := len(r.Requests()); got != 1 {
			t.Errorf("%s: receiver saw %d requests, want 1", want.Status, got)
		}
		checkCalls(t, "Attempt on "+string(want.Status), e.sched.Calls(), nil)
		if d := e.get(t, created.ID); d.Status != want.Status || d.Attempts != 1 {
			t.Errorf("Status, Attempts = %s, %d, want %s, 1", d.Status, d.Attempts, want.Status)
		}
	}
}

// Two runs of the same attempt from the same delivery value (say, a task
// redelivered while the first run still works): both send, but only one is
// recorded; the loser neither fails nor schedules.
func TestAttemptRaceLoserRecordsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := newReceiver(t, status(500))
	created := e.newDelivery(t, "cli_a", r.URL)
	e.first(t, created)
	e.clock.Advance(time.Second) // the second run at another time: not a repeat of the first's write
	e.first(t, created)
	d := e.get(t, created.ID)
	if d.Attempts != 1 || len(d.AttemptLog) != 1 {
		t.Errorf("Attempts, log = %d, %d, want 1, 1", d.Attempts, len(d.AttemptLog))
	}
	checkCalls(t, "two runs of attempt 1", e.sched.Calls(), []schedCall{{created.ID, 2, *d.NextAttemptAt}})
}

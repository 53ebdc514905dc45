package webhooks_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/webhooks"
)

// TestRetryNow: after its receiver is fixed, a PENDING delivery is
// delivered at once, and the task of its scheduled attempt, when it runs
// later, neither sends it again nor counts an attempt.
func TestRetryNow(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	rcv := newReceiver(t, status(http.StatusInternalServerError))
	d := e.newDelivery(t, "cli_a", rcv.URL)
	e.first(t, d)
	if got := e.get(t, d.ID); got.Status != webhooks.StatusPending || got.Attempts != 1 {
		t.Fatalf("after a 500: %s with %d attempts, want PENDING with 1", got.Status, got.Attempts)
	}

	rcv.SetHandlers(status(http.StatusNoContent)) // the receiver is fixed
	e.clock.Advance(time.Second)                  // the retry is due in 5 s
	got, err := e.d.RetryNow(ctx, d.ID)
	if err != nil {
		t.Fatalf("RetryNow(%s) = %v, want nil", d.ID, err)
	}
	if got.Status != webhooks.StatusDelivered || got.Attempts != 2 || len(got.AttemptLog) != 2 ||
		!got.AttemptLog[1].StartedAt.Equal(e.clock.Now()) {
		t.Errorf("RetryNow answered %s, %d attempts (log %d); want DELIVERED, 2 attempts, the second at %v",
			got.Status, got.Attempts, len(got.AttemptLog), e.clock.Now())
	}
	if n := len(rcv.Requests()); n != 2 {
		t.Errorf("receiver got %d requests, want 2", n)
	}

	// The scheduled attempt's task comes when it was due.
	e.clock.Advance(5 * time.Second)
	if err := e.d.Attempt(ctx, d.ID, 2); err != nil {
		t.Fatalf("the scheduled task Attempt(%s, 2) = %v, want nil", d.ID, err)
	}
	if n := len(rcv.Requests()); n != 2 {
		t.Errorf("after the scheduled task: receiver got %d requests, want still 2", n)
	}
	if after := e.get(t, d.ID); after.Status != webhooks.StatusDelivered || after.Attempts != 2 {
		t.Errorf("after the scheduled task: %s with %d attempts, want DELIVERED with 2", after.Status, after.Attempts)
	}
}

// TestRetryNowScheduleContinues: a retry-now that fails again counts as an
// attempt, and the next wait follows the policy from it (5 s after the
// first, 15 s after the second with testPolicy).
func TestRetryNowScheduleContinues(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	rcv := newReceiver(t, status(http.StatusServiceUnavailable))
	d := e.newDelivery(t, "cli_a", rcv.URL)
	e.first(t, d)
	e.clock.Advance(2 * time.Second)
	now := e.clock.Now()
	got, err := e.d.RetryNow(ctx, d.ID)
	if err != nil {
		t.Fatalf("RetryNow = %v", err)
	}
	want := now.Add(15 * time.Second)
	if got.Status != webhooks.StatusPending || got.Attempts != 2 || got.NextAttemptAt == nil || !got.NextAttemptAt.Equal(want) {
		t.Errorf("RetryNow answered %s, %d attempts, next %v; want PENDING, 2, next %v", got.Status, got.Attempts, got.NextAttemptAt, want)
	}
	checkCalls(t, "after the retry-now", e.sched.CallsFor(d.ID), []schedCall{{d.ID, 2, now.Add(3 * time.Second)}, {d.ID, 3, want}})

	// The old task of attempt 2 makes nothing, and only makes sure
	// attempt 3 keeps its time.
	if err := e.d.Attempt(ctx, d.ID, 2); err != nil {
		t.Fatalf("Attempt(%s, 2) = %v", d.ID, err)
	}
	if n := len(rcv.Requests()); n != 2 {
		t.Errorf("receiver got %d requests, want 2", n)
	}
	calls := e.sched.CallsFor(d.ID)
	if last := calls[len(calls)-1]; !last.equal(schedCall{d.ID, 3, want}) {
		t.Errorf("the old task scheduled %v, want attempt 3 at %v", last, want)
	}
}

// TestRetryNowRacesTheScheduledTask: the retry-now and the scheduled task
// both send (at least once), and the attempt is counted once.
func TestRetryNowRacesTheScheduledTask(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	rcv := newReceiver(t, status(http.StatusInternalServerError))
	d := e.newDelivery(t, "cli_a", rcv.URL)
	e.first(t, d)
	release := make(chan struct{})
	rcv.SetHandlers(status(http.StatusInternalServerError), hold(release, http.StatusOK))
	e.clock.Advance(5 * time.Second) // the task's attempt is due

	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); _, errs[0] = e.d.RetryNow(ctx, d.ID) }()
	go func() { defer wg.Done(); errs[1] = e.d.Attempt(ctx, d.ID, 2) }()
	waitUntil(t, "both attempts at the receiver", func() bool { return len(rcv.Requests()) == 3 })
	close(release)
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("RetryNow = %v, Attempt = %v; want nil, nil", errs[0], errs[1])
	}
	got := e.get(t, d.ID)
	if got.Status != webhooks.StatusDelivered || got.Attempts != 2 || len(got.AttemptLog) != 2 {
		t.Errorf("after both: %s with %d attempts (log %d), want DELIVERED with 2 (2)", got.Status, got.Attempts, len(got.AttemptLog))
	}
}

// TestRetryNowNotPending: only a PENDING delivery can be retried now; the
// error names the status.
func TestRetryNowNotPending(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	tests := []struct {
		code int
		want webhooks.Status
	}{
		{http.StatusOK, webhooks.StatusDelivered},
		{http.StatusGone, webhooks.StatusFailed},
	}
	for _, tc := range tests {
		rcv := newReceiver(t, status(tc.code))
		d := e.newDelivery(t, "cli_a", rcv.URL)
		e.first(t, d)
		_, err := e.d.RetryNow(ctx, d.ID)
		var np *webhooks.NotPendingError
		if !errors.As(err, &np) || np.Status != tc.want {
			t.Errorf("RetryNow of a delivery answered %d = %v, want NotPendingError{%s}", tc.code, err, tc.want)
		}
		if n := len(rcv.Requests()); n != 1 {
			t.Errorf("receiver answering %d got %d requests, want 1", tc.code, n)
		}
	}
	if _, err := e.d.RetryNow(ctx, "msg_0N0PE000000000000000000000"); !errors.Is(err, webhooks.ErrNotFound) {
		t.Errorf("RetryNow(unknown) = %v, want ErrNotFound", err)
	}
}

// TestRetryNowAll: every PENDING delivery of the client (and none other)
// is moved to now and handed to the runner; a dry run only counts.
func TestRetryNowAll(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, withPartitions(2))
	broken := newReceiver(t, status(http.StatusBadGateway))
	fine := newReceiver(t, status(http.StatusOK))
	var pendingA []webhooks.Delivery
	for range 3 {
		d := e.newDelivery(t, "cli_a", broken.URL)
		e.first(t, d)
		pendingA = append(pendingA, d)
	}
	other := e.newDelivery(t, "cli_b", broken.URL)
	e.first(t, other)
	done := e.newDelivery(t, "cli_a", fine.URL)
	e.first(t, done)

	dry, err := e.d.RetryNowAll(ctx, webhooks.Filter{ClientID: "cli_a"}, true)
	if want := (webhooks.RetryNowResult{DryRun: true, Matched: 3}); err != nil || dry != want {
		t.Errorf("RetryNowAll dry run = %+v, %v; want %+v", dry, err, want)
	}
	for _, d := range pendingA {
		if calls := e.sched.CallsFor(d.ID); len(calls) != 1 {
			t.Errorf("after a dry run, %s has Scheduler calls %v, want only its first retry", d.ID, calls)
		}
	}

	e.clock.Advance(time.Second)
	now := e.clock.Now()
	res, err := e.d.RetryNowAll(ctx, webhooks.Filter{ClientID: "cli_a", Status: webhooks.StatusFailed}, false)
	if want := (webhooks.RetryNowResult{Matched: 3, Retried: 3}); err != nil || res != want {
		t.Errorf("RetryNowAll = %+v, %v; want %+v (the status asked for is ignored)", res, err, want)
	}
	for _, d := range pendingA {
		calls := e.sched.CallsFor(d.ID)
		if last := calls[len(calls)-1]; !last.equal(schedCall{d.ID, 2, time.Time{}}) {
			t.Errorf("%s: last Scheduler call %v, want RunAttemptNow of attempt 2", d.ID, last)
		}
		if got := e.get(t, d.ID); got.NextAttemptAt == nil || !got.NextAttemptAt.Equal(now) || got.Attempts != 1 {
			t.Errorf("%s after RetryNowAll: next attempt %v, %d attempts; want %v, 1", d.ID, got.NextAttemptAt, got.Attempts, now)
		}
	}
	if got := e.get(t, other.ID); got.NextAttemptAt == nil || got.NextAttemptAt.Equal(now) {
		t.Errorf("another client's delivery moved to %v", got.NextAttemptAt)
	}
}

// TestRetryNowDeferred: when this process's circuit for the endpoint is
// open, RetryNow sends nothing itself and hands the attempt, due now, to
// the workers, whose gate decides.
func TestRetryNowDeferred(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, withGate(10, 1, time.Hour)) // one failure opens the circuit for an hour
	rcv := newReceiver(t, status(http.StatusInternalServerError))
	d := e.newDelivery(t, "cli_a", rcv.URL)
	e.first(t, d)
	e.clock.Advance(time.Second)
	now := e.clock.Now()
	got, err := e.d.RetryNow(ctx, d.ID)
	if err != nil {
		t.Fatalf("RetryNow = %v, want nil", err)
	}
	if got.Status != webhooks.StatusPending || got.Attempts != 1 || got.NextAttemptAt == nil || !got.NextAttemptAt.Equal(now) || got.DeferredReason != "" {
		t.Errorf("RetryNow behind an open circuit answered %s, %d attempts, next %v, deferred %q; want PENDING, 1, %v, none",
			got.Status, got.Attempts, got.NextAttemptAt, got.DeferredReason, now)
	}
	if n := len(rcv.Requests()); n != 1 {
		t.Errorf("receiver got %d requests, want 1 (none through the open circuit)", n)
	}
	calls := e.sched.CallsFor(d.ID)
	if last := calls[len(calls)-1]; !last.equal(schedCall{d.ID, 2, time.Time{}}) {
		t.Errorf("last Scheduler call %v, want RunAttemptNow of attempt 2", last)
	}
}

// TestRetryNowAfterWaitingForTheCircuit: an attempt that a worker already
// deferred once for an open circuit would, at its next run, fail without a
// request. An operator's retry-now behind the same open circuit must not
// spend it so: it is handed to the workers, with no attempt recorded.
func TestRetryNowAfterWaitingForTheCircuit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, withGate(10, 1, time.Hour))
	rcv := newReceiver(t, status(http.StatusInternalServerError))
	d := e.newDelivery(t, "cli_a", rcv.URL)
	e.first(t, d)
	e.clock.Advance(5 * time.Second) // attempt 2 is due; the circuit is open
	if err := e.d.Attempt(ctx, d.ID, 2); err == nil {
		t.Fatal("Attempt behind an open circuit = nil, want its deferral")
	}
	if got := e.get(t, d.ID); got.DeferredReason != webhooks.DeferEndpointOpen {
		t.Fatalf("after the worker's run: deferred %q, want %q", got.DeferredReason, webhooks.DeferEndpointOpen)
	}
	got, err := e.d.RetryNow(ctx, d.ID)
	if err != nil {
		t.Fatalf("RetryNow = %v, want nil", err)
	}
	if got.Attempts != 1 || got.Status != webhooks.StatusPending || got.NextAttemptAt == nil || !got.NextAttemptAt.Equal(e.clock.Now()) {
		t.Errorf("RetryNow behind the circuit the attempt already waited for: %s with %d attempts, next %v; want PENDING with 1, "+
			"next now (handed to the workers, not failed without a request)", got.Status, got.Attempts, got.NextAttemptAt)
	}
	calls := e.sched.CallsFor(d.ID)
	if last := calls[len(calls)-1]; !last.equal(schedCall{d.ID, 2, time.Time{}}) {
		t.Errorf("last Scheduler call %v, want RunAttemptNow of attempt 2", last)
	}
}

// TestRetryNowOutlivesItsAsker: the attempt of a retry-now whose request
// is gone (its context cancelled) is still made and recorded, so that a
// webhook sent is never left unrecorded.
func TestRetryNowOutlivesItsAsker(t *testing.T) {
	e := newEnv(t)
	rcv := newReceiver(t, status(http.StatusInternalServerError), status(http.StatusNoContent))
	d := e.newDelivery(t, "cli_a", rcv.URL)
	e.first(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := e.d.RetryNow(ctx, d.ID)
	if err != nil {
		t.Fatalf("RetryNow with its asker gone = %v, want nil", err)
	}
	if got.Status != webhooks.StatusDelivered || got.Attempts != 2 || len(rcv.Requests()) != 2 {
		t.Errorf("RetryNow with its asker gone: %s with %d attempts, receiver saw %d; want DELIVERED, 2, 2",
			got.Status, got.Attempts, len(rcv.Requests()))
	}
}

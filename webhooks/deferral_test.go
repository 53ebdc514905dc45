package webhooks_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/webhooks"
)

// Attempts refused by the gate move nextAttemptAt and use up no attempt:
// the first attempt waits for a host at its cap, a retry for an open
// circuit.
func TestDispatcherDefersWithoutCounting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, withGate(1, 2, time.Minute))
	release := make(chan struct{})
	r := newReceiver(t, hold(release, http.StatusInternalServerError), status(http.StatusInternalServerError))

	first, second := e.newDelivery(t, "cli_a", r.URL), e.newDelivery(t, "cli_a", r.URL)
	done := make(chan error, 1)
	go func() { done <- e.d.FirstAttempt(ctx, first) }()
	waitUntil(t, "the first request arrives", func() bool { return len(r.Requests()) == 1 })

	now := e.clock.Now()
	if err := e.d.FirstAttempt(ctx, second); err != nil {
		t.Fatalf("FirstAttempt while the host is at its cap = %v, want nil (deferred and scheduled)", err)
	}
	d := e.get(t, second.ID)
	until := now.Add(webhooks.BusyRetryForTest)
	if d.Attempts != 0 || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(until) || d.DeferredReason != webhooks.DeferHostBusy {
		t.Errorf("deferred delivery: attempts %d, next %v, reason %q, want 0, %v, %s", d.Attempts, d.NextAttemptAt, d.DeferredReason, until, webhooks.DeferHostBusy)
	}
	checkCalls(t, "the deferred first attempt", e.sched.CallsFor(second.ID), []schedCall{{second.ID, 1, until.Add(time.Second)}})
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// One more failure opens the endpoint's circuit (threshold 2).
	e.clock.Set(*e.get(t, first.ID).NextAttemptAt)
	if err := e.d.Attempt(ctx, first.ID, 2); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(*e.get(t, second.ID).NextAttemptAt)
	err := e.d.Attempt(ctx, second.ID, 1)
	var de *webhooks.DeferError
	if !errors.As(err, &de) || de.Reason != webhooks.DeferEndpointOpen || errors.Is(err, webhooks.ErrEarly) {
		t.Fatalf("Attempt with the circuit open = %v, want an endpoint-circuit-open DeferError", err)
	}
	if d := e.get(t, second.ID); d.Attempts != 0 || d.DeferredReason != webhooks.DeferEndpointOpen || !d.DeferredUntil.Equal(de.Until) {
		t.Errorf("after the circuit deferral: attempts %d, reason %q until %v, want 0, %s until %v",
			d.Attempts, d.DeferredReason, d.DeferredUntil, webhooks.DeferEndpointOpen, de.Until)
	}
	if n := len(r.Requests()); n != 2 {
		t.Errorf("receiver saw %d requests, want 2 (none for the deferred delivery)", n)
	}
}

// A failing endpoint defers only its own attempts, shows why on the
// delivery, and keeps its schedule: an attempt that already waited once
// for the circuit fails without a request instead of waiting again.
func TestDispatcherEndpointCircuit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, withGate(10, 2, time.Minute))
	release := make(chan struct{})
	var failing, healthy atomic.Int32
	probing := false
	var mu sync.Mutex
	r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/fail" || req.URL.Query().Get("ok") == "1" {
			healthy.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		failing.Add(1)
		mu.Lock()
		p := probing
		mu.Unlock()
		if p {
			hold(release, http.StatusInternalServerError)(w, req)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	})
	for i := 0; i < 2; i++ { // two 500s open the endpoint's circuit
		e.first(t, e.newDelivery(t, "cli_b", r.URL+"/fail"))
	}
	deferred := e.newDelivery(t, "cli_b", r.URL+"/fail")
	e.first(t, deferred)
	d := e.get(t, deferred.ID)
	until := e.clock.Now().Add(time.Minute)
	if d.Attempts != 0 || d.DeferredReason != webhooks.DeferEndpointOpen || d.DeferredUntil == nil || !d.DeferredUntil.Equal(until) ||
		!d.NextAttemptAt.Equal(until) {
		t.Errorf("deferred delivery: attempts %d, deferred %q until %v, next %v; want 0, endpoint-circuit-open until %v",
			d.Attempts, d.DeferredReason, d.DeferredUntil, d.NextAttemptAt, until)
	}

	// The same host, another path or another client: not deferred. The
	// same client and path with a query: the same endpoint, deferred.
	others := []struct {
		client, url string
		want        webhooks.Status
		wantReason  string
	}{
		{"cli_a", r.URL + "/ok", webhooks.StatusDelivered, ""},
		{"cli_b", r.URL + "/ok", webhooks.StatusDelivered, ""},
		{"cli_c", r.URL + "/fail?ok=1", webhooks.StatusDelivered, ""},
		{"cli_b", r.URL + "/fail?ok=1", webhooks.StatusPending, webhooks.DeferEndpointOpen},
	}
	for _, o := range others {
		other := e.newDelivery(t, o.client, o.url)
		e.first(t, other)
		if got := e.get(t, other.ID); got.Status != o.want || got.DeferredReason != o.wantReason {
			t.Errorf("%s to %s while cli_b's /fail is open: %s, deferred %q; want %s, deferred %q",
				o.client, o.url, got.Status, got.DeferredReason, o.want, o.wantReason)
		}
	}
	if n := healthy.Load(); n != 3 {
		t.Errorf("the healthy endpoints got %d requests, want 3", n)
	}

	// After the cool-down one attempt of the endpoint probes it; while the
	// probe is in flight, the deferred attempt comes back: it has waited
	// once, so it fails without a request and the retry policy schedules
	// the next attempt.
	e.clock.Set(until)
	mu.Lock()
	probing = true
	mu.Unlock()
	probe := e.newDelivery(t, "cli_b", r.URL+"/fail")
	probeDone := make(chan error, 1)
	go func() { probeDone <- e.d.FirstAttempt(ctx, probe) }()
	waitUntil(t, "the probe arrives", func() bool { return failing.Load() == 3 })
	if err := e.d.Attempt(ctx, deferred.ID, 1); err != nil {
		t.Fatalf("attempt after waiting once: %v, want it recorded", err)
	}
	close(release)
	if err := <-probeDone; err != nil {
		t.Fatalf("probe: %v", err)
	}
	d = e.get(t, deferred.ID)
	if n := failing.Load(); n != 3 {
		t.Errorf("the failing endpoint got %d requests, want 3 (the short-circuited attempt sends none)", n)
	}
	if len(d.AttemptLog) != 1 || d.AttemptLog[0].ErrorClass != webhooks.ClassCircuit || d.AttemptLog[0].Outcome != webhooks.OutcomeRetry ||
		d.AttemptLog[0].RequestHeaders != nil || d.DeferredReason != "" || d.Attempts != 1 {
		t.Fatalf("after the short circuit: attempts %d, deferred %q, log %+v; want one circuit-open attempt, outcome retry, no request headers",
			d.Attempts, d.DeferredReason, d.AttemptLog)
	}
	checkCalls(t, "the short-circuited attempt", e.sched.CallsFor(deferred.ID), []schedCall{
		{deferred.ID, 1, until.Add(time.Second)},
		{deferred.ID, 2, until.Add(testPolicy().Delay(1))},
	})
}

// newDeliveries makes n deliveries of cli_a to url.
func newDeliveries(t *testing.T, e *env, n int, url string) []webhooks.Delivery {
	t.Helper()
	ds := make([]webhooks.Delivery, n)
	for i := range ds {
		ds[i] = e.newDelivery(t, "cli_a", url)
	}
	return ds
}

// firstAttempts runs FirstAttempt of every delivery at once.
func firstAttempts(t *testing.T, e *env, ds []webhooks.Delivery) {
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.d.FirstAttempt(context.Background(), d); err != nil {
				t.Errorf("FirstAttempt(%s) = %v, want nil", d.ID, err)
			}
		}()
	}
	wg.Wait()
}

// A first attempt to a healthy host at its cap waits for a slot: with a
// cap of 1 and a receiver that answers in 20 ms, five at once all get
// theirs, one after the other, and none is deferred.
//
// The fifth waits for four answers, about 80 ms plus overheads, against
// the production budget of 100 ms: with eight -race runs of this package
// at once on 2 cores that missed in 5 runs of 16. So the budget here is
// long enough that only a lost wake-up defers; the time it took is logged.
func TestFirstAttemptWaitsForASlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withGate(1, 5, time.Minute))
	webhooks.SetBusyWaitForTest(e.d, 10*time.Second)
	var mu sync.Mutex
	inFlight, most := 0, 0
	r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	ds := newDeliveries(t, e, 5, r.URL+"/hook")
	start := time.Now()
	firstAttempts(t, e, ds)
	t.Logf("5 first attempts through 1 slot, 20 ms each: %v (the production wait for a slot is %v)", time.Since(start).Round(time.Millisecond), webhooks.BusyWaitForTest)
	for _, created := range ds {
		if d := e.get(t, created.ID); d.Status != webhooks.StatusDelivered || d.Attempts != 1 {
			t.Errorf("%s: Status, Attempts = %s, %d, want DELIVERED, 1 (no deferral)", created.ID, d.Status, d.Attempts)
		}
	}
	checkCalls(t, "five waits for one slot", e.sched.Calls(), nil)
	mu.Lock()
	defer mu.Unlock()
	if most != 1 {
		t.Errorf("the receiver had %d requests in flight at once, want 1 (the host's cap)", most)
	}
}

// When the slot is not freed within the wait (the production 100 ms), the
// others are deferred (host-concurrency or endpoint-concurrency) and
// scheduled, uncounted.
func TestFirstAttemptDefersWhenNoSlotFrees(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withGate(1, 5, time.Minute))
	release := make(chan struct{})
	r := newReceiver(t, hold(release, http.StatusNoContent))
	ds := newDeliveries(t, e, 5, r.URL+"/hook")
	now := e.clock.Now()
	done := make(chan struct{})
	go func() {
		firstAttempts(t, e, ds)
		close(done)
	}()
	// The receiver holds the first request until the four others have
	// been deferred and scheduled.
	waitUntil(t, "four first attempts deferred", func() bool { return len(e.sched.Calls()) == 4 })
	close(release)
	<-done
	delivered := 0
	for _, created := range ds {
		d := e.get(t, created.ID)
		switch {
		case d.Status == webhooks.StatusDelivered && d.Attempts == 1:
			delivered++
		case d.Status == webhooks.StatusPending && d.Attempts == 0 &&
			(d.DeferredReason == webhooks.DeferHostBusy || d.DeferredReason == webhooks.DeferEndpointBusy) &&
			d.DeferredUntil != nil && d.DeferredUntil.Equal(now.Add(webhooks.BusyRetryForTest)):
			checkCalls(t, "deferred "+created.ID, e.sched.CallsFor(created.ID),
				[]schedCall{{created.ID, 1, now.Add(webhooks.BusyRetryForTest + time.Second)}})
		default:
			t.Errorf("%s: Status %s, Attempts %d, deferred %q until %v; want DELIVERED once, or PENDING, 0, a concurrency reason, until %v",
				created.ID, d.Status, d.Attempts, d.DeferredReason, d.DeferredUntil, now.Add(webhooks.BusyRetryForTest))
		}
	}
	if delivered != 1 || len(r.Requests()) != 1 {
		t.Errorf("delivered %d, receiver saw %d requests; want 1 and 1", delivered, len(r.Requests()))
	}
}

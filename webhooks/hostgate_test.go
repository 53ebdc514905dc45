package webhooks

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestHostGateConcurrencyCap(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	g := newHostGate(2, 0, time.Minute, func() time.Time { return now })
	d1, _, _ := g.acquire("a:443")
	d2, _, _ := g.acquire("a:443")
	if d1 == nil || d2 == nil {
		t.Fatal("the first two attempts to a host were refused")
	}
	d3, until, reason := g.acquire("a:443")
	if d3 != nil || !until.Equal(now.Add(capRetry)) || reason == "" {
		t.Fatalf("third attempt: done=%v until=%v reason=%q, want refused until now+%v", d3 != nil, until, reason, capRetry)
	}
	if d, _, _ := g.acquire("b:443"); d == nil {
		t.Fatal("another host is capped by the first one's attempts")
	} else {
		d(false)
	}
	d1(false)
	if d, _, _ := g.acquire("a:443"); d == nil {
		t.Fatal("a slot freed by a finished attempt is not reused")
	}
}

func TestHostGateCapShrinksWithFailures(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for failures, want := range []int{8, 4, 2, 1, 1} {
		g := newHostGate(8, 0, time.Minute, func() time.Time { return now })
		g.hosts["h"] = &hostState{failures: failures}
		got := 0
		for {
			if d, _, _ := g.acquire("h"); d == nil {
				break
			}
			got++
		}
		if got != want {
			t.Errorf("after %d consecutive failures: %d admitted at once, want %d", failures, got, want)
		}
	}
}

func TestHostGateBreaker(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	g := newHostGate(100, 3, 30*time.Second, func() time.Time { return now })
	fail := func() {
		d, _, _ := g.acquire("bad")
		if d == nil {
			t.Fatal("refused while the circuit should be closed")
		}
		d(true)
	}
	fail()
	fail()
	if d, _, _ := g.acquire("bad"); d == nil {
		t.Fatal("opened before the threshold")
	} else {
		d(false) // a success resets the count
	}
	fail()
	fail()
	fail() // third consecutive failure opens it
	if d, until, _ := g.acquire("bad"); d != nil || !until.Equal(now.Add(30*time.Second)) {
		t.Fatalf("open circuit: admitted=%v until=%v, want refused until +30s", d != nil, until)
	}
	if d, _, _ := g.acquire("good"); d == nil {
		t.Fatal("a healthy host is refused because another one's circuit is open")
	}
	now = now.Add(31 * time.Second)
	probe, _, _ := g.acquire("bad")
	if probe == nil {
		t.Fatal("no probe after the cool-down")
	}
	if d, _, _ := g.acquire("bad"); d != nil {
		t.Fatal("a second attempt went through while the probe is in flight")
	}
	probe(true) // the probe fails: open again
	if d, until, _ := g.acquire("bad"); d != nil || !until.Equal(now.Add(30*time.Second)) {
		t.Fatalf("after a failed probe: admitted=%v until=%v", d != nil, until)
	}
	now = now.Add(31 * time.Second)
	probe, _, _ = g.acquire("bad")
	probe(false) // the probe succeeds: closed
	for i := 0; i < 5; i++ {
		if d, _, _ := g.acquire("bad"); d == nil {
			t.Fatalf("attempt %d after a successful probe refused", i)
		}
	}
}

func TestHostFailed(t *testing.T) {
	tests := []struct {
		a    Attempt
		want bool
	}{
		{Attempt{}, false},
		{Attempt{ErrorClass: ClassStatus, StatusCode: 404}, false},
		{Attempt{ErrorClass: ClassStatus, StatusCode: 410}, false},
		{Attempt{ErrorClass: ClassStatus, StatusCode: 429}, true},
		{Attempt{ErrorClass: ClassStatus, StatusCode: 503}, true},
		{Attempt{ErrorClass: ClassTimeout}, true},
		{Attempt{ErrorClass: ClassConnect}, true},
		{Attempt{ErrorClass: ClassDNS}, true},
		{Attempt{ErrorClass: ClassTLS}, true},
		{Attempt{ErrorClass: ClassRedirect, StatusCode: 302}, false},
		{Attempt{ErrorClass: ClassBlocked}, false},
	}
	for _, tt := range tests {
		if got := hostFailed(tt.a); got != tt.want {
			t.Errorf("hostFailed(%s %d) = %v, want %v", tt.a.ErrorClass, tt.a.StatusCode, got, tt.want)
		}
	}
}

// TestDispatcherDefersWithoutCounting: attempts refused by the gate come
// back as a DeferError, move nextAttemptAt, and use up no attempt.
func TestDispatcherDefersWithoutCounting(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.d.gate = newHostGate(1, 2, time.Minute, e.clock.Now)
	release := make(chan struct{})
	var once sync.Once
	r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
		<-release
		w.WriteHeader(http.StatusInternalServerError)
	})
	defer once.Do(func() { close(release) })

	first, second := msg("cl_a", r.URL), msg("cl_a", r.URL)
	done := make(chan error, 1)
	go func() { _, err := e.d.Deliver(ctx, first, nil); done <- err }()
	waitUntil(t, func() bool { return len(r.Requests()) == 1 })

	_, err := e.d.Deliver(ctx, second, nil)
	var de *DeferError
	if !errors.As(err, &de) || de.RetryAfter() < 0 {
		t.Fatalf("Deliver while the host is at its cap = %v, want a DeferError", err)
	}
	if d := e.get(t, second.ID); d.Attempts != 0 || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(de.Until) {
		t.Errorf("deferred delivery: attempts %d next %v, want 0 and %v", d.Attempts, d.NextAttemptAt, de.Until)
	}
	once.Do(func() { close(release) })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// One more failure opens the circuit (threshold 2).
	e.clock.Set(*e.get(t, first.ID).NextAttemptAt)
	if err := e.d.Attempt(ctx, first.ID, 2); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(*e.get(t, second.ID).NextAttemptAt)
	err = e.d.Attempt(ctx, second.ID, 1)
	if !errors.As(err, &de) {
		t.Fatalf("Attempt with the circuit open = %v, want a DeferError", err)
	}
	if d := e.get(t, second.ID); d.Attempts != 0 {
		t.Errorf("a deferred attempt was counted: attempts %d", d.Attempts)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

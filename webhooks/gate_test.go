package webhooks

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// gateClock is the settable time of the gate tests.
type gateClock struct{ t time.Time }

func (c *gateClock) now() time.Time { return c.t }

func newTestGate(limit, threshold int, cooldown time.Duration) (*gate, *gateClock) {
	c := &gateClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	return newGate(limit, threshold, cooldown, c.now), c
}

// admitAll acquires until refused and returns the tickets and the refusal.
func admitAll(g *gate, host, endpoint string) ([]*ticket, *DeferError) {
	var ts []*ticket
	for i := 0; i < 1000; i++ {
		t, def := g.acquire(host, endpoint)
		if def != nil {
			return ts, def
		}
		ts = append(ts, t)
	}
	return ts, nil
}

var (
	ok500   = outcome{failed: true, answered: true}
	okReply = outcome{answered: true}
	noReply = outcome{failed: true, hostLevel: true}
)

func TestGateHostCapAndEndpointShare(t *testing.T) {
	g, c := newTestGate(8, 0, time.Minute)
	// One endpoint gets all but a quarter of the host's cap…
	a, def := admitAll(g, "h:443", "cli_a https://h:443/a")
	if len(a) != 6 || def == nil || def.Reason != DeferEndpointBusy || !def.Until.Equal(c.t.Add(busyRetry)) {
		t.Fatalf("endpoint a: %d admitted, deferral %+v; want 6, then endpoint-concurrency for %v", len(a), def, busyRetry)
	}
	// …so another endpoint of the host still gets in, up to the host's cap.
	b, def := admitAll(g, "h:443", "cli_b https://h:443/b")
	if len(b) != 2 || def == nil || def.Reason != DeferHostBusy {
		t.Fatalf("endpoint b: %d admitted, deferral %+v; want 2, then host-concurrency", len(b), def)
	}
	// Another host is not affected at all.
	if _, def := g.acquire("other:443", "cli_a https://other:443/a"); def != nil {
		t.Fatalf("another host deferred: %v", def)
	}
	a[0].done(okReply)
	if _, def := g.acquire("h:443", "cli_b https://h:443/b"); def != nil {
		t.Fatalf("a freed slot is not reused: %v", def)
	}
}

func TestGateCapsShrinkOnlyWithTheirOwnFailures(t *testing.T) {
	tests := []struct {
		name                 string
		outcomes             []outcome // of earlier attempts of endpoint e on host h
		wantEndpoint, wantOn int       // then admitted at once: to e, and to another endpoint of h
	}{
		{"healthy", nil, 6, 8},
		{"one 5xx", []outcome{ok500}, 3, 8},
		{"two 5xx", []outcome{ok500, ok500}, 1, 8},
		{"many 5xx: the host is untouched", []outcome{ok500, ok500, ok500, ok500}, 1, 8},
		{"one host-level failure", []outcome{noReply}, 3, 4},
		{"two host-level failures", []outcome{noReply, noReply}, 1, 2},
		{"an answer resets the host", []outcome{noReply, noReply, ok500}, 1, 8},
		{"a success resets both", []outcome{noReply, ok500, okReply}, 6, 8},
	}
	for _, tc := range tests {
		g, _ := newTestGate(8, 0, time.Minute)
		for _, o := range tc.outcomes {
			tk, def := g.acquire("h", "c https://h/e")
			if def != nil {
				t.Fatalf("%s: refused while closed: %v", tc.name, def)
			}
			tk.done(o)
		}
		got, _ := admitAll(g, "h", "c https://h/e")
		for _, tk := range got {
			tk.done(outcome{}) // neutral: frees the slots
		}
		other, _ := admitAll(g, "h", "c https://h/other")
		hostSlots := len(other)
		if len(other) == 6 { // capped by its own share; ask a third endpoint for the rest
			more, _ := admitAll(g, "h", "d https://h/third")
			hostSlots += len(more)
		}
		if len(got) != tc.wantEndpoint || hostSlots != tc.wantOn {
			t.Errorf("%s: endpoint admitted %d at once, host %d; want %d and %d", tc.name, len(got), hostSlots, tc.wantEndpoint, tc.wantOn)
		}
	}
}

// One endpoint failing with 5xx opens its own circuit only: another
// endpoint of the same host, of the same or another client, goes on.
func TestGateEndpointBreakerIsolatesTheEndpoint(t *testing.T) {
	g, c := newTestGate(100, 3, 30*time.Second)
	const host, bad, good, otherClient = "hooks:443", "cli_b https://hooks:443/b", "cli_a https://hooks:443/a", "cli_c https://hooks:443/b"
	for i := 0; i < 3; i++ {
		tk, def := g.acquire(host, bad)
		if def != nil {
			t.Fatalf("failure %d: refused before the threshold: %v", i+1, def)
		}
		tk.done(ok500)
	}
	_, def := g.acquire(host, bad)
	if def == nil || def.Reason != DeferEndpointOpen || !def.Until.Equal(c.t.Add(30*time.Second)) {
		t.Fatalf("after 3 failures: %+v, want endpoint-circuit-open until +30s", def)
	}
	for _, ep := range []string{good, otherClient} {
		tk, def := g.acquire(host, ep)
		if def != nil {
			t.Fatalf("%s deferred because another endpoint failed: %v", ep, def)
		}
		tk.done(okReply)
	}
	// Half-open: one probe of the endpoint itself; the rest wait for it.
	c.t = c.t.Add(31 * time.Second)
	probe, def := g.acquire(host, bad)
	if def != nil || !probe.endProbe {
		t.Fatalf("after the cool-down: %v, want the endpoint's own probe", def)
	}
	if _, def := g.acquire(host, bad); def == nil || def.Reason != DeferEndpointOpen {
		t.Fatalf("second attempt while probing: %v, want endpoint-circuit-open", def)
	}
	probe.done(ok500)
	if _, def := g.acquire(host, bad); def == nil || !def.Until.Equal(c.t.Add(30*time.Second)) {
		t.Fatalf("after a failed probe: %v, want open again for 30s", def)
	}
	c.t = c.t.Add(31 * time.Second)
	probe, _ = g.acquire(host, bad)
	probe.done(okReply)
	if ts, _ := admitAll(g, host, bad); len(ts) != 75 {
		t.Fatalf("after a successful probe %d admitted at once, want the full share 75", len(ts))
	}
}

// Host-level failures (no answer) pause the host; any answer, from any
// endpoint, shows the host is up.
func TestGateHostBreaker(t *testing.T) {
	g, c := newTestGate(100, 3, 30*time.Second)
	const host = "down:443"
	eps := []string{"c1 https://down:443/1", "c2 https://down:443/2", "c3 https://down:443/3"}
	for i, ep := range eps { // three endpoints, one failure each: the host's count is 3
		tk, def := g.acquire(host, ep)
		if def != nil {
			t.Fatalf("attempt %d refused: %v", i, def)
		}
		tk.done(noReply)
	}
	_, def := g.acquire(host, "c4 https://down:443/4")
	if def == nil || def.Reason != DeferHostOpen || !def.Until.Equal(c.t.Add(30*time.Second)) {
		t.Fatalf("a fresh endpoint of a host that stopped answering: %+v, want host-circuit-open for 30s", def)
	}
	// Half-open: a failing endpoint must leave the probe to a healthy one
	// for one more cool-down…
	c.t = c.t.Add(31 * time.Second)
	if _, def := g.acquire(host, eps[0]); def == nil || def.Reason != DeferHostOpen {
		t.Fatalf("failing endpoint probing the host: %v, want it deferred", def)
	}
	// …which takes it, and its answer closes the host's circuit.
	probe, def := g.acquire(host, "c4 https://down:443/4")
	if def != nil || !probe.hostProbe {
		t.Fatalf("healthy endpoint after the cool-down: %v, want the host's probe", def)
	}
	probe.done(ok500) // any answer: the host is up, though this path fails
	if tk, def := g.acquire(host, "c5 https://down:443/5"); def != nil {
		t.Fatalf("after the host answered: %v", def)
	} else {
		tk.done(okReply)
	}
	// With only failing endpoints left, one of them probes after a second
	// cool-down.
	for _, ep := range eps {
		tk, def := g.acquire(host, ep)
		if def != nil {
			t.Fatalf("%s refused: %v", ep, def)
		}
		tk.done(noReply)
	}
	c.t = c.t.Add(61 * time.Second)
	if _, def := g.acquire(host, eps[1]); def != nil && def.Reason == DeferHostOpen {
		t.Fatalf("failing endpoint after two cool-downs: %v, want it to probe", def)
	}
}

func TestGateForgetsHealthyKeysAndBoundsTheRest(t *testing.T) {
	g, _ := newTestGate(10, 5, time.Minute)
	for i := 0; i < 1000; i++ {
		tk, _ := g.acquire(fmt.Sprintf("h%d", i), fmt.Sprintf("c https://h%d/", i))
		tk.done(okReply)
	}
	if g.hosts.len() != 0 || g.endpoints.len() != 0 {
		t.Errorf("after 1000 successful attempts the gate keeps %d hosts and %d endpoints, want none", g.hosts.len(), g.endpoints.len())
	}
	g.endpoints.max, g.hosts.max = 100, 100
	for i := 0; i < 1000; i++ {
		tk, _ := g.acquire("h", fmt.Sprintf("c https://h/%d", i))
		tk.done(ok500)
	}
	if n := g.endpoints.len(); n != 100 {
		t.Errorf("1000 failing endpoints: the gate keeps %d, want the bound 100", n)
	}
	if _, ok := g.endpoints.m["c https://h/999"]; !ok {
		t.Error("the most recent failing endpoint was evicted")
	}
	if _, ok := g.endpoints.m["c https://h/0"]; ok {
		t.Error("the least recent failing endpoint was kept")
	}
}

func TestOutcomeOf(t *testing.T) {
	tests := []struct {
		a    Attempt
		want outcome
	}{
		{Attempt{}, okReply},
		{Attempt{ErrorClass: ClassStatus, StatusCode: 404}, okReply},
		{Attempt{ErrorClass: ClassStatus, StatusCode: 410}, okReply},
		{Attempt{ErrorClass: ClassStatus, StatusCode: 429}, ok500},
		{Attempt{ErrorClass: ClassStatus, StatusCode: 503}, ok500},
		{Attempt{ErrorClass: ClassRedirect, StatusCode: 302}, okReply},
		{Attempt{ErrorClass: ClassTimeout}, noReply},
		{Attempt{ErrorClass: ClassConnect}, noReply},
		{Attempt{ErrorClass: ClassDNS}, noReply},
		{Attempt{ErrorClass: ClassTLS}, noReply},
		{Attempt{ErrorClass: ClassBlocked}, outcome{}},
		{Attempt{ErrorClass: ClassCircuit}, outcome{}},
	}
	for _, tt := range tests {
		if got := outcomeOf(tt.a); got != tt.want {
			t.Errorf("outcomeOf(%s %d) = %+v, want %+v", tt.a.ErrorClass, tt.a.StatusCode, got, tt.want)
		}
	}
}

func TestKeys(t *testing.T) {
	tests := []struct{ url, host, endpoint string }{
		{"https://hooks.example.com:443/a?x=1#f", "hooks.example.com:443", "cli https://hooks.example.com:443/a"},
		{"https://Hooks.Example.com/a", "hooks.example.com:443", "cli https://Hooks.Example.com/a"},
		{"http://127.0.0.1:8080/b", "127.0.0.1:8080", "cli http://127.0.0.1:8080/b"},
		{"http://[::1]/b", "[::1]:80", "cli http://[::1]/b"},
	}
	for _, tc := range tests {
		if h, e := hostOf(tc.url), endpointOf("cli", tc.url); h != tc.host || e != tc.endpoint {
			t.Errorf("keys of %s = %q, %q; want %q, %q", tc.url, h, e, tc.host, tc.endpoint)
		}
	}
}

// acquireWait: an attempt to a healthy host at its cap gets the slot freed
// while it waits; if none frees within the wait, it is deferred, and so it
// is at once if the endpoint failed lately or the context ended.
func TestGateAcquireWait(t *testing.T) {
	const host, ep = "h:443", "c https://h:443/e"
	tests := []struct {
		name       string
		wait       time.Duration
		failures   int  // earlier 5xx of the endpoint
		release    bool // the held slot is freed after acquireWait starts
		cancelled  bool
		wantTicket bool
		wantReason string
	}{
		{"healthy, the slot frees", time.Hour, 0, true, false, true, ""},
		{"healthy, the slot stays taken", busyWait, 0, false, false, false, DeferHostBusy},
		{"the endpoint failed lately: no wait", time.Hour, 1, false, false, false, DeferHostBusy},
		{"context ended", time.Hour, 0, false, true, false, DeferHostBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, _ := newTestGate(1, 5, time.Minute)
			g.wait = tt.wait
			for i := 0; i < tt.failures; i++ {
				tk, _ := g.acquire(host, ep)
				tk.done(ok500)
			}
			held, def := g.acquire(host, "other https://h:443/other")
			if def != nil {
				t.Fatalf("holding the host's only slot: %v", def)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelled {
				cancel()
			}
			type result struct {
				t   *ticket
				def *DeferError
			}
			got := make(chan result, 1)
			go func() {
				tk, def := g.acquireWait(ctx, host, ep)
				got <- result{tk, def}
			}()
			if tt.release {
				held.done(okReply)
			}
			var r result
			select {
			case r = <-got:
			case <-time.After(10 * time.Second):
				t.Fatalf("acquireWait (wait %v) still waiting after 10s; want it to return", tt.wait)
			}
			if (r.t != nil) != tt.wantTicket || (r.def == nil) != (tt.wantReason == "") || (r.def != nil && r.def.Reason != tt.wantReason) {
				t.Errorf("acquireWait = ticket %v, deferral %v; want ticket %v, reason %q", r.t != nil, r.def, tt.wantTicket, tt.wantReason)
			}
		})
	}
}

package webhooks

import (
	"container/list"
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Why an attempt was deferred: the values of Delivery.DeferredReason.
const (
	// DeferEndpointOpen: the endpoint's own circuit is open after
	// repeated failures of that endpoint.
	DeferEndpointOpen = "endpoint-circuit-open"
	// DeferHostOpen: the host's circuit is open after repeated failures
	// that say the whole host is unreachable (DNS, connect, TLS, timeouts).
	DeferHostOpen = "host-circuit-open"
	// DeferHostBusy: the host already has its cap of attempts in flight.
	DeferHostBusy = "host-concurrency"
	// DeferEndpointBusy: the endpoint already has its share of the host's
	// attempts in flight.
	DeferEndpointBusy = "endpoint-concurrency"
	// deferNotDue: the task ran before the attempt was due (not shown).
	deferNotDue = "not-due"
)

// circuitReason says whether a deferral was made by a circuit breaker.
func circuitReason(r string) bool { return r == DeferEndpointOpen || r == DeferHostOpen }

// DeferError asks for the same attempt to be made again at Until, without
// counting as a failure: the endpoint or the host is at its concurrency
// cap, a circuit is open, or the task ran before the attempt was due. tasks
// retries such a task after RetryAfter without using up a retry (asynq
// IsFailure).
type DeferError struct {
	Until  time.Time
	Reason string // one of the Defer* constants
	Detail string
}

func (e *DeferError) Error() string {
	return fmt.Sprintf("delivery attempt deferred until %s (%s): %s", e.Until.UTC().Format(time.RFC3339), e.Reason, e.Detail)
}

// RetryAfter is how long until the attempt should run again: a second
// past Until, because task queues keep whole seconds and could otherwise run
// it early, and an early run would sit in a worker waiting.
func (e *DeferError) RetryAfter() time.Duration { return max(0, time.Until(e.Until)) + time.Second }

// Unwrap makes an early run errors.Is(err, ErrEarly).
func (e *DeferError) Unwrap() error {
	if e.Reason == deferNotDue {
		return ErrEarly
	}
	return nil
}

// gate keeps one receiver from hurting the others, per worker process. It
// keeps two kinds of state:
//
//   - per endpoint (a client's callback URL without its query): a circuit
//     breaker that opens after threshold consecutive failures of that
//     endpoint (any failed answer or no answer) and defers only that
//     endpoint's attempts; its half-open probe is one of its own attempts.
//     An endpoint may hold at most its share of the host's slots, halved
//     with each of its consecutive failures, so it never takes them all.
//   - per host (host:port): at most limit attempts in flight, halved with
//     each consecutive host-level failure (DNS, connect, TLS, timeout), and
//     a breaker that opens after threshold of them. Any HTTP answer from
//     the host, on any endpoint, shows it is up and resets the count, so a
//     quick 5xx or 429 on one path never pauses or shrinks the host.
//
// Both maps keep only endpoints and hosts with news (in flight or
// failing), at most maxKeys of each, the least recently used evicted first.
type gate struct {
	mu        sync.Mutex
	waiters   map[string][]chan struct{} // by host: attempts waiting for a slot, oldest first
	hosts     *lru[hostState]
	endpoints *lru[endpointState]
	limit     int
	threshold int // 0 disables the breakers
	cooldown  time.Duration
	wait      time.Duration // busyWait; tests set it
	now       func() time.Time
}

type hostState struct {
	inFlight  int
	failures  int // consecutive host-level failures
	openUntil time.Time
	probing   bool
}

type endpointState struct {
	inFlight  int
	failures  int // consecutive failures of any kind
	openUntil time.Time
	probing   bool
}

// busyRetry is how soon an attempt deferred by a concurrency cap retries.
const busyRetry = time.Second

// maxGateKeys bounds the endpoints and hosts a gate remembers.
const maxGateKeys = 50_000

func newGate(limit, threshold int, cooldown time.Duration, now func() time.Time) *gate {
	if limit <= 0 {
		limit = 1 << 30
	}
	return &gate{hosts: newLRU[hostState](maxGateKeys), endpoints: newLRU[endpointState](maxGateKeys),
		limit: limit, threshold: threshold, cooldown: cooldown, wait: busyWait, now: now, waiters: map[string][]chan struct{}{}}
}

// endpointOf is the breaker key of a delivery: its client and its callback
// URL without query or fragment (URLs are canonical from submission).
func endpointOf(clientID, rawURL string) string {
	u := rawURL
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	return clientID + " " + u
}

// hostOf is the host key of a callback URL: its host and port.
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	host := strings.ToLower(u.Host)
	if u.Port() == "" { // stored before URLs were canonical
		switch u.Scheme {
		case "https":
			host += ":443"
		case "http":
			host += ":80"
		}
	}
	return host
}

// outcome is what an attempt says about its endpoint and its host.
type outcome struct {
	failed    bool // the endpoint failed (5xx, 429, no answer)
	hostLevel bool // the host gave no answer at all (DNS, connect, TLS, timeout)
	answered  bool // the host answered over HTTP, whatever the status
}

// outcomeOf classifies an attempt for the gate. A 4xx (but 429), a
// redirect or a refused destination says nothing about health.
func outcomeOf(a Attempt) outcome {
	switch a.ErrorClass {
	case "":
		return outcome{answered: true}
	case ClassBlocked, ClassCircuit:
		return outcome{}
	case ClassRedirect:
		return outcome{answered: true}
	case ClassStatus:
		return outcome{answered: true, failed: a.StatusCode >= 500 || a.StatusCode == 429}
	}
	return outcome{failed: true, hostLevel: true} // dns, connect, tls, timeout
}

// ticket is an admitted attempt; done must be called with its outcome.
type ticket struct {
	g                   *gate
	host, endpoint      string
	hostProbe, endProbe bool
}

// acquire asks to make an attempt of endpoint at host. It returns a ticket,
// or a deferral saying until when to wait and why.
func (g *gate) acquire(host, endpoint string) (*ticket, *DeferError) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.acquireLocked(host, endpoint)
}

func (g *gate) acquireLocked(host, endpoint string) (*ticket, *DeferError) {
	now := g.now()
	e := g.endpoints.get(endpoint)
	h := g.hosts.get(host)
	t := &ticket{g: g, host: host, endpoint: endpoint}
	if g.threshold > 0 && e.failures >= g.threshold {
		switch {
		case now.Before(e.openUntil):
			return nil, &DeferError{Until: e.openUntil, Reason: DeferEndpointOpen,
				Detail: fmt.Sprintf("the endpoint failed %d times in a row", e.failures)}
		case e.probing:
			return nil, &DeferError{Until: now.Add(g.probeWait()), Reason: DeferEndpointOpen,
				Detail: "a probe of the endpoint is in flight"}
		}
		t.endProbe = true
	}
	if g.threshold > 0 && h.failures >= g.threshold {
		switch {
		case now.Before(h.openUntil):
			return nil, &DeferError{Until: h.openUntil, Reason: DeferHostOpen,
				Detail: fmt.Sprintf("%s gave no answer %d times in a row", host, h.failures)}
		case h.probing:
			return nil, &DeferError{Until: now.Add(g.probeWait()), Reason: DeferHostOpen,
				Detail: "a probe of " + host + " is in flight"}
		case e.failures > 0 && now.Before(h.openUntil.Add(g.cooldown)):
			// A failing endpoint is a poor judge of its host: leave the
			// probe to a healthy endpoint for one more cooldown.
			return nil, &DeferError{Until: h.openUntil.Add(g.cooldown), Reason: DeferHostOpen,
				Detail: "the host's probe is left to an endpoint that is not failing"}
		}
		t.hostProbe = true
	}
	if h.inFlight >= g.hostLimit(h) {
		return nil, &DeferError{Until: now.Add(busyRetry), Reason: DeferHostBusy,
			Detail: fmt.Sprintf("%d attempts to %s already in flight", h.inFlight, host)}
	}
	if e.inFlight >= g.endpointLimit(e) {
		return nil, &DeferError{Until: now.Add(busyRetry), Reason: DeferEndpointBusy,
			Detail: fmt.Sprintf("%d attempts to this endpoint already in flight", e.inFlight)}
	}
	h.inFlight++
	e.inFlight++
	h.probing = h.probing || t.hostProbe
	e.probing = e.probing || t.endProbe
	return t, nil
}

func (g *gate) probeWait() time.Duration { return min(g.cooldown, 5*time.Second) }

// busyWait is how long an attempt to a healthy host or endpoint at its cap
// waits in its worker for a slot before it is deferred: a fast receiver
// frees one within milliseconds, and a deferral costs a task round trip
// and a second at least.
const busyWait = 100 * time.Millisecond

// acquireWait is acquire, waiting up to busyWait for a slot of a healthy
// host or endpoint at its cap. Circuits and failing receivers defer at once.
func (g *gate) acquireWait(ctx context.Context, host, endpoint string) (*ticket, *DeferError) {
	deadline := time.NewTimer(g.wait)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		t, def := g.acquireLocked(host, endpoint)
		if def == nil || (def.Reason != DeferHostBusy && def.Reason != DeferEndpointBusy) || !g.healthyLocked(host, endpoint) {
			g.mu.Unlock()
			return t, def
		}
		// Wait in line: a freed slot of the host wakes one waiter, not all.
		turn := make(chan struct{})
		g.waiters[host] = append(g.waiters[host], turn)
		g.mu.Unlock()
		select {
		case <-turn:
			continue
		case <-deadline.C:
		case <-ctx.Done():
		}
		g.leaveLine(host, turn)
		return nil, def
	}
}

// leaveLine takes a waiter out of its host's line; if a freed slot had
// just woken it, the slot goes to the next in line.
func (g *gate) leaveLine(host string, turn chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	line := g.waiters[host]
	for i, c := range line {
		if c == turn {
			g.waiters[host] = append(line[:i:i], line[i+1:]...)
			if len(g.waiters[host]) == 0 {
				delete(g.waiters, host)
			}
			return
		}
	}
	g.wakeLocked(host) // woken but leaving: pass the turn on
}

// wakeLocked wakes the next attempt waiting for a slot of host.
func (g *gate) wakeLocked(host string) {
	line := g.waiters[host]
	if len(line) == 0 {
		return
	}
	close(line[0])
	if len(line) == 1 {
		delete(g.waiters, host)
	} else {
		g.waiters[host] = line[1:]
	}
}

// healthy says whether neither the host nor the endpoint has failed lately.
func (g *gate) healthyLocked(host, endpoint string) bool {
	return g.hosts.get(host).failures == 0 && g.endpoints.get(endpoint).failures == 0
}

// hostLimit halves a host's cap with each consecutive host-level failure,
// so a host that stops answering ties up few workers even before its
// circuit opens.
func (g *gate) hostLimit(h *hostState) int { return max(1, g.limit>>min(h.failures, 30)) }

// endpointLimit is an endpoint's share of its host: all but a quarter of
// the host's cap, so other endpoints always have room, halved with each of
// its consecutive failures.
func (g *gate) endpointLimit(e *endpointState) int {
	share := g.limit - max(1, g.limit/4)
	return max(1, share>>min(e.failures, 30))
}

// done records an admitted attempt's outcome.
func (t *ticket) done(o outcome) {
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	e := g.endpoints.get(t.endpoint)
	h := g.hosts.get(t.host)
	e.inFlight = max(0, e.inFlight-1)
	h.inFlight = max(0, h.inFlight-1)
	g.wakeLocked(t.host)
	if t.endProbe {
		e.probing = false
	}
	if t.hostProbe {
		h.probing = false
	}
	switch {
	case o.failed:
		e.failures++
		if g.threshold > 0 && e.failures >= g.threshold {
			e.openUntil = now.Add(g.cooldown)
		}
	case o.answered:
		e.failures, e.openUntil = 0, time.Time{}
	}
	switch {
	case o.hostLevel:
		h.failures++
		if g.threshold > 0 && h.failures >= g.threshold {
			h.openUntil = now.Add(g.cooldown)
		}
	case o.answered:
		h.failures, h.openUntil = 0, time.Time{}
	}
	// Remember only what has news.
	if e.inFlight == 0 && e.failures == 0 {
		g.endpoints.remove(t.endpoint)
	}
	if h.inFlight == 0 && h.failures == 0 {
		g.hosts.remove(t.host)
	}
}

// lru is a map whose least recently used entries are evicted beyond max.
// An evicted entry forgets its failures and its attempts in flight; with
// tens of thousands of entries in between, that only lets an endpoint or a
// host start afresh.
type lru[T any] struct {
	max   int
	order *list.List // front: most recent; values are *lruEntry[T]
	m     map[string]*list.Element
}

type lruEntry[T any] struct {
	key string
	val T
}

func newLRU[T any](max int) *lru[T] {
	return &lru[T]{max: max, order: list.New(), m: map[string]*list.Element{}}
}

// get returns the entry of key, created if absent, as the most recent.
func (l *lru[T]) get(key string) *T {
	if el, ok := l.m[key]; ok {
		l.order.MoveToFront(el)
		return &el.Value.(*lruEntry[T]).val
	}
	for l.order.Len() >= l.max {
		l.remove(l.order.Back().Value.(*lruEntry[T]).key)
	}
	el := l.order.PushFront(&lruEntry[T]{key: key})
	l.m[key] = el
	return &el.Value.(*lruEntry[T]).val
}

func (l *lru[T]) remove(key string) {
	if el, ok := l.m[key]; ok {
		l.order.Remove(el)
		delete(l.m, key)
	}
}

func (l *lru[T]) len() int { return len(l.m) }

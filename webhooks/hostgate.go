package webhooks

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DeferError asks for the same attempt to be made again at Until, without
// counting as a failure: the host is at its concurrency cap, its circuit is
// open, or the task ran before the attempt was due. tasks retries such a
// task after RetryAfter without using up a retry (asynq IsFailure).
type DeferError struct {
	Until  time.Time
	Reason string
	early  bool
}

func (e *DeferError) Error() string {
	return fmt.Sprintf("delivery attempt deferred until %s: %s", e.Until.UTC().Format(time.RFC3339), e.Reason)
}

// RetryAfter is how long until the attempt should run again: a second
// past Until, because task queues keep whole seconds and could otherwise run
// it early, and an early run would sit in a worker waiting.
func (e *DeferError) RetryAfter() time.Duration { return max(0, time.Until(e.Until)) + time.Second }

// Unwrap makes an early run errors.Is(err, ErrEarly).
func (e *DeferError) Unwrap() error {
	if e.early {
		return ErrEarly
	}
	return nil
}

// hostGate keeps one receiver host from hurting the others, per process:
// at most limit attempts in flight per host (halved with each consecutive
// failure), and a circuit breaker that,
// after threshold consecutive failures, defers the host's attempts for
// cooldown and then lets one probe through.
type hostGate struct {
	mu        sync.Mutex
	hosts     map[string]*hostState
	limit     int
	threshold int // 0 disables the breaker
	cooldown  time.Duration
	now       func() time.Time
}

type hostState struct {
	inFlight  int
	failures  int
	openUntil time.Time
	probing   bool
}

// capRetry is how soon an attempt deferred by the concurrency cap retries.
const capRetry = time.Second

func newHostGate(limit, threshold int, cooldown time.Duration, now func() time.Time) *hostGate {
	if limit <= 0 {
		limit = 1 << 30
	}
	return &hostGate{hosts: map[string]*hostState{}, limit: limit, threshold: threshold, cooldown: cooldown, now: now}
}

// hostOf is the gate's key for a callback URL: host and port.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return strings.ToLower(u.Host)
}

// acquire asks to make an attempt to host. If it may, done must be called
// with the attempt's outcome; if not, it says until when to wait and why.
func (g *hostGate) acquire(host string) (done func(failed bool), until time.Time, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	h := g.hosts[host]
	if h == nil {
		h = &hostState{}
		g.hosts[host] = h
	}
	probe := false
	switch {
	case now.Before(h.openUntil):
		return nil, h.openUntil, "circuit open after repeated failures of " + host
	case g.threshold > 0 && h.failures >= g.threshold:
		if h.probing {
			return nil, now.Add(min(g.cooldown, 5*time.Second)), "circuit half-open: a probe of " + host + " is in flight"
		}
		h.probing, probe = true, true
	case h.inFlight >= g.limitFor(h):
		return nil, now.Add(capRetry), fmt.Sprintf("%d attempts to %s already in flight", h.inFlight, host)
	}
	h.inFlight++
	return func(failed bool) { g.done(host, h, probe, failed) }, time.Time{}, ""
}

// limitFor halves a host's cap with each consecutive failure, so a host that
// starts hanging ties up few workers even before its circuit opens.
func (g *hostGate) limitFor(h *hostState) int {
	return max(1, g.limit>>min(h.failures, 30))
}

func (g *hostGate) done(host string, h *hostState, probe, failed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	h.inFlight--
	if probe {
		h.probing = false
	}
	if !failed {
		h.failures, h.openUntil = 0, time.Time{}
	} else {
		h.failures++
		if g.threshold > 0 && h.failures >= g.threshold {
			h.openUntil = g.now().Add(g.cooldown)
		}
	}
	if h.inFlight == 0 && h.failures == 0 {
		delete(g.hosts, host) // keep the map to hosts with news
	}
}

// hostFailed says whether an attempt's outcome counts against its host: the
// host did not answer properly (network errors, timeouts, 5xx, 429). A 4xx
// or a refused destination says nothing about the host's health.
func hostFailed(a Attempt) bool {
	switch a.ErrorClass {
	case "", ClassBlocked, ClassRedirect:
		return false
	case ClassStatus:
		return a.StatusCode >= 500 || a.StatusCode == 429
	}
	return true
}

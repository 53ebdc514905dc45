package clients

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Buckets are per-client token buckets shared by every API replica
// (redisstore.Store): rate tokens per second refill a bucket of burst.
type Buckets interface {
	// TakeTokens takes up to want tokens from a client's bucket and
	// returns how many it got; with none, how long until one is there.
	TakeTokens(ctx context.Context, clientID string, rate float64, burst, want int, now time.Time) (int, time.Duration, error)
}

// RateLimiter limits each client's requests with a shared token bucket.
// To spare the shared store a round trip per request, a process takes
// tokens a few at a time (what the rate refills in 50 ms) and spends them
// locally for up to leaseTTL; unspent ones are simply lost, so a client
// never gets more than its rate.
type RateLimiter struct {
	buckets Buckets
	rate    float64
	burst   int
	batch   int
	now     func() time.Time

	mu    sync.Mutex
	local map[string]*tokenLease
}

type tokenLease struct {
	tokens  int
	expires time.Time
}

// leaseTTL is how long a process may spend tokens it took.
const leaseTTL = time.Second

// NewRateLimiter returns a limiter; rate ≤ 0 disables it (Allow always true).
func NewRateLimiter(b Buckets, rate float64, burst int, now func() time.Time) *RateLimiter {
	burst = max(burst, 1)
	batch := min(burst, max(1, int(rate/20)))
	return &RateLimiter{buckets: b, rate: rate, burst: burst, batch: batch, now: now, local: map[string]*tokenLease{}}
}

// Allow takes one token of the client's allowance. When none is left it
// returns false and how long until one is.
func (l *RateLimiter) Allow(ctx context.Context, clientID string) (bool, time.Duration, error) {
	if l == nil || l.rate <= 0 {
		return true, 0, nil
	}
	now := l.now()
	l.mu.Lock()
	if t := l.local[clientID]; t != nil && t.tokens > 0 && now.Before(t.expires) {
		t.tokens--
		l.mu.Unlock()
		return true, 0, nil
	}
	l.mu.Unlock()
	got, wait, err := l.buckets.TakeTokens(ctx, clientID, l.rate, l.burst, l.batch, now)
	if err != nil {
		return false, 0, fmt.Errorf("rate limit: %w", err)
	}
	if got == 0 {
		return false, wait, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.local[clientID]; t != nil && t.tokens > 0 && now.Before(t.expires) {
		// Requests that missed at the same time took tokens too: keep
		// theirs, under the earlier expiry, so that no token outlives its
		// lease.
		t.tokens += got - 1
		return true, 0, nil
	}
	if len(l.local) >= maxCached {
		clear(l.local)
	}
	l.local[clientID] = &tokenLease{tokens: got - 1, expires: now.Add(leaseTTL)}
	return true, 0, nil
}

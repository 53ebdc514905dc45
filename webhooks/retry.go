package webhooks

import (
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// RetryPolicy decides how long to wait after a failed attempt: exponential
// backoff (cenkalti/backoff) with jitter, capped at MaxInterval, for at most
// MaxAttempts attempts (the first included).
type RetryPolicy struct {
	Initial     time.Duration
	MaxInterval time.Duration
	MaxAttempts int
	Multiplier  float64        // 0 means 3
	Jitter      float64        // ± fraction of each wait; 0 means 0.2, negative means none
	Rand        func() float64 // in [0,1); nil means math/rand/v2
}

// DefaultRetryPolicy waits 5 s, then ×3 with ±20 % jitter up to 10 h, for 12
// attempts: the last retry comes more than a day after the first attempt.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{Initial: 5 * time.Second, MaxInterval: 10 * time.Hour, MaxAttempts: 12}
}

// Delay is the wait after the failed-th failed attempt (1-based).
func (p RetryPolicy) Delay(failed int) time.Duration {
	mult := p.Multiplier
	if mult == 0 {
		mult = 3
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.Initial,
		RandomizationFactor: 0, // jitter is ours, so tests can inject the randomness
		Multiplier:          mult,
		MaxInterval:         p.MaxInterval,
		MaxElapsedTime:      0,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	d := b.NextBackOff()
	for i := 1; i < failed; i++ {
		d = b.NextBackOff()
	}
	jitter := p.Jitter
	if jitter == 0 {
		jitter = 0.2
	}
	if jitter > 0 {
		r := p.Rand
		if r == nil {
			r = rand.Float64
		}
		d = time.Duration(float64(d) * (1 - jitter + 2*jitter*r()))
	}
	return min(d, p.MaxInterval)
}

// Cap limits a receiver's Retry-After to the policy's longest wait.
func (p RetryPolicy) Cap(d time.Duration) time.Duration {
	return max(0, min(d, p.MaxInterval))
}

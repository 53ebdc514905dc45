package clients

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RateLimiter is a per-client token bucket kept in Redis, so the limit holds
// across API replicas. Rate tokens per second refill a bucket of Burst.
type RateLimiter struct {
	rdb   redis.UniversalClient
	rate  float64
	burst int
	now   func() time.Time
}

// NewRateLimiter returns a limiter; rate ≤ 0 disables it (Allow always true).
func NewRateLimiter(rdb redis.UniversalClient, rate float64, burst int, now func() time.Time) *RateLimiter {
	return &RateLimiter{rdb: rdb, rate: rate, burst: max(burst, 1), now: now}
}

var bucketScript = redis.NewScript(`
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens, ts = tonumber(v[1]), tonumber(v[2])
if tokens == nil or ts == nil then tokens, ts = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local allowed, wait = 0, 0
if tokens >= 1 then
  tokens, allowed = tokens - 1, 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait}
`)

// Allow takes one token from the client's bucket. When none is left it
// returns false and how long until one is.
func (l *RateLimiter) Allow(ctx context.Context, clientID string) (bool, time.Duration, error) {
	if l == nil || l.rate <= 0 {
		return true, 0, nil
	}
	res, err := bucketScript.Run(ctx, l.rdb, []string{"bmr:rl:" + clientID},
		l.rate, l.burst, l.now().UnixMilli()).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("rate limit: %w", err)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Millisecond, nil
}

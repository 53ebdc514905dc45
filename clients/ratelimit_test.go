package clients_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/redis/go-redis/v9"
)

// countingBuckets is the real store's token buckets, counting the calls
// and the tokens they handed out.
type countingBuckets struct {
	b            clients.Buckets
	calls, given atomic.Int64
}

func (c *countingBuckets) TakeTokens(ctx context.Context, clientID string, rate float64, burst, want int, now time.Time) (int, time.Duration, error) {
	c.calls.Add(1)
	got, wait, err := c.b.TakeTokens(ctx, clientID, rate, burst, want, now)
	c.given.Add(int64(got))
	return got, wait, err
}

func newBuckets(t *testing.T) (*countingBuckets, *redis.Client) {
	t.Helper()
	rdb := redistest.Client(t)
	st, err := redisstore.New(context.Background(), rdb, redisstore.Options{})
	if err != nil {
		t.Fatalf("redisstore.New: %v", err)
	}
	return &countingBuckets{b: st}, rdb
}

// TestRateLimiter drives a limiter whose batch is one token (rate/20 < 1),
// so every Allow reads the shared bucket.
func TestRateLimiter(t *testing.T) {
	ctx := context.Background()
	clk := testkit.NewClock(t0)
	b, _ := newBuckets(t)
	l := clients.NewRateLimiter(b, 2, 3, clk.Now) // 2 per second, bursts of 3
	steps := []struct {
		at       time.Duration // since t0
		client   string
		wantOK   bool
		wantWait time.Duration
	}{
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", false, 500 * time.Millisecond},
		{0, "b", true, 0}, // buckets are per client
		{250 * time.Millisecond, "a", false, 250 * time.Millisecond},
		{500 * time.Millisecond, "a", true, 0},
		{500 * time.Millisecond, "a", false, 500 * time.Millisecond},
		{1500 * time.Millisecond, "a", true, 0},
		{1500 * time.Millisecond, "a", true, 0},
		{1500 * time.Millisecond, "a", false, 500 * time.Millisecond},
		// A long pause refills no more than the burst.
		{time.Hour, "a", true, 0},
		{time.Hour, "a", true, 0},
		{time.Hour, "a", true, 0},
		{time.Hour, "a", false, 500 * time.Millisecond},
	}
	for i, s := range steps {
		clk.Set(t0.Add(s.at))
		ok, wait, err := l.Allow(ctx, s.client)
		if err != nil || ok != s.wantOK || wait != s.wantWait {
			t.Errorf("step %d: Allow(%s) at t0+%v = %v, %v, %v; want %v, %v", i+1, s.client, s.at, ok, wait, err, s.wantOK, s.wantWait)
		}
	}
	if calls := b.calls.Load(); calls != int64(len(steps)) {
		t.Errorf("%d Allow calls read the bucket %d times, want every time (a batch of 1)", len(steps), calls)
	}
}

// TestRateLimiterLeasesTokens: with rate 100/s a process takes 5 tokens
// (rate/20) at a time and spends them locally, for up to a second.
func TestRateLimiterLeasesTokens(t *testing.T) {
	ctx := context.Background()
	clk := testkit.NewClock(t0)
	b, _ := newBuckets(t)
	l := clients.NewRateLimiter(b, 100, 10, clk.Now)
	steps := []struct {
		at        time.Duration
		wantOK    bool
		wantCalls int64 // bucket reads so far
	}{
		{0, true, 1}, // takes 5 of the burst of 10, spends 1
		{0, true, 1},
		{0, true, 1},
		{0, true, 1},
		{0, true, 1}, // the 5th, from the lease
		{0, true, 2}, // takes the other 5
		{5 * time.Millisecond, true, 2},
		{5 * time.Millisecond, true, 2},
		{5 * time.Millisecond, true, 2},
		{5 * time.Millisecond, true, 2},   // the 10th
		{5 * time.Millisecond, false, 3},  // 5 ms refilled half a token
		{999 * time.Millisecond, true, 4}, // takes 5 of what 994 ms refilled
		{999 * time.Millisecond, true, 4},
		{1999*time.Millisecond - time.Nanosecond, true, 4},
		// The lease still holds 2 tokens, but a lease lives 1 s.
		{1999 * time.Millisecond, true, 5},
	}
	for i, s := range steps {
		clk.Set(t0.Add(s.at))
		ok, _, err := l.Allow(ctx, "a")
		if err != nil || ok != s.wantOK || b.calls.Load() != s.wantCalls {
			t.Errorf("step %d: Allow at t0+%v = %v, %v after %d bucket reads; want %v after %d",
				i+1, s.at, ok, err, b.calls.Load(), s.wantOK, s.wantCalls)
		}
	}
}

// TestRateLimiterLeaseExpires: tokens taken and not spent within a second
// are lost, not spent later.
func TestRateLimiterLeaseExpires(t *testing.T) {
	ctx := context.Background()
	clk := testkit.NewClock(t0)
	b, _ := newBuckets(t)
	l := clients.NewRateLimiter(b, 100, 5, clk.Now) // batch 5 = burst
	if ok, _, err := l.Allow(ctx, "a"); !ok || err != nil {
		t.Fatalf("first Allow = %v, %v", ok, err)
	}
	tests := []struct {
		at        time.Duration
		wantCalls int64
	}{
		{999 * time.Millisecond, 1}, // spent from the lease: 3 left
		{time.Second, 2},            // the lease has expired: to the bucket
	}
	for _, tc := range tests {
		clk.Set(t0.Add(tc.at))
		ok, _, err := l.Allow(ctx, "a")
		if !ok || err != nil || b.calls.Load() != tc.wantCalls {
			t.Errorf("Allow at t0+%v = %v, %v after %d bucket reads; want true after %d", tc.at, ok, err, b.calls.Load(), tc.wantCalls)
		}
	}
}

// TestRateLimitersShareTheBucket: two processes on one bucket together
// never pass more requests than the bucket gave, nor more than rate×T +
// burst over T (plus what their clocks' skew adds); at one instant with
// agreeing clocks they share the burst exactly.
func TestRateLimitersShareTheBucket(t *testing.T) {
	ctx := context.Background()
	const rate, burst = 100.0, 10
	tests := []struct {
		name       string
		step, skew time.Duration // the clock's step between rounds; how far the second process's clock is ahead
		rounds     int
	}{
		{"one instant", 0, 0, 50},
		{"1 ms steps", time.Millisecond, 0, 200},
		{"7 ms steps", 7 * time.Millisecond, 0, 200},
		{"50 ms steps", 50 * time.Millisecond, 0, 200},
		{"1.3 s steps", 1300 * time.Millisecond, 0, 200},
		{"one instant, clocks 500 ms apart", 0, 500 * time.Millisecond, 50},
		{"7 ms steps, clocks 500 ms apart", 7 * time.Millisecond, 500 * time.Millisecond, 200},
		{"one instant, clocks 3 s apart", 0, 3 * time.Second, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := testkit.NewClock(t0)
			ahead := func() time.Time { return clk.Now().Add(tc.skew) }
			b, _ := newBuckets(t)
			ls := []*clients.RateLimiter{clients.NewRateLimiter(b, rate, burst, clk.Now), clients.NewRateLimiter(b, rate, burst, ahead)}
			allowed, last := 0, t0 // last: the time of the last request
			for r := 0; r < tc.rounds; r++ {
				last = clk.Now()
				// Each process asks until refused, in turn.
				for i := 0; i < 2*burst; i++ {
					ok, _, err := ls[i%2].Allow(ctx, "a")
					if err != nil {
						t.Fatal(err)
					}
					if ok {
						allowed++
					}
				}
				clk.Advance(tc.step)
			}
			window := last.Sub(t0) + tc.skew
			limit := int(rate*float64(window.Milliseconds())/1000+1e-9) + burst
			if given := int(b.given.Load()); allowed > given {
				t.Errorf("the processes passed %d requests, the bucket gave %d tokens", allowed, given)
			}
			if allowed > limit {
				t.Errorf("over %v (skew included) the processes passed %d requests, want at most rate×T+burst = %d", window, allowed, limit)
			}
			if tc.step == 0 && tc.skew == 0 && allowed != burst {
				t.Errorf("at one instant the processes passed %d requests, want the burst, %d", allowed, burst)
			}
			t.Logf("over %v: %d passed, %d given by the bucket, limit %d", window, allowed, b.given.Load(), limit)
		})
	}
}

// TestRateLimitersConcurrent: many goroutines in two processes, one
// frozen instant: exactly the burst passes.
func TestRateLimitersConcurrent(t *testing.T) {
	ctx := context.Background()
	clk := testkit.NewClock(t0)
	b, _ := newBuckets(t)
	const burst = 40
	ls := []*clients.RateLimiter{clients.NewRateLimiter(b, 200, burst, clk.Now), clients.NewRateLimiter(b, 200, burst, clk.Now)}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				ok, _, err := ls[g%2].Allow(ctx, "a")
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n, given := allowed.Load(), b.given.Load(); n > given || n > burst {
		t.Errorf("320 concurrent requests at one instant: %d passed, the bucket gave %d; want at most the burst, %d", n, given, burst)
	}
}

func TestRateLimiterDisabled(t *testing.T) {
	b, rdb := newBuckets(t)
	keysBefore := rdb.DBSize(context.Background()).Val()
	var nilLimiter *clients.RateLimiter
	for name, l := range map[string]*clients.RateLimiter{
		"rate 0":        clients.NewRateLimiter(b, 0, 10, time.Now),
		"negative rate": clients.NewRateLimiter(b, -1, 10, time.Now),
		"nil":           nilLimiter,
	} {
		for i := 0; i < 20; i++ {
			if ok, wait, err := l.Allow(context.Background(), "a"); !ok || wait != 0 || err != nil {
				t.Fatalf("%s: Allow #%d = %v, %v, %v; want always allowed", name, i+1, ok, wait, err)
			}
		}
	}
	if n := b.calls.Load(); n != 0 {
		t.Errorf("a disabled limiter read the bucket %d times", n)
	}
	if n := rdb.DBSize(context.Background()).Val(); n != keysBefore {
		t.Errorf("a disabled limiter wrote %d keys", n-keysBefore)
	}
}

func TestRateLimiterBurstAtLeastOne(t *testing.T) {
	clk := testkit.NewClock(t0)
	b, _ := newBuckets(t)
	for _, burst := range []int{0, -3} {
		l := clients.NewRateLimiter(b, 1, burst, clk.Now)
		client := fmt.Sprint("burst", burst)
		for i, want := range []bool{true, false} {
			if ok, _, err := l.Allow(context.Background(), client); ok != want || err != nil {
				t.Errorf("burst %d, Allow #%d = %v, %v; want %v (a burst of 1)", burst, i+1, ok, err, want)
			}
		}
	}
}

func TestRateLimiterClosedRedis(t *testing.T) {
	b, rdb := newBuckets(t)
	l := clients.NewRateLimiter(b, 1, 1, time.Now)
	rdb.Close()
	if ok, _, err := l.Allow(context.Background(), "a"); err == nil || ok {
		t.Errorf("Allow over a closed Redis = %v, %v; want false and an error", ok, err)
	}
}

// barrierBuckets holds its first n calls until all n have come, so that
// they overlap for certain.
type barrierBuckets struct {
	clients.Buckets
	mu      sync.Mutex
	n       int
	arrived chan struct{} // closed when the n-th call comes
}

func (b *barrierBuckets) TakeTokens(ctx context.Context, clientID string, rate float64, burst, want int, now time.Time) (int, time.Duration, error) {
	b.mu.Lock()
	b.n--
	if b.n == 0 {
		close(b.arrived)
	}
	b.mu.Unlock()
	<-b.arrived
	return b.Buckets.TakeTokens(ctx, clientID, rate, burst, want, now)
}

// TestRateLimiterKeepsConcurrentLeases: requests of one client that miss
// the process's lease at once each take a batch; none of those tokens is
// lost, so they serve the process's next requests.
func TestRateLimiterKeepsConcurrentLeases(t *testing.T) {
	ctx := context.Background()
	clk := testkit.NewClock(t0)
	counted, _ := newBuckets(t)
	const misses, batch = 4, 5
	b := &barrierBuckets{Buckets: counted, n: misses, arrived: make(chan struct{})}
	l := clients.NewRateLimiter(b, 20*batch, misses*batch, clk.Now) // the burst is what the concurrent misses take
	var wg sync.WaitGroup
	for g := 0; g < misses; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _, err := l.Allow(ctx, "a"); !ok || err != nil {
				t.Errorf("a concurrent first request: %v, %v; want allowed", ok, err)
			}
		}()
	}
	wg.Wait()
	passed := 0
	for i := 0; i < misses*(batch-1)+1; i++ {
		if ok, _, err := l.Allow(ctx, "a"); ok && err == nil {
			passed++
		}
	}
	if want := misses * (batch - 1); passed != want || counted.calls.Load() != misses+1 {
		t.Errorf("after %d concurrent misses took %d tokens, %d requests passed (%d bucket reads); want the %d tokens left, then a refusal by the bucket",
			misses, counted.given.Load(), passed, counted.calls.Load(), want)
	}
}

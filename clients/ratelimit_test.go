package clients_test

import (
	"context"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/redistest"
)

func TestRateLimiter(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: t0}
	l := clients.NewRateLimiter(redistest.Client(t), 2, 3, clk.Now) // 2 per second, bursts of 3
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
}

func TestRateLimiterDisabled(t *testing.T) {
	rdb := redistest.Client(t)
	var nilLimiter *clients.RateLimiter
	for name, l := range map[string]*clients.RateLimiter{
		"rate 0":        clients.NewRateLimiter(rdb, 0, 10, time.Now),
		"negative rate": clients.NewRateLimiter(rdb, -1, 10, time.Now),
		"nil":           nilLimiter,
	} {
		for i := 0; i < 20; i++ {
			if ok, wait, err := l.Allow(context.Background(), "a"); !ok || wait != 0 || err != nil {
				t.Fatalf("%s: Allow #%d = %v, %v, %v; want always allowed", name, i+1, ok, wait, err)
			}
		}
	}
	if n := rdb.DBSize(context.Background()).Val(); n != 0 {
		t.Errorf("a disabled limiter wrote %d keys", n)
	}
}

func TestRateLimiterBurstAtLeastOne(t *testing.T) {
	clk := &clock{t: t0}
	l := clients.NewRateLimiter(redistest.Client(t), 1, 0, clk.Now)
	want := []bool{true, false}
	for i, w := range want {
		if ok, _, err := l.Allow(context.Background(), "a"); ok != w || err != nil {
			t.Errorf("burst 0, Allow #%d = %v, %v; want %v (a burst of 1)", i+1, ok, err, w)
		}
	}
}

func TestRateLimiterClosedRedis(t *testing.T) {
	rdb := redistest.Client(t)
	l := clients.NewRateLimiter(rdb, 1, 1, time.Now)
	rdb.Close()
	if ok, _, err := l.Allow(context.Background(), "a"); err == nil || ok {
		t.Errorf("Allow over a closed Redis = %v, %v; want false and an error", ok, err)
	}
}

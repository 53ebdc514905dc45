package egress_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/egress"
)

// countingResolver answers from a map that a test may change, and counts
// the lookups; a name it does not know fails to resolve.
type countingResolver struct {
	mu      sync.Mutex
	addrs   map[string]string
	lookups atomic.Int64
}

func (r *countingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.lookups.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.addrs[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	return []netip.Addr{netip.MustParseAddr(a)}, nil
}

func (r *countingResolver) point(host, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs[host] = addr
}

// TestCheckerReusesVerdicts: a host name is resolved once per TTL (a failed
// lookup once per FailureTTL), and a cached verdict answers as the lookup
// did: allowed, blocked, or not held against the job.
func TestCheckerReusesVerdicts(t *testing.T) {
	const ttl, failureTTL = 30 * time.Second, 5 * time.Second
	for _, tc := range []struct {
		name     string
		url      string
		blocked  bool
		reuseFor time.Duration // the verdict's lifetime
	}{
		{"allowed", "https://public.example/in", false, ttl},
		{"blocked", "https://evil.example/in", true, ttl},
		{"lookup failed", "https://nowhere.example/in", false, failureTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &countingResolver{addrs: map[string]string{"public.example": "93.184.215.14", "evil.example": "10.0.0.7"}}
			now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
			c := egress.Checker{Resolver: r, Names: egress.NewNameCache(egress.NameCacheOptions{TTL: ttl, FailureTTL: failureTTL,
				Now: func() time.Time { return now }})}
			check := func(when string, wantLookups int64) {
				t.Helper()
				before := r.lookups.Load()
				err := c.CheckURL(tc.url)
				var be *egress.BlockedError
				var ue *egress.URLError
				switch {
				case tc.blocked && (!errors.As(err, &ue) || ue.Code != egress.CodeBlockedAddress || !errors.As(err, &be)):
					t.Errorf("%s: CheckURL(%q) = %v; want refused as a blocked address", when, tc.url, err)
				case !tc.blocked && err != nil:
					t.Errorf("%s: CheckURL(%q) = %v; want accepted", when, tc.url, err)
				}
				if got := r.lookups.Load() - before; got != wantLookups {
					t.Errorf("%s: %d lookups; want %d", when, got, wantLookups)
				}
			}
			check("first check", 1)
			now = now.Add(tc.reuseFor - time.Millisecond)
			check("just before the verdict expires", 0)
			now = now.Add(time.Millisecond)
			check("once it has expired", 1)
		})
	}
}

// TestCheckerCachedVerdictFollowsDNS: a name re-pointed at a private
// address passes the submission check until its verdict expires (the
// dial-time check still refuses it), and is refused after.
func TestCheckerCachedVerdictFollowsDNS(t *testing.T) {
	r := &countingResolver{addrs: map[string]string{"moving.example": "93.184.215.14"}}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := egress.Checker{Resolver: r, Names: egress.NewNameCache(egress.NameCacheOptions{Now: func() time.Time { return now }})}
	if err := c.CheckURL("https://moving.example/in"); err != nil {
		t.Fatalf("public: %v", err)
	}
	r.point("moving.example", "127.0.0.1")
	if err := c.CheckURL("https://moving.example/in"); err != nil {
		t.Fatalf("re-pointed, within the verdict's 30 s: %v; want the cached verdict (allowed)", err)
	}
	now = now.Add(30 * time.Second)
	if err := c.CheckURL("https://moving.example/in"); err == nil {
		t.Fatal("re-pointed at loopback, after the verdict expired: accepted; want refused")
	}
	if err := (egress.Policy{}).CheckHost(context.Background(), r, "moving.example"); err == nil {
		t.Fatal("the dial-time check accepted moving.example at 127.0.0.1")
	}
}

// TestNameCacheBounded: a flood of distinct names keeps at most Max
// verdicts; without a cache every check resolves.
func TestNameCacheBounded(t *testing.T) {
	r := &countingResolver{addrs: map[string]string{}}
	for i := range 100 {
		r.point(fmt.Sprintf("h%d.example", i), "93.184.215.14")
	}
	names := egress.NewNameCache(egress.NameCacheOptions{Max: 8})
	c := egress.Checker{Resolver: r, Names: names}
	for i := range 100 {
		if err := c.CheckURL(fmt.Sprintf("https://h%d.example/in", i)); err != nil {
			t.Fatal(err)
		}
		if n := names.Len(); n > 8 {
			t.Fatalf("after %d names the cache holds %d verdicts; want at most 8", i+1, n)
		}
	}
	uncached := egress.Checker{Resolver: r}
	before := r.lookups.Load()
	for range 3 {
		_ = uncached.CheckURL("https://h1.example/in")
	}
	if got := r.lookups.Load() - before; got != 3 {
		t.Errorf("without a cache, 3 checks made %d lookups; want 3", got)
	}
}

// TestNameCacheConcurrent: checks of the same and of distinct names from
// many goroutines (run with -race).
func TestNameCacheConcurrent(t *testing.T) {
	r := &countingResolver{addrs: map[string]string{"a.example": "93.184.215.14", "b.example": "10.1.2.3"}}
	c := egress.Checker{Resolver: r, Names: egress.NewNameCache(egress.NameCacheOptions{Max: 4})}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 50 {
				host := []string{"a", "b", fmt.Sprintf("x%d-%d", i, j)}[j%3]
				err := c.CheckURL("https://" + host + ".example/in")
				if (host == "b") != (err != nil) {
					t.Errorf("%s.example: %v", host, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestNameCachePerClient: a verdict serves only the client whose check
// caused it; another client's first check of the same name resolves it.
func TestNameCachePerClient(t *testing.T) {
	r := &countingResolver{addrs: map[string]string{"shared.example": "93.184.215.14"}}
	c := egress.Checker{Resolver: r, Names: egress.NewNameCache(egress.NameCacheOptions{})}
	for _, step := range []struct {
		client      string
		wantLookups int64
	}{{"cli_a", 1}, {"cli_a", 0}, {"cli_b", 1}, {"cli_b", 0}, {"cli_a", 0}} {
		before := r.lookups.Load()
		if _, err := c.CanonicalURLFor(step.client, "https://shared.example/in"); err != nil {
			t.Fatal(err)
		}
		if got := r.lookups.Load() - before; got != step.wantLookups {
			t.Errorf("%s checking shared.example: %d lookups; want %d", step.client, got, step.wantLookups)
		}
	}
}

package faults

import (
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
)

// TestNoisyNeighbour measures how much one bad callback host (it never
// answers; each attempt waits out the 2 s delivery timeout) slows the
// webhooks of two healthy hosts. Phase A sends 400 jobs to the healthy
// hosts at 100/s; phase B, on the same service, sends the same 400
// interleaved with 200 jobs to the bad host. The per-host cap and the
// circuit breaker (BOOMERANG_HOST_CONCURRENCY, BOOMERANG_BREAKER_*) are
// meant to keep p99(B)/p99(A) under 1.5. This test asserts no time: it
// reports the latencies and checks only that every healthy webhook arrived.
func TestNoisyNeighbour(t *testing.T) {
	start := time.Now()
	const healthy, bad = 400, 200
	const tick = 10 * time.Millisecond // 100 healthy jobs per second in both phases

	hostA := newReceiver(t, nil, nil)
	hostB := newReceiver(t, nil, nil)
	badHost := newReceiver(t, func(int) string { return answerHang }, nil)
	svc := startService(t, map[string]string{
		"BOOMERANG_REDIS_URL":         redistest.URL(t),
		"BOOMERANG_DELIVERY_TIMEOUT":  "2s",
		"BOOMERANG_HOST_CONCURRENCY":  "10",
		"BOOMERANG_BREAKER_THRESHOLD": "5",
		"BOOMERANG_BREAKER_COOLDOWN":  "30s",
	})
	cl := svc.newClient("noisy")
	for _, r := range []*receiver{hostA, hostB, badHost} {
		r.setSecret(cl.SigningSecret)
	}
	// The healthy hosts are "127.0.0.1:<port>"; the bad one is
	// "localhost:<port>", a host name of its own whether the service keys
	// its limits by host or by host and port.
	urls := []string{hostA.url("/a"), hostB.url("/b")}
	badURL := badHost.localhostURL("/bad")

	submitted := map[string]time.Time{}
	submit := func(url string, n int) string {
		t.Helper()
		at := time.Now()
		code, id, _, err := svc.submit(cl.APIKey, url, map[string]int{"n": n})
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("submit: status %d, error %v", code, err)
		}
		submitted[id] = at
		return id
	}
	run := func(phase string, withBad bool) []string {
		var ids []string
		badSent := 0
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for i := 0; i < healthy; i++ {
			<-tk.C
			ids = append(ids, submit(urls[i%2], i))
			if withBad && i%2 == 1 && badSent < bad {
				submit(badURL, i)
				badSent++
			}
		}
		got := waitHealthy(hostA, hostB, ids, 2*time.Minute)
		if got != len(ids) {
			t.Errorf("phase %s: %d of %d healthy webhooks arrived within 2 minutes", phase, got, len(ids))
		}
		return ids
	}
	idsA := run("A", false)
	idsB := run("B", true)

	all := append(hostA.all(), hostB.all()...)
	report := func(phase string, ids []string) (p99Completion, p99Submit time.Duration) {
		want := map[string]bool{}
		for _, id := range ids {
			want[id] = true
		}
		var fromCompletion, fromSubmit []time.Duration
		for _, h := range all {
			if want[h.requestID] {
				want[h.requestID] = false // the first arrival only
				fromCompletion = append(fromCompletion, h.at.Sub(h.completedAt))
				fromSubmit = append(fromSubmit, h.at.Sub(submitted[h.requestID]))
			}
		}
		c50, c99 := percentiles(fromCompletion)
		s50, s99 := percentiles(fromSubmit)
		t.Logf("phase %s: %d healthy webhooks; completedAt → received p50 %v, p99 %v; submit → received p50 %v, p99 %v",
			phase, len(fromCompletion), c50, c99, s50, s99)
		return c99, s99
	}
	p99A, p99SubmitA := report("A (healthy only)", idsA)
	p99B, p99SubmitB := report("B (with the bad host)", idsB)
	ratio := func(b, a time.Duration) float64 {
		if a <= 0 {
			return 0
		}
		return float64(b) / float64(a)
	}
	// completedAt is stamped when a worker has already picked the job up,
	// so the first ratio misses time spent queued behind the bad host's
	// attempts; the second (from submission) includes it.
	t.Logf("noisy neighbour: p99(B)/p99(A) = %.2f from completedAt (goal < 1.5, not asserted), %.2f from submission; "+
		"bad host saw %d requests; elapsed %v",
		ratio(p99B, p99A), ratio(p99SubmitB, p99SubmitA), badHost.count(), time.Since(start).Round(time.Millisecond))
}

// waitHealthy waits until every id reached one of the healthy hosts.
func waitHealthy(a, b *receiver, ids []string, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		n := 0
		seen := map[string]bool{}
		for _, h := range append(a.all(), b.all()...) {
			seen[h.requestID] = true
		}
		for _, id := range ids {
			if seen[id] {
				n++
			}
		}
		if n == len(ids) || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2].Round(100 * time.Microsecond), d[len(d)*99/100].Round(100 * time.Microsecond)
}

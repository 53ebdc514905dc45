package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
)

// TestSentinelFailover runs the service on a master watched by three
// Sentinels (one replica; two with WAIT), submits jobs from 4 clients at a
// steady rate, and SIGKILLs the master. It checks what TestClusterFailover
// checks: the service answers only 202 or 503 meanwhile (never a 500), it
// recovers by itself, and it reports what asynchronous replication lost:
// jobs answered 202 that never ran. Every fourth job's webhook fails its
// first attempt, so delivery retries (asynq tasks on the same failover
// client) run across the failover; each must end DELIVERED. The second run
// sets BOOMERANG_REDIS_WAIT_REPLICAS=1 (a WAIT before every 202), must lose
// nothing, and reports its cost against the first run's latency, measured
// before the kill of each.
func TestSentinelFailover(t *testing.T) {
	var base time.Duration
	for _, wait := range []string{"0", "1"} {
		t.Run("WAIT_REPLICAS="+wait, func(t *testing.T) {
			p50 := sentinelFailover(t, wait)
			if wait == "0" {
				base = p50
			} else if base > 0 {
				t.Logf("WAIT 1 replica: submit p50 %v against %v without it (%.2f×)", p50, base, float64(p50)/float64(base))
			}
		})
	}
}

// sentinelFailover runs one failover under load and returns the submit
// latency p50 before the kill.
func sentinelFailover(t *testing.T, waitReplicas string) time.Duration {
	// With WAIT, the new master needs a replica of its own to acknowledge
	// anything: two replicas, so one remains.
	replicas := 1
	if waitReplicas != "0" {
		replicas = 2
	}
	s := redistest.StartSentinel(t, redistest.SentinelOptions{Replicas: replicas, AOF: true})
	rcv := newReceiver(t, nil, nil)
	flaky := newFailFirst(http.HandlerFunc(rcv.serve))
	flakySrv := httptest.NewServer(flaky)
	t.Cleanup(flakySrv.Close)
	svc := startService(t, map[string]string{
		"BOOMERANG_REDIS_URL":             s.URL(),
		"BOOMERANG_REDIS_SENTINEL_MASTER": s.MasterName(),
		"BOOMERANG_REDIS_WAIT_REPLICAS":   waitReplicas,
		"BOOMERANG_RATE_LIMIT":            "0",
		"BOOMERANG_RECOVER_AFTER":         "5s",
		// Retries a second after a failed first attempt, so that those
		// of jobs submitted just before the kill fall in the failover;
		// no circuit breaker, which every first attempt to /retry would
		// open.
		"BOOMERANG_RETRY_INITIAL":     "1s",
		"BOOMERANG_BREAKER_THRESHOLD": "0",
	})
	cl := svc.newClient("sentinel-failover")
	rcv.setSecret(cl.SigningSecret)

	type result struct {
		at    time.Time
		took  time.Duration
		code  int
		id    string
		retry bool // its webhook's first attempt fails
		err   error
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	start := time.Now()
	const duration, killAt = 20 * time.Second, 6 * time.Second
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for i := 0; time.Since(start) < duration; i++ {
				<-tick.C
				retry := i%4 == w
				callback := rcv.url("/hook")
				if retry {
					callback = flakySrv.URL + "/retry"
				}
				at := time.Now()
				code, id, _, err := svc.submit(cl.APIKey, callback, map[string]int{"n": i})
				if err != nil {
					code = -1
				}
				mu.Lock()
				results = append(results, result{at: at, took: time.Since(at), code: code, id: id, retry: retry, err: err})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(killAt)
	killed := time.Now()
	victim := s.KillMaster(t)
	promoted := s.WaitFailover(t, 60*time.Second)
	failoverTook := time.Since(killed)
	wg.Wait()

	// The outage runs from the kill to the first 202 answered to a
	// submit begun after it: meanwhile the service refuses submissions
	// (503) or holds them while go-redis retries its dial.
	codes := map[int]int{}
	var accepted, retried []string
	var before []time.Duration // submits begun before the kill
	var firstOK, lastRefusal time.Time
	slowest := time.Duration(0)
	for _, r := range results {
		codes[r.code]++
		answered := r.at.Add(r.took)
		if !r.at.Before(killed) {
			slowest = max(slowest, r.took)
		}
		if r.code != http.StatusAccepted {
			if r.err != nil && codes[r.code] <= 3 {
				t.Logf("submit at +%v: %v", r.at.Sub(start).Round(time.Millisecond), r.err)
			}
			if answered.After(lastRefusal) {
				lastRefusal = answered
			}
			continue
		}
		accepted = append(accepted, r.id)
		if r.retry {
			retried = append(retried, r.id)
		}
		if r.at.Before(killed) {
			before = append(before, r.took)
		} else if firstOK.IsZero() || answered.Before(firstOK) {
			firstOK = answered
		}
	}
	for code, n := range codes {
		if code != http.StatusAccepted && code != http.StatusServiceUnavailable {
			t.Errorf("%d answers with status %d during the failover; want only 202 and 503 (-1: no answer)", n, code)
		}
	}
	outage := "no 202 after the kill"
	if !firstOK.IsZero() {
		outage = firstOK.Sub(killed).Round(10 * time.Millisecond).String()
	}
	refused := "no refusal"
	if !lastRefusal.IsZero() {
		refused = fmt.Sprintf("last refusal answered %v after the kill", lastRefusal.Sub(killed).Round(10*time.Millisecond))
		if lastRefusal.After(start.Add(duration - 2*time.Second)) {
			t.Errorf("the service still refused submissions %v after the kill: it did not recover by itself", lastRefusal.Sub(killed))
		}
	}
	got := rcv.waitCoverage(accepted, 2*time.Minute)
	lost := len(accepted) - got
	p50 := quantile(before, 0.5)
	t.Logf("WAIT_REPLICAS=%s: killed master %s; all Sentinels named %s, a master per ROLE, %v after the kill; "+
		"service outage (kill to the first 202 of a submit begun after it) %v, slowest submit %v; answers %v; %s; "+
		"%d accepted, %d delivered, %d lost (acknowledged by the dead master, not replicated); %d duplicate webhooks; "+
		"submit p50 before the kill %v",
		waitReplicas, victim, promoted, failoverTook.Round(10*time.Millisecond), outage, slowest.Round(time.Millisecond),
		codes, refused, len(accepted), got, lost, duplicates(rcv), p50.Round(10*time.Microsecond))
	if waitReplicas != "0" && lost > 0 {
		t.Errorf("with WAIT %s replica, %d accepted jobs were lost", waitReplicas, lost)
	}
	checkRetries(t, svc, cl.APIKey, rcv, flaky, retried, killed.Add(failoverTook))
	return p50
}

// checkRetries checks that every accepted job whose webhook failed its
// first attempt and was not lost with the master ends DELIVERED, and that
// some of those retries ran after the failover for a first attempt made
// before it: asynq followed the master.
func checkRetries(t *testing.T, svc *service, key string, rcv *receiver, flaky *failFirst, ids []string, failedOver time.Time) {
	t.Helper()
	arrived := map[string]time.Time{}
	for _, h := range rcv.all() {
		if h.path == "/retry" && h.sigErr == nil {
			arrived[h.requestID] = h.at
		}
	}
	var covered []string
	crossed := 0
	for _, id := range ids {
		at, ok := arrived[id]
		if !ok {
			continue // lost with the master, reported above
		}
		covered = append(covered, id)
		if failed, ok := flaky.failedAt(id); ok && failed.Before(failedOver) && at.After(failedOver) {
			crossed++
		}
	}
	views := svc.waitJobsDone(key, covered, time.Minute)
	attempts := map[int]int{}
	for _, id := range covered {
		v, ok := views[id]
		if !ok || !v.done() {
			t.Errorf("job %s (first attempt failed, later one reached the receiver) is not COMPLETED+DELIVERED: %+v", id, v)
			continue
		}
		attempts[v.Delivery.Attempts]++
	}
	t.Logf("retries: %d of %d accepted jobs with a failing first attempt reached the receiver, %d failed before the "+
		"failover and were delivered after it; delivery attempts: %v", len(covered), len(ids), crossed, attempts)
	if crossed == 0 {
		t.Errorf("no delivery retry crossed the failover: the test did not exercise asynq across it")
	}
}

// quantile returns the q-quantile of ds (0 for none); it sorts ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

// duplicates counts the webhooks that repeat a requestId the receiver had
// already seen (at-least-once delivery allows them; they are reported).
func duplicates(r *receiver) int {
	hooks := r.all()
	return len(hooks) - len(requestIDs(r))
}

// failFirst answers 500 to the first webhook of each job and hands later
// ones to next, noting when each first attempt failed.
type failFirst struct {
	next http.Handler

	mu     sync.Mutex
	failed map[string]time.Time // requestId → when its first attempt got the 500
}

func newFailFirst(next http.Handler) *failFirst {
	return &failFirst{next: next, failed: map[string]time.Time{}}
}

func (f *failFirst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var msg struct {
		Data struct {
			RequestID string `json:"requestId"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &msg)
	f.mu.Lock()
	_, seen := f.failed[msg.Data.RequestID]
	if !seen {
		f.failed[msg.Data.RequestID] = time.Now()
	}
	f.mu.Unlock()
	if !seen {
		http.Error(w, "first attempt fails on purpose", http.StatusInternalServerError)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	f.next.ServeHTTP(w, r)
}

func (f *failFirst) failedAt(requestID string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.failed[requestID]
	return at, ok
}

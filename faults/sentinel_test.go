package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/redistest"
)

// TestSentinelFailover runs the service on a master watched by three
// Sentinels (one replica; two with WAIT), submits jobs from 4 clients at a
// steady rate, and SIGKILLs the master. It checks what TestClusterFailover
// checks: the service answers only 202 or 503 meanwhile (never a 500), it
// recovers by itself, and it reports what asynchronous replication lost:
// jobs answered 202 that the new master does not know and that never ran.
// Every job the new master knows must be delivered. Every fourth job's
// webhook fails its first attempt, so delivery retries (asynq tasks on the
// same failover client) run across the failover; each must end DELIVERED.
// The second run sets BOOMERANG_REDIS_WAIT_REPLICAS=1 (a WAIT before every
// 202), must lose nothing, and reports its cost against the first run's
// latency, measured before the kill of each.
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

	const duration, killAt = 20 * time.Second, 6 * time.Second
	end := time.Now().Add(duration)
	wait := submitUnderLoad(svc, cl.APIKey, rcv.url("/hook"), flakySrv.URL+"/retry", end)
	time.Sleep(killAt)
	killed := time.Now()
	victim := s.KillMaster(t)
	promoted := s.WaitFailover(t, time.Minute)
	failoverTook := time.Since(killed)
	l := summarize(t, wait(), killed)
	if now, err := s.Master(context.Background()); err == nil && now != promoted {
		t.Logf("the Sentinels failed over again after naming %s: the master is now %s (a false positive of "+
			"down-after-milliseconds on the new master; the service followed, or not, as the answers below say)", promoted, now)
	}

	for code, n := range l.codes {
		if code != http.StatusAccepted && code != http.StatusServiceUnavailable {
			t.Errorf("%d answers with status %d during the failover; want only 202 and 503 (-1: no answer)", n, code)
		}
	}
	refused := "no refusal"
	if !l.lastRefusal.IsZero() {
		refused = fmt.Sprintf("last refusal answered %v after the kill", l.lastRefusal.Sub(killed).Round(10*time.Millisecond))
		if l.lastRefusal.After(end.Add(-2 * time.Second)) {
			t.Errorf("the service still refused submissions %v after the kill: it did not recover by itself", l.lastRefusal.Sub(killed))
		}
	}
	// A job the new master does not know was lost with the old one (it is
	// never restarted); every other must reach the receiver. One deadline
	// for every delivery: an asynq task whose state change failed in the
	// outage waits for asynq's recoverer, up to two minutes (see
	// checkRetries).
	settleBy := time.Now().Add(3 * time.Minute)
	known, unknown := jobsKnown(t, svc, cl.APIKey, l.accepted)
	if got := rcv.waitCoverage(known, time.Until(settleBy)); got < len(known) {
		t.Errorf("%d of the %d accepted jobs that the new master holds never reached the receiver", len(known)-got, len(known))
	}
	seen := requestIDs(rcv)
	lost := 0
	for _, id := range unknown {
		if !seen[id] {
			lost++
		}
	}
	logLatest(t, rcv, l.lastAnswer, killed, l.accepted)
	t.Logf("WAIT_REPLICAS=%s: killed master %s; all Sentinels named %s, a master per ROLE, %v after the kill; "+
		"service outage (longest stretch without a 202) %v, slowest submit %v; answers %v; %s; "+
		"%d accepted, %d unknown to the new master (acknowledged by the dead master, not replicated), of which %d lost "+
		"(never delivered); %d duplicate webhooks; submit p50 before the kill %v",
		waitReplicas, victim, promoted, failoverTook.Round(10*time.Millisecond), l.outage.Round(10*time.Millisecond),
		l.slowest.Round(time.Millisecond), l.codes, refused, len(l.accepted), len(unknown), lost, duplicates(rcv),
		l.p50.Round(10*time.Microsecond))
	if waitReplicas != "0" && len(unknown) > 0 {
		t.Errorf("with WAIT %s replica, %d accepted jobs are unknown to the new master (%d never delivered)", waitReplicas, len(unknown), lost)
	}
	checkRetries(t, svc, cl.APIKey, rcv, flaky, l.retried, killed, killed.Add(failoverTook), max(time.Until(settleBy), 30*time.Second))
	return l.p50
}

// submission is one POST /v1/jobs as a submitter saw it.
type submission struct {
	at    time.Time
	took  time.Duration
	code  int // -1: no answer
	id    string
	retry bool // its webhook's first attempt fails
	err   error
}

// submitUnderLoad runs 4 submitters, each POSTing an echo job every 10 ms
// until end, every fourth one with the callback retry and the others with
// hook. The returned func waits for them and returns what they saw.
func submitUnderLoad(svc *service, key, hook, retry string, end time.Time) (wait func() []submission) {
	var mu sync.Mutex
	var subs []submission
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for i := 0; time.Now().Before(end); i++ {
				<-tick.C
				sub := submission{at: time.Now(), retry: i%4 == w}
				callback := hook
				if sub.retry {
					callback = retry
				}
				sub.code, sub.id, _, sub.err = svc.submit(key, callback, map[string]int{"n": i})
				sub.took = time.Since(sub.at)
				if sub.err != nil {
					sub.code = -1
				}
				mu.Lock()
				subs = append(subs, sub)
				mu.Unlock()
			}
		})
	}
	return func() []submission {
		wg.Wait()
		return subs
	}
}

// load sums up the submissions around a kill.
type load struct {
	codes             map[int]int
	accepted, retried []string      // ids answered 202; those whose first attempt fails
	p50               time.Duration // submit latency before the kill
	// outage is the longest stretch after the kill in which no submit was
	// answered 202: the service refused submissions (503) or held them
	// while go-redis retried its dial.
	outage                  time.Duration
	slowest                 time.Duration // the slowest submit begun after the kill
	lastRefusal, lastAnswer time.Time
}

func summarize(t *testing.T, subs []submission, killed time.Time) load {
	l := load{codes: map[int]int{}}
	var before []time.Duration
	var oks []time.Time // when each 202 after the kill was answered
	for _, s := range subs {
		l.codes[s.code]++
		answered := s.at.Add(s.took)
		if answered.After(l.lastAnswer) {
			l.lastAnswer = answered
		}
		if !s.at.Before(killed) {
			l.slowest = max(l.slowest, s.took)
		}
		if s.code != http.StatusAccepted {
			if s.err != nil && l.codes[s.code] <= 3 {
				t.Logf("submit %v after the kill: %v", s.at.Sub(killed).Round(time.Millisecond), s.err)
			}
			if answered.After(l.lastRefusal) {
				l.lastRefusal = answered
			}
			continue
		}
		l.accepted = append(l.accepted, s.id)
		if s.retry {
			l.retried = append(l.retried, s.id)
		}
		if s.at.Before(killed) {
			before = append(before, s.took)
		}
		if answered.After(killed) {
			oks = append(oks, answered)
		}
	}
	l.p50 = quantile(before, 0.5)
	// Up to the last answer, so that a service that never recovers shows.
	l.outage = longestGap(killed, append(oks, l.lastAnswer))
	return l
}

// checkRetries checks that every accepted job whose webhook failed its
// first attempt and was not lost with the master ends DELIVERED, and that
// some of those retries ran after the failover for a first attempt made
// before it: asynq followed the master.
//
// Some take minutes: when asynq cannot move a failed task from its active
// set to the retry set because Redis is down, its syncer retries the move
// with a context already cancelled (asynq v0.26.0 processor.retry), so the
// task waits in the active set for the recoverer (lease 30 s, plus 30 s,
// checked every minute); Boomerang's recovery cannot schedule the attempt
// meanwhile, because its task id is taken by the stuck task.
func checkRetries(t *testing.T, svc *service, key string, rcv *receiver, flaky *failFirst, retried []string,
	killed, failedOver time.Time, timeout time.Duration) {
	t.Helper()
	arrived := map[string]time.Time{}
	for _, h := range rcv.all() {
		if h.path == "/retry" && h.sigErr == nil {
			arrived[h.requestID] = h.at
		}
	}
	var covered []string
	crossed := 0
	for _, id := range retried {
		at, ok := arrived[id]
		if !ok {
			continue // lost with the master, reported above
		}
		covered = append(covered, id)
		if failed, ok := flaky.failedAt(id); ok && failed.Before(failedOver) && at.After(failedOver) {
			crossed++
		}
	}
	views := svc.waitJobsDone(key, covered, timeout)
	checked := time.Since(killed)
	attempts := map[int]int{}
	for _, id := range covered {
		v, ok := views[id]
		if !ok || !v.done() {
			delivery := "none"
			if v.Delivery != nil {
				delivery = fmt.Sprintf("%+v", *v.Delivery)
			}
			t.Errorf("job %s (first attempt failed, a later one reached the receiver) is %s with delivery %s, want COMPLETED and DELIVERED",
				id, v.Status, delivery)
			continue
		}
		attempts[v.Delivery.Attempts]++
	}
	t.Logf("retries: %d of %d accepted jobs with a failing first attempt reached the receiver, %d failed before the "+
		"failover and were delivered after it; their API views checked %v after the kill; delivery attempts: %v",
		len(covered), len(retried), crossed, checked.Round(100*time.Millisecond), attempts)
	if crossed == 0 {
		t.Errorf("no delivery retry crossed the failover: the test did not exercise asynq across it")
	}
}

// jobsKnown splits ids into the jobs GET /v1/jobs/{id} finds and those it
// answers 404.
func jobsKnown(t *testing.T, svc *service, key string, ids []string) (known, unknown []string) {
	t.Helper()
	codes := make([]int, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				codes[i], _, errs[i] = svc.call("GET", "/v1/jobs/"+ids[i], key, nil, nil)
			}
		})
	}
	for i := range ids {
		work <- i
	}
	close(work)
	wg.Wait()
	for i, id := range ids {
		switch {
		case errs[i] == nil && codes[i] == http.StatusOK:
			known = append(known, id)
		case errs[i] == nil && codes[i] == http.StatusNotFound:
			unknown = append(unknown, id)
		default:
			t.Fatalf("GET /v1/jobs/%s after the failover: status %d, error %v; want 200 or 404", id, codes[i], errs[i])
		}
	}
	return known, unknown
}

// logLatest logs when the last of the accepted jobs first reached the
// receiver, and which one it was: a job that waited for recovery shows
// here.
func logLatest(t *testing.T, rcv *receiver, lastSubmit, killed time.Time, accepted []string) {
	first := map[string]hook{}
	for _, h := range rcv.all() {
		if f, ok := first[h.requestID]; !ok || h.at.Before(f.at) {
			first[h.requestID] = h
		}
	}
	var latest hook
	for _, id := range accepted {
		if h, ok := first[id]; ok && h.at.After(latest.at) {
			latest = h
		}
	}
	if latest.at.IsZero() {
		return
	}
	created, _ := ids.Time(ids.Request, latest.requestID)
	t.Logf("every delivered job had arrived %v after the last submit was answered; the last to arrive: %s (%s), "+
		"created %v and delivered %v after the kill", latest.at.Sub(lastSubmit).Round(10*time.Millisecond), latest.requestID,
		latest.path, created.Sub(killed).Round(10*time.Millisecond), latest.at.Sub(killed).Round(10*time.Millisecond))
}

// longestGap returns the longest interval between from and the first of
// times, or between two successive ones; it sorts times.
func longestGap(from time.Time, times []time.Time) time.Duration {
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	gap := time.Duration(0)
	for _, at := range times {
		gap, from = max(gap, at.Sub(from)), at
	}
	return gap
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

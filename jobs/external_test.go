package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// bigPayload has what a re-encoding would lose: integers beyond float64,
// spacing, escapes and HTML characters.
const bigPayload = `{ "frames" : 123456789012345678901234567890, "f": 1.50e+3, "html":"<b>&amp;</b>", "u":"\u00e9\u2028" }`

var leaseIDPattern = regexp.MustCompile(`^1\.60\.[0-9a-f]{24}$`)

// claimNow claims a job of types at once (no wait), failing the test if
// none comes.
func claimNow(t testing.TB, svc *jobs.Service, lease time.Duration, types ...string) jobs.Job {
	t.Helper()
	j, ok, err := svc.Claim(context.Background(), jobs.ClaimOptions{Types: types, Lease: lease})
	if err != nil || !ok {
		t.Fatalf("Claim(%v) = ok %v, error %v; want a job", types, ok, err)
	}
	return j
}

// claimNone checks that nothing of types is claimable now.
func claimNone(t testing.TB, svc *jobs.Service, types ...string) {
	t.Helper()
	j, ok, err := svc.Claim(context.Background(), jobs.ClaimOptions{Types: types, Lease: time.Minute})
	if err != nil || ok {
		t.Fatalf("Claim(%v) = %s (ok %v), error %v; want nothing claimable", types, j.ID, ok, err)
	}
}

func TestClaimGivesTheExternalJob(t *testing.T) {
	e := newEnv(t, externalTypes)
	sub := echoSub(bigPayload)
	sub.Type, sub.Metadata = "transcode", map[string]string{"order": "42", "note": "<é>"}
	j := e.submit(t, "cli_a", sub)
	e.clock.Advance(2 * time.Second)
	now := e.clock.Now()

	got := claimNow(t, e.svc, time.Minute, "thumbnail", "transcode")
	if got.ID != j.ID || got.Type != "transcode" || got.Status != jobs.StatusProcessing || got.Attempts != 1 ||
		!reflect.DeepEqual(got.Metadata, sub.Metadata) || got.ClientID != "cli_a" {
		t.Errorf("claimed %+v; want %s, transcode, PROCESSING, attempt 1, metadata %v", got, j.ID, sub.Metadata)
	}
	if string(got.Payload) != bigPayload {
		t.Errorf("payload = %s\nwant byte for byte %s", got.Payload, bigPayload)
	}
	if !leaseIDPattern.MatchString(got.LeaseID) {
		t.Errorf("leaseId = %q, want <attempt 1>.<60 s>.<24 hex digits>", got.LeaseID)
	}
	rec := e.record(t, j.ID)
	if rec["lid"] != got.LeaseID {
		t.Errorf("the record's lease id = %q, want the claim's %q", rec["lid"], got.LeaseID)
	}
	if until := e.notBefore(t, j.ID); !until.Equal(now.Add(time.Minute)) {
		t.Errorf("lease ends %v, want now + 60 s = %v", until, now.Add(time.Minute))
	}
	if due := e.due(t, j.ID); !due.Equal(now.Add(time.Minute)) {
		t.Errorf("recovery time %v, want the lease's end %v (a lapsed lease is recovery's to requeue)", due, now.Add(time.Minute))
	}
	stored := e.get(t, "cli_a", j.ID)
	if stored.Status != jobs.StatusProcessing || stored.Attempts != 1 {
		t.Errorf("GetJob after the claim: %s attempt %d, want PROCESSING attempt 1", stored.Status, stored.Attempts)
	}
	claimNone(t, e.svc, "transcode") // one job, one claim
	if left := e.xready(t, "transcode"); len(left) != 0 {
		t.Errorf("transcode list after the claim = %v, want empty", left)
	}
}

func TestClaimTakesOnlyItsExternalTypes(t *testing.T) {
	tests := []struct {
		name    string
		typ     string   // submitted
		claimer []string // the claim's types
	}{
		{"an echo job, not external", "echo", []string{"echo"}},
		{"an echo job, claimer of every external type", "echo", []string{"transcode", "thumbnail"}},
		{"an external job of another type", "transcode", []string{"thumbnail"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, externalTypes)
			j := e.submitType(t, tt.typ, `1`)
			claimNone(t, e.svc, tt.claimer...)
			if got := e.job(t, j.ID); got.Status != jobs.StatusAccepted || got.Attempts != 0 {
				t.Errorf("%s job after a claim of %v: %s attempt %d, want ACCEPTED, untouched", tt.typ, tt.claimer, got.Status, got.Attempts)
			}
			if tt.typ == "echo" && !slices.Equal(e.allReady(t), []string{j.ID}) {
				t.Errorf("ready lists = %v, want the echo job still there for the runners", e.allReady(t))
			}
		})
	}
}

func TestClaimWaitsAndIsWokenByTheSubmission(t *testing.T) {
	e := newEnv(t, externalTypes)
	e.listen(t, e.svc, false, true, false)

	type result struct {
		j   jobs.Job
		ok  bool
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		j, ok, err := e.svc.Claim(context.Background(), jobs.ClaimOptions{Types: []string{"transcode"}, Lease: time.Minute, Wait: 5 * time.Second})
		done <- result{j, ok, err, time.Now()}
	}()
	time.Sleep(100 * time.Millisecond) // the claim has looked and waits
	select {
	case r := <-done:
		t.Fatalf("Claim returned before any job: %+v", r)
	default:
	}
	created := time.Now()
	j := e.submitType(t, "transcode", bigPayload)
	r := receive(t, done, 1, "the waiting claim")[0]
	if r.err != nil || !r.ok || r.j.ID != j.ID {
		t.Fatalf("Claim = %s ok %v error %v; want %s", r.j.ID, r.ok, r.err, j.ID)
	}
	// The announcement travels through Redis pub/sub: milliseconds. The
	// bound is loose for slow machines; the wait without a wake is 5 s.
	latency := r.at.Sub(created)
	t.Logf("created → claimed: %v", latency)
	if latency > 200*time.Millisecond {
		t.Errorf("the waiting claim got the job %v after its creation, want within ~100 ms", latency)
	}
}

func TestClaimWaitEndsWithoutAJob(t *testing.T) {
	e := newEnv(t, externalTypes)
	e.listen(t, e.svc, false, true, false)
	e.submitType(t, "thumbnail", `1`) // another type's work wakes nothing here
	start := time.Now()
	j, ok, err := e.svc.Claim(context.Background(), jobs.ClaimOptions{Types: []string{"transcode"}, Lease: time.Minute, Wait: 300 * time.Millisecond})
	took := time.Since(start)
	if err != nil || ok {
		t.Fatalf("Claim on an empty type = %s ok %v error %v; want ok false", j.ID, ok, err)
	}
	if took < 300*time.Millisecond || took > time.Second {
		t.Errorf("Claim with a 300 ms wait returned after %v, want when the wait ended", took)
	}

	// A claim whose request goes away returns at once.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start = time.Now()
	_, ok, err = e.svc.Claim(ctx, jobs.ClaimOptions{Types: []string{"transcode"}, Lease: time.Minute, Wait: 5 * time.Second})
	if took := time.Since(start); ok || err != nil || took > time.Second {
		t.Errorf("Claim whose context ended after 50 ms = ok %v error %v after %v; want ok false at once", ok, err, took)
	}
}

// TestClaimConcurrentClaimersTakeEachJobOnce runs 8 claimers in two
// processes (Services) against 50 jobs submitted while they wait, half of
// them listed twice (recovery requeueing them meanwhile): every job is
// claimed exactly once.
func TestClaimConcurrentClaimersTakeEachJobOnce(t *testing.T) {
	const jobsN, claimers = 50, 8
	e := newEnv(t, externalTypes)
	other := e.service()
	e.listen(t, e.svc, false, true, false)
	e.listen(t, other, false, true, false)

	var mu sync.Mutex
	claimed := map[string][]int{} // job → attempts of its claims
	var wg sync.WaitGroup
	errs := make(chan error, claimers)
	for i := range claimers {
		svc := e.svc
		if i%2 == 1 {
			svc = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, ok, err := svc.Claim(context.Background(), jobs.ClaimOptions{Types: []string{"transcode"}, Lease: time.Minute, Wait: 500 * time.Millisecond})
				if err != nil {
					errs <- err
					return
				}
				if !ok {
					return
				}
				mu.Lock()
				claimed[j.ID] = append(claimed[j.ID], j.Attempts)
				mu.Unlock()
			}
		}()
	}
	var submitted []string
	for i := range jobsN {
		j := e.submitType(t, "transcode", fmt.Sprintf(`{"n":%d}`, i))
		submitted = append(submitted, j.ID)
		if i%2 == 0 { // a second entry for the same job, as a recovery requeue makes
			if _, err := e.store.RequeueExternal(context.Background(), j.ID, "transcode", e.clock.Now()); err != nil {
				t.Fatalf("RequeueExternal(%s): %v", j.ID, err)
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Claim: %v", err)
	}
	for _, id := range submitted {
		if got := claimed[id]; !slices.Equal(got, []int{1}) {
			t.Errorf("job %s claimed with attempts %v, want exactly once, attempt 1", id, got)
		}
	}
	if len(claimed) != jobsN {
		t.Errorf("%d distinct jobs claimed, want %d", len(claimed), jobsN)
	}
}

// TestIdleClaimersCost: 50 claimers waiting on a type with no work cost
// Redis one look per partition when each starts and one when its wait
// ends, nothing in between (they wait on the in-process board, woken by
// the one subscription). The cost is per claim, not per second of waiting:
// 2 s here stands for the 30 s, which costs the same 2 × 50 × 1
// partition = 100 commands (the subscription's own check is one PING per
// 30 s of silence per process, shared by all claims).
func TestIdleClaimersCost(t *testing.T) {
	const claimers, wait = 50, 2 * time.Second
	e := newEnv(t, externalTypes)
	e.listen(t, e.svc, false, true, false)
	// Open the pool's connections first: a new connection's handshake is
	// paid once per process, not per claim.
	var warm sync.WaitGroup
	for range claimers {
		warm.Add(1)
		go func() { defer warm.Done(); e.rdb.Ping(context.Background()) }()
	}
	warm.Wait()

	before := commandCalls(t, e.rdb)
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, ok, err := e.svc.Claim(context.Background(), jobs.ClaimOptions{Types: []string{"transcode"}, Lease: time.Minute, Wait: wait})
			if ok || err != nil {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%s ok %v error %v", j.ID, ok, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	total, breakdown := commandsSince(t, e.rdb, before)
	if len(bad) > 0 {
		t.Fatalf("idle claims returned %v, want ok false", bad)
	}
	if took < wait {
		t.Fatalf("the claims returned after %v, before their %v wait", took, wait)
	}
	t.Logf("%d claimers idle for %v: %d Redis commands in all (%s); per claim %.1f, whatever the wait", claimers, wait, total, breakdown,
		float64(total)/claimers)
	if total >= 200 {
		t.Errorf("%d idle claimers cost %d Redis commands (%s), want fewer than 200", claimers, total, breakdown)
	}
}

func TestHeartbeatExtendsTheLeaseAndSavesProgress(t *testing.T) {
	e := newEnv(t, externalTypes)
	j := e.submitType(t, "transcode", `1`)
	c := claimNow(t, e.svc, 10*time.Second, "transcode")
	e.clock.Advance(3 * time.Second)
	now := e.clock.Now()

	until, err := e.svc.Heartbeat(context.Background(), j.ID, c.LeaseID, &jobs.Progress{Percent: 42.123, Message: "encoding"})
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	want := now.Add(10 * time.Second) // the claim's lease again, from now
	if !until.Equal(want) {
		t.Errorf("Heartbeat = lease until %v, want %v", until, want)
	}
	if got := e.notBefore(t, j.ID); !got.Equal(want) {
		t.Errorf("the record's lease ends %v, want %v", got, want)
	}
	if got := e.due(t, j.ID); !got.Equal(want) {
		t.Errorf("recovery time %v, want the new lease end %v", got, want)
	}
	got := e.get(t, "cli_a", j.ID)
	wantP := jobs.Progress{Percent: 42.12, Message: "encoding", UpdatedAt: now}
	if got.Progress == nil || *got.Progress != wantP || got.Status != jobs.StatusProcessing || got.Attempts != 1 {
		t.Errorf("GetJob after the heartbeat: %s attempt %d progress %+v; want PROCESSING attempt 1 progress %+v", got.Status, got.Attempts, got.Progress, wantP)
	}
}

// TestHeartbeatsAreCoalesced: a worker heartbeating 21 times in 500 ms
// costs one store write; the progress it reported meanwhile is written
// with the first heartbeat a second later.
func TestHeartbeatsAreCoalesced(t *testing.T) {
	cs := &countingStore{}
	e := newEnv(t, externalTypes)
	cs.Store = e.store
	svc := e.service(withStore(cs))
	j := e.submitType(t, "transcode", `1`)
	c := claimNow(t, svc, 10*time.Second, "transcode")
	ctx := context.Background()
	// Later than the claim: a write of the very state the record holds is
	// taken for a repeat of it (writeJobScript), which only a frozen clock
	// makes.
	e.clock.Advance(time.Second)
	first := e.clock.Now()
	firstUntil, err := svc.Heartbeat(ctx, j.ID, c.LeaseID, &jobs.Progress{Percent: 1, Message: "hb 0"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		e.clock.Advance(25 * time.Millisecond)
		until, err := svc.Heartbeat(ctx, j.ID, c.LeaseID, &jobs.Progress{Percent: float64(i), Message: fmt.Sprintf("hb %d", i)})
		if err != nil || !until.Equal(firstUntil) {
			t.Fatalf("heartbeat %d at first+%v = %v, %v; want the lease the first one set, %v", i, e.clock.Now().Sub(first), until, err, firstUntil)
		}
	}
	if n := cs.extends.Load(); n != 1 {
		t.Errorf("21 heartbeats in 500 ms made %d store writes, want 1", n)
	}
	if p := e.job(t, j.ID).Progress; p == nil || p.Message != "hb 0" {
		t.Errorf("stored progress within the second = %+v, want the first heartbeat's (hb 0)", p)
	}

	// A second after the first write, the next heartbeat writes, carrying
	// the latest progress held back.
	e.clock.Set(first.Add(time.Second))
	until, err := svc.Heartbeat(ctx, j.ID, c.LeaseID, nil)
	if err != nil || !until.Equal(first.Add(11*time.Second)) {
		t.Fatalf("heartbeat a second later = %v, %v; want the lease renewed to %v", until, err, first.Add(11*time.Second))
	}
	if n := cs.extends.Load(); n != 2 {
		t.Errorf("store writes after the second's heartbeat = %d, want 2", n)
	}
	if p := e.job(t, j.ID).Progress; p == nil || p.Message != "hb 20" || p.Percent != 20 {
		t.Errorf("stored progress = %+v, want the latest held back (hb 20, 20 %%)", p)
	}
}

// TestLateCallsOfALapsedLease: a worker's lease lapses, recovery requeues
// the job and another worker claims it; the first worker's heartbeat,
// complete and fail are refused (ErrLeaseLost) and change nothing, before
// and after the second worker's outcome, which is the only one.
func TestLateCallsOfALapsedLease(t *testing.T) {
	e := newEnv(t, externalTypes)
	ctx := context.Background()
	j := e.submitType(t, "transcode", `1`)
	old := claimNow(t, e.svc, time.Second, "transcode")
	if _, err := e.svc.Heartbeat(ctx, j.ID, old.LeaseID, nil); err != nil {
		t.Fatalf("heartbeat within the lease: %v", err)
	}
	e.clock.Advance(2 * time.Second) // no heartbeat: the lease lapsed
	if ok, err := e.store.RequeueExternal(ctx, j.ID, "transcode", e.clock.Now()); err != nil || !ok {
		t.Fatalf("RequeueExternal after the lease lapsed = %v, %v; want requeued", ok, err)
	}
	other := e.service()
	cur := claimNow(t, other, time.Minute, "transcode")
	if cur.Attempts != 2 || cur.LeaseID == old.LeaseID {
		t.Fatalf("second claim = attempt %d lease %s; want attempt 2 with a new lease", cur.Attempts, cur.LeaseID)
	}

	late := []struct {
		name string
		call func() error
	}{
		{"heartbeat", func() error {
			_, err := e.svc.Heartbeat(ctx, j.ID, old.LeaseID, &jobs.Progress{Percent: 99})
			return err
		}},
		{"complete", func() error {
			_, err := e.svc.Complete(ctx, j.ID, old.LeaseID, []string{"transcode"}, json.RawMessage(`"late"`))
			return err
		}},
		{"fail retryable", func() error {
			_, err := e.svc.Fail(ctx, j.ID, old.LeaseID, []string{"transcode"}, jobs.Error{Code: "x", Message: "late"}, true)
			return err
		}},
		{"fail", func() error {
			_, err := e.svc.Fail(ctx, j.ID, old.LeaseID, []string{"transcode"}, jobs.Error{Code: "x", Message: "late"}, false)
			return err
		}},
	}
	check := func(when string) {
		t.Helper()
		before := e.record(t, j.ID)
		for _, l := range late {
			if err := l.call(); !errors.Is(err, jobs.ErrLeaseLost) {
				t.Errorf("%s: late %s with the lapsed lease = %v, want ErrLeaseLost", when, l.name, err)
			}
		}
		if after := e.record(t, j.ID); !maps.Equal(before, after) {
			t.Errorf("%s: the late calls changed the record\nbefore %v\n after %v", when, before, after)
		}
	}
	check("while the second worker holds the job")

	if _, err := other.Complete(ctx, j.ID, cur.LeaseID, []string{"transcode"}, json.RawMessage(`"done"`)); err != nil {
		t.Fatalf("Complete by the lease holder: %v", err)
	}
	check("after the second worker completed it")

	got := e.job(t, j.ID)
	if got.Status != jobs.StatusCompleted || string(got.Result) != `"done"` || got.Attempts != 2 {
		t.Errorf("job = %s result %s attempt %d; want COMPLETED \"done\" attempt 2", got.Status, got.Result, got.Attempts)
	}
	if s := e.enq.Scheduled(); !slices.Equal(s, []attemptCall{{jobs.DeliveryID(j.ID), 1}}) {
		t.Errorf("deliveries scheduled = %v, want one first attempt of %s", s, jobs.DeliveryID(j.ID))
	}
}

// TestFailRetryableGoesBackToTheQueue: a retryable failure records the
// attempt's error and schedules the next attempt after the retry delay;
// that task's Run hands the job back to the workers (it never processes an
// external job), who get it as attempt 2.
func TestFailRetryableGoesBackToTheQueue(t *testing.T) {
	e := newEnv(t, externalTypes)
	ctx := context.Background()
	j := e.submitType(t, "transcode", bigPayload)
	c := claimNow(t, e.svc, time.Minute, "transcode")
	e.clock.Advance(5 * time.Second)
	now := e.clock.Now()
	cause := jobs.Error{Code: "gpu_busy", Message: "no GPU free"}

	got, err := e.svc.Fail(ctx, j.ID, c.LeaseID, []string{"transcode"}, cause, true)
	if err != nil || got.Status != jobs.StatusProcessing {
		t.Fatalf("Fail(retryable) = %s, %v; want PROCESSING, nil", got.Status, err)
	}
	at := now.Add(retryDelay(1))
	if calls := e.enq.Calls(); !reflect.DeepEqual(calls, []enqueueCall{{j.ID, 2, at, time.Minute}}) {
		t.Errorf("enqueued %+v, want attempt 2 of %s at now + retry delay %v", calls, j.ID, at)
	}
	stored := e.get(t, "cli_a", j.ID)
	if stored.Status != jobs.StatusProcessing || stored.Attempts != 1 || stored.LastError == nil || *stored.LastError != cause {
		t.Errorf("after Fail: %s attempt %d lastError %+v; want PROCESSING attempt 1 lastError %+v", stored.Status, stored.Attempts, stored.LastError, cause)
	}
	if due := e.due(t, j.ID); !due.Equal(at) {
		t.Errorf("recovery time %v, want the retry time %v (recovery requeues it if the task is lost)", due, at)
	}
	if len(e.enq.Scheduled()) != 0 {
		t.Errorf("a retry scheduled a delivery: %v", e.enq.Scheduled())
	}
	claimNone(t, e.svc, "transcode") // not before its time

	// The retry task, too early (tasks run on whole seconds): nothing.
	if err := e.svc.Run(ctx, j.ID); err != nil {
		t.Fatalf("Run before the retry time: %v", err)
	}
	if l := e.xready(t, "transcode"); len(l) != 0 {
		t.Errorf("Run before the retry time listed the job: %v", l)
	}
	// On time: the job goes back to its workers, unprocessed, uncounted.
	e.clock.Set(at)
	if err := e.svc.Run(ctx, j.ID); err != nil {
		t.Fatalf("Run of the retry task: %v", err)
	}
	if l := e.xready(t, "transcode"); !slices.Equal(l, []string{j.ID}) {
		t.Errorf("transcode list after the retry task = %v, want [%s]", l, j.ID)
	}
	if s := e.job(t, j.ID); s.Attempts != 1 || s.Status != jobs.StatusProcessing {
		t.Errorf("after the retry task: %s attempt %d, want PROCESSING attempt 1 (Run does not claim it)", s.Status, s.Attempts)
	}
	if n := len(e.del.First()); n != 0 {
		t.Errorf("Run delivered %d webhooks for an external job", n)
	}
	again := claimNow(t, e.svc, time.Minute, "transcode")
	if again.Attempts != 2 || string(again.Payload) != bigPayload || again.LeaseID[:2] != "2." {
		t.Errorf("the retry's claim = attempt %d lease %s payload %s; want attempt 2, lease 2.…, the payload byte for byte", again.Attempts, again.LeaseID, again.Payload)
	}
	if s := e.get(t, "cli_a", j.ID); s.LastError == nil || *s.LastError != cause {
		t.Errorf("GetJob during attempt 2: lastError %+v, want the first attempt's %+v", s.LastError, cause)
	}
}

func TestFailEndsTheJob(t *testing.T) {
	cause := jobs.Error{Code: "bad_input", Message: "not a video"}
	tests := []struct {
		name        string
		maxAttempts int
		retryable   bool
		attempts    int // failed attempts before the last
	}{
		{"not retryable", 5, false, 0},
		{"retryable, attempts used up", 2, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, externalTypes, withMaxAttempts(tt.maxAttempts))
			ctx := context.Background()
			j := e.submitType(t, "transcode", `1`)
			var c jobs.Job
			for i := range tt.attempts + 1 {
				if i > 0 {
					e.clock.Advance(retryDelay(i))
					if ok, err := e.store.RequeueExternal(ctx, j.ID, "transcode", e.clock.Now()); !ok || err != nil {
						t.Fatalf("requeue for attempt %d = %v, %v", i+1, ok, err)
					}
				}
				c = claimNow(t, e.svc, time.Minute, "transcode")
				if i < tt.attempts {
					if _, err := e.svc.Fail(ctx, j.ID, c.LeaseID, []string{"transcode"}, jobs.Error{Code: "flaky", Message: "again"}, true); err != nil {
						t.Fatalf("Fail of attempt %d: %v", i+1, err)
					}
				}
			}
			enqueued := len(e.enq.Calls())
			got, err := e.svc.Fail(ctx, j.ID, c.LeaseID, []string{"transcode"}, cause, tt.retryable)
			if err != nil || got.Status != jobs.StatusFailed {
				t.Fatalf("Fail = %s, %v; want FAILED", got.Status, err)
			}
			stored := e.job(t, j.ID)
			if stored.Status != jobs.StatusFailed || stored.Error == nil || *stored.Error != cause || stored.LastError != nil ||
				stored.Attempts != tt.attempts+1 || stored.CompletedAt == nil {
				t.Errorf("stored: %s error %+v lastError %+v attempt %d; want FAILED with %+v at attempt %d", stored.Status, stored.Error,
					stored.LastError, stored.Attempts, cause, tt.attempts+1)
			}
			if calls := e.enq.Calls()[enqueued:]; len(calls) != 0 {
				t.Errorf("a failed job enqueued another attempt: %+v", calls)
			}
			checkDelivery(t, e, j.ID, jobs.EventFailed, `"error":{"code":"bad_input","message":"not a video"}`)
		})
	}
}

// checkDelivery checks that the job's one delivery was created with the
// webhook event and a body holding want, and its first attempt scheduled
// once.
func checkDelivery(t testing.TB, e *env, id, event, want string) webhooks.Delivery {
	t.Helper()
	d, err := e.store.GetDelivery(context.Background(), jobs.DeliveryID(id), false)
	if err != nil {
		t.Fatalf("GetDelivery(%s): %v", jobs.DeliveryID(id), err)
	}
	if d.EventType != event || d.Status != webhooks.StatusPending {
		t.Errorf("delivery of %s: %s %s, want %s PENDING", id, d.EventType, d.Status, event)
	}
	var body struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(d.Payload, &body); err != nil || body.Type != event || !strings.Contains(string(d.Payload), want) {
		t.Errorf("webhook body %s (%v); want type %s and %s", d.Payload, err, event, want)
	}
	if s := e.enq.Scheduled(); !slices.Equal(s, []attemptCall{{jobs.DeliveryID(id), 1}}) {
		t.Errorf("delivery attempts scheduled = %v, want exactly one first attempt of %s", s, jobs.DeliveryID(id))
	}
	return d
}

// TestCompleteTwiceIsOneOutcome: a worker whose complete call's answer was
// lost sends it again: the repeat succeeds, changes nothing, and the job
// has one delivery.
func TestCompleteTwiceIsOneOutcome(t *testing.T) {
	e := newEnv(t, externalTypes)
	ctx := context.Background()
	j := e.submitType(t, "transcode", `1`)
	c := claimNow(t, e.svc, time.Minute, "transcode")
	e.clock.Advance(time.Second)
	done := e.clock.Now()

	got, err := e.svc.Complete(ctx, j.ID, c.LeaseID, []string{"transcode"}, json.RawMessage(bigPayload))
	if err != nil || got.Status != jobs.StatusCompleted {
		t.Fatalf("Complete = %s, %v; want COMPLETED", got.Status, err)
	}
	rec := e.record(t, j.ID)
	e.clock.Advance(time.Second)
	for _, result := range []string{bigPayload, `"something else"`} {
		again, err := e.svc.Complete(ctx, j.ID, c.LeaseID, []string{"transcode"}, json.RawMessage(result))
		if err != nil || again.Status != jobs.StatusCompleted {
			t.Errorf("Complete repeated with result %s = %s, %v; want COMPLETED, nil", result, again.Status, err)
		}
	}
	if after := e.record(t, j.ID); !maps.Equal(rec, after) {
		t.Errorf("the repeats changed the record\nbefore %v\n after %v", rec, after)
	}
	stored := e.job(t, j.ID)
	if string(stored.Result) != bigPayload || stored.CompletedAt == nil || !stored.CompletedAt.Equal(done) || stored.Payload != nil {
		t.Errorf("stored: result %s completedAt %v payload %s; want the first result byte for byte, completed at %v, payload dropped",
			stored.Result, stored.CompletedAt, stored.Payload, done)
	}
	checkDelivery(t, e, j.ID, jobs.EventCompleted, `"result":`+bigPayload)
	// A failure after the outcome is refused: the job is not the worker's.
	if _, err := e.svc.Fail(ctx, j.ID, c.LeaseID, []string{"transcode"}, jobs.Error{Code: "x"}, false); !errors.Is(err, jobs.ErrFinished) {
		t.Errorf("Fail after Complete = %v, want ErrFinished", err)
	}
}

func TestWorkerCallsRefused(t *testing.T) {
	e := newEnv(t, externalTypes)
	ctx := context.Background()
	ext := e.submitType(t, "transcode", `1`)
	c := claimNow(t, e.svc, time.Minute, "transcode")
	echo := e.submitType(t, "echo", `1`)
	e.clock.Advance(time.Second) // see TestHeartbeatsAreCoalesced
	rec := e.record(t, ext.ID)
	tests := []struct {
		name    string
		id      string
		lease   string
		types   []string
		result  string
		wantErr error
	}{
		{"another type's worker", ext.ID, c.LeaseID, []string{"thumbnail"}, `1`, jobs.ErrTypeForbidden},
		{"a job not done by workers", echo.ID, "1.60.abc", []string{"echo"}, `1`, jobs.ErrNotFound},
		{"no such job", "req_01KJ0000000000000000000000", c.LeaseID, []string{"transcode"}, `1`, jobs.ErrNotFound},
		{"malformed lease id", ext.ID, "garbage", []string{"transcode"}, `1`, jobs.ErrLeaseLost},
		{"lease id of no claim", ext.ID, "1.60.0123456789abcdef01234567", []string{"transcode"}, `1`, jobs.ErrLeaseLost},
		{"another attempt's lease", ext.ID, "2" + c.LeaseID[1:], []string{"transcode"}, `1`, jobs.ErrLeaseLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.svc.Complete(ctx, tt.id, tt.lease, tt.types, json.RawMessage(tt.result)); !errors.Is(err, tt.wantErr) {
				t.Errorf("Complete = %v, want %v", err, tt.wantErr)
			}
			if _, err := e.svc.Fail(ctx, tt.id, tt.lease, tt.types, jobs.Error{Code: "x"}, true); !errors.Is(err, tt.wantErr) {
				t.Errorf("Fail = %v, want %v", err, tt.wantErr)
			}
		})
	}
	t.Run("a result that is not JSON", func(t *testing.T) {
		_, err := e.svc.Complete(ctx, ext.ID, c.LeaseID, []string{"transcode"}, json.RawMessage(`{"a":1,"a":2}`))
		var ve *jobs.ValidationError
		if !errors.As(err, &ve) || ve.Fields[0].Field != "result" {
			t.Errorf("Complete with duplicate keys = %v, want a ValidationError on result", err)
		}
	})
	if after := e.record(t, ext.ID); !maps.Equal(rec, after) {
		t.Errorf("refused calls changed the record\nbefore %v\n after %v", rec, after)
	}
	if _, err := e.svc.Heartbeat(ctx, ext.ID, "garbage", nil); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Errorf("Heartbeat with a malformed lease id = %v, want ErrLeaseLost", err)
	}
}

// TestClaimEndsJobsItCannotGive: a job met by a claim after its deadline
// expires instead (its expiry task was lost or late), and one whose
// workers' leases lapsed until its attempts ran out fails; neither is
// handed out.
func TestClaimEndsJobsItCannotGive(t *testing.T) {
	ctx := context.Background()
	t.Run("past its deadline", func(t *testing.T) {
		e := newEnv(t, externalTypes)
		sub := echoSub(`1`)
		sub.Type = "transcode"
		deadline := e.clock.Now().Add(time.Minute)
		sub.Deadline = &deadline
		j := e.submit(t, "cli_a", sub)
		e.clock.Set(deadline)
		claimNone(t, e.svc, "transcode")
		if got := e.job(t, j.ID); got.Status != jobs.StatusExpired || errorCode(got.Error) != "deadline_exceeded" {
			t.Errorf("job claimed at its deadline: %s %+v, want EXPIRED deadline_exceeded", got.Status, got.Error)
		}
		checkDelivery(t, e, j.ID, jobs.EventExpired, `"status":"EXPIRED"`)
	})
	t.Run("attempts used up by lapsed leases", func(t *testing.T) {
		e := newEnv(t, externalTypes, withMaxAttempts(2))
		j := e.submitType(t, "transcode", `1`)
		for range 2 {
			claimNow(t, e.svc, time.Second, "transcode")
			e.clock.Advance(2 * time.Second)
			if ok, err := e.store.RequeueExternal(ctx, j.ID, "transcode", e.clock.Now()); !ok || err != nil {
				t.Fatalf("requeue = %v, %v", ok, err)
			}
		}
		claimNone(t, e.svc, "transcode")
		got := e.job(t, j.ID)
		if got.Status != jobs.StatusFailed || errorCode(got.Error) != "attempts_exhausted" {
			t.Errorf("job after 2 lapsed leases (max 2 attempts): %s %+v, want FAILED attempts_exhausted", got.Status, got.Error)
		}
		checkDelivery(t, e, j.ID, jobs.EventFailed, `"code":"attempts_exhausted"`)
	})
}

// TestRetryableFailEndsTheLease: a worker that reported a retryable
// failure gave the job up; its lease can neither renew nor finish it.
func TestRetryableFailEndsTheLease(t *testing.T) {
	e := newEnv(t, externalTypes)
	ctx := context.Background()
	j := e.submitType(t, "transcode", bigPayload)
	c := claimNow(t, e.svc, time.Minute, "transcode")
	e.clock.Advance(time.Second) // a frozen clock would make the write look like a repeat of the claim's
	if _, err := e.svc.Fail(ctx, j.ID, c.LeaseID, []string{"transcode"}, jobs.Error{Code: "busy", Message: "later"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Complete(ctx, j.ID, c.LeaseID, []string{"transcode"}, json.RawMessage(`1`)); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Errorf("Complete after a retryable Fail = %v, want ErrLeaseLost", err)
	}
	e.clock.Advance(2 * time.Second) // past the coalescing window
	if _, err := e.svc.Heartbeat(ctx, j.ID, c.LeaseID, nil); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Errorf("Heartbeat after a retryable Fail = %v, want ErrLeaseLost", err)
	}
	if got := e.get(t, "cli_a", j.ID); got.Status != jobs.StatusProcessing || got.Result != nil {
		t.Errorf("job = %s result %s; want PROCESSING, waiting for its retry", got.Status, got.Result)
	}
}

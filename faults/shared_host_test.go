package faults

import (
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
)

// TestSharedHostIsolation is the proof that one endpoint's failures do not
// hold back another endpoint on the same host:port. With the breaker and
// the caps at their defaults (5 failures, 30 s cool-down, 10 per host), 20
// jobs go to a path that always answers 500, then 5 jobs to a healthy path
// of the same receiver. Every healthy webhook must arrive within 1 s of its
// submission (before per-endpoint breakers it took 14 to 18 minutes), and
// the failing deliveries must keep their own schedule and end FAILED. The
// retry policy is shortened (1 s initial, 3 attempts) so that they end
// within the test; that is the only setting changed.
//
// It runs twice: with the failing path owned by the same client, and by
// another client.
func TestSharedHostIsolation(t *testing.T) {
	for _, tc := range []struct {
		name         string
		otherFailing bool
	}{{"same client", false}, {"failing path owned by another client", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sharedHostIsolation(t, tc.otherFailing)
		})
	}
}

func sharedHostIsolation(t *testing.T, otherFailing bool) {
	const failing, healthy = 20, 5
	const cooldown = 30 * time.Second // the default BOOMERANG_BREAKER_COOLDOWN
	rcv := newReceiver(t, nil, nil)
	rcv.byPath = map[string]string{"/fail": answer500, "/ok": answerOK}
	svc := startService(t, map[string]string{
		"BOOMERANG_REDIS_URL":          redistest.URL(t),
		"BOOMERANG_RETRY_INITIAL":      "1s",
		"BOOMERANG_RETRY_MAX_ATTEMPTS": "3",
	})
	good := svc.newClient("good")
	bad := good
	if otherFailing {
		bad = svc.newClient("bad")
	}
	start := time.Now()
	var failIDs []string
	for i := 0; i < failing; i++ {
		code, id, _, err := svc.submit(bad.APIKey, rcv.url("/fail"), map[string]int{"n": i})
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("submit to /fail: %d %v", code, err)
		}
		failIDs = append(failIDs, id)
	}
	// Let the failing endpoint's circuit open before the healthy jobs come.
	waitFor(t, "5 failures at /fail", 20*time.Second, func() bool { return pathCount(rcv, "/fail") >= 5 })

	submitted := map[string]time.Time{}
	for i := 0; i < healthy; i++ {
		time.Sleep(200 * time.Millisecond)
		at := time.Now()
		code, id, _, err := svc.submit(good.APIKey, rcv.url("/ok"), map[string]int{"n": i})
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("submit to /ok: %d %v", code, err)
		}
		submitted[id] = at
	}
	waitFor(t, "every healthy webhook", 30*time.Second, func() bool { return pathCount(rcv, "/ok") >= healthy })
	for _, h := range rcv.all() {
		if at, ok := submitted[h.requestID]; ok {
			took := h.at.Sub(at)
			t.Logf("healthy webhook %s arrived %v after its submission", h.requestID, took.Round(time.Millisecond))
			if took > time.Second {
				t.Errorf("healthy webhook %s arrived %v after its submission, want within 1 s", h.requestID, took)
			}
		}
	}

	// The failing endpoint's deferrals are visible while they last.
	sawDeferred := false
	for _, id := range failIDs {
		var d deliveryDetail
		svc.call("GET", "/admin/v1/deliveries/"+deliveryOf(id), adminToken, nil, &d)
		if d.DeferredReason == "endpoint-circuit-open" && d.DeferredUntil != nil {
			sawDeferred = true
			break
		}
	}
	if !sawDeferred {
		t.Error("no failing delivery showed deferredReason endpoint-circuit-open with deferredUntil")
	}

	// Every failing delivery ends FAILED, on its own schedule: no attempt
	// earlier than planned, none later than planned plus one cool-down
	// (an attempt waits for the circuit at most once).
	deadline := time.Now().Add(5 * time.Minute)
	var mu sync.Mutex
	shortCircuited, sent := 0, 0
	for _, id := range failIDs {
		var d deliveryDetail
		for {
			svc.call("GET", "/admin/v1/deliveries/"+deliveryOf(id), adminToken, nil, &d)
			if d.Status == "FAILED" || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if d.Status != "FAILED" || len(d.Attempts) != 3 {
			t.Errorf("delivery of %s: %s with %d attempts after 5 minutes, want FAILED after 3", id, d.Status, len(d.Attempts))
			continue
		}
		// A deferred attempt is a task due a second past the circuit's
		// reopening: asynq keeps whole seconds (up to 1 s), moves due tasks
		// at each check (1 s) and polls an idle queue each second (1 s); the
		// circuit opened a little after creation, and CI runs this on a
		// loaded machine. Two cool-downs would still be far outside this.
		slack := 5 * time.Second
		if late := d.Attempts[0].StartedAt.Sub(d.CreatedAt); late > cooldown+slack {
			t.Errorf("delivery of %s: first attempt %v after creation, want at most one cool-down", id, late)
		}
		for k := 1; k < len(d.Attempts); k++ {
			prev, cur := d.Attempts[k-1], d.Attempts[k]
			if prev.NextAttemptAt == nil {
				t.Errorf("delivery of %s: attempt %d has no next attempt time", id, prev.Number)
				continue
			}
			if early := prev.NextAttemptAt.Sub(cur.StartedAt); early > 50*time.Millisecond {
				t.Errorf("delivery of %s: attempt %d ran %v before it was due", id, cur.Number, early)
			}
			if late := cur.StartedAt.Sub(*prev.NextAttemptAt); late > cooldown+slack {
				t.Errorf("delivery of %s: attempt %d ran %v after it was due, want at most one cool-down", id, cur.Number, late)
			}
		}
		mu.Lock()
		for _, a := range d.Attempts {
			switch a.ErrorClass {
			case "circuit-open":
				shortCircuited++
			case "status":
				sent++
			default:
				t.Errorf("delivery of %s: attempt %d has error class %q", id, a.Number, a.ErrorClass)
			}
		}
		mu.Unlock()
	}
	if got := pathCount(rcv, "/fail"); got != sent {
		t.Errorf("the receiver saw %d requests at /fail, the attempt logs record %d sent", got, sent)
	}
	logs, _ := os.ReadFile(svc.logPath)
	deferLines := strings.Count(string(logs), `"msg":"delivery attempt deferred"`)
	if deferLines == 0 {
		t.Error("no deferral was logged")
	}
	t.Logf("failing endpoint: %d attempts sent, %d failed without a request while its circuit was open, of %d; "+
		"%d deferral log lines (rate-limited); elapsed %v",
		sent, shortCircuited, failing*3, deferLines, time.Since(start).Round(time.Second))
}

type deliveryDetail struct {
	Status         string
	CreatedAt      time.Time
	DeferredUntil  *time.Time
	DeferredReason string
	Attempts       []struct {
		Number        int
		StartedAt     time.Time
		NextAttemptAt *time.Time
		ErrorClass    string
	}
}

// deliveryOf is the delivery id of a request id.
func deliveryOf(requestID string) string { return "msg_" + strings.TrimPrefix(requestID, "req_") }

func pathCount(r *receiver, path string) int {
	n := 0
	for _, h := range r.all() {
		if h.path == path {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

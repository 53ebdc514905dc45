package faults

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
)

// attemptView is one entry of GET /admin/v1/deliveries/{id} → attempts.
type attemptView struct {
	Number        int        `json:"number"`
	StatusCode    int        `json:"statusCode"`
	ErrorClass    string     `json:"errorClass"`
	Error         string     `json:"error"`
	Outcome       string     `json:"outcome"`
	StartedAt     time.Time  `json:"startedAt"`
	DurationMs    int64      `json:"durationMs"`
	NextAttemptAt *time.Time `json:"nextAttemptAt"`
}

// wantAttempt is what the attempt log must say about each receiver answer:
// classify() in webhooks/dispatch.go gives "status" for any non-2xx answer,
// "timeout" for a deadline (the hang), and "connect" for a connection the
// receiver reset (ECONNRESET or EOF before an answer).
var wantAttempt = map[string]struct {
	status       int
	class        string
	outcome      string
	finalAllowed bool
}{
	answerOK:    {http.StatusNoContent, "", "delivered", true},
	answer500:   {http.StatusInternalServerError, "status", "retry", false},
	answer429:   {http.StatusTooManyRequests, "status", "retry", false},
	answerReset: {0, "connect", "retry", false},
	answerHang:  {0, "timeout", "retry", false},
}

// TestHostileReceiver delivers 200 webhooks to a receiver that fails about
// half of the requests, drawn with a fixed seed: 500s, connection resets,
// hangs past the 500 ms delivery timeout and 429 with Retry-After: 1. Every
// delivery must end DELIVERED, and its attempt log must match what the
// receiver saw, request for request.
func TestHostileReceiver(t *testing.T) {
	t.Parallel()
	start := time.Now()
	const jobs = 200

	var rngMu sync.Mutex
	rng := rand.New(rand.NewPCG(20260301, 7))
	decide := func(int) string {
		rngMu.Lock()
		defer rngMu.Unlock()
		switch r := rng.Float64(); {
		case r < 0.125:
			return answer500
		case r < 0.25:
			return answerReset
		case r < 0.375:
			return answerHang
		case r < 0.5:
			return answer429
		}
		return answerOK
	}
	rcv := newReceiver(t, decide, nil)
	svc := startService(t, map[string]string{
		"BOOMERANG_REDIS_URL":          redistest.URL(t),
		"BOOMERANG_DELIVERY_TIMEOUT":   "500ms",
		"BOOMERANG_RETRY_INITIAL":      "100ms",
		"BOOMERANG_RETRY_MAX_INTERVAL": "1s",
		"BOOMERANG_RETRY_MAX_ATTEMPTS": "30",
		"BOOMERANG_BREAKER_THRESHOLD":  "0", // no circuit breaker: it would change the counts
	})
	cl := svc.newClient("hostile")
	rcv.setSecret(cl.SigningSecret)

	var accepted []string
	for i := 0; i < jobs; i++ {
		code, id, _, err := svc.submit(cl.APIKey, rcv.url("/hostile"), map[string]int{"n": i})
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("submit %d: status %d, error %v", i, code, err)
		}
		accepted = append(accepted, id)
	}
	views := svc.waitJobsDone(cl.APIKey, accepted, 3*time.Minute)
	elapsed := time.Since(start)
	lost, _ := dedupReport(t, rcv, accepted, views)

	seen := map[string][]hook{} // webhook-id → requests in arrival order
	answers := map[string]int{}
	for _, h := range rcv.all() {
		seen[h.webhookID] = append(seen[h.webhookID], h)
		answers[h.answer]++
	}
	classes, connectErrors := map[string]int{}, map[string]int{}
	maxAttempts, mismatches := 0, 0
	minWaitAfter429 := time.Duration(-1)
	for _, id := range accepted {
		v := views[id]
		if v.Delivery == nil {
			continue // reported by dedupReport
		}
		var d struct {
			Status   string        `json:"status"`
			Attempts []attemptView `json:"attempts"`
		}
		code, _, err := svc.call("GET", "/admin/v1/deliveries/"+v.Delivery.ID, adminToken, nil, &d)
		if err != nil || code != http.StatusOK {
			t.Errorf("GET delivery %s: status %d, error %v", v.Delivery.ID, code, err)
			continue
		}
		reqs := seen[v.Delivery.ID]
		maxAttempts = max(maxAttempts, len(d.Attempts))
		if len(d.Attempts) != len(reqs) || v.Delivery.Attempts != len(reqs) {
			mismatches++
			t.Errorf("delivery %s: attempt log has %d entries (count %d), receiver saw %d requests %v",
				v.Delivery.ID, len(d.Attempts), v.Delivery.Attempts, len(reqs), answersOf(reqs))
			continue
		}
		for i, a := range d.Attempts {
			want := wantAttempt[reqs[i].answer]
			classes[a.ErrorClass]++
			if a.ErrorClass == "connect" {
				connectErrors[a.Error]++
			}
			last := i == len(d.Attempts)-1
			if a.Number != i+1 || a.StatusCode != want.status || a.ErrorClass != want.class || a.Outcome != want.outcome ||
				last != want.finalAllowed {
				mismatches++
				t.Errorf("delivery %s attempt %d: number %d, status %d, class %q, outcome %q (%s); the receiver answered %q, want status %d, class %q, outcome %q",
					v.Delivery.ID, i+1, a.Number, a.StatusCode, a.ErrorClass, a.Outcome, a.Error, reqs[i].answer, want.status, want.class, want.outcome)
			}
			if reqs[i].answer == answer429 && a.NextAttemptAt != nil {
				wait := a.NextAttemptAt.Sub(a.StartedAt.Add(time.Duration(a.DurationMs) * time.Millisecond))
				if minWaitAfter429 < 0 || wait < minWaitAfter429 {
					minWaitAfter429 = wait
				}
			}
		}
	}
	if lost != 0 {
		t.Errorf("lost %d deliveries", lost)
	}
	t.Logf("hostile receiver: %d jobs, lost=%d, %d requests (answers %v), successful answers beyond one per delivery=%d, "+
		"attempt-log classes %v (connect errors: %v), mismatches=%d, most attempts of one delivery %d, shortest wait scheduled after a 429: %v; all delivered in %v",
		len(accepted), lost, rcv.count(), answers, answers[answerOK]-len(accepted), classes, connectErrors, mismatches, maxAttempts,
		minWaitAfter429.Round(time.Millisecond), elapsed.Round(time.Millisecond))
}

func answersOf(hs []hook) string {
	s := ""
	for _, h := range hs {
		s += fmt.Sprintf("%s ", h.answer)
	}
	return s
}

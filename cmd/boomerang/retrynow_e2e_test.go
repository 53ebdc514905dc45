package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
)

type deliveryState struct {
	ID, Status   string
	AttemptCount int
	Attempts     []struct{ Number, StatusCode int }
}

// TestRetryNowEndToEnd: deliveries fail against a broken receiver and wait
// an hour for their retry; once the receiver is fixed, retry-now delivers
// one at once (in the answer), and the bulk retry-now the client's others
// within seconds, each with one attempt more and no attempt counted twice.
func TestRetryNowEndToEnd(t *testing.T) {
	svc := startService(t, map[string]string{
		"BOOMERANG_REDIS_URL":     redistest.URL(t),
		"BOOMERANG_RETRY_INITIAL": "1h",
	})
	svc.createClient("retry-now")
	rcv := newReceiver(t)
	rcv.setFailOn(func(string, int) bool { return true })
	var dlv []string
	for i := range 3 {
		id := svc.submit("echo", rcv.srv.URL+"/hook", map[string]int{"n": i})
		waitFor(t, "the first failed attempt of "+id, 10*time.Second, func() bool {
			j := svc.job(id)
			return j.Delivery != nil && j.Delivery.Attempts == 1
		})
		dlv = append(dlv, svc.job(id).Delivery.ID)
	}
	rcv.setFailOn(func(string, int) bool { return false }) // fixed

	var one deliveryState
	if code, _ := svc.call("POST", "/admin/v1/deliveries/"+dlv[0]+"/retry-now", svc.admin, nil, &one); code != http.StatusOK ||
		one.Status != "DELIVERED" || one.AttemptCount != 2 || len(one.Attempts) != 2 || one.Attempts[1].StatusCode != http.StatusNoContent {
		t.Fatalf("retry-now of %s: %d %+v; want 200, DELIVERED after a second attempt answered 204", dlv[0], code, one)
	}
	var prob struct {
		Type, Detail string
		Status       int
	}
	if code, _ := svc.call("POST", "/admin/v1/deliveries/"+dlv[0]+"/retry-now", svc.admin, nil, &prob); code != http.StatusConflict ||
		!strings.HasSuffix(prob.Type, "/delivery-not-pending") || !strings.Contains(prob.Detail, "DELIVERED") {
		t.Errorf("retry-now of a DELIVERED delivery: %d %+v; want 409 delivery-not-pending naming DELIVERED", code, prob)
	}

	var counts struct {
		DryRun                    bool
		Matched, Retried, Skipped int
	}
	body := map[string]any{"clientId": svc.clientID, "dryRun": true}
	if code, _ := svc.call("POST", "/admin/v1/deliveries/retry-now", svc.admin, body, &counts); code != http.StatusOK || !counts.DryRun || counts.Matched != 2 || counts.Retried != 0 {
		t.Errorf("bulk retry-now dry run: %d %+v; want 200, 2 matched, none retried", code, counts)
	}
	if got := len(rcv.all()); got != 4 {
		t.Errorf("after the dry run the receiver got %d webhooks, want 4 (3 failed, 1 retried)", got)
	}
	body["dryRun"] = false
	if code, _ := svc.call("POST", "/admin/v1/deliveries/retry-now", svc.admin, body, &counts); code != http.StatusOK || counts.Matched != 2 || counts.Retried != 2 {
		t.Errorf("bulk retry-now: %d %+v; want 200, 2 matched and retried", code, counts)
	}
	for _, id := range dlv[1:] {
		var d deliveryState
		waitFor(t, id+" DELIVERED", 10*time.Second, func() bool {
			svc.call("GET", "/admin/v1/deliveries/"+id, svc.admin, nil, &d)
			return d.Status == "DELIVERED"
		})
		if d.AttemptCount != 2 || len(rcv.byID(id)) != 2 {
			t.Errorf("%s: %d attempts, %d webhooks received; want 2 and 2", id, d.AttemptCount, len(rcv.byID(id)))
		}
	}
	for _, g := range rcv.all() {
		verify(t, svc.secret, g)
	}
}

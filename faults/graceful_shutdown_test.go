package faults

import (
	"net/http"
	"testing"
	"time"
)

// TestGracefulShutdown SIGTERMs the service while deliveries are in
// flight: it must exit 0 within its shutdown timeout (plus a little), and
// after a restart every job is delivered, with no lease-recovery wait.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	start := time.Now()
	const jobs, shutdownTimeout = 300, 5 * time.Second
	const termAt = 100 // webhooks received before the SIGTERM

	rds := startRedis(t, aof...)
	rcv := newReceiver(t, nil, func(int) time.Duration { return 200 * time.Millisecond })
	svc := startService(t, map[string]string{
		"BOOMERANG_REDIS_URL":        rds.url(),
		"BOOMERANG_SHUTDOWN_TIMEOUT": shutdownTimeout.String(),
		"BOOMERANG_CONCURRENCY":      "10", // 50 webhooks/s at 200 ms each: the run lasts a few seconds
	})
	cl := svc.newClient("graceful")
	rcv.setSecret(cl.SigningSecret)

	var accepted []string
	for i := 0; i < jobs; i++ {
		code, id, _, err := svc.submit(cl.APIKey, rcv.url("/graceful"), map[string]int{"n": i})
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("submit %d: status %d, error %v", i, code, err)
		}
		accepted = append(accepted, id)
	}
	for i := 0; i < 3000 && rcv.count() < termAt; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	atTerm := rcv.count()
	code, took, err := svc.terminate(shutdownTimeout + 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	before := rcv.coverage(accepted)
	requestsBefore := rcv.count()
	if code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if limit := shutdownTimeout + 3*time.Second; took > limit {
		t.Errorf("exit took %v after SIGTERM, want at most the shutdown timeout + 3s = %v", took, limit)
	}

	restarted := time.Now()
	if err := svc.start(); err != nil {
		t.Fatal(err)
	}
	st := waitSettled(svc, rcv, cl.APIKey, accepted, 4*time.Minute)
	covered, arrived, views := st.covered, st.arrived, st.views
	lost, dups := dedupReport(t, rcv, accepted, views)
	if lost != 0 || covered != len(accepted) {
		t.Errorf("lost %d of %d jobs", lost, len(accepted))
	}
	retried := 0
	for _, v := range views {
		if v.Delivery != nil && v.Delivery.Attempts > 1 {
			retried++
		}
	}
	t.Logf("graceful shutdown: SIGTERM at %d webhooks received, exit code %d after %v; %d of %d jobs delivered before the restart "+
		"(%d requests), %d after; lost=%d, duplicates=%d (same webhook-id), deliveries with more than one attempt: %d; "+
		"all arrived %v after the restart, all shown DELIVERED %v after it; elapsed %v",
		atTerm, code, took.Round(time.Millisecond), before, len(accepted), requestsBefore, len(accepted)-before, lost, dups, retried,
		arrived.Sub(restarted).Round(time.Millisecond), st.recorded.Sub(restarted).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

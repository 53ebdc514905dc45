package faults

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWorkerKilled SIGKILLs the service twice while 1 000 jobs are in
// flight and restarts it on the same port each time. asynq's recoverer
// re-runs the killed tasks after their lease (~65 s); every job that got a
// 202 must then be delivered, duplicates only under the same webhook-id.
func TestWorkerKilled(t *testing.T) {
	t.Parallel()
	start := time.Now()
	const jobs, submitters = 1000, 4
	killAt := []int{300, 600} // webhooks received before each SIGKILL

	rds := startRedis(t, aof...)
	// 20–50 ms per answer, so that work is in flight when the kill comes.
	rcv := newReceiver(t, nil, func(seq int) time.Duration { return time.Duration(20+(seq*7919)%31) * time.Millisecond })
	svc := startService(t, map[string]string{"BOOMERANG_REDIS_URL": rds.url(), "BOOMERANG_CONCURRENCY": "20"})
	cl := svc.newClient("worker-killed")
	rcv.setSecret(cl.SigningSecret)

	var kills []time.Time
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		for _, at := range killAt {
			deadline := time.Now().Add(60 * time.Second)
			for rcv.count() < at && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
			}
			if rcv.count() < at {
				t.Errorf("receiver saw only %d webhooks in 60s, wanted %d before the kill", rcv.count(), at)
				return
			}
			if err := svc.kill(); err != nil {
				t.Error(err)
				return
			}
			kills = append(kills, time.Now())
			t.Logf("SIGKILL at %d webhooks received, %v after start", rcv.count(), time.Since(start).Round(time.Millisecond))
			if err := svc.start(); err != nil {
				t.Errorf("restart after SIGKILL: %v", err)
				return
			}
		}
	}()

	var (
		mu                 sync.Mutex
		accepted           []string
		transportErrs, s5x atomic.Int64
	)
	var wg sync.WaitGroup
	giveUp := time.Now().Add(2 * time.Minute) // for all submissions together
	for w := 0; w < submitters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < jobs; i += submitters {
				deadline := time.Now().Add(60 * time.Second)
				if deadline.After(giveUp) {
					deadline = giveUp
				}
				for try := 0; ; try++ {
					code, id, _, err := svc.submit(cl.APIKey, rcv.url("/killed"), map[string]int{"n": i})
					if err == nil && code == http.StatusAccepted {
						mu.Lock()
						accepted = append(accepted, id)
						mu.Unlock()
						break
					}
					switch {
					case err != nil:
						transportErrs.Add(1) // the service is down or was killed mid-request
					case code == http.StatusServiceUnavailable:
						s5x.Add(1)
					default:
						t.Errorf("submit %d: status %d", i, code)
						return
					}
					if try >= 1000 || time.Now().After(deadline) {
						t.Errorf("submit %d: no 202 in time", i)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	<-killerDone
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("submitted: %d × 202, %d transport errors and %d × 503 retried, in %v",
		len(accepted), transportErrs.Load(), s5x.Load(), time.Since(start).Round(time.Millisecond))

	// Tasks killed mid-run come back after asynq's lease recovery (~65 s).
	st := waitSettled(svc, rcv, cl.APIKey, accepted, 4*time.Minute)
	covered, arrived, views := st.covered, st.arrived, st.views
	lost, dups := dedupReport(t, rcv, accepted, views)
	if lost != 0 || covered != len(accepted) {
		t.Errorf("lost %d of %d jobs that got a 202", lost, len(accepted))
	}
	sinceKill := time.Duration(0)
	if len(kills) > 0 {
		sinceKill = arrived.Sub(kills[len(kills)-1])
	}
	orphans := len(requestIDs(rcv)) - rcv.coverage(accepted)
	t.Logf("worker killed ×%d: %d jobs accepted, lost=%d, duplicates=%d (same webhook-id), %d webhook requests, "+
		"%d requestIds delivered whose submission got no answer (killed mid-request); "+
		"all arrived %v after start (%v after the last kill), all shown DELIVERED %v after start; elapsed %v",
		len(kills), len(accepted), lost, dups, rcv.count(), orphans, arrived.Sub(start).Round(time.Millisecond),
		sinceKill.Round(time.Millisecond), st.recorded.Sub(start).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

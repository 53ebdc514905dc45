package recovery_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/recovery"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// TestRecoveryEndToEnd runs the real sweep, task queue and task server on
// the real clock: a job whose hint was lost and a job whose worker died
// holding it are both run by the recovery's tasks and delivered once.
func TestRecoveryEndToEnd(t *testing.T) {
	ctx := context.Background()
	const recoverIn = time.Second // the real clock waits it out
	rdb := redistest.Client(t)
	var mu sync.Mutex
	got := map[string]int{} // webhook-id → deliveries
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.Header.Get("webhook-id")]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	store, err := redisstore.New(ctx, rdb, redisstore.Options{Partitions: 2, Retention: time.Hour, RecoverAfter: recoverIn})
	if err != nil {
		t.Fatal(err)
	}
	cl := clients.NewService(store, clients.Options{})
	c, _, _, err := cl.Create(ctx, "tenant")
	if err != nil {
		t.Fatal(err)
	}
	queue := tasks.NewQueue(rdb, store.Tags(), 5*time.Second)
	policy := egress.Policy{AllowPrivate: true}
	dispatcher := webhooks.NewDispatcher(webhooks.DispatcherOptions{Store: store, Transport: policy.Transport(), Secrets: cl,
		Scheduler: queue, Replays: queue, Timeout: 5 * time.Second,
		Policy: webhooks.RetryPolicy{Initial: time.Second, MaxInterval: time.Minute, MaxAttempts: 3}})
	reg := jobs.NewRegistry()
	reg.Register("echo", jobs.Echo, 10*time.Second)
	svc := jobs.NewService(jobs.ServiceOptions{Store: store, Registry: reg, URLs: egress.Checker{Policy: policy},
		Enqueuer: queue, Deliverer: dispatcher, Lease: 30 * time.Second, Partitions: 2})

	submit := func() jobs.Job {
		j, _, err := svc.Submit(ctx, c.ID, jobs.Submission{Type: "echo", CallbackURL: receiver.URL})
		if err != nil {
			t.Fatal(err)
		}
		if id, err := store.NextReady(ctx, ids.Partition(j.ID), time.Second); err != nil || id != j.ID {
			t.Fatalf("NextReady = %q, %v; want %s", id, err, j.ID)
		}
		return j
	}
	lostHint := submit()
	deadWorker := submit()
	now := time.Now()
	if _, err := store.ClaimJob(ctx, deadWorker.ID, now, now.Add(recoverIn)); err != nil {
		t.Fatal(err)
	}

	srv := tasks.NewServer(rdb, store.Tags(), tasks.ServerOptions{Concurrency: 4, TaskCheckInterval: 10 * time.Millisecond,
		DelayedTaskCheckInterval: 50 * time.Millisecond, ShutdownTimeout: 5 * time.Second},
		tasks.Handlers{RunJob: svc.Run, Attempt: dispatcher.Attempt, RunBulkReplay: dispatcher.RunBulkReplay})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	sweeper := &recovery.Sweeper{Store: store, Clients: cl, Queue: queue, JobTimeout: 10 * time.Second,
		RecoverAfter: recoverIn, ReplayGrace: time.Minute, Retention: time.Hour, Now: time.Now}
	stop := sweeper.Start(ctx, 20*time.Millisecond, time.Hour)
	defer stop()

	start := time.Now()
	wantAttempts := map[string]int{lostHint.ID: 1, deadWorker.ID: 2}
	for id := range wantAttempts {
		eventually(t, "the delivery of "+id, func() bool {
			d, err := store.GetDelivery(ctx, jobs.DeliveryID(id), false)
			return err == nil && d.Status == webhooks.StatusDelivered
		})
	}
	t.Logf("both jobs recovered and delivered %v after the sweep started", time.Since(start).Round(time.Millisecond))
	stop()
	srv.Shutdown()
	for id, attempts := range wantAttempts {
		j, err := store.GetJob(ctx, id)
		if err != nil || j.Status != jobs.StatusCompleted || j.Attempts != attempts {
			t.Errorf("job %s: %s after %d attempts, %v; want COMPLETED after %d", id, j.Status, j.Attempts, err, attempts)
		}
		mu.Lock()
		n := got[jobs.DeliveryID(id)]
		mu.Unlock()
		if n != 1 {
			t.Errorf("the receiver got the webhook of %s %d times, want once", id, n)
		}
	}
}

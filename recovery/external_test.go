package recovery_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/recovery"
)

// externalJobs is the world's job service with "transcode" done by
// external workers, on the clock now.
func externalJobs(w *world, now func() time.Time) *jobs.Service {
	reg := jobs.NewRegistry()
	reg.RegisterExternal("transcode")
	return jobs.NewService(jobs.ServiceOptions{Store: w.store, Registry: reg, URLs: egress.Checker{Policy: egress.Policy{AllowPrivate: true}},
		Enqueuer: w.queue, Deliverer: w.deliverer, Now: now, MaxAttempts: 3, RetryDelay: func(int) time.Duration { return retryDelay }})
}

func submitExternal(t *testing.T, w *world, svc *jobs.Service) jobs.Job {
	t.Helper()
	j, _, err := svc.Submit(context.Background(), w.clientID, jobs.Submission{Type: "transcode", Payload: json.RawMessage(`1`), CallbackURL: w.receiverURL})
	if err != nil {
		t.Fatalf("Submit(transcode): %v", err)
	}
	return j
}

func claimExternal(t *testing.T, svc *jobs.Service, lease time.Duration) jobs.Job {
	t.Helper()
	j, ok, err := svc.Claim(context.Background(), jobs.ClaimOptions{Types: []string{"transcode"}, Lease: lease})
	if err != nil || !ok {
		t.Fatalf("Claim = ok %v, %v; want a job", ok, err)
	}
	return j
}

func (w *world) xready(t *testing.T) []string {
	t.Helper()
	l, err := w.rdb.LRange(context.Background(), indexKey(w.store.Tags()[0], "xready:transcode"), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRepairRequeuesALapsedLease: a worker's lease is the record's
// recovery time; the sweep at that time hands the job straight back to
// the workers (no task), the attempt counted, and the late worker is
// refused.
func TestRepairRequeuesALapsedLease(t *testing.T) {
	w := newWorld(t, 1)
	svc := externalJobs(w, w.clk.Now)
	ctx := context.Background()
	j := submitExternal(t, w, svc)
	w.clk.Advance(time.Second)
	old := claimExternal(t, svc, 2*time.Second)
	lapse := w.clk.Now().Add(2 * time.Second)

	w.clk.Set(lapse.Add(-time.Millisecond))
	r, next, calls := w.repair(t, j.ID)
	if r != (recovery.Report{}) || len(calls) != 0 || len(w.xready(t)) != 0 {
		t.Errorf("Repair a millisecond before the lease ends = %+v, calls %v, list %v; want nothing", r, callsString(calls), w.xready(t))
	}
	if !next.Equal(lapse) {
		t.Errorf("Repair says the next record is due at %v, want the lease's end %v", next, lapse)
	}

	w.clk.Set(lapse)
	r, next, calls = w.repair(t, j.ID)
	if r != (recovery.Report{JobsRequeued: 1}) || len(calls) != 0 {
		t.Errorf("Repair at the lease's end = %+v, calls %v; want 1 job requeued without a task", r, callsString(calls))
	}
	if l := w.xready(t); !slices.Equal(l, []string{ids.Body(j.ID)}) {
		t.Errorf("transcode list = %v, want [%s]", l, ids.Body(j.ID))
	}
	if want := lapse.Add(recoverAfter); !next.Equal(want) {
		t.Errorf("next recovery %v, want %v (looked at again if no worker takes it)", next, want)
	}

	cur := claimExternal(t, svc, time.Minute)
	if cur.ID != j.ID || cur.Attempts != 2 {
		t.Errorf("claim after the requeue = %s attempt %d, want %s attempt 2 (the lapsed attempt counts)", cur.ID, cur.Attempts, j.ID)
	}
	if _, err := svc.Complete(ctx, j.ID, old.LeaseID, []string{"transcode"}, json.RawMessage(`1`)); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Errorf("Complete with the lapsed lease = %v, want ErrLeaseLost", err)
	}
	// The new lease moved the recovery time: nothing is due.
	if r, _, calls := w.repair(t, j.ID); r != (recovery.Report{}) || len(calls) != 0 {
		t.Errorf("Repair after the new claim = %+v, %v; want nothing", r, callsString(calls))
	}
}

// TestRepairRequeuesAnExternalRetry: a retryable failure's retry is the
// record's recovery time too (its task may be lost).
func TestRepairRequeuesAnExternalRetry(t *testing.T) {
	w := newWorld(t, 1)
	svc := externalJobs(w, w.clk.Now)
	j := submitExternal(t, w, svc)
	c := claimExternal(t, svc, time.Minute)
	if _, err := svc.Fail(context.Background(), j.ID, c.LeaseID, []string{"transcode"}, jobs.Error{Code: "busy", Message: "later"}, true); err != nil {
		t.Fatal(err)
	}
	w.queue.take() // the retry's task, lost
	at := w.clk.Now().Add(retryDelay)
	w.clk.Set(at.Add(-time.Millisecond))
	if r, _, _ := w.repair(t, j.ID); r != (recovery.Report{}) {
		t.Errorf("Repair before the retry time = %+v, want nothing", r)
	}
	w.clk.Set(at)
	if r, _, calls := w.repair(t, j.ID); r != (recovery.Report{JobsRequeued: 1}) || len(calls) != 0 {
		t.Errorf("Repair at the retry time = %+v, %v; want the job requeued, no task", r, callsString(calls))
	}
	if c := claimExternal(t, svc, time.Minute); c.Attempts != 2 {
		t.Errorf("the retry's claim = attempt %d, want 2", c.Attempts)
	}
}

// TestStartRequeuesWithinATickOfTheLease: with the sweep running (a tick
// of 1 ms, the clock stepped 100 ms at a time), a lease of 5 s (the HTTP
// layer's least) taken just after a sweep is requeued at its end, not at
// the next idle check of the partition (5 s later): the idle check comes
// before any lease of 5 s or more ends, and learns when it does. (A lease
// shorter than that check, taken after it, would be found only at the
// next one.)
func TestStartRequeuesWithinATickOfTheLease(t *testing.T) {
	w := newWorld(t, 1)
	svc := externalJobs(w, w.clk.Now)
	j := submitExternal(t, w, svc)
	stop := w.sweeper.Start(context.Background(), time.Millisecond, time.Hour)
	defer stop()
	time.Sleep(20 * time.Millisecond) // its first pass: the partition is next looked at in 5 s
	w.clk.Advance(100 * time.Millisecond)
	claimExternal(t, svc, 5*time.Second)
	lapse := w.clk.Now().Add(5 * time.Second)
	for w.clk.Now().Before(lapse) {
		w.clk.Advance(100 * time.Millisecond)
		time.Sleep(3 * time.Millisecond) // a few ticks
		if l := w.xready(t); len(l) != 0 && w.clk.Now().Before(lapse) {
			t.Fatalf("requeued at lapse%v, before the lease ended", w.clk.Now().Sub(lapse))
		}
	}
	deadline := time.Now().Add(2 * time.Second) // real time: the clock stays at the lease's end
	for len(w.xready(t)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the job was not requeued at the end of its lease (%v): the sweep did not look then", lapse)
		}
		time.Sleep(time.Millisecond)
	}
	if c := claimExternal(t, svc, time.Minute); c.ID != j.ID || c.Attempts != 2 {
		t.Errorf("claim after the requeue = %s attempt %d, want %s attempt 2", c.ID, c.Attempts, j.ID)
	}
}

// TestLapsedLeaseClaimableWithinASecond, on the real clock: a worker
// claims with a 1 s lease and vanishes; the sweep (100 ms tick) requeues
// the job and a claim waiting in the API process gets it within a second
// of the lease's end, as attempt 2. The sweep starts after the claim, so
// its first look learns when the lease ends (a lease shorter than the idle
// check, taken after a look, waits for the next: see above).
func TestLapsedLeaseClaimableWithinASecond(t *testing.T) {
	w := newWorld(t, 1)
	svc := externalJobs(w, time.Now)
	w.sweeper.Now = time.Now
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	avail := w.store.Available(ctx)
	if first := <-avail; first != "" {
		t.Fatalf("Available's first message %q, want \"\"", first)
	}
	svc.Listen(nil, avail, nil)
	j := submitExternal(t, w, svc)
	claimExternal(t, svc, time.Second)
	lapse := time.Now().Add(time.Second)
	stop := w.sweeper.Start(ctx, 100*time.Millisecond, time.Hour)
	defer stop()

	got, ok, err := svc.Claim(ctx, jobs.ClaimOptions{Types: []string{"transcode"}, Lease: time.Minute, Wait: 5 * time.Second})
	late := time.Since(lapse)
	if err != nil || !ok || got.ID != j.ID || got.Attempts != 2 {
		t.Fatalf("the waiting claim = %s attempt %d ok %v, %v; want %s attempt 2", got.ID, got.Attempts, ok, err, j.ID)
	}
	t.Logf("lease end → claimed again: %v", late)
	if late < 0 || late > time.Second {
		t.Errorf("claimed again %v after the lease's end, want within 1 s", late)
	}
}

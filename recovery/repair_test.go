package recovery_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/recovery"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// A crash point leaves what a crash there leaves, and says what the sweep
// must ask of the queue and when: not before due, at due.
type crashPoint struct {
	name   string
	status int // the receiver's answer until the repair
	crash  func(t *testing.T, w *world) (requestID string, due time.Time, want call)
}

func crashPoints() []crashPoint {
	ctx := context.Background()
	return []crashPoint{
		{"ready hint lost (popped by a worker that died)", 204, func(t *testing.T, w *world) (string, time.Time, call) {
			j := w.submit(t, "echo")
			w.popHint(t, j.ID)
			due := j.CreatedAt.Add(recoverAfter)
			return j.ID, due, call{"job", j.ID, 1, due, jobTimeout}
		}},
		{"ready hint never taken (no runner)", 204, func(t *testing.T, w *world) (string, time.Time, call) {
			j := w.submit(t, "echo")
			due := j.CreatedAt.Add(recoverAfter)
			return j.ID, due, call{"job", j.ID, 1, due, jobTimeout}
		}},
		{"worker died while processing (lease lapsed)", 204, func(t *testing.T, w *world) (string, time.Time, call) {
			j := w.submit(t, "echo")
			w.popHint(t, j.ID)
			now := w.clk.Now()
			if _, err := w.store.ClaimJob(ctx, j.ID, now, now.Add(lease)); err != nil {
				t.Fatal(err)
			}
			due := now.Add(lease)
			return j.ID, due, call{"job", j.ID, 2, due, jobTimeout}
		}},
		{"job waiting for a retry, its task lost", 204, func(t *testing.T, w *world) (string, time.Time, call) {
			j := w.submit(t, "flaky")
			w.popHint(t, j.ID)
			now := w.clk.Now()
			if err := w.jobs.Run(ctx, j.ID); err != nil {
				t.Fatalf("Run of a failing job: %v", err)
			}
			lost := w.queue.take()
			if want := (call{"job", j.ID, 2, now.Add(retryDelay), time.Minute}); !reflect.DeepEqual(lost, []call{want}) {
				t.Fatalf("the failed attempt enqueued %v, want [%v]", callsString(lost), want)
			}
			due := now.Add(retryDelay + recoverAfter)
			return j.ID, due, call{"job", j.ID, 2, due, jobTimeout}
		}},
		{"job finished, its first attempt never made", 204, func(t *testing.T, w *world) (string, time.Time, call) {
			j := w.submit(t, "echo")
			w.popHint(t, j.ID)
			w.deliverer.loseFirst.Store(true)
			if err := w.jobs.Run(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			w.deliverer.loseFirst.Store(false)
			due := w.clk.Now().Truncate(time.Millisecond).Add(recoverAfter)
			return j.ID, due, call{Kind: "attempt", ID: jobs.DeliveryID(j.ID), N: 1, At: due}
		}},
		{"delivery PENDING, its retry task lost", 500, func(t *testing.T, w *world) (string, time.Time, call) {
			j := w.submit(t, "echo")
			w.popHint(t, j.ID)
			if err := w.jobs.Run(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			d, err := w.store.GetDelivery(ctx, jobs.DeliveryID(j.ID), false)
			if err != nil || d.Status != webhooks.StatusPending || d.Attempts != 1 || d.NextAttemptAt == nil {
				t.Fatalf("delivery after a 500: %+v, %v; want PENDING after 1 attempt, with a next one", d, err)
			}
			lost := w.queue.take()
			if len(lost) != 1 || lost[0].Kind != "attempt" || lost[0].N != 2 {
				t.Fatalf("the failed attempt scheduled %v, want attempt 2", callsString(lost))
			}
			due := d.NextAttemptAt.Add(recoverAfter)
			return j.ID, due, call{Kind: "attempt", ID: d.ID, N: 2, At: due}
		}},
		{"delivery replayed, its task lost", 410, func(t *testing.T, w *world) (string, time.Time, call) {
			j := w.submit(t, "echo")
			w.popHint(t, j.ID)
			if err := w.jobs.Run(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			w.clk.Advance(time.Minute)
			if _, err := w.deliverer.Replay(ctx, jobs.DeliveryID(j.ID)); err != nil {
				t.Fatal(err)
			}
			due := w.clk.Now().Add(recoverAfter)
			return j.ID, due, call{Kind: "attempt", ID: jobs.DeliveryID(j.ID), N: 2, At: due}
		}},
	}
}

// TestRepairEachCrashPoint: for each crash point the sweep does nothing
// before the recovery time, asks for the lost work at it (once), and
// running what it asked for finishes the job and its delivery, which then
// leave the schedule.
func TestRepairEachCrashPoint(t *testing.T) {
	ctx := context.Background()
	for _, cp := range crashPoints() {
		t.Run(cp.name, func(t *testing.T) {
			w := newWorld(t, 1)
			w.status.Store(int32(cp.status))
			id, due, want := cp.crash(t, w)
			w.queue.take()
			p := ids.Partition(id)

			for _, at := range []time.Time{w.clk.Now(), due.Add(-time.Millisecond)} {
				w.clk.Set(at)
				r, next, calls := w.repair(t, id)
				if len(calls) != 0 || r != (recovery.Report{}) {
					t.Errorf("Repair at due%v asked for %v (%+v), want nothing yet", at.Sub(due), callsString(calls), r)
				}
				if !next.Equal(due) {
					t.Errorf("Repair at due%v says the next record is due at due%+v, want at due", at.Sub(due), next.Sub(due))
				}
			}

			w.clk.Set(due)
			r, next, calls := w.repair(t, id)
			if !reflect.DeepEqual(calls, []call{want}) {
				t.Fatalf("Repair at the recovery time asked for %v, want [%v]", callsString(calls), want)
			}
			wantReport := recovery.Report{JobsRequeued: 1}
			if want.Kind == "attempt" {
				wantReport = recovery.Report{DeliveriesRescheduled: 1}
			}
			if r != wantReport {
				t.Errorf("Repair reported %+v, want %+v", r, wantReport)
			}
			if want := due.Add(recoverAfter); !next.Equal(want) {
				t.Errorf("after the repair the record is due at due%+v, want due+%v (looked at again if nothing happens)", next.Sub(due), recoverAfter)
			}
			if _, _, calls := w.repair(t, id); len(calls) != 0 {
				t.Errorf("a second Repair at the same time asked for %v, want nothing", callsString(calls))
			}

			// The task the sweep asked for runs, and the receiver is back.
			w.status.Store(http.StatusNoContent)
			received := w.received.Load()
			var err error
			switch want.Kind {
			case "job":
				err = w.jobs.Run(ctx, want.ID)
			case "attempt":
				err = w.deliverer.Attempt(ctx, want.ID, want.N)
			}
			if err != nil {
				t.Fatalf("running %v: %v", want, err)
			}
			j, err := w.store.GetJob(ctx, id)
			if err != nil || j.Status != jobs.StatusCompleted {
				t.Errorf("job after the repaired work ran: %s, %v; want COMPLETED", j.Status, err)
			}
			d, err := w.store.GetDelivery(ctx, jobs.DeliveryID(id), false)
			if err != nil || d.Status != webhooks.StatusDelivered {
				t.Errorf("delivery after the repaired work ran: %s, %v; want DELIVERED", d.Status, err)
			}
			if got := w.received.Load() - received; got != 1 {
				t.Errorf("the receiver got %d webhooks from the repaired work, want 1", got)
			}
			if n := w.scheduled(p); n != 0 {
				t.Errorf("%d records still on the recovery schedule after the delivery, want 0", n)
			}
			w.clk.Advance(24 * time.Hour)
			if r, next, calls := w.repair(t, id); len(calls) != 0 || r != (recovery.Report{}) || !next.IsZero() {
				t.Errorf("Repair a day later = %+v, next %v, calls %v; want nothing at all", r, next, callsString(calls))
			}
		})
	}
}

// TestRepairedJobRunsOnce: the hint a sweep's task raced with finds the
// job finished and sends nothing more.
func TestRepairedJobRunsOnce(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1)
	j := w.submit(t, "echo")
	w.clk.Advance(recoverAfter)
	if _, _, calls := w.repair(t, j.ID); len(calls) != 1 {
		t.Fatalf("Repair asked for %v, want the job", callsString(calls))
	}
	if err := w.jobs.Run(ctx, j.ID); err != nil { // the sweep's task
		t.Fatal(err)
	}
	w.popHint(t, j.ID) // the slow worker that had the hint
	if err := w.jobs.Run(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if n := w.received.Load(); n != 1 {
		t.Errorf("the receiver got %d webhooks, want 1", n)
	}
}

// TestRepairDropsWhatNeedsNothing: records gone (expired) or finished leave
// the schedule without any task.
func TestRepairDropsWhatNeedsNothing(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		status int
		make   func(t *testing.T, w *world) string
	}{
		{"expired before it ran", 204, func(t *testing.T, w *world) string {
			j := w.submit(t, "echo")
			w.deleteRecord(t, j.ID)
			return j.ID
		}},
		{"expired while its delivery was pending", 500, func(t *testing.T, w *world) string {
			j := w.submit(t, "echo")
			if err := w.jobs.Run(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			w.deleteRecord(t, j.ID)
			return j.ID
		}},
		{"delivered, yet on the schedule", 204, func(t *testing.T, w *world) string {
			j := w.submit(t, "echo")
			if err := w.jobs.Run(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			w.onSchedule(t, j.ID)
			return j.ID
		}},
		{"failed delivery, yet on the schedule", 410, func(t *testing.T, w *world) string {
			j := w.submit(t, "echo")
			if err := w.jobs.Run(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			w.onSchedule(t, j.ID)
			return j.ID
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 1)
			w.status.Store(int32(tc.status))
			id := tc.make(t, w)
			w.queue.take()
			if n := w.scheduled(0); n != 1 {
				t.Fatalf("%d records on the schedule, want this one", n)
			}
			w.clk.Advance(24 * time.Hour)
			r, next, calls := w.repair(t, id)
			if len(calls) != 0 || r != (recovery.Report{}) || !next.IsZero() {
				t.Errorf("Repair = %+v, next %v, calls %v; want nothing asked, nothing next", r, next, callsString(calls))
			}
			if n := w.scheduled(0); n != 0 {
				t.Errorf("%d records left on the schedule, want 0", n)
			}
		})
	}
}

// onSchedule puts a record back on its partition's recovery schedule, as
// only a bug or an old version would.
func (w *world) onSchedule(t *testing.T, id string) {
	t.Helper()
	if n := w.scheduled(ids.Partition(id)); n != 0 {
		t.Fatalf("a finished record is on the schedule already")
	}
	key := indexKey(w.store.Tags()[ids.Partition(id)], "due")
	if err := w.rdb.ZAdd(context.Background(), key, redisZ(w.clk.Now(), ids.Body(id))).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestRepairPartitions: each partition has its own schedule; a repair of
// one touches no other.
func TestRepairPartitions(t *testing.T) {
	const n = 4
	w := newWorld(t, n)
	var created []string
	for p := 0; p < n; p++ {
		w.clk.Set(t0.Add(time.Duration(p) * time.Second)) // partition p's job is due at t0+p s+recoverAfter
		created = append(created, w.createIn(t, p).ID)
	}
	w.clk.Set(t0.Add(recoverAfter + time.Duration(n)*time.Second))
	for p := n - 1; p >= 0; p-- {
		now := w.clk.Now()
		r, next, err := w.sweeper.Repair(context.Background(), p)
		calls := w.queue.take()
		want := []call{{"job", created[p], 1, now, jobTimeout}}
		if err != nil || !reflect.DeepEqual(calls, want) || r.JobsRequeued != 1 {
			t.Errorf("Repair(partition %d) = %+v, %v, asked for %v; want [%v]", p, r, err, callsString(calls), want[0])
		}
		if !next.Equal(now.Add(recoverAfter)) {
			t.Errorf("Repair(partition %d) says next due %v, want %v", p, next, now.Add(recoverAfter))
		}
		for q := 0; q < n; q++ {
			if got := w.scheduled(q); got != 1 {
				t.Errorf("after Repair(partition %d), partition %d has %d records scheduled, want 1", p, q, got)
			}
		}
	}
}

// TestRepairInBatches: a partition with more overdue records than one
// repair takes says so (next = now), and the following repair takes the
// rest.
func TestRepairInBatches(t *testing.T) {
	w := newWorld(t, 1)
	const n = 201 // the batch is 200
	for i := 0; i < n; i++ {
		w.createIn(t, 0)
	}
	w.clk.Advance(recoverAfter)
	now := w.clk.Now()
	wantNext := []time.Time{now, now.Add(recoverAfter)}
	wantRequeued := []int{200, 1}
	seen := map[string]bool{}
	for i := range wantNext {
		r, next, err := w.sweeper.Repair(context.Background(), 0)
		if err != nil || r.JobsRequeued != wantRequeued[i] || !next.Equal(wantNext[i]) {
			t.Errorf("Repair #%d = %d requeued, next now%+v, %v; want %d, now%+v", i+1, r.JobsRequeued, next.Sub(now), err, wantRequeued[i], wantNext[i].Sub(now))
		}
		for _, c := range w.queue.take() {
			if seen[c.ID] {
				t.Errorf("Repair #%d asked for %s again", i+1, c.ID)
			}
			seen[c.ID] = true
		}
	}
	if len(seen) != n {
		t.Errorf("two repairs asked for %d jobs, want all %d", len(seen), n)
	}
}

// TestRepairQueueFailure: when the queue fails, Repair says so, and the
// record is asked for again later.
func TestRepairQueueFailure(t *testing.T) {
	w := newWorld(t, 1)
	j := w.submit(t, "echo")
	w.clk.Advance(recoverAfter)
	boom := errors.New("queue down")
	w.queue.setErr(boom)
	if _, _, err := w.sweeper.Repair(context.Background(), 0); !errors.Is(err, boom) {
		t.Errorf("Repair with a failing queue = %v, want %v", err, boom)
	}
	w.queue.setErr(nil)
	w.queue.take()
	w.clk.Advance(recoverAfter)
	if _, _, calls := w.repair(t, j.ID); len(calls) != 1 || calls[0].ID != j.ID {
		t.Errorf("Repair after the queue is back asked for %v, want the job", callsString(calls))
	}
}

func TestRepairStoreFailure(t *testing.T) {
	w := newWorld(t, 1)
	w.submit(t, "echo")
	w.clk.Advance(recoverAfter)
	w.rdb.Close()
	if _, next, err := w.sweeper.Repair(context.Background(), 0); err == nil || !next.IsZero() {
		t.Errorf("Repair over a closed Redis = next %v, %v; want an error", next, err)
	}
	if calls := w.queue.take(); len(calls) != 0 {
		t.Errorf("Repair over a closed Redis asked for %v", callsString(calls))
	}
}

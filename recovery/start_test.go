package recovery_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// TestStartSweeps: Start maintains at once, repairs each partition when
// its records come due (looking at idle partitions every few seconds of
// the clock), logs what it did, and stops.
func TestStartSweeps(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 2)
	logs := &testkit.SyncBuffer{}
	w.sweeper.Logger = slog.New(slog.NewTextHandler(logs, nil))
	stalled := webhooks.BulkReplay{ID: ids.New(ids.Replay, t0), State: webhooks.ReplayRunning, CreatedAt: t0.Add(-time.Hour), UpdatedAt: t0.Add(-time.Hour)}
	if err := w.store.SaveReplay(ctx, stalled); err != nil {
		t.Fatal(err)
	}
	stop := w.sweeper.Start(ctx, time.Millisecond, time.Hour)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()

	var calls []call
	eventually(t, "the first maintenance", func() bool {
		calls = append(calls, w.queue.take()...)
		return len(calls) > 0
	})
	if len(calls) != 1 || calls[0].Kind != "replay" || calls[0].ID != stalled.ID {
		t.Errorf("Start's first pass asked for %v, want only the stalled replay", callsString(calls))
	}

	// Scheduled after the first pass, so the partition is looked at again
	// only at its idle check.
	j := w.createIn(t, 1)
	w.clk.Advance(recoverAfter)
	calls = nil
	eventually(t, "the repair of the overdue job", func() bool {
		calls = append(calls, w.queue.take()...)
		return len(calls) > 0
	})
	if want := (call{"job", j.ID, 1, t0.Add(recoverAfter), jobTimeout}); len(calls) != 1 || calls[0] != want {
		t.Errorf("Start asked for %v, want [%v]", callsString(calls), want)
	}
	eventually(t, "the repair's log line", func() bool { return strings.Contains(logs.String(), "jobsRequeued=1") })
	if l := logs.String(); !strings.Contains(l, "replaysRestarted=1") || !strings.Contains(l, "partition=1") {
		t.Errorf("log %q: want the maintenance and the partition repaired", l)
	}

	stop()
	stopped = true
	stop() // a second stop is harmless
}

// TestStartEndsWithItsContext: the sweep stops when its context ends;
// stop then returns at once.
func TestStartEndsWithItsContext(t *testing.T) {
	w := newWorld(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	stop := w.sweeper.Start(ctx, time.Millisecond, time.Millisecond)
	cancel()
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // bounds a hang only
		t.Fatal("stop did not return after the context ended")
	}
}

// eventually polls cond until it holds; the deadline only bounds a hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

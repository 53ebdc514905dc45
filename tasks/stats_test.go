package tasks_test

import (
	"context"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/tasks"
)

// TestStatsCountsAndCaches: the reading counts tasks by queue and state,
// lists queues that never held a task as empty, and is shared within
// maxAge: tasks enqueued after a reading show only once it is stale.
func TestStatsCountsAndCaches(t *testing.T) {
	ctx := context.Background()
	q, _, rdb := newQueue(t, time.Second)
	now := time.Now()
	if err := q.EnqueueJob(ctx, reqIn(0), 1, time.Time{}, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := q.ScheduleAttempt(ctx, msgOf(reqIn(1)), 2, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	st := tasks.NewStats(rdb, partitions, time.Minute)
	clock := now
	tasks.SetStatsClock(st, func() time.Time { return clock })

	got := readStats(t, st)
	want := map[string]tasks.QueueState{
		partitions[0]:          {Pending: 1},
		partitions[1]:          {Scheduled: 1},
		tasks.QueueMaintenance: {},
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("queue %s missing from %v", name, got)
			continue
		}
		if g.Pending != w.Pending || g.Scheduled != w.Scheduled || g.Active != 0 || g.Retry != 0 {
			t.Errorf("queue %s: pending %d scheduled %d active %d retry %d, want pending %d scheduled %d",
				name, g.Pending, g.Scheduled, g.Active, g.Retry, w.Pending, w.Scheduled)
		}
	}
	if len(got) != len(partitions)+1 {
		t.Errorf("%d queues read, want %d (every partition and maintenance)", len(got), len(partitions)+1)
	}

	if err := q.EnqueueJob(ctx, reqIn(0), 1, time.Time{}, time.Second); err != nil {
		t.Fatal(err)
	}
	if n := readStats(t, st)[partitions[0]].Pending; n != 1 {
		t.Errorf("within maxAge: %d pending, want the cached 1", n)
	}
	clock = clock.Add(time.Minute)
	if n := readStats(t, st)[partitions[0]].Pending; n != 2 {
		t.Errorf("after maxAge: %d pending, want a fresh reading of 2", n)
	}
}

func readStats(t *testing.T, st *tasks.Stats) map[string]tasks.QueueState {
	t.Helper()
	states, _, err := st.Queues(context.Background())
	if err != nil {
		t.Fatalf("Queues: %v", err)
	}
	m := map[string]tasks.QueueState{}
	for _, s := range states {
		m[s.Queue] = s
	}
	return m
}

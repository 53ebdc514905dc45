package tasks_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/redis/go-redis/v9"
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

// TestStatsOutlastedByTheContext: a Redis that accepts connections and
// never answers does not hold a caller past its context (asynq's Inspector
// takes none); the caller gets the context's error, not the Redis one.
func TestStatsOutlastedByTheContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: l.Addr().String(), MaxRetries: -1})
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		rdb.Close()
	})
	st := tasks.NewStats(rdb, partitions, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// Waiting on the Inspector would end in go-redis's read timeout, an
	// i/o error; only a caller that stops waiting gets the context's error.
	_, at, err := st.Queues(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !at.IsZero() {
		t.Errorf("Queues against a silent Redis = (read at %v, %v), want no reading and the context's deadline", at, err)
	}
}

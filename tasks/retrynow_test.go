package tasks_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/hibiken/asynq"
)

// TestRunAttemptNow: an attempt scheduled for later, waiting for a retry,
// pending already, or never scheduled ends up pending under its own id, with
// nothing left at its old time.
func TestRunAttemptNow(t *testing.T) {
	ctx := context.Background()
	q, insp, _ := newQueue(t, 5*time.Second)
	tests := []struct {
		name  string
		setup func(t *testing.T, id string) // schedules attempt 2 of id, or not
	}{
		{"scheduled in an hour", func(t *testing.T, id string) {
			if err := q.ScheduleAttempt(ctx, id, 2, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}},
		{"pending already", func(t *testing.T, id string) {
			if err := q.ScheduleAttempt(ctx, id, 2, time.Now()); err != nil {
				t.Fatal(err)
			}
		}},
		{"never scheduled", func(*testing.T, string) {}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := msgOf(reqIn(i % 2))
			queue := partitions[i%2]
			tc.setup(t, id)
			for n := 0; n < 2; n++ { // a repeat changes nothing
				if err := q.RunAttemptNow(ctx, id, 2); err != nil {
					t.Fatalf("RunAttemptNow(%s, 2) #%d = %v, want nil", id, n+1, err)
				}
			}
			info := taskInfo(t, insp, queue, id+":2")
			if info.State != asynq.TaskStatePending {
				t.Errorf("task %s:2 after RunAttemptNow is %v, want pending", id, info.State)
			}
			scheduled, err := insp.ListScheduledTasks(queue)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range scheduled {
				if s.ID == id+":2" {
					t.Errorf("task %s:2 is still scheduled for %v", id, s.NextProcessAt)
				}
			}
		})
	}
}

// TestRunAttemptNowWhileRunning: the attempt's task is running right now
// (it may have read the old schedule): a second task under another id runs
// the attempt again, which the domain makes once whichever comes first.
func TestRunAttemptNowWhileRunning(t *testing.T) {
	ctx := context.Background()
	q, _, rdb := newQueue(t, 5*time.Second)
	id := msgOf(reqIn(0))
	started := make(chan struct{}, 2)
	release := make(chan struct{})
	var mu sync.Mutex
	var calls []string
	h := tasks.Handlers{Attempt: func(_ context.Context, d string, n int) error {
		mu.Lock()
		calls = append(calls, d+"/"+strconv.Itoa(n))
		first := len(calls) == 1
		mu.Unlock()
		started <- struct{}{}
		if first {
			<-release
		}
		return nil
	}}
	startServer(t, rdb, tasks.ServerOptions{}, h)
	if err := q.ScheduleAttempt(ctx, id, 2, time.Now()); err != nil {
		t.Fatal(err)
	}
	<-started // the task is active
	if err := q.RunAttemptNow(ctx, id, 2); err != nil {
		t.Fatalf("RunAttemptNow of a running attempt = %v, want nil", err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no second run of the attempt within 10 s of RunAttemptNow")
	}
	close(release)
	mu.Lock()
	defer mu.Unlock()
	if want := id + "/2"; len(calls) != 2 || calls[0] != want || calls[1] != want {
		t.Errorf("handler calls %v, want attempt 2 of %s twice", calls, id)
	}
}

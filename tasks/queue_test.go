package tasks_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func newQueue(t *testing.T, deliveryTimeout time.Duration) (*tasks.Queue, *asynq.Inspector, *redis.Client) {
	t.Helper()
	rdb := redistest.Client(t)
	q := tasks.NewQueue(rdb, deliveryTimeout)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("Queue.Close: %v", err)
		}
		if err := rdb.Ping(context.Background()).Err(); err != nil {
			t.Errorf("Queue.Close closed the caller's Redis client: %v", err)
		}
	})
	return q, insp, rdb
}

func taskInfo(t *testing.T, insp *asynq.Inspector, queue, id string) *asynq.TaskInfo {
	t.Helper()
	info, err := insp.GetTaskInfo(queue, id)
	if err != nil {
		t.Fatalf("GetTaskInfo(%s, %s): %v", queue, id, err)
	}
	return info
}

func queueSize(t *testing.T, insp *asynq.Inspector, queue string) int {
	t.Helper()
	qi, err := insp.GetQueueInfo(queue)
	if err != nil {
		t.Fatalf("GetQueueInfo(%s): %v", queue, err)
	}
	return qi.Size
}

func TestEnqueueJobOncePerRequest(t *testing.T) {
	ctx := context.Background()
	q, insp, _ := newQueue(t, 2*time.Second)
	for i := 0; i < 3; i++ {
		if err := q.EnqueueJob(ctx, "req_1", 1500*time.Millisecond); err != nil {
			t.Fatalf("EnqueueJob #%d: %v", i+1, err)
		}
	}
	if err := q.EnqueueJob(ctx, "req_2", time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := queueSize(t, insp, tasks.QueueJobs); n != 2 {
		t.Errorf("queue %s holds %d tasks after enqueueing req_1 three times and req_2 once, want 2", tasks.QueueJobs, n)
	}
	tests := []struct {
		id          string
		wantTimeout time.Duration
	}{
		// type timeout + delivery timeout + 10 s, rounded up to seconds
		{"req_1", 14 * time.Second},
		{"req_2", 72 * time.Second},
	}
	for _, tc := range tests {
		info := taskInfo(t, insp, tasks.QueueJobs, tc.id)
		if info.Type != tasks.TypeJob || string(info.Payload) != tc.id || info.State != asynq.TaskStatePending ||
			info.Timeout != tc.wantTimeout || info.MaxRetry != 25 {
			t.Errorf("task %s = type %s payload %q state %v timeout %v maxRetry %d; want %s, %q, pending, %v, 25",
				tc.id, info.Type, info.Payload, info.State, info.Timeout, info.MaxRetry, tasks.TypeJob, tc.id, tc.wantTimeout)
		}
	}
}

func TestScheduleAttempt(t *testing.T) {
	ctx := context.Background()
	q, insp, _ := newQueue(t, 5*time.Second)
	future := time.Now().Add(time.Hour + 250*time.Millisecond)
	past := time.Now().Add(-time.Hour)
	tests := []struct {
		deliveryID string
		n          int
		at         time.Time
		wantState  asynq.TaskState
	}{
		{"msg_a", 2, future, asynq.TaskStateScheduled},
		{"msg_a", 3, past, asynq.TaskStatePending},
		{"msg_b", 1, time.Time{}, asynq.TaskStatePending},
	}
	for _, tc := range tests {
		for i := 0; i < 2; i++ { // a duplicate is not an error
			if err := q.ScheduleAttempt(ctx, tc.deliveryID, tc.n, tc.at); err != nil {
				t.Fatalf("ScheduleAttempt(%s, %d) #%d: %v", tc.deliveryID, tc.n, i+1, err)
			}
		}
		id := tc.deliveryID + ":" + itoa(tc.n)
		info := taskInfo(t, insp, tasks.QueueRetries, id)
		var p struct {
			D string `json:"d"`
			N int    `json:"n"`
		}
		if err := json.Unmarshal(info.Payload, &p); err != nil || p.D != tc.deliveryID || p.N != tc.n {
			t.Errorf("task %s payload %s, want delivery %s attempt %d", id, info.Payload, tc.deliveryID, tc.n)
		}
		if info.Type != tasks.TypeDelivery || info.State != tc.wantState || info.Timeout != 15*time.Second || info.MaxRetry != 25 {
			t.Errorf("task %s = type %s state %v timeout %v maxRetry %d; want %s %v 15s 25",
				id, info.Type, info.State, info.Timeout, info.MaxRetry, tasks.TypeDelivery, tc.wantState)
		}
		if tc.wantState == asynq.TaskStateScheduled {
			if want := time.Unix(tc.at.Unix(), 0); !info.NextProcessAt.Equal(want) {
				t.Errorf("task %s is due %v, want %v (the time asked for, in whole seconds)", id, info.NextProcessAt, want)
			}
		}
	}
	if n := queueSize(t, insp, tasks.QueueRetries); n != len(tests) {
		t.Errorf("queue %s holds %d tasks, want %d", tasks.QueueRetries, n, len(tests))
	}
	scheduled, err := insp.ListScheduledTasks(tasks.QueueRetries)
	if err != nil || len(scheduled) != 1 || scheduled[0].ID != "msg_a:2" {
		t.Errorf("scheduled set = %v, %v; want only msg_a:2", taskIDs(scheduled), err)
	}
}

func TestStartReplayOncePerReplay(t *testing.T) {
	ctx := context.Background()
	q, insp, _ := newQueue(t, time.Second)
	for i := 0; i < 3; i++ {
		if err := q.StartReplay(ctx, "rpl_1"); err != nil {
			t.Fatalf("StartReplay #%d: %v", i+1, err)
		}
	}
	if n := queueSize(t, insp, tasks.QueueMaintenance); n != 1 {
		t.Errorf("queue %s holds %d tasks, want 1", tasks.QueueMaintenance, n)
	}
	info := taskInfo(t, insp, tasks.QueueMaintenance, "rpl_1")
	if info.Type != tasks.TypeReplay || string(info.Payload) != "rpl_1" || info.Timeout != 2*time.Hour || info.State != asynq.TaskStatePending {
		t.Errorf("replay task = type %s payload %q timeout %v state %v; want %s rpl_1 2h pending",
			info.Type, info.Payload, info.Timeout, info.State, tasks.TypeReplay)
	}
}

func TestQueueErrorsAreReturned(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	q := tasks.NewQueue(rdb, time.Second)
	rdb.Close()
	checks := map[string]error{
		"EnqueueJob":      q.EnqueueJob(ctx, "req_1", time.Second),
		"ScheduleAttempt": q.ScheduleAttempt(ctx, "msg_1", 1, time.Now()),
		"StartReplay":     q.StartReplay(ctx, "rpl_1"),
	}
	for name, err := range checks {
		if err == nil {
			t.Errorf("%s over a closed Redis = nil, want an error", name)
		}
	}
}

func taskIDs(infos []*asynq.TaskInfo) []string {
	out := make([]string, len(infos))
	for i, info := range infos {
		out[i] = info.ID
	}
	return out
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestEnqueueReplacesAnArchivedTask: a task archived after exhausting its
// retries keeps its id for 90 days; enqueueing the same work again must
// bring it back instead of being a silent no-op.
func TestEnqueueReplacesAnArchivedTask(t *testing.T) {
	ctx := context.Background()
	q, insp, _ := newQueue(t, time.Second)
	if err := q.EnqueueJob(ctx, "req_dead", time.Second); err != nil {
		t.Fatal(err)
	}
	if err := insp.ArchiveTask(tasks.QueueJobs, "req_dead"); err != nil {
		t.Fatal(err)
	}
	if err := q.EnqueueJob(ctx, "req_dead", time.Second); err != nil {
		t.Fatalf("EnqueueJob over an archived task: %v", err)
	}
	info, err := insp.GetTaskInfo(tasks.QueueJobs, "req_dead")
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("task after re-enqueue: %v, %v; want pending", info, err)
	}
	// A pending task is left as it is.
	if err := q.EnqueueJob(ctx, "req_dead", time.Second); err != nil {
		t.Fatal(err)
	}
	if n := queueSize(t, insp, tasks.QueueJobs); n != 1 {
		t.Errorf("queue holds %d tasks, want 1", n)
	}
}

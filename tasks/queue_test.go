package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// partitions are the queue names of two partitions, as redisstore.Store.Tags
// gives them.
var partitions = []string{"p0.x", "p1.y"}

func newQueue(t *testing.T, deliveryTimeout time.Duration) (*tasks.Queue, *asynq.Inspector, *redis.Client) {
	t.Helper()
	rdb := redistest.Client(t)
	q := tasks.NewQueue(rdb, partitions, deliveryTimeout)
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

// reqIn is a new request id of partition p; msgOf its delivery's id.
func reqIn(p int) string      { return ids.NewIn(ids.Request, time.Now(), p) }
func msgOf(req string) string { return ids.Delivery + ids.Body(req) }

func taskInfo(t *testing.T, insp *asynq.Inspector, queue, id string) *asynq.TaskInfo {
	t.Helper()
	info, err := insp.GetTaskInfo(queue, id)
	if err != nil {
		t.Fatalf("GetTaskInfo(%s, %s): %v", queue, id, err)
	}
	return info
}

// queueSize is how many tasks a queue holds, in any state; a queue never
// used holds none.
func queueSize(t *testing.T, insp *asynq.Inspector, queue string) int {
	t.Helper()
	qi, err := insp.GetQueueInfo(queue)
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("GetQueueInfo(%s): %v", queue, err)
	}
	return qi.Size
}

func taskIDs(infos []*asynq.TaskInfo) []string {
	out := make([]string, len(infos))
	for i, info := range infos {
		out[i] = info.ID
	}
	return out
}

// TestEnqueueJob: a job's attempt lands in the queue of its partition
// under the id "<request id>:<attempt>", once however often it is
// enqueued, due at its time.
func TestEnqueueJob(t *testing.T) {
	ctx := context.Background()
	q, insp, _ := newQueue(t, 2*time.Second)
	a, b := reqIn(0), reqIn(1)
	future := time.Now().Add(time.Hour + 250*time.Millisecond)
	tests := []struct {
		id          string
		attempt     int
		at          time.Time
		timeout     time.Duration
		wantQueue   string
		wantState   asynq.TaskState
		wantTimeout time.Duration // type timeout + delivery timeout + 10 s, rounded up to seconds
	}{
		{a, 1, time.Now(), 1500 * time.Millisecond, "p0.x", asynq.TaskStatePending, 14 * time.Second},
		{a, 2, future, 1500 * time.Millisecond, "p0.x", asynq.TaskStateScheduled, 14 * time.Second},
		{a, 3, time.Now().Add(-time.Hour), time.Second, "p0.x", asynq.TaskStatePending, 13 * time.Second},
		{b, 1, time.Time{}, time.Minute, "p1.y", asynq.TaskStatePending, 72 * time.Second},
		{b, 7, future, time.Minute, "p1.y", asynq.TaskStateScheduled, 72 * time.Second},
	}
	for _, tc := range tests {
		for i := 0; i < 3; i++ { // a repeat is a no-op, not an error
			if err := q.EnqueueJob(ctx, tc.id, tc.attempt, tc.at, tc.timeout); err != nil {
				t.Fatalf("EnqueueJob(%s, %d) #%d: %v", tc.id, tc.attempt, i+1, err)
			}
		}
		taskID := tc.id + ":" + strconv.Itoa(tc.attempt)
		info := taskInfo(t, insp, tc.wantQueue, taskID)
		if info.Type != tasks.TypeJob || string(info.Payload) != tc.id || info.State != tc.wantState ||
			info.Timeout != tc.wantTimeout || info.MaxRetry != 25 {
			t.Errorf("EnqueueJob(%s, %d, at %v, %v): task %s = type %s payload %q state %v timeout %v maxRetry %d; want %s, %q, %v, %v, 25",
				tc.id, tc.attempt, tc.at, tc.timeout, taskID, info.Type, info.Payload, info.State, info.Timeout, info.MaxRetry,
				tasks.TypeJob, tc.id, tc.wantState, tc.wantTimeout)
		}
		if tc.wantState == asynq.TaskStateScheduled {
			want := time.Unix(tc.at.Unix(), 0)
			if !want.Equal(tc.at) {
				want = want.Add(time.Second)
			}
			if !info.NextProcessAt.Equal(want) {
				t.Errorf("task %s is due %v, want %v (the time asked for, rounded up to a whole second: never early)", taskID, info.NextProcessAt, want)
			}
		}
	}
	for queue, want := range map[string]int{"p0.x": 3, "p1.y": 2} {
		if n := queueSize(t, insp, queue); n != want {
			t.Errorf("queue %s holds %d tasks, want %d", queue, n, want)
		}
	}
}

// TestScheduleAttempt: a delivery's attempt lands in the queue of its
// partition (its job's) under "<delivery id>:<n>".
func TestScheduleAttempt(t *testing.T) {
	ctx := context.Background()
	q, insp, _ := newQueue(t, 5*time.Second)
	a, b := msgOf(reqIn(0)), msgOf(reqIn(1))
	future := time.Now().Add(time.Hour + 250*time.Millisecond)
	tests := []struct {
		deliveryID string
		n          int
		at         time.Time
		wantQueue  string
		wantState  asynq.TaskState
	}{
		{a, 2, future, "p0.x", asynq.TaskStateScheduled},
		{a, 3, time.Now().Add(-time.Hour), "p0.x", asynq.TaskStatePending},
		{b, 1, time.Time{}, "p1.y", asynq.TaskStatePending},
	}
	for _, tc := range tests {
		for i := 0; i < 2; i++ { // a duplicate is not an error
			if err := q.ScheduleAttempt(ctx, tc.deliveryID, tc.n, tc.at); err != nil {
				t.Fatalf("ScheduleAttempt(%s, %d) #%d: %v", tc.deliveryID, tc.n, i+1, err)
			}
		}
		id := tc.deliveryID + ":" + strconv.Itoa(tc.n)
		info := taskInfo(t, insp, tc.wantQueue, id)
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
			want := time.Unix(tc.at.Unix(), 0)
			if !want.Equal(tc.at) {
				want = want.Add(time.Second)
			}
			if !info.NextProcessAt.Equal(want) {
				t.Errorf("task %s is due %v, want %v (the time asked for, rounded up to a whole second: never early)", id, info.NextProcessAt, want)
			}
		}
	}
	for queue, want := range map[string]int{"p0.x": 2, "p1.y": 1} {
		if n := queueSize(t, insp, queue); n != want {
			t.Errorf("queue %s holds %d tasks, want %d", queue, n, want)
		}
	}
	scheduled, err := insp.ListScheduledTasks("p0.x")
	if want := a + ":2"; err != nil || len(scheduled) != 1 || scheduled[0].ID != want {
		t.Errorf("scheduled set of p0.x = %v, %v; want only %s", taskIDs(scheduled), err, want)
	}
}

// TestIDsOutsideThePartitions: an id whose partition the queue does not
// have (another deployment's, or malformed) goes to the first partition's
// queue rather than failing; its records are not found there either.
func TestIDsOutsideThePartitions(t *testing.T) {
	ctx := context.Background()
	q, insp, _ := newQueue(t, time.Second)
	for _, id := range []string{reqIn(2), reqIn(ids.MaxPartitions - 1), "req_short", "garbage"} {
		if err := q.EnqueueJob(ctx, id, 1, time.Time{}, time.Second); err != nil {
			t.Fatalf("EnqueueJob(%s): %v", id, err)
		}
		if _, err := insp.GetTaskInfo("p0.x", id+":1"); err != nil {
			t.Errorf("EnqueueJob(%s): not in the first partition's queue: %v", id, err)
		}
	}
}

func TestStartReplayOncePerReplay(t *testing.T) {
	ctx := context.Background()
	q, insp, _ := newQueue(t, time.Second)
	id := ids.New(ids.Replay, time.Now())
	for i := 0; i < 3; i++ {
		if err := q.StartReplay(ctx, id); err != nil {
			t.Fatalf("StartReplay #%d: %v", i+1, err)
		}
	}
	if n := queueSize(t, insp, tasks.QueueMaintenance); n != 1 {
		t.Errorf("queue %s holds %d tasks, want 1", tasks.QueueMaintenance, n)
	}
	info := taskInfo(t, insp, tasks.QueueMaintenance, id)
	if info.Type != tasks.TypeReplay || string(info.Payload) != id || info.Timeout != 2*time.Hour || info.State != asynq.TaskStatePending {
		t.Errorf("replay task = type %s payload %q timeout %v state %v; want %s %s 2h pending",
			info.Type, info.Payload, info.Timeout, info.State, tasks.TypeReplay, id)
	}
}

func TestQueueErrorsAreReturned(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	q := tasks.NewQueue(rdb, partitions, time.Second)
	rdb.Close()
	checks := map[string]error{
		"EnqueueJob":      q.EnqueueJob(ctx, reqIn(1), 1, time.Now(), time.Second),
		"ScheduleAttempt": q.ScheduleAttempt(ctx, msgOf(reqIn(1)), 1, time.Now()),
		"StartReplay":     q.StartReplay(ctx, "rpl_1"),
	}
	for name, err := range checks {
		if err == nil {
			t.Errorf("%s over a closed Redis = nil, want an error", name)
		}
	}
}

// TestEnqueueReplacesAnArchivedTask: a task archived after exhausting its
// retries keeps its id for 90 days; enqueueing the same work again must
// bring it back instead of being a silent no-op.
func TestEnqueueReplacesAnArchivedTask(t *testing.T) {
	ctx := context.Background()
	q, insp, _ := newQueue(t, time.Second)
	job, msg := reqIn(1), msgOf(reqIn(1))
	tests := []struct {
		name, taskID string
		enqueue      func() error
	}{
		{"job", job + ":2", func() error { return q.EnqueueJob(ctx, job, 2, time.Time{}, time.Second) }},
		{"delivery", msg + ":3", func() error { return q.ScheduleAttempt(ctx, msg, 3, time.Time{}) }},
	}
	for _, tc := range tests {
		if err := tc.enqueue(); err != nil {
			t.Fatal(err)
		}
		if err := insp.ArchiveTask("p1.y", tc.taskID); err != nil {
			t.Fatal(err)
		}
		if err := tc.enqueue(); err != nil {
			t.Fatalf("%s: enqueue over an archived task: %v", tc.name, err)
		}
		info, err := insp.GetTaskInfo("p1.y", tc.taskID)
		if err != nil || info.State != asynq.TaskStatePending {
			t.Fatalf("%s: task after re-enqueue: %v, %v; want pending", tc.name, info, err)
		}
		// A pending task is left as it is.
		if err := tc.enqueue(); err != nil {
			t.Fatal(err)
		}
	}
	if n := queueSize(t, insp, "p1.y"); n != len(tests) {
		t.Errorf("queue holds %d tasks, want %d", n, len(tests))
	}
	if archived, _ := insp.ListArchivedTasks("p1.y"); len(archived) != 0 {
		t.Errorf("archived tasks left: %v", taskIDs(archived))
	}
}

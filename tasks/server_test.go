package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// recorder is a set of Handlers that records what they were given; fail
// decides their error per call (nil: succeed).
type recorder struct {
	mu       sync.Mutex
	jobs     []string
	attempts []string // "deliveryID/n"
	replays  []string
	fail     func(kind, id string, call int) error
}

func (r *recorder) handlers() tasks.Handlers {
	record := func(kind string, list *[]string, id string) error {
		r.mu.Lock()
		*list = append(*list, id)
		call := len(*list)
		fail := r.fail
		r.mu.Unlock()
		if fail != nil {
			return fail(kind, id, call)
		}
		return nil
	}
	return tasks.Handlers{
		RunJob: func(_ context.Context, id string) error { return record("job", &r.jobs, id) },
		Attempt: func(_ context.Context, id string, n int) error {
			return record("attempt", &r.attempts, fmt.Sprintf("%s/%d", id, n))
		},
		RunBulkReplay: func(_ context.Context, id string) error { return record("replay", &r.replays, id) },
	}
}

func (r *recorder) snapshot() (jobs, attempts, replays []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.jobs...), append([]string(nil), r.attempts...), append([]string(nil), r.replays...)
}

func startServer(t *testing.T, rdb *redis.Client, o tasks.ServerOptions, h tasks.Handlers) *tasks.Server {
	t.Helper()
	o.Concurrency = 4
	o.TaskCheckInterval = 10 * time.Millisecond
	o.DelayedTaskCheckInterval = 50 * time.Millisecond
	o.ShutdownTimeout = 5 * time.Second
	srv := tasks.NewServer(rdb, partitions, o, h)
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// eventually polls cond until it holds; the deadline only bounds a hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestServerServesEveryQueue: tasks of each partition's queue and of the
// maintenance queue reach their handlers, and leave their queues.
func TestServerServesEveryQueue(t *testing.T) {
	ctx := context.Background()
	q, insp, rdb := newQueue(t, time.Second)
	rec := &recorder{}
	srv := startServer(t, rdb, tasks.ServerOptions{}, rec.handlers())
	if err := srv.Ping(); err != nil {
		t.Errorf("Ping of a running server: %v", err)
	}
	if err := srv.Start(); err == nil {
		t.Error("a second Start of a running server succeeded")
	}
	eventually(t, "the server to announce itself", func() bool {
		s, err := insp.Servers()
		return err == nil && len(s) == 1
	})
	servers, _ := insp.Servers()
	if want := map[string]int{"p0.x": 4, "p1.y": 4, tasks.QueueMaintenance: 1}; !reflect.DeepEqual(servers[0].Queues, want) {
		t.Errorf("the server serves queues %v, want %v (each partition's, weighted above maintenance)", servers[0].Queues, want)
	}

	job0, job1 := reqIn(0), reqIn(1)
	msg0, msg1 := msgOf(reqIn(0)), msgOf(reqIn(1))
	for _, err := range []error{
		q.EnqueueJob(ctx, job0, 1, time.Now(), time.Second),
		q.EnqueueJob(ctx, job1, 3, time.Now(), time.Second),
		q.ScheduleAttempt(ctx, msg0, 1, time.Now()),
		q.ScheduleAttempt(ctx, msg1, 2, time.Now()),
		q.StartReplay(ctx, "rpl_1"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every handler to see its tasks", func() bool {
		j, a, r := rec.snapshot()
		return len(j) == 2 && len(a) == 2 && len(r) == 1
	})
	// Done tasks leave the queues (no retention).
	for _, queue := range []string{"p0.x", "p1.y", tasks.QueueMaintenance} {
		eventually(t, "queue "+queue+" to empty", func() bool { return queueSize(t, insp, queue) == 0 })
	}
	j, a, r := rec.snapshot()
	sort.Strings(j)
	sort.Strings(a)
	wantJobs, wantAttempts := []string{job0, job1}, []string{msg0 + "/1", msg1 + "/2"}
	sort.Strings(wantJobs)
	sort.Strings(wantAttempts)
	if got, want := [3][]string{j, a, r}, [3][]string{wantJobs, wantAttempts, {"rpl_1"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("handlers saw jobs %v, attempts %v, replays %v; want %v", j, a, r, want)
	}

	done := make(chan struct{})
	go func() { srv.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // bounds a hang only
		t.Fatal("Shutdown did not return")
	}
	if err := srv.Ping(); err != nil {
		t.Errorf("Ping after Shutdown = %v, want nil", err)
	}
	srv.Shutdown() // a second Shutdown is harmless
}

func TestServerArchivesMalformedDeliveryWithoutRetry(t *testing.T) {
	ctx := context.Background()
	_, insp, rdb := newQueue(t, time.Second)
	rec := &recorder{}
	startServer(t, rdb, tasks.ServerOptions{}, rec.handlers())
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	for i, payload := range []string{`garbage`, `{"d":"msg_1","n":0}`} {
		_, err := client.EnqueueContext(ctx, asynq.NewTask(tasks.TypeDelivery, []byte(payload)),
			asynq.Queue("p1.y"), asynq.MaxRetry(25), asynq.TaskID(fmt.Sprintf("bad%d", i)))
		if err != nil {
			t.Fatal(err)
		}
	}
	var archived []*asynq.TaskInfo
	eventually(t, "the malformed tasks to be archived", func() bool {
		var err error
		archived, err = insp.ListArchivedTasks("p1.y")
		return err == nil && len(archived) == 2
	})
	for _, info := range archived {
		if info.Retried != 0 || !strings.Contains(info.LastErr, "malformed delivery task") {
			t.Errorf("archived task %s: retried %d, last error %q; want 0 retries and a malformed-task error", info.ID, info.Retried, info.LastErr)
		}
	}
	if retry, err := insp.ListRetryTasks("p1.y"); err != nil || len(retry) != 0 {
		t.Errorf("retry set = %v, %v; want empty", taskIDs(retry), err)
	}
	if _, a, _ := rec.snapshot(); len(a) != 0 {
		t.Errorf("Attempt was called for malformed tasks: %v", a)
	}
}

// TestServerRetriesFailedTasks: a task whose handler fails (Redis blip,
// crash) waits a second and runs again, counted as a retry and logged.
func TestServerRetriesFailedTasks(t *testing.T) {
	ctx := context.Background()
	q, insp, rdb := newQueue(t, time.Second)
	logs := &testkit.SyncBuffer{}
	rec := &recorder{fail: func(kind, id string, call int) error {
		if call == 1 {
			return errors.New(kind + " failed")
		}
		return nil
	}}
	startServer(t, rdb, tasks.ServerOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))}, rec.handlers())
	job, msg := reqIn(1), msgOf(reqIn(0))
	tests := []struct {
		kind, queue, taskID string
		enqueue             func(at time.Time) error
	}{
		{"job", "p1.y", job + ":2", func(at time.Time) error { return q.EnqueueJob(ctx, job, 2, at, time.Second) }},
		{"attempt", "p0.x", msg + ":1", func(at time.Time) error { return q.ScheduleAttempt(ctx, msg, 1, at) }},
	}
	for _, tc := range tests {
		before := time.Now()
		if err := tc.enqueue(before); err != nil {
			t.Fatal(err)
		}
		var info *asynq.TaskInfo
		eventually(t, "the failed "+tc.kind+" task to wait for its retry", func() bool {
			var err error
			info, err = insp.GetTaskInfo(tc.queue, tc.taskID)
			return err == nil && info.State == asynq.TaskStateRetry
		})
		after := time.Now()
		// The first retry waits a second; asynq keeps due times in whole seconds.
		if lo, hi := before.Truncate(time.Second), after.Add(2*time.Second); info.NextProcessAt.Before(lo) || info.NextProcessAt.After(hi) {
			t.Errorf("failed %s task is due %v, want about a second after the failure (between %v and %v)", tc.kind, info.NextProcessAt, lo, hi)
		}
		if info.Retried != 1 || info.LastErr != tc.kind+" failed" {
			t.Errorf("failed %s task: retried %d, last error %q; want 1, %q", tc.kind, info.Retried, info.LastErr, tc.kind+" failed")
		}
		if l := logs.String(); !strings.Contains(l, "task failed") || !strings.Contains(l, "taskId="+tc.taskID) {
			t.Errorf("log %q does not report the failed task %s", l, tc.taskID)
		}
		// Run the retry now: the handler succeeds this time.
		if err := insp.RunTask(tc.queue, tc.taskID); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the retried "+tc.kind+" task to finish", func() bool { return queueSize(t, insp, tc.queue) == 0 })
	}
	j, a, _ := rec.snapshot()
	if want := []string{job, job}; !reflect.DeepEqual(j, want) {
		t.Errorf("RunJob calls = %v, want %v", j, want)
	}
	if want := []string{msg + "/1", msg + "/1"}; !reflect.DeepEqual(a, want) {
		t.Errorf("Attempt calls = %v, want %v", a, want)
	}
}

// deferErr asks to run again after a delay without counting as a failure,
// like webhooks.DeferError and jobs.LeasedError.
type deferErr struct{ after time.Duration }

func (d deferErr) Error() string             { return "deferred" }
func (d deferErr) RetryAfter() time.Duration { return d.after }

// TestDeferralIsNotAFailure: a task deferred three times runs a fourth time
// with its retry counter untouched.
func TestDeferralIsNotAFailure(t *testing.T) {
	ctx := context.Background()
	q, _, rdb := newQueue(t, time.Second)
	var mu sync.Mutex
	var retries []int
	startServer(t, rdb, tasks.ServerOptions{}, tasks.Handlers{
		RunJob: func(ctx context.Context, id string) error {
			n, _ := asynq.GetRetryCount(ctx)
			mu.Lock()
			defer mu.Unlock()
			retries = append(retries, n)
			if len(retries) <= 3 {
				return fmt.Errorf("wrapped: %w", deferErr{after: 0})
			}
			return nil
		},
		Attempt:       func(context.Context, string, int) error { return nil },
		RunBulkReplay: func(context.Context, string) error { return nil },
	})
	if err := q.EnqueueJob(ctx, reqIn(0), 1, time.Now(), time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "four runs of the deferred job", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(retries) >= 4
	})
	mu.Lock()
	defer mu.Unlock()
	for i, n := range retries {
		if n != 0 {
			t.Errorf("run %d saw retry count %d, want 0 (deferrals are not failures)", i+1, n)
		}
	}
}

// TestDeferralWaitsItsRetryAfter: a deferred task is due when its error
// says, whatever the failure backoff, and is logged at debug level only.
func TestDeferralWaitsItsRetryAfter(t *testing.T) {
	ctx := context.Background()
	q, insp, rdb := newQueue(t, time.Second)
	logs := &testkit.SyncBuffer{}
	rec := &recorder{fail: func(string, string, int) error { return deferErr{after: time.Hour} }}
	startServer(t, rdb, tasks.ServerOptions{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))},
		rec.handlers())
	msg := msgOf(reqIn(1))
	before := time.Now()
	if err := q.ScheduleAttempt(ctx, msg, 4, before); err != nil {
		t.Fatal(err)
	}
	var info *asynq.TaskInfo
	eventually(t, "the deferred task to wait", func() bool {
		var err error
		info, err = insp.GetTaskInfo("p1.y", msg+":4")
		return err == nil && info.State == asynq.TaskStateRetry
	})
	after := time.Now()
	if lo, hi := before.Add(time.Hour).Truncate(time.Second), after.Add(time.Hour+time.Second); info.NextProcessAt.Before(lo) || info.NextProcessAt.After(hi) {
		t.Errorf("deferred task is due %v, want an hour after the deferral (between %v and %v)", info.NextProcessAt, lo, hi)
	}
	if info.Retried != 0 {
		t.Errorf("deferred task: retried %d, want 0", info.Retried)
	}
	l := logs.String()
	if !strings.Contains(l, "level=DEBUG msg=\"task deferred\"") || strings.Contains(l, "task failed") {
		t.Errorf("log %q: want a debug line \"task deferred\" and no failure", l)
	}
}

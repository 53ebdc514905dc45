package tasks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/tasks"
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

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startServer(t *testing.T, rdb *redis.Client, o tasks.ServerOptions, h tasks.Handlers) *tasks.Server {
	t.Helper()
	o.Concurrency = 4
	o.TaskCheckInterval = 10 * time.Millisecond
	o.DelayedTaskCheckInterval = 50 * time.Millisecond
	o.ShutdownTimeout = 5 * time.Second
	srv := tasks.NewServer(rdb, o, h)
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

func TestServerRunsEveryTaskType(t *testing.T) {
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

	if err := q.EnqueueJob(ctx, "req_1", time.Second); err != nil {
		t.Fatal(err)
	}
	if err := q.ScheduleAttempt(ctx, "msg_1", 2, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := q.StartReplay(ctx, "rpl_1"); err != nil {
		t.Fatal(err)
	}
	want := [3][]string{{"req_1"}, {"msg_1/2"}, {"rpl_1"}}
	eventually(t, "every handler to see its task", func() bool {
		j, a, r := rec.snapshot()
		return len(j) > 0 && len(a) > 0 && len(r) > 0
	})
	// Done tasks leave the queues (no retention).
	for _, queue := range []string{tasks.QueueJobs, tasks.QueueRetries, tasks.QueueMaintenance} {
		eventually(t, "queue "+queue+" to empty", func() bool { return queueSize(t, insp, queue) == 0 })
	}
	j, a, r := rec.snapshot()
	if got := [3][]string{j, a, r}; !reflect.DeepEqual(got, want) {
		t.Errorf("handlers saw jobs %v, attempts %v, replays %v; want %v", j, a, r, want)
	}

	done := make(chan struct{})
	go func() { srv.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
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
			asynq.Queue(tasks.QueueRetries), asynq.MaxRetry(25), asynq.TaskID(fmt.Sprintf("bad%d", i)))
		if err != nil {
			t.Fatal(err)
		}
	}
	var archived []*asynq.TaskInfo
	eventually(t, "the malformed tasks to be archived", func() bool {
		var err error
		archived, err = insp.ListArchivedTasks(tasks.QueueRetries)
		return err == nil && len(archived) == 2
	})
	for _, info := range archived {
		if info.Retried != 0 || !strings.Contains(info.LastErr, "malformed delivery task") {
			t.Errorf("archived task %s: retried %d, last error %q; want 0 retries and a malformed-task error", info.ID, info.Retried, info.LastErr)
		}
	}
	if retry, err := insp.ListRetryTasks(tasks.QueueRetries); err != nil || len(retry) != 0 {
		t.Errorf("retry set = %v, %v; want empty", taskIDs(retry), err)
	}
	if _, a, _ := rec.snapshot(); len(a) != 0 {
		t.Errorf("Attempt was called for malformed tasks: %v", a)
	}
}

func TestServerRetriesFailedJobWithJobRetryDelay(t *testing.T) {
	ctx := context.Background()
	q, insp, rdb := newQueue(t, time.Second)
	var mu sync.Mutex
	var delays []int
	const jobDelay = time.Hour
	logs := &syncBuffer{}
	rec := &recorder{fail: func(kind, id string, call int) error {
		if call == 1 {
			return errors.New(kind + " failed")
		}
		return nil
	}}
	startServer(t, rdb, tasks.ServerOptions{
		JobRetryDelay: func(failed int) time.Duration {
			mu.Lock()
			defer mu.Unlock()
			delays = append(delays, failed)
			return jobDelay
		},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}, rec.handlers())

	before := time.Now()
	if err := q.EnqueueJob(ctx, "req_r", time.Second); err != nil {
		t.Fatal(err)
	}
	var info *asynq.TaskInfo
	eventually(t, "the failed job task to wait for its retry", func() bool {
		var err error
		info, err = insp.GetTaskInfo(tasks.QueueJobs, "req_r")
		return err == nil && info.State == asynq.TaskStateRetry
	})
	after := time.Now()
	// asynq keeps the due time in whole seconds.
	if lo, hi := before.Add(jobDelay).Truncate(time.Second), after.Add(jobDelay); info.NextProcessAt.Before(lo) || info.NextProcessAt.After(hi) {
		t.Errorf("failed job is due %v, want %v after the failure (between %v and %v)", info.NextProcessAt, jobDelay, lo, hi)
	}
	if info.Retried != 1 || info.LastErr != "job failed" {
		t.Errorf("failed job: retried %d, last error %q; want 1, %q", info.Retried, info.LastErr, "job failed")
	}
	mu.Lock()
	if !reflect.DeepEqual(delays, []int{1}) {
		t.Errorf("JobRetryDelay called with %v, want [1] (the first failure)", delays)
	}
	mu.Unlock()
	if l := logs.String(); !strings.Contains(l, "task failed") || !strings.Contains(l, "taskType=job:run") || !strings.Contains(l, "taskId=req_r") {
		t.Errorf("log %q does not report the failed job task", l)
	}

	// Run the retry now instead of in an hour: the job succeeds this time.
	if err := insp.RunTask(tasks.QueueJobs, "req_r"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the retried job to finish", func() bool {
		j, _, _ := rec.snapshot()
		return len(j) == 2 && queueSize(t, insp, tasks.QueueJobs) == 0
	})
	if j, _, _ := rec.snapshot(); !reflect.DeepEqual(j, []string{"req_r", "req_r"}) {
		t.Errorf("RunJob calls = %v, want req_r twice", j)
	}
}

func TestServerRetriesOtherTasksWithItsOwnBackoff(t *testing.T) {
	ctx := context.Background()
	q, insp, rdb := newQueue(t, time.Second)
	var mu sync.Mutex
	jobDelayCalls := 0
	rec := &recorder{fail: func(kind, id string, call int) error { return errors.New(kind + " failed") }}
	startServer(t, rdb, tasks.ServerOptions{JobRetryDelay: func(int) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		jobDelayCalls++
		return time.Hour
	}}, rec.handlers())
	before := time.Now()
	if err := q.ScheduleAttempt(ctx, "msg_x", 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	var info *asynq.TaskInfo
	eventually(t, "the failed attempt to wait for its retry", func() bool {
		var err error
		info, err = insp.GetTaskInfo(tasks.QueueRetries, "msg_x:1")
		return err == nil && info.State == asynq.TaskStateRetry
	})
	after := time.Now()
	// The first retry of a non-job task waits about a second, never the
	// job delay.
	if lo, hi := before.Truncate(time.Second), after.Add(2*time.Second); info.NextProcessAt.Before(lo) || info.NextProcessAt.After(hi) {
		t.Errorf("failed attempt is due %v, want about a second after the failure (between %v and %v)", info.NextProcessAt, lo, hi)
	}
	mu.Lock()
	defer mu.Unlock()
	if jobDelayCalls != 0 {
		t.Errorf("JobRetryDelay was used for a delivery task (%d calls)", jobDelayCalls)
	}
}

// deferErr asks to run again after a delay without counting as a failure,
// like webhooks.DeferError.
type deferErr struct{ after time.Duration }

func (d deferErr) Error() string             { return "deferred" }
func (d deferErr) RetryAfter() time.Duration { return d.after }

// TestDeferralIsNotAFailure: a task deferred three times runs a fourth time
// with its retry counter untouched, and sooner than any failure backoff.
func TestDeferralIsNotAFailure(t *testing.T) {
	ctx := context.Background()
	q, _, rdb := newQueue(t, time.Second)
	var mu sync.Mutex
	var retries []int
	startServer(t, rdb, tasks.ServerOptions{JobRetryDelay: func(int) time.Duration { return time.Hour }}, tasks.Handlers{
		RunJob: func(ctx context.Context, id string) error {
			n, _ := asynq.GetRetryCount(ctx)
			mu.Lock()
			defer mu.Unlock()
			retries = append(retries, n)
			if len(retries) <= 3 {
				return deferErr{after: 0}
			}
			return nil
		},
		Attempt:       func(context.Context, string, int) error { return nil },
		RunBulkReplay: func(context.Context, string) error { return nil },
	})
	if err := q.EnqueueJob(ctx, "req_deferred", time.Second); err != nil {
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

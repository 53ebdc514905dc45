// Package tasks adapts Boomerang to asynq: it turns "run this job", "make
// this delivery attempt at that time" and "run this bulk replay" into durable
// asynq tasks, and runs the worker server that hands them back to the
// domain (jobs.Service, webhooks.Dispatcher). Nothing else imports asynq.
package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/ids"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Task types.
const (
	TypeJob      = "job:run"
	TypeDelivery = "delivery:attempt"
	TypeReplay   = "replay:bulk"
	TypeExpire   = "job:expire"
)

// Every partition has its own queue, named by its hash tag, so that on a
// cluster a partition's tasks live on the master that holds its records;
// bulk replays have a queue of their own, weighted low, so a replay of
// 100 000 deliveries cannot starve fresh work.
const QueueMaintenance = "maintenance"

// partitionWeight and maintenanceWeight are the queues' asynq weights.
const (
	partitionWeight   = 4
	maintenanceWeight = 1
)

// infraRetries is how often a task is re-run after errors that are not the
// job's own (Redis blips, lease expiry after a crash); the job's processing
// attempts are counted by the jobs domain itself.
const infraRetries = 25

// Queue enqueues Boomerang's tasks. It implements jobs.Enqueuer,
// webhooks.Scheduler, webhooks.ReplayStarter and recovery.Queue.
type Queue struct {
	client          *asynq.Client
	inspector       *asynq.Inspector
	partitions      []string // queue names, by partition
	deliveryTimeout time.Duration
	now             func() time.Time
}

// NewQueue returns a Queue over rdb. partitions names the queue of each
// partition (ids carry their partition); deliveryTimeout bounds each
// attempt, and a job task's timeout is its type's timeout plus one inline
// attempt.
func NewQueue(rdb redis.UniversalClient, partitions []string, deliveryTimeout time.Duration) *Queue {
	return &Queue{client: asynq.NewClientFromRedisClient(rdb), inspector: asynq.NewInspectorFromRedisClient(rdb),
		partitions: partitions, deliveryTimeout: deliveryTimeout, now: time.Now}
}

// queueOf is the queue of an id's partition.
func (q *Queue) queueOf(id string) string {
	p := ids.Partition(id)
	if p >= len(q.partitions) {
		p = 0
	}
	return q.partitions[p]
}

// ceilSecond rounds a time up to a whole second: asynq keeps whole Unix
// seconds and would otherwise run a task up to a second before it is due.
func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}

// wholeSeconds rounds up: asynq truncates timeouts to whole seconds, and a
// timeout under one second would mean none at all.
func wholeSeconds(d time.Duration) time.Duration {
	return (d + time.Second - 1).Truncate(time.Second)
}

// enqueue adds a task under a fixed id. A task already there under that id
// makes it a no-op (every enqueue here is idempotent by id), unless that
// task is archived, i.e. dead after exhausting its retries: asynq keeps
// archived ids for 90 days, so it is deleted and the task enqueued afresh,
// or the recovery sweep could never bring its work back.
func (q *Queue) enqueue(ctx context.Context, queue, id string, t *asynq.Task, opts ...asynq.Option) error {
	opts = append(opts, asynq.Queue(queue), asynq.TaskID(id))
	_, err := q.client.EnqueueContext(ctx, t, opts...)
	if !errors.Is(err, asynq.ErrTaskIDConflict) {
		return err
	}
	info, ierr := q.inspector.GetTaskInfo(queue, id)
	if ierr != nil || info.State != asynq.TaskStateArchived {
		return nil
	}
	if err := q.inspector.DeleteTask(queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		return fmt.Errorf("delete archived task %s: %w", id, err)
	}
	_, err = q.client.EnqueueContext(ctx, t, opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	return err
}

// EnqueueJob makes processing attempt n of a job durable, due at at, once
// per (request id, attempt).
func (q *Queue) EnqueueJob(ctx context.Context, requestID string, n int, at time.Time, timeout time.Duration) error {
	t := asynq.NewTask(TypeJob, []byte(requestID))
	opts := []asynq.Option{asynq.MaxRetry(infraRetries), asynq.Timeout(wholeSeconds(timeout + q.deliveryTimeout + 10*time.Second))}
	if at.After(q.now()) {
		opts = append(opts, asynq.ProcessAt(ceilSecond(at)))
	}
	return q.enqueue(ctx, q.queueOf(requestID), requestID+":"+strconv.Itoa(n), t, opts...)
}

// expireLead is how long before a deadline its expiry task is due: asynq
// moves due tasks to their queue once a check interval (a second here),
// and its workers poll as often, so the task starts a little before the
// deadline and waits for it (jobs.Service.Expire), to end the job within a
// second of it.
const expireLead = 3 * time.Second

// EnqueueExpiry makes a job's expiry at its deadline durable, once per job.
func (q *Queue) EnqueueExpiry(ctx context.Context, requestID string, deadline time.Time) error {
	at := deadline.Add(-expireLead)
	now := q.now()
	opts := []asynq.Option{asynq.MaxRetry(infraRetries)}
	if at.After(now) {
		at = ceilSecond(at)
		opts = append(opts, asynq.ProcessAt(at))
	} else {
		at = now
	}
	opts = append(opts, asynq.Timeout(wholeSeconds(max(0, deadline.Sub(at))+15*time.Second)))
	return q.enqueue(ctx, q.queueOf(requestID), requestID+":expire", asynq.NewTask(TypeExpire, []byte(requestID)), opts...)
}

type attemptPayload struct {
	DeliveryID string `json:"d"`
	Attempt    int    `json:"n"`
}

// ScheduleAttempt makes attempt n of a delivery durable, due at at.
func (q *Queue) ScheduleAttempt(ctx context.Context, deliveryID string, n int, at time.Time) error {
	payload, _ := json.Marshal(attemptPayload{deliveryID, n})
	opts := []asynq.Option{asynq.MaxRetry(infraRetries), asynq.Timeout(wholeSeconds(q.deliveryTimeout + 10*time.Second))}
	if at.After(q.now()) {
		opts = append(opts, asynq.ProcessAt(ceilSecond(at)))
	}
	return q.enqueue(ctx, q.queueOf(deliveryID), deliveryID+":"+strconv.Itoa(n), asynq.NewTask(TypeDelivery, payload), opts...)
}

// RunAttemptNow makes attempt n of a delivery run at once: its task, if
// scheduled or waiting for a retry, moves to its queue's pending list (so
// its old time passes with nothing left to run); if there is none, one is
// enqueued for now. A task already pending runs soon anyway. A task running
// right now may have read the old schedule and be about to wait for it, so
// a second task makes the attempt under another id: the attempt is made and
// recorded once whichever runs first (webhooks.Dispatcher.Attempt).
func (q *Queue) RunAttemptNow(ctx context.Context, deliveryID string, n int) error {
	queue, id := q.queueOf(deliveryID), deliveryID+":"+strconv.Itoa(n)
	err := q.inspector.RunTask(queue, id)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return q.ScheduleAttempt(ctx, deliveryID, n, q.now())
	// asynq tells these apart only by message (its error codes are internal).
	case strings.Contains(err.Error(), "already in pending state"):
		return nil
	case strings.Contains(err.Error(), "already running"):
		payload, _ := json.Marshal(attemptPayload{deliveryID, n})
		return q.enqueue(ctx, queue, id+":now", asynq.NewTask(TypeDelivery, payload),
			asynq.MaxRetry(infraRetries), asynq.Timeout(wholeSeconds(q.deliveryTimeout+10*time.Second)))
	}
	return fmt.Errorf("run attempt %d of %s now: %w", n, deliveryID, err)
}

// StartReplay runs a bulk replay in the background, once per replay id.
func (q *Queue) StartReplay(ctx context.Context, replayID string) error {
	return q.enqueue(ctx, QueueMaintenance, replayID, asynq.NewTask(TypeReplay, []byte(replayID)),
		asynq.MaxRetry(infraRetries), asynq.Timeout(2*time.Hour))
}

// Close releases the queue. The Redis client given to NewQueue is the
// caller's and stays open (asynq refuses to close a shared connection, so
// passing its Close through would fail every time).
func (q *Queue) Close() error { return nil }

// Handlers are the domain operations the worker runs.
type Handlers struct {
	RunJob        func(ctx context.Context, requestID string) error
	Attempt       func(ctx context.Context, deliveryID string, n int) error
	RunBulkReplay func(ctx context.Context, replayID string) error
	ExpireJob     func(ctx context.Context, requestID string) error
}

func (h Handlers) mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeJob, func(ctx context.Context, t *asynq.Task) error {
		return h.RunJob(ctx, string(t.Payload()))
	})
	mux.HandleFunc(TypeDelivery, func(ctx context.Context, t *asynq.Task) error {
		var p attemptPayload
		if err := json.Unmarshal(t.Payload(), &p); err != nil || p.DeliveryID == "" || p.Attempt < 1 {
			return fmt.Errorf("malformed delivery task %q: %w", t.Payload(), asynq.SkipRetry)
		}
		return h.Attempt(ctx, p.DeliveryID, p.Attempt)
	})
	mux.HandleFunc(TypeReplay, func(ctx context.Context, t *asynq.Task) error {
		return h.RunBulkReplay(ctx, string(t.Payload()))
	})
	mux.HandleFunc(TypeExpire, func(ctx context.Context, t *asynq.Task) error {
		return h.ExpireJob(ctx, string(t.Payload()))
	})
	return mux
}

package main

// The ceiling: raw asynq, no Boomerang, on the same Redis. This is the only
// file that speaks asynq.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// clusterCeilingQueues is how many queues the ceiling spreads its tasks over
// on a cluster: a queue lives on one master (its name is the keys' hash tag),
// so one queue would load one master only.
const clusterCeilingQueues = 16

// ceilingResult is the ceiling phase's numbers.
type ceilingResult struct {
	Tasks               int      `json:"tasks"`
	Queues              int      `json:"queues"`
	Enqueuers           int      `json:"enqueuers"`
	Concurrency         int      `json:"concurrency"`
	TaskCheckIntervalMs float64  `json:"taskCheckIntervalMs"`
	Seconds             float64  `json:"seconds"`
	EnqueueSeconds      float64  `json:"enqueueSeconds"`
	EnqueuePerSec       float64  `json:"enqueuePerSec"`
	TasksPerSec         float64  `json:"tasksPerSec"`
	EnqueueErrors       int64    `json:"enqueueErrors"`
	CPU                 cpuUsage `json:"cpu"`
	// RedisCallsPerTask is INFO commandstats' calls per task, commands run
	// inside asynq's Lua scripts included.
	RedisCallsPerTask map[string]float64 `json:"redisCallsPerTask"`
	// RedisReadsPerTask is Redis's socket reads per task (throughputResult.RedisReadsPerJob).
	RedisReadsPerTask float64 `json:"redisReadsPerTask"`
	// MasterOpsPerSec is each master's commands per second (machine.redisMasters).
	MasterOpsPerSec []float64 `json:"masterOpsPerSec,omitempty"`
}

// ceilingPhase enqueues n no-op tasks from enqueuers goroutines to an asynq
// server with the service's concurrency and check interval, and measures
// from the first enqueue to the last task processed.
func ceilingPhase(ctx context.Context, rs *benchRedis, concurrency int, checkInterval time.Duration, enqueuers, n int) (ceilingResult, error) {
	queues := ceilingQueues(rs.cluster)
	res := ceilingResult{Tasks: n, Queues: len(queues), Enqueuers: enqueuers, Concurrency: concurrency, TaskCheckIntervalMs: ms(checkInterval)}
	rdb := ceilingClient(rs, concurrency)
	defer rdb.Close()
	if err := rs.flushCeiling(ctx); err != nil {
		return res, fmt.Errorf("flush ceiling db: %w", err)
	}
	done := &noopCounter{n: int64(n), finished: make(chan struct{})}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:       concurrency,
		TaskCheckInterval: checkInterval,
		Queues:            weights(queues),
		LogLevel:          asynq.WarnLevel,
	})
	if err := srv.Start(asynq.HandlerFunc(done.handle)); err != nil {
		return res, fmt.Errorf("start asynq server: %w", err)
	}
	defer srv.Shutdown()
	time.Sleep(200 * time.Millisecond) // let the workers reach their idle poll

	cpu0, calls0, load0, reads0 := snapCPU(ctx, rs, 0), rs.commandCalls(ctx), rs.nodeLoad(ctx), rs.readEvents(ctx)
	start := time.Now()
	enqueued, errs := enqueueNoops(ctx, asynq.NewClientFromRedisClient(rdb), queues, enqueuers, n)
	if res.EnqueueErrors = errs; errs > 0 {
		return res, fmt.Errorf("%d enqueue errors", errs)
	}
	lastAt, err := done.wait(ctx, 2*time.Minute+time.Duration(n)*time.Millisecond)
	if err != nil {
		return res, err
	}
	total := lastAt.Sub(start)
	res.CPU = snapCPU(ctx, rs, 0).since(cpu0)
	res.RedisCallsPerTask = perJob(rs.commandCalls(ctx), calls0, n)
	res.RedisReadsPerTask = readsPer(rs.readEvents(ctx), reads0, n)
	res.MasterOpsPerSec = rs.nodeLoad(ctx).opsPerSec(load0)
	res.Seconds, res.EnqueueSeconds = secs(total), secs(enqueued)
	res.TasksPerSec, res.EnqueuePerSec = perSec(n, total), perSec(n, enqueued)
	srv.Shutdown()
	// Leave nothing of the ceiling behind for the service phases' memory figures.
	return res, rs.flushCeiling(ctx)
}

// ceilingClient is, like the service's, one go-redis client shared by the
// enqueuing client and the worker server: on one server with a pool of
// concurrency+20; on a cluster asynq's own cluster client (its default pool
// per node).
func ceilingClient(rs *benchRedis, concurrency int) redis.UniversalClient {
	if rs.cluster {
		return asynq.RedisClusterClientOpt{Addrs: rs.addrs()}.MakeRedisClient().(redis.UniversalClient)
	}
	opt := rs.options(rs.ceilingDB)
	opt.PoolSize = max(opt.PoolSize, concurrency+20)
	return redis.NewClient(opt)
}

func ceilingQueues(cluster bool) []string {
	if !cluster {
		return []string{"default"}
	}
	out := make([]string, clusterCeilingQueues)
	for i := range out {
		out[i] = fmt.Sprintf("p%02d", i)
	}
	return out
}

func weights(queues []string) map[string]int {
	out := make(map[string]int, len(queues))
	for _, q := range queues {
		out[q] = 1
	}
	return out
}

// enqueueNoops enqueues n no-op tasks round-robin over queues and returns
// how long that took and how many failed.
func enqueueNoops(ctx context.Context, client *asynq.Client, queues []string, enqueuers, n int) (time.Duration, int64) {
	payload := []byte("req_01KBENCHBENCHBENCHBENCHBE") // the size of a request id, like a job task
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range enqueuers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n) && ctx.Err() == nil; i = next.Add(1) {
				q := asynq.Queue(queues[int(i)%len(queues)])
				if _, err := client.EnqueueContext(ctx, asynq.NewTask("bench:noop", payload), q); err != nil {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), errs.Load()
}

// noopCounter is the ceiling's handler: it counts tasks and notes when the
// last one ran.
type noopCounter struct {
	n         int64
	processed atomic.Int64
	lastAt    atomic.Int64
	finished  chan struct{}
}

func (c *noopCounter) handle(context.Context, *asynq.Task) error {
	if c.processed.Add(1) == c.n {
		c.lastAt.Store(time.Now().UnixNano())
		close(c.finished)
	}
	return nil
}

// wait returns when the last task ran.
func (c *noopCounter) wait(ctx context.Context, timeout time.Duration) (time.Time, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.finished:
		return time.Unix(0, c.lastAt.Load()), nil
	case <-t.C:
		return time.Time{}, fmt.Errorf("only %d of %d tasks processed in time", c.processed.Load(), c.n)
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

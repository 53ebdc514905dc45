package jobs

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ReadyQueue hands out the ids of jobs submitted for processing now, one
// to each caller (redisstore.Store, a blocking pop per partition). An empty
// id means nothing came within wait.
type ReadyQueue interface {
	NextReady(ctx context.Context, partition int, wait time.Duration) (requestID string, err error)
	// ReturnReady puts back a job taken by a runner that is stopping, at
	// the head of its queue.
	ReturnReady(ctx context.Context, requestID string) error
}

// Runner processes jobs from the ready queue as soon as they are
// submitted: no polling delay, and no cost while idle, since each partition
// waits in one blocking pop. A job whose hint is lost (a crash between the
// pop and the claim) is run by the recovery's task instead.
type Runner struct {
	svc         *Service
	queue       ReadyQueue
	partitions  []int
	concurrency int
	wait        time.Duration
	grace       time.Duration // time running jobs get at Stop
	log         func(msg string, args ...any)

	cancel  context.CancelFunc // stops taking jobs
	abandon context.CancelFunc // cancels running jobs after the grace period
	wg      sync.WaitGroup     // the poppers

	// mu orders starting a job against Stop: once stopping is set, no job
	// starts, so Stop's wait on jobs cannot miss one.
	mu       sync.Mutex
	stopping bool
	jobs     sync.WaitGroup // the running jobs
}

// RunnerOptions configures a Runner.
type RunnerOptions struct {
	Partitions  []int         // the partitions this process serves
	Concurrency int           // jobs run at once
	Wait        time.Duration // longest single blocking pop; 0 means 5 s
	Grace       time.Duration // how long Stop lets running jobs finish
}

// StartRunner starts taking jobs from q until Stop.
func (s *Service) StartRunner(q ReadyQueue, o RunnerOptions) *Runner {
	if o.Wait <= 0 {
		o.Wait = 5 * time.Second
	}
	r := &Runner{svc: s, queue: q, partitions: o.Partitions, concurrency: max(1, o.Concurrency), wait: o.Wait,
		grace: o.Grace, log: s.log.Warn}
	popCtx, cancel := context.WithCancel(context.Background())
	runCtx, abandon := context.WithCancel(context.Background())
	r.cancel, r.abandon = cancel, abandon
	slots := make(chan struct{}, r.concurrency)
	for _, p := range r.partitions {
		r.wg.Add(1)
		go r.pop(popCtx, runCtx, p, slots)
	}
	return r
}

// pop takes one job at a time from a partition and starts it when a slot
// is free. An idle partition's blocked pop holds no slot, so jobs of busy
// partitions never wait for it; a busy process holds at most one job per
// partition while it waits for a slot.
func (r *Runner) pop(ctx, runCtx context.Context, partition int, slots chan struct{}) {
	defer r.wg.Done()
	for {
		id, err := r.queue.NextReady(ctx, partition, r.wait)
		if id != "" {
			select {
			case slots <- struct{}{}:
				if r.start(runCtx, id, slots) {
					continue // the job gives the slot back when it ends
				}
				<-slots
			case <-ctx.Done():
			}
			// Taken while stopping: leave it to another worker.
			if err := r.queue.ReturnReady(context.WithoutCancel(ctx), id); err != nil {
				r.log("could not put a job back; recovery will run it", "requestId", id, "error", err)
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.log("ready queue unavailable; jobs wait for it or for recovery", "partition", partition, "error", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
		}
	}
}

// start runs a popped job in the slot its popper holds, unless the runner
// is stopping.
func (r *Runner) start(ctx context.Context, id string, slots chan struct{}) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return false
	}
	r.jobs.Add(1)
	go func() {
		defer r.jobs.Done()
		defer func() { <-slots }()
		var leased *LeasedError
		if err := r.svc.Run(ctx, id); err != nil && !errors.As(err, &leased) {
			r.log("job run failed; it will be recovered", "requestId", id, "error", err)
		}
	}()
	return true
}

// Stop stops taking jobs, lets running ones finish within the grace
// period, then cancels them (a canceled job is released for another
// worker). A pop still blocked in the queue ends when the queue's
// connection closes; what it takes then goes back.
func (r *Runner) Stop() {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	r.cancel()
	popped := make(chan struct{})
	go func() { r.wg.Wait(); close(popped) }()
	select {
	case <-popped:
	case <-time.After(100 * time.Millisecond):
	}
	done := make(chan struct{})
	go func() { r.jobs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.grace):
		r.abandon()
		<-done
	}
	r.abandon()
}

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
	// ClaimAndNext claims a job popped from its partition's ready queue
	// (Store.ClaimJob) and, in the same round trip, pops the next one of
	// that partition without waiting (next is "" if there is none). The
	// claim's outcome is claimErr; err is the round trip's own failure.
	ClaimAndNext(ctx context.Context, requestID string, now, leaseUntil time.Time) (j Job, claimErr error, next string, err error)
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

// maxPoppers bounds the poppers of one partition in one process.
const maxPoppers = 8

// RunnerOptions configures a Runner.
type RunnerOptions struct {
	Partitions  []int         // the partitions this process serves
	Concurrency int           // jobs run at once
	Wait        time.Duration // longest single blocking pop; 0 means 30 s
	Grace       time.Duration // how long Stop lets running jobs finish
}

// StartRunner starts taking jobs from q until Stop.
func (s *Service) StartRunner(q ReadyQueue, o RunnerOptions) *Runner {
	if o.Wait <= 0 {
		o.Wait = 30 * time.Second
	}
	r := &Runner{svc: s, queue: q, partitions: o.Partitions, concurrency: max(1, o.Concurrency), wait: o.Wait,
		grace: o.Grace, log: s.log.Warn}
	popCtx, cancel := context.WithCancel(context.Background())
	runCtx, abandon := context.WithCancel(context.Background())
	r.cancel, r.abandon = cancel, abandon
	slots := make(chan struct{}, r.concurrency)
	// Each popper claims one job per round trip, so a busy partition gets
	// several; an idle one costs nothing for them, blocked in their pops.
	poppers := max(1, min(maxPoppers, r.concurrency/max(1, len(r.partitions))))
	for _, p := range r.partitions {
		for range poppers {
			r.wg.Add(1)
			go r.pop(popCtx, runCtx, p, slots)
		}
	}
	return r
}

// pop takes one job at a time from a partition and starts it when a slot
// is free. An idle partition's blocked pop holds no slot, so jobs of busy
// partitions never wait for it; a busy process holds at most one job per
// partition while it waits for a slot. Under load, each claim also pops
// the next job, so a job costs one round trip to be taken, not two.
func (r *Runner) pop(ctx, runCtx context.Context, partition int, slots chan struct{}) {
	defer r.wg.Done()
	next := ""
	for {
		if next == "" {
			id, err := r.queue.NextReady(ctx, partition, r.wait)
			if id == "" {
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
				continue
			}
			next = id
		}
		acquired := false
		select {
		case slots <- struct{}{}:
			acquired = true
		case <-ctx.Done():
		}
		if ctx.Err() != nil { // stopping (select picks at random when both are ready)
			if acquired {
				<-slots
			}
			r.giveBack(ctx, next)
			return
		}
		id := next
		now := r.svc.now().UTC()
		j, claimErr, following, err := r.queue.ClaimAndNext(context.WithoutCancel(ctx), id, now, now.Add(r.svc.lease))
		next = following
		if err != nil {
			<-slots
			r.log("claiming a job failed; recovery will run it", "requestId", id, "error", err)
			continue
		}
		if !r.start(runCtx, id, j, claimErr, slots) {
			<-slots
			r.release(id, j, claimErr)
			r.giveBack(ctx, next)
			return
		}
	}
}

// giveBack returns a popped, unclaimed job to the head of its queue.
func (r *Runner) giveBack(ctx context.Context, id string) {
	if id == "" {
		return
	}
	if err := r.queue.ReturnReady(context.WithoutCancel(ctx), id); err != nil {
		r.log("could not put a job back; recovery will run it", "requestId", id, "error", err)
	}
}

// release hands back a job claimed while the runner was stopping.
func (r *Runner) release(id string, j Job, claimErr error) {
	if claimErr != nil {
		return
	}
	now := r.svc.now().UTC()
	j.LastError, j.UpdatedAt = &Error{Code: "interrupted", Message: "the worker shut down before processing"}, now
	if err := r.svc.store.ReleaseJob(context.Background(), j, now); err != nil {
		r.log("could not release a job claimed while stopping; recovery will run it", "requestId", id, "error", err)
		return
	}
	r.giveBack(context.Background(), id)
}

// start runs a claimed job (or handles its claim's failure) in the slot
// its popper holds, unless the runner is stopping.
func (r *Runner) start(ctx context.Context, id string, j Job, claimErr error, slots chan struct{}) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return false
	}
	r.jobs.Add(1)
	go func() {
		defer r.jobs.Done()
		defer func() { <-slots }()
		err := claimErr
		if err != nil {
			err = r.svc.notClaimed(ctx, id, err)
		} else {
			err = r.svc.runClaimed(ctx, j)
		}
		var leased *LeasedError
		if err != nil && !errors.As(err, &leased) {
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

// Package recovery repairs what a crash can leave half-done and keeps Redis
// bounded. Boomerang never acknowledges a task before its successor is
// durable, so asynq's own lease recovery re-runs almost everything; the
// sweep here catches the rest: work whose task was lost outright (a crash
// between two writes, an evicted key, a task archived after its retries).
//
// Every repair is idempotent — tasks are enqueued under fixed ids — so any
// number of workers may sweep at once.
package recovery

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// Jobs is what the sweep needs of jobs.Store.
type Jobs interface {
	Stuck(ctx context.Context, st jobs.Status, now time.Time, age time.Duration, fn func(jobs.Job) error) error
	Trim(ctx context.Context, clientIDs []string, cutoff time.Time) (int, error)
}

// Deliveries is what the sweep needs of webhooks.Store.
type Deliveries interface {
	Stale(ctx context.Context, now time.Time, grace time.Duration, fn func(webhooks.Delivery) error) error
	StaleReplays(ctx context.Context, now time.Time, grace time.Duration, fn func(replayID string) error) error
	Trim(ctx context.Context, clientIDs []string, cutoff time.Time) (int, error)
}

// Clients lists client ids, whose per-client indexes need trimming.
type Clients interface {
	IDs(ctx context.Context, fn func(id string) error) error
}

// Queue re-enqueues work; every call must be idempotent by id.
type Queue interface {
	EnqueueJob(ctx context.Context, requestID string, timeout time.Duration) error
	ScheduleAttempt(ctx context.Context, deliveryID string, attempt int, at time.Time) error
	StartReplay(ctx context.Context, replayID string) error
}

// Sweeper finds and repairs stranded work.
type Sweeper struct {
	Jobs       Jobs
	Deliveries Deliveries
	Clients    Clients
	Queue      Queue
	// JobAge is how long a job may stay PROCESSING without a change before
	// it is re-enqueued: longer than the longest job timeout plus one
	// delivery attempt, plus Grace. An ACCEPTED job is re-enqueued after
	// Grace: its task may never have been written (a 503 whose write landed
	// anyway), and re-enqueuing one that waits in a backlog is a no-op.
	JobAge time.Duration
	// JobTimeout is the timeout given to a re-enqueued job task.
	JobTimeout time.Duration
	// Grace is how overdue a delivery attempt or a replay must be; above
	// asynq's ~65 s recovery of crashed tasks, so the sweep only catches what
	// asynq cannot.
	Grace     time.Duration
	Retention time.Duration
	Now       func() time.Time
	Logger    *slog.Logger
}

// Report counts what one sweep did.
type Report struct {
	JobsRequeued, DeliveriesRescheduled, ReplaysRestarted int
	JobEntriesTrimmed, DeliveryEntriesTrimmed             int
}

// Sweep runs every repair once and trims expired index entries.
func (s *Sweeper) Sweep(ctx context.Context) (Report, error) {
	var r Report
	now := s.Now()
	requeue := func(j jobs.Job) error {
		r.JobsRequeued++
		return s.Queue.EnqueueJob(ctx, j.ID, s.JobTimeout)
	}
	err1 := errors.Join(s.Jobs.Stuck(ctx, jobs.StatusAccepted, now, s.Grace, requeue),
		s.Jobs.Stuck(ctx, jobs.StatusProcessing, now, s.JobAge, requeue))
	err2 := s.Deliveries.Stale(ctx, now, s.Grace, func(d webhooks.Delivery) error {
		r.DeliveriesRescheduled++
		return s.Queue.ScheduleAttempt(ctx, d.ID, d.Attempts+1, now)
	})
	err3 := s.Deliveries.StaleReplays(ctx, now, s.Grace, func(id string) error {
		r.ReplaysRestarted++
		return s.Queue.StartReplay(ctx, id)
	})
	var ids []string
	err4 := s.Clients.IDs(ctx, func(id string) error { ids = append(ids, id); return nil })
	cutoff := now.Add(-s.Retention)
	var err5, err6 error
	r.JobEntriesTrimmed, err5 = s.Jobs.Trim(ctx, ids, cutoff)
	r.DeliveryEntriesTrimmed, err6 = s.Deliveries.Trim(ctx, ids, cutoff)
	return r, errors.Join(err1, err2, err3, err4, err5, err6)
}

// Start sweeps now and then every interval until ctx ends or stop is called.
func (s *Sweeper) Start(ctx context.Context, interval time.Duration) (stop func()) {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			r, err := s.Sweep(ctx)
			if err != nil && ctx.Err() == nil {
				log.Warn("recovery sweep incomplete", "error", err)
			}
			if r != (Report{}) {
				log.Info("recovery sweep", "jobsRequeued", r.JobsRequeued, "deliveriesRescheduled", r.DeliveriesRescheduled,
					"replaysRestarted", r.ReplaysRestarted, "jobEntriesTrimmed", r.JobEntriesTrimmed,
					"deliveryEntriesTrimmed", r.DeliveryEntriesTrimmed)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

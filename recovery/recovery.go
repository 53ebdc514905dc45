// Package recovery repairs what a crash can leave half-done and keeps Redis
// bounded. Every job and every pending delivery has a recovery time in the
// store: the time by which something should have happened to it (its
// worker picked it up, its lease was renewed, its retry ran, its first
// attempt was recorded). Work that goes well moves or clears that time as
// it goes; the Sweeper only looks at what is overdue, so it costs nothing
// while all is well and never scans whole indexes.
//
// Each repair enqueues a task under a fixed id (idempotent), so any number
// of workers may sweep at once.
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

// Due is a record whose recovery time has come, as the store holds it.
type Due struct {
	RequestID        string
	Exists           bool
	Job              jobs.Status
	JobAttempts      int
	Delivery         webhooks.Status // "" before the job ends
	DeliveryAttempts int
	// ExternalType is the type of a job done by external workers ("" for
	// others): its lapsed lease or lost list entry hands it back to them.
	ExternalType string
}

// Store is what the sweep needs of redisstore.Store.
type Store interface {
	Partitions() int
	// Overdue returns up to limit records of a partition whose recovery
	// time is not after now, and the next recovery time after now (zero if
	// none).
	Overdue(ctx context.Context, partition int, now time.Time, limit int) ([]Due, time.Time, error)
	// Reschedule moves a record's recovery time to at; a zero at takes it
	// off the schedule.
	Reschedule(ctx context.Context, requestID string, at time.Time) error
	// RequeueExternal hands an external job back to its type's workers,
	// unless it is held, ended or listed already, and sets its next
	// recovery time.
	RequeueExternal(ctx context.Context, id, typ string, now time.Time) (bool, error)
	RunningReplays(ctx context.Context) ([]webhooks.BulkReplay, error)
	// Trim drops index entries, created before cutoff, of records that
	// expired; lock keeps two processes from trimming at once.
	Trim(ctx context.Context, clientIDs []string, cutoff time.Time) (int, error)
}

// Clients lists client ids, whose per-client indexes need trimming.
type Clients interface {
	IDs(ctx context.Context, fn func(id string) error) error
}

// Queue re-enqueues work; every call must be idempotent by id.
type Queue interface {
	EnqueueJob(ctx context.Context, requestID string, attempt int, at time.Time, timeout time.Duration) error
	ScheduleAttempt(ctx context.Context, deliveryID string, attempt int, at time.Time) error
	StartReplay(ctx context.Context, replayID string) error
}

// Sweeper finds and repairs stranded work.
type Sweeper struct {
	Store   Store
	Clients Clients
	Queue   Queue
	// JobTimeout is the timeout given to a re-enqueued job task.
	JobTimeout time.Duration
	// RecoverAfter is when a repaired record is looked at again, if the
	// repair did not move it on by then.
	RecoverAfter time.Duration
	// ReplayGrace is how long a running bulk replay may go without progress.
	ReplayGrace time.Duration
	Retention   time.Duration
	// IdleCheck is how often a partition with nothing due is looked at
	// anyway, for records scheduled since; 0 means 5 s. External workers'
	// shortest lease must not be shorter, or a lapse would be seen late.
	IdleCheck time.Duration
	Now       func() time.Time
	Logger    *slog.Logger
}

// Report counts what one sweep did.
type Report struct {
	JobsRequeued, DeliveriesRescheduled, ReplaysRestarted, EntriesTrimmed int
}

// batch is how many overdue records one repair of a partition takes.
const batch = 200

// Repair repairs the overdue records of one partition and returns when the
// next one is due (zero: none scheduled).
func (s *Sweeper) Repair(ctx context.Context, partition int) (Report, time.Time, error) {
	var r Report
	now := s.Now()
	due, next, err := s.Store.Overdue(ctx, partition, now, batch)
	if err != nil {
		return r, time.Time{}, err
	}
	again := now.Add(s.RecoverAfter) // when a repaired record is looked at again
	for _, d := range due {
		var err error
		switch {
		case !d.Exists:
			err = s.Store.Reschedule(ctx, d.RequestID, time.Time{})
		case (d.Job == jobs.StatusAccepted || d.Job == jobs.StatusProcessing) && d.ExternalType != "":
			// A worker's lease lapsed (within a tick of it: leases are
			// this record's recovery time), its retry came, or its list
			// entry was lost: straight back to the workers.
			// It sets the next recovery time itself (a job listed already
			// is looked at again once the relist time has passed).
			var requeued bool
			if requeued, err = s.Store.RequeueExternal(ctx, d.RequestID, d.ExternalType, now); requeued {
				r.JobsRequeued++
			}
		case d.Job == jobs.StatusAccepted || d.Job == jobs.StatusProcessing:
			// The hint was lost, the worker died, or its retry task was:
			// the task runs it (a live lease makes the task wait).
			r.JobsRequeued++
			err = errors.Join(s.Queue.EnqueueJob(ctx, d.RequestID, d.JobAttempts+1, now, s.JobTimeout),
				s.Store.Reschedule(ctx, d.RequestID, again))
		case d.Delivery == webhooks.StatusPending:
			r.DeliveriesRescheduled++
			err = errors.Join(s.Queue.ScheduleAttempt(ctx, jobs.DeliveryID(d.RequestID), d.DeliveryAttempts+1, now),
				s.Store.Reschedule(ctx, d.RequestID, again))
		default:
			err = s.Store.Reschedule(ctx, d.RequestID, time.Time{}) // nothing left to do
		}
		if err != nil {
			return r, time.Time{}, err
		}
	}
	switch {
	case len(due) == batch:
		next = now // more are overdue
	case r.JobsRequeued+r.DeliveriesRescheduled > 0 && (next.IsZero() || again.Before(next)):
		next = again // the records just rescheduled
	}
	return r, next, nil
}

// Maintain restarts stalled bulk replays and trims expired index entries.
func (s *Sweeper) Maintain(ctx context.Context) (Report, error) {
	var r Report
	now := s.Now()
	replays, err1 := s.Store.RunningReplays(ctx)
	for _, rp := range replays {
		if now.Sub(rp.UpdatedAt) > s.ReplayGrace {
			r.ReplaysRestarted++
			if err := s.Queue.StartReplay(ctx, rp.ID); err != nil {
				err1 = errors.Join(err1, err)
			}
		}
	}
	var clientIDs []string
	err2 := s.Clients.IDs(ctx, func(id string) error { clientIDs = append(clientIDs, id); return nil })
	var err3 error
	r.EntriesTrimmed, err3 = s.Store.Trim(ctx, clientIDs, now.Add(-s.Retention))
	return r, errors.Join(err1, err2, err3)
}

// defaultIdleCheck is how often a partition with nothing due is looked at
// anyway, for records scheduled since (each look costs two commands).
const defaultIdleCheck = 5 * time.Second

// Start sweeps until ctx ends or stop is called: each partition when its
// next record is due (at most every tick), and maintenance every
// maintainEvery.
func (s *Sweeper) Start(ctx context.Context, tick, maintainEvery time.Duration) (stop func()) {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	idleCheck := s.IdleCheck
	if idleCheck <= 0 {
		idleCheck = defaultIdleCheck
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		nextCheck := make([]time.Time, s.Store.Partitions())
		var lastMaintain time.Time
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			now := s.Now()
			for p := range nextCheck {
				if now.Before(nextCheck[p]) {
					continue
				}
				r, next, err := s.Repair(ctx, p)
				if err != nil && ctx.Err() == nil {
					log.Warn("recovery: repairing a partition failed", "partition", p, "error", err)
				}
				if r != (Report{}) {
					log.Info("recovery", "partition", p, "jobsRequeued", r.JobsRequeued, "deliveriesRescheduled", r.DeliveriesRescheduled)
				}
				nextCheck[p] = now.Add(idleCheck)
				if !next.IsZero() && next.Before(nextCheck[p]) {
					nextCheck[p] = next
				}
			}
			if now.Sub(lastMaintain) >= maintainEvery {
				lastMaintain = now
				r, err := s.Maintain(ctx)
				if err != nil && ctx.Err() == nil {
					log.Warn("recovery: maintenance incomplete", "error", err)
				}
				if r != (Report{}) {
					log.Info("recovery maintenance", "replaysRestarted", r.ReplaysRestarted, "entriesTrimmed", r.EntriesTrimmed)
				}
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

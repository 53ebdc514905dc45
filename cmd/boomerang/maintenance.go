package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/config"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// maintenance repairs what a crash may leave half-done and keeps Redis
// bounded. Every step is idempotent (tasks are enqueued by fixed ids), so any
// number of workers may run it at once.
type maintenance struct {
	jobs       *jobs.Store
	deliveries *webhooks.Store
	clients    *clients.Store
	queue      *tasks.Queue
	cfg        config.Config
	log        *slog.Logger
	now        func() time.Time
}

// recoveryGrace is how overdue work must be before the sweep re-enqueues it;
// above asynq's own ~65 s crash recovery, so the sweep only catches what
// asynq cannot.
const recoveryGrace = 2 * time.Minute

// start runs a sweep now and every minute until ctx ends or stop is called.
func (m *maintenance) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			m.sweep(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// sweep re-enqueues jobs and deliveries whose task a crash may have lost,
// and trims index entries of expired records.
func (m *maintenance) sweep(ctx context.Context) {
	now := m.now()
	requeued := 0
	err := m.jobs.Unfinished(ctx, now, m.cfg.JobTimeout+m.cfg.DeliveryTimeout+recoveryGrace, func(j jobs.Job) error {
		requeued++
		return m.queue.EnqueueJob(ctx, j.ID, m.cfg.JobTimeout)
	})
	if err != nil && ctx.Err() == nil {
		m.log.Warn("sweep of unfinished jobs failed", "error", err)
	}
	rescheduled := 0
	err = m.deliveries.Stale(ctx, now, recoveryGrace, func(d webhooks.Delivery) error {
		rescheduled++
		return m.queue.ScheduleAttempt(ctx, d.ID, d.Attempts+1, now)
	})
	if err != nil && ctx.Err() == nil {
		m.log.Warn("sweep of stale deliveries failed", "error", err)
	}
	var ids []string
	_ = m.clients.IDs(ctx, func(id string) error { ids = append(ids, id); return nil })
	cutoff := now.Add(-m.cfg.Retention)
	trimmedJobs, err1 := m.jobs.Trim(ctx, ids, cutoff)
	trimmedDeliveries, err2 := m.deliveries.Trim(ctx, ids, cutoff)
	if (err1 != nil || err2 != nil) && ctx.Err() == nil {
		m.log.Warn("trimming indexes failed", "jobsError", err1, "deliveriesError", err2)
	}
	if requeued+rescheduled+trimmedJobs+trimmedDeliveries > 0 {
		m.log.Info("maintenance sweep", "jobsRequeued", requeued, "deliveriesRescheduled", rescheduled,
			"jobIndexEntriesTrimmed", trimmedJobs, "deliveryIndexEntriesTrimmed", trimmedDeliveries)
	}
}

package webhooks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/boomerang-dev/boomerang/tracing"
)

// NotPendingError: only a PENDING delivery can be retried now (a finished
// one is replayed instead). Status says where it stands.
type NotPendingError struct{ Status Status }

func (e *NotPendingError) Error() string {
	return fmt.Sprintf("delivery is %s, not PENDING", e.Status)
}

// ErrNoRunner: the Dispatcher was built without an AttemptRunner.
var ErrNoRunner = errors.New("no attempt runner to retry deliveries now")

// RetryNow makes the next attempt of a PENDING delivery now, in this
// process, instead of at its scheduled time, and returns the delivery
// afterwards with its attempt log. The attempt counts like any other: the
// next wait follows the retry policy from it, and if it was the round's
// last, the delivery fails.
//
// The attempt's task may still be scheduled, or be running right now: the
// store records attempt n once (RecordAttempt's guard), so whichever run
// comes second records nothing, and the task that comes later finds the
// attempt made and only makes sure the next one is scheduled. The receiver
// may then get the webhook twice, as at-least-once allows. If this process
// dies mid-attempt, nothing was recorded and the old schedule stands.
//
// If the gate defers the attempt (a circuit open, a concurrency cap in
// this process), it is handed to the workers to make as soon as their gate
// lets it through.
func (d *Dispatcher) RetryNow(ctx context.Context, id string) (Delivery, error) {
	// Once begun, the attempt is made and recorded even if the asker goes
	// away (a closed connection, a proxy's timeout): a webhook sent and
	// not recorded would be sent again at its old time. The attempt keeps
	// its own timeout.
	ctx = context.WithoutCancel(ctx)
	dl, err := d.store.GetDelivery(ctx, id, false)
	if err != nil {
		return Delivery{}, err
	}
	if dl.Status != StatusPending {
		return Delivery{}, &NotPendingError{Status: dl.Status}
	}
	// An operator's retry is a fresh try: an attempt that had already
	// waited once for an open circuit is handed to the workers if the
	// circuit is still open here, not failed without a request (which
	// could spend the round's last attempt on nothing).
	dl.DeferredUntil, dl.DeferredReason, dl.DeferredAttempt = nil, "", 0
	deferred := ""
	err = d.attemptOr(ctx, dl, func(ctx context.Context, dl Delivery, _ int, def *DeferError) error {
		deferred = def.Reason
		return d.expedite(ctx, dl)
	})
	if err != nil && !errors.Is(err, ErrStale) {
		return Delivery{}, err
	}
	logCtx := tracing.ForJob(ctx, dl.TraceParent)
	if deferred != "" {
		d.log.InfoContext(logCtx, "delivery retry-now handed to the workers", "deliveryId", id, "requestId", dl.RequestID,
			"attempt", dl.Attempts+1, "reason", deferred)
	} else {
		d.log.InfoContext(logCtx, "delivery retried now", "deliveryId", id, "requestId", dl.RequestID, "attempt", dl.Attempts+1)
	}
	return d.store.GetDelivery(ctx, id, true)
}

// RetryNowResult counts what a bulk retry-now matched and did.
type RetryNowResult struct {
	DryRun  bool  `json:"dryRun"`
	Matched int64 `json:"matched"`
	// Retried: moved to now and handed to the workers.
	Retried int64 `json:"retried"`
	// Skipped: changed meanwhile (an attempt recorded, or gone).
	Skipped int64 `json:"skipped"`
}

// bulkRetryLimit bounds a bulk retry-now (the API allows its answer as long).
const bulkRetryLimit = 10 * time.Minute

// bulkRetryPage is how many deliveries a bulk retry-now reads at a time.
const bulkRetryPage = 500

// RetryNowAll moves the next attempt of every PENDING delivery matching f
// (its Status is ignored) to now, and hands each to the workers, page by
// page through the same indexes as a list. A dry run only counts.
func (d *Dispatcher) RetryNowAll(ctx context.Context, f Filter, dryRun bool) (RetryNowResult, error) {
	// Begun, it goes to the end even if the asker goes away (a proxy's
	// timeout on a large run): stopping half-way would leave the operator
	// guessing which were moved. The counts are logged at the end. It is
	// bounded all the same, as long as its answer may take.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bulkRetryLimit)
	defer cancel()
	f.Status = StatusPending
	if dryRun {
		n, err := d.store.CountDeliveries(ctx, f)
		return RetryNowResult{DryRun: true, Matched: n}, err
	}
	var r RetryNowResult
	cursor := ""
	for {
		page, next, err := d.store.ListDeliveries(ctx, f, bulkRetryPage, cursor)
		if err != nil {
			return r, err
		}
		for _, dl := range page {
			r.Matched++
			switch err := d.expedite(ctx, dl); {
			case err == nil:
				r.Retried++
			case errors.Is(err, ErrStale), errors.Is(err, ErrNotFound):
				r.Skipped++
			default:
				return r, fmt.Errorf("retry %s now: %w", dl.ID, err)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	d.log.InfoContext(ctx, "deliveries retried now", "matched", r.Matched, "retried", r.Retried, "skipped", r.Skipped)
	return r, nil
}

// expedite moves dl's next attempt to now and has the workers make it. If
// handing it over fails, the delivery's recovery time (moved up with it)
// brings it back, and its old task still runs.
func (d *Dispatcher) expedite(ctx context.Context, dl Delivery) error {
	if d.runner == nil {
		return ErrNoRunner
	}
	if err := d.store.ExpediteDelivery(ctx, dl, d.now().UTC()); err != nil {
		return err
	}
	return d.runner.RunAttemptNow(ctx, dl.ID, dl.Attempts+1)
}

package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
)

// Replay reopens a DELIVERED or FAILED delivery and schedules its next
// attempt now, with the same webhook-id; attempt numbers continue and the
// delivery gets a fresh round of MaxAttempts. A PENDING delivery is
// ErrConflict.
func (d *Dispatcher) Replay(ctx context.Context, id string) (_ Delivery, err error) {
	now := d.now().UTC()
	// A new trace, which the replayed attempts continue, linked to the
	// original.
	ctx, span := d.tracer.StartReplay(ctx, id)
	defer func() { span.End(err) }()
	dl, err := d.store.ReopenDelivery(ctx, id, now, span.TraceParent())
	if err != nil {
		return Delivery{}, err
	}
	span.Link(dl.TraceParent)
	if tp := span.TraceParent(); tp != "" {
		dl.TraceParent = tp
	}
	// If this fails the delivery stays PENDING and the recovery sweep
	// schedules it; the caller still learns of the failure.
	if err := d.scheduler.ScheduleAttempt(ctx, id, dl.Attempts+1, now); err != nil {
		return dl, fmt.Errorf("schedule replay of %s: %w", id, err)
	}
	d.log.InfoContext(ctx, "delivery replayed", "deliveryId", id, "requestId", dl.RequestID, "nextAttempt", dl.Attempts+1)
	return dl, nil
}

// BulkReplay is a background replay of every delivery matching a filter.
type BulkReplay struct {
	ID         string     `json:"replayId"`
	Filter     Filter     `json:"-"`
	DryRun     bool       `json:"dryRun"`
	State      string     `json:"state"` // running, done, failed
	Matched    int64      `json:"matched"`
	Replayed   int64      `json:"replayed"`
	Skipped    int64      `json:"skipped"`
	Error      string     `json:"error,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	UpdatedAt  time.Time  `json:"updatedAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	// Cursor is where a running replay resumes (stored, not shown).
	Cursor string `json:"-"`
}

// Bulk replay states.
const (
	ReplayRunning = "running"
	ReplayDone    = "done"
	ReplayFailed  = "failed"
)

// ErrReplayNotFound is returned for an unknown replay id.
var ErrReplayNotFound = errors.New("replay not found")

// ReplayStarter runs a bulk replay in the background, durably.
type ReplayStarter interface {
	StartReplay(ctx context.Context, replayID string) error
}

// StartBulkReplay counts the matches, records the replay and hands it to the
// background runner. A dry run only counts.
func (d *Dispatcher) StartBulkReplay(ctx context.Context, f Filter, dryRun bool) (BulkReplay, error) {
	now := d.now().UTC()
	matched, err := d.store.CountDeliveries(ctx, f)
	if err != nil {
		return BulkReplay{}, err
	}
	r := BulkReplay{ID: ids.New(ids.Replay, now), Filter: f, DryRun: dryRun, State: ReplayRunning,
		Matched: matched, CreatedAt: now, UpdatedAt: now}
	if dryRun {
		r.State, r.FinishedAt = ReplayDone, &now
	}
	if err := d.store.SaveReplay(ctx, r); err != nil {
		return BulkReplay{}, err
	}
	if !dryRun {
		if err := d.replays.StartReplay(ctx, r.ID); err != nil {
			return BulkReplay{}, fmt.Errorf("start replay: %w", err)
		}
	}
	return r, nil
}

// GetReplay returns a bulk replay's progress.
func (d *Dispatcher) GetReplay(ctx context.Context, id string) (BulkReplay, error) {
	return d.store.GetReplay(ctx, id)
}

// RunBulkReplay pages through the matches, replaying each, and saves its
// progress after every page so a crash resumes where it stopped. It never
// holds more than one page in memory.
func (d *Dispatcher) RunBulkReplay(ctx context.Context, id string) error {
	r, err := d.store.GetReplay(ctx, id)
	if err != nil {
		return err
	}
	for r.State == ReplayRunning {
		page, next, err := d.store.ListDeliveries(ctx, r.Filter, 500, r.Cursor)
		if err != nil {
			return err
		}
		for _, dl := range page {
			reopened, err := d.Replay(ctx, dl.ID)
			switch {
			case err == nil:
				r.Replayed++
			case errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound):
				r.Skipped++ // replayed already by a run that crashed, or expired
			default:
				if reopened.Status == StatusPending {
					r.Replayed++ // reopened, only its task is missing: recovery schedules it
				}
				return d.stopBulkReplay(ctx, r, fmt.Errorf("replay %s: %w", dl.ID, err))
			}
		}
		r.Cursor, r.UpdatedAt = next, d.now().UTC()
		if next == "" {
			r.State, r.FinishedAt = ReplayDone, &r.UpdatedAt
		}
		if err := d.store.SaveReplay(ctx, r); err != nil {
			return err
		}
	}
	d.log.InfoContext(ctx, "bulk replay finished", "replayId", id, "replayed", r.Replayed, "skipped", r.Skipped)
	return nil
}

// stopBulkReplay saves the counts of a run that stops within a page, so a
// resumed run does not lose them, and returns err. The cursor stays at the
// page's start: the resumed run lists the page again, where the deliveries
// replayed already are PENDING now, so a status filter no longer matches
// them and the others count them as skipped.
func (d *Dispatcher) stopBulkReplay(ctx context.Context, r BulkReplay, err error) error {
	r.UpdatedAt = d.now().UTC()
	if serr := d.store.SaveReplay(context.WithoutCancel(ctx), r); serr != nil {
		return errors.Join(err, fmt.Errorf("save progress of %s: %w", r.ID, serr))
	}
	return err
}

// MarshalJSON adds the filter to a replay's JSON.
func (r BulkReplay) MarshalJSON() ([]byte, error) {
	type plain BulkReplay
	f := map[string]any{}
	if r.Filter.Status != "" {
		f["status"] = r.Filter.Status
	}
	if r.Filter.ClientID != "" {
		f["clientId"] = r.Filter.ClientID
	}
	if !r.Filter.Since.IsZero() {
		f["since"] = r.Filter.Since
	}
	if !r.Filter.Until.IsZero() {
		f["until"] = r.Filter.Until
	}
	return json.Marshal(struct {
		plain
		Filter map[string]any `json:"filter"`
	}{plain(r), f})
}

package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/boomerang-dev/boomerang/ids"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replay reopens a DELIVERED or FAILED delivery and schedules its next
// attempt now, with the same webhook-id; attempt numbers continue and the
// delivery gets a fresh round of MaxAttempts. A PENDING delivery is
// ErrConflict.
func (d *Dispatcher) Replay(ctx context.Context, id string) (Delivery, error) {
	now := d.now().UTC()
	dl, err := d.store.reopen(ctx, id, now)
	if err != nil {
		return Delivery{}, err
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
	cursor     string
}

// Bulk replay states.
const (
	ReplayRunning = "running"
	ReplayDone    = "done"
	ReplayFailed  = "failed"
)

// ErrReplayNotFound is returned for an unknown replay id.
var ErrReplayNotFound = errors.New("replay not found")

func replayKey(id string) string { return "bmr:replay:" + id }

// runningReplaysKey is the set of bulk replays not yet done, for recovery.
const runningReplaysKey = "bmr:replays:running"

// ReplayStarter runs a bulk replay in the background, durably.
type ReplayStarter interface {
	StartReplay(ctx context.Context, replayID string) error
}

// StartBulkReplay counts the matches, records the replay and hands it to the
// background runner. A dry run only counts.
func (d *Dispatcher) StartBulkReplay(ctx context.Context, f Filter, dryRun bool) (BulkReplay, error) {
	now := d.now().UTC()
	matched, err := d.store.Count(ctx, f)
	if err != nil {
		return BulkReplay{}, err
	}
	r := BulkReplay{ID: ids.New(ids.Replay, now), Filter: f, DryRun: dryRun, State: ReplayRunning,
		Matched: matched, CreatedAt: now, UpdatedAt: now}
	if dryRun {
		r.State, r.FinishedAt = ReplayDone, &now
	}
	if err := d.store.saveReplay(ctx, r); err != nil {
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
	return d.store.getReplay(ctx, id)
}

// RunBulkReplay pages through the matches, replaying each, and saves its
// progress after every page so a crash resumes where it stopped. It never
// holds more than one page in memory.
func (d *Dispatcher) RunBulkReplay(ctx context.Context, id string) error {
	r, err := d.store.getReplay(ctx, id)
	if err != nil {
		return err
	}
	for r.State == ReplayRunning {
		page, next, err := d.store.List(ctx, r.Filter, 500, r.cursor)
		if err != nil {
			return err
		}
		for _, dl := range page {
			_, err := d.Replay(ctx, dl.ID)
			switch {
			case err == nil:
				r.Replayed++
			case errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound):
				r.Skipped++ // replayed already by a run that crashed, or expired
			default:
				return err
			}
		}
		r.cursor, r.UpdatedAt = next, d.now().UTC()
		if next == "" {
			r.State, r.FinishedAt = ReplayDone, &r.UpdatedAt
		}
		if err := d.store.saveReplay(ctx, r); err != nil {
			return err
		}
	}
	d.log.InfoContext(ctx, "bulk replay finished", "replayId", id, "replayed", r.Replayed, "skipped", r.Skipped)
	return nil
}

func (s *Store) saveReplay(ctx context.Context, r BulkReplay) error {
	fields := []any{
		"id", r.ID, "status", string(r.Filter.Status), "clientId", r.Filter.ClientID,
		"since", fmtTimeOrEmpty(r.Filter.Since), "until", fmtTimeOrEmpty(r.Filter.Until),
		"dryRun", strconv.FormatBool(r.DryRun), "state", r.State, "matched", r.Matched,
		"replayed", r.Replayed, "skipped", r.Skipped, "error", r.Error, "cursor", r.cursor,
		"createdAt", fmtTime(r.CreatedAt), "updatedAt", fmtTime(r.UpdatedAt), "finishedAt", fmtTimePtr(r.FinishedAt),
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, replayKey(r.ID), fields...)
		p.Expire(ctx, replayKey(r.ID), s.retention)
		if r.State == ReplayRunning {
			p.SAdd(ctx, runningReplaysKey, r.ID)
		} else {
			p.SRem(ctx, runningReplaysKey, r.ID)
		}
		return nil
	})
	return err
}

func fmtTimeOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmtTime(t)
}

func (s *Store) getReplay(ctx context.Context, id string) (BulkReplay, error) {
	f, err := s.rdb.HGetAll(ctx, replayKey(id)).Result()
	if err != nil {
		return BulkReplay{}, err
	}
	if len(f) == 0 {
		return BulkReplay{}, ErrReplayNotFound
	}
	r := BulkReplay{ID: f["id"], State: f["state"], Error: f["error"], cursor: f["cursor"],
		Filter:    Filter{Status: Status(f["status"]), ClientID: f["clientId"], Since: parseTime(f["since"]), Until: parseTime(f["until"])},
		CreatedAt: parseTime(f["createdAt"]), UpdatedAt: parseTime(f["updatedAt"]), FinishedAt: parseTimePtr(f["finishedAt"])}
	r.DryRun, _ = strconv.ParseBool(f["dryRun"])
	r.Matched, _ = strconv.ParseInt(f["matched"], 10, 64)
	r.Replayed, _ = strconv.ParseInt(f["replayed"], 10, 64)
	r.Skipped, _ = strconv.ParseInt(f["skipped"], 10, 64)
	return r, nil
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

// StaleReplays calls fn for running bulk replays without progress for longer
// than grace: a crash may have lost their task.
func (s *Store) StaleReplays(ctx context.Context, now time.Time, grace time.Duration, fn func(replayID string) error) error {
	ids, err := s.rdb.SMembers(ctx, runningReplaysKey).Result()
	if err != nil {
		return err
	}
	for _, id := range ids {
		r, err := s.getReplay(ctx, id)
		if errors.Is(err, ErrReplayNotFound) {
			s.rdb.SRem(ctx, runningReplaysKey, id)
			continue
		}
		if err != nil {
			return err
		}
		if r.State == ReplayRunning && now.Sub(r.UpdatedAt) > grace {
			if err := fn(id); err != nil {
				return err
			}
		}
	}
	return nil
}

package redisstore

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/redis/go-redis/v9"
)

// Bulk replays share the hash tag {replays}, so a replay and the set of
// running ones change in one transaction, on one slot.
func replayKey(id string) string { return "bmr:{replays}:r:" + id }

const runningReplaysKey = "bmr:{replays}:running"

func fmtTimeOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmtTime(t)
}

// SaveReplay stores a bulk replay's filter and progress.
func (s *Store) SaveReplay(ctx context.Context, r webhooks.BulkReplay) error {
	finished := ""
	if r.FinishedAt != nil {
		finished = fmtTime(*r.FinishedAt)
	}
	fields := []any{
		"id", r.ID, "status", string(r.Filter.Status), "clientId", r.Filter.ClientID,
		"since", fmtTimeOrEmpty(r.Filter.Since), "until", fmtTimeOrEmpty(r.Filter.Until),
		"dryRun", strconv.FormatBool(r.DryRun), "state", r.State, "matched", r.Matched,
		"replayed", r.Replayed, "skipped", r.Skipped, "error", r.Error, "cursor", r.Cursor,
		"createdAt", fmtTime(r.CreatedAt), "updatedAt", fmtTime(r.UpdatedAt), "finishedAt", finished,
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, replayKey(r.ID), fields...)
		p.Expire(ctx, replayKey(r.ID), s.retention)
		if r.State == webhooks.ReplayRunning {
			p.SAdd(ctx, runningReplaysKey, r.ID)
		} else {
			p.SRem(ctx, runningReplaysKey, r.ID)
		}
		return nil
	})
	return err
}

// GetReplay returns a bulk replay.
func (s *Store) GetReplay(ctx context.Context, id string) (webhooks.BulkReplay, error) {
	if !ids.Valid(ids.Replay, id) {
		return webhooks.BulkReplay{}, webhooks.ErrReplayNotFound
	}
	f, err := s.rdb.HGetAll(ctx, replayKey(id)).Result()
	if err != nil {
		return webhooks.BulkReplay{}, err
	}
	if len(f) == 0 {
		return webhooks.BulkReplay{}, webhooks.ErrReplayNotFound
	}
	r := webhooks.BulkReplay{ID: f["id"], State: f["state"], Error: f["error"], Cursor: f["cursor"],
		Filter: webhooks.Filter{Status: webhooks.Status(f["status"]), ClientID: f["clientId"],
			Since: parseTime(f["since"]), Until: parseTime(f["until"])},
		CreatedAt: parseTime(f["createdAt"]), UpdatedAt: parseTime(f["updatedAt"])}
	if f["finishedAt"] != "" {
		t := parseTime(f["finishedAt"])
		r.FinishedAt = &t
	}
	r.DryRun, _ = strconv.ParseBool(f["dryRun"])
	r.Matched, _ = strconv.ParseInt(f["matched"], 10, 64)
	r.Replayed, _ = strconv.ParseInt(f["replayed"], 10, 64)
	r.Skipped, _ = strconv.ParseInt(f["skipped"], 10, 64)
	return r, nil
}

// RunningReplays returns the bulk replays not finished; ids whose replay
// expired are dropped from the set.
func (s *Store) RunningReplays(ctx context.Context) ([]webhooks.BulkReplay, error) {
	idsRunning, err := s.rdb.SMembers(ctx, runningReplaysKey).Result()
	if err != nil {
		return nil, err
	}
	var out []webhooks.BulkReplay
	for _, id := range idsRunning {
		r, err := s.GetReplay(ctx, id)
		if errors.Is(err, webhooks.ErrReplayNotFound) {
			s.rdb.SRem(ctx, runningReplaysKey, id)
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/recovery"
	"github.com/redis/go-redis/v9"
)

// Overdue returns up to limit records of a partition whose recovery time
// (bmr:{P}:due) is not after now, and the next recovery time after now.
func (s *Store) Overdue(ctx context.Context, partition int, now time.Time, limit int) ([]recovery.Due, time.Time, error) {
	tag := s.tags[partition]
	due := key(tag, "due")
	var overdue *redis.StringSliceCmd
	var next *redis.ZSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		overdue = p.ZRangeByScore(ctx, due, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(ms(now), 10), Count: int64(limit)})
		next = p.ZRangeByScoreWithScores(ctx, due, &redis.ZRangeBy{Min: "(" + strconv.FormatInt(ms(now), 10), Max: "+inf", Count: 1})
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read the recovery schedule: %w", err)
	}
	var nextAt time.Time
	if z := next.Val(); len(z) > 0 {
		nextAt = time.UnixMilli(int64(z[0].Score)).UTC()
	}
	bodies := overdue.Val()
	if len(bodies) == 0 {
		return nil, nextAt, nil
	}
	cmds := make([]*redis.SliceCmd, len(bodies))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, b := range bodies {
			cmds[i] = p.HMGet(ctx, recordKey(tag, b), fState, fDelivery, fExternal, fStatic)
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read overdue records: %w", err)
	}
	out := make([]recovery.Due, len(bodies))
	for i, b := range bodies {
		d := recovery.Due{RequestID: ids.Request + b}
		v := cmds[i].Val()
		if st, ok := v[0].(string); ok {
			js := parseJobState(st)
			d.Exists, d.Job, d.JobAttempts = true, js.status, js.attempts
		}
		if x, _ := v[2].(string); x != "" {
			st, _ := v[3].(string)
			var sj static
			_ = json.Unmarshal([]byte(st), &sj)
			d.ExternalType = sj.Type
		}
		if dv, ok := v[1].(string); ok {
			if ds, ok := parseDeliveryState(dv); ok {
				d.Delivery, d.DeliveryAttempts = ds.status, ds.attempts
			}
		}
		out[i] = d
	}
	return out, nextAt, nil
}

// Reschedule moves a record's recovery time (touchScript); a zero at takes
// it off the schedule.
func (s *Store) Reschedule(ctx context.Context, requestID string, at time.Time) error {
	body, tag := ids.Body(requestID), s.tagOf(requestID)
	if at.IsZero() {
		return s.rdb.ZRem(ctx, key(tag, "due"), body).Err()
	}
	return touchScript.Run(ctx, s.rdb, []string{recordKey(tag, body), key(tag, "due")}, body, ms(at)).Err()
}

// trimLock keeps two processes from trimming at once.
const trimLock = "bmr:lock:trim"

// Trim removes, from every partition's indexes and those of the given
// clients, the entries created before cutoff whose record has expired.
// Records changed recently keep their entries even if created long ago.
func (s *Store) Trim(ctx context.Context, clientIDs []string, cutoff time.Time) (int, error) {
	ok, err := s.rdb.SetNX(ctx, trimLock, "1", time.Minute).Result()
	if err != nil || !ok {
		return 0, err
	}
	defer s.rdb.Del(context.WithoutCancel(ctx), trimLock)
	removed := 0
	for _, tag := range s.tags {
		suffixes := []string{"jobs", "jobs:f", "dlv", "dlv:f"}
		for _, c := range clientIDs {
			suffixes = append(suffixes, "jobs:c:"+c, "jobs:f:"+c, "dlv:c:"+c, "dlv:f:"+c)
		}
		for _, sfx := range suffixes {
			n, err := s.trimKey(ctx, tag, key(tag, sfx), cutoff)
			removed += n
			if err != nil {
				return removed, err
			}
		}
	}
	return removed, nil
}

func (s *Store) trimKey(ctx context.Context, tag, index string, cutoff time.Time) (int, error) {
	removed := 0
	lo := "-"
	for {
		members, err := s.rdb.ZRangeByLex(ctx, index, &redis.ZRangeBy{Min: lo, Max: "(" + ids.TimePrefix(cutoff), Count: 500}).Result()
		if err != nil || len(members) == 0 {
			return removed, err
		}
		exists := make([]*redis.IntCmd, len(members))
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, m := range members {
				exists[i] = p.Exists(ctx, recordKey(tag, bodyOf(m)))
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
		var gone []any
		for i, m := range members {
			if exists[i].Val() == 0 {
				gone = append(gone, m)
			}
		}
		if len(gone) > 0 {
			if err := s.rdb.ZRem(ctx, index, gone...).Err(); err != nil {
				return removed, err
			}
			removed += len(gone)
		}
		if len(members) < 500 {
			return removed, nil
		}
		lo = "(" + members[len(members)-1]
	}
}

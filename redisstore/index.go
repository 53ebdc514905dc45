package redisstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/page"
	"github.com/redis/go-redis/v9"
)

// Indexes are sorted sets whose members all have score 0 and begin with a
// 10-character time prefix (ids.TimePrefix) followed by <b>: Redis orders
// equal scores lexicographically, so members sort by time, a cursor is the
// last member returned, a time window is a lexical range, and trimming is a
// range too. One index per partition; a listing merges them.

// ErrBadCursor is a cursor this store did not make (page.ErrBadCursor).
var ErrBadCursor = page.ErrBadCursor

func encodeCursor(member string) string {
	if member == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(member))
}

func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < ids.Len {
		return "", ErrBadCursor
	}
	if _, ok := ids.PrefixTime(string(b)); !ok {
		return "", ErrBadCursor
	}
	return string(b), nil
}

// scanQuery reads indexes newest first.
type scanQuery struct {
	keys         []string // one index per partition
	since, until time.Time
	limit        int
	cursor       string
	fields       []string // record fields keep gets
	// keep decides on a record and takes it; it counts towards limit only
	// when it returns true. A member whose record expired is skipped.
	keep func(member string, f map[string]string) bool
}

// maxScan bounds the records one page may examine when keep filters: a
// page can then come back short, with a cursor to go on from.
const maxScan = 5000

// scan walks the merged indexes from the cursor down, batch by batch, and
// returns the cursor of the next page ("" at the end).
func (s *Store) scan(ctx context.Context, q scanQuery) (string, error) {
	if q.limit <= 0 {
		q.limit = 50
	}
	upper, err := decodeCursor(q.cursor)
	if err != nil {
		return "", err
	}
	lo, hi := window(q.since, q.until)
	if upper != "" && (hi == "+" || upper < hi[1:]) {
		hi = "(" + upper
	}
	kept, examined := 0, 0
	batch := q.limit + 1
	for {
		members, err := s.merged(ctx, q.keys, lo, hi, batch)
		if err != nil {
			return "", err
		}
		records, err := s.records(ctx, members, q.fields)
		if err != nil {
			return "", err
		}
		for i, m := range members {
			if len(records[i]) > 0 && q.keep(m, records[i]) {
				kept++
			}
			examined++
			if kept == q.limit {
				if i == len(members)-1 && len(members) < batch {
					return "", nil // nothing after it
				}
				return encodeCursor(m), nil
			}
			if examined >= maxScan {
				return encodeCursor(m), nil
			}
		}
		if len(members) < batch {
			return "", nil
		}
		hi = "(" + members[len(members)-1]
		batch = min(4*batch, 1000)
	}
}

// merged returns the n greatest members below max and at or above min over
// all keys, greatest first.
func (s *Store) merged(ctx context.Context, keys []string, lo, hi string, n int) ([]string, error) {
	cmds := make([]*redis.StringSliceCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.ZRevRangeByLex(ctx, k, &redis.ZRangeBy{Max: hi, Min: lo, Count: int64(n)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	var all []string
	for _, c := range cmds {
		all = append(all, c.Val()...)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(all)))
	if len(all) > n {
		all = all[:n]
	}
	return all, nil
}

// records reads the given fields of the records behind index members.
func (s *Store) records(ctx context.Context, members []string, fields []string) ([]map[string]string, error) {
	cmds := make([]*redis.SliceCmd, len(members))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range members {
			b := bodyOf(m)
			cmds[i] = p.HMGet(ctx, recordKey(s.tagOf(ids.Request+b), b), fields...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	out := make([]map[string]string, len(members))
	for i, c := range cmds {
		m := map[string]string{}
		for j, v := range c.Val() {
			if v, ok := v.(string); ok {
				m[fields[j]] = v
			}
		}
		if m[fState] == "" && m[fDelivery] == "" && m[fClient] == "" {
			m = nil // expired
		}
		out[i] = m
	}
	return out, nil
}

// window is the lexical range of index members created at or after since
// and before until (zero: unbounded). Members carry whole milliseconds, so
// both bounds round up to one: created ≥ 12:00:00.0005 means created ≥
// 12:00:00.001, and created < 12:00:00.0005 means created ≤ 12:00:00.000.
func window(since, until time.Time) (lo, hi string) {
	lo, hi = "-", "+"
	if !since.IsZero() {
		lo = "[" + ids.TimePrefix(ceilMs(since))
	}
	if !until.IsZero() {
		hi = "(" + ids.TimePrefix(ceilMs(until))
	}
	return lo, hi
}

func ceilMs(t time.Time) time.Time {
	if r := t.Truncate(time.Millisecond); !r.Equal(t) {
		return r.Add(time.Millisecond)
	}
	return t
}

// count counts index members in a time window over all keys.
func (s *Store) count(ctx context.Context, keys []string, since, until time.Time) (int64, error) {
	lo, hi := window(since, until)
	cmds := make([]*redis.IntCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.ZLexCount(ctx, k, lo, hi)
		}
		return nil
	})
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, err
}

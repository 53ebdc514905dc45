// Package timeindex keeps time-ordered Redis indexes of records (jobs,
// deliveries, clients) and pages through them newest first with opaque
// cursors.
//
// An index is a sorted set whose members all have score 0 and read
// "<10-char time prefix><id>". Redis orders equal-score members
// lexicographically, and the prefix is the creation time in milliseconds in
// Crockford base32, so lexicographic order is time order. That gives three
// things with single commands and no extra state: a cursor is just the last
// member returned, a time window is a lexical range, and trimming old entries
// is ZREMRANGEBYLEX. IDs (package ids) carry the same prefix, so they sort by
// creation time too.
package timeindex

import (
	"context"
	"encoding/base64"
	"errors"
	"time"

	"github.com/boomerang-dev/boomerang/ids"

	"github.com/redis/go-redis/v9"
)

// PrefixLen is the length of the time prefix of a member.
const PrefixLen = ids.TimeLen

// Prefix encodes t as the 10-character time prefix of ids (ids.TimePrefix),
// whose lexicographic order is time order.
func Prefix(t time.Time) string { return ids.TimePrefix(t) }

// PrefixTime decodes a prefix made by Prefix.
func PrefixTime(p string) (time.Time, bool) { return ids.PrefixTime(p) }

// Member is the index member for a record created at t with the given id.
func Member(t time.Time, id string) string { return Prefix(t) + id }

// ID returns the id part of a member.
func ID(member string) string {
	if len(member) < PrefixLen {
		return member
	}
	return member[PrefixLen:]
}

// ErrBadCursor is returned for a cursor that Page did not make.
var ErrBadCursor = errors.New("malformed cursor")

// Query selects a page of an index, newest first.
type Query struct {
	Since, Until time.Time // zero means unbounded; Since inclusive, Until exclusive
	Limit        int       // at most this many members
	Cursor       string    // from a previous Page; empty starts at the newest
}

// EncodeCursor and DecodeCursor make cursors opaque to API users.
func EncodeCursor(member string) string {
	if member == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(member))
}

// DecodeCursor reverses EncodeCursor.
func DecodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) <= PrefixLen {
		return "", ErrBadCursor
	}
	if _, ok := PrefixTime(string(b)); !ok {
		return "", ErrBadCursor
	}
	return string(b), nil
}

// Page returns up to q.Limit ids from key, newest first, and the cursor of
// the next page ("" when there is none).
func Page(ctx context.Context, rdb redis.Cmdable, key string, q Query) (ids []string, next string, err error) {
	max, min := "+", "-"
	if !q.Until.IsZero() {
		max = "(" + Prefix(q.Until)
	}
	if q.Cursor != "" {
		member, err := DecodeCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		if max == "+" || member < max[1:] {
			max = "(" + member
		}
	}
	if !q.Since.IsZero() {
		min = "[" + Prefix(q.Since)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	members, err := rdb.ZRevRangeByLex(ctx, key, &redis.ZRangeBy{Max: max, Min: min, Count: int64(limit + 1)}).Result()
	if err != nil {
		return nil, "", err
	}
	if len(members) > limit {
		members = members[:limit]
		next = EncodeCursor(members[limit-1])
	}
	ids = make([]string, len(members))
	for i, m := range members {
		ids[i] = ID(m)
	}
	return ids, next, nil
}

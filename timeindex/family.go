package timeindex

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Family is a kind of record (jobs, deliveries) kept as one Redis hash per
// record, with a "status" field, plus four indexes so that the admin API can
// list by status and by client without scanning:
//
//	<Base>                      every record
//	<Base>:s:<status>           by status
//	<Base>:c:<client>           by client
//	<Base>:c:<client>:s:<status> by client and status
//
// Create, Transition and Delete change a record and its indexes in one Lua
// script, so a crash never leaves them disagreeing.
type Family struct {
	Base     string
	Statuses []string
	HashKey  func(id string) string
}

// Key returns the index to read for a filter; empty values mean "any".
func (f Family) Key(status, clientID string) string {
	k := f.Base
	if clientID != "" {
		k += ":c:" + clientID
	}
	if status != "" {
		k += ":s:" + status
	}
	return k
}

// Errors of Transition, decided with errors.Is.
var (
	ErrNoRecord    = errors.New("record not found")
	ErrWrongStatus = errors.New("record is not in an allowed status")
	ErrGuard       = errors.New("record changed concurrently")
)

// Record is what Create writes.
type Record struct {
	ID, ClientID, Status string
	CreatedAt            time.Time
	TTL                  time.Duration
	Fields               []any // field, value pairs (besides status)
	// IdemKey, when set, is claimed with IdemValue for IdemTTL in the same
	// script; if it already exists nothing is written and its value returned.
	IdemKey, IdemValue string
	IdemTTL            time.Duration
}

var createScript = redis.NewScript(`
if ARGV[6] ~= '' then
  local ex = redis.call('GET', KEYS[2])
  if ex then return {0, ex} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, ''} end
redis.call('HSET', KEYS[1], 'status', ARGV[4])
for i = 8, #ARGV, 2 do
  if ARGV[i+1] ~= '' then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local b, c, m, s = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('ZADD', b, 0, m)
redis.call('ZADD', b .. ':s:' .. s, 0, m)
redis.call('ZADD', b .. ':c:' .. c, 0, m)
redis.call('ZADD', b .. ':c:' .. c .. ':s:' .. s, 0, m)
if ARGV[6] ~= '' then redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[7]) end
return {1, ''}
`)

// Create writes a new record unless it exists. It reports whether it wrote,
// and the value already held by the idempotency key, if that stopped it.
func (f Family) Create(ctx context.Context, rdb redis.Scripter, r Record) (created bool, existing string, err error) {
	idemKey := r.IdemKey
	if idemKey == "" {
		idemKey = f.HashKey(r.ID) // unused placeholder; scripts must name real keys
	}
	args := []any{f.Base, r.ClientID, Member(r.CreatedAt, r.ID), r.Status, r.TTL.Milliseconds(), r.IdemValue, r.IdemTTL.Milliseconds()}
	args = append(args, r.Fields...)
	res, err := createScript.Run(ctx, rdb, []string{f.HashKey(r.ID), idemKey}, args...).Slice()
	if err != nil {
		return false, "", fmt.Errorf("create %s: %w", r.ID, err)
	}
	return res[0].(int64) == 1, res[1].(string), nil
}

// Change is what Transition applies to one record.
type Change struct {
	ID, ClientID string
	CreatedAt    time.Time
	From         []string // allowed current statuses; empty means any
	To           string   // new status; empty keeps it
	// GuardField/GuardValue: apply only if that field holds that value
	// (a missing field reads as ""); a mismatch is ErrGuard.
	GuardField, GuardValue string
	Fields                 []any // field, value pairs; an empty value deletes the field
	TTL                    time.Duration
	// Push appends PushValue to the list PushKey, keeping its last PushCap.
	PushKey, PushValue string
	PushCap            int
}

var transitionScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {0, ''} end
if ARGV[1] ~= '' then
  local ok = false
  for s in string.gmatch(ARGV[1], '[^,]+') do if s == cur then ok = true end end
  if not ok then return {-1, cur} end
end
if ARGV[9] ~= '' then
  local g = redis.call('HGET', KEYS[1], ARGV[9]) or ''
  if g ~= ARGV[10] then return {-2, cur} end
end
for i = 11, #ARGV, 2 do
  if ARGV[i+1] == '' then redis.call('HDEL', KEYS[1], ARGV[i]) else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
end
local to = ARGV[2]
if to ~= '' and to ~= cur then
  local b, c, m = ARGV[3], ARGV[4], ARGV[5]
  redis.call('HSET', KEYS[1], 'status', to)
  redis.call('ZREM', b .. ':s:' .. cur, m)
  redis.call('ZADD', b .. ':s:' .. to, 0, m)
  redis.call('ZREM', b .. ':c:' .. c .. ':s:' .. cur, m)
  redis.call('ZADD', b .. ':c:' .. c .. ':s:' .. to, 0, m)
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
if ARGV[7] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[7])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[8]), -1)
end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return {1, cur}
`)

// Transition changes a record atomically and returns its previous status.
func (f Family) Transition(ctx context.Context, rdb redis.Scripter, c Change) (prev string, err error) {
	from := ""
	for i, s := range c.From {
		if i > 0 {
			from += ","
		}
		from += s
	}
	pushKey := c.PushKey
	if pushKey == "" {
		pushKey = f.HashKey(c.ID) + ":none"
	}
	pushCap := c.PushCap
	if pushCap <= 0 {
		pushCap = 1000
	}
	args := []any{from, c.To, f.Base, c.ClientID, Member(c.CreatedAt, c.ID), c.TTL.Milliseconds(), c.PushValue, pushCap, c.GuardField, c.GuardValue}
	args = append(args, c.Fields...)
	res, err := transitionScript.Run(ctx, rdb, []string{f.HashKey(c.ID), pushKey}, args...).Slice()
	if err != nil {
		return "", fmt.Errorf("update %s: %w", c.ID, err)
	}
	prev = res[1].(string)
	switch res[0].(int64) {
	case 0:
		return "", ErrNoRecord
	case -1:
		return prev, ErrWrongStatus
	case -2:
		return prev, ErrGuard
	}
	return prev, nil
}

var deleteScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 0 end
local b, c, m = ARGV[1], ARGV[2], ARGV[3]
redis.call('DEL', KEYS[1])
redis.call('ZREM', b, m)
redis.call('ZREM', b .. ':s:' .. cur, m)
redis.call('ZREM', b .. ':c:' .. c, m)
redis.call('ZREM', b .. ':c:' .. c .. ':s:' .. cur, m)
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
return 1
`)

// Delete removes a record, its index entries and, if it still holds
// idemValue, its idempotency key. It undoes a Create whose follow-up failed.
func (f Family) Delete(ctx context.Context, rdb redis.Scripter, id, clientID string, createdAt time.Time, idemKey, idemValue string) error {
	if idemKey == "" {
		idemKey = f.HashKey(id)
	}
	return deleteScript.Run(ctx, rdb, []string{f.HashKey(id), idemKey}, f.Base, clientID, Member(createdAt, id), idemValue).Err()
}

// Count counts the records of an index created in [since, until).
func (f Family) Count(ctx context.Context, rdb redis.Cmdable, status, clientID string, since, until time.Time) (int64, error) {
	min, max := "-", "+"
	if !since.IsZero() {
		min = "[" + Prefix(since)
	}
	if !until.IsZero() {
		max = "(" + Prefix(until)
	}
	return rdb.ZLexCount(ctx, f.Key(status, clientID), min, max).Result()
}

// Trim removes, from the indexes of the given clients (and the global ones),
// the entries created before cutoff whose record has expired. Records touched
// recently keep their entries even if created long ago.
func (f Family) Trim(ctx context.Context, rdb redis.Cmdable, clientIDs []string, cutoff time.Time) (removed int, err error) {
	keys := []string{f.Key("", "")}
	for _, s := range f.Statuses {
		keys = append(keys, f.Key(s, ""))
	}
	for _, c := range clientIDs {
		keys = append(keys, f.Key("", c))
		for _, s := range f.Statuses {
			keys = append(keys, f.Key(s, c))
		}
	}
	for _, key := range keys {
		n, err := f.trimKey(ctx, rdb, key, cutoff)
		removed += n
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

func (f Family) trimKey(ctx context.Context, rdb redis.Cmdable, key string, cutoff time.Time) (int, error) {
	removed := 0
	min := "-"
	for {
		members, err := rdb.ZRangeByLex(ctx, key, &redis.ZRangeBy{Min: min, Max: "(" + Prefix(cutoff), Count: 500}).Result()
		if err != nil || len(members) == 0 {
			return removed, err
		}
		pipe := rdb.Pipeline()
		exists := make([]*redis.IntCmd, len(members))
		for i, m := range members {
			exists[i] = pipe.Exists(ctx, f.HashKey(ID(m)))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return removed, err
		}
		var gone []any
		for i, m := range members {
			if exists[i].Val() == 0 {
				gone = append(gone, m)
			}
		}
		if len(gone) > 0 {
			if err := rdb.ZRem(ctx, key, gone...).Err(); err != nil {
				return removed, err
			}
			removed += len(gone)
		}
		if len(members) < 500 {
			return removed, nil
		}
		min = "(" + members[len(members)-1]
	}
}

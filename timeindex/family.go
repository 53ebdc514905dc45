package timeindex

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	// BlobKey, if set, names a string key kept beside each record for one
	// large value (Record.Blob), written, expired and deleted with it. Out
	// of the hash, a large value no longer forces the hash out of Redis's
	// compact listpack encoding.
	BlobKey func(id string) string
}

func (f Family) blobKey(id string) string {
	if f.BlobKey == nil {
		return f.HashKey(id) + ":blob" // never written; scripts must name real keys
	}
	return f.BlobKey(id)
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
	// Blob is written to the family's BlobKey (nil: none).
	Blob []byte
}

// The Lua of the scripts below, as functions over a KEYS and an ARGV
// table, so that CreateWith can run a create and a transition in one script.
const luaCreate = `
local function create(K, A)
  if A[6] ~= '' then
    local ex = redis.call('GET', K[2])
    if ex then return {0, ex} end
  end
  if redis.call('EXISTS', K[1]) == 1 then return {0, ''} end
  local kv = {'status', A[4]}
  for i = 9, #A, 2 do
    if A[i+1] ~= '' then kv[#kv+1] = A[i]; kv[#kv+1] = A[i+1] end
  end
  redis.call('HSET', K[1], unpack(kv))
  redis.call('PEXPIRE', K[1], A[5])
  if A[8] ~= '' then redis.call('SET', K[3], A[8], 'PX', A[5]) end
  local b, c, m, s = A[1], A[2], A[3], A[4]
  redis.call('ZADD', b, 0, m)
  redis.call('ZADD', b .. ':s:' .. s, 0, m)
  redis.call('ZADD', b .. ':c:' .. c, 0, m)
  redis.call('ZADD', b .. ':c:' .. c .. ':s:' .. s, 0, m)
  if A[6] ~= '' then redis.call('SET', K[2], A[6], 'PX', A[7]) end
  return {1, ''}
end
`

const luaTransition = `
local function check(K, A)
  local v = redis.call('HMGET', K[1], 'status', A[9] ~= '' and A[9] or 'status')
  local cur = v[1]
  if not cur then return 0, '' end
  if A[1] ~= '' then
    local ok = false
    for s in string.gmatch(A[1], '[^,]+') do if s == cur then ok = true end end
    if not ok then return -1, cur end
  end
  if A[9] ~= '' and (v[2] or '') ~= A[10] then return -2, cur end
  return 1, cur
end
-- A[11] says which side keys are real: 'p' the push list, 'b' the blob;
-- A[12] names a field to increment; A[13] is 'return' to get the record.
local function apply(K, A, cur)
  local set, del = {}, {}
  for i = 14, #A, 2 do
    if A[i+1] == '' then del[#del+1] = A[i] else set[#set+1] = A[i]; set[#set+1] = A[i+1] end
  end
  local to = A[2]
  local moved = to ~= '' and to ~= cur
  if moved then set[#set+1] = 'status'; set[#set+1] = to end
  if #set > 0 then redis.call('HSET', K[1], unpack(set)) end
  if #del > 0 then redis.call('HDEL', K[1], unpack(del)) end
  if A[12] ~= '' then redis.call('HINCRBY', K[1], A[12], 1) end
  if moved then
    local b, c, m = A[3], A[4], A[5]
    if c == '' then c = redis.call('HGET', K[1], 'clientId') or '' end
    redis.call('ZREM', b .. ':s:' .. cur, m)
    redis.call('ZADD', b .. ':s:' .. to, 0, m)
    redis.call('ZREM', b .. ':c:' .. c .. ':s:' .. cur, m)
    redis.call('ZADD', b .. ':c:' .. c .. ':s:' .. to, 0, m)
  end
  redis.call('PEXPIRE', K[1], A[6])
  if A[7] ~= '' then
    redis.call('RPUSH', K[2], A[7])
    redis.call('LTRIM', K[2], -tonumber(A[8]), -1)
  end
  if string.find(A[11], 'p', 1, true) then redis.call('PEXPIRE', K[2], A[6]) end
  if string.find(A[11], 'b', 1, true) then redis.call('PEXPIRE', K[3], A[6]) end
end
`

var createScript = redis.NewScript(luaCreate + `return create(KEYS, ARGV)`)

var transitionScript = redis.NewScript(luaTransition + `
local c, cur = check(KEYS, ARGV)
if c == 1 then apply(KEYS, ARGV, cur) end
if ARGV[13] == 'return' and (c == 1 or c == -1) then
  return {c, cur, redis.call('HGETALL', KEYS[1])}
end
return {c, cur}
`)

// createWithScript: ARGV[1] is the number n of create arguments that follow;
// the transition's arguments come after them. The transition's checks come
// first, so a failed check writes nothing.
var createWithScript = redis.NewScript(luaCreate + luaTransition + `
local n = tonumber(ARGV[1])
local ca, ta = {}, {}
for i = 2, n + 1 do ca[#ca+1] = ARGV[i] end
for i = n + 2, #ARGV do ta[#ta+1] = ARGV[i] end
local tk = {KEYS[4], KEYS[5], KEYS[6]}
local c, cur = check(tk, ta)
if c ~= 1 then return {c, cur, ''} end
local r = create({KEYS[1], KEYS[2], KEYS[3]}, ca)
apply(tk, ta, cur)
return {1, cur, r[2], r[1]}
`)

// Create writes a new record unless it exists. It reports whether it wrote,
// and the value already held by the idempotency key, if that stopped it.
func (f Family) Create(ctx context.Context, rdb redis.Scripter, r Record) (created bool, existing string, err error) {
	keys, args := f.createArgs(r)
	res, err := createScript.Run(ctx, rdb, keys, args...).Slice()
	if err != nil {
		return false, "", fmt.Errorf("create %s: %w", r.ID, err)
	}
	return res[0].(int64) == 1, res[1].(string), nil
}

func (f Family) createArgs(r Record) (keys []string, args []any) {
	idemKey := r.IdemKey
	if idemKey == "" {
		idemKey = f.HashKey(r.ID) // unused placeholder; scripts must name real keys
	}
	if r.Blob != nil && f.BlobKey == nil {
		panic("timeindex: Record.Blob in a Family without BlobKey")
	}
	args = []any{f.Base, r.ClientID, Member(r.CreatedAt, r.ID), r.Status, r.TTL.Milliseconds(), r.IdemValue, r.IdemTTL.Milliseconds(), r.Blob}
	return []string{f.HashKey(r.ID), idemKey, f.blobKey(r.ID)}, append(args, r.Fields...)
}

// Update is a Change to a record of a Family.
type Update struct {
	Family Family
	Change Change
}

// CreateWith creates r, unless it exists, and applies u, in one script:
// if u's status or guard check fails, nothing is written and the error is
// ErrNoRecord, ErrWrongStatus or ErrGuard, as from Transition. Like Create,
// it reports whether r was written and what held its idempotency key.
func (f Family) CreateWith(ctx context.Context, rdb redis.Scripter, r Record, u Update) (created bool, existing string, err error) {
	ckeys, cargs := f.createArgs(r)
	tkeys, targs := u.Family.changeArgs(u.Change)
	args := append(append([]any{len(cargs)}, cargs...), targs...)
	res, err := createWithScript.Run(ctx, rdb, append(ckeys, tkeys...), args...).Slice()
	if err != nil {
		return false, "", fmt.Errorf("create %s with %s: %w", r.ID, u.Change.ID, err)
	}
	if err := statusErr(res[0].(int64)); err != nil {
		return false, "", err
	}
	return res[3].(int64) == 1, res[2].(string), nil
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
	// Push appends PushValue to the list PushKey, keeping its last PushCap;
	// a PushKey without a PushValue only has its TTL refreshed with the
	// record's.
	PushKey, PushValue string
	PushCap            int
	// Incr is a field to increment by one, after the checks.
	Incr string
	// Member, if set, is the record's index member (else it is derived from
	// CreatedAt and ID). With Member set, an empty ClientID is read from the
	// record's clientId field, so a caller can change a record it has not
	// read.
	Member string
	// Return asks TransitionGet for the whole record as it is afterwards
	// (or as it is, when the status check fails).
	Return bool
}

// Transition changes a record atomically and returns its previous status.
func (f Family) Transition(ctx context.Context, rdb redis.Scripter, c Change) (prev string, err error) {
	keys, args := f.changeArgs(c)
	res, err := transitionScript.Run(ctx, rdb, keys, args...).Slice()
	if err != nil {
		return "", fmt.Errorf("update %s: %w", c.ID, err)
	}
	if err := statusErr(res[0].(int64)); err != nil {
		if errors.Is(err, ErrNoRecord) {
			return "", err
		}
		return res[1].(string), err
	}
	return res[1].(string), nil
}

// TransitionGet is Transition with c.Return: it also returns the record's
// fields afterwards, or as they are when the status check fails
// (ErrWrongStatus), in the same round trip.
func (f Family) TransitionGet(ctx context.Context, rdb redis.Scripter, c Change) (fields map[string]string, err error) {
	c.Return = true
	keys, args := f.changeArgs(c)
	res, err := transitionScript.Run(ctx, rdb, keys, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", c.ID, err)
	}
	if len(res) > 2 {
		flat, _ := res[2].([]any)
		fields = make(map[string]string, len(flat)/2)
		for i := 0; i+1 < len(flat); i += 2 {
			k, _ := flat[i].(string)
			v, _ := flat[i+1].(string)
			fields[k] = v
		}
	}
	return fields, statusErr(res[0].(int64))
}

func (f Family) changeArgs(c Change) (keys []string, args []any) {
	pushKey := c.PushKey
	if pushKey == "" {
		pushKey = f.HashKey(c.ID) + ":none"
	}
	pushCap := c.PushCap
	if pushCap <= 0 {
		pushCap = 1000
	}
	sides := ""
	if c.PushKey != "" {
		sides += "p"
	}
	if f.BlobKey != nil {
		sides += "b"
	}
	member := c.Member
	if member == "" {
		member = Member(c.CreatedAt, c.ID)
	}
	ret := ""
	if c.Return {
		ret = "return"
	}
	args = []any{strings.Join(c.From, ","), c.To, f.Base, c.ClientID, member, c.TTL.Milliseconds(),
		c.PushValue, pushCap, c.GuardField, c.GuardValue, sides, c.Incr, ret}
	return []string{f.HashKey(c.ID), pushKey, f.blobKey(c.ID)}, append(args, c.Fields...)
}

func statusErr(code int64) error {
	switch code {
	case 0:
		return ErrNoRecord
	case -1:
		return ErrWrongStatus
	case -2:
		return ErrGuard
	}
	return nil
}

var deleteScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 0 end
local b, c, m = ARGV[1], ARGV[2], ARGV[3]
redis.call('DEL', KEYS[1], KEYS[3])
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
	return deleteScript.Run(ctx, rdb, []string{f.HashKey(id), idemKey, f.blobKey(id)}, f.Base, clientID, Member(createdAt, id), idemValue).Err()
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

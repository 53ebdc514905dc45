package redisstore

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts. Each touches the keys of one hash tag only, every key
// it touches is in KEYS, and each opens with what it takes and returns.
// Where a script takes no optional key, the caller passes the record key
// in its place (same slot, never written).
//
// Each write but the claim also recognises its own repeat: go-redis sends
// a command again when its answer times out, though the first may have
// run, so a script that finds what it would write already written answers
// as if it wrote it. A repeated claim finds the job leased (by itself): the
// run gives up and the job waits for its lease to lapse, since two workers
// claiming at once must never both be told yes.

// Channels. Events of watched jobs go to eventsChannel as "<b> <n>
// <entry>" (the entry also kept in the record as e:<n>); external job types
// that have work go to availChannel; jobs canceled or expired to
// stopChannel, for the processes that may be running them.
const (
	eventsChannel = "bmr:ev"
	availChannel  = "bmr:avail"
	stopChannel   = "bmr:stop"
)

// eventLua defines event(entry, watched): if the record is watched (its w
// field, set by watchScript; watched nil means look), it numbers the
// entry, keeps the last maxEvents in the record and publishes it. KEYS[1]
// must be the record, ARGV[1] its <b>.
var eventLua = `
local function event(entry, watched)
  if entry == '' then return end
  if watched == nil then watched = redis.call('HEXISTS', KEYS[1], 'w') == 1 end
  if not watched then return end
  local n = redis.call('HINCRBY', KEYS[1], 'ev', 1)
  redis.call('HSET', KEYS[1], 'e:' .. n, entry)
  if n > ` + strconv.Itoa(maxEvents) + ` then redis.call('HDEL', KEYS[1], 'e:' .. (n - ` + strconv.Itoa(maxEvents) + `)) end
  redis.call('PUBLISH', '` + eventsChannel + `', ARGV[1] .. ' ' .. n .. ' ' .. entry)
end
`

// createJobScript stores a new job, indexes it, schedules its recovery and
// hands it to the workers, unless its Idempotency-Key is taken. The job
// index doubles as the id check: its member is <b>, there as long as the
// record (Trim drops it only once the record is gone), so ZADD NX refuses
// a taken id in the same command that indexes a new one. An external job
// goes to its type's list instead of the ready list, and the type is
// announced on availChannel to the processes whose workers wait for it.
//
// KEYS[1] -> bmr:{P}:r:<b>
// KEYS[2] -> bmr:{P}:jobs
// KEYS[3] -> bmr:{P}:jobs:c:<client>
// KEYS[4] -> bmr:{P}:due
// KEYS[5] -> bmr:{P}:ready, or bmr:{P}:xready:<type> for an external job
// KEYS[6] -> bmr:{P}:idem:<client>:<hash> (or KEYS[1]: no key)
// -------
// ARGV[1] -> <b>, the index member (it starts with the creation time)
// ARGV[2] -> when recovery acts (Unix ms)
// ARGV[3] -> retention (ms)
// ARGV[4] -> idempotency claim "<b> <fingerprint>" ("" without a key)
// ARGV[5] -> idempotency claim TTL (ms)
// ARGV[6] -> the type to announce on availChannel ("" for none)
// ARGV[7..] -> record field, value pairs
//
// Returns {1} when stored (or stored by this very call, repeated), {0,
// claim} when the key is taken, {2} when another job with this id exists.
var createJobScript = redis.NewScript(`
if ARGV[4] ~= '' then
  local claim = redis.call('GET', KEYS[6])
  if claim == ARGV[4] then return {1} end
  if claim then return {0, claim} end
end
if redis.call('ZADD', KEYS[2], 'NX', 0, ARGV[1]) == 0 then
  for i = 7, #ARGV, 2 do
    if ARGV[i] == 's' and redis.call('HGET', KEYS[1], 's') == ARGV[i+1] then return {1} end
  end
  return {2}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('RPUSH', KEYS[5], ARGV[1])
if ARGV[4] ~= '' then redis.call('SET', KEYS[6], ARGV[4], 'PX', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('PUBLISH', '` + availChannel + `', ARGV[6]) end
return {1}
`)

// claimJobScript moves an ACCEPTED job, or a PROCESSING one whose lease or
// retry time has come, to PROCESSING under a lease, and counts the attempt.
// The state field s is "<status> <attempts> <updated ns> <completed ns>
// <not before ms>". It reads the whole record at once, since a claim
// returns it. Only an external worker's claim (with a lease id) takes an
// external job (field x); any other claim hands it back, untouched.
//
// KEYS[1] -> bmr:{P}:r:<b>
// KEYS[2] -> bmr:{P}:due
// -------
// ARGV[1] -> <b>
// ARGV[2] -> now (Unix ms)
// ARGV[3] -> now (Unix ns), the new updated time
// ARGV[4] -> lease until (Unix ms): the new not-before and recovery time
// ARGV[5] -> retention (ms), or 0 to leave the record's TTL (see touch)
// ARGV[6] -> the external worker's part of its lease id, lid = "<attempt>.<ARGV[6]>" ("" for none)
//
// ARGV[7] -> the status event, but for its end: "<attempt>}" completes it
//
// Returns {1, fields} when claimed (the record afterwards), {-1, fields}
// when the job is finished, {-2, not before} when another run holds it or
// its retry time is ahead, {-3, fields} for an external job claimed
// without a lease id, {0} when there is no such job.
var claimJobScript = redis.NewScript(eventLua + `
local f = redis.call('HGETALL', KEYS[1])
local si, ext, watched = nil, false, false
for i = 1, #f, 2 do
  if f[i] == 's' then si = i + 1 elseif f[i] == 'x' then ext = true elseif f[i] == 'w' then watched = true end
end
if not si then return {0} end
local st, n, rest = string.match(f[si], '^(%S+) (%d+) (.*)$')
if st ~= 'ACCEPTED' and st ~= 'PROCESSING' then return {-1, f} end
if ext and ARGV[6] == '' then return {-3, f} end
local notBefore = tonumber(string.match(rest, '(%d+)$'))
if st == 'PROCESSING' and notBefore > tonumber(ARGV[2]) then return {-2, tostring(notBefore)} end
f[si] = 'PROCESSING ' .. (tonumber(n) + 1) .. ' ' .. ARGV[3] .. ' 0 ' .. ARGV[4]
if ARGV[6] ~= '' then
  local lid = (tonumber(n) + 1) .. '.' .. ARGV[6]
  redis.call('HSET', KEYS[1], 's', f[si], 'lid', lid)
  redis.call('HDEL', KEYS[1], 'q')
  f[#f+1] = 'lid'; f[#f+1] = lid
else
  redis.call('HSET', KEYS[1], 's', f[si])
end
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
event(ARGV[7] .. (tonumber(n) + 1) .. '}', watched)
return {1, f}
`)

// writeJobScript changes a job that a run still holds: renewing its lease,
// reporting progress, recording a failed attempt, or recording its outcome
// together with its delivery. Who holds the job is checked three ways: by
// attempt (PROCESSING n), by any run while the job has not ended (a
// cancel, an expiry, a completion token), and by a field the record must
// hold (an external worker's lease id, a completion token's hash).
//
// KEYS[1] -> bmr:{P}:r:<b>
// KEYS[2] -> bmr:{P}:due
// KEYS[3..4] -> indexes to add ARGV[6] to (or KEYS[1], unused)
// KEYS[5..6] -> indexes to add ARGV[7] to (or KEYS[1], unused)
// -------
// ARGV[1] -> <b>
// ARGV[2] -> the attempt that must hold the job (its state: PROCESSING n),
//
//	or "*": any, while the job is ACCEPTED or PROCESSING
//
// ARGV[3] -> "<field>=<value>" the record must hold too ("" for none)
// ARGV[4] -> retention (ms), or 0 to leave the record's TTL (see touch)
// ARGV[5] -> when recovery acts (Unix ms), or "" to leave it
// ARGV[6] -> index member for KEYS[3..4] ("" adds none)
// ARGV[7] -> index member for KEYS[5..6] ("" adds none)
// ARGV[8] -> the event entry for watchers ("" for none; see eventLua)
// ARGV[9..] -> record field, value pairs; an empty value deletes the field
//
// Returns {1} when written, {0} when there is no such job, and {-1, s,
// matched} when the job is not held so: s is its state, matched 1 if the
// field of ARGV[3] held its value.
var writeJobScript = redis.NewScript(eventLua + `
local v = redis.call('HMGET', KEYS[1], 's', 'w')
local s, watched = v[1], v[2] ~= false
if not s then return {0} end
for i = 9, #ARGV, 2 do
  if ARGV[i] == 's' and ARGV[i+1] == s then return {1} end -- this write, repeated
end
local st, n = string.match(s, '^(%S+) (%d+) ')
local matched = 1
if ARGV[3] ~= '' then
  local field, value = string.match(ARGV[3], '^([^=]+)=(.*)$')
  if redis.call('HGET', KEYS[1], field) ~= value then matched = 0 end
end
local open = st == 'ACCEPTED' or st == 'PROCESSING'
if not open or matched == 0 or (ARGV[2] ~= '*' and (st ~= 'PROCESSING' or n ~= ARGV[2])) then
  return {-1, s, matched}
end
local set, del = {}, {}
for i = 9, #ARGV, 2 do
  if ARGV[i+1] == '' then del[#del+1] = ARGV[i] else set[#set+1] = ARGV[i]; set[#set+1] = ARGV[i+1] end
end
if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end
if ARGV[4] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1]) end
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[3], 0, ARGV[6]); redis.call('ZADD', KEYS[4], 0, ARGV[6]) end
if ARGV[7] ~= '' then redis.call('ZADD', KEYS[5], 0, ARGV[7]); redis.call('ZADD', KEYS[6], 0, ARGV[7]) end
event(ARGV[8], watched)
return {1}
`)

// requeueScript hands an external job to its type's workers again: a job
// whose retry time came, whose worker's lease lapsed, or whose list entry
// was lost. A job listed since less than the relist time (field q, the
// listing time, which a claim clears) is not listed twice, or jobs waiting
// long for a worker would pile up entries; a lost entry (a claimer died
// between its pop and its claim) is replaced after that time. The script
// sets the job's next recovery time itself.
//
// KEYS[1] -> bmr:{P}:r:<b>
// KEYS[2] -> bmr:{P}:xready:<type>
// KEYS[3] -> bmr:{P}:due
// -------
// ARGV[1] -> <b>
// ARGV[2] -> now (Unix ms)
// ARGV[3] -> the type, announced on availChannel
// ARGV[4] -> when recovery looks again after a listing (Unix ms)
// ARGV[5] -> the relist time (ms)
//
// Returns 1 when handed over, 2 when listed already, 0 when the job is
// held, ended or gone.
var requeueScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 's', 'q')
local s, q = v[1], tonumber(v[2])
if not s then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 0
end
local now = tonumber(ARGV[2])
local st, rest = string.match(s, '^(%S+) %d+ (.*)$')
if st ~= 'ACCEPTED' and st ~= 'PROCESSING' then return 0 end
local notBefore = tonumber(string.match(rest, '(%d+)$'))
if st == 'PROCESSING' and notBefore > now then
  redis.call('ZADD', KEYS[3], notBefore, ARGV[1])
  return 0
end
if q and now - q < tonumber(ARGV[5]) then
  redis.call('ZADD', KEYS[3], q + tonumber(ARGV[5]), ARGV[1])
  return 2
end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'q', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('PUBLISH', '` + availChannel + `', ARGV[3])
return 1
`)

// watchScript marks a job watched, so that its changes are published and
// kept as events (eventLua), and reads what a watcher starts from.
//
// KEYS[1] -> bmr:{P}:r:<b>
// -------
// (no ARGV)
//
// Returns {} when there is no such job, else the values of c, j, s, pr,
// le and ev (false where absent).
var watchScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
redis.call('HSETNX', KEYS[1], 'w', '1')
return redis.call('HMGET', KEYS[1], 'c', 'j', 's', 'pr', 'le', 'ev')
`)

// writeDeliveryScript changes a delivery whose status and attempt count
// are still as read: records an attempt, postpones one, brings one forward
// to now (retry-now), or reopens it for a replay. The delivery field d is "<status> <attempts> …" (record.go).
//
// KEYS[1] -> bmr:{P}:r:<b>
// KEYS[2] -> bmr:{P}:due
// KEYS[3] -> bmr:{P}:dlv:f
// KEYS[4] -> bmr:{P}:dlv:f:<client>
// -------
// ARGV[1] -> <b>
// ARGV[2] -> allowed current statuses, comma-separated
// ARGV[3] -> the attempt count it must have
// ARGV[4] -> retention (ms), or 0 to leave the record's TTL (see touch)
// ARGV[5] -> when recovery acts (Unix ms); "" takes the record off the schedule
// ARGV[6] -> "add" or "rem" the index member ARGV[7] to or from KEYS[3..4], or ""
// ARGV[7] -> index member (delivery time prefix + <b>)
// ARGV[8..] -> record field, value pairs; an empty value deletes the field
//
// Returns 1 when written, 0 when there is no such delivery, and
// {-1, d} when its status or attempt count differ.
var writeDeliveryScript = redis.NewScript(`
local d = redis.call('HGET', KEYS[1], 'd')
if not d then return 0 end
for i = 8, #ARGV, 2 do
  if ARGV[i] == 'd' and ARGV[i+1] == d then return 1 end -- this write, repeated
end
local st, n = string.match(d, '^(%S+) (%d+) ')
local allowed = false
for a in string.gmatch(ARGV[2], '[^,]+') do if a == st then allowed = true end end
if not allowed or n ~= ARGV[3] then return {-1, d} end
local set, del = {}, {}
for i = 8, #ARGV, 2 do
  if ARGV[i+1] == '' then del[#del+1] = ARGV[i] else set[#set+1] = ARGV[i]; set[#set+1] = ARGV[i+1] end
end
if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end
if ARGV[4] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
if ARGV[5] == '' then redis.call('ZREM', KEYS[2], ARGV[1]) else redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1]) end
if ARGV[6] == 'add' then
  redis.call('ZADD', KEYS[3], 0, ARGV[7]); redis.call('ZADD', KEYS[4], 0, ARGV[7])
elseif ARGV[6] == 'rem' then
  redis.call('ZREM', KEYS[3], ARGV[7]); redis.call('ZREM', KEYS[4], ARGV[7])
end
return 1
`)

// touchScript moves a record's recovery time, if it still has one and the
// record exists (else it takes it off the schedule).
//
// KEYS[1] -> bmr:{P}:r:<b>
// KEYS[2] -> bmr:{P}:due
// -------
// ARGV[1] -> <b>
// ARGV[2] -> when recovery acts next (Unix ms)
//
// Returns 1 when moved, 0 when the record is gone.
var touchScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[2], 'XX', ARGV[2], ARGV[1])
return 1
`)

// takeTokensScript takes up to a number of tokens from a client's token
// bucket, refilled at a rate up to a burst. Processes' clocks differ: a
// now behind the bucket's time refills nothing and leaves that time, so
// no interval is refilled twice.
//
// KEYS[1] -> bmr:rl:{<cli>}
// -------
// ARGV[1] -> rate (tokens per second, above 0)
// ARGV[2] -> burst
// ARGV[3] -> now (Unix ms)
// ARGV[4] -> tokens wanted
//
// Returns {tokens taken, ms until one is there when none was}.
var takeTokensScript = redis.NewScript(`
local rate, burst, now, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens, ts = tonumber(v[1]), tonumber(v[2])
if tokens == nil or ts == nil then tokens, ts = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
ts = math.max(ts, now)
local got, wait = math.min(want, math.floor(tokens)), 0
if got < 1 then
  got, wait = 0, math.ceil((1 - tokens) * 1000 / rate)
end
tokens = tokens - got
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', string.format('%d', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {got, wait}
`)

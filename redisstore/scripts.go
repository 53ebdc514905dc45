package redisstore

import "github.com/redis/go-redis/v9"

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

// createJobScript stores a new job, indexes it, schedules its recovery and
// hands it to the workers, unless its Idempotency-Key is taken. The job
// index doubles as the id check: its member is <b>, there as long as the
// record (Trim drops it only once the record is gone), so ZADD NX refuses
// a taken id in the same command that indexes a new one.
//
// KEYS[1] -> bmr:{P}:r:<b>
// KEYS[2] -> bmr:{P}:jobs
// KEYS[3] -> bmr:{P}:jobs:c:<client>
// KEYS[4] -> bmr:{P}:due
// KEYS[5] -> bmr:{P}:ready
// KEYS[6] -> bmr:{P}:idem:<client>:<hash> (or KEYS[1]: no key)
// -------
// ARGV[1] -> <b>, the index member (it starts with the creation time)
// ARGV[2] -> when recovery acts (Unix ms)
// ARGV[3] -> retention (ms)
// ARGV[4] -> idempotency claim "<b> <fingerprint>" ("" without a key)
// ARGV[5] -> idempotency claim TTL (ms)
// ARGV[6..] -> record field, value pairs
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
  for i = 6, #ARGV, 2 do
    if ARGV[i] == 's' and redis.call('HGET', KEYS[1], 's') == ARGV[i+1] then return {1} end
  end
  return {2}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('RPUSH', KEYS[5], ARGV[1])
if ARGV[4] ~= '' then redis.call('SET', KEYS[6], ARGV[4], 'PX', ARGV[5]) end
return {1}
`)

// claimJobScript moves an ACCEPTED job, or a PROCESSING one whose lease or
// retry time has come, to PROCESSING under a lease, and counts the attempt.
// The state field s is "<status> <attempts> <updated ns> <completed ns>
// <not before ms>". It reads the whole record at once, since a claim
// returns it.
//
// KEYS[1] -> bmr:{P}:r:<b>
// KEYS[2] -> bmr:{P}:due
// -------
// ARGV[1] -> <b>
// ARGV[2] -> now (Unix ms)
// ARGV[3] -> now (Unix ns), the new updated time
// ARGV[4] -> lease until (Unix ms): the new not-before and recovery time
// ARGV[5] -> retention (ms), or 0 to leave the record's TTL (see touch)
//
// Returns {1, fields} when claimed (the record afterwards), {-1, fields}
// when the job is finished, {-2, not before} when another run holds it or
// its retry time is ahead, {0} when there is no such job.
var claimJobScript = redis.NewScript(`
local f = redis.call('HGETALL', KEYS[1])
local si
for i = 1, #f, 2 do if f[i] == 's' then si = i + 1 end end
if not si then return {0} end
local st, n, rest = string.match(f[si], '^(%S+) (%d+) (.*)$')
if st ~= 'ACCEPTED' and st ~= 'PROCESSING' then return {-1, f} end
local notBefore = tonumber(string.match(rest, '(%d+)$'))
if st == 'PROCESSING' and notBefore > tonumber(ARGV[2]) then return {-2, tostring(notBefore)} end
f[si] = 'PROCESSING ' .. (tonumber(n) + 1) .. ' ' .. ARGV[3] .. ' 0 ' .. ARGV[4]
redis.call('HSET', KEYS[1], 's', f[si])
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return {1, f}
`)

// writeJobScript changes a job that attempt n of a run still holds:
// renewing its lease, recording a failed attempt, or recording its outcome
// together with its delivery.
//
// KEYS[1] -> bmr:{P}:r:<b>
// KEYS[2] -> bmr:{P}:due
// KEYS[3..4] -> indexes to add ARGV[5] to (or KEYS[1], unused)
// KEYS[5..6] -> indexes to add ARGV[6] to (or KEYS[1], unused)
// -------
// ARGV[1] -> <b>
// ARGV[2] -> the attempt that must hold the job (its state: PROCESSING n)
// ARGV[3] -> retention (ms), or 0 to leave the record's TTL (see touch)
// ARGV[4] -> when recovery acts (Unix ms)
// ARGV[5] -> index member for KEYS[3..4] ("" adds none)
// ARGV[6] -> index member for KEYS[5..6] ("" adds none)
// ARGV[7..] -> record field, value pairs; an empty value deletes the field
//
// Returns 1 when written, -1 when another attempt holds the job or it is
// finished, 0 when there is no such job.
var writeJobScript = redis.NewScript(`
local s = redis.call('HGET', KEYS[1], 's')
if not s then return 0 end
for i = 7, #ARGV, 2 do
  if ARGV[i] == 's' and ARGV[i+1] == s then return 1 end -- this write, repeated
end
local st, n = string.match(s, '^(%S+) (%d+) ')
if st ~= 'PROCESSING' or n ~= ARGV[2] then return -1 end
local set, del = {}, {}
for i = 7, #ARGV, 2 do
  if ARGV[i+1] == '' then del[#del+1] = ARGV[i] else set[#set+1] = ARGV[i]; set[#set+1] = ARGV[i+1] end
end
if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end
if ARGV[3] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[3], 0, ARGV[5]); redis.call('ZADD', KEYS[4], 0, ARGV[5]) end
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[5], 0, ARGV[6]); redis.call('ZADD', KEYS[6], 0, ARGV[6]) end
return 1
`)

// writeDeliveryScript changes a delivery whose status and attempt count
// are still as read: records an attempt, postpones one, or reopens it for a
// replay. The delivery field d is "<status> <attempts> …" (record.go).
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

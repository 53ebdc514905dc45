// Package redisstore keeps all of Boomerang's state in Redis: jobs and
// their deliveries, attempt logs, the ready queue, the recovery schedule,
// clients and their keys, rate-limit buckets and bulk replays. It is the
// only package that knows the key layout and the Lua scripts; the domain
// packages (jobs, webhooks, clients, recovery) declare the small interfaces
// they need, and *Store implements them all.
//
// It runs on one Redis, on Sentinel, and on Redis Cluster. Every script
// touches keys of one hash tag only, so one slot, and every key a script
// touches is passed in KEYS. Jobs are spread over partitions; a job's id
// carries its partition (ids.Partition), so any process finds its keys.
//
// # Key layout
//
// {P} is a partition's hash tag (PartitionTags: chosen so that the
// partitions' slots spread evenly over the slot space, so over the masters
// of a cluster), and the asynq queue of that partition has the same name,
// so a partition's tasks live on the same master as its records. <b> is the
// 26 characters a job's ids share (req_<b>, msg_<b>).
//
//	bmr:{P}:r:<b>             hash    a job and its delivery: one record (see record.go)
//	bmr:{P}:jobs              zset    every job, by creation (member: <b>, which starts with its time)
//	bmr:{P}:jobs:c:<client>   zset    a client's jobs
//	bmr:{P}:jobs:f            zset    FAILED jobs
//	bmr:{P}:jobs:f:<client>   zset    a client's FAILED jobs
//	bmr:{P}:dlv               zset    every delivery, by its creation, the job's end (member: 10-char time + <b>)
//	bmr:{P}:dlv:c:<client>    zset    a client's deliveries
//	bmr:{P}:dlv:f             zset    FAILED deliveries
//	bmr:{P}:dlv:f:<client>    zset    a client's FAILED deliveries
//	bmr:{P}:due               zset    <b> → when recovery must act if nothing happens first (Unix ms)
//	bmr:{P}:ready             list    <b> of jobs submitted for processing now (the workers' blocking pop)
//	bmr:{P}:idem:<client>:<h> string  "<b> <fingerprint>" for 24 h: an Idempotency-Key's claim
//	bmr:client:{<cli>}        hash    a client: name, createdAt, jobTypes, disabled, secrets
//	bmr:client:{<cli>}:keys   hash    keyId → {"hint","createdAt","hash"}
//	bmr:apikey:<sha256>       string  "<cli> <keyId>": what a key authenticates
//	bmr:clients               zset    every client, by creation
//	bmr:rl:{<cli>}            hash    a client's token bucket (t tokens, ts Unix ms)
//	bmr:{replays}:r:<rpl>     hash    a bulk replay's filter and progress
//	bmr:{replays}:running     set     bulk replays not finished
//	bmr:partitions            string  the partition count this Redis was set up with
//	bmr:lock:trim             string  held by the process trimming indexes (Trim), for a minute at most
//	bmr:clients:changed       channel client ids whose keys, status or secrets changed
//
// Records expire a retention after their last change (give or take 1 %: a
// change within a minute of the job's creation keeps the TTL the creation
// set, which spares a PEXPIRE at each step of a job that runs and delivers
// at once; see Store.touch). Idempotency-Key claims last 24 h. Index
// entries have no TTL: the recovery sweep trims those of expired records
// (Trim), and the recovery schedule drops them as it meets them.
//
// # Commands
//
// A job that runs and whose webhook is delivered at the first attempt
// costs 23 Redis commands here, scripts' commands included: CreateJob 7,
// NextReady 1, ClaimJob 4, FinishJob 7, RecordAttempt 4 (measured by
// TestMemoryAndCommandBudget); an Idempotency-Key adds 2.
//
// # Round trips
//
// Those four calls go through an auto-pipeline (autopipe.go): the calls of
// concurrent goroutines that arrive while a pipeline is out go together in
// the next one. A lone call goes at once; under load Redis reads and writes
// once per pipeline rather than once per call (0.8 round trips per job in
// boomerang-bench's throughput phase, against 4.0 without it). A Cluster
// has no shared pipelines: one waits for the slowest master it touches, so a
// master failing over would hold back every partition (newAutoPipes). With
// BOOMERANG_REDIS_WAIT_REPLICAS, CreateJob keeps a connection of its own, as
// WAIT covers the writes of one connection.
package redisstore

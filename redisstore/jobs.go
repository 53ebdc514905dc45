package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/redis/go-redis/v9"
)

// idempotencyTTL is how long an Idempotency-Key holds its job.
const idempotencyTTL = 24 * time.Hour

// ErrNotReplicated means BOOMERANG_REDIS_WAIT_REPLICAS replicas did not
// acknowledge a new job in time; it was written on the master and may be
// lost if the master fails now.
var ErrNotReplicated = errors.New("not acknowledged by enough replicas")

// CreateJob stores a new ACCEPTED job, hands it to the workers and
// schedules its recovery, in one script; unless idem's key holds a job,
// whose id and fingerprint it returns.
func (s *Store) CreateJob(ctx context.Context, j jobs.Job, idem *jobs.Idempotency) (string, string, error) {
	if !ids.Valid(ids.Request, j.ID) || ids.Partition(j.ID) >= len(s.tags) {
		return "", "", fmt.Errorf("create job: %q is not a job id of one of the %d partitions", j.ID, len(s.tags))
	}
	body, tag := ids.Body(j.ID), s.tagOf(j.ID)
	rec := recordKey(tag, body)
	idemKey, claim := rec, ""
	if idem != nil {
		idemKey = key(tag, "idem:"+j.ClientID+":"+idem.KeyHash)
		claim = body + " " + idem.Fingerprint
	}
	st, _ := json.Marshal(static{Type: j.Type, URL: j.CallbackURL, Metadata: j.Metadata})
	payload := string(j.Payload)
	if payload == "" {
		payload = "null"
	}
	state := jobState{status: jobs.StatusAccepted, updated: nanos(j.UpdatedAt)}
	keys := []string{rec, key(tag, "jobs"), key(tag, "jobs:c:"+j.ClientID), key(tag, "due"), key(tag, "ready"), idemKey}
	args := []any{body, ms(j.CreatedAt.Add(s.recoverAfter)), s.retention.Milliseconds(), claim, idempotencyTTL.Milliseconds(),
		fClient, j.ClientID, fStatic, st, fPayload, payload, fState, state.String()}
	res, err := s.runReplicated(ctx, createJobScript, keys, args)
	if err != nil {
		return "", "", fmt.Errorf("create job: %w", err)
	}
	switch code, _ := res[0].(int64); code {
	case 0:
		prior, print, _ := strings.Cut(res[1].(string), " ")
		return ids.Request + prior, print, nil
	case 2:
		return "", "", fmt.Errorf("create job: id %s taken", j.ID)
	}
	return "", "", nil
}

// runReplicated runs a script and, with WaitReplicas set, waits on the
// same connection until that many replicas have its writes.
func (s *Store) runReplicated(ctx context.Context, sc *redis.Script, keys []string, args []any) ([]any, error) {
	if s.waitReplicas <= 0 {
		return sc.Run(ctx, s.rdb, keys, args...).Slice()
	}
	node := redis.UniversalClient(s.rdb)
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		master, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			return nil, err
		}
		node = master
	}
	c, ok := node.(*redis.Client)
	if !ok {
		return sc.Run(ctx, s.rdb, keys, args...).Slice()
	}
	conn := c.Conn()
	defer conn.Close()
	res, err := sc.Run(ctx, conn, keys, args...).Slice()
	if err != nil {
		return nil, err
	}
	n, err := conn.Wait(ctx, s.waitReplicas, s.waitTimeout).Result()
	if err != nil {
		return nil, err
	}
	if int(n) < s.waitReplicas {
		return nil, fmt.Errorf("%w: %d of %d replicas within %v", ErrNotReplicated, n, s.waitReplicas, s.waitTimeout)
	}
	return res, nil
}

// GetJob returns a job.
func (s *Store) GetJob(ctx context.Context, id string) (jobs.Job, error) {
	if !ids.Valid(ids.Request, id) {
		return jobs.Job{}, jobs.ErrNotFound
	}
	body := ids.Body(id)
	f, err := s.rdb.HGetAll(ctx, recordKey(s.tagOf(id), body)).Result()
	if err != nil {
		return jobs.Job{}, fmt.Errorf("get job: %w", err)
	}
	if len(f) == 0 {
		return jobs.Job{}, jobs.ErrNotFound
	}
	return decodeJob(body, f), nil
}

// ClaimJob takes a job for one processing attempt under a lease
// (claimJobScript).
func (s *Store) ClaimJob(ctx context.Context, id string, now, leaseUntil time.Time) (jobs.Job, error) {
	if !ids.Valid(ids.Request, id) {
		return jobs.Job{}, jobs.ErrNotFound
	}
	body, tag := ids.Body(id), s.tagOf(id)
	res, err := claimJobScript.Run(ctx, s.rdb, []string{recordKey(tag, body), key(tag, "due")}, s.claimArgs(body, now, leaseUntil)...).Slice()
	if err != nil {
		return jobs.Job{}, fmt.Errorf("claim job %s: %w", id, err)
	}
	return s.claimResult(body, res)
}

// claimArgs are claimJobScript's ARGV.
func (s *Store) claimArgs(body string, now, leaseUntil time.Time) []any {
	return []any{body, ms(now), now.UnixNano(), ms(leaseUntil), s.touch(ids.Request + body)}
}

// claimResult reads claimJobScript's answer.
func (s *Store) claimResult(body string, res []any) (jobs.Job, error) {
	switch code, _ := res[0].(int64); code {
	case 1:
		return decodeJob(body, flatMap(res[1])), nil
	case -1:
		return decodeJob(body, flatMap(res[1])), jobs.ErrFinished
	case -2:
		until, _ := strconv.ParseInt(fmt.Sprint(res[1]), 10, 64)
		return jobs.Job{}, &jobs.LeasedError{Until: time.UnixMilli(until).UTC()}
	}
	return jobs.Job{}, jobs.ErrNotFound
}

// flatMap turns a script's HGETALL answer into a map.
func flatMap(v any) map[string]string {
	flat, _ := v.([]any)
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		m[k] = v
	}
	return m
}

// writeJob runs writeJobScript for a job held by attempt j.Attempts.
func (s *Store) writeJob(ctx context.Context, j jobs.Job, due time.Time, idxA, idxB []string, memberA, memberB string, fields ...any) error {
	body, tag := ids.Body(j.ID), s.tagOf(j.ID)
	rec := recordKey(tag, body)
	keys := []string{rec, key(tag, "due"), rec, rec, rec, rec}
	copy(keys[2:4], idxA)
	copy(keys[4:6], idxB)
	args := append([]any{body, j.Attempts, s.touch(j.ID), ms(due), memberA, memberB}, fields...)
	code, err := writeJobScript.Run(ctx, s.rdb, keys, args...).Int()
	switch {
	case err != nil:
		return fmt.Errorf("write job %s: %w", j.ID, err)
	case code == 0:
		return jobs.ErrNotFound
	case code < 0:
		return jobs.ErrFinished
	}
	return nil
}

// ExtendJobLease keeps the lease of attempt j.Attempts until until.
func (s *Store) ExtendJobLease(ctx context.Context, j jobs.Job, until time.Time) error {
	st := jobState{status: jobs.StatusProcessing, attempts: j.Attempts, updated: nanos(j.UpdatedAt), notBefore: ms(until)}
	return s.writeJob(ctx, j, until, nil, nil, "", "", fState, st.String())
}

// RetryJob records attempt j.Attempts as failed (j.LastError); the next
// may run from at, and recovery steps in if nothing has by at+RecoverAfter.
func (s *Store) RetryJob(ctx context.Context, j jobs.Job, at time.Time) error {
	st := jobState{status: jobs.StatusProcessing, attempts: j.Attempts, updated: nanos(j.UpdatedAt), notBefore: ms(at)}
	le := "" // none: the field goes
	if j.LastError != nil {
		b, _ := json.Marshal(j.LastError)
		le = string(b)
	}
	return s.writeJob(ctx, j, at.Add(s.recoverAfter), nil, nil, "", "", fState, st.String(), fLastError, le)
}

// ReleaseJob gives a job back, runnable from at, without counting attempt
// j.Attempts: its worker shut down. j.LastError says so.
func (s *Store) ReleaseJob(ctx context.Context, j jobs.Job, at time.Time) error {
	st := jobState{status: jobs.StatusProcessing, attempts: j.Attempts - 1, updated: nanos(j.UpdatedAt), notBefore: ms(at)}
	le := ""
	if j.LastError != nil {
		b, _ := json.Marshal(j.LastError)
		le = string(b)
	}
	return s.writeJob(ctx, j, at.Add(s.recoverAfter), nil, nil, "", "", fState, st.String(), fLastError, le)
}

// FinishJob records j's outcome (COMPLETED or FAILED) and creates its
// delivery, PENDING with its first attempt due now, in one script
// (writeJobScript). The delivery is returned as GetDelivery reads it, with
// m.Body, the webhook body the job's record rebuilds byte for byte.
func (s *Store) FinishJob(ctx context.Context, j jobs.Job, m webhooks.Message) (webhooks.Delivery, error) {
	if j.Status != jobs.StatusCompleted && j.Status != jobs.StatusFailed {
		return webhooks.Delivery{}, fmt.Errorf("finish job %s: status %s is not an end", j.ID, j.Status)
	}
	body, tag := ids.Body(j.ID), s.tagOf(j.ID)
	done := j.UpdatedAt.UTC()
	if j.CompletedAt != nil {
		done = j.CompletedAt.UTC()
	}
	created := done.Truncate(time.Millisecond)
	event := jobs.EventCompleted
	if j.Status == jobs.StatusFailed {
		event = jobs.EventFailed
	}
	d := webhooks.Delivery{ID: ids.Delivery + body, RequestID: j.ID, ClientID: j.ClientID, EventType: event, URL: j.CallbackURL,
		Status: webhooks.StatusPending, CreatedAt: created, UpdatedAt: created, NextAttemptAt: &created, Payload: m.Body}
	st := jobState{status: j.Status, attempts: j.Attempts, updated: nanos(j.UpdatedAt), completed: nanos(done)}
	fields := []any{fState, st.String(), fDelivery, stateOf(d).String(), fPayload, "", fLastError, ""}
	var idxB []string
	memberB := ""
	if j.Status == jobs.StatusFailed {
		e, _ := json.Marshal(j.Error)
		fields = append(fields, fError, e)
		idxB, memberB = []string{key(tag, "jobs:f"), key(tag, "jobs:f:"+j.ClientID)}, body
	} else {
		fields = append(fields, fResult, []byte(j.Result))
	}
	idxA := []string{key(tag, "dlv"), key(tag, "dlv:c:"+j.ClientID)}
	if err := s.writeJob(ctx, j, created.Add(s.recoverAfter), idxA, idxB, dlvMember(d), memberB, fields...); err != nil {
		return webhooks.Delivery{}, err
	}
	return d, nil
}

// dlvMember is a delivery's index member: its creation time, then <b>.
func dlvMember(d webhooks.Delivery) string { return ids.TimePrefix(d.CreatedAt) + ids.Body(d.ID) }

// NextReady pops the id of a job submitted for processing now from a
// partition's ready list, waiting up to wait; "" when none came. BLPOP
// (through go-redis) counts in whole seconds, so wait is rounded up to one;
// a wait of 0 or less does not wait (a BLPOP of 0 would wait forever).
// go-redis does not interrupt a blocked read when ctx ends: the call
// returns at the end of the wait.
func (s *Store) NextReady(ctx context.Context, partition int, wait time.Duration) (string, error) {
	list := key(s.tags[partition], "ready")
	var body string
	var err error
	if wait <= 0 {
		body, err = s.rdb.LPop(ctx, list).Result()
	} else {
		var res []string
		res, err = s.rdb.BLPop(ctx, (wait + time.Second - 1).Truncate(time.Second), list).Result()
		if len(res) == 2 {
			body = res[1]
		}
	}
	if isNil(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return ids.Request + body, nil
}

// ClaimAndNext claims a job (as ClaimJob) and, pipelined in the same round
// trip, pops the next job of its partition's ready list without waiting.
func (s *Store) ClaimAndNext(ctx context.Context, id string, now, leaseUntil time.Time) (jobs.Job, error, string, error) {
	if !ids.Valid(ids.Request, id) || ids.Partition(id) >= len(s.tags) {
		return jobs.Job{}, jobs.ErrNotFound, "", nil
	}
	body, tag := ids.Body(id), s.tagOf(id)
	var claim *redis.Cmd
	var pop *redis.StringCmd
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		claim = claimJobScript.EvalSha(ctx, p, []string{recordKey(tag, body), key(tag, "due")}, s.claimArgs(body, now, leaseUntil)...)
		pop = p.LPop(ctx, key(tag, "ready"))
		return nil
	}) // each command's own error is read below
	next := ""
	if b, perr := pop.Result(); perr == nil {
		next = ids.Request + b
	} else if !isNil(perr) {
		return jobs.Job{}, nil, "", fmt.Errorf("pop the next job: %w", perr)
	}
	res, cerr := claim.Slice()
	if isNoScript(cerr) {
		// Not loaded on this node yet: the claim alone loads it.
		j, claimErr := s.ClaimJob(ctx, id, now, leaseUntil)
		if claimErr != nil && !errors.Is(claimErr, jobs.ErrFinished) && !errors.Is(claimErr, jobs.ErrNotFound) {
			var leased *jobs.LeasedError
			if !errors.As(claimErr, &leased) {
				return jobs.Job{}, nil, next, claimErr
			}
		}
		return j, claimErr, next, nil
	}
	if cerr != nil {
		return jobs.Job{}, nil, next, fmt.Errorf("claim job %s: %w", id, cerr)
	}
	j, claimErr := s.claimResult(body, res)
	return j, claimErr, next, nil
}

// ReturnReady puts a job back at the head of its ready list.
func (s *Store) ReturnReady(ctx context.Context, id string) error {
	return s.rdb.LPush(ctx, key(s.tagOf(id), "ready"), ids.Body(id)).Err()
}

// ListJobs pages through jobs newest first, merged across the partitions,
// without payloads and results. FAILED jobs have an index of their own;
// other status filters check the records.
func (s *Store) ListJobs(ctx context.Context, f jobs.Filter, limit int, cursor string) ([]jobs.Job, string, error) {
	suffix := "jobs"
	switch {
	case f.Status == jobs.StatusFailed && f.ClientID != "":
		suffix = "jobs:f:" + f.ClientID
	case f.Status == jobs.StatusFailed:
		suffix = "jobs:f"
	case f.ClientID != "":
		suffix = "jobs:c:" + f.ClientID
	}
	keys := make([]string, len(s.tags))
	for i, tag := range s.tags {
		keys[i] = key(tag, suffix)
	}
	var out []jobs.Job
	next, err := s.scan(ctx, scanQuery{keys: keys, limit: limit, cursor: cursor,
		fields: []string{fClient, fStatic, fState, fError, fLastError, fDelivery},
		keep: func(member string, fl map[string]string) bool {
			j := decodeJob(bodyOf(member), fl)
			if f.Status != "" && j.Status != f.Status {
				return false
			}
			out = append(out, j)
			return true
		}})
	return out, next, err
}

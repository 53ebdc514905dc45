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
	st, _ := json.Marshal(static{Type: j.Type, URL: j.CallbackURL, Metadata: j.Metadata, Deadline: millis(j.Deadline)})
	payload := string(j.Payload)
	if payload == "" {
		payload = "null"
	}
	state := jobState{status: jobs.StatusAccepted, updated: nanos(j.UpdatedAt)}
	ready, announce := key(tag, "ready"), ""
	if j.External {
		ready, announce = key(tag, "xready:"+j.Type), j.Type
	}
	keys := []string{rec, key(tag, "jobs"), key(tag, "jobs:c:"+j.ClientID), key(tag, "due"), ready, idemKey}
	args := []any{body, ms(j.CreatedAt.Add(s.recoverAfter)), s.retention.Milliseconds(), claim, idempotencyTTL.Milliseconds(), announce,
		fClient, j.ClientID, fStatic, st, fPayload, payload, fState, state.String()}
	if j.External {
		args = append(args, fExternal, "1", fListed, strconv.FormatInt(ms(j.CreatedAt), 10))
	}
	if j.TraceParent != "" {
		args = append(args, fTrace, j.TraceParent) // same HSET: no command more
	}
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
		return s.runScript(ctx, sc, keys, args...).Slice()
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
	return s.claim(ctx, id, now, leaseUntil, "")
}

func (s *Store) claim(ctx context.Context, id string, now, leaseUntil time.Time, leaseID string) (jobs.Job, error) {
	body, tag := ids.Body(id), s.tagOf(id)
	res, err := s.runScript(ctx, claimJobScript, []string{recordKey(tag, body), key(tag, "due")}, s.claimArgs(body, now, leaseUntil, leaseID)...).Slice()
	if err != nil {
		return jobs.Job{}, fmt.Errorf("claim job %s: %w", id, err)
	}
	return s.claimResult(body, res)
}

// claimArgs are claimJobScript's ARGV.
func (s *Store) claimArgs(body string, now, leaseUntil time.Time, leaseID string) []any {
	// The status event, but for the attempt and the closing brace, which
	// the script adds: only it knows the attempt.
	ev := `status {"requestId":"` + ids.Request + body + `","status":"PROCESSING","updatedAt":"` +
		now.UTC().Format(time.RFC3339Nano) + `","attempt":`
	return []any{body, ms(now), now.UnixNano(), ms(leaseUntil), s.touch(ids.Request + body), leaseID, ev}
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
	case -3:
		return decodeJob(body, flatMap(res[1])), jobs.ErrExternal
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

// write is one writeJobScript call: who must hold the job (the run of
// j.Attempts, or any while anyAttempt, and the record's lid or th when j
// carries a lease id or a token hash), and what changes.
type write struct {
	anyAttempt bool
	due        time.Time // the new recovery time; zero leaves it
	idxA, idxB []string
	memA, memB string
	event      string // for watchers (eventLua)
	fields     []any
}

// writeJob runs writeJobScript.
func (s *Store) writeJob(ctx context.Context, j jobs.Job, w write) error {
	body, tag := ids.Body(j.ID), s.tagOf(j.ID)
	rec := recordKey(tag, body)
	keys := []string{rec, key(tag, "due"), rec, rec, rec, rec}
	copy(keys[2:4], w.idxA)
	copy(keys[4:6], w.idxB)
	var attempt any = j.Attempts
	if w.anyAttempt {
		attempt = "*"
	}
	guard := ""
	switch {
	case j.LeaseID != "":
		guard = fLease + "=" + j.LeaseID
	case j.TokenHash != "":
		guard = fToken + "=" + j.TokenHash
	}
	due := ""
	if !w.due.IsZero() {
		due = strconv.FormatInt(ms(w.due), 10)
	}
	args := append([]any{body, attempt, guard, s.touch(j.ID), due, w.memA, w.memB, w.event}, w.fields...)
	res, err := s.runScript(ctx, writeJobScript, keys, args...).Slice()
	if err != nil {
		return fmt.Errorf("write job %s: %w", j.ID, err)
	}
	switch code, _ := res[0].(int64); code {
	case 1:
		return nil
	case 0:
		return jobs.ErrNotFound
	}
	st, _ := res[1].(string)
	matched, _ := res[2].(int64)
	field := ""
	if guard != "" {
		field, _, _ = strings.Cut(guard, "=")
	}
	return &jobs.RefusedError{Status: parseJobState(st).status, Attempt: parseJobState(st).attempts,
		Field: field, Matched: matched == 1}
}

// statusEvent is the watchers' event of a job's new state.
func statusEvent(j jobs.Job) string {
	type status struct {
		RequestID string         `json:"requestId"`
		Status    jobs.Status    `json:"status"`
		Attempt   int            `json:"attempt,omitempty"`
		UpdatedAt time.Time      `json:"updatedAt"`
		LastError *jobs.Error    `json:"lastError,omitempty"`
		Progress  *jobs.Progress `json:"progress,omitempty"`
	}
	b, _ := json.Marshal(status{j.ID, j.Status, j.Attempts, j.UpdatedAt.UTC(), j.LastError, j.Progress})
	return "status " + string(b)
}

// ExtendJobLease keeps the lease of attempt j.Attempts until until, with
// the progress j.Progress if not nil.
func (s *Store) ExtendJobLease(ctx context.Context, j jobs.Job, until time.Time) error {
	st := jobState{status: jobs.StatusProcessing, attempts: j.Attempts, updated: nanos(j.UpdatedAt), notBefore: ms(until)}
	w := write{due: until, fields: []any{fState, st.String()}}
	if j.Progress != nil {
		p, ev := progressFields(j)
		w.fields, w.event = append(w.fields, fProgress, p), ev
	}
	return s.writeJob(ctx, j, w)
}

// SaveProgress records j.Progress, if attempt j.Attempts holds the job.
func (s *Store) SaveProgress(ctx context.Context, j jobs.Job) error {
	p, ev := progressFields(j)
	return s.writeJob(ctx, j, write{event: ev, fields: []any{fProgress, p}})
}

func progressFields(j jobs.Job) (string, string) {
	b, _ := json.Marshal(j.Progress)
	type event struct {
		RequestID string `json:"requestId"`
		jobs.Progress
	}
	e, _ := json.Marshal(event{j.ID, *j.Progress})
	return string(b), "progress " + string(e)
}

// SaveToken records the hash of attempt j.Attempts's completion token
// (j.TokenHash), replacing an earlier attempt's.
func (s *Store) SaveToken(ctx context.Context, j jobs.Job) error {
	h := j.TokenHash
	j.TokenHash = ""
	return s.writeJob(ctx, j, write{fields: []any{fToken, h}})
}

// AwaitJob leaves attempt j.Attempts's job PROCESSING until until (its
// upstream accepted it and finishes it later): nothing reruns it before.
func (s *Store) AwaitJob(ctx context.Context, j jobs.Job, until time.Time) error {
	st := jobState{status: jobs.StatusProcessing, attempts: j.Attempts, updated: nanos(j.UpdatedAt), notBefore: ms(until)}
	return s.writeJob(ctx, j, write{due: until.Add(s.recoverAfter), fields: []any{fState, st.String()}})
}

// RetryJob records attempt j.Attempts as failed (j.LastError); the next
// may run from at, and recovery steps in if nothing has by at+RecoverAfter
// (for an external job, at). An external worker's lease (j.LeaseID) ends
// with it.
func (s *Store) RetryJob(ctx context.Context, j jobs.Job, at time.Time) error {
	st := jobState{status: jobs.StatusProcessing, attempts: j.Attempts, updated: nanos(j.UpdatedAt), notBefore: ms(at)}
	le := "" // none: the field goes
	if j.LastError != nil {
		b, _ := json.Marshal(j.LastError)
		le = string(b)
	}
	fields := []any{fState, st.String(), fLastError, le}
	if j.LeaseID != "" {
		fields = append(fields, fLease, "") // the worker gave the job up: its lease ends here
	}
	due := at.Add(s.recoverAfter)
	if j.External {
		due = at // recovery lists it at its time, as its task does: whichever comes first (requeueScript lists once)
	}
	return s.writeJob(ctx, j, write{due: due, event: statusEvent(j), fields: fields})
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
	return s.writeJob(ctx, j, write{due: at.Add(s.recoverAfter), fields: []any{fState, st.String(), fLastError, le}})
}

// FinishJob records j's outcome and creates its delivery, PENDING with its
// first attempt due now, in one script (writeJobScript). COMPLETED and
// FAILED need the run of attempt j.Attempts (or j's lease or token);
// CANCELED and EXPIRED end the job whichever run holds it. The delivery is
// returned as GetDelivery reads it, with m.Body, the webhook body the
// job's record rebuilds byte for byte.
func (s *Store) FinishJob(ctx context.Context, j jobs.Job, m webhooks.Message) (webhooks.Delivery, error) {
	if !j.Status.Final() {
		return webhooks.Delivery{}, fmt.Errorf("finish job %s: status %s is not an end", j.ID, j.Status)
	}
	body, tag := ids.Body(j.ID), s.tagOf(j.ID)
	done := j.UpdatedAt.UTC()
	if j.CompletedAt != nil {
		done = j.CompletedAt.UTC()
	}
	created := done.Truncate(time.Millisecond)
	event := jobs.EventType(j.Status)
	d := webhooks.Delivery{ID: ids.Delivery + body, RequestID: j.ID, ClientID: j.ClientID, EventType: event, URL: j.CallbackURL,
		Status: webhooks.StatusPending, CreatedAt: created, UpdatedAt: created, NextAttemptAt: &created, Payload: m.Body,
		TraceParent: j.TraceParent}
	st := jobState{status: j.Status, attempts: j.Attempts, updated: nanos(j.UpdatedAt), completed: nanos(done)}
	w := write{due: created.Add(s.recoverAfter), event: `final {"status":"` + string(j.Status) + `"}`,
		anyAttempt: j.Status == jobs.StatusCanceled || j.Status == jobs.StatusExpired || j.TokenHash != "",
		idxA:       []string{key(tag, "dlv"), key(tag, "dlv:c:"+j.ClientID)}, memA: dlvMember(d),
		fields: []any{fState, st.String(), fDelivery, stateOf(d).String(), fPayload, "", fLastError, ""}}
	if j.Status == jobs.StatusCompleted {
		w.fields = append(w.fields, fResult, []byte(j.Result))
	} else {
		e, _ := json.Marshal(j.Error)
		w.fields = append(w.fields, fError, e)
		w.idxB, w.memB = []string{key(tag, "jobs:f"), key(tag, "jobs:f:"+j.ClientID)}, body
	}
	if j.TraceParent != "" {
		w.fields = append(w.fields, fTrace, j.TraceParent) // where the delivery's attempts continue
	}
	if err := s.writeJob(ctx, j, w); err != nil {
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

// ReadyLengths is how many jobs wait in each partition's ready list for a
// job runner, by partition: one pipelined LLEN per partition.
func (s *Store) ReadyLengths(ctx context.Context) ([]int64, error) {
	cmds := make([]*redis.IntCmd, len(s.tags))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, tag := range s.tags {
			cmds[i] = p.LLen(ctx, key(tag, "ready"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the ready lists: %w", err)
	}
	n := make([]int64, len(cmds))
	for i, c := range cmds {
		n[i] = c.Val()
	}
	return n, nil
}

// ClaimAndNext claims a job (as ClaimJob) and, pipelined in the same round
// trip, pops the next job of its partition's ready list without waiting.
func (s *Store) ClaimAndNext(ctx context.Context, id string, now, leaseUntil time.Time) (jobs.Job, error, string, error) {
	if !ids.Valid(ids.Request, id) || ids.Partition(id) >= len(s.tags) {
		return jobs.Job{}, jobs.ErrNotFound, "", nil
	}
	body, tag := ids.Body(id), s.tagOf(id)
	claim := evalSha(ctx, claimJobScript, []string{recordKey(tag, body), key(tag, "due")}, s.claimArgs(body, now, leaseUntil, ""))
	pop := redis.NewStringCmd(ctx, "lpop", key(tag, "ready"))
	if err := s.send(ctx, claim, pop); err != nil {
		return jobs.Job{}, nil, "", fmt.Errorf("claim job %s: %w", id, err)
	} // each command's own error is read below
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

package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/workers"
	"github.com/redis/go-redis/v9"
)

// ClaimExternal takes the next job of type typ for an external worker,
// from the partitions' lists of that type in turn, under a lease until
// leaseUntil whose id is "<attempt>.<lease>" (lease: the worker's part,
// e.g. "60.<random>"). ok is false when no job of the type is ready. A
// list entry whose job is held, ended or gone is dropped.
func (s *Store) ClaimExternal(ctx context.Context, typ string, now, leaseUntil time.Time, lease string) (j jobs.Job, ok bool, err error) {
	start := int(s.claimTurn.Add(1))
	for i := range s.tags {
		tag := s.tags[(start+i)%len(s.tags)]
		for {
			body, err := s.rdb.LPop(ctx, key(tag, "xready:"+typ)).Result()
			if isNil(err) {
				break
			}
			if err != nil {
				return jobs.Job{}, false, fmt.Errorf("pop a %s job: %w", typ, err)
			}
			if !ids.Valid(ids.Request, ids.Request+body) {
				continue
			}
			j, err := s.claim(ctx, ids.Request+body, now, leaseUntil, lease)
			if err == nil {
				return j, true, nil
			}
			var leased *jobs.LeasedError
			if !errors.Is(err, jobs.ErrFinished) && !errors.Is(err, jobs.ErrNotFound) && !errors.As(err, &leased) {
				// The entry is lost with the error; recovery hands the job
				// over again if it stays unclaimed.
				return jobs.Job{}, false, err
			}
		}
	}
	return jobs.Job{}, false, nil
}

// relistAfter is how long a listed external job waits before recovery
// lists it again (its entry may have been lost with a claimer that died
// between its pop and its claim).
const relistAfter = time.Hour

// RequeueExternal hands an external job to its type's workers again
// (requeueScript), if it is neither held, ended nor listed already; it
// reports whether it did, and sets when recovery looks at the job next.
func (s *Store) RequeueExternal(ctx context.Context, id, typ string, now time.Time) (bool, error) {
	if !ids.Valid(ids.Request, id) {
		return false, jobs.ErrNotFound
	}
	body, tag := ids.Body(id), s.tagOf(id)
	n, err := requeueScript.Run(ctx, s.rdb, []string{recordKey(tag, body), key(tag, "xready:"+typ), key(tag, "due")},
		body, ms(now), typ, ms(now.Add(s.recoverAfter)), relistAfter.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("requeue %s: %w", id, err)
	}
	return n == 1, nil
}

// Available delivers the external job types announced as having work, and
// "" when the subscription (re)starts.
func (s *Store) Available(ctx context.Context) <-chan string { return s.subscribe(ctx, availChannel) }

// AnnounceStop tells every worker process that a job ended while it may
// be running (canceled, expired).
func (s *Store) AnnounceStop(ctx context.Context, id string) error {
	return s.rdb.Publish(ctx, stopChannel, id).Err()
}

// Stops delivers the ids of jobs announced stopped, and "" when the
// subscription (re)starts.
func (s *Store) Stops(ctx context.Context) <-chan string { return s.subscribe(ctx, stopChannel) }

// WatchJob marks a job watched, so that its changes are kept and published
// as events from now on (watchScript), and returns what the watcher starts
// from: the job without payload and result, and the number of its last
// event.
func (s *Store) WatchJob(ctx context.Context, id string) (jobs.Job, int, error) {
	if !ids.Valid(ids.Request, id) {
		return jobs.Job{}, 0, jobs.ErrNotFound
	}
	body := ids.Body(id)
	res, err := watchScript.Run(ctx, s.rdb, []string{recordKey(s.tagOf(id), body)}).Slice()
	if err != nil {
		return jobs.Job{}, 0, fmt.Errorf("watch job %s: %w", id, err)
	}
	if len(res) == 0 {
		return jobs.Job{}, 0, jobs.ErrNotFound
	}
	f := map[string]string{}
	for i, name := range []string{fClient, fStatic, fState, fProgress, fLastError, fEvents} {
		if v, ok := res[i].(string); ok {
			f[name] = v
		}
	}
	last, _ := strconv.Atoi(f[fEvents])
	return decodeJob(body, f), last, nil
}

// JobEvents returns a watched job's kept events after after, up to upTo
// (the oldest may be gone: see maxEvents), in order.
func (s *Store) JobEvents(ctx context.Context, id string, after, upTo int) ([]jobs.Event, error) {
	if upTo <= after {
		return nil, nil
	}
	after = max(after, upTo-maxEvents)
	fields := make([]string, 0, upTo-after)
	for n := after + 1; n <= upTo; n++ {
		fields = append(fields, fEvent+strconv.Itoa(n))
	}
	vals, err := s.rdb.HMGet(ctx, recordKey(s.tagOf(id), ids.Body(id)), fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("read events of %s: %w", id, err)
	}
	var out []jobs.Event
	for i, v := range vals {
		if entry, ok := v.(string); ok {
			out = append(out, parseEvent(id, after+1+i, entry))
		}
	}
	return out, nil
}

// Events delivers the events of every watched job, and a zero Event when
// the subscription (re)starts, when events may have been missed.
func (s *Store) Events(ctx context.Context) <-chan jobs.Event {
	out := make(chan jobs.Event, 256)
	go func() {
		defer close(out)
		for msg := range s.subscribe(ctx, eventsChannel) {
			var e jobs.Event
			if msg != "" {
				body, rest, _ := strings.Cut(msg, " ")
				num, entry, _ := strings.Cut(rest, " ")
				n, err := strconv.Atoi(num)
				if err != nil {
					continue
				}
				e = parseEvent(ids.Request+body, n, entry)
			}
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// parseEvent reads an event entry, "<name> <JSON>".
func parseEvent(id string, n int, entry string) jobs.Event {
	name, data, _ := strings.Cut(entry, " ")
	return jobs.Event{RequestID: id, ID: n, Name: name, Data: json.RawMessage(data)}
}

// Workers live under one hash tag, so that a worker and its key change in
// one script.
//
//	bmr:{workers}              hash    worker id → {"name","types","createdAt","hash"}
//	bmr:{workers}:key:<sha256> string  the worker a key admits, as JSON
const workersKey = "bmr:{workers}"

func workerKeyKey(hash string) string { return workersKey + ":key:" + hash }

type storedWorker struct {
	workers.Worker
	Hash string `json:"hash,omitempty"`
}

// SaveWorker stores a new worker and its key's hash.
func (s *Store) SaveWorker(ctx context.Context, w workers.Worker, keyHash string) error {
	rec, _ := json.Marshal(storedWorker{w, keyHash})
	admits, _ := json.Marshal(w)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, workersKey, w.ID, rec)
		p.Set(ctx, workerKeyKey(keyHash), admits, 0)
		return nil
	})
	return err
}

// ListWorkers returns every worker, oldest first (ids sort by creation).
func (s *Store) ListWorkers(ctx context.Context) ([]workers.Worker, error) {
	all, err := s.rdb.HGetAll(ctx, workersKey).Result()
	if err != nil {
		return nil, err
	}
	out := make([]workers.Worker, 0, len(all))
	for _, v := range all {
		var w storedWorker
		if json.Unmarshal([]byte(v), &w) == nil {
			out = append(out, w.Worker)
		}
	}
	slices.SortFunc(out, func(a, b workers.Worker) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// deleteWorkerScript removes a worker and its key.
//
// KEYS[1] -> bmr:{workers}
// KEYS[2] -> bmr:{workers}:key:<sha256>, the worker's key
// -------
// ARGV[1] -> the worker id
//
// Returns 1 when removed, 0 when there is no such worker.
var deleteWorkerScript = redis.NewScript(`
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
return 1
`)

// DeleteWorker removes a worker and its key in one script.
func (s *Store) DeleteWorker(ctx context.Context, id string) error {
	v, err := s.rdb.HGet(ctx, workersKey, id).Result()
	if isNil(err) {
		return workers.ErrNotFound
	}
	if err != nil {
		return err
	}
	var w storedWorker
	if err := json.Unmarshal([]byte(v), &w); err != nil {
		return fmt.Errorf("worker record %s: %w", id, err)
	}
	n, err := deleteWorkerScript.Run(ctx, s.rdb, []string{workersKey, workerKeyKey(w.Hash)}, id).Int()
	if err == nil && n == 0 {
		return workers.ErrNotFound
	}
	return err
}

// workersRevokedChannel carries the ids of workers whose keys were revoked.
const workersRevokedChannel = "bmr:workers:revoked"

// AnnounceWorkerRevoked publishes that a worker's key was revoked.
func (s *Store) AnnounceWorkerRevoked(ctx context.Context, id string) error {
	return s.rdb.Publish(ctx, workersRevokedChannel, id).Err()
}

// WorkerRevocations delivers the ids of workers announced as revoked, and
// "" each time the subscription (re)starts, when announcements may have
// been missed. The channel closes when ctx ends.
func (s *Store) WorkerRevocations(ctx context.Context) <-chan string {
	return s.subscribe(ctx, workersRevokedChannel)
}

// WorkerOfKey returns the worker a key hash admits.
func (s *Store) WorkerOfKey(ctx context.Context, keyHash string) (workers.Worker, error) {
	v, err := s.rdb.Get(ctx, workerKeyKey(keyHash)).Result()
	if isNil(err) {
		return workers.Worker{}, workers.ErrUnauthorized
	}
	if err != nil {
		return workers.Worker{}, err
	}
	var w workers.Worker
	if err := json.Unmarshal([]byte(v), &w); err != nil {
		return workers.Worker{}, fmt.Errorf("worker key record: %w", err)
	}
	return w, nil
}

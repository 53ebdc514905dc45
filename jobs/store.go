package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/boomerang-dev/boomerang/ids"
	"strconv"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/timeindex"
	"github.com/redis/go-redis/v9"
)

func jobKey(id string) string { return "bmr:job:" + id }

func idemKey(clientID, hash string) string { return "bmr:idem:" + clientID + ":" + hash }

var family = timeindex.Family{Base: "bmr:job:idx", Statuses: statuses, HashKey: jobKey}

// Store keeps jobs in Redis; every job expires Retention after its last change.
type Store struct {
	rdb       redis.UniversalClient
	retention time.Duration
}

// NewStore returns a store over rdb.
func NewStore(rdb redis.UniversalClient, retention time.Duration) *Store {
	return &Store{rdb: rdb, retention: retention}
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func encodeMetadata(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// idem is an idempotency claim: the key's hash, and requestId + body hash.
type idem struct{ key, value string }

// create stores a new ACCEPTED job unless the idempotency key is taken, in
// which case it returns the claim's value "requestId bodyHash".
func (s *Store) create(ctx context.Context, j Job, claim idem) (existing string, err error) {
	payload := []byte(j.Payload)
	if len(payload) == 0 {
		payload = []byte("null")
	}
	_, existing, err = family.Create(ctx, s.rdb, timeindex.Record{
		ID: j.ID, ClientID: j.ClientID, Status: string(StatusAccepted), CreatedAt: j.CreatedAt, TTL: s.retention,
		Fields: []any{"id", j.ID, "clientId", j.ClientID, "type", j.Type, "payload", payload,
			"callbackUrl", j.CallbackURL, "metadata", encodeMetadata(j.Metadata),
			"createdAt", fmtTime(j.CreatedAt), "updatedAt", fmtTime(j.CreatedAt), "attempts", "0"},
		IdemKey: claim.key, IdemValue: claim.value, IdemTTL: 24 * time.Hour,
	})
	return existing, err
}

// remove undoes create when the job's task could not be enqueued.
func (s *Store) remove(ctx context.Context, j Job, claim idem) error {
	return family.Delete(ctx, s.rdb, j.ID, j.ClientID, j.CreatedAt, claim.key, claim.value)
}

// Get returns a job.
func (s *Store) Get(ctx context.Context, id string) (Job, error) {
	if id == "" || len(id) > 64 {
		return Job{}, ErrNotFound
	}
	f, err := s.rdb.HGetAll(ctx, jobKey(id)).Result()
	if err != nil {
		return Job{}, fmt.Errorf("get job: %w", err)
	}
	if len(f) == 0 {
		return Job{}, ErrNotFound
	}
	return decode(f), nil
}

func decode(f map[string]string) Job {
	j := Job{ID: f["id"], ClientID: f["clientId"], Type: f["type"], Status: Status(f["status"]),
		Payload: json.RawMessage(f["payload"]), CallbackURL: f["callbackUrl"], DeliveryID: f["deliveryId"]}
	if r := f["result"]; r != "" {
		j.Result = json.RawMessage(r)
	}
	if e := f["error"]; e != "" {
		j.Error = &Error{}
		_ = json.Unmarshal([]byte(e), j.Error)
	}
	if m := f["metadata"]; m != "" {
		_ = json.Unmarshal([]byte(m), &j.Metadata)
	}
	j.CreatedAt, _ = time.Parse(time.RFC3339Nano, f["createdAt"])
	j.UpdatedAt, _ = time.Parse(time.RFC3339Nano, f["updatedAt"])
	if c := f["completedAt"]; c != "" {
		t, _ := time.Parse(time.RFC3339Nano, c)
		j.CompletedAt = &t
	}
	j.Attempts, _ = strconv.Atoi(f["attempts"])
	return j
}

// claim moves an ACCEPTED or PROCESSING job to PROCESSING, counts the
// attempt, and returns the job as it is then, in one round trip without
// reading it first. A job in another status comes back unchanged with
// ErrWrongStatus; an unknown one is ErrNotFound.
func (s *Store) claim(ctx context.Context, id string, now time.Time) (Job, error) {
	created, ok := idTime(id)
	if !ok {
		return Job{}, ErrNotFound
	}
	f, err := family.TransitionGet(ctx, s.rdb, timeindex.Change{
		ID: id, Member: timeindex.Member(created, id), // ClientID is read from the job
		From: []string{string(StatusAccepted), string(StatusProcessing)}, To: string(StatusProcessing),
		Incr: "attempts", Fields: []any{"updatedAt", fmtTime(now)}, TTL: s.retention,
	})
	if errors.Is(err, timeindex.ErrNoRecord) {
		return Job{}, ErrNotFound
	}
	if f == nil {
		return Job{}, err
	}
	return decode(f), err
}

// idTime is the creation time a request id carries.
func idTime(id string) (time.Time, bool) { return ids.Time(ids.Request, id) }

// finishUpdate is the change that records a job's outcome; only a
// PROCESSING job can finish. It is applied by the Deliverer, in the same
// script that creates the job's delivery.
func (s *Store) finishUpdate(j Job) timeindex.Update {
	fields := []any{"updatedAt", fmtTime(j.UpdatedAt), "completedAt", fmtTime(*j.CompletedAt), "deliveryId", j.DeliveryID,
		"attempts", strconv.Itoa(j.Attempts)}
	if j.Result != nil {
		fields = append(fields, "result", []byte(j.Result))
	}
	if j.Error != nil {
		e, _ := json.Marshal(j.Error)
		fields = append(fields, "error", e)
	}
	return timeindex.Update{Family: family, Change: timeindex.Change{
		ID: j.ID, ClientID: j.ClientID, CreatedAt: j.CreatedAt,
		From: []string{string(StatusProcessing)}, To: string(j.Status),
		Fields: fields, TTL: s.retention,
	}}
}

// Filter selects jobs for the admin list.
type Filter struct {
	Status   Status
	ClientID string
}

// List returns a page of jobs, newest first, without payloads and results.
func (s *Store) List(ctx context.Context, f Filter, limit int, cursor string) ([]Job, string, error) {
	ids, next, err := timeindex.Page(ctx, s.rdb, family.Key(string(f.Status), f.ClientID), timeindex.Query{Limit: limit, Cursor: cursor})
	if err != nil {
		return nil, "", err
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, jobKey(id), listFields...)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list jobs: %w", err)
	}
	out := make([]Job, 0, len(ids))
	for _, c := range cmds {
		f := map[string]string{}
		for i, v := range c.Val() {
			if s, ok := v.(string); ok {
				f[listFields[i]] = s
			}
		}
		if f["id"] != "" {
			out = append(out, decode(f))
		}
	}
	return out, next, nil
}

var listFields = []string{"id", "clientId", "type", "status", "callbackUrl", "metadata", "error",
	"createdAt", "updatedAt", "completedAt", "attempts", "deliveryId"}

// Trim drops index entries of expired jobs created before cutoff.
func (s *Store) Trim(ctx context.Context, clientIDs []string, cutoff time.Time) (int, error) {
	return family.Trim(ctx, s.rdb, clientIDs, cutoff)
}

// Stuck calls fn for the jobs in status st not changed for longer than age:
// a crash may have lost their task.
func (s *Store) Stuck(ctx context.Context, st Status, now time.Time, age time.Duration, fn func(Job) error) error {
	cursor := ""
	for {
		page, next, err := s.List(ctx, Filter{Status: st}, 500, cursor)
		if err != nil {
			return err
		}
		for _, j := range page {
			if now.Sub(j.UpdatedAt) > age {
				if err := fn(j); err != nil {
					return err
				}
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// parseClaim splits "requestId bodyHash".
func parseClaim(v string) (id, hash string) {
	id, hash, _ = strings.Cut(v, " ")
	return id, hash
}

func isStale(err error) bool {
	return errors.Is(err, timeindex.ErrWrongStatus) || errors.Is(err, timeindex.ErrGuard)
}

package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/boomerang-dev/boomerang/timeindex"
	"github.com/redis/go-redis/v9"
)

// Errors of the store, decided with errors.Is.
var (
	ErrNotFound = errors.New("delivery not found")
	ErrConflict = errors.New("delivery is pending")
)

func deliveryKey(id string) string { return "bmr:dlv:" + id }
func attemptsKey(id string) string { return "bmr:dlv:" + id + ":attempts" }
func bodyKey(id string) string     { return "bmr:dlv:" + id + ":body" }

// The webhook body lives beside the delivery's hash, so that the hash keeps
// Redis's compact encoding.
var family = timeindex.Family{Base: "bmr:dlv:idx", Statuses: statuses, HashKey: deliveryKey, BlobKey: bodyKey}

// Store keeps deliveries, their attempts and their indexes in Redis. Every
// key expires Retention after its last change.
type Store struct {
	rdb       redis.UniversalClient
	retention time.Duration
}

// NewStore returns a store over rdb.
func NewStore(rdb redis.UniversalClient, retention time.Duration) *Store {
	return &Store{rdb: rdb, retention: retention}
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return fmtTime(*t)
}

// Create stores a new PENDING delivery; if one with that id exists it is
// returned unchanged, which makes handing over a finished job idempotent.
// With finish, the delivery is created in the same script that applies
// finish (the job's completion), so neither can exist without the other.
func (s *Store) Create(ctx context.Context, m Message, now time.Time, finish *timeindex.Update) (Delivery, error) {
	d, _, err := s.create(ctx, m, now, finish)
	return d, err
}

// create is Create, also saying whether the delivery is new.
func (s *Store) create(ctx context.Context, m Message, now time.Time, finish *timeindex.Update) (Delivery, bool, error) {
	rec := timeindex.Record{
		ID: m.ID, ClientID: m.ClientID, Status: string(StatusPending), CreatedAt: now, TTL: s.retention, Blob: m.Body,
		Fields: []any{
			"id", m.ID, "requestId", m.RequestID, "clientId", m.ClientID, "eventType", m.EventType,
			"url", m.URL, "attempts", "0", "roundStart", "0",
			"createdAt", fmtTime(now), "updatedAt", fmtTime(now), "nextAttemptAt", fmtTime(now),
		},
	}
	var created bool
	var err error
	if finish != nil {
		created, _, err = family.CreateWith(ctx, s.rdb, rec, *finish)
	} else {
		created, _, err = family.Create(ctx, s.rdb, rec)
	}
	if err != nil {
		return Delivery{}, false, err
	}
	if !created {
		d, err := s.Get(ctx, m.ID)
		return d, false, err
	}
	// Just written: no need to read it back.
	return Delivery{ID: m.ID, RequestID: m.RequestID, ClientID: m.ClientID, EventType: m.EventType, URL: m.URL,
		Status: StatusPending, CreatedAt: now, UpdatedAt: now, NextAttemptAt: &now, Payload: m.Body}, true, nil
}

// Get returns a delivery without its attempt log.
func (s *Store) Get(ctx context.Context, id string) (Delivery, error) {
	return s.get(ctx, id, false)
}

// GetWithAttempts returns a delivery and its whole attempt log.
func (s *Store) GetWithAttempts(ctx context.Context, id string) (Delivery, error) {
	return s.get(ctx, id, true)
}

func (s *Store) get(ctx context.Context, id string, withLog bool) (Delivery, error) {
	var fields *redis.MapStringStringCmd
	var body *redis.StringCmd
	var log *redis.StringSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		fields = p.HGetAll(ctx, deliveryKey(id))
		body = p.Get(ctx, bodyKey(id))
		if withLog {
			log = p.LRange(ctx, attemptsKey(id), 0, -1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Delivery{}, fmt.Errorf("get delivery: %w", err)
	}
	if len(fields.Val()) == 0 {
		return Delivery{}, ErrNotFound
	}
	d := decode(fields.Val())
	d.Payload = json.RawMessage(body.Val())
	if withLog {
		d.AttemptLog = make([]Attempt, 0, len(log.Val()))
		for _, raw := range log.Val() {
			if a, err := decodeAttempt([]byte(raw), d); err == nil {
				d.AttemptLog = append(d.AttemptLog, a)
			}
		}
	}
	return d, nil
}

func decode(f map[string]string) Delivery {
	d := Delivery{
		ID: f["id"], RequestID: f["requestId"], ClientID: f["clientId"], EventType: f["eventType"],
		URL: f["url"], Status: Status(f["status"]), LastError: f["lastError"],
	}
	d.Attempts, _ = strconv.Atoi(f["attempts"])
	d.roundStart, _ = strconv.Atoi(f["roundStart"])
	d.Replays, _ = strconv.Atoi(f["replays"])
	d.LastStatusCode, _ = strconv.Atoi(f["lastStatusCode"])
	d.CreatedAt = parseTime(f["createdAt"])
	d.UpdatedAt = parseTime(f["updatedAt"])
	d.LastAttemptAt = parseTimePtr(f["lastAttemptAt"])
	d.NextAttemptAt = parseTimePtr(f["nextAttemptAt"])
	d.DeliveredAt = parseTimePtr(f["deliveredAt"])
	d.DeferredUntil = parseTimePtr(f["deferredUntil"])
	d.DeferredReason = f["deferredReason"]
	d.deferredAttempt, _ = strconv.Atoi(f["deferredAttempt"])
	return d
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func parseTimePtr(s string) *time.Time {
	if s == "" {
		return nil
	}
	t := parseTime(s)
	return &t
}

// record appends attempt a to d's log and moves d to status, provided
// nobody recorded attempt a.Number first (ErrGuard otherwise).
func (s *Store) record(ctx context.Context, d Delivery, a Attempt, status Status) error {
	raw, err := encodeAttempt(a)
	if err != nil {
		return err
	}
	fields := []any{
		"attempts", strconv.Itoa(a.Number), "updatedAt", fmtTime(a.StartedAt.Add(time.Duration(a.DurationMs) * time.Millisecond)),
		"lastAttemptAt", fmtTime(a.StartedAt), "nextAttemptAt", fmtTimePtr(a.NextAttemptAt),
		"lastStatusCode", strconv.Itoa(a.StatusCode), "lastError", a.Error,
		"deferredUntil", "", "deferredReason", "", "deferredAttempt", "",
	}
	if status == StatusDelivered {
		fields = append(fields, "deliveredAt", fmtTime(a.StartedAt))
	}
	_, err = family.Transition(ctx, s.rdb, timeindex.Change{
		ID: d.ID, ClientID: d.ClientID, CreatedAt: d.CreatedAt,
		From: []string{string(StatusPending)}, To: string(status),
		GuardField: "attempts", GuardValue: strconv.Itoa(a.Number - 1),
		Fields: fields, TTL: s.retention,
		PushKey: attemptsKey(d.ID), PushValue: string(raw),
	})
	return err
}

// postpone sets a PENDING delivery's next attempt (number n) time and why
// it waits, provided no attempt was recorded meanwhile.
func (s *Store) postpone(ctx context.Context, d Delivery, n int, until time.Time, reason string) error {
	fields := []any{"nextAttemptAt", fmtTime(until)}
	if reason != deferNotDue {
		fields = append(fields, "deferredUntil", fmtTime(until), "deferredReason", reason, "deferredAttempt", strconv.Itoa(n))
	}
	_, err := family.Transition(ctx, s.rdb, timeindex.Change{
		ID: d.ID, ClientID: d.ClientID, CreatedAt: d.CreatedAt,
		From: []string{string(StatusPending)}, GuardField: "attempts", GuardValue: strconv.Itoa(d.Attempts),
		Fields: fields, TTL: s.retention, PushKey: attemptsKey(d.ID),
	})
	return err
}

// reopen moves a DELIVERED or FAILED delivery back to PENDING for a replay
// and returns the number of its next attempt.
func (s *Store) reopen(ctx context.Context, id string, now time.Time) (Delivery, error) {
	d, err := s.Get(ctx, id)
	if err != nil {
		return Delivery{}, err
	}
	_, err = family.Transition(ctx, s.rdb, timeindex.Change{
		ID: d.ID, ClientID: d.ClientID, CreatedAt: d.CreatedAt,
		From: []string{string(StatusDelivered), string(StatusFailed)}, To: string(StatusPending),
		GuardField: "attempts", GuardValue: strconv.Itoa(d.Attempts),
		Fields: []any{"roundStart", strconv.Itoa(d.Attempts), "replays", strconv.Itoa(d.Replays + 1),
			"nextAttemptAt", fmtTime(now), "updatedAt", fmtTime(now), "deliveredAt", "",
			"deferredUntil", "", "deferredReason", "", "deferredAttempt", ""},
		TTL:     s.retention,
		PushKey: attemptsKey(d.ID),
	})
	switch {
	case errors.Is(err, timeindex.ErrNoRecord):
		return Delivery{}, ErrNotFound
	case errors.Is(err, timeindex.ErrWrongStatus), errors.Is(err, timeindex.ErrGuard):
		return Delivery{}, ErrConflict
	case err != nil:
		return Delivery{}, err
	}
	d.Status, d.roundStart, d.Replays = StatusPending, d.Attempts, d.Replays+1
	return d, nil
}

// Filter selects deliveries for lists and bulk replays.
type Filter struct {
	Status       Status
	ClientID     string
	Since, Until time.Time
}

// List returns a page of deliveries, newest first, and the next cursor.
func (s *Store) List(ctx context.Context, f Filter, limit int, cursor string) ([]Delivery, string, error) {
	ids, next, err := timeindex.Page(ctx, s.rdb, family.Key(string(f.Status), f.ClientID),
		timeindex.Query{Since: f.Since, Until: f.Until, Limit: limit, Cursor: cursor})
	if err != nil {
		return nil, "", err
	}
	out, err := s.getMany(ctx, ids)
	return out, next, err
}

func (s *Store) getMany(ctx context.Context, ids []string) ([]Delivery, error) {
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, deliveryKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	out := make([]Delivery, 0, len(ids))
	for _, c := range cmds {
		if f := c.Val(); len(f) > 0 {
			d := decode(f)
			d.Payload = nil // lists stay small; GET one delivery for its payload
			out = append(out, d)
		}
	}
	return out, nil
}

// Count counts deliveries that match f.
func (s *Store) Count(ctx context.Context, f Filter) (int64, error) {
	return family.Count(ctx, s.rdb, string(f.Status), f.ClientID, f.Since, f.Until)
}

// Trim drops index entries of expired deliveries created before cutoff.
func (s *Store) Trim(ctx context.Context, clientIDs []string, cutoff time.Time) (int, error) {
	return family.Trim(ctx, s.rdb, clientIDs, cutoff)
}

// Stale calls fn for PENDING deliveries whose next attempt is overdue by
// more than grace: a crash may have lost their scheduled task.
func (s *Store) Stale(ctx context.Context, now time.Time, grace time.Duration, fn func(Delivery) error) error {
	cursor := ""
	for {
		page, next, err := s.List(ctx, Filter{Status: StatusPending}, 500, cursor)
		if err != nil {
			return err
		}
		for _, d := range page {
			if d.NextAttemptAt != nil && now.Sub(*d.NextAttemptAt) > grace {
				if err := fn(d); err != nil {
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

package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// GetDelivery returns a delivery with its webhook body, and its attempt
// log if asked.
func (s *Store) GetDelivery(ctx context.Context, id string, withAttempts bool) (webhooks.Delivery, error) {
	if !ids.Valid(ids.Delivery, id) {
		return webhooks.Delivery{}, webhooks.ErrNotFound
	}
	body := ids.Body(id)
	f, err := s.readDelivery(ctx, recordKey(s.tagOf(id), body), withAttempts)
	if err != nil {
		return webhooks.Delivery{}, fmt.Errorf("get delivery: %w", err)
	}
	d, ok := decodeDelivery(body, f, true, withAttempts)
	if !ok {
		return webhooks.Delivery{}, webhooks.ErrNotFound
	}
	if d.Payload == nil { // never sign and send an empty body
		return webhooks.Delivery{}, fmt.Errorf("get delivery %s: the webhook body cannot be rebuilt from the record", id)
	}
	return d, nil
}

// deliveryFields are the record fields a delivery and its webhook body are
// made of: all but the payload and the attempt log.
var deliveryFields = []string{fClient, fStatic, fState, fResult, fError, fDelivery, fDlvError, fTrace}

// readDelivery reads a record whole, or without its attempt log (up to
// maxAttemptLog entries of up to some KiB each, which a delivery attempt
// does not need).
func (s *Store) readDelivery(ctx context.Context, rec string, withLog bool) (map[string]string, error) {
	if withLog {
		return s.rdb.HGetAll(ctx, rec).Result()
	}
	vals, err := s.rdb.HMGet(ctx, rec, deliveryFields...).Result()
	if err != nil {
		return nil, err
	}
	f := make(map[string]string, len(vals))
	for i, v := range vals {
		if v, ok := v.(string); ok {
			f[deliveryFields[i]] = v
		}
	}
	return f, nil
}

// deliveryWrite is one run of writeDeliveryScript.
type deliveryWrite struct {
	d        webhooks.Delivery // as read
	allowed  string            // statuses it may be in
	attempts int               // the attempts it must have
	due      *time.Time        // nil: off the recovery schedule
	failedOp string            // "add", "rem" or ""
	fields   []any
}

func (s *Store) writeDelivery(ctx context.Context, w deliveryWrite) error {
	body, tag := ids.Body(w.d.ID), s.tagOf(w.d.ID)
	due := ""
	if w.due != nil {
		due = strconv.FormatInt(ms(*w.due), 10)
	}
	keys := []string{recordKey(tag, body), key(tag, "due"), key(tag, "dlv:f"), key(tag, "dlv:f:"+w.d.ClientID)}
	args := append([]any{body, w.allowed, w.attempts, s.touch(w.d.ID), due, w.failedOp, dlvMember(w.d)}, w.fields...)
	res, err := s.runScript(ctx, writeDeliveryScript, keys, args...).Result()
	if err != nil {
		return fmt.Errorf("write delivery %s: %w", w.d.ID, err)
	}
	switch v := res.(type) {
	case int64:
		if v == 0 {
			return webhooks.ErrNotFound
		}
		return nil
	}
	return webhooks.ErrStale
}

// RecordAttempt appends attempt a to d's log and moves d to status,
// provided d is PENDING with a.Number-1 attempts (else webhooks.ErrStale),
// both as read and as stored.
func (s *Store) RecordAttempt(ctx context.Context, d webhooks.Delivery, a webhooks.Attempt, status webhooks.Status) error {
	if d.Attempts != a.Number-1 {
		return webhooks.ErrStale
	}
	raw, err := encodeAttempt(a)
	if err != nil {
		return err
	}
	end := a.StartedAt.Add(time.Duration(a.DurationMs) * time.Millisecond)
	next := d
	next.Status, next.Attempts, next.UpdatedAt, next.LastAttemptAt, next.NextAttemptAt = status, a.Number, end, &a.StartedAt, a.NextAttemptAt
	next.LastStatusCode, next.DeferredUntil, next.DeferredReason, next.DeferredAttempt = a.StatusCode, nil, "", 0
	if status == webhooks.StatusDelivered {
		next.DeliveredAt = &a.StartedAt
	}
	w := deliveryWrite{d: d, allowed: string(webhooks.StatusPending), attempts: a.Number - 1,
		fields: []any{fDelivery, stateOf(next).String(), fAttempt + strconv.Itoa(a.Number), raw}}
	if a.Error != "" || d.LastError != "" { // the guard makes d's the stored one: no HDEL of a field not there
		w.fields = append(w.fields, fDlvError, a.Error)
	}
	if a.Number > maxAttemptLog {
		w.fields = append(w.fields, fAttempt+strconv.Itoa(a.Number-maxAttemptLog), "")
	}
	switch {
	case status == webhooks.StatusFailed:
		w.failedOp = "add"
	case status == webhooks.StatusPending:
		// Recovery steps in if the next attempt has not happened by then
		// (without a next attempt time, at once after RecoverAfter).
		at := end.Add(s.recoverAfter)
		if a.NextAttemptAt != nil {
			at = a.NextAttemptAt.Add(s.recoverAfter)
		}
		w.due = &at
	}
	return s.writeDelivery(ctx, w)
}

// PostponeDelivery moves attempt n of d to until, saying why, provided no
// attempt was recorded meanwhile.
func (s *Store) PostponeDelivery(ctx context.Context, d webhooks.Delivery, n int, until time.Time, reason string) error {
	next := d
	next.NextAttemptAt, next.DeferredUntil, next.DeferredReason, next.DeferredAttempt = &until, &until, reason, n
	at := until.Add(s.recoverAfter)
	return s.writeDelivery(ctx, deliveryWrite{d: d, allowed: string(webhooks.StatusPending), attempts: d.Attempts, due: &at,
		fields: []any{fDelivery, stateOf(next).String()}})
}

// ExpediteDelivery moves d's next attempt to now (an operator's retry-now),
// provided d is PENDING with the attempts it was read with (else
// webhooks.ErrStale). A deferral is dropped with it, and recovery steps in
// RecoverAfter from now if the attempt has not happened by then.
func (s *Store) ExpediteDelivery(ctx context.Context, d webhooks.Delivery, now time.Time) error {
	now = now.UTC().Truncate(time.Millisecond)
	next := d
	next.NextAttemptAt, next.UpdatedAt = &now, now
	next.DeferredUntil, next.DeferredReason, next.DeferredAttempt = nil, "", 0
	at := now.Add(s.recoverAfter)
	return s.writeDelivery(ctx, deliveryWrite{d: d, allowed: string(webhooks.StatusPending), attempts: d.Attempts, due: &at,
		fields: []any{fDelivery, stateOf(next).String()}})
}

// ReopenDelivery moves a DELIVERED or FAILED delivery back to PENDING for a
// replay due now, with a fresh round of attempts; webhooks.ErrConflict if
// it is PENDING. traceParent, if not "", is stored for the attempts to
// continue; the delivery returned still has the one it had (the replay
// links to it).
func (s *Store) ReopenDelivery(ctx context.Context, id string, now time.Time, traceParent string) (webhooks.Delivery, error) {
	d, err := s.GetDelivery(ctx, id, false)
	if err != nil {
		return webhooks.Delivery{}, err
	}
	now = now.UTC().Truncate(time.Millisecond)
	next := d
	next.Status, next.RoundStart, next.Replays, next.NextAttemptAt, next.UpdatedAt = webhooks.StatusPending, d.Attempts, d.Replays+1, &now, now
	next.DeliveredAt, next.DeferredUntil, next.DeferredReason, next.DeferredAttempt = nil, nil, "", 0
	at := now.Add(s.recoverAfter)
	w := deliveryWrite{d: d, allowed: string(webhooks.StatusDelivered) + "," + string(webhooks.StatusFailed), attempts: d.Attempts,
		due: &at, fields: []any{fDelivery, stateOf(next).String()}}
	if d.Status == webhooks.StatusFailed {
		w.failedOp = "rem"
	}
	if traceParent != "" {
		w.fields = append(w.fields, fTrace, traceParent)
	}
	switch err := s.writeDelivery(ctx, w); {
	case errors.Is(err, webhooks.ErrStale):
		return webhooks.Delivery{}, webhooks.ErrConflict
	case err != nil:
		return webhooks.Delivery{}, err
	}
	return next, nil
}

// deliveryIndexes are the indexes a delivery filter reads, one per
// partition, and the status the records must still be checked for (the
// PENDING and DELIVERED ones have no index of their own).
func (s *Store) deliveryIndexes(f webhooks.Filter) (keys []string, check webhooks.Status) {
	suffix := "dlv"
	switch {
	case f.Status == webhooks.StatusFailed && f.ClientID != "":
		suffix = "dlv:f:" + f.ClientID
	case f.Status == webhooks.StatusFailed:
		suffix = "dlv:f"
	case f.ClientID != "":
		suffix = "dlv:c:" + f.ClientID
	}
	if f.Status != webhooks.StatusFailed {
		check = f.Status
	}
	for _, tag := range s.tags {
		keys = append(keys, key(tag, suffix))
	}
	return keys, check
}

// ListDeliveries pages through deliveries newest first, merged across the
// partitions, without their bodies.
func (s *Store) ListDeliveries(ctx context.Context, f webhooks.Filter, limit int, cursor string) ([]webhooks.Delivery, string, error) {
	keys, check := s.deliveryIndexes(f)
	var out []webhooks.Delivery
	next, err := s.scan(ctx, scanQuery{keys: keys, since: f.Since, until: f.Until, limit: limit, cursor: cursor,
		fields: []string{fClient, fStatic, fState, fDelivery, fDlvError},
		keep: func(member string, fl map[string]string) bool {
			d, ok := decodeDelivery(bodyOf(member), fl, false, false)
			if !ok || (check != "" && d.Status != check) {
				return false
			}
			out = append(out, d)
			return true
		}})
	return out, next, err
}

// CountDeliveries counts the deliveries that match f.
func (s *Store) CountDeliveries(ctx context.Context, f webhooks.Filter) (int64, error) {
	keys, check := s.deliveryIndexes(f)
	if check == "" {
		return s.count(ctx, keys, f.Since, f.Until)
	}
	var n int64
	cursor := ""
	for {
		next, err := s.scan(ctx, scanQuery{keys: keys, since: f.Since, until: f.Until, limit: 1000, cursor: cursor,
			fields: []string{fDelivery},
			keep: func(_ string, fl map[string]string) bool {
				if st, ok := parseDeliveryState(fl[fDelivery]); ok && st.status == check {
					n++
					return true
				}
				return false
			}})
		if err != nil || next == "" {
			return n, err
		}
		cursor = next
	}
}

// bodyOf is the <b> at the end of an index member.
func bodyOf(member string) string {
	if len(member) > ids.Len {
		return member[len(member)-ids.Len:]
	}
	return member
}

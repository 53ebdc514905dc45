package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/boomerang-dev/boomerang/tracing"
)

// Work done outside Boomerang: external workers claim jobs of their types
// under a lease, renew it with heartbeats, and report the outcome; a lease
// that lapses hands the job to another claim (recovery requeues it), and
// every write is refused to a worker whose lease is gone, so exactly one
// outcome is ever recorded.

// ClaimOptions is an external worker's claim.
type ClaimOptions struct {
	Types []string
	Lease time.Duration // how long the job is the worker's without a heartbeat
	Wait  time.Duration // how long to wait for a job when none is ready
}

// Claim gives an external worker the next ready job of one of its types,
// waiting up to o.Wait for one: ok is false when none came. The job comes
// with its payload, Attempts and LeaseID, which the worker's next calls
// carry. Waiting costs Redis nothing: a claim looks once when it starts,
// again each time this process hears that one of its types has work
// (NotifyAvailable), and once when the wait ends.
func (s *Service) Claim(ctx context.Context, o ClaimOptions) (Job, bool, error) {
	w := s.board.join(o.Types)
	defer s.board.leave(w)
	end := time.NewTimer(o.Wait)
	defer end.Stop()
	for {
		j, ok, err := s.claimNext(ctx, o)
		if ok || err != nil {
			return j, ok, err
		}
		select {
		case <-w.wake:
		case <-end.C:
			return s.claimNext(ctx, o)
		case <-ctx.Done():
			return Job{}, false, nil
		}
	}
}

// claimNext claims the next ready job of one of the types, ending instead
// those past their deadline or out of attempts.
func (s *Service) claimNext(ctx context.Context, o ClaimOptions) (Job, bool, error) {
	for _, typ := range o.Types {
		for {
			now := s.now().UTC()
			lease := strconv.Itoa(int(o.Lease/time.Second)) + "." + randomHex(12)
			j, ok, err := s.store.ClaimExternal(ctx, typ, now, now.Add(o.Lease), lease)
			if err != nil {
				return Job{}, false, fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			if !ok {
				break
			}
			switch {
			case j.Deadline != nil && !now.Before(*j.Deadline):
				err = s.expire(ctx, j)
			case j.Attempts > s.maxAttempts: // its workers' leases lapsed, attempt after attempt
				err = s.finishExternal(ctx, j, StatusFailed, nil, &Error{Code: "attempts_exhausted",
					Message: fmt.Sprintf("no worker finished the job in %d attempts (their leases lapsed)", j.Attempts-1)})
			default:
				s.log.InfoContext(tracing.ForJob(ctx, j.TraceParent), "job claimed by an external worker", "requestId", j.ID, "type", j.Type, "attempt", j.Attempts)
				return j, true, nil
			}
			if err != nil {
				s.log.WarnContext(tracing.ForJob(ctx, j.TraceParent), "could not end a claimed job", "requestId", j.ID, "error", err)
			}
		}
	}
	return Job{}, false, nil
}

// NotifyAvailable wakes a claim waiting here for work of type typ; ""
// wakes them all (announcements may have been missed).
func (s *Service) NotifyAvailable(typ string) { s.board.notify(typ) }

// leaseOf reads a lease id, "<attempt>.<lease seconds>.<random>".
func leaseOf(leaseID string) (attempt int, lease time.Duration, ok bool) {
	a, rest, ok1 := strings.Cut(leaseID, ".")
	secs, random, ok2 := strings.Cut(rest, ".")
	n, err1 := strconv.Atoi(a)
	sec, err2 := strconv.Atoi(secs)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || n < 1 || sec < 1 || random == "" || len(leaseID) > 64 {
		return 0, 0, false
	}
	return n, time.Duration(sec) * time.Second, true
}

// Heartbeat renews an external worker's lease on job id for the lease the
// claim asked for, and records its progress if given. It returns when the
// lease now ends. ErrLeaseLost, ErrCanceled and ErrExpired tell the worker
// to stop. Heartbeats are coalesced: at most one a second per job reaches
// the store (the lease it renewed a moment ago still holds).
func (s *Service) Heartbeat(ctx context.Context, id, leaseID string, p *Progress) (time.Time, error) {
	attempt, lease, ok := leaseOf(leaseID)
	if !ok {
		return time.Time{}, ErrLeaseLost
	}
	now := s.now().UTC()
	if p != nil {
		p = &Progress{Percent: clampPercent(p.Percent), Message: cutMessage(p.Message), UpdatedAt: now}
	}
	if until, recent := s.beats.recent(id, leaseID, now, p); recent {
		return until, nil
	}
	p = s.beats.pending(id, leaseID, p)
	until := now.Add(lease)
	j := Job{ID: id, Status: StatusProcessing, Attempts: attempt, LeaseID: leaseID, UpdatedAt: now, Progress: p}
	if err := s.store.ExtendJobLease(ctx, j, until); err != nil {
		s.beats.forget(id)
		return time.Time{}, err
	}
	s.beats.wrote(id, leaseID, now, until)
	return until, nil
}

// Complete records an external worker's result: the job is COMPLETED and
// its webhook goes out. A repeat of the same call (its answer was lost)
// succeeds again; a call whose lease is gone is refused.
func (s *Service) Complete(ctx context.Context, id, leaseID string, types []string, result json.RawMessage) (Job, error) {
	if len(result) == 0 {
		result = json.RawMessage("null")
	}
	if err := CheckResult(result); err != nil {
		return Job{}, &ValidationError{Fields: []FieldError{{Field: "result", Code: "invalid", Message: "result is not JSON that travels byte for byte: " + err.Error()}}}
	}
	j, err := s.leased(ctx, id, leaseID, types)
	if err != nil {
		return Job{}, err
	}
	if err := s.finishExternal(ctx, j, StatusCompleted, result, nil); err != nil {
		return Job{}, err
	}
	j.Status, j.Payload, j.Result = StatusCompleted, nil, nil
	return j, nil
}

// Fail records an external worker's failed attempt: the job goes back to
// the queue after the retry delay if retryable and attempts remain, else
// it is FAILED and its webhook goes out.
func (s *Service) Fail(ctx context.Context, id, leaseID string, types []string, e Error, retryable bool) (Job, error) {
	j, err := s.leased(ctx, id, leaseID, types)
	if err != nil {
		return Job{}, err
	}
	ctx = tracing.ForJob(ctx, j.TraceParent) // its log lines in the job's trace
	if !retryable || j.Attempts >= s.maxAttempts {
		if err := s.finishExternal(ctx, j, StatusFailed, nil, &e); err != nil {
			return Job{}, err
		}
		j.Status, j.Payload = StatusFailed, nil
		return j, nil
	}
	now := s.now().UTC()
	at := now.Add(s.retryDelay(j.Attempts))
	j.LastError, j.UpdatedAt = &e, now
	if err := s.store.RetryJob(ctx, j, at); err != nil {
		return Job{}, err
	}
	s.beats.forget(id)
	if err := s.enqueuer.EnqueueJob(context.WithoutCancel(ctx), j.ID, j.Attempts+1, at, time.Minute); err != nil {
		s.log.WarnContext(ctx, "could not schedule an external job's retry; recovery will", "requestId", j.ID, "error", err)
	}
	s.log.WarnContext(ctx, "external job attempt failed, will retry", "requestId", j.ID, "attempt", j.Attempts, "code", e.Code,
		"nextAttemptAt", at.Format(time.RFC3339Nano))
	j.Payload = nil
	return j, nil
}

// leased reads job id as the holder of leaseID would write it; a worker
// may only touch jobs of its types.
func (s *Service) leased(ctx context.Context, id, leaseID string, types []string) (Job, error) {
	attempt, _, ok := leaseOf(leaseID)
	if !ok {
		return Job{}, ErrLeaseLost
	}
	j, err := s.store.GetJob(ctx, id)
	if err != nil {
		return Job{}, err
	}
	if !j.External {
		return Job{}, ErrNotFound // not a worker's business
	}
	if !slices.Contains(types, j.Type) {
		return Job{}, ErrTypeForbidden
	}
	j.Attempts, j.LeaseID = attempt, leaseID
	return j, nil
}

// finishExternal records an outcome reached outside the workers (an
// external worker's, or an end found at its claim) and schedules its
// webhook. The same outcome recorded already under the same lease (a
// repeated call) is no error.
func (s *Service) finishExternal(ctx context.Context, j Job, status Status, result json.RawMessage, e *Error) error {
	ctx = tracing.ForJob(ctx, j.TraceParent) // its log lines in the job's trace
	done := s.now().UTC()
	j.Status, j.Result, j.Error, j.LastError = status, result, e, nil
	j.UpdatedAt, j.CompletedAt, j.DeliveryID = done, &done, DeliveryID(j.ID)
	d, err := s.record(ctx, j)
	var refused *RefusedError
	if errors.As(err, &refused) && refused.Field == "lid" && refused.Matched && refused.Status == status {
		return nil // this very call, repeated: recorded and scheduled already
	}
	if err != nil {
		return err
	}
	s.beats.forget(j.ID)
	s.deliverLater(context.WithoutCancel(ctx), d)
	s.log.InfoContext(ctx, "external job ended", "requestId", j.ID, "status", status, "attempt", j.Attempts)
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// board holds the claims waiting in this process, by type.
type board struct {
	mu      sync.Mutex
	waiting map[string][]*waiter // oldest first
}

type waiter struct {
	types []string
	wake  chan struct{}
}

func newBoard() *board { return &board{waiting: map[string][]*waiter{}} }

func (b *board) join(types []string) *waiter {
	w := &waiter{types: types, wake: make(chan struct{}, 1)}
	b.mu.Lock()
	for _, t := range types {
		b.waiting[t] = append(b.waiting[t], w)
	}
	b.mu.Unlock()
	return w
}

func (b *board) leave(w *waiter) {
	b.mu.Lock()
	for _, t := range w.types {
		list := b.waiting[t]
		for i, x := range list {
			if x == w {
				list = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(b.waiting, t)
		} else {
			b.waiting[t] = list
		}
	}
	b.mu.Unlock()
}

// notify wakes the longest-waiting claim of type typ not woken already
// (one announcement, one job), or every claim for "".
func (b *board) notify(typ string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if typ == "" {
		for _, list := range b.waiting {
			for _, w := range list {
				w.poke()
			}
		}
		return
	}
	for _, w := range b.waiting[typ] {
		if w.poke() {
			return
		}
	}
}

// poke wakes w; false if it was woken already and has not looked yet.
func (w *waiter) poke() bool {
	select {
	case w.wake <- struct{}{}:
		return true
	default:
		return false
	}
}

// beats remembers, per job, the last heartbeat written and the progress
// that came since, so that heartbeats reach the store at most once a second.
type beats struct {
	mu sync.Mutex
	m  map[string]*beat
}

type beat struct {
	leaseID    string
	wroteAt    time.Time
	leaseUntil time.Time
	progress   *Progress // reported since wroteAt, not written yet
}

func newBeats() *beats { return &beats{m: map[string]*beat{}} }

// recent reports whether a heartbeat of this lease was written less than a
// second ago, keeping p for the next write; until is the lease it set.
func (b *beats) recent(id, leaseID string, now time.Time, p *Progress) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	x := b.m[id]
	if x == nil || x.leaseID != leaseID || now.Sub(x.wroteAt) >= time.Second || now.Before(x.wroteAt) {
		return time.Time{}, false
	}
	if p != nil {
		x.progress = p
	}
	return x.leaseUntil, true
}

// pending is the progress to write now: p, or the latest held back.
func (b *beats) pending(id, leaseID string, p *Progress) *Progress {
	b.mu.Lock()
	defer b.mu.Unlock()
	if x := b.m[id]; p == nil && x != nil && x.leaseID == leaseID {
		return x.progress
	}
	return p
}

func (b *beats) wrote(id, leaseID string, at, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.m) > 10000 { // drop what has gone quiet
		for k, x := range b.m {
			if at.Sub(x.wroteAt) > time.Minute {
				delete(b.m, k)
			}
		}
	}
	b.m[id] = &beat{leaseID: leaseID, wroteAt: at, leaseUntil: until}
}

func (b *beats) forget(id string) {
	b.mu.Lock()
	delete(b.m, id)
	b.mu.Unlock()
}

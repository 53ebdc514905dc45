package redisstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/redis/go-redis/v9"
)

// newExternal is a job of an external type, as Submit makes it.
func newExternal(clientID, typ string, at time.Time, p int) jobs.Job {
	j := newJob(clientID, at, p)
	j.Type, j.External = typ, true
	return j
}

// xlist is an external type's list in id's partition, as bodies.
func xlist(t testing.TB, s *redisstore.Store, rdb *redis.Client, p int, typ string) []string {
	t.Helper()
	l, err := rdb.LRange(context.Background(), "bmr:{"+s.Tags()[p]+"}:xready:"+typ, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// claimExternal claims the next job of typ at now for a minute, failing
// the test if none comes.
func claimExternal(t testing.TB, s *redisstore.Store, typ string, now time.Time, lease string) jobs.Job {
	t.Helper()
	j, ok, err := s.ClaimExternal(context.Background(), typ, now, now.Add(time.Minute), lease)
	if err != nil || !ok {
		t.Fatalf("ClaimExternal(%s) = ok %v, %v; want a job", typ, ok, err)
	}
	return j
}

// ended is j as the service ends it: status at done, with its message.
func ended(t testing.TB, j jobs.Job, status jobs.Status, done time.Time) (jobs.Job, webhooks.Message) {
	t.Helper()
	j.Status, j.UpdatedAt, j.CompletedAt, j.DeliveryID = status, done, &done, jobs.DeliveryID(j.ID)
	if status == jobs.StatusCompleted {
		j.Result = json.RawMessage(`"r"`)
	} else {
		j.Error = &jobs.Error{Code: "x", Message: "ended"}
	}
	body, err := jobs.WebhookBody(j)
	if err != nil {
		t.Fatal(err)
	}
	return j, webhooks.Message{ID: j.DeliveryID, RequestID: j.ID, ClientID: j.ClientID, EventType: jobs.EventType(status), URL: j.CallbackURL, Body: body}
}

// endJob records j's end as status at done.
func endJob(t testing.TB, s *redisstore.Store, j jobs.Job, status jobs.Status, done time.Time) {
	t.Helper()
	e, m := ended(t, j, status, done)
	finish(t, s, e, m)
}

func TestClaimExternal(t *testing.T) {
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	j := create(t, s, newExternal("cli_a", "transcode", t0, 0))
	if l := xlist(t, s, rdb, 0, "transcode"); !slices.Equal(l, []string{ids.Body(j.ID)}) {
		t.Errorf("transcode list = %v, want [%s]", l, ids.Body(j.ID))
	}
	if n := rdb.LLen(ctx, keyOf(s, j.ID, "ready")).Val(); n != 0 {
		t.Errorf("the ready list of the runners holds %d entries, want none for an external job", n)
	}
	if _, ok, err := s.ClaimExternal(ctx, "thumbnail", t0, t0.Add(time.Minute), "60.x"); ok || err != nil {
		t.Errorf("ClaimExternal of another type = ok %v, %v; want none", ok, err)
	}

	// Boomerang's own runs never take it: they hand it back untouched.
	before := snapshot(t, rdb)
	got, err := s.ClaimJob(ctx, j.ID, t0, t0.Add(time.Minute))
	if !errors.Is(err, jobs.ErrExternal) || got.ID != j.ID || got.Type != "transcode" {
		t.Errorf("ClaimJob of an external job = %s %s, %v; want it with ErrExternal", got.ID, got.Type, err)
	}
	unchanged(t, rdb, before, "ClaimJob of an external job")

	now := t0.Add(time.Second)
	c := claimExternal(t, s, "transcode", now, "60.abc")
	want := j
	want.Status, want.Attempts, want.UpdatedAt, want.LeaseID = jobs.StatusProcessing, 1, now, "1.60.abc"
	if d := sameJob(c, want); d != "" {
		t.Errorf("claimed job: %s", d)
	}
	if until, _ := dueAt(t, s, rdb, j.ID); !until.Equal(now.Add(time.Minute).Truncate(time.Millisecond)) {
		t.Errorf("recovery time %v, want the lease's end %v", until, now.Add(time.Minute))
	}
	if _, ok, err := s.ClaimExternal(ctx, "transcode", now, now.Add(time.Minute), "60.def"); ok || err != nil {
		t.Errorf("a second ClaimExternal = ok %v, %v; want none left", ok, err)
	}
}

// TestClaimExternalDropsStaleEntries: entries of jobs held, ended or gone,
// and garbage, are dropped on the way to the next job that can be claimed.
func TestClaimExternalDropsStaleEntries(t *testing.T) {
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	held := create(t, s, newExternal("cli_a", "transcode", t0, 0))
	claimExternal(t, s, "transcode", t0, "60.a")
	done := create(t, s, newExternal("cli_a", "transcode", t0.Add(time.Millisecond), 0))
	dj := claimExternal(t, s, "transcode", t0, "60.b")
	endJob(t, s, dj, jobs.StatusCompleted, t0.Add(time.Second))
	gone := create(t, s, newExternal("cli_a", "transcode", t0.Add(2*time.Millisecond), 0))
	claimExternal(t, s, "transcode", t0, "60.c")
	rdb.Del(ctx, recordKey(s, gone.ID))
	ready := create(t, s, newExternal("cli_a", "transcode", t0.Add(3*time.Millisecond), 0))
	list := "bmr:{" + s.Tags()[0] + "}:xready:transcode"
	// Put the stale entries ahead of the ready one.
	rdb.LPush(ctx, list, ids.Body(gone.ID), "not-an-id", ids.Body(done.ID), ids.Body(held.ID))

	now := t0.Add(5 * time.Second)
	c := claimExternal(t, s, "transcode", now, "60.d")
	if c.ID != ready.ID || c.Attempts != 1 {
		t.Errorf("claimed %s attempt %d, want %s attempt 1 past the stale entries", c.ID, c.Attempts, ready.ID)
	}
	if l := xlist(t, s, rdb, 0, "transcode"); len(l) != 0 {
		t.Errorf("list after the claim = %v, want the stale entries dropped", l)
	}
	if h := getJob(t, s, held.ID); h.Attempts != 1 || h.LeaseID != "1.60.a" {
		t.Errorf("the held job after its stale entry = attempt %d lease %s, want untouched (1, 1.60.a)", h.Attempts, h.LeaseID)
	}
}

func TestClaimExternalVisitsEveryPartition(t *testing.T) {
	s, _ := newStore(t, redisstore.Options{Partitions: 4})
	want := map[string]bool{}
	for p := range 4 {
		want[create(t, s, newExternal("cli_a", "transcode", t0, p)).ID] = true
	}
	for range 4 {
		c := claimExternal(t, s, "transcode", t0, "60.x")
		if !want[c.ID] {
			t.Fatalf("claimed %s: not one of the jobs left %v", c.ID, want)
		}
		delete(want, c.ID)
	}
	if _, ok, err := s.ClaimExternal(context.Background(), "transcode", t0, t0.Add(time.Minute), "60.x"); ok || err != nil {
		t.Errorf("a fifth claim = ok %v, %v; want none", ok, err)
	}
}

func TestRequeueExternal(t *testing.T) {
	ctx := context.Background()
	lapsed := t0.Add(2 * time.Minute) // after every lease below
	tests := []struct {
		name string
		prep func(t *testing.T, s *redisstore.Store, rdb *redis.Client, id string)
		now  time.Time
		want bool
	}{
		{"ACCEPTED (its entry was lost)", func(t *testing.T, s *redisstore.Store, rdb *redis.Client, id string) {
			rdb.Del(ctx, "bmr:{"+s.Tags()[0]+"}:xready:transcode")
		}, t0.Add(time.Hour), true}, // listed at t0: listed again an hour later
		{"ACCEPTED and listed", func(t *testing.T, s *redisstore.Store, rdb *redis.Client, id string) {}, t0.Add(59 * time.Minute), false},
		{"held by a worker", func(t *testing.T, s *redisstore.Store, _ *redis.Client, _ string) {
			claimExternal(t, s, "transcode", t0, "60.a")
		}, t0.Add(59 * time.Second), false},
		{"its lease lapsed", func(t *testing.T, s *redisstore.Store, _ *redis.Client, _ string) {
			claimExternal(t, s, "transcode", t0, "60.a")
		}, t0.Add(time.Minute), true},
		{"waiting for its retry", func(t *testing.T, s *redisstore.Store, _ *redis.Client, _ string) {
			c := claimExternal(t, s, "transcode", t0, "60.a")
			c.LastError, c.UpdatedAt = &jobs.Error{Code: "x", Message: "y"}, t0.Add(time.Second)
			if err := s.RetryJob(ctx, c, t0.Add(90*time.Second)); err != nil {
				t.Fatal(err)
			}
		}, t0.Add(89 * time.Second), false},
		{"its retry time came", func(t *testing.T, s *redisstore.Store, _ *redis.Client, _ string) {
			c := claimExternal(t, s, "transcode", t0, "60.a")
			c.LastError, c.UpdatedAt = &jobs.Error{Code: "x", Message: "y"}, t0.Add(time.Second)
			if err := s.RetryJob(ctx, c, t0.Add(90*time.Second)); err != nil {
				t.Fatal(err)
			}
		}, t0.Add(90 * time.Second), true},
		{"ended", func(t *testing.T, s *redisstore.Store, _ *redis.Client, _ string) {
			c := claimExternal(t, s, "transcode", t0, "60.a")
			endJob(t, s, c, jobs.StatusCompleted, t0.Add(time.Second))
		}, lapsed, false},
		{"gone", func(t *testing.T, s *redisstore.Store, rdb *redis.Client, id string) {
			claimExternal(t, s, "transcode", t0, "60.a")
			rdb.Del(ctx, recordKey(s, id))
		}, lapsed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rdb := newStore(t, redisstore.Options{})
			j := create(t, s, newExternal("cli_a", "transcode", t0, 0))
			tt.prep(t, s, rdb, j.ID)
			before := xlist(t, s, rdb, 0, "transcode")
			ok, err := s.RequeueExternal(ctx, j.ID, "transcode", tt.now)
			if err != nil || ok != tt.want {
				t.Fatalf("RequeueExternal at t0+%v = %v, %v; want %v", tt.now.Sub(t0), ok, err, tt.want)
			}
			after := xlist(t, s, rdb, 0, "transcode")
			wantList := before
			if tt.want {
				wantList = append(slices.Clone(before), ids.Body(j.ID))
			}
			if !slices.Equal(after, wantList) {
				t.Errorf("list = %v, want %v", after, wantList)
			}
		})
	}
	t.Run("not an id", func(t *testing.T) {
		s, _ := newStore(t, redisstore.Options{})
		if _, err := s.RequeueExternal(ctx, "garbage", "transcode", t0); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("RequeueExternal(garbage) = %v, want ErrNotFound", err)
		}
	})
}

// TestAnnouncements: a new external job and a requeue announce its type
// (Available), other jobs nothing; AnnounceStop reaches Stops. Each
// subscription says "" when it starts.
func TestAnnouncements(t *testing.T) {
	s, _ := newStore(t, redisstore.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	avail, stops := s.Available(ctx), s.Stops(ctx)
	for name, ch := range map[string]<-chan string{"Available": avail, "Stops": stops} {
		if got := recv(t, ch); got != "" {
			t.Fatalf("%s's first message = %q, want \"\" (subscribed)", name, got)
		}
	}
	create(t, s, newJob("cli_a", t0, 0)) // echo: not announced
	j := create(t, s, newExternal("cli_a", "transcode", t0.Add(time.Millisecond), 0))
	create(t, s, newExternal("cli_a", "thumbnail", t0.Add(2*time.Millisecond), 0))
	if _, err := s.RequeueExternal(ctx, j.ID, "transcode", t0.Add(2*time.Hour)); err != nil { // listed again after an hour
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		got = append(got, recv(t, avail))
	}
	if want := []string{"transcode", "thumbnail", "transcode"}; !slices.Equal(got, want) {
		t.Errorf("announced %v, want %v (nothing for the echo job)", got, want)
	}
	if err := s.AnnounceStop(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, stops); got != j.ID {
		t.Errorf("Stops = %q, want %s", got, j.ID)
	}
	cancel()
	for name, ch := range map[string]<-chan string{"Available": avail, "Stops": stops} {
		select {
		case _, open := <-ch:
			for open {
				_, open = <-ch
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s did not close with its context", name)
		}
	}
}

func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		var zero T
		t.Fatalf("nothing came within 5 s")
		return zero
	}
}

// refused describes a *jobs.RefusedError the test expects.
type refused struct {
	status  jobs.Status
	attempt int
	field   string
	matched bool
}

// TestWriteJobGuards: who may write a job (writeJobScript's guards: the
// attempt, "*" any while open, and the record's lid or th) and, when it
// may not, what the refusal says: its RefusedError answers errors.Is for
// ErrFinished always and for the one reason that fits.
func TestWriteJobGuards(t *testing.T) {
	ctx := context.Background()
	const tokenHash = "aa11"
	// States of a job, each from a fresh one.
	held := func(t *testing.T, s *redisstore.Store, j jobs.Job) { claimExternal(t, s, j.Type, t0, "60.a") }
	reclaimed := func(t *testing.T, s *redisstore.Store, j jobs.Job) {
		claimExternal(t, s, j.Type, t0, "60.a")
		if ok, err := s.RequeueExternal(ctx, j.ID, j.Type, t0.Add(time.Minute)); !ok || err != nil {
			t.Fatalf("requeue: %v %v", ok, err)
		}
		claimExternal(t, s, j.Type, t0.Add(time.Minute), "60.b")
	}
	endedAs := func(status jobs.Status) func(*testing.T, *redisstore.Store, jobs.Job) {
		return func(t *testing.T, s *redisstore.Store, j jobs.Job) {
			c := claimExternal(t, s, j.Type, t0, "60.a")
			if status == jobs.StatusCanceled || status == jobs.StatusExpired {
				c.LeaseID = "" // any run's write
			}
			endJob(t, s, c, status, t0.Add(time.Second))
		}
	}
	tokened := func(t *testing.T, s *redisstore.Store, j jobs.Job) {
		c := claim(t, s, j.ID, t0)
		c.TokenHash = tokenHash
		if err := s.SaveToken(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	tokenUsed := func(t *testing.T, s *redisstore.Store, j jobs.Job) {
		tokened(t, s, j)
		c := getJob(t, s, j.ID)
		c.TokenHash = tokenHash
		endJob(t, s, c, jobs.StatusCompleted, t0.Add(time.Second))
	}
	tokenCanceled := func(t *testing.T, s *redisstore.Store, j jobs.Job) {
		tokened(t, s, j)
		endJob(t, s, getJob(t, s, j.ID), jobs.StatusCanceled, t0.Add(time.Second))
	}

	// Writes, as the service makes them.
	later := t0.Add(2 * time.Second)
	extend := func(attempt int, lease string) func(*redisstore.Store, jobs.Job) error {
		return func(s *redisstore.Store, j jobs.Job) error {
			j.Attempts, j.LeaseID, j.UpdatedAt = attempt, lease, later
			return s.ExtendJobLease(ctx, j, later.Add(time.Minute))
		}
	}
	complete := func(attempt int, lease, token string) func(*redisstore.Store, jobs.Job) error {
		return func(s *redisstore.Store, j jobs.Job) error {
			j.Attempts, j.LeaseID, j.TokenHash = attempt, lease, token
			e, m := ended(t, j, jobs.StatusCompleted, later)
			_, err := s.FinishJob(ctx, e, m)
			return err
		}
	}
	cancel := func(s *redisstore.Store, j jobs.Job) error {
		j = getJob(t, s, j.ID)
		j.LeaseID, j.TokenHash = "", ""
		e, m := ended(t, j, jobs.StatusCanceled, later)
		_, err := s.FinishJob(ctx, e, m)
		return err
	}

	tests := []struct {
		name    string
		typ     string // "transcode" (external) or "echo"
		state   func(*testing.T, *redisstore.Store, jobs.Job)
		write   func(*redisstore.Store, jobs.Job) error
		refused *refused // nil: written
		is      []error  // besides ErrFinished when refused
	}{
		{"the lease holder's heartbeat", "transcode", held, extend(1, "1.60.a"), nil, nil},
		{"another lease id, same attempt", "transcode", held, extend(1, "1.60.x"), &refused{jobs.StatusProcessing, 1, "lid", false}, []error{jobs.ErrLeaseLost}},
		{"the lapsed lease after a new claim", "transcode", reclaimed, extend(1, "1.60.a"), &refused{jobs.StatusProcessing, 2, "lid", false}, []error{jobs.ErrLeaseLost}},
		{"the new attempt, the old lease id", "transcode", reclaimed, extend(2, "1.60.a"), &refused{jobs.StatusProcessing, 2, "lid", false}, []error{jobs.ErrLeaseLost}},
		{"the lapsed lease's complete", "transcode", reclaimed, complete(1, "1.60.a", ""), &refused{jobs.StatusProcessing, 2, "lid", false}, []error{jobs.ErrLeaseLost}},
		{"the new lease's complete", "transcode", reclaimed, complete(2, "2.60.b", ""), nil, nil},
		{"the holder, after a cancel", "transcode", endedAs(jobs.StatusCanceled), extend(1, "1.60.a"), &refused{jobs.StatusCanceled, 1, "lid", true}, []error{jobs.ErrCanceled}},
		{"the holder, after the deadline", "transcode", endedAs(jobs.StatusExpired), complete(1, "1.60.a", ""), &refused{jobs.StatusExpired, 1, "lid", true}, []error{jobs.ErrExpired}},
		{"the holder, completed already", "transcode", endedAs(jobs.StatusCompleted), complete(1, "1.60.a", ""), &refused{jobs.StatusCompleted, 1, "lid", true}, []error{jobs.ErrLeaseLost}},
		{"no field to check, the attempt's run", "echo", func(t *testing.T, s *redisstore.Store, j jobs.Job) { claim(t, s, j.ID, t0) }, extend(1, ""), nil, nil},
		{"no field to check, a stale attempt", "transcode", reclaimed, extend(1, ""), &refused{jobs.StatusProcessing, 2, "", true}, nil},
		{"the token", "echo", tokened, complete(1, "", tokenHash), nil, nil},
		{"the token, any attempt", "echo", tokened, complete(7, "", tokenHash), nil, nil},
		{"another token", "echo", tokened, complete(1, "", "bb22"), &refused{jobs.StatusProcessing, 1, "th", false}, []error{jobs.ErrTokenInvalid}},
		{"a token before any was given", "echo", nil, complete(0, "", tokenHash), &refused{jobs.StatusAccepted, 0, "th", false}, []error{jobs.ErrTokenInvalid}},
		{"the token, used", "echo", tokenUsed, complete(1, "", tokenHash), &refused{jobs.StatusCompleted, 1, "th", true}, []error{jobs.ErrTokenUsed}},
		{"the token, after a cancel", "echo", tokenCanceled, complete(1, "", tokenHash), &refused{jobs.StatusCanceled, 1, "th", true}, []error{jobs.ErrCanceled}},
		{"a cancel, ACCEPTED", "echo", nil, cancel, nil, nil},
		{"a cancel, held by a worker", "transcode", held, cancel, nil, nil},
		{"a cancel, completed", "transcode", endedAs(jobs.StatusCompleted), cancel, &refused{jobs.StatusCompleted, 1, "", true}, nil},
		{"a cancel, canceled", "transcode", endedAs(jobs.StatusCanceled), cancel, &refused{jobs.StatusCanceled, 1, "", true}, []error{jobs.ErrCanceled}},
	}
	reasons := []error{jobs.ErrFinished, jobs.ErrLeaseLost, jobs.ErrCanceled, jobs.ErrExpired, jobs.ErrTokenInvalid, jobs.ErrTokenUsed}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rdb := newStore(t, redisstore.Options{})
			j := newJob("cli_a", t0, 0)
			if tt.typ != "echo" {
				j = newExternal("cli_a", tt.typ, t0, 0)
			}
			create(t, s, j)
			if tt.state != nil {
				tt.state(t, s, j)
			}
			before := snapshot(t, rdb)
			err := tt.write(s, j)
			if tt.refused == nil {
				if err != nil {
					t.Fatalf("write = %v, want it written", err)
				}
				return
			}
			var re *jobs.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("write = %v, want a *jobs.RefusedError", err)
			}
			if got := (refused{re.Status, re.Attempt, re.Field, re.Matched}); got != *tt.refused {
				t.Errorf("refused %+v, want %+v", got, *tt.refused)
			}
			for _, r := range reasons {
				want := r == jobs.ErrFinished || slices.Contains(tt.is, r)
				if errors.Is(err, r) != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, r, !want, want)
				}
			}
			unchanged(t, rdb, before, "a refused write")
		})
	}
	t.Run("no such job", func(t *testing.T) {
		s, _ := newStore(t, redisstore.Options{})
		j := newExternal("cli_a", "transcode", t0, 0)
		if err := extend(1, "1.60.a")(s, j); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("write of a job never created = %v, want ErrNotFound", err)
		}
	})
}

// TestWatchedJobEvents: once a job is watched, each change is an event,
// numbered, kept (the last 50) and published; an unwatched job's changes
// cost none of that.
func TestWatchedJobEvents(t *testing.T) {
	s, rdb := newStore(t, redisstore.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := s.Events(ctx)
	if e := recv(t, evs); e.RequestID != "" || e.ID != 0 || e.Name != "" || e.Data != nil {
		t.Fatalf("first event %+v, want the zero event (subscribed)", e)
	}
	quiet := create(t, s, newExternal("cli_a", "transcode", t0, 0))
	claimExternal(t, s, "transcode", t0, "60.q")
	if f := rdb.HGetAll(ctx, recordKey(s, quiet.ID)).Val(); f["ev"] != "" || f["w"] != "" {
		t.Errorf("an unwatched job's record has events: %v", f)
	}

	j := create(t, s, newExternal("cli_a", "transcode", t0.Add(time.Millisecond), 0))
	got, last, err := s.WatchJob(ctx, j.ID)
	if err != nil || last != 0 || got.ID != j.ID || got.Status != jobs.StatusAccepted || got.Payload != nil || got.ClientID != "cli_a" {
		t.Fatalf("WatchJob = %s %s payload %s, last %d, %v; want the ACCEPTED job without payload, last 0", got.ID, got.Status, got.Payload, last, err)
	}
	c := claimExternal(t, s, "transcode", t0.Add(time.Second), "60.a")
	for i := range 55 {
		at := t0.Add(2*time.Second + time.Duration(i)*time.Millisecond) // a new state each time (else a repeat)
		c.Progress, c.UpdatedAt = &jobs.Progress{Percent: float64(i), UpdatedAt: at}, at
		if err := s.ExtendJobLease(ctx, c, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	endJob(t, s, c, jobs.StatusCompleted, t0.Add(3*time.Second))
	// 1 claim, 55 progress, 1 end.
	heard := make([]jobs.Event, 57)
	for i := range heard {
		heard[i] = recv(t, evs)
	}
	for i, e := range heard {
		wantName := "progress"
		switch i {
		case 0:
			wantName = "status"
		case 56:
			wantName = "final"
		}
		if e.RequestID != j.ID || e.ID != i+1 || e.Name != wantName || !json.Valid(e.Data) {
			t.Fatalf("event %d heard = %+v, want %s #%d %s with JSON data", i, e, j.ID, i+1, wantName)
		}
	}
	if string(heard[0].Data) != `{"requestId":"`+j.ID+`","status":"PROCESSING","updatedAt":"2026-03-01T12:00:01.123456789Z","attempt":1}` {
		t.Errorf("claim event data = %s", heard[0].Data)
	}
	if string(heard[56].Data) != `{"status":"COMPLETED"}` {
		t.Errorf("final event data = %s", heard[56].Data)
	}
	_, last, err = s.WatchJob(ctx, j.ID)
	if err != nil || last != 57 {
		t.Fatalf("WatchJob after 57 events: last %d, %v", last, err)
	}
	kept, err := s.JobEvents(ctx, j.ID, 0, 57)
	if err != nil || len(kept) != 50 || kept[0].ID != 8 || kept[49].ID != 57 {
		t.Fatalf("JobEvents(0, 57) = %d events from %v, %v; want the last 50 (8..57)", len(kept), namesOf(kept), err)
	}
	for _, e := range kept {
		if h := heard[e.ID-1]; e.Name != h.Name || string(e.Data) != string(h.Data) || e.RequestID != j.ID {
			t.Errorf("kept event %d = %s %s, heard %s %s", e.ID, e.Name, e.Data, h.Name, h.Data)
		}
	}
	part, err := s.JobEvents(ctx, j.ID, 54, 56)
	if err != nil || !slices.Equal(namesOf(part), []string{"55 progress", "56 progress"}) {
		t.Errorf("JobEvents(54, 56) = %v, %v; want events 55 and 56", namesOf(part), err)
	}
	if none, err := s.JobEvents(ctx, j.ID, 57, 57); err != nil || len(none) != 0 {
		t.Errorf("JobEvents(57, 57) = %v, %v; want none", none, err)
	}
	if _, _, err := s.WatchJob(ctx, "req_01KJ0000000000000000000000"); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("WatchJob of no job = %v, want ErrNotFound", err)
	}
}

func namesOf(evs []jobs.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = strconv.Itoa(e.ID) + " " + e.Name
	}
	return out
}

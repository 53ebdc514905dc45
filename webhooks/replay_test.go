package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/signing"
)

// driveToFailed makes every attempt of m until the delivery is final.
func (e *testEnv) driveToFinal(t *testing.T, m Message) Delivery {
	t.Helper()
	e.deliver(t, m)
	for i := 0; i < 50; i++ {
		d := e.get(t, m.ID)
		if d.Status != StatusPending {
			return d
		}
		e.clock.Set(*d.NextAttemptAt)
		if err := e.d.Attempt(context.Background(), m.ID, d.Attempts+1); err != nil {
			t.Fatalf("Attempt(%s, %d) = %v", m.ID, d.Attempts+1, err)
		}
	}
	t.Fatalf("delivery %s still PENDING after 50 attempts", m.ID)
	return Delivery{}
}

func TestReplayFailedDelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, withMaxAttempts(3))
	r := newReceiver(t, status(500), status(500), status(500), status(200))
	m := msg("cl_a", r.URL)
	d := e.driveToFinal(t, m)
	if d.Status != StatusFailed || d.Attempts != 3 {
		t.Fatalf("before replay: Status, Attempts = %s, %d, want FAILED, 3", d.Status, d.Attempts)
	}
	e.clock.Advance(time.Hour)
	now := e.clock.Now()
	before := len(e.sched.Calls())

	rd, err := e.d.Replay(ctx, m.ID)
	if err != nil {
		t.Fatalf("Replay(%s) = %v, want nil", m.ID, err)
	}
	if rd.Status != StatusPending || rd.Replays != 1 || rd.Attempts != 3 {
		t.Errorf("Replay returned Status, Replays, Attempts = %s, %d, %d, want PENDING, 1, 3", rd.Status, rd.Replays, rd.Attempts)
	}
	d = e.get(t, m.ID)
	if d.Status != StatusPending || d.Replays != 1 || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(now) {
		t.Errorf("after Replay: Status, Replays, NextAttemptAt = %s, %d, %v, want PENDING, 1, %v", d.Status, d.Replays, d.NextAttemptAt, now)
	}
	calls := e.sched.Calls()[before:]
	if len(calls) != 1 || calls[0].ID != m.ID || calls[0].Attempt != 4 || !calls[0].At.Equal(now) {
		t.Fatalf("Scheduler calls of Replay = %v, want {%s 4 %v}", calls, m.ID, now)
	}
	if err := e.d.Attempt(ctx, m.ID, 4); err != nil {
		t.Fatalf("Attempt(%s, 4) = %v", m.ID, err)
	}
	d = e.get(t, m.ID)
	if d.Status != StatusDelivered || d.Attempts != 4 || len(d.AttemptLog) != 4 {
		t.Fatalf("after replayed attempt: Status, Attempts, log = %s, %d, %d, want DELIVERED, 4, 4", d.Status, d.Attempts, len(d.AttemptLog))
	}
	if a := d.AttemptLog[3]; a.Number != 4 || a.Outcome != OutcomeDelivered || !a.StartedAt.Equal(now) {
		t.Errorf("attempt 4 = Number %d, Outcome %q, StartedAt %v, want 4, delivered, %v", a.Number, a.Outcome, a.StartedAt, now)
	}
	for i, req := range r.Requests() {
		if got := req.Header.Get(signing.HeaderID); got != m.ID {
			t.Errorf("request %d webhook-id = %q, want %q", i+1, got, m.ID)
		}
	}

	// A DELIVERED delivery can be replayed too, and DeliveredAt is cleared.
	if _, err := e.d.Replay(ctx, m.ID); err != nil {
		t.Fatalf("Replay of DELIVERED %s = %v, want nil", m.ID, err)
	}
	if d := e.get(t, m.ID); d.DeliveredAt != nil || d.Replays != 2 || d.Status != StatusPending {
		t.Errorf("after second Replay: DeliveredAt, Replays, Status = %v, %d, %s, want nil, 2, PENDING", d.DeliveredAt, d.Replays, d.Status)
	}
}

// A replayed delivery gets a fresh round of MaxAttempts, with the policy's
// waits starting again from the first.
func TestReplayFreshRound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, withMaxAttempts(3))
	r := newReceiver(t, status(500))
	m := msg("cl_a", r.URL)
	e.driveToFinal(t, m)
	if _, err := e.d.Replay(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	d := e.driveToFinal(t, m) // deliver is idempotent: it only re-schedules
	if d.Status != StatusFailed || d.Attempts != 6 {
		t.Fatalf("after replay round: Status, Attempts = %s, %d, want FAILED, 6", d.Status, d.Attempts)
	}
	p := testPolicy()
	wantWait := map[int]time.Duration{4: p.Delay(1), 5: p.Delay(2)}
	for _, a := range d.AttemptLog[3:] {
		if w, ok := wantWait[a.Number]; ok {
			if a.Outcome != OutcomeRetry || a.NextAttemptAt == nil || a.NextAttemptAt.Sub(a.StartedAt) != w {
				t.Errorf("attempt %d: Outcome %q, wait %v, want retry after %v", a.Number, a.Outcome, a.NextAttemptAt, w)
			}
		} else if a.Outcome != OutcomeFailed {
			t.Errorf("attempt %d Outcome = %q, want failed", a.Number, a.Outcome)
		}
	}
	if n := len(r.Requests()); n != 6 {
		t.Errorf("receiver saw %d requests, want 6", n)
	}
}

func TestReplayErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	r := newReceiver(t, status(500))
	pending := msg("cl_a", r.URL)
	e.deliver(t, pending)

	tests := []struct {
		name string
		id   string
		want error
	}{
		{"pending", pending.ID, ErrConflict},
		{"unknown", "msg_nope", ErrNotFound},
	}
	for _, tt := range tests {
		before := len(e.sched.Calls())
		_, err := e.d.Replay(ctx, tt.id)
		if !errors.Is(err, tt.want) {
			t.Errorf("Replay(%s) of a %s delivery = %v, want %v", tt.id, tt.name, err, tt.want)
		}
		if got := len(e.sched.Calls()); got != before {
			t.Errorf("Replay(%s) of a %s delivery scheduled something", tt.id, tt.name)
		}
	}
}

func TestReplaySchedulerFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	r := newReceiver(t, status(410))
	m := msg("cl_a", r.URL)
	e.deliver(t, m)
	e.sched.err = errBoom
	d, err := e.d.Replay(ctx, m.ID)
	if !errors.Is(err, errBoom) {
		t.Errorf("Replay with failing scheduler = %v, want %v", err, errBoom)
	}
	// The delivery stays PENDING, due now: the stale sweep finds it.
	if d.Status != StatusPending {
		t.Errorf("Replay returned Status %s, want PENDING", d.Status)
	}
	var stale []string
	e.clock.Advance(time.Hour)
	if err := e.store.Stale(ctx, e.clock.Now(), time.Minute, func(d Delivery) error { stale = append(stale, d.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(stale) != 1 || stale[0] != m.ID {
		t.Errorf("Stale = %v, want [%s]", stale, m.ID)
	}
}

// bulkFixture: FAILED deliveries of two clients created a minute apart,
// plus a DELIVERED and a PENDING one.
type bulkFixture struct {
	e          *testEnv
	t0         time.Time // creation time of the first
	failedA    []string  // oldest first
	failedB    []string
	delivered  string
	pending    string
	statusOf   map[string]Status
	createdAt  map[string]time.Time
	clientOf   map[string]string
	allFailed  []string
	allCreated []string
}

func newBulkFixture(t *testing.T) *bulkFixture {
	t.Helper()
	e := newEnv(t, withMaxAttempts(1))
	fail := newReceiver(t, status(500))
	ok := newReceiver(t, status(200))
	retry := newReceiver(t, status(503))
	f := &bulkFixture{e: e, t0: e.clock.Now(), statusOf: map[string]Status{}, createdAt: map[string]time.Time{}, clientOf: map[string]string{}}
	add := func(client, url string) string {
		m := msg(client, url)
		f.createdAt[m.ID] = e.clock.Now()
		f.clientOf[m.ID] = client
		e.deliver(t, m)
		f.statusOf[m.ID] = e.get(t, m.ID).Status
		f.allCreated = append(f.allCreated, m.ID)
		e.clock.Advance(time.Minute)
		return m.ID
	}
	for i := 0; i < 6; i++ {
		f.failedA = append(f.failedA, add("cl_a", fail.URL))
		if i < 4 {
			f.failedB = append(f.failedB, add("cl_b", fail.URL))
		}
	}
	f.delivered = add("cl_a", ok.URL)
	// PENDING needs retries left: a second env would be simpler, but a
	// direct Create keeps one database.
	m := msg("cl_a", retry.URL)
	if _, err := e.store.Create(context.Background(), m, e.clock.Now(), nil); err != nil {
		t.Fatal(err)
	}
	f.pending, f.statusOf[m.ID], f.createdAt[m.ID], f.clientOf[m.ID] = m.ID, StatusPending, e.clock.Now(), "cl_a"
	f.allCreated = append(f.allCreated, m.ID)
	e.clock.Advance(time.Minute)
	for id, s := range f.statusOf {
		if s == StatusFailed {
			f.allFailed = append(f.allFailed, id)
		}
	}
	if len(f.allFailed) != 10 || f.statusOf[f.delivered] != StatusDelivered {
		t.Fatalf("fixture: %d FAILED (want 10), delivered one is %s", len(f.allFailed), f.statusOf[f.delivered])
	}
	return f
}

// matches says which fixture deliveries a filter selects.
func (f *bulkFixture) matches(fl Filter) map[string]bool {
	out := map[string]bool{}
	for id, s := range f.statusOf {
		c := f.createdAt[id]
		if (fl.Status == "" || fl.Status == s) && (fl.ClientID == "" || fl.ClientID == f.clientOf[id]) &&
			(fl.Since.IsZero() || !c.Before(fl.Since)) && (fl.Until.IsZero() || c.Before(fl.Until)) {
			out[id] = true
		}
	}
	return out
}

func TestBulkReplay(t *testing.T) {
	t.Parallel()
	min := func(n int) time.Duration { return time.Duration(n) * time.Minute }
	tests := []struct {
		name        string
		filter      func(f *bulkFixture) Filter
		wantMatched int64
		wantSkipped int64 // PENDING matches are skipped
	}{
		{"all FAILED", func(f *bulkFixture) Filter { return Filter{Status: StatusFailed} }, 10, 0},
		{"FAILED of client a", func(f *bulkFixture) Filter { return Filter{Status: StatusFailed, ClientID: "cl_a"} }, 6, 0},
		{"FAILED of client b", func(f *bulkFixture) Filter { return Filter{Status: StatusFailed, ClientID: "cl_b"} }, 4, 0},
		{"FAILED of client c (none)", func(f *bulkFixture) Filter { return Filter{Status: StatusFailed, ClientID: "cl_c"} }, 0, 0},
		{"FAILED since minute 4", func(f *bulkFixture) Filter { return Filter{Status: StatusFailed, Since: f.t0.Add(min(4))} }, 6, 0},
		{"FAILED until minute 4", func(f *bulkFixture) Filter { return Filter{Status: StatusFailed, Until: f.t0.Add(min(4))} }, 4, 0},
		{"FAILED of a in [2m, 8m)", func(f *bulkFixture) Filter {
			return Filter{Status: StatusFailed, ClientID: "cl_a", Since: f.t0.Add(min(2)), Until: f.t0.Add(min(8))}
		}, 3, 0},
		{"DELIVERED", func(f *bulkFixture) Filter { return Filter{Status: StatusDelivered} }, 1, 0},
		{"any status of client a", func(f *bulkFixture) Filter { return Filter{ClientID: "cl_a"} }, 8, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newBulkFixture(t)
			e := f.e
			fl := tt.filter(f)
			want := f.matches(fl)
			if int64(len(want)) != tt.wantMatched {
				t.Fatalf("fixture matches %d for %+v, test wants %d", len(want), fl, tt.wantMatched)
			}

			// A dry run only counts.
			dry, err := e.d.StartBulkReplay(ctx, fl, true)
			if err != nil {
				t.Fatalf("StartBulkReplay(%+v, dry) = %v", fl, err)
			}
			if dry.Matched != tt.wantMatched || dry.State != ReplayDone || !dry.DryRun || dry.FinishedAt == nil {
				t.Errorf("dry run = %+v, want Matched %d, state done, finished", dry, tt.wantMatched)
			}
			if ids := e.starter.IDs(); len(ids) != 0 {
				t.Errorf("dry run called the ReplayStarter with %v", ids)
			}
			if err := e.d.RunBulkReplay(ctx, dry.ID); err != nil {
				t.Errorf("RunBulkReplay(dry %s) = %v, want nil", dry.ID, err)
			}
			if got, _ := e.d.GetReplay(ctx, dry.ID); got.Replayed != 0 || got.State != ReplayDone {
				t.Errorf("dry run after RunBulkReplay = %+v, want nothing replayed", got)
			}

			before := len(e.sched.Calls())
			r, err := e.d.StartBulkReplay(ctx, fl, false)
			if err != nil {
				t.Fatalf("StartBulkReplay(%+v) = %v", fl, err)
			}
			if r.Matched != tt.wantMatched || r.State != ReplayRunning || r.DryRun || !strings.HasPrefix(r.ID, "rpl_") {
				t.Errorf("StartBulkReplay(%+v) = %+v, want Matched %d, running", fl, r, tt.wantMatched)
			}
			if ids := e.starter.IDs(); len(ids) != 1 || ids[0] != r.ID {
				t.Errorf("ReplayStarter calls = %v, want [%s]", ids, r.ID)
			}
			got, err := e.d.GetReplay(ctx, r.ID)
			if err != nil || got.State != ReplayRunning || got.Matched != tt.wantMatched {
				t.Errorf("GetReplay(%s) before run = %+v, %v, want running", r.ID, got, err)
			}
			if !got.Filter.Since.Equal(fl.Since) || !got.Filter.Until.Equal(fl.Until) || got.Filter.Status != fl.Status || got.Filter.ClientID != fl.ClientID {
				t.Errorf("GetReplay(%s).Filter = %+v, want %+v", r.ID, got.Filter, fl)
			}

			if err := e.d.RunBulkReplay(ctx, r.ID); err != nil {
				t.Fatalf("RunBulkReplay(%s) = %v", r.ID, err)
			}
			got, err = e.d.GetReplay(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != ReplayDone || got.Replayed != tt.wantMatched-tt.wantSkipped || got.Skipped != tt.wantSkipped || got.FinishedAt == nil {
				t.Errorf("GetReplay(%s) after run = %+v, want done, Replayed %d, Skipped %d", r.ID, got, tt.wantMatched-tt.wantSkipped, tt.wantSkipped)
			}
			calls := e.sched.Calls()[before:]
			if int64(len(calls)) != got.Replayed {
				t.Errorf("Scheduler calls = %d, want %d", len(calls), got.Replayed)
			}
			scheduled := map[string]bool{}
			for _, c := range calls {
				scheduled[c.ID] = true
				if c.Attempt != 2 || !c.At.Equal(e.clock.Now()) {
					t.Errorf("Scheduler call %v, want attempt 2 at %v", c, e.clock.Now())
				}
			}
			for _, id := range f.allCreated {
				d := e.get(t, id)
				switch {
				case want[id] && f.statusOf[id] != StatusPending:
					if d.Status != StatusPending || d.Replays != 1 || !scheduled[id] {
						t.Errorf("matched %s (%s): Status, Replays, scheduled = %s, %d, %v, want PENDING, 1, true", id, f.statusOf[id], d.Status, d.Replays, scheduled[id])
					}
				default:
					if d.Status != f.statusOf[id] || d.Replays != 0 || scheduled[id] {
						t.Errorf("untouched %s: Status, Replays, scheduled = %s, %d, %v, want %s, 0, false", id, d.Status, d.Replays, scheduled[id], f.statusOf[id])
					}
				}
			}
			// Running again finds the replay done and does nothing.
			if err := e.d.RunBulkReplay(ctx, r.ID); err != nil {
				t.Errorf("RunBulkReplay(%s) again = %v", r.ID, err)
			}
			if n := len(e.sched.Calls()) - before; int64(n) != got.Replayed {
				t.Errorf("second RunBulkReplay scheduled %d more", int64(n)-got.Replayed)
			}
		})
	}
}

func TestBulkReplayErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.d.GetReplay(ctx, "rpl_nope"); !errors.Is(err, ErrReplayNotFound) {
		t.Errorf("GetReplay(unknown) = %v, want ErrReplayNotFound", err)
	}
	if err := e.d.RunBulkReplay(ctx, "rpl_nope"); !errors.Is(err, ErrReplayNotFound) {
		t.Errorf("RunBulkReplay(unknown) = %v, want ErrReplayNotFound", err)
	}
	e.starter.err = errBoom
	if _, err := e.d.StartBulkReplay(ctx, Filter{Status: StatusFailed}, false); !errors.Is(err, errBoom) {
		t.Errorf("StartBulkReplay with failing starter = %v, want %v", err, errBoom)
	}
	// A scheduler failure stops the run; the replay stays running, to resume.
	r := newReceiver(t, status(410))
	m := msg("cl_a", r.URL)
	e.deliver(t, m)
	e.starter.err = nil
	br, err := e.d.StartBulkReplay(ctx, Filter{Status: StatusFailed}, false)
	if err != nil {
		t.Fatal(err)
	}
	e.sched.err = errBoom
	if err := e.d.RunBulkReplay(ctx, br.ID); !errors.Is(err, errBoom) {
		t.Errorf("RunBulkReplay with failing scheduler = %v, want %v", err, errBoom)
	}
	if got, _ := e.d.GetReplay(ctx, br.ID); got.State != ReplayRunning {
		t.Errorf("replay state after a failed run = %q, want running", got.State)
	}
	// The delivery was reopened before the schedule failed, so it left the
	// FAILED index: a resumed run no longer sees it, and it waits, PENDING
	// and due, for the stale sweep.
	e.sched.err = nil
	if err := e.d.RunBulkReplay(ctx, br.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.d.GetReplay(ctx, br.ID); got.State != ReplayDone || got.Replayed != 0 || got.Skipped != 0 {
		t.Errorf("resumed replay = %+v, want done with nothing left to replay", got)
	}
	if d := e.get(t, m.ID); d.Status != StatusPending || d.NextAttemptAt == nil {
		t.Errorf("reopened delivery: Status, NextAttemptAt = %s, %v, want PENDING, due", d.Status, d.NextAttemptAt)
	}
}

func TestBulkReplayJSON(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		r          BulkReplay
		wantFilter map[string]any
	}{
		{"empty filter", BulkReplay{ID: "rpl_1", State: ReplayDone, CreatedAt: t0}, map[string]any{}},
		{"full filter", BulkReplay{ID: "rpl_2", State: ReplayRunning, CreatedAt: t0,
			Filter: Filter{Status: StatusFailed, ClientID: "cl_a", Since: t0, Until: t0.Add(time.Hour)}},
			map[string]any{"status": "FAILED", "clientId": "cl_a", "since": "2025-03-01T12:00:00Z", "until": "2025-03-01T13:00:00Z"}},
	}
	for _, tt := range tests {
		raw, err := json.Marshal(tt.r)
		if err != nil {
			t.Fatalf("%s: Marshal = %v", tt.name, err)
		}
		var got map[string]any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		if got["replayId"] != tt.r.ID || got["state"] != tt.r.State {
			t.Errorf("%s: JSON %s, want replayId %s, state %s", tt.name, raw, tt.r.ID, tt.r.State)
		}
		f, _ := got["filter"].(map[string]any)
		if len(f) != len(tt.wantFilter) {
			t.Errorf("%s: JSON filter = %v, want %v", tt.name, f, tt.wantFilter)
		}
		for k, v := range tt.wantFilter {
			if f[k] != v {
				t.Errorf("%s: JSON filter[%s] = %v, want %v", tt.name, k, f[k], v)
			}
		}
		if _, ok := got["cursor"]; ok {
			t.Errorf("%s: JSON %s exposes the cursor", tt.name, raw)
		}
	}
}

// Running bulk replays are tracked until done; StaleReplays finds those
// without progress for longer than grace.
func TestStaleReplays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	r := newReceiver(t, status(410))
	e.deliver(t, msg("cl_a", r.URL))

	start := e.clock.Now()
	running, err := e.d.StartBulkReplay(ctx, Filter{Status: StatusFailed}, false)
	if err != nil {
		t.Fatal(err)
	}
	dry, err := e.d.StartBulkReplay(ctx, Filter{Status: StatusFailed}, true)
	if err != nil {
		t.Fatal(err)
	}
	finished, err := e.d.StartBulkReplay(ctx, Filter{Status: StatusDelivered}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.d.RunBulkReplay(ctx, finished.ID); err != nil {
		t.Fatal(err)
	}
	expired, err := e.d.StartBulkReplay(ctx, Filter{ClientID: "cl_z"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.Del(ctx, replayKey(expired.ID)).Err(); err != nil {
		t.Fatal(err)
	}
	members, _ := e.rdb.SMembers(ctx, runningReplaysKey).Result()
	slices.Sort(members)
	if want := sorted(running.ID, expired.ID); !slices.Equal(members, want) {
		t.Errorf("running set = %v, want %v (not the dry run %s nor the finished %s)", members, want, dry.ID, finished.ID)
	}

	tests := []struct {
		name  string
		now   time.Time
		grace time.Duration
		want  []string
	}{
		{"fresh", start.Add(time.Minute), 5 * time.Minute, nil},
		{"exactly grace", start.Add(5 * time.Minute), 5 * time.Minute, nil},
		{"stale", start.Add(10 * time.Minute), 5 * time.Minute, []string{running.ID}},
	}
	for _, tt := range tests {
		var got []string
		if err := e.store.StaleReplays(ctx, tt.now, tt.grace, func(id string) error { got = append(got, id); return nil }); err != nil {
			t.Fatalf("%s: StaleReplays = %v", tt.name, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: StaleReplays(now %v, grace %v) = %v, want %v", tt.name, tt.now, tt.grace, got, tt.want)
		}
	}
	// The expired replay left the set.
	if ok, _ := e.rdb.SIsMember(ctx, runningReplaysKey, expired.ID).Result(); ok {
		t.Errorf("expired replay %s still in the running set", expired.ID)
	}
	if err := e.store.StaleReplays(ctx, start.Add(time.Hour), time.Minute, func(string) error { return errBoom }); !errors.Is(err, errBoom) {
		t.Errorf("StaleReplays with a failing fn = %v, want %v", err, errBoom)
	}
	// Once run, the replay is done and no longer stale.
	if err := e.d.RunBulkReplay(ctx, running.ID); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := e.store.StaleReplays(ctx, start.Add(time.Hour), time.Minute, func(id string) error { got = append(got, id); return nil }); err != nil || len(got) != 0 {
		t.Errorf("StaleReplays after the run = %v, %v, want none", got, err)
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }

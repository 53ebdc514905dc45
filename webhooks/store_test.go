package webhooks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/timeindex"
	"github.com/redis/go-redis/v9"
)

// storeFixture: deliveries created one minute apart from t0, alternating
// clients, in the statuses given.
type storeFixture struct {
	s       *Store
	rdb     *redis.Client
	t0      time.Time
	ids     []string // oldest first
	client  map[string]string
	status  map[string]Status
	created map[string]time.Time
}

func newStoreFixture(t *testing.T, statuses ...Status) *storeFixture {
	t.Helper()
	ctx := context.Background()
	rdb := redistest.Client(t)
	f := &storeFixture{s: NewStore(rdb, testRetention), rdb: rdb, t0: time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC),
		client: map[string]string{}, status: map[string]Status{}, created: map[string]time.Time{}}
	for i, st := range statuses {
		client := []string{"cl_a", "cl_b"}[i%2]
		m := msg(client, "http://127.0.0.1:9/hook")
		at := f.t0.Add(time.Duration(i) * time.Minute)
		d, err := f.s.Create(ctx, m, at, nil)
		if err != nil {
			t.Fatalf("Create(%s) = %v", m.ID, err)
		}
		if st != StatusPending {
			a := Attempt{Number: 1, StartedAt: at, URL: m.URL, StatusCode: 200, Outcome: OutcomeDelivered}
			if st == StatusFailed {
				a.StatusCode, a.ErrorClass, a.Error, a.Outcome = 410, ClassStatus, "receiver answered 410", OutcomeFailed
			}
			if err := f.s.record(ctx, d, a, st); err != nil {
				t.Fatalf("record(%s, %s) = %v", m.ID, st, err)
			}
		}
		f.ids = append(f.ids, m.ID)
		f.client[m.ID], f.status[m.ID], f.created[m.ID] = client, st, at
	}
	return f
}

// want lists the fixture ids matching fl, newest first.
func (f *storeFixture) want(fl Filter) []string {
	var out []string
	for i := len(f.ids) - 1; i >= 0; i-- {
		id := f.ids[i]
		c := f.created[id]
		if (fl.Status == "" || fl.Status == f.status[id]) && (fl.ClientID == "" || fl.ClientID == f.client[id]) &&
			(fl.Since.IsZero() || !c.Before(fl.Since)) && (fl.Until.IsZero() || c.Before(fl.Until)) {
			out = append(out, id)
		}
	}
	return out
}

func TestStoreListAndCount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	P, D, F := StatusPending, StatusDelivered, StatusFailed
	f := newStoreFixture(t, F, D, F, P, F, F, D, F, P, F, F)
	minute := func(n int) time.Time { return f.t0.Add(time.Duration(n) * time.Minute) }
	filters := []struct {
		name string
		f    Filter
	}{
		{"all", Filter{}},
		{"FAILED", Filter{Status: F}},
		{"DELIVERED", Filter{Status: D}},
		{"PENDING", Filter{Status: P}},
		{"client a", Filter{ClientID: "cl_a"}},
		{"client b FAILED", Filter{Status: F, ClientID: "cl_b"}},
		{"unknown client", Filter{ClientID: "cl_z"}},
		{"since minute 5", Filter{Since: minute(5)}},
		{"until minute 5", Filter{Until: minute(5)}},
		{"FAILED in [2m, 9m)", Filter{Status: F, Since: minute(2), Until: minute(9)}},
		{"client a FAILED in [1m, 7m)", Filter{Status: F, ClientID: "cl_a", Since: minute(1), Until: minute(7)}},
		{"empty window", Filter{Since: minute(5), Until: minute(5)}},
	}
	for _, tt := range filters {
		want := f.want(tt.f)
		for _, limit := range []int{1, 3, 4, 50} {
			var got []string
			cursor, pages := "", 0
			for {
				page, next, err := f.s.List(ctx, tt.f, limit, cursor)
				if err != nil {
					t.Fatalf("%s: List(limit %d, cursor %q) = %v", tt.name, limit, cursor, err)
				}
				if len(page) > limit {
					t.Errorf("%s: List(limit %d) returned %d", tt.name, limit, len(page))
				}
				for _, d := range page {
					got = append(got, d.ID)
					if d.Payload != nil {
						t.Errorf("%s: List returned a payload for %s", tt.name, d.ID)
					}
					if d.Status != f.status[d.ID] || d.ClientID != f.client[d.ID] || !d.CreatedAt.Equal(f.created[d.ID]) {
						t.Errorf("%s: List item %s = %s/%s/%v, want %s/%s/%v", tt.name, d.ID, d.Status, d.ClientID, d.CreatedAt,
							f.status[d.ID], f.client[d.ID], f.created[d.ID])
					}
				}
				pages++
				if next == "" || pages > 20 {
					break
				}
				cursor = next
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: List pages of %d = %v, want %v (newest first)", tt.name, limit, got, want)
			}
		}
		n, err := f.s.Count(ctx, tt.f)
		if err != nil || n != int64(len(want)) {
			t.Errorf("%s: Count = %d, %v, want %d", tt.name, n, err, len(want))
		}
	}
	// The default limit is 50.
	if page, next, err := f.s.List(ctx, Filter{}, 0, ""); err != nil || len(page) != len(f.ids) || next != "" {
		t.Errorf("List(limit 0) = %d items, next %q, %v, want all %d, no next", len(page), next, err, len(f.ids))
	}
	if _, _, err := f.s.List(ctx, Filter{}, 10, "not a cursor!"); !errors.Is(err, timeindex.ErrBadCursor) {
		t.Errorf("List(bad cursor) = %v, want ErrBadCursor", err)
	}
}

func TestStoreCreateAndGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	s := NewStore(rdb, testRetention)
	now := time.Date(2025, 6, 1, 10, 0, 0, 123456789, time.UTC)
	m := msg("cl_a", "http://127.0.0.1:9/hook")
	d, err := s.Create(ctx, m, now, nil)
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	want := Delivery{ID: m.ID, RequestID: m.RequestID, ClientID: m.ClientID, EventType: m.EventType, URL: m.URL,
		Status: StatusPending, CreatedAt: now, UpdatedAt: now, Payload: m.Body}
	if d.ID != want.ID || d.RequestID != want.RequestID || d.ClientID != want.ClientID || d.EventType != want.EventType ||
		d.URL != want.URL || d.Status != want.Status || d.Attempts != 0 || !d.CreatedAt.Equal(now) || !d.UpdatedAt.Equal(now) ||
		string(d.Payload) != string(m.Body) || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(now) ||
		d.LastAttemptAt != nil || d.DeliveredAt != nil || d.Replays != 0 {
		t.Errorf("Create(%+v) = %+v, want %+v with NextAttemptAt = CreatedAt", m, d, want)
	}
	// A second Create with the same id returns the first unchanged.
	m2 := m
	m2.URL, m2.Body = "http://127.0.0.1:9/other", []byte(`{}`)
	d2, err := s.Create(ctx, m2, now.Add(time.Hour), nil)
	if err != nil || d2.URL != m.URL || string(d2.Payload) != string(m.Body) || !d2.CreatedAt.Equal(now) {
		t.Errorf("second Create = %+v, %v, want the first delivery unchanged", d2, err)
	}
	if n, _ := s.Count(ctx, Filter{}); n != 1 {
		t.Errorf("Count after two Creates of one id = %d, want 1", n)
	}

	for _, get := range []struct {
		name string
		fn   func(context.Context, string) (Delivery, error)
	}{{"Get", s.Get}, {"GetWithAttempts", s.GetWithAttempts}} {
		if _, err := get.fn(ctx, "msg_unknown"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s(unknown) = %v, want ErrNotFound", get.name, err)
		}
	}
	// A corrupt log entry is skipped, the others are kept.
	a := Attempt{Number: 1, StartedAt: now, URL: m.URL, StatusCode: 500, ErrorClass: ClassStatus, Outcome: OutcomeRetry,
		NextAttemptAt: ptr(now.Add(5 * time.Second))}
	if err := s.record(ctx, d, a, StatusPending); err != nil {
		t.Fatal(err)
	}
	rdb.RPush(ctx, attemptsKey(m.ID), "{not json")
	got, err := s.GetWithAttempts(ctx, m.ID)
	if err != nil || len(got.AttemptLog) != 1 || got.AttemptLog[0].Number != 1 {
		t.Errorf("GetWithAttempts with a corrupt entry = %+v, %v, want the one good attempt", got.AttemptLog, err)
	}
	if got.LastAttemptAt == nil || !got.LastAttemptAt.Equal(now) || got.LastStatusCode != 500 || !got.UpdatedAt.Equal(now) {
		t.Errorf("after record: LastAttemptAt, LastStatusCode, UpdatedAt = %v, %d, %v, want %v, 500, %v",
			got.LastAttemptAt, got.LastStatusCode, got.UpdatedAt, now, now)
	}
	// record is guarded by the attempt number.
	if err := s.record(ctx, d, a, StatusPending); !errors.Is(err, timeindex.ErrGuard) {
		t.Errorf("record of attempt 1 twice = %v, want ErrGuard", err)
	}
}

// Every key of a delivery expires Retention after its last change.
func TestStoreTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	r := newReceiver(t, status(500))
	m := msg("cl_a", r.URL)
	e.deliver(t, m)
	br, err := e.d.StartBulkReplay(ctx, Filter{Status: StatusFailed}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{deliveryKey(m.ID), attemptsKey(m.ID), replayKey(br.ID)} {
		ttl, err := e.rdb.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < testRetention-time.Minute || ttl > testRetention {
			t.Errorf("PTTL(%s) = %v, want ≈ %v", key, ttl, testRetention)
		}
	}
}

func TestStoreStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	P, D, F := StatusPending, StatusDelivered, StatusFailed
	f := newStoreFixture(t, P, D, P, F, P, P)
	// Move the fourth PENDING one (minute 4) to a retry due at minute 30.
	d, err := f.s.Get(ctx, f.ids[4])
	if err != nil {
		t.Fatal(err)
	}
	if err := f.s.record(ctx, d, Attempt{Number: 1, StartedAt: f.t0.Add(4 * time.Minute), StatusCode: 500,
		Outcome: OutcomeRetry, NextAttemptAt: ptr(f.t0.Add(30 * time.Minute))}, P); err != nil {
		t.Fatal(err)
	}
	minute := func(n int) time.Time { return f.t0.Add(time.Duration(n) * time.Minute) }
	tests := []struct {
		name  string
		now   time.Time
		grace time.Duration
		want  []string // newest first
	}{
		{"before everything", minute(0), time.Minute, nil},
		{"minute 10, grace 2m", minute(10), 2 * time.Minute, []string{f.ids[5], f.ids[2], f.ids[0]}},
		{"minute 10, grace 6m", minute(10), 6 * time.Minute, []string{f.ids[2], f.ids[0]}},
		{"exactly at grace is not stale", minute(7), 5 * time.Minute, []string{f.ids[0]}},
		{"minute 40: the retry is overdue too", minute(40), 5 * time.Minute, []string{f.ids[5], f.ids[4], f.ids[2], f.ids[0]}},
	}
	for _, tt := range tests {
		var got []string
		if err := f.s.Stale(ctx, tt.now, tt.grace, func(d Delivery) error { got = append(got, d.ID); return nil }); err != nil {
			t.Fatalf("%s: Stale = %v", tt.name, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: Stale(now %v, grace %v) = %v, want %v", tt.name, tt.now, tt.grace, got, tt.want)
		}
	}
	calls := 0
	err = f.s.Stale(ctx, minute(60), time.Minute, func(Delivery) error { calls++; return errBoom })
	if !errors.Is(err, errBoom) || calls != 1 {
		t.Errorf("Stale with a failing fn = %v after %d calls, want %v after 1", err, calls, errBoom)
	}
}

// Stale pages through more than one page of PENDING deliveries.
func TestStoreStaleManyPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewStore(redistest.Client(t), testRetention)
	t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	const n = 1234
	for i := 0; i < n; i++ {
		m := Message{ID: fmt.Sprintf("msg_stale_%05d", i), ClientID: "cl_a", URL: "http://127.0.0.1:9/"}
		if _, err := s.Create(ctx, m, t0.Add(time.Duration(i)*time.Millisecond), nil); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	if err := s.Stale(ctx, t0.Add(time.Hour), time.Minute, func(d Delivery) error { seen[d.ID] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Errorf("Stale found %d distinct deliveries, want %d", len(seen), n)
	}
}

func TestStoreTrim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	P, D, F := StatusPending, StatusDelivered, StatusFailed
	f := newStoreFixture(t, F, D, P, F, F, D)
	// ids[0] (a, FAILED), ids[1] (b, DELIVERED) and ids[5] (b, DELIVERED)
	// "expire"; ids[5] is created after the cutoff.
	gone := []string{f.ids[0], f.ids[1], f.ids[5]}
	for _, id := range gone {
		if err := f.rdb.Del(ctx, deliveryKey(id)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	cutoff := f.t0.Add(4 * time.Minute)
	removed, err := f.s.Trim(ctx, []string{"cl_a", "cl_b"}, cutoff)
	if err != nil {
		t.Fatalf("Trim = %v", err)
	}
	// Each record sits in 4 indexes: all, status, client, client+status.
	if removed != 2*4 {
		t.Errorf("Trim(cutoff minute 4) removed %d index entries, want 8 (two expired records × 4 indexes)", removed)
	}
	wantIndexed := []string{f.ids[5], f.ids[4], f.ids[3], f.ids[2]} // ids[5] is after the cutoff
	tests := []struct {
		name string
		fl   Filter
		want []string
	}{
		{"all", Filter{}, wantIndexed},
		{"FAILED", Filter{Status: F}, []string{f.ids[4], f.ids[3]}},
		{"DELIVERED", Filter{Status: D}, []string{f.ids[5]}},
		{"client a", Filter{ClientID: "cl_a"}, []string{f.ids[4], f.ids[2]}},
		{"client b DELIVERED", Filter{Status: D, ClientID: "cl_b"}, []string{f.ids[5]}},
	}
	for _, tt := range tests {
		members, err := f.rdb.ZRevRange(ctx, family.Key(string(tt.fl.Status), tt.fl.ClientID), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range members {
			got = append(got, timeindex.ID(m))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("index %s after Trim = %v, want %v", tt.name, got, tt.want)
		}
	}
	for _, id := range []string{f.ids[2], f.ids[3], f.ids[4]} {
		if _, err := f.s.Get(ctx, id); err != nil {
			t.Errorf("Get(%s) after Trim = %v, want it kept", id, err)
		}
	}
	if removed, err := f.s.Trim(ctx, []string{"cl_a", "cl_b"}, cutoff); err != nil || removed != 0 {
		t.Errorf("second Trim = %d, %v, want 0, nil", removed, err)
	}
}

// A store whose Redis is gone reports errors rather than empty results.
func TestStoreRedisDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	rdb.Close()
	s := NewStore(rdb, testRetention)
	d := NewDispatcher(DispatcherOptions{Store: s, Secrets: &fakeSecrets{}, Scheduler: &fakeScheduler{}, Replays: &fakeStarter{},
		Policy: testPolicy(), Timeout: time.Second})
	m := msg("cl_a", "http://127.0.0.1:9/")
	checks := []struct {
		name string
		err  func() error
	}{
		{"Create", func() error { _, err := s.Create(ctx, m, time.Now(), nil); return err }},
		{"Get", func() error { _, err := s.Get(ctx, m.ID); return err }},
		{"GetWithAttempts", func() error { _, err := s.GetWithAttempts(ctx, m.ID); return err }},
		{"List", func() error { _, _, err := s.List(ctx, Filter{}, 10, ""); return err }},
		{"Count", func() error { _, err := s.Count(ctx, Filter{}); return err }},
		{"Stale", func() error { return s.Stale(ctx, time.Now(), time.Minute, func(Delivery) error { return nil }) }},
		{"Trim", func() error { _, err := s.Trim(ctx, nil, time.Now()); return err }},
		{"getMany", func() error { _, err := s.getMany(ctx, []string{"x"}); return err }},
		{"Deliver", func() error { _, err := d.Deliver(ctx, m, nil); return err }},
		{"Attempt", func() error { return d.Attempt(ctx, m.ID, 1) }},
		{"Replay", func() error { _, err := d.Replay(ctx, m.ID); return err }},
		{"StartBulkReplay", func() error { _, err := d.StartBulkReplay(ctx, Filter{}, false); return err }},
		{"GetReplay", func() error { _, err := d.GetReplay(ctx, "rpl_x"); return err }},
		{"saveReplay", func() error { return s.saveReplay(ctx, BulkReplay{ID: "rpl_x"}) }},
		{"StaleReplays", func() error { return s.StaleReplays(ctx, time.Now(), time.Minute, func(string) error { return nil }) }},
		{"reopen", func() error {
			_, err := s.reopen(ctx, m.ID, time.Now())
			return err
		}},
	}
	for _, c := range checks {
		err := c.err()
		if err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("%s with Redis down = %v, want a Redis error", c.name, err)
		}
	}
}

// RunBulkReplay with Redis failing after the replay was read.
func TestRunBulkReplayListFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	r, err := e.d.StartBulkReplay(ctx, Filter{Status: StatusFailed}, false)
	if err != nil {
		t.Fatal(err)
	}
	// A cursor that List rejects, as if a corrupt replay had been saved.
	if err := e.rdb.HSet(ctx, replayKey(r.ID), "cursor", "!!").Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RunBulkReplay(ctx, r.ID); !errors.Is(err, timeindex.ErrBadCursor) {
		t.Errorf("RunBulkReplay with a bad saved cursor = %v, want ErrBadCursor", err)
	}
}

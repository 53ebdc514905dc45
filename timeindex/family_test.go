package timeindex_test

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/timeindex"
	"github.com/redis/go-redis/v9"
)

var fam = timeindex.Family{Base: "t:idx", Statuses: []string{"NEW", "DONE"}, HashKey: func(id string) string { return "t:rec:" + id }}

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// members lists an index's ids in lexical (time) order.
func members(t *testing.T, rdb *redis.Client, key string) []string {
	t.Helper()
	ms, err := rdb.ZRange(context.Background(), key, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, m := range ms {
		out = append(out, timeindex.ID(m))
	}
	return out
}

func TestFamilyKey(t *testing.T) {
	tests := []struct{ status, client, want string }{
		{"", "", "t:idx"},
		{"NEW", "", "t:idx:s:NEW"},
		{"", "c1", "t:idx:c:c1"},
		{"NEW", "c1", "t:idx:c:c1:s:NEW"},
	}
	for _, tc := range tests {
		if got := fam.Key(tc.status, tc.client); got != tc.want {
			t.Errorf("Key(%q, %q) = %q, want %q", tc.status, tc.client, got, tc.want)
		}
	}
}

func TestFamilyCreate(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	rec := timeindex.Record{ID: "r1", ClientID: "c1", Status: "NEW", CreatedAt: base, TTL: time.Hour,
		Fields: []any{"a", "1", "empty", ""}}
	created, existing, err := fam.Create(ctx, rdb, rec)
	if err != nil || !created || existing != "" {
		t.Fatalf("Create = %v, %q, %v; want created", created, existing, err)
	}
	h := rdb.HGetAll(ctx, "t:rec:r1").Val()
	if want := map[string]string{"status": "NEW", "a": "1"}; !reflect.DeepEqual(h, want) {
		t.Errorf("record = %v, want %v (empty values are not written)", h, want)
	}
	if ttl := rdb.PTTL(ctx, "t:rec:r1").Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("record TTL = %v, want at most 1h", ttl)
	}
	for _, key := range []string{"t:idx", "t:idx:s:NEW", "t:idx:c:c1", "t:idx:c:c1:s:NEW"} {
		if got := members(t, rdb, key); !reflect.DeepEqual(got, []string{"r1"}) {
			t.Errorf("index %s = %v, want [r1]", key, got)
		}
	}
	// The same id again writes nothing.
	rec.Fields = []any{"a", "2"}
	created, existing, err = fam.Create(ctx, rdb, rec)
	if err != nil || created || existing != "" {
		t.Errorf("Create of an existing record = %v, %q, %v; want not created", created, existing, err)
	}
	if got := rdb.HGet(ctx, "t:rec:r1", "a").Val(); got != "1" {
		t.Errorf("a second Create overwrote the record: a = %q", got)
	}
}

func TestFamilyCreateIdempotencyClaim(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	rec := func(id string) timeindex.Record {
		return timeindex.Record{ID: id, ClientID: "c1", Status: "NEW", CreatedAt: base, TTL: time.Hour,
			IdemKey: "t:idem:k", IdemValue: id + " hash", IdemTTL: time.Minute}
	}
	tests := []struct {
		id           string
		wantCreated  bool
		wantExisting string
	}{
		{"r1", true, ""},
		{"r2", false, "r1 hash"}, // the claim stops a second record
		{"r1", false, "r1 hash"},
	}
	for _, tc := range tests {
		created, existing, err := fam.Create(ctx, rdb, rec(tc.id))
		if err != nil || created != tc.wantCreated || existing != tc.wantExisting {
			t.Errorf("Create(%s) = %v, %q, %v; want %v, %q", tc.id, created, existing, err, tc.wantCreated, tc.wantExisting)
		}
	}
	if rdb.Exists(ctx, "t:rec:r2").Val() != 0 {
		t.Error("a record was written although the idempotency key was taken")
	}
	if ttl := rdb.PTTL(ctx, "t:idem:k").Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("claim TTL = %v, want at most 1m", ttl)
	}
}

func TestFamilyTransition(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	if _, _, err := fam.Create(ctx, rdb, timeindex.Record{ID: "r1", ClientID: "c1", Status: "NEW", CreatedAt: base, TTL: time.Hour,
		Fields: []any{"n", "0", "gone", "x"}}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name     string
		change   timeindex.Change
		wantPrev string
		wantErr  error
		// record fields after the step
		wantFields map[string]string
	}{
		{"wrong status", timeindex.Change{From: []string{"DONE"}, To: "NEW"}, "NEW", timeindex.ErrWrongStatus,
			map[string]string{"status": "NEW", "n": "0", "gone": "x"}},
		{"guard mismatch", timeindex.Change{GuardField: "n", GuardValue: "7", Fields: []any{"n", "8"}}, "NEW", timeindex.ErrGuard,
			map[string]string{"status": "NEW", "n": "0", "gone": "x"}},
		{"missing guard field reads empty", timeindex.Change{GuardField: "nope", GuardValue: "", Fields: []any{"n", "1"}}, "NEW", nil,
			map[string]string{"status": "NEW", "n": "1", "gone": "x"}},
		{"fields only, status kept", timeindex.Change{From: []string{"NEW"}, Fields: []any{"gone", ""}}, "NEW", nil,
			map[string]string{"status": "NEW", "n": "1"}},
		{"to DONE with push", timeindex.Change{From: []string{"DONE", "NEW"}, To: "DONE", GuardField: "n", GuardValue: "1",
			Fields: []any{"n", "2"}, PushKey: "t:log", PushValue: "e1", PushCap: 2}, "NEW", nil,
			map[string]string{"status": "DONE", "n": "2"}},
		{"same status again, any from", timeindex.Change{To: "DONE", PushKey: "t:log", PushValue: "e2", PushCap: 2}, "DONE", nil,
			map[string]string{"status": "DONE", "n": "2"}},
		{"push past the cap", timeindex.Change{PushKey: "t:log", PushValue: "e3", PushCap: 2}, "DONE", nil,
			map[string]string{"status": "DONE", "n": "2"}},
	}
	for _, s := range steps {
		c := s.change
		c.ID, c.ClientID, c.CreatedAt, c.TTL = "r1", "c1", base, time.Hour
		prev, err := fam.Transition(ctx, rdb, c)
		if !errors.Is(err, s.wantErr) || prev != s.wantPrev {
			t.Errorf("Transition(%s) = %q, %v; want %q, %v", s.name, prev, err, s.wantPrev, s.wantErr)
		}
		if got := rdb.HGetAll(ctx, "t:rec:r1").Val(); !reflect.DeepEqual(got, s.wantFields) {
			t.Errorf("after Transition(%s): record %v, want %v", s.name, got, s.wantFields)
		}
	}
	indexes := map[string][]string{
		"t:idx": {"r1"}, "t:idx:s:NEW": {}, "t:idx:s:DONE": {"r1"},
		"t:idx:c:c1": {"r1"}, "t:idx:c:c1:s:NEW": {}, "t:idx:c:c1:s:DONE": {"r1"},
	}
	for key, want := range indexes {
		if got := members(t, rdb, key); !reflect.DeepEqual(got, want) {
			t.Errorf("index %s = %v, want %v", key, got, want)
		}
	}
	if got := rdb.LRange(ctx, "t:log", 0, -1).Val(); !reflect.DeepEqual(got, []string{"e2", "e3"}) {
		t.Errorf("pushed list = %v, want the last 2: [e2 e3]", got)
	}
	if ttl := rdb.PTTL(ctx, "t:log").Val(); ttl <= 0 {
		t.Errorf("pushed list TTL = %v, want the record's", ttl)
	}
	if _, err := fam.Transition(ctx, rdb, timeindex.Change{ID: "nope", To: "DONE", TTL: time.Hour}); !errors.Is(err, timeindex.ErrNoRecord) {
		t.Errorf("Transition of a missing record = %v, want ErrNoRecord", err)
	}
	if rdb.Exists(ctx, "t:rec:nope").Val() != 0 {
		t.Error("Transition of a missing record created it")
	}
}

func TestFamilyDelete(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name          string
		idemKey       string
		idemValue     string
		claimHolds    string // the value the claim holds before Delete
		wantClaimLeft bool
	}{
		{"with its claim", "t:idem:k", "r1 h", "r1 h", false},
		{"claim taken over", "t:idem:k", "r1 h", "r9 h", true},
		{"no claim", "", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rdb := redistest.Client(t)
			if _, _, err := fam.Create(ctx, rdb, timeindex.Record{ID: "r1", ClientID: "c1", Status: "NEW", CreatedAt: base, TTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
			if _, err := fam.Transition(ctx, rdb, timeindex.Change{ID: "r1", ClientID: "c1", CreatedAt: base, To: "DONE", TTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
			if tc.claimHolds != "" {
				rdb.Set(ctx, tc.idemKey, tc.claimHolds, 0)
			}
			if err := fam.Delete(ctx, rdb, "r1", "c1", base, tc.idemKey, tc.idemValue); err != nil {
				t.Fatal(err)
			}
			keys := rdb.Keys(ctx, "*").Val()
			sort.Strings(keys)
			var want []string
			if tc.wantClaimLeft {
				want = []string{tc.idemKey}
			}
			if !reflect.DeepEqual(keys, want) && !(len(keys) == 0 && len(want) == 0) {
				t.Errorf("keys after Delete = %v, want %v", keys, want)
			}
			// Deleting again is harmless.
			if err := fam.Delete(ctx, rdb, "r1", "c1", base, tc.idemKey, tc.idemValue); err != nil {
				t.Errorf("second Delete: %v", err)
			}
		})
	}
}

func TestFamilyCount(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	for i, c := range []string{"c1", "c1", "c2", "c1"} {
		if _, _, err := fam.Create(ctx, rdb, timeindex.Record{ID: string(rune('a' + i)), ClientID: c, Status: "NEW",
			CreatedAt: base.Add(time.Duration(i) * time.Hour), TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		status, client string
		since, until   time.Time
		want           int64
	}{
		{"", "", time.Time{}, time.Time{}, 4},
		{"NEW", "", time.Time{}, time.Time{}, 4},
		{"DONE", "", time.Time{}, time.Time{}, 0},
		{"", "c1", time.Time{}, time.Time{}, 3},
		{"NEW", "c2", time.Time{}, time.Time{}, 1},
		{"", "", base.Add(time.Hour), time.Time{}, 3},
		{"", "", time.Time{}, base.Add(time.Hour), 1},
		{"", "c1", base.Add(time.Hour), base.Add(3 * time.Hour), 1},
		{"", "", base.Add(time.Hour), base.Add(time.Hour), 0},
	}
	for _, tc := range tests {
		got, err := fam.Count(ctx, rdb, tc.status, tc.client, tc.since, tc.until)
		if err != nil || got != tc.want {
			t.Errorf("Count(%q, %q, %v, %v) = %d, %v; want %d", tc.status, tc.client, tc.since, tc.until, got, err, tc.want)
		}
	}
}

func TestFamilyTrim(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	// 1200 expired records (more than one batch of 500) and some live ones,
	// all before the cutoff, plus an expired one after it.
	const expired = 1200
	for i := 0; i < expired+3; i++ {
		id := "old" + itoa4(i)
		if _, _, err := fam.Create(ctx, rdb, timeindex.Record{ID: id, ClientID: "c1", Status: "NEW",
			CreatedAt: base.Add(time.Duration(i) * time.Millisecond), TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if i < expired {
			rdb.Del(ctx, "t:rec:"+id)
		}
	}
	if _, _, err := fam.Create(ctx, rdb, timeindex.Record{ID: "late", ClientID: "c1", Status: "NEW", CreatedAt: base.Add(time.Hour), TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	rdb.Del(ctx, "t:rec:late")
	cutoff := base.Add(time.Minute)

	n, err := fam.Trim(ctx, rdb, nil, cutoff)
	if err != nil || n != 2*expired {
		t.Errorf("Trim(global) = %d, %v; want %d (all + status index)", n, err, 2*expired)
	}
	n, err = fam.Trim(ctx, rdb, []string{"c1", "c2"}, cutoff)
	if err != nil || n != 2*expired {
		t.Errorf("Trim(c1, c2) = %d, %v; want %d", n, err, 2*expired)
	}
	want := []string{"old1200", "old1201", "old1202", "late"}
	for _, key := range []string{"t:idx", "t:idx:s:NEW", "t:idx:c:c1", "t:idx:c:c1:s:NEW"} {
		if got := members(t, rdb, key); !reflect.DeepEqual(got, want) {
			t.Errorf("index %s after Trim = %v, want %v", key, got, want)
		}
	}
	if n, err := fam.Trim(ctx, rdb, []string{"c1"}, cutoff); err != nil || n != 0 {
		t.Errorf("second Trim = %d, %v; want 0", n, err)
	}
}

func TestFamilyErrorsOnClosedRedis(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	rdb.Close()
	if _, _, err := fam.Create(ctx, rdb, timeindex.Record{ID: "r1", Status: "NEW", CreatedAt: base}); err == nil {
		t.Error("Create over a closed client succeeded")
	}
	if _, err := fam.Transition(ctx, rdb, timeindex.Change{ID: "r1", To: "DONE"}); err == nil || errors.Is(err, timeindex.ErrNoRecord) {
		t.Errorf("Transition over a closed client = %v, want a store error", err)
	}
	if _, err := fam.Trim(ctx, rdb, nil, base); err == nil {
		t.Error("Trim over a closed client succeeded")
	}
	if _, _, err := timeindex.Page(ctx, rdb, "t:idx", timeindex.Query{}); err == nil {
		t.Error("Page over a closed client succeeded")
	}
}

func TestPageCursorWithUntil(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	for i := 0; i < 6; i++ {
		rdb.ZAdd(ctx, "k", redisZ(timeindex.Member(base.Add(time.Duration(i)*time.Second), "id"+itoa4(i))))
	}
	// The cursor and Until both bound the page from above; the tighter wins.
	first, next, err := timeindex.Page(ctx, rdb, "k", timeindex.Query{Limit: 2, Until: base.Add(5 * time.Second)})
	if err != nil || !reflect.DeepEqual(first, []string{"id0004", "id0003"}) || next == "" {
		t.Fatalf("first page = %v, %q, %v; want [id0004 id0003] and a cursor", first, next, err)
	}
	rest, next, err := timeindex.Page(ctx, rdb, "k", timeindex.Query{Limit: 10, Until: base.Add(5 * time.Second), Cursor: next})
	if err != nil || !reflect.DeepEqual(rest, []string{"id0002", "id0001", "id0000"}) || next != "" {
		t.Errorf("second page = %v, %q, %v; want [id0002 id0001 id0000] and no cursor", rest, next, err)
	}
	// A cursor from a later page than Until allows: Until wins.
	late, lateCursor, err := timeindex.Page(ctx, rdb, "k", timeindex.Query{Limit: 1})
	if err != nil || lateCursor == "" {
		t.Fatalf("newest page = %v, %q, %v", late, lateCursor, err)
	}
	got, _, err := timeindex.Page(ctx, rdb, "k", timeindex.Query{Until: base.Add(2 * time.Second), Cursor: lateCursor})
	if err != nil || !reflect.DeepEqual(got, []string{"id0001", "id0000"}) {
		t.Errorf("page after %v with Until 2s = %v, %v; want [id0001 id0000]", late, got, err)
	}
	// Limit 0 means 50.
	all, _, err := timeindex.Page(ctx, rdb, "k", timeindex.Query{})
	if err != nil || len(all) != 6 {
		t.Errorf("Page with no limit = %v, %v; want all 6", all, err)
	}
}

func TestHelpers(t *testing.T) {
	if got := timeindex.Prefix(time.UnixMilli(-5)); got != timeindex.Prefix(time.UnixMilli(0)) {
		t.Errorf("Prefix(before 1970) = %q, want the prefix of 0", got)
	}
	if got := timeindex.ID("short"); got != "short" {
		t.Errorf("ID(short) = %q, want it unchanged", got)
	}
	if got := timeindex.ID(timeindex.Member(base, "x1")); got != "x1" {
		t.Errorf("ID(Member(t, x1)) = %q", got)
	}
	if timeindex.EncodeCursor("") != "" {
		t.Error(`EncodeCursor("") is not ""`)
	}
	if m, err := timeindex.DecodeCursor(""); m != "" || err != nil {
		t.Errorf(`DecodeCursor("") = %q, %v; want "", nil`, m, err)
	}
	m := timeindex.Member(base, "x1")
	if got, err := timeindex.DecodeCursor(timeindex.EncodeCursor(m)); got != m || err != nil {
		t.Errorf("DecodeCursor(EncodeCursor(%q)) = %q, %v", m, got, err)
	}
	// A member that is only a prefix is not a cursor.
	if _, err := timeindex.DecodeCursor(timeindex.EncodeCursor(timeindex.Prefix(base))); !errors.Is(err, timeindex.ErrBadCursor) {
		t.Errorf("DecodeCursor(prefix only) = %v, want ErrBadCursor", err)
	}
}

func itoa4(i int) string {
	b := []byte("0000")
	for j := 3; j >= 0; j-- {
		b[j] = byte('0' + i%10)
		i /= 10
	}
	return string(b)
}

package redisstore_test

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/webhooks"
)

func TestRecordAttemptRetryThenDelivered(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	d := delivery(t, s, "cli_a", t0, 0)

	// Attempt 1: 503, retried a minute later.
	start1 := d.CreatedAt.Add(5*time.Millisecond + 777) // sub-millisecond parts are not kept
	a1 := attempt(d, 1, start1, false)
	if err := s.RecordAttempt(ctx, d, a1, webhooks.StatusPending); err != nil {
		t.Fatalf("RecordAttempt(1, PENDING) = %v", err)
	}
	got := getDelivery(t, s, d.ID, true)
	startMs := start1.Truncate(time.Millisecond)
	next := a1.NextAttemptAt.Truncate(time.Millisecond)
	want := d
	want.Attempts, want.LastAttemptAt, want.NextAttemptAt, want.LastStatusCode, want.LastError = 1, &startMs, &next, 503, a1.Error
	want.UpdatedAt = startMs.Add(12 * time.Millisecond)
	wantA := a1
	wantA.StartedAt, wantA.NextAttemptAt, wantA.Signatures = startMs, &next, 0
	want.AttemptLog = []webhooks.Attempt{wantA}
	if asJSON(got) != asJSON(want) {
		t.Errorf("after attempt 1:\n got %s\nwant %s", asJSON(got), asJSON(want))
	}
	if h := got.AttemptLog[0].RequestHeaders; !maps.Equal(h, a1.RequestHeaders) {
		t.Errorf("request headers rebuilt = %v, want those sent %v", h, a1.RequestHeaders)
	}
	if due, _ := dueAt(t, s, rdb, d.RequestID); !due.Equal(next.Add(recoverAfter)) {
		t.Errorf("due after a retry = %v, want next attempt + RecoverAfter = %v", due, next.Add(recoverAfter))
	}

	// The guard: attempt 1 again, from the stale read or from a fresh one,
	// and attempt 3 before 2, write nothing.
	before := snapshot(t, rdb)
	for _, tc := range []struct {
		name string
		d    webhooks.Delivery
		a    webhooks.Attempt
	}{
		{"attempt 1 again, stale read", d, attempt(d, 1, start1.Add(time.Second), true)},
		{"attempt 2, stale read", d, attempt(d, 2, start1.Add(time.Second), true)},
		{"attempt 1 again, fresh read", got, attempt(got, 1, start1.Add(time.Second), true)},
		{"attempt 3 before 2", got, attempt(got, 3, start1.Add(time.Second), true)},
	} {
		if err := s.RecordAttempt(ctx, tc.d, tc.a, webhooks.StatusDelivered); !errors.Is(err, webhooks.ErrStale) {
			t.Errorf("RecordAttempt(%s) = %v, want ErrStale", tc.name, err)
		}
	}
	unchanged(t, rdb, before, "stale RecordAttempt")

	// Attempt 2 delivers: off the recovery schedule.
	start2 := next.Add(3 * time.Millisecond)
	a2 := attempt(got, 2, start2, true)
	if err := s.RecordAttempt(ctx, got, a2, webhooks.StatusDelivered); err != nil {
		t.Fatalf("RecordAttempt(2, DELIVERED) = %v", err)
	}
	final := getDelivery(t, s, d.ID, true)
	want.Status, want.Attempts, want.LastAttemptAt, want.NextAttemptAt, want.LastStatusCode, want.LastError = webhooks.StatusDelivered, 2, &start2, nil, 204, ""
	want.DeliveredAt, want.UpdatedAt = &start2, start2.Add(12*time.Millisecond)
	wantA2 := a2
	wantA2.Signatures = 0
	want.AttemptLog = []webhooks.Attempt{wantA, wantA2}
	if asJSON(final) != asJSON(want) {
		t.Errorf("after attempt 2:\n got %s\nwant %s", asJSON(final), asJSON(want))
	}
	if due, ok := dueAt(t, s, rdb, d.RequestID); ok {
		t.Errorf("a DELIVERED delivery is still on the recovery schedule, at %v", due)
	}
	for _, k := range []string{"dlv:f", "dlv:f:cli_a"} {
		if _, ok := score(t, rdb, keyOf(s, d.ID, k), ids.TimePrefix(d.CreatedAt)+ids.Body(d.ID)); ok {
			t.Errorf("a DELIVERED delivery is in %s", k)
		}
	}
	before = snapshot(t, rdb)
	if err := s.RecordAttempt(ctx, final, attempt(final, 3, start2, true), webhooks.StatusDelivered); !errors.Is(err, webhooks.ErrStale) {
		t.Errorf("RecordAttempt on a DELIVERED delivery = %v, want ErrStale", err)
	}
	if err := s.PostponeDelivery(ctx, final, 3, start2.Add(time.Minute), webhooks.DeferHostBusy); !errors.Is(err, webhooks.ErrStale) {
		t.Errorf("PostponeDelivery of a DELIVERED delivery = %v, want ErrStale", err)
	}
	unchanged(t, rdb, before, "writes to a DELIVERED delivery")
}

func TestRecordAttemptFailed(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{Partitions: 4})
	ctx := context.Background()
	d := delivery(t, s, "cli_b", t0, 3)
	a := attempt(d, 1, d.CreatedAt.Add(time.Millisecond), false)
	a.StatusCode, a.Outcome, a.NextAttemptAt, a.Error = 410, webhooks.OutcomeFailed, nil, "receiver answered 410"
	if err := s.RecordAttempt(ctx, d, a, webhooks.StatusFailed); err != nil {
		t.Fatalf("RecordAttempt(FAILED) = %v", err)
	}
	got := getDelivery(t, s, d.ID, false)
	if got.Status != webhooks.StatusFailed || got.Attempts != 1 || got.NextAttemptAt != nil || got.DeliveredAt != nil || got.LastStatusCode != 410 {
		t.Errorf("after a final failure: %s", asJSON(got))
	}
	member := ids.TimePrefix(d.CreatedAt) + ids.Body(d.ID)
	for _, k := range []string{"dlv:f", "dlv:f:cli_b"} {
		if _, ok := score(t, rdb, keyOf(s, d.ID, k), member); !ok {
			t.Errorf("a FAILED delivery is not in %s", keyOf(s, d.ID, k))
		}
	}
	if due, ok := dueAt(t, s, rdb, d.RequestID); ok {
		t.Errorf("a FAILED delivery is still on the recovery schedule, at %v", due)
	}
	for _, f := range []webhooks.Filter{{Status: webhooks.StatusFailed}, {Status: webhooks.StatusFailed, ClientID: "cli_b"}} {
		if l, _, err := s.ListDeliveries(ctx, f, 10, ""); err != nil || len(l) != 1 || l[0].ID != d.ID {
			t.Errorf("ListDeliveries(%+v) = %v, %v; want %s", f, l, err, d.ID)
		}
	}
}

func TestAttemptLogKeepsTheLast100(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	d := delivery(t, s, "cli_a", t0, 0)
	start := d.CreatedAt
	for n := 1; n <= 105; n++ {
		a := attempt(d, n, start, false)
		if err := s.RecordAttempt(ctx, d, a, webhooks.StatusPending); err != nil {
			t.Fatalf("RecordAttempt(%d) = %v", n, err)
		}
		d = getDelivery(t, s, d.ID, false)
		start = a.NextAttemptAt.Add(time.Millisecond)
	}
	got := getDelivery(t, s, d.ID, true)
	if got.Attempts != 105 || len(got.AttemptLog) != 100 {
		t.Fatalf("after 105 attempts: attempts %d, log of %d; want 105 and 100", got.Attempts, len(got.AttemptLog))
	}
	for i, a := range got.AttemptLog {
		if a.Number != i+6 {
			t.Fatalf("log entry %d is attempt %d, want %d (the last 100, in order)", i, a.Number, i+6)
		}
	}
	fields, err := rdb.HLen(ctx, recordKey(s, d.ID)).Result()
	if err != nil || fields > 100+6 {
		t.Errorf("the record has %d fields (%v): the log is not trimmed", fields, err)
	}
}

func TestAttemptRoundTrip(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, redisstore.Options{})
	ctx := context.Background()
	d := delivery(t, s, "cli_a", t0, 0)
	start := d.CreatedAt.Add(time.Millisecond)
	tests := []struct {
		name   string
		a      webhooks.Attempt
		status webhooks.Status
	}{
		{"answered, many headers, two signatures", func() webhooks.Attempt {
			a := attempt(d, 1, start, false)
			a.Signatures = 2
			a.RequestHeaders = webhooks.RequestHeaders(d, start.Unix(), "Boomerang/test", 2)
			a.ResponseHeaders = map[string]string{"X-Empty": "", "X-Quote": `"a,b"`, "Set-Cookie": "a=1; b=2", "X-Utf8": "é☃"}
			a.ResponseBody = "{\"error\":\"<no>\"}\n\x01"
			return a
		}(), webhooks.StatusPending},
		{"no answer: a connect error", func() webhooks.Attempt {
			a := attempt(d, 2, start.Add(2*time.Minute), false)
			a.StatusCode, a.ResponseHeaders, a.ResponseBody = 0, nil, ""
			a.ErrorClass, a.Error = webhooks.ClassConnect, "dial tcp 10.0.0.1:443: connection refused"
			return a
		}(), webhooks.StatusPending},
		{"short-circuited: nothing sent", func() webhooks.Attempt {
			a := attempt(d, 3, start.Add(4*time.Minute), false)
			a.StatusCode, a.ResponseHeaders, a.ResponseBody, a.RequestHeaders, a.DurationMs = 0, nil, "", nil, 0
			a.ErrorClass, a.Error = webhooks.ClassCircuit, "not sent: host-circuit-open (5 failures)"
			return a
		}(), webhooks.StatusPending},
		{"delivered", attempt(d, 4, start.Add(6*time.Minute), true), webhooks.StatusDelivered},
	}
	for _, tc := range tests {
		cur := getDelivery(t, s, d.ID, false)
		if err := s.RecordAttempt(ctx, cur, tc.a, tc.status); err != nil {
			t.Fatalf("RecordAttempt(%s) = %v", tc.name, err)
		}
	}
	got := getDelivery(t, s, d.ID, true)
	if len(got.AttemptLog) != len(tests) {
		t.Fatalf("log of %d attempts, want %d", len(got.AttemptLog), len(tests))
	}
	for i, tc := range tests {
		want := tc.a
		want.Signatures = 0 // stored, not shown
		if tc.a.ErrorClass != webhooks.ClassCircuit {
			// Rebuilt from the delivery: same values as sent.
			want.RequestHeaders = webhooks.RequestHeaders(got, tc.a.StartedAt.Unix(), "Boomerang/test", max(1, tc.a.Signatures))
			if !maps.Equal(want.RequestHeaders, tc.a.RequestHeaders) {
				t.Errorf("%s: headers rebuilt %v differ from those sent %v", tc.name, want.RequestHeaders, tc.a.RequestHeaders)
			}
		}
		if g := asJSON(got.AttemptLog[i]); g != asJSON(want) {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, g, asJSON(want))
		}
	}
	if got.AttemptLog[2].RequestHeaders != nil {
		t.Errorf("a short-circuited attempt shows request headers %v; none were sent", got.AttemptLog[2].RequestHeaders)
	}
}

func TestPostponeDelivery(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	d := delivery(t, s, "cli_a", t0, 0)
	until := d.CreatedAt.Add(90 * time.Second)
	if err := s.PostponeDelivery(ctx, d, 1, until, webhooks.DeferHostOpen); err != nil {
		t.Fatalf("PostponeDelivery = %v", err)
	}
	got := getDelivery(t, s, d.ID, false)
	want := d
	want.NextAttemptAt, want.DeferredUntil, want.DeferredReason, want.DeferredAttempt = &until, &until, webhooks.DeferHostOpen, 1
	if asJSON(got) != asJSON(want) || got.DeferredAttempt != 1 || got.RoundStart != 0 {
		t.Errorf("after PostponeDelivery:\n got %s (deferred attempt %d)\nwant %s", asJSON(got), got.DeferredAttempt, asJSON(want))
	}
	if due, _ := dueAt(t, s, rdb, d.RequestID); !due.Equal(until.Add(recoverAfter)) {
		t.Errorf("due after PostponeDelivery = %v, want %v", due, until.Add(recoverAfter))
	}
	// Postponed again, from the same read: allowed, no attempt came between.
	later := until.Add(time.Minute)
	if err := s.PostponeDelivery(ctx, got, 1, later, webhooks.DeferHostBusy); err != nil {
		t.Fatalf("PostponeDelivery again = %v", err)
	}
	if got := getDelivery(t, s, d.ID, false); !got.DeferredUntil.Equal(later) || got.DeferredReason != webhooks.DeferHostBusy {
		t.Errorf("after the second postponement: %s", asJSON(got))
	}
	// The attempt, when it happens, clears the deferral.
	a := attempt(got, 1, later, false)
	if err := s.RecordAttempt(ctx, got, a, webhooks.StatusPending); err != nil {
		t.Fatal(err)
	}
	after := getDelivery(t, s, d.ID, false)
	if after.DeferredUntil != nil || after.DeferredReason != "" || after.DeferredAttempt != 0 {
		t.Errorf("after the attempt the deferral stays: %s (attempt %d)", asJSON(after), after.DeferredAttempt)
	}
	before := snapshot(t, rdb)
	if err := s.PostponeDelivery(ctx, got, 1, later.Add(time.Hour), webhooks.DeferHostBusy); !errors.Is(err, webhooks.ErrStale) {
		t.Errorf("PostponeDelivery from a read older than an attempt = %v, want ErrStale", err)
	}
	unchanged(t, rdb, before, "a stale PostponeDelivery")
}

func TestReopenDelivery(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{Partitions: 2})
	ctx := context.Background()
	replayAt := t0.Add(time.Hour + 333*time.Microsecond)
	at := replayAt.Truncate(time.Millisecond)

	for _, end := range []webhooks.Status{webhooks.StatusFailed, webhooks.StatusDelivered} {
		d := delivery(t, s, "cli_a", t0, 1)
		for n := 1; n <= 3; n++ {
			status, a := webhooks.StatusPending, attempt(d, n, d.CreatedAt.Add(time.Duration(n)*time.Minute), false)
			if n == 3 {
				status, a = end, attempt(d, n, d.CreatedAt.Add(time.Duration(n)*time.Minute), end == webhooks.StatusDelivered)
				a.NextAttemptAt = nil
			}
			if err := s.RecordAttempt(ctx, d, a, status); err != nil {
				t.Fatal(err)
			}
			d = getDelivery(t, s, d.ID, false)
		}
		got, err := s.ReopenDelivery(ctx, d.ID, replayAt, "")
		if err != nil {
			t.Fatalf("ReopenDelivery(%s) = %v", end, err)
		}
		want := d
		want.Status, want.RoundStart, want.Replays, want.NextAttemptAt, want.UpdatedAt, want.DeliveredAt = webhooks.StatusPending, 3, 1, &at, at, nil
		if asJSON(got) != asJSON(want) || got.RoundStart != 3 {
			t.Errorf("ReopenDelivery(%s) returned\n%s (round start %d)\nwant\n%s", end, asJSON(got), got.RoundStart, asJSON(want))
		}
		if stored := getDelivery(t, s, d.ID, false); asJSON(stored) != asJSON(want) || stored.RoundStart != 3 {
			t.Errorf("%s reopened, stored:\n%s (round start %d)\nwant\n%s", end, asJSON(stored), stored.RoundStart, asJSON(want))
		}
		member := ids.TimePrefix(d.CreatedAt) + ids.Body(d.ID)
		for _, k := range []string{"dlv:f", "dlv:f:cli_a"} {
			if _, ok := score(t, rdb, keyOf(s, d.ID, k), member); ok {
				t.Errorf("%s reopened: still in %s", end, k)
			}
		}
		if l, _, _ := s.ListDeliveries(ctx, webhooks.Filter{Status: webhooks.StatusPending}, 10, ""); len(l) != 1 || l[0].ID != d.ID {
			t.Errorf("%s reopened: ListDeliveries(PENDING) = %v", end, l)
		}
		if due, _ := dueAt(t, s, rdb, d.RequestID); !due.Equal(at.Add(recoverAfter)) {
			t.Errorf("%s reopened: due %v, want %v", end, due, at.Add(recoverAfter))
		}
		// A PENDING delivery cannot be reopened.
		before := snapshot(t, rdb)
		if _, err := s.ReopenDelivery(ctx, d.ID, replayAt.Add(time.Second), ""); !errors.Is(err, webhooks.ErrConflict) {
			t.Errorf("ReopenDelivery of a PENDING delivery = %v, want ErrConflict", err)
		}
		unchanged(t, rdb, before, "ReopenDelivery of a PENDING delivery")
		// The replay's attempts carry on the numbering.
		if err := s.RecordAttempt(ctx, got, attempt(got, 4, at, true), webhooks.StatusDelivered); err != nil {
			t.Errorf("attempt 4 after the replay = %v", err)
		}
		if got := getDelivery(t, s, d.ID, false); got.Status != webhooks.StatusDelivered || got.Attempts != 4 || got.Replays != 1 {
			t.Errorf("after the replay's attempt: %s", asJSON(got))
		}
		// Clean up the pending list for the next round.
		if err := rdb.Del(ctx, recordKey(s, d.ID)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ReopenDelivery(ctx, "msg_"+strconv.Itoa(1), t0, ""); !errors.Is(err, webhooks.ErrNotFound) {
		t.Errorf("ReopenDelivery(malformed) = %v, want ErrNotFound", err)
	}
}

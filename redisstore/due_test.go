package redisstore_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/recovery"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/webhooks"
)

func TestOverdueAndReschedule(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{Partitions: 3})
	ctx := context.Background()
	accepted := create(t, s, newJob("cli_a", t0, 1))                                       // due t0+30s
	later := create(t, s, newJob("cli_a", t0.Add(10*time.Second), 1))                      // due t0+40s
	running := claim(t, s, create(t, s, newJob("cli_a", t0, 1)).ID, t0.Add(2*time.Second)) // due at its lease's end, t0+32s
	pending := delivery(t, s, "cli_a", t0.Add(5*time.Second), 1)                           // finished at t0+6s: due t0+36s
	create(t, s, newJob("cli_a", t0, 0))                                                   // another partition
	ms := func(d time.Duration) time.Time { return t0.Truncate(time.Millisecond).Add(d) }

	overdue := func(now time.Time, limit int) ([]recovery.Due, time.Time) {
		t.Helper()
		due, next, err := s.Overdue(ctx, 1, now, limit)
		if err != nil {
			t.Fatalf("Overdue(%v) = %v", now, err)
		}
		return due, next
	}
	due, next := overdue(ms(36*time.Second), 10)
	want := []recovery.Due{
		{RequestID: accepted.ID, Exists: true, Job: jobs.StatusAccepted},
		{RequestID: running.ID, Exists: true, Job: jobs.StatusProcessing, JobAttempts: 1},
		{RequestID: pending.RequestID, Exists: true, Job: jobs.StatusCompleted, JobAttempts: 1, Delivery: webhooks.StatusPending},
	}
	if !slices.Equal(due, want) || !next.Equal(ms(40*time.Second)) {
		t.Errorf("Overdue(t0+36s) = %+v, next %v\nwant %+v, next %v", due, next, want, ms(40*time.Second))
	}
	if due, next := overdue(ms(36*time.Second), 2); !slices.Equal(due, want[:2]) || !next.Equal(ms(40*time.Second)) {
		t.Errorf("Overdue(t0+36s, limit 2) = %+v, next %v; want the first two, next %v", due, next, ms(40*time.Second))
	}
	if due, next := overdue(t0, 10); len(due) != 0 || !next.Equal(ms(30*time.Second)) {
		t.Errorf("Overdue(t0) = %+v, next %v; want none, next t0+30s", due, next)
	}
	if due, next, err := s.Overdue(ctx, 2, t0.Add(time.Hour), 10); len(due) != 0 || !next.IsZero() || err != nil {
		t.Errorf("Overdue of an empty partition = %+v, %v, %v; want none and a zero time", due, next, err)
	}

	// A delivery attempt that will be retried moves its recovery time.
	a := attempt(pending, 1, ms(20*time.Second), false) // next at t0+80s: due t0+110s
	if err := s.RecordAttempt(ctx, pending, a, webhooks.StatusPending); err != nil {
		t.Fatal(err)
	}
	if err := s.Reschedule(ctx, accepted.ID, ms(100*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.Reschedule(ctx, running.ID, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if due, next := overdue(ms(99*time.Second), 10); len(due) != 1 || due[0].RequestID != later.ID || !next.Equal(ms(100*time.Second)) {
		t.Errorf("after Reschedule: Overdue(t0+99s) = %+v, next %v; want only %s, next t0+100s (the rescheduled one)", due, next, later.ID)
	}
	if _, ok := dueAt(t, s, rdb, running.ID); ok {
		t.Errorf("Reschedule(zero) left %s on the schedule", running.ID)
	}
	if at, _ := dueAt(t, s, rdb, pending.RequestID); !at.Equal(a.NextAttemptAt.Truncate(time.Millisecond).Add(recoverAfter)) {
		t.Errorf("a retried delivery is due %v, want %v", at, a.NextAttemptAt.Add(recoverAfter))
	}

	// A record that expired is seen as gone, and rescheduling drops it.
	if err := rdb.Del(ctx, recordKey(s, later.ID)).Err(); err != nil {
		t.Fatal(err)
	}
	if due, _ := overdue(ms(99*time.Second), 10); len(due) != 1 || due[0] != (recovery.Due{RequestID: later.ID}) {
		t.Errorf("Overdue of an expired record = %+v, want it with Exists false", due)
	}
	if err := s.Reschedule(ctx, later.ID, ms(200*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, ok := dueAt(t, s, rdb, later.ID); ok {
		t.Errorf("Reschedule of an expired record left it on the schedule")
	}
	// A record taken off the schedule meanwhile (delivered) stays off.
	d := getDelivery(t, s, pending.ID, false)
	if err := s.RecordAttempt(ctx, d, attempt(d, 2, ms(time.Hour), true), webhooks.StatusDelivered); err != nil {
		t.Fatal(err)
	}
	if err := s.Reschedule(ctx, pending.RequestID, ms(300*time.Second)); err != nil {
		t.Fatal(err)
	}
	if at, ok := dueAt(t, s, rdb, pending.RequestID); ok {
		t.Errorf("Reschedule put a delivered record back on the schedule, at %v", at)
	}
}

func TestTrimDropsEntriesOfExpiredRecords(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{Partitions: 2})
	ctx := context.Background()
	clientIDs := []string{"cli_a", "cli_b"}
	// Jobs i = 0..7 created at t0 + i min, FAILED with a FAILED delivery
	// created 30 s later: every index has them.
	var js []jobs.Job
	for i := range 8 {
		created := t0.Add(time.Duration(i) * time.Minute)
		j := claim(t, s, create(t, s, newJob(clientIDs[i%2], created, i%2)).ID, created)
		f, m := failed(t, j, "boom", created.Add(30*time.Second))
		d := finish(t, s, f, m)
		a := attempt(d, 1, d.CreatedAt, false)
		a.NextAttemptAt = nil
		if err := s.RecordAttempt(ctx, d, a, webhooks.StatusFailed); err != nil {
			t.Fatal(err)
		}
		js = append(js, j)
	}
	members := func() map[string][]string {
		t.Helper()
		out := map[string][]string{}
		keys, err := rdb.Keys(ctx, "bmr:{*}:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if strings.Contains(k, ":jobs") || strings.Contains(k, ":dlv") {
				m, err := rdb.ZRange(ctx, k, 0, -1).Result()
				if err != nil {
					t.Fatal(err)
				}
				out[k] = m
			}
		}
		return out
	}
	before := members()
	gone := []int{0, 1, 2, 5}
	for _, i := range gone {
		if err := rdb.Del(ctx, recordKey(s, js[i].ID)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Entries created before the cutoff whose record is gone: those of 0,
	// 1 and 2. Job 5 was created after it; 3 and 4 are still there.
	cutoff := t0.Add(4*time.Minute + 45*time.Second)
	expect := func(withClients bool) map[string][]string {
		want := map[string][]string{}
		for k, ms := range before {
			perClient := strings.Contains(k, ":cli_")
			for _, m := range ms {
				b := m[len(m)-ids.Len:]
				old := slices.ContainsFunc([]int{0, 1, 2}, func(i int) bool { return ids.Body(js[i].ID) == b })
				if old && (withClients || !perClient) {
					continue
				}
				want[k] = append(want[k], m)
			}
		}
		return want
	}
	// Without client ids, only the partitions' own indexes.
	n, err := s.Trim(ctx, nil, cutoff)
	if err != nil || n != 3*4 {
		t.Errorf("Trim(no clients) = %d, %v; want 12 entries (3 records × jobs, jobs:f, dlv, dlv:f)", n, err)
	}
	if got, want := members(), expect(false); !sameMembers(got, want) {
		t.Errorf("after Trim(no clients):\n%v\nwant\n%v", got, want)
	}
	n, err = s.Trim(ctx, clientIDs, cutoff)
	if err != nil || n != 3*4 {
		t.Errorf("Trim(clients) = %d, %v; want the 12 per-client entries", n, err)
	}
	if got, want := members(), expect(true); !sameMembers(got, want) {
		t.Errorf("after Trim(clients):\n%v\nwant\n%v", got, want)
	}
	// Another process trimming (the lock held): nothing happens.
	if err := rdb.Set(ctx, "bmr:lock:trim", "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Trim(ctx, clientIDs, t0.Add(time.Hour)); n != 0 || err != nil {
		t.Errorf("Trim while another holds the lock = %d, %v; want 0, nil", n, err)
	}
}

func sameMembers(a, b map[string][]string) bool {
	for k := range a {
		if len(a[k]) == 0 {
			delete(a, k)
		}
	}
	for k := range b {
		if len(b[k]) == 0 {
			delete(b, k)
		}
	}
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestTrimAfterRealExpiry(t *testing.T) {
	t.Parallel()
	const retention = 300 * time.Millisecond
	s, rdb := newStore(t, redisstore.Options{Retention: retention})
	ctx := context.Background()
	// More than one batch of the trim (500) in one index.
	var last jobs.Job
	for i := range 620 {
		last = create(t, s, newJob("cli_a", t0.Add(time.Duration(i)*time.Millisecond), 0))
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		n, err := rdb.Exists(ctx, recordKey(s, last.ID)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a record with a retention of %v still exists after 10 s", retention)
		}
		time.Sleep(retention / 5)
	}
	live := create(t, s, newJob("cli_a", t0, 0)) // created "before" the cutoff too, but alive
	n, err := s.Trim(ctx, []string{"cli_a"}, t0.Add(time.Hour))
	if err != nil || n != 2*620 {
		t.Errorf("Trim after expiry = %d, %v; want %d (jobs and jobs:c:cli_a)", n, err, 2*620)
	}
	for _, k := range []string{keyOf(s, live.ID, "jobs"), keyOf(s, live.ID, "jobs:c:cli_a")} {
		if m, _ := rdb.ZRange(ctx, k, 0, -1).Result(); !slices.Equal(m, []string{ids.Body(live.ID)}) {
			t.Errorf("%s after Trim = %v, want only the live job", k, m)
		}
	}
}

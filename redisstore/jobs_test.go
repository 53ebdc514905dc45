package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/webhooks"
)

func TestCreateJobRoundTripsEveryField(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		edit func(*jobs.Job)
	}{
		{"full", func(*jobs.Job) {}},
		{"no metadata", func(j *jobs.Job) { j.Metadata = nil }},
		{"payload null", func(j *jobs.Job) { j.Payload = []byte("null") }},
		{"payload a string with every escape", func(j *jobs.Job) { j.Payload = []byte(`"\"\\\/\b\f\n\r\t\u0000 ☃ \ud83d\ude00"`) }},
	} {
		j := newJob("cli_a", t0, 0)
		tc.edit(&j)
		create(t, s, j)
		got := getJob(t, s, j.ID)
		if d := sameJob(got, j); d != "" {
			t.Errorf("%s: GetJob after CreateJob: %s", tc.name, d)
		}
		// createdAt is the id's time, to the millisecond; updatedAt keeps
		// its nanoseconds.
		if created, _ := ids.Time(ids.Request, j.ID); !got.CreatedAt.Equal(created) || got.UpdatedAt.Nanosecond() != t0.Nanosecond() {
			t.Errorf("%s: createdAt %v (id time %v), updatedAt %v (want the nanoseconds of %v)", tc.name, got.CreatedAt, created, got.UpdatedAt, t0)
		}
		// Recovery steps in RecoverAfter after the creation if no worker
		// took the job.
		if at, ok := dueAt(t, s, rdb, j.ID); !ok || !at.Equal(j.CreatedAt.Add(recoverAfter)) {
			t.Errorf("%s: due %v (scheduled %v), want %v", tc.name, at, ok, j.CreatedAt.Add(recoverAfter))
		}
		if id, err := s.NextReady(ctx, 0, time.Second); id != j.ID || err != nil {
			t.Errorf("%s: NextReady = %q, %v; want %s", tc.name, id, err, j.ID)
		}
	}
}

func TestCreateJobWithoutPayloadStoresNull(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, redisstore.Options{})
	j := newJob("cli_a", t0, 0)
	j.Payload = nil
	create(t, s, j)
	if got := getJob(t, s, j.ID); string(got.Payload) != "null" {
		t.Errorf("payload of a job submitted without one = %q, want null", got.Payload)
	}
}

func TestReadyQueueIsFIFOWithReturnAtTheHead(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, redisstore.Options{Partitions: 2})
	ctx := context.Background()
	var want []string
	for i := range 4 {
		want = append(want, create(t, s, newJob("cli_a", t0.Add(time.Duration(i)*time.Second), 1)).ID)
	}
	other := create(t, s, newJob("cli_a", t0, 0)).ID // partition 0 has its own list

	pop := func(p int) string {
		t.Helper()
		id, err := s.NextReady(ctx, p, time.Second)
		if err != nil {
			t.Fatalf("NextReady(%d) = %v", p, err)
		}
		return id
	}
	if got := pop(1); got != want[0] {
		t.Errorf("first pop = %s, want the oldest %s", got, want[0])
	}
	second := pop(1)
	if second != want[1] {
		t.Errorf("second pop = %s, want %s", second, want[1])
	}
	// A runner that stops returns what it took: it is next again.
	if err := s.ReturnReady(ctx, second); err != nil {
		t.Fatal(err)
	}
	for i, w := range []string{want[1], want[2], want[3]} {
		if got := pop(1); got != w {
			t.Errorf("pop %d after ReturnReady = %s, want %s", i, got, w)
		}
	}
	if got := pop(0); got != other {
		t.Errorf("partition 0 pop = %s, want %s", got, other)
	}
	start := time.Now()
	if id, err := s.NextReady(ctx, 1, 50*time.Millisecond); id != "" || err != nil {
		t.Errorf("NextReady on an empty list = %q, %v; want \"\", nil", id, err)
	}
	t.Logf("an empty NextReady(50ms) returned after %v (BLPOP waits whole seconds)", time.Since(start))
	// A wait of 0 does not block.
	if id, err := s.NextReady(ctx, 1, 0); id != "" || err != nil {
		t.Errorf("NextReady(wait 0) on an empty list = %q, %v; want \"\", nil", id, err)
	}
	j := create(t, s, newJob("cli_a", t0, 1))
	if id, err := s.NextReady(ctx, 1, 0); id != j.ID || err != nil {
		t.Errorf("NextReady(wait 0) = %q, %v; want %s", id, err, j.ID)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if id, err := s.NextReady(cctx, 1, time.Second); id != "" || err == nil {
		t.Errorf("NextReady with a cancelled context = %q, %v; want an error", id, err)
	}
}

func TestCreateJobIdempotency(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{Partitions: 2})
	ctx := context.Background()
	first := newJob("cli_a", t0, 1)
	if prior, print, err := s.CreateJob(ctx, first, &jobs.Idempotency{KeyHash: "h1", Fingerprint: "f1"}); prior != "" || print != "" || err != nil {
		t.Fatalf("first CreateJob with a key = %q, %q, %v; want it created", prior, print, err)
	}
	before := snapshot(t, rdb)
	for _, fp := range []string{"f1", "f2"} { // the same request, and another one
		second := newJob("cli_a", t0.Add(time.Second), 1)
		prior, print, err := s.CreateJob(ctx, second, &jobs.Idempotency{KeyHash: "h1", Fingerprint: fp})
		if prior != first.ID || print != "f1" || err != nil {
			t.Errorf("CreateJob with a taken key (fingerprint %s) = %q, %q, %v; want %s, f1", fp, prior, print, err, first.ID)
		}
		if _, err := s.GetJob(ctx, second.ID); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("the refused job %s: GetJob = %v, want ErrNotFound", second.ID, err)
		}
	}
	unchanged(t, rdb, before, "CreateJob with a taken Idempotency-Key")

	// Keys are a client's own; another key of the same client is free.
	for _, tc := range []struct{ client, hash string }{{"cli_b", "h1"}, {"cli_a", "h2"}} {
		j := newJob(tc.client, t0, 1)
		if prior, _, err := s.CreateJob(ctx, j, &jobs.Idempotency{KeyHash: tc.hash, Fingerprint: "f"}); prior != "" || err != nil {
			t.Errorf("CreateJob(%s, key %s) = %q, %v; want it created", tc.client, tc.hash, prior, err)
		}
	}
	// The claim lasts a day.
	ttl, err := rdb.PTTL(ctx, keyOf(s, first.ID, "idem:cli_a:h1")).Result()
	if err != nil || ttl < 23*time.Hour || ttl > 24*time.Hour {
		t.Errorf("TTL of the key's claim = %v, %v; want about 24 h", ttl, err)
	}
}

func TestCreateJobRefusesATakenID(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	j := create(t, s, newJob("cli_a", t0, 0))
	before := snapshot(t, rdb)
	again := j
	again.ClientID, again.Payload = "cli_b", []byte(`{"other":1}`)
	again.UpdatedAt = again.UpdatedAt.Add(time.Nanosecond) // another submission, not a repeat of the first
	if prior, _, err := s.CreateJob(ctx, again, nil); err == nil {
		t.Errorf("CreateJob of a taken id = %q, nil; want an error", prior)
	}
	if prior, _, err := s.CreateJob(ctx, again, &jobs.Idempotency{KeyHash: "h", Fingerprint: "f"}); err == nil {
		t.Errorf("CreateJob of a taken id with a fresh key = %q, nil; want an error", prior)
	}
	unchanged(t, rdb, before, "CreateJob of a taken id") // nor is the key claimed
}

func TestClaimLeaseRetryFinish(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	j := create(t, s, newJob("cli_a", t0, 0))

	// Attempt 1 takes the job, with its payload.
	now1 := t0.Add(time.Second + 7)
	a1 := claim(t, s, j.ID, now1)
	want := j
	want.Status, want.Attempts, want.UpdatedAt = jobs.StatusProcessing, 1, now1
	if d := sameJob(a1, want); d != "" {
		t.Errorf("claim 1: %s", d)
	}
	if at, _ := dueAt(t, s, rdb, j.ID); !at.Equal(now1.Add(lease).Truncate(time.Millisecond)) {
		t.Errorf("due after claim 1 = %v, want the lease's end %v", at, now1.Add(lease))
	}

	// While the lease runs, nobody else gets it.
	_, err := s.ClaimJob(ctx, j.ID, now1.Add(lease/2), now1.Add(lease/2+lease))
	var leased *jobs.LeasedError
	if !errors.As(err, &leased) || !leased.Until.Equal(now1.Add(lease).Truncate(time.Millisecond)) {
		t.Fatalf("claim during the lease = %v, want LeasedError until %v", err, now1.Add(lease))
	}

	// The run dies; after its lease, attempt 2 takes the job.
	now2 := now1.Add(lease + time.Millisecond)
	a2 := claim(t, s, j.ID, now2)
	if a2.Attempts != 2 || a2.Status != jobs.StatusProcessing || !a2.UpdatedAt.Equal(now2) {
		t.Errorf("claim after the lease = attempt %d %s updated %v; want attempt 2 PROCESSING %v", a2.Attempts, a2.Status, a2.UpdatedAt, now2)
	}

	// Attempt 2 renews its lease; attempt 1, woken up, cannot.
	until := now2.Add(2 * lease)
	if err := s.ExtendJobLease(ctx, a2, until); err != nil {
		t.Fatalf("ExtendJobLease(attempt 2) = %v", err)
	}
	if at, _ := dueAt(t, s, rdb, j.ID); !at.Equal(until.Truncate(time.Millisecond)) {
		t.Errorf("due after ExtendJobLease = %v, want %v", at, until)
	}
	if _, err := s.ClaimJob(ctx, j.ID, now2.Add(lease+time.Second), now2.Add(3*lease)); !errors.As(err, &leased) || !leased.Until.Equal(until.Truncate(time.Millisecond)) {
		t.Errorf("claim within the extended lease = %v, want LeasedError until %v", err, until)
	}
	before := snapshot(t, rdb)
	if err := s.ExtendJobLease(ctx, a1, now2.Add(5*lease)); !errors.Is(err, jobs.ErrFinished) {
		t.Errorf("ExtendJobLease(stale attempt 1) = %v, want ErrFinished", err)
	}
	unchanged(t, rdb, before, "ExtendJobLease by a stale attempt")

	// Attempt 2 fails and may be retried at `at`.
	failedAt := now2.Add(3 * time.Second)
	at := failedAt.Add(10 * time.Second)
	a2.LastError, a2.UpdatedAt = &jobs.Error{Code: "upstream_unreachable", Message: "dial <tcp>: refused"}, failedAt
	if err := s.RetryJob(ctx, a2, at); err != nil {
		t.Fatalf("RetryJob = %v", err)
	}
	got := getJob(t, s, j.ID)
	want = j
	want.Status, want.Attempts, want.UpdatedAt, want.LastError = jobs.StatusProcessing, 2, failedAt, a2.LastError
	if d := sameJob(got, want); d != "" {
		t.Errorf("after RetryJob: %s", d)
	}
	if due, _ := dueAt(t, s, rdb, j.ID); !due.Equal(at.Add(recoverAfter).Truncate(time.Millisecond)) {
		t.Errorf("due after RetryJob = %v, want at+RecoverAfter %v", due, at.Add(recoverAfter))
	}
	if _, err := s.ClaimJob(ctx, j.ID, at.Add(-time.Millisecond), at.Add(lease)); !errors.As(err, &leased) || !leased.Until.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("claim before the retry time = %v, want LeasedError until %v", err, at)
	}
	a3 := claim(t, s, j.ID, at)
	if a3.Attempts != 3 || a3.LastError == nil || *a3.LastError != *a2.LastError {
		t.Errorf("claim at the retry time = attempt %d, last error %+v; want attempt 3 with %+v", a3.Attempts, a3.LastError, a2.LastError)
	}

	// Attempt 3 completes: the outcome and the delivery exist together.
	done := at.Add(1500*time.Millisecond + 321)
	fin, m := completed(t, a3, `{"b": [1, 2.50, "x"] , "html":"<&>"}`, done)
	d, err := s.FinishJob(ctx, fin, m)
	if err != nil {
		t.Fatalf("FinishJob = %v", err)
	}
	got = getJob(t, s, j.ID)
	want = fin
	want.Payload, want.LastError = nil, nil // the payload is dropped, and so is the last error
	if d := sameJob(got, want); d != "" {
		t.Errorf("after FinishJob: %s", d)
	}
	stored := getDelivery(t, s, m.ID, true)
	created := done.Truncate(time.Millisecond)
	wantD := webhooks.Delivery{ID: m.ID, RequestID: j.ID, ClientID: "cli_a", EventType: jobs.EventCompleted, URL: j.CallbackURL,
		Status: webhooks.StatusPending, CreatedAt: created, UpdatedAt: created, NextAttemptAt: &created, Payload: m.Body,
		AttemptLog: []webhooks.Attempt{}}
	if asJSON(stored) != asJSON(wantD) {
		t.Errorf("GetDelivery after FinishJob:\n got %s\nwant %s", asJSON(stored), asJSON(wantD))
	}
	body, _ := jobs.WebhookBody(got)
	if !bytes.Equal(stored.Payload, body) || !bytes.Equal(stored.Payload, m.Body) {
		t.Errorf("webhook body rebuilt from the record:\n%s\nwant jobs.WebhookBody of the job, as sent:\n%s", stored.Payload, m.Body)
	}
	d.AttemptLog = []webhooks.Attempt{}
	if asJSON(d) != asJSON(stored) {
		t.Errorf("FinishJob returned\n%s\nGetDelivery returns\n%s", asJSON(d), asJSON(stored))
	}
	if due, _ := dueAt(t, s, rdb, j.ID); !due.Equal(created.Add(recoverAfter)) {
		t.Errorf("due after FinishJob = %v, want %v (the first attempt's recovery)", due, created.Add(recoverAfter))
	}
	if l, _, err := s.ListJobs(ctx, jobs.Filter{Status: jobs.StatusCompleted}, 10, ""); err != nil || len(l) != 1 || l[0].ID != j.ID {
		t.Errorf("ListJobs(COMPLETED) = %v, %v; want %s", l, err, j.ID)
	}
	if l, _, err := s.ListDeliveries(ctx, webhooks.Filter{ClientID: "cli_a"}, 10, ""); err != nil || len(l) != 1 || l[0].ID != m.ID {
		t.Errorf("ListDeliveries(cli_a) = %v, %v; want %s", l, err, m.ID)
	}

	// Once finished, nobody writes the job again.
	before = snapshot(t, rdb)
	stale := []struct {
		name string
		call func() error
	}{
		{"FinishJob again, another run", func() error {
			again := fin
			later := done.Add(time.Second)
			again.CompletedAt, again.UpdatedAt = &later, later
			_, err := s.FinishJob(ctx, again, m)
			return err
		}},
		{"FinishJob FAILED by attempt 3", func() error { f, fm := failed(t, a3, "late", done); _, err := s.FinishJob(ctx, f, fm); return err }},
		{"FinishJob by stale attempt 2", func() error { f, fm := completed(t, a2, "1", done); _, err := s.FinishJob(ctx, f, fm); return err }},
		{"RetryJob", func() error { return s.RetryJob(ctx, a3, done.Add(time.Minute)) }},
		{"ExtendJobLease", func() error { return s.ExtendJobLease(ctx, a3, done.Add(time.Minute)) }},
	}
	for _, tc := range stale {
		if err := tc.call(); !errors.Is(err, jobs.ErrFinished) {
			t.Errorf("%s on a finished job = %v, want ErrFinished", tc.name, err)
		}
	}
	j4, err := s.ClaimJob(ctx, j.ID, done.Add(time.Hour), done.Add(time.Hour+lease))
	if !errors.Is(err, jobs.ErrFinished) || j4.ID != j.ID || j4.Status != jobs.StatusCompleted || j4.DeliveryID != m.ID {
		t.Errorf("ClaimJob of a finished job = %s %s %s, %v; want the job with ErrFinished", j4.ID, j4.Status, j4.DeliveryID, err)
	}
	unchanged(t, rdb, before, "writes to a finished job")
}

func TestFinishJobStaleAttemptWritesNothing(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	j := create(t, s, newJob("cli_a", t0, 0))
	a1 := claim(t, s, j.ID, t0.Add(time.Second))
	claim(t, s, j.ID, t0.Add(time.Second+lease)) // attempt 2 holds it now
	before := snapshot(t, rdb)
	f, m := failed(t, a1, "boom", t0.Add(time.Minute))
	if _, err := s.FinishJob(ctx, f, m); !errors.Is(err, jobs.ErrFinished) {
		t.Errorf("FinishJob by attempt 1 while attempt 2 holds the job = %v, want ErrFinished", err)
	}
	c, cm := completed(t, a1, "true", t0.Add(time.Minute))
	if _, err := s.FinishJob(ctx, c, cm); !errors.Is(err, jobs.ErrFinished) {
		t.Errorf("FinishJob COMPLETED by attempt 1 while attempt 2 holds the job = %v, want ErrFinished", err)
	}
	if err := s.RetryJob(ctx, a1, t0.Add(time.Hour)); !errors.Is(err, jobs.ErrFinished) {
		t.Errorf("RetryJob by attempt 1 while attempt 2 holds the job = %v, want ErrFinished", err)
	}
	unchanged(t, rdb, before, "a stale attempt's writes")
	if _, err := s.GetDelivery(ctx, m.ID, false); !errors.Is(err, webhooks.ErrNotFound) {
		t.Errorf("GetDelivery of a job not finished = %v, want ErrNotFound", err)
	}
}

func TestFinishJobFailed(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{Partitions: 4})
	ctx := context.Background()
	j := create(t, s, newJob("cli_a", t0, 3))
	a := claim(t, s, j.ID, t0.Add(time.Second))
	done := t0.Add(2*time.Second + 999_999)
	f, m := failed(t, a, "unknown_type", done)
	d := finish(t, s, f, m)
	got := getJob(t, s, j.ID)
	want := f
	want.Payload = nil
	if diff := sameJob(got, want); diff != "" {
		t.Errorf("failed job: %s", diff)
	}
	if d.EventType != jobs.EventFailed || d.Status != webhooks.StatusPending {
		t.Errorf("delivery of a failed job: %s %s, want job.failed PENDING", d.EventType, d.Status)
	}
	if stored := getDelivery(t, s, d.ID, false); !bytes.Equal(stored.Payload, m.Body) {
		t.Errorf("webhook body rebuilt:\n%s\nwant\n%s", stored.Payload, m.Body)
	}
	for _, flt := range []jobs.Filter{{Status: jobs.StatusFailed}, {Status: jobs.StatusFailed, ClientID: "cli_a"}} {
		if l, _, err := s.ListJobs(ctx, flt, 10, ""); err != nil || len(l) != 1 || l[0].ID != j.ID || l[0].Error == nil || *l[0].Error != *f.Error {
			t.Errorf("ListJobs(%+v) = %+v, %v; want the failed job with its error", flt, l, err)
		}
	}
	for _, k := range []string{"jobs:f", "jobs:f:cli_a"} {
		if _, ok := score(t, rdb, keyOf(s, j.ID, k), ids.Body(j.ID)); !ok {
			t.Errorf("the failed job is not in %s", keyOf(s, j.ID, k))
		}
	}
	// A delivery is FAILED only when its attempts say so.
	if l, _, err := s.ListDeliveries(ctx, webhooks.Filter{Status: webhooks.StatusFailed}, 10, ""); err != nil || len(l) != 0 {
		t.Errorf("ListDeliveries(FAILED) = %v, %v; want none", l, err)
	}
}

func TestUnknownAndMalformedIDsAreNotFound(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{Partitions: 4})
	ctx := context.Background()
	known := create(t, s, newJob("cli_a", t0, 2))
	body := ids.Body(known.ID)
	before := snapshot(t, rdb)
	for _, id := range []string{
		"", "req_", "req_x", "req_" + body + "0", "req_" + body[:25], // malformed
		"REQ_" + body, "req_" + string(bytes.ToLower([]byte(body))), "msg_" + body, "cli_" + body, // another kind, lower case
		"req_" + body + ":x", "req_../" + body[3:],
		ids.NewIn(ids.Request, t0, 2), // well-formed, unknown
		ids.NewIn(ids.Request, t0, 9), // from a partition this store has not
	} {
		if _, err := s.GetJob(ctx, id); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("GetJob(%q) = %v, want ErrNotFound", id, err)
		}
		if _, err := s.ClaimJob(ctx, id, t0, t0.Add(lease)); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("ClaimJob(%q) = %v, want ErrNotFound", id, err)
		}
		msg := "msg_" + ids.Body(id)
		if id == "req_"+body || id == "msg_"+body {
			continue
		}
		if _, err := s.GetDelivery(ctx, msg, true); !errors.Is(err, webhooks.ErrNotFound) {
			t.Errorf("GetDelivery(%q) = %v, want ErrNotFound", msg, err)
		}
		if _, err := s.ReopenDelivery(ctx, msg, t0, ""); !errors.Is(err, webhooks.ErrNotFound) {
			t.Errorf("ReopenDelivery(%q) = %v, want ErrNotFound", msg, err)
		}
	}
	// Writes to a job that is not there.
	ghost := newJob("cli_a", t0, 1)
	ghost.Attempts = 1
	if err := s.ExtendJobLease(ctx, ghost, t0); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("ExtendJobLease(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.RetryJob(ctx, ghost, t0); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("RetryJob(unknown) = %v, want ErrNotFound", err)
	}
	f, m := completed(t, ghost, "1", t0)
	if _, err := s.FinishJob(ctx, f, m); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("FinishJob(unknown) = %v, want ErrNotFound", err)
	}
	d := webhooks.Delivery{ID: m.ID, RequestID: ghost.ID, ClientID: "cli_a", Status: webhooks.StatusPending, CreatedAt: t0}
	if err := s.RecordAttempt(ctx, d, attempt(d, 1, t0, true), webhooks.StatusDelivered); !errors.Is(err, webhooks.ErrNotFound) {
		t.Errorf("RecordAttempt(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.PostponeDelivery(ctx, d, 1, t0, webhooks.DeferHostBusy); !errors.Is(err, webhooks.ErrNotFound) {
		t.Errorf("PostponeDelivery(unknown) = %v, want ErrNotFound", err)
	}
	// A job without a delivery yet has none to write to.
	kd := webhooks.Delivery{ID: jobs.DeliveryID(known.ID), RequestID: known.ID, ClientID: "cli_a", Status: webhooks.StatusPending, CreatedAt: t0}
	if err := s.RecordAttempt(ctx, kd, attempt(kd, 1, t0, true), webhooks.StatusDelivered); !errors.Is(err, webhooks.ErrNotFound) {
		t.Errorf("RecordAttempt(delivery of a job not finished) = %v, want ErrNotFound", err)
	}
	if _, err := s.ReopenDelivery(ctx, kd.ID, t0, ""); !errors.Is(err, webhooks.ErrNotFound) {
		t.Errorf("ReopenDelivery(delivery of a job not finished) = %v, want ErrNotFound", err)
	}
	unchanged(t, rdb, before, "calls with unknown or malformed ids")
}

func TestMalformedWritesAreRefused(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{Partitions: 2})
	ctx := context.Background()
	j := create(t, s, newJob("cli_a", t0, 1))
	running := claim(t, s, j.ID, t0)
	before := snapshot(t, rdb)
	for _, id := range []string{"", "req_x", ids.NewIn(ids.Delivery, t0, 0), ids.NewIn(ids.Request, t0, 2)} {
		bad := newJob("cli_a", t0, 0)
		bad.ID = id
		if prior, _, err := s.CreateJob(ctx, bad, nil); err == nil {
			t.Errorf("CreateJob(id %q) = %q, nil; want an error", id, prior)
		}
	}
	for _, st := range []jobs.Status{jobs.StatusAccepted, jobs.StatusProcessing, ""} {
		f, m := completed(t, running, "1", t0.Add(time.Second))
		f.Status = st
		if _, err := s.FinishJob(ctx, f, m); err == nil {
			t.Errorf("FinishJob(status %q) = nil, want an error", st)
		}
	}
	if _, _, err := s.TakeTokens(ctx, "cli_a", 0, 5, 1, t0); err == nil {
		t.Errorf("TakeTokens(rate 0) = nil, want an error")
	}
	unchanged(t, rdb, before, "malformed writes")

	// A retry without a reason leaves none, rather than an empty one.
	running.LastError = nil
	if err := s.RetryJob(ctx, running, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := getJob(t, s, j.ID); got.LastError != nil {
		t.Errorf("after RetryJob without LastError, the job shows %+v", got.LastError)
	}
}

func TestPendingWithoutNextAttemptStaysScheduled(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{})
	d := delivery(t, s, "cli_a", t0, 0)
	a := attempt(d, 1, d.CreatedAt, false)
	a.NextAttemptAt = nil
	if err := s.RecordAttempt(context.Background(), d, a, webhooks.StatusPending); err != nil {
		t.Fatal(err)
	}
	end := d.CreatedAt.Add(12 * time.Millisecond)
	if at, ok := dueAt(t, s, rdb, d.RequestID); !ok || !at.Equal(end.Add(recoverAfter)) {
		t.Errorf("a PENDING delivery without a next attempt is due %v (scheduled %v), want recovery at %v", at, ok, end.Add(recoverAfter))
	}
}

// Every write recognises its own repeat: go-redis sends a command again
// when its answer times out, though the first may have run. A repeated
// call answers as the first did and writes nothing more.
func TestWritesRecogniseTheirRepeat(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	j := newJob("cli_a", t0, 0)
	idem := &jobs.Idempotency{KeyHash: "h", Fingerprint: "f"}
	if _, _, err := s.CreateJob(ctx, j, idem); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		call func() error
	}{
		{"CreateJob", func() error {
			prior, _, err := s.CreateJob(ctx, j, idem)
			if prior != "" {
				return fmt.Errorf("answered as a taken key (%s)", prior)
			}
			return err
		}},
		{"CreateJob without a key", func() error { _, _, err := s.CreateJob(ctx, j, nil); return err }},
	}
	for _, st := range steps {
		before := snapshot(t, rdb)
		if err := st.call(); err != nil {
			t.Errorf("%s repeated = %v, want the first call's answer", st.name, err)
		}
		unchanged(t, rdb, before, st.name+" repeated")
	}
	lease := t0.Add(time.Minute)
	claimed, err := s.ClaimJob(ctx, j.ID, t0.Add(time.Second), lease)
	if err != nil {
		t.Fatal(err)
	}
	var leased *jobs.LeasedError
	if _, err := s.ClaimJob(ctx, j.ID, t0.Add(time.Second), lease); !errors.As(err, &leased) {
		t.Errorf("ClaimJob repeated = %v, want a LeasedError: a repeat cannot be told from another worker's claim", err)
	}
	fin, m := completed(t, claimed, "42", t0.Add(2*time.Second))
	d1, err := s.FinishJob(ctx, fin, m)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, rdb)
	if _, err := s.FinishJob(ctx, fin, m); err != nil {
		t.Errorf("FinishJob repeated = %v, want nil", err)
	}
	unchanged(t, rdb, before, "FinishJob repeated")
	a := webhooks.Attempt{Number: 1, StartedAt: t0.Add(3 * time.Second), DurationMs: 5, StatusCode: 204, Outcome: webhooks.OutcomeDelivered}
	if err := s.RecordAttempt(ctx, d1, a, webhooks.StatusDelivered); err != nil {
		t.Fatal(err)
	}
	before = snapshot(t, rdb)
	if err := s.RecordAttempt(ctx, d1, a, webhooks.StatusDelivered); err != nil {
		t.Errorf("RecordAttempt repeated = %v, want nil", err)
	}
	unchanged(t, rdb, before, "RecordAttempt repeated")
}

// TestReadyLengths: each partition's ready list is counted on its own, and
// a job popped by a runner no longer counts.
func TestReadyLengths(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, redisstore.Options{Partitions: 3})
	now := time.Now().UTC()
	for _, p := range []int{0, 2, 2} {
		create(t, s, newJob("cli_01KJ00000000000000000READY", now, p))
	}
	check := func(want []int64) {
		t.Helper()
		got, err := s.ReadyLengths(ctx)
		if err != nil {
			t.Fatalf("ReadyLengths: %v", err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("ReadyLengths = %v, want %v", got, want)
		}
	}
	check([]int64{1, 0, 2})
	if id, err := s.NextReady(ctx, 2, 0); err != nil || id == "" {
		t.Fatalf("NextReady: %q %v", id, err)
	}
	check([]int64{1, 0, 1})
}

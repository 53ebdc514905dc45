package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/page"
	"github.com/boomerang-dev/boomerang/signing"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// driveToFinal makes every attempt of d until the delivery is final.
func (e *env) driveToFinal(t *testing.T, id string) webhooks.Delivery {
	t.Helper()
	for i := 0; i < 50; i++ {
		d := e.get(t, id)
		if d.Status != webhooks.StatusPending {
			return d
		}
		e.clock.Set(*d.NextAttemptAt)
		if err := e.d.Attempt(context.Background(), id, d.Attempts+1); err != nil {
			t.Fatalf("Attempt(%s, %d) = %v", id, d.Attempts+1, err)
		}
	}
	t.Fatalf("delivery %s still PENDING after 50 attempts", id)
	return webhooks.Delivery{}
}

// A replay reopens a FAILED or DELIVERED delivery through the store's
// ReopenDelivery and schedules its next attempt now; every request, before
// and after, carries the same webhook-id and the same body, byte for byte:
// the job's webhook body, which the store rebuilds from the job's record.
func TestReplayKeepsWebhookIDAndBody(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, withMaxAttempts(3))
	r := newReceiver(t, status(500), status(500), status(500), status(200))
	created := e.newDelivery(t, "cli_a", r.URL)
	e.first(t, created)
	d := e.driveToFinal(t, created.ID)
	if d.Status != webhooks.StatusFailed || d.Attempts != 3 {
		t.Fatalf("before replay: Status, Attempts = %s, %d, want FAILED, 3", d.Status, d.Attempts)
	}
	e.clock.Advance(time.Hour)
	now := e.clock.Now()
	before := len(e.sched.Calls())

	rd, err := e.d.Replay(ctx, created.ID)
	if err != nil {
		t.Fatalf("Replay(%s) = %v, want nil", created.ID, err)
	}
	if rd.Status != webhooks.StatusPending || rd.Replays != 1 || rd.Attempts != 3 || !bytes.Equal(rd.Payload, created.Payload) {
		t.Errorf("Replay returned Status, Replays, Attempts = %s, %d, %d, payload %s, want PENDING, 1, 3, %s",
			rd.Status, rd.Replays, rd.Attempts, rd.Payload, created.Payload)
	}
	d = e.get(t, created.ID)
	if d.Status != webhooks.StatusPending || d.Replays != 1 || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(now) {
		t.Errorf("after Replay: Status, Replays, NextAttemptAt = %s, %d, %v, want PENDING, 1, %v", d.Status, d.Replays, d.NextAttemptAt, now)
	}
	checkCalls(t, "Replay", e.sched.Calls()[before:], []schedCall{{created.ID, 4, now}})
	if err := e.d.Attempt(ctx, created.ID, 4); err != nil {
		t.Fatalf("Attempt(%s, 4) = %v", created.ID, err)
	}
	d = e.get(t, created.ID)
	if d.Status != webhooks.StatusDelivered || d.Attempts != 4 || len(d.AttemptLog) != 4 {
		t.Fatalf("after the replayed attempt: Status, Attempts, log = %s, %d, %d, want DELIVERED, 4, 4", d.Status, d.Attempts, len(d.AttemptLog))
	}
	if a := d.AttemptLog[3]; a.Number != 4 || a.Outcome != webhooks.OutcomeDelivered || !a.StartedAt.Equal(now) {
		t.Errorf("attempt 4 = Number %d, Outcome %q, StartedAt %v, want 4, delivered, %v", a.Number, a.Outcome, a.StartedAt, now)
	}
	secrets, _ := e.secrets.SigningSecrets(ctx, "cli_a")
	v, err := signing.NewVerifier(secrets[0])
	if err != nil {
		t.Fatal(err)
	}
	v.Tolerance = 2 * time.Hour // the replay came an hour later
	reqs := r.Requests()
	if len(reqs) != 4 {
		t.Fatalf("receiver saw %d requests, want 4", len(reqs))
	}
	for i, req := range reqs {
		if got := req.Header.Get(signing.HeaderID); got != created.ID {
			t.Errorf("request %d webhook-id = %q, want %q", i+1, got, created.ID)
		}
		if !bytes.Equal(req.Body, created.Payload) {
			t.Errorf("request %d body = %s, want %s byte for byte", i+1, req.Body, created.Payload)
		}
		if err := v.Verify(req.Header, req.Body); err != nil {
			t.Errorf("request %d does not verify: %v", i+1, err)
		}
	}

	// A DELIVERED delivery can be replayed too, and DeliveredAt is cleared.
	if _, err := e.d.Replay(ctx, created.ID); err != nil {
		t.Fatalf("Replay of DELIVERED %s = %v, want nil", created.ID, err)
	}
	if d := e.get(t, created.ID); d.DeliveredAt != nil || d.Replays != 2 || d.Status != webhooks.StatusPending {
		t.Errorf("after the second Replay: DeliveredAt, Replays, Status = %v, %d, %s, want nil, 2, PENDING", d.DeliveredAt, d.Replays, d.Status)
	}
}

// A replayed delivery gets a fresh round of MaxAttempts, with the policy's
// waits starting again from the first.
func TestReplayFreshRound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, withMaxAttempts(3))
	r := newReceiver(t, status(500))
	created := e.newDelivery(t, "cli_a", r.URL)
	e.first(t, created)
	e.driveToFinal(t, created.ID)
	if _, err := e.d.Replay(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	d := e.driveToFinal(t, created.ID)
	if d.Status != webhooks.StatusFailed || d.Attempts != 6 {
		t.Fatalf("after the replay's round: Status, Attempts = %s, %d, want FAILED, 6", d.Status, d.Attempts)
	}
	p := testPolicy()
	wantWait := map[int]time.Duration{4: p.Delay(1), 5: p.Delay(2)}
	for _, a := range d.AttemptLog[3:] {
		if w, ok := wantWait[a.Number]; ok {
			if a.Outcome != webhooks.OutcomeRetry || a.NextAttemptAt == nil || a.NextAttemptAt.Sub(a.StartedAt) != w {
				t.Errorf("attempt %d: Outcome %q, next %v, want retry after %v", a.Number, a.Outcome, a.NextAttemptAt, w)
			}
		} else if a.Outcome != webhooks.OutcomeFailed {
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
	retrying := e.newDelivery(t, "cli_a", r.URL)
	e.first(t, retrying)
	fresh := e.newDelivery(t, "cli_a", r.URL) // PENDING, never attempted

	tests := []struct {
		name string
		id   string
		want error
	}{
		{"PENDING, retrying", retrying.ID, webhooks.ErrConflict},
		{"PENDING, first attempt not made", fresh.ID, webhooks.ErrConflict},
		{"unknown", ids.New(ids.Delivery, e.clock.Now()), webhooks.ErrNotFound},
		{"malformed id", "msg_nope", webhooks.ErrNotFound},
		{"a job's id", retrying.RequestID, webhooks.ErrNotFound},
	}
	for _, tt := range tests {
		before := len(e.sched.Calls())
		_, err := e.d.Replay(ctx, tt.id)
		if !errors.Is(err, tt.want) {
			t.Errorf("Replay(%s) of a %s delivery = %v, want %v", tt.id, tt.name, err, tt.want)
		}
		checkCalls(t, "Replay of a "+tt.name+" delivery", e.sched.Calls()[before:], nil)
	}
	if d := e.get(t, retrying.ID); d.Replays != 0 || d.Attempts != 1 {
		t.Errorf("the refused delivery: Replays, Attempts = %d, %d, want 0, 1", d.Replays, d.Attempts)
	}
}

// If the replay's task cannot be scheduled, the delivery stays PENDING and
// due, so the recovery sweep schedules it.
func TestReplaySchedulerFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	r := newReceiver(t, status(410))
	created := e.newDelivery(t, "cli_a", r.URL)
	e.first(t, created)
	e.sched.setErr(errBoom, 0)
	now := e.clock.Now()
	d, err := e.d.Replay(ctx, created.ID)
	if !errors.Is(err, errBoom) {
		t.Errorf("Replay with a failing scheduler = %v, want %v", err, errBoom)
	}
	if d.Status != webhooks.StatusPending {
		t.Errorf("Replay returned Status %s, want PENDING", d.Status)
	}
	due, _, err := e.store.Overdue(ctx, ids.Partition(created.ID), now.Add(testRecoverAfter), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].RequestID != created.RequestID || due[0].Delivery != webhooks.StatusPending || due[0].DeliveryAttempts != 1 {
		t.Errorf("recovery schedule at replay + RecoverAfter = %+v, want %s with its delivery PENDING after 1 attempt", due, created.RequestID)
	}
}

// bulkFixture: FAILED deliveries of two clients finished a minute apart,
// then a DELIVERED and a PENDING one.
type bulkFixture struct {
	e          *env
	t0         time.Time // when the first finished
	statusOf   map[string]webhooks.Status
	createdAt  map[string]time.Time
	clientOf   map[string]string
	allCreated []string
}

func newBulkFixture(t *testing.T) *bulkFixture {
	t.Helper()
	e := newEnv(t, withMaxAttempts(1))
	fail := newReceiver(t, status(500))
	ok := newReceiver(t, status(200))
	f := &bulkFixture{e: e, t0: e.clock.Now(), statusOf: map[string]webhooks.Status{}, createdAt: map[string]time.Time{},
		clientOf: map[string]string{}}
	add := func(client, url string, attempt bool) {
		d := e.newDelivery(t, client, url)
		if attempt {
			e.first(t, d)
		}
		f.createdAt[d.ID], f.clientOf[d.ID], f.statusOf[d.ID] = d.CreatedAt, client, e.get(t, d.ID).Status
		f.allCreated = append(f.allCreated, d.ID)
		e.clock.Advance(time.Minute)
	}
	for i := 0; i < 6; i++ {
		add("cli_a", fail.URL, true)
		if i < 4 {
			add("cli_b", fail.URL, true)
		}
	}
	add("cli_a", ok.URL, true)
	add("cli_a", ok.URL, false) // PENDING: its first attempt not made yet
	count := map[webhooks.Status]int{}
	for _, s := range f.statusOf {
		count[s]++
	}
	if count[webhooks.StatusFailed] != 10 || count[webhooks.StatusDelivered] != 1 || count[webhooks.StatusPending] != 1 {
		t.Fatalf("fixture: %v, want 10 FAILED, 1 DELIVERED, 1 PENDING", count)
	}
	return f
}

// matches says which fixture deliveries a filter selects.
func (f *bulkFixture) matches(fl webhooks.Filter) map[string]bool {
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
	minute := func(n int) time.Duration { return time.Duration(n) * time.Minute }
	tests := []struct {
		name        string
		filter      func(f *bulkFixture) webhooks.Filter
		wantMatched int64
		wantSkipped int64 // PENDING matches are skipped
	}{
		{"all FAILED", func(f *bulkFixture) webhooks.Filter { return webhooks.Filter{Status: webhooks.StatusFailed} }, 10, 0},
		{"FAILED of client a", func(f *bulkFixture) webhooks.Filter {
			return webhooks.Filter{Status: webhooks.StatusFailed, ClientID: "cli_a"}
		}, 6, 0},
		{"FAILED of client b", func(f *bulkFixture) webhooks.Filter {
			return webhooks.Filter{Status: webhooks.StatusFailed, ClientID: "cli_b"}
		}, 4, 0},
		{"FAILED of client c (none)", func(f *bulkFixture) webhooks.Filter {
			return webhooks.Filter{Status: webhooks.StatusFailed, ClientID: "cli_c"}
		}, 0, 0},
		{"FAILED since minute 4", func(f *bulkFixture) webhooks.Filter {
			return webhooks.Filter{Status: webhooks.StatusFailed, Since: f.t0.Add(minute(4))}
		}, 6, 0},
		{"FAILED until minute 4", func(f *bulkFixture) webhooks.Filter {
			return webhooks.Filter{Status: webhooks.StatusFailed, Until: f.t0.Add(minute(4))}
		}, 4, 0},
		{"FAILED of a in [2m, 8m)", func(f *bulkFixture) webhooks.Filter {
			return webhooks.Filter{Status: webhooks.StatusFailed, ClientID: "cli_a", Since: f.t0.Add(minute(2)), Until: f.t0.Add(minute(8))}
		}, 3, 0},
		{"DELIVERED", func(f *bulkFixture) webhooks.Filter { return webhooks.Filter{Status: webhooks.StatusDelivered} }, 1, 0},
		{"any status of client a", func(f *bulkFixture) webhooks.Filter { return webhooks.Filter{ClientID: "cli_a"} }, 8, 1},
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
			if dry.Matched != tt.wantMatched || dry.State != webhooks.ReplayDone || !dry.DryRun || dry.FinishedAt == nil {
				t.Errorf("dry run = %+v, want Matched %d, state done, finished", dry, tt.wantMatched)
			}
			if ids := e.starter.IDs(); len(ids) != 0 {
				t.Errorf("dry run called the ReplayStarter with %v", ids)
			}
			if err := e.d.RunBulkReplay(ctx, dry.ID); err != nil {
				t.Errorf("RunBulkReplay(dry %s) = %v, want nil", dry.ID, err)
			}
			if got, _ := e.d.GetReplay(ctx, dry.ID); got.Replayed != 0 || got.State != webhooks.ReplayDone {
				t.Errorf("dry run after RunBulkReplay = %+v, want nothing replayed", got)
			}
			checkCalls(t, "dry run", e.sched.Calls(), nil)

			r, err := e.d.StartBulkReplay(ctx, fl, false)
			if err != nil {
				t.Fatalf("StartBulkReplay(%+v) = %v", fl, err)
			}
			if r.Matched != tt.wantMatched || r.State != webhooks.ReplayRunning || r.DryRun || !strings.HasPrefix(r.ID, "rpl_") {
				t.Errorf("StartBulkReplay(%+v) = %+v, want Matched %d, running", fl, r, tt.wantMatched)
			}
			if ids := e.starter.IDs(); len(ids) != 1 || ids[0] != r.ID {
				t.Errorf("ReplayStarter calls = %v, want [%s]", ids, r.ID)
			}
			got, err := e.d.GetReplay(ctx, r.ID)
			if err != nil || got.State != webhooks.ReplayRunning || got.Matched != tt.wantMatched {
				t.Errorf("GetReplay(%s) before the run = %+v, %v, want running", r.ID, got, err)
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
			if got.State != webhooks.ReplayDone || got.Replayed != tt.wantMatched-tt.wantSkipped || got.Skipped != tt.wantSkipped || got.FinishedAt == nil {
				t.Errorf("GetReplay(%s) after the run = %+v, want done, Replayed %d, Skipped %d", r.ID, got, tt.wantMatched-tt.wantSkipped, tt.wantSkipped)
			}
			calls := e.sched.Calls()
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
				case want[id] && f.statusOf[id] != webhooks.StatusPending:
					if d.Status != webhooks.StatusPending || d.Replays != 1 || !scheduled[id] {
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
			if n := len(e.sched.Calls()); int64(n) != got.Replayed {
				t.Errorf("the second RunBulkReplay scheduled %d more", int64(n)-got.Replayed)
			}
		})
	}
}

// partitionFixture: FAILED and DELIVERED deliveries spread over 4
// partitions, more than two pages of FAILED ones.
func partitionFixture(t *testing.T, failed, delivered int) (*env, []string, []string) {
	t.Helper()
	ctx := context.Background()
	e := newEnv(t, withPartitions(4))
	var failedIDs, deliveredIDs []string
	perPartition := map[int]int{}
	for i := 0; i < failed+delivered; i++ {
		d := e.newDelivery(t, []string{"cli_a", "cli_b"}[i%2], "http://127.0.0.1:9/hook")
		code := 410
		if i%((failed+delivered)/delivered) == 0 && len(deliveredIDs) < delivered {
			code = 204
			deliveredIDs = append(deliveredIDs, d.ID)
		} else {
			failedIDs = append(failedIDs, d.ID)
		}
		if err := e.record(ctx, d, code); err != nil {
			t.Fatalf("record(%s, %d) = %v", d.ID, code, err)
		}
		perPartition[ids.Partition(d.ID)]++
		e.clock.Advance(time.Millisecond)
	}
	if len(perPartition) != 4 || len(failedIDs) != failed {
		t.Fatalf("fixture: deliveries per partition %v, %d FAILED; want 4 partitions, %d FAILED", perPartition, len(failedIDs), failed)
	}
	return e, failedIDs, deliveredIDs
}

// A bulk replay over several partitions replays every match exactly once,
// page after page (500 each), and records its progress; one that stops
// within a page (its scheduler fails) keeps what it did, and a resumed run
// finishes the rest.
func TestBulkReplayAcrossPartitions(t *testing.T) {
	t.Parallel()
	const failed, delivered = 1200, 60
	tests := []struct {
		name    string
		okCalls int // the scheduler fails after this many (0: never)
	}{
		{"one run", 0},
		{"stopped within the second page, then resumed", 700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e, failedIDs, deliveredIDs := partitionFixture(t, failed, delivered)
			r, err := e.d.StartBulkReplay(ctx, webhooks.Filter{Status: webhooks.StatusFailed}, false)
			if err != nil || r.Matched != failed {
				t.Fatalf("StartBulkReplay(FAILED) = %+v, %v, want Matched %d", r, err, failed)
			}
			stranded := 0
			if tt.okCalls > 0 {
				e.sched.setErr(errBoom, tt.okCalls)
				if err := e.d.RunBulkReplay(ctx, r.ID); !errors.Is(err, errBoom) {
					t.Fatalf("RunBulkReplay with the scheduler failing after %d calls = %v, want %v", tt.okCalls, err, errBoom)
				}
				got, err := e.d.GetReplay(ctx, r.ID)
				if err != nil {
					t.Fatal(err)
				}
				// The one whose task failed was reopened: recovery schedules it.
				if got.State != webhooks.ReplayRunning || got.Replayed != int64(tt.okCalls+1) || got.Cursor == "" {
					t.Errorf("GetReplay(%s) after the stop = state %s, Replayed %d, cursor %q, want running, %d, the second page's start",
						r.ID, got.State, got.Replayed, got.Cursor, tt.okCalls+1)
				}
				if !slices.Contains(runningReplays(t, e), r.ID) {
					t.Errorf("RunningReplays = %v, want %s among them", runningReplays(t, e), r.ID)
				}
				e.sched.setErr(nil, 0)
				stranded = 1
			}
			if err := e.d.RunBulkReplay(ctx, r.ID); err != nil {
				t.Fatalf("RunBulkReplay(%s) = %v", r.ID, err)
			}
			got, err := e.d.GetReplay(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != webhooks.ReplayDone || got.Replayed != failed || got.Skipped != 0 || got.FinishedAt == nil || got.Cursor != "" {
				t.Errorf("GetReplay(%s) = state %s, Replayed %d, Skipped %d, finished %v, cursor %q, want done, %d, 0, set, none",
					r.ID, got.State, got.Replayed, got.Skipped, got.FinishedAt, got.Cursor, failed)
			}
			if slices.Contains(runningReplays(t, e), r.ID) {
				t.Errorf("RunningReplays still lists %s once done", r.ID)
			}
			times := map[string]int{}
			for _, c := range e.sched.Calls() {
				times[c.ID]++
			}
			var missing []string
			for _, id := range failedIDs {
				switch n := times[id]; {
				case n > 1:
					t.Errorf("%s scheduled %d times, want once", id, n)
				case n == 0:
					missing = append(missing, id)
				}
			}
			if len(missing) != stranded {
				t.Errorf("%d FAILED deliveries never scheduled (%v), want %d", len(missing), missing, stranded)
			}
			for _, id := range missing {
				if d := e.get(t, id); d.Status != webhooks.StatusPending || d.Replays != 1 {
					t.Errorf("the delivery whose task failed: Status, Replays = %s, %d, want PENDING, 1 (due for recovery)", d.Status, d.Replays)
				}
			}
			for _, id := range deliveredIDs {
				if times[id] != 0 {
					t.Errorf("DELIVERED %s was replayed", id)
				}
			}
			if n, err := e.store.CountDeliveries(ctx, webhooks.Filter{Status: webhooks.StatusFailed}); err != nil || n != 0 {
				t.Errorf("CountDeliveries(FAILED) after the replay = %d, %v, want 0", n, err)
			}
		})
	}
}

func runningReplays(t *testing.T, e *env) []string {
	t.Helper()
	rs, err := e.store.RunningReplays(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func TestBulkReplayErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	for _, id := range []string{ids.New(ids.Replay, e.clock.Now()), "rpl_nope"} {
		if _, err := e.d.GetReplay(ctx, id); !errors.Is(err, webhooks.ErrReplayNotFound) {
			t.Errorf("GetReplay(%s) = %v, want ErrReplayNotFound", id, err)
		}
		if err := e.d.RunBulkReplay(ctx, id); !errors.Is(err, webhooks.ErrReplayNotFound) {
			t.Errorf("RunBulkReplay(%s) = %v, want ErrReplayNotFound", id, err)
		}
	}
	e.starter.err = errBoom
	if _, err := e.d.StartBulkReplay(ctx, webhooks.Filter{Status: webhooks.StatusFailed}, false); !errors.Is(err, errBoom) {
		t.Errorf("StartBulkReplay with a failing starter = %v, want %v", err, errBoom)
	}
	// A saved cursor the store did not make stops the run.
	bad := webhooks.BulkReplay{ID: ids.New(ids.Replay, e.clock.Now()), Filter: webhooks.Filter{Status: webhooks.StatusFailed},
		State: webhooks.ReplayRunning, CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now(), Cursor: "!!"}
	if err := e.store.SaveReplay(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RunBulkReplay(ctx, bad.ID); !errors.Is(err, page.ErrBadCursor) {
		t.Errorf("RunBulkReplay with a bad saved cursor = %v, want page.ErrBadCursor", err)
	}
}

func TestBulkReplayJSON(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		r          webhooks.BulkReplay
		wantFilter map[string]any
	}{
		{"empty filter", webhooks.BulkReplay{ID: "rpl_1", State: webhooks.ReplayDone, CreatedAt: t0, Cursor: "abc"}, map[string]any{}},
		{"full filter", webhooks.BulkReplay{ID: "rpl_2", State: webhooks.ReplayRunning, CreatedAt: t0, Cursor: "abc",
			Filter: webhooks.Filter{Status: webhooks.StatusFailed, ClientID: "cli_a", Since: t0, Until: t0.Add(time.Hour)}},
			map[string]any{"status": "FAILED", "clientId": "cli_a", "since": "2025-03-01T12:00:00Z", "until": "2025-03-01T13:00:00Z"}},
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
		if strings.Contains(string(raw), "abc") {
			t.Errorf("%s: JSON %s exposes the cursor", tt.name, raw)
		}
	}
}

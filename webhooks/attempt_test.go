package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// With MaxAttempts 3 and a receiver that always fails, attempts 1..3 end
// FAILED; nothing asks for a 4th.
func TestMaxAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, withMaxAttempts(3))
	r := newReceiver(t, status(500))
	m := msg("cl_a", r.URL)
	start := e.clock.Now()
	e.deliver(t, m)
	for n := 2; n <= 3; n++ {
		d := e.get(t, m.ID)
		e.clock.Set(*d.NextAttemptAt)
		if err := e.d.Attempt(ctx, m.ID, n); err != nil {
			t.Fatalf("Attempt(%s, %d) = %v", m.ID, n, err)
		}
	}
	d := e.get(t, m.ID)
	if d.Status != StatusFailed || d.Attempts != 3 || len(d.AttemptLog) != 3 {
		t.Fatalf("Status, Attempts, log = %s, %d, %d, want FAILED, 3, 3", d.Status, d.Attempts, len(d.AttemptLog))
	}
	p := testPolicy()
	wantOutcomes := []string{OutcomeRetry, OutcomeRetry, OutcomeFailed}
	at := start
	var wantCalls []schedCall
	for i, a := range d.AttemptLog {
		if a.Number != i+1 || a.Outcome != wantOutcomes[i] {
			t.Errorf("attempt %d: Number, Outcome = %d, %q, want %d, %q", i+1, a.Number, a.Outcome, i+1, wantOutcomes[i])
		}
		if !a.StartedAt.Equal(at) {
			t.Errorf("attempt %d StartedAt = %v, want %v", i+1, a.StartedAt, at)
		}
		if i < 2 {
			at = at.Add(p.Delay(i + 1))
			wantCalls = append(wantCalls, schedCall{m.ID, i + 2, at})
			if a.NextAttemptAt == nil || !a.NextAttemptAt.Equal(at) {
				t.Errorf("attempt %d NextAttemptAt = %v, want %v", i+1, a.NextAttemptAt, at)
			}
		} else if a.NextAttemptAt != nil {
			t.Errorf("last attempt NextAttemptAt = %v, want nil", a.NextAttemptAt)
		}
	}
	if d.NextAttemptAt != nil {
		t.Errorf("FAILED delivery NextAttemptAt = %v, want nil", d.NextAttemptAt)
	}
	calls := e.sched.Calls()
	if len(calls) != len(wantCalls) {
		t.Fatalf("Scheduler calls = %v, want %v (no 4th attempt)", calls, wantCalls)
	}
	for i := range calls {
		if calls[i].ID != wantCalls[i].ID || calls[i].Attempt != wantCalls[i].Attempt || !calls[i].At.Equal(wantCalls[i].At) {
			t.Errorf("Scheduler call %d = %v, want %v", i, calls[i], wantCalls[i])
		}
	}
	// A FAILED delivery: further Attempts do nothing.
	if err := e.d.Attempt(ctx, m.ID, 4); err != nil {
		t.Errorf("Attempt(%s, 4) on FAILED = %v, want nil", m.ID, err)
	}
	if n := len(r.Requests()); n != 3 {
		t.Errorf("receiver saw %d requests, want 3", n)
	}
	if n := len(e.sched.Calls()); n != 2 {
		t.Errorf("Scheduler calls after Attempt on FAILED = %d, want still 2", n)
	}
}

// After a crash between recording an attempt and scheduling the next one,
// the task runs again: no second request, and the next attempt is scheduled.
func TestAttemptAlreadyRecordedReschedules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	r := newReceiver(t, status(500))
	m := msg("cl_a", r.URL)
	e.deliver(t, m)
	first := e.get(t, m.ID)

	tests := []struct {
		name string
		n    int
		now  time.Time
	}{
		{"same attempt, same time", 1, e.clock.Now()},
		{"same attempt, much later", 1, e.clock.Now().Add(time.Hour)},
		{"an older attempt number", 0, e.clock.Now()},
	}
	for i, tt := range tests {
		e.clock.Set(tt.now)
		if err := e.d.Attempt(ctx, m.ID, tt.n); err != nil {
			t.Fatalf("%s: Attempt(%s, %d) = %v, want nil", tt.name, m.ID, tt.n, err)
		}
		if got := len(r.Requests()); got != 1 {
			t.Errorf("%s: receiver saw %d requests, want 1", tt.name, got)
		}
		calls := e.sched.Calls()
		if len(calls) != i+2 {
			t.Fatalf("%s: Scheduler calls = %v, want %d", tt.name, calls, i+2)
		}
		if c := calls[len(calls)-1]; c.ID != m.ID || c.Attempt != 2 || !c.At.Equal(*first.NextAttemptAt) {
			t.Errorf("%s: Scheduler call = %v, want {%s 2 %v}", tt.name, c, m.ID, first.NextAttemptAt)
		}
	}
	if d := e.get(t, m.ID); d.Attempts != 1 || d.Status != StatusPending {
		t.Errorf("Attempts, Status = %d, %s, want 1, PENDING", d.Attempts, d.Status)
	}
}

func TestAttemptOnDeliveredDoesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	r := newReceiver(t, status(200))
	m := msg("cl_a", r.URL)
	e.deliver(t, m)
	for _, n := range []int{1, 2, 5} {
		if err := e.d.Attempt(ctx, m.ID, n); err != nil {
			t.Errorf("Attempt(%s, %d) on DELIVERED = %v, want nil", m.ID, n, err)
		}
	}
	if got := len(r.Requests()); got != 1 {
		t.Errorf("receiver saw %d requests, want 1", got)
	}
	if calls := e.sched.Calls(); len(calls) != 0 {
		t.Errorf("Scheduler calls = %v, want none", calls)
	}
	if d := e.get(t, m.ID); d.Status != StatusDelivered || d.Attempts != 1 {
		t.Errorf("Status, Attempts = %s, %d, want DELIVERED, 1", d.Status, d.Attempts)
	}
}

// A task that runs far too early (clock > 1.5 s before NextAttemptAt) only
// re-schedules the attempt at its time.
func TestAttemptEarlyWaitsOrFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name     string
		early    time.Duration
		wantSend bool // a short wait is waited out; a long one fails the run
	}{
		{"300ms early (whole-second rounding)", 300 * time.Millisecond, true},
		{"6s early", 6 * time.Second, false},
		{"an hour early", time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withPolicy(RetryPolicy{Initial: 2 * time.Hour, MaxInterval: 10 * time.Hour, MaxAttempts: 5, Jitter: -1}))
			r := newReceiver(t, status(500))
			m := msg("cl_a", r.URL)
			e.deliver(t, m)
			next := *e.get(t, m.ID).NextAttemptAt
			e.clock.Set(next.Add(-tt.early))
			err := e.d.Attempt(ctx, m.ID, 2)
			wantRequests, wantAttempts := 1, 1
			if tt.wantSend {
				wantRequests, wantAttempts = 2, 2
				if err != nil {
					t.Fatalf("Attempt(%s, 2) %v early = %v, want nil", m.ID, tt.early, err)
				}
			} else if !errors.Is(err, ErrEarly) {
				t.Fatalf("Attempt(%s, 2) %v early = %v, want ErrEarly so the task runs again", m.ID, tt.early, err)
			}
			if got := len(r.Requests()); got != wantRequests {
				t.Errorf("receiver saw %d requests, want %d", got, wantRequests)
			}
			if d := e.get(t, m.ID); d.Attempts != wantAttempts {
				t.Errorf("Attempts = %d, want %d", d.Attempts, wantAttempts)
			}
		})
	}
}

// A PENDING delivery with no NextAttemptAt has nothing to re-schedule.
func TestAttemptRecordedWithoutNextAttempt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	r := newReceiver(t, status(500))
	m := msg("cl_a", r.URL)
	e.deliver(t, m)
	if err := e.rdb.HDel(ctx, deliveryKey(m.ID), "nextAttemptAt").Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Attempt(ctx, m.ID, 1); err != nil {
		t.Errorf("Attempt(%s, 1) without NextAttemptAt = %v, want nil", m.ID, err)
	}
	if calls := e.sched.Calls(); len(calls) != 1 {
		t.Errorf("Scheduler calls = %v, want only the first one", calls)
	}
}

// A receiver cannot make one attempt's log entry large: its response
// headers are kept to maxHeaderLog bytes, longest values cut first.
func TestResponseHeadersAreBounded(t *testing.T) {
	size := func(m map[string]string) int {
		n := 0
		for k, v := range m {
			n += len(k) + len(v)
		}
		return n
	}
	tests := []struct {
		name   string
		header http.Header
		check  func(t *testing.T, got map[string]string)
	}{
		{"small headers are kept whole", http.Header{"A": {"1"}, "B": {"x", "y"}}, func(t *testing.T, got map[string]string) {
			if got["A"] != "1" || got["B"] != "x, y" || len(got) != 2 {
				t.Errorf("got %v", got)
			}
		}},
		{"one 60 KB value is cut, the short ones kept", http.Header{"Short": {"keep me"}, "Huge": {strings.Repeat("é", 30000)}},
			func(t *testing.T, got map[string]string) {
				if got["Short"] != "keep me" || !strings.HasSuffix(got["Huge"], "…") || !utf8.ValidString(got["Huge"]) {
					t.Errorf("Short %q, Huge ends %q (valid UTF-8 %v)", got["Short"], got["Huge"][len(got["Huge"])-10:], utf8.ValidString(got["Huge"]))
				}
			}},
		{"many large values share the room", func() http.Header {
			h := http.Header{}
			for i := 0; i < 60; i++ {
				h.Set(fmt.Sprintf("X-H%02d", i), strings.Repeat("v", 1000))
			}
			return h
		}(), func(t *testing.T, got map[string]string) {
			if len(got) != 60 {
				t.Errorf("%d headers kept, want all 60 (cut)", len(got))
			}
		}},
		{"thousands of names: the rest is counted", func() http.Header {
			h := http.Header{}
			for i := 0; i < 3000; i++ {
				h.Set(fmt.Sprintf("X-Header-%05d", i), "v")
			}
			return h
		}(), func(t *testing.T, got map[string]string) {
			if got["Boomerang-Omitted-Headers"] == "" || len(got) >= 3000 {
				t.Errorf("%d headers kept, omitted %q; want some left out and counted", len(got), got["Boomerang-Omitted-Headers"])
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := flatten(tc.header)
			if n := size(got); n > maxHeaderLog {
				t.Errorf("kept %d bytes of headers, want at most %d", n, maxHeaderLog)
			}
			tc.check(t, got)
		})
	}
}

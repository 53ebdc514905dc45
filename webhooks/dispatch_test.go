package webhooks

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/signing"
)

// headerValue looks a recorded request header up case-insensitively.
func headerValue(h map[string]string, name string) (string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// checkAttemptLog checks the fields every attempt log entry must have.
func checkAttemptLog(t *testing.T, a Attempt, n int, url string, start time.Time, m Message, sentSig string) {
	t.Helper()
	if a.Number != n {
		t.Errorf("attempt Number = %d, want %d", a.Number, n)
	}
	if a.URL != url {
		t.Errorf("attempt %d URL = %q, want %q", n, a.URL, url)
	}
	if !a.StartedAt.Equal(start) {
		t.Errorf("attempt %d StartedAt = %v, want %v (the injected clock)", n, a.StartedAt, start)
	}
	if a.DurationMs < 0 {
		t.Errorf("attempt %d DurationMs = %d, want ≥ 0", n, a.DurationMs)
	}
	want := map[string]string{
		"webhook-id":        m.ID,
		"webhook-timestamp": "",
		"content-type":      "application/json",
		"user-agent":        "Boomerang-test/1.0",
		"webhook-signature": "",
	}
	for name, wantV := range want {
		got, ok := headerValue(a.RequestHeaders, name)
		if !ok {
			t.Errorf("attempt %d RequestHeaders = %v, missing %s", n, a.RequestHeaders, name)
			continue
		}
		if wantV != "" && got != wantV {
			t.Errorf("attempt %d RequestHeaders[%s] = %q, want %q", n, name, got, wantV)
		}
	}
	if ts, _ := headerValue(a.RequestHeaders, "webhook-timestamp"); ts != strconv.FormatInt(start.Unix(), 10) {
		t.Errorf("attempt %d webhook-timestamp = %q, want %d", n, ts, start.Unix())
	}
	sig, _ := headerValue(a.RequestHeaders, "webhook-signature")
	if !strings.Contains(sig, "<redacted>") {
		t.Errorf("attempt %d stored webhook-signature = %q, want it redacted", n, sig)
	}
	if sentSig != "" {
		for _, s := range strings.Fields(sentSig) {
			_, b64, _ := strings.Cut(s, ",")
			if strings.Contains(sig, b64) || strings.Contains(a.ResponseBody, b64) {
				t.Errorf("attempt %d log contains the real signature %q", n, s)
			}
		}
	}
}

func TestDispatch(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	type dispatchCase struct {
		name     string
		handlers []http.HandlerFunc
		opts     []envOption
		url      func(t *testing.T, r *receiver) string // nil: the receiver's /hook
		dynamic  func(e *testEnv) http.HandlerFunc      // a handler that needs the env's clock
		// the first attempt
		wantClass    string
		wantOutcome  string
		wantCode     int
		wantStatus   Status
		wantRetryIn  time.Duration // 0: no retry scheduled
		wantRequests int           // requests the receiver sees for attempt 1
		check        func(t *testing.T, e *testEnv, r *receiver, m Message, d Delivery)
	}
	tests := []dispatchCase{
		{
			name:        "200 delivers",
			handlers:    []http.HandlerFunc{withHeader(200, "X-Receiver", "yes")},
			wantOutcome: OutcomeDelivered, wantCode: 200, wantStatus: StatusDelivered, wantRequests: 1,
			check: func(t *testing.T, e *testEnv, r *receiver, m Message, d Delivery) {
				if got := d.AttemptLog[0].ResponseHeaders["X-Receiver"]; got != "yes" {
					t.Errorf("ResponseHeaders = %v, want X-Receiver: yes", d.AttemptLog[0].ResponseHeaders)
				}
				if d.DeliveredAt == nil || !d.DeliveredAt.Equal(d.AttemptLog[0].StartedAt) {
					t.Errorf("DeliveredAt = %v, want %v", d.DeliveredAt, d.AttemptLog[0].StartedAt)
				}
				if d.NextAttemptAt != nil {
					t.Errorf("NextAttemptAt = %v, want nil once delivered", d.NextAttemptAt)
				}
				if string(d.Payload) != string(m.Body) {
					t.Errorf("Payload = %s, want %s", d.Payload, m.Body)
				}
				if got := r.Requests()[0].Body; string(got) != string(m.Body) {
					t.Errorf("receiver got body %s, want %s", got, m.Body)
				}
			},
		},
		{
			name:        "204 delivers",
			handlers:    []http.HandlerFunc{status(204)},
			wantOutcome: OutcomeDelivered, wantCode: 204, wantStatus: StatusDelivered, wantRequests: 1,
		},
		{
			name:      "500 then 200: retry, then delivered by attempt 2",
			handlers:  []http.HandlerFunc{status(500), status(200)},
			wantClass: ClassStatus, wantOutcome: OutcomeRetry, wantCode: 500, wantStatus: StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
			check: func(t *testing.T, e *testEnv, r *receiver, m Message, d Delivery) {
				if d.LastError != "receiver answered 500" || d.LastStatusCode != 500 {
					t.Errorf("LastError, LastStatusCode = %q, %d, want %q, 500", d.LastError, d.LastStatusCode, "receiver answered 500")
				}
				if got := d.AttemptLog[0].ResponseBody; got != "answer 500" {
					t.Errorf("ResponseBody = %q, want %q", got, "answer 500")
				}
				e.clock.Set(*d.NextAttemptAt)
				if err := e.d.Attempt(context.Background(), m.ID, 2); err != nil {
					t.Fatalf("Attempt(%s, 2) = %v, want nil", m.ID, err)
				}
				d = e.get(t, m.ID)
				if d.Status != StatusDelivered || d.Attempts != 2 || len(d.AttemptLog) != 2 {
					t.Fatalf("after Attempt 2: Status, Attempts, log = %s, %d, %d, want DELIVERED, 2, 2", d.Status, d.Attempts, len(d.AttemptLog))
				}
				a := d.AttemptLog[1]
				checkAttemptLog(t, a, 2, m.URL, e.clock.Now(), m, "")
				if a.Outcome != OutcomeDelivered || a.StatusCode != 200 || a.ErrorClass != "" {
					t.Errorf("attempt 2 = outcome %q, status %d, class %q, want delivered, 200, none", a.Outcome, a.StatusCode, a.ErrorClass)
				}
				if d.LastError != "" || d.LastStatusCode != 200 {
					t.Errorf("LastError, LastStatusCode = %q, %d, want \"\", 200", d.LastError, d.LastStatusCode)
				}
				if got := len(e.sched.Calls()); got != 1 {
					t.Errorf("Scheduler calls = %v, want only the one for attempt 2", e.sched.Calls())
				}
				if n := len(r.Requests()); n != 2 {
					t.Errorf("receiver saw %d requests, want 2", n)
				}
			},
		},
		{
			name:      "410 fails at once",
			handlers:  []http.HandlerFunc{status(410)},
			wantClass: ClassStatus, wantOutcome: OutcomeFailed, wantCode: 410, wantStatus: StatusFailed,
			wantRequests: 1,
		},
		{
			name:      "400 is retried",
			handlers:  []http.HandlerFunc{status(400)},
			wantClass: ClassStatus, wantOutcome: OutcomeRetry, wantCode: 400, wantStatus: StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
		},
		{
			name: "timeout",
			handlers: []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(2 * time.Second):
				}
			}},
			opts:      []envOption{withTimeout(200 * time.Millisecond)},
			wantClass: ClassTimeout, wantOutcome: OutcomeRetry, wantStatus: StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
		},
		{
			name: "302 is not followed",
			url: func(t *testing.T, r *receiver) string {
				target := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
					t.Errorf("the redirect target was requested; redirects must not be followed")
				})
				r.SetHandlers(func(w http.ResponseWriter, req *http.Request) {
					http.Redirect(w, req, target.URL+"/elsewhere", http.StatusFound)
				})
				return r.URL + "/hook"
			},
			wantClass: ClassRedirect, wantOutcome: OutcomeRetry, wantCode: 302, wantStatus: StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
			check: func(t *testing.T, e *testEnv, r *receiver, m Message, d Delivery) {
				if !strings.Contains(d.AttemptLog[0].Error, "redirects are not followed") {
					t.Errorf("Error = %q, want it to say redirects are not followed", d.AttemptLog[0].Error)
				}
				if loc := d.AttemptLog[0].ResponseHeaders["Location"]; !strings.HasSuffix(loc, "/elsewhere") {
					t.Errorf("ResponseHeaders[Location] = %q, want the redirect target", loc)
				}
			},
		},
		{
			name:      "connection refused",
			url:       func(t *testing.T, _ *receiver) string { return refusedURL(t) },
			wantClass: ClassConnect, wantOutcome: OutcomeRetry, wantStatus: StatusPending,
			wantRetryIn: p.Delay(1),
			check: func(t *testing.T, e *testEnv, r *receiver, m Message, d Delivery) {
				if d.AttemptLog[0].Error != "connection refused" {
					t.Errorf("Error = %q, want %q", d.AttemptLog[0].Error, "connection refused")
				}
				if d.AttemptLog[0].ResponseHeaders != nil || d.AttemptLog[0].StatusCode != 0 {
					t.Errorf("refused attempt has response %d %v, want none", d.AttemptLog[0].StatusCode, d.AttemptLog[0].ResponseHeaders)
				}
			},
		},
		{
			name:      "429 Retry-After 7 seconds",
			handlers:  []http.HandlerFunc{withHeader(429, "Retry-After", "7")},
			wantClass: ClassStatus, wantOutcome: OutcomeRetry, wantCode: 429, wantStatus: StatusPending,
			wantRetryIn: 7 * time.Second, wantRequests: 1,
		},
		{
			name:      "429 Retry-After beyond MaxInterval is capped",
			handlers:  []http.HandlerFunc{withHeader(429, "Retry-After", "86400")},
			wantClass: ClassStatus, wantOutcome: OutcomeRetry, wantCode: 429, wantStatus: StatusPending,
			wantRetryIn: p.MaxInterval, wantRequests: 1,
		},
		{
			// Retry-After stretches the policy's wait, never shortens it.
			name:      "429 Retry-After shorter than the backoff",
			handlers:  []http.HandlerFunc{withHeader(429, "Retry-After", "1")},
			wantClass: ClassStatus, wantOutcome: OutcomeRetry, wantCode: 429, wantStatus: StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
		},
		{
			name:      "429 garbage Retry-After uses the backoff",
			handlers:  []http.HandlerFunc{withHeader(429, "Retry-After", "soon")},
			wantClass: ClassStatus, wantOutcome: OutcomeRetry, wantCode: 429, wantStatus: StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
		},
		{
			name:      "500 Retry-After is ignored",
			handlers:  []http.HandlerFunc{withHeader(500, "Retry-After", "60")},
			wantClass: ClassStatus, wantOutcome: OutcomeRetry, wantCode: 500, wantStatus: StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
		},
		{
			name: "503 Retry-After HTTP date",
			dynamic: func(e *testEnv) http.HandlerFunc {
				return withHeader(503, "Retry-After", e.clock.Now().Add(90*time.Second).Format(http.TimeFormat))
			},
			wantClass: ClassStatus, wantOutcome: OutcomeRetry, wantCode: 503, wantStatus: StatusPending,
			wantRetryIn: 90 * time.Second, wantRequests: 1,
		},
		{
			name: "100 KiB response body: 4096 bytes stored",
			handlers: []http.HandlerFunc{func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(200)
				w.Write([]byte(strings.Repeat("x", 100<<10)))
			}},
			wantOutcome: OutcomeDelivered, wantCode: 200, wantStatus: StatusDelivered, wantRequests: 1,
			check: func(t *testing.T, e *testEnv, r *receiver, m Message, d Delivery) {
				if got := len(d.AttemptLog[0].ResponseBody); got != 4096 {
					t.Errorf("len(ResponseBody) = %d, want 4096", got)
				}
			},
		},
		{
			name: "invalid UTF-8 in the response body is replaced",
			handlers: []http.HandlerFunc{func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(500)
				w.Write([]byte("bad \xff byte"))
			}},
			wantClass: ClassStatus, wantOutcome: OutcomeRetry, wantCode: 500, wantStatus: StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
			check: func(t *testing.T, e *testEnv, r *receiver, m Message, d Delivery) {
				if got, want := d.AttemptLog[0].ResponseBody, "bad \uFFFD byte"; got != want {
					t.Errorf("ResponseBody = %q, want %q", got, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.opts...)
			r := newReceiver(t, tt.handlers...)
			url := r.URL + "/hook"
			if tt.url != nil {
				url = tt.url(t, r)
			}
			if tt.dynamic != nil {
				r.SetHandlers(tt.dynamic(e))
			}
			m := msg("cl_a", url)
			start := e.clock.Now()
			e.deliver(t, m)

			d := e.get(t, m.ID)
			if d.Status != tt.wantStatus || d.Attempts != 1 || len(d.AttemptLog) != 1 {
				t.Fatalf("after Deliver to %q: Status, Attempts, log = %s, %d, %d, want %s, 1, 1 (log %+v)",
					tt.name, d.Status, d.Attempts, len(d.AttemptLog), tt.wantStatus, d.AttemptLog)
			}
			var sentSig string
			if reqs := r.Requests(); len(reqs) > 0 {
				sentSig = reqs[0].Header.Get(signing.HeaderSignature)
			}
			if got := len(r.Requests()); got != tt.wantRequests {
				t.Errorf("receiver saw %d requests, want %d", got, tt.wantRequests)
			}
			a := d.AttemptLog[0]
			checkAttemptLog(t, a, 1, url, start, m, sentSig)
			if a.ErrorClass != tt.wantClass || a.Outcome != tt.wantOutcome || a.StatusCode != tt.wantCode {
				t.Errorf("attempt 1: class, outcome, status = %q, %q, %d, want %q, %q, %d (error %q)",
					a.ErrorClass, a.Outcome, a.StatusCode, tt.wantClass, tt.wantOutcome, tt.wantCode, a.Error)
			}
			if tt.wantClass != "" && a.Error == "" {
				t.Errorf("attempt 1 class %q has no Error message", a.ErrorClass)
			}
			calls := e.sched.Calls()
			if tt.wantRetryIn == 0 {
				if a.NextAttemptAt != nil || d.NextAttemptAt != nil || len(calls) != 0 {
					t.Errorf("NextAttemptAt = %v / %v, Scheduler calls = %v, want no retry", a.NextAttemptAt, d.NextAttemptAt, calls)
				}
			} else {
				want := start.Add(time.Duration(a.DurationMs)*time.Millisecond + tt.wantRetryIn)
				if a.NextAttemptAt == nil || !a.NextAttemptAt.Equal(want) {
					t.Errorf("attempt NextAttemptAt = %v, want start + %v = %v", a.NextAttemptAt, tt.wantRetryIn, want)
				}
				if d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(want) {
					t.Errorf("delivery NextAttemptAt = %v, want %v", d.NextAttemptAt, want)
				}
				wantCalls := []schedCall{{m.ID, 2, want}}
				if len(calls) != 1 || calls[0].ID != m.ID || calls[0].Attempt != 2 || !calls[0].At.Equal(want) {
					t.Errorf("Scheduler calls = %v, want %v", calls, wantCalls)
				}
			}
			if tt.check != nil {
				tt.check(t, e, r, m, d)
			}
		})
	}
}

// egress.Policy{} refuses loopback: the attempt is "blocked" and final.
func TestDispatchBlockedByEgressPolicy(t *testing.T) {
	t.Parallel()
	tr := egress.Policy{}.Transport()
	e := newEnv(t, withTransport(tr))
	r := newReceiver(t, status(200))
	m := msg("cl_a", r.URL+"/hook")
	e.deliver(t, m)
	d := e.get(t, m.ID)
	if d.Status != StatusFailed || len(d.AttemptLog) != 1 {
		t.Fatalf("Status, log = %s, %d, want FAILED, 1", d.Status, len(d.AttemptLog))
	}
	a := d.AttemptLog[0]
	if a.ErrorClass != ClassBlocked || a.Outcome != OutcomeFailed || a.NextAttemptAt != nil {
		t.Errorf("attempt = class %q, outcome %q, next %v, want blocked, failed, nil", a.ErrorClass, a.Outcome, a.NextAttemptAt)
	}
	if !strings.Contains(a.Error, "loopback") {
		t.Errorf("Error = %q, want it to name the loopback refusal", a.Error)
	}
	if calls := e.sched.Calls(); len(calls) != 0 {
		t.Errorf("Scheduler calls = %v, want none", calls)
	}
	if n := len(r.Requests()); n != 0 {
		t.Errorf("receiver saw %d requests, want 0 (blocked before connecting)", n)
	}
}

// A TLS receiver whose certificate the transport does not trust.
func TestDispatchUntrustedTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := newTLSReceiver(t)
	m := msg("cl_a", srv.URL+"/hook")
	e.deliver(t, m)
	d := e.get(t, m.ID)
	a := d.AttemptLog[0]
	if a.ErrorClass != ClassTLS || a.Outcome != OutcomeRetry || d.Status != StatusPending {
		t.Errorf("attempt = class %q (%s), outcome %q, status %s, want tls, retry, PENDING", a.ErrorClass, a.Error, a.Outcome, d.Status)
	}
	if strings.HasPrefix(a.Error, "Post ") {
		t.Errorf("Error = %q, want the URL prefix trimmed", a.Error)
	}
}

func TestDispatchInvalidURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := msg("cl_a", "http://[::1")
	e.deliver(t, m)
	a := e.get(t, m.ID).AttemptLog[0]
	if a.ErrorClass != ClassConnect || !strings.HasPrefix(a.Error, "invalid request: ") {
		t.Errorf("attempt to %q = class %q, error %q, want connect, invalid request", m.URL, a.ErrorClass, a.Error)
	}
}

// A 2xx is the receiver's answer even if its body never finishes: a slow
// trickle is cut off by the timeout, an endless stream after 64 KiB, and
// neither turns the acknowledgement into a failure.
func TestDispatchUnendingBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"trickle past the timeout", func(w http.ResponseWriter, req *http.Request) {
			w.WriteHeader(200)
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			select {
			case <-req.Context().Done():
			case <-time.After(2 * time.Second):
			}
		}},
		{"endless fast stream", func(w http.ResponseWriter, req *http.Request) {
			w.WriteHeader(200)
			chunk := []byte(strings.Repeat("x", 32<<10))
			for i := 0; i < 1<<15 && req.Context().Err() == nil; i++ { // up to 1 GiB, bounded
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withTimeout(300*time.Millisecond))
			r := newReceiver(t, tt.handler)
			m := msg("cl_a", r.URL+"/hook")
			e.deliver(t, m)
			d := e.get(t, m.ID)
			a := d.AttemptLog[0]
			if d.Status != StatusDelivered || a.ErrorClass != "" || a.StatusCode != 200 || len(a.ResponseBody) > maxResponseStore {
				t.Errorf("attempt = class %q (%s), status %d, body %d bytes, delivery %s; want delivered with ≤ 4 KiB kept",
					a.ErrorClass, a.Error, a.StatusCode, len(a.ResponseBody), d.Status)
			}
		})
	}
}

// Deliver of a message already handed over makes no second request.
func TestDeliverIsIdempotent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		wantSchd int // scheduler calls after both Delivers
	}{
		{"delivered", status(200), 0},
		{"retrying", status(500), 2}, // the repeat re-schedules attempt 2
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := newReceiver(t, tt.handler)
			m := msg("cl_a", r.URL)
			e.deliver(t, m)
			e.deliver(t, m)
			if n := len(r.Requests()); n != 1 {
				t.Errorf("receiver saw %d requests after two Delivers of %s, want 1", n, m.ID)
			}
			calls := e.sched.Calls()
			if len(calls) != tt.wantSchd {
				t.Fatalf("Scheduler calls = %v, want %d", calls, tt.wantSchd)
			}
			for _, c := range calls {
				if c != calls[0] {
					t.Errorf("Scheduler calls = %v, want the same (id, attempt 2, at) each time", calls)
				}
			}
			if d := e.get(t, m.ID); d.Attempts != 1 {
				t.Errorf("Attempts = %d, want 1", d.Attempts)
			}
		})
	}
}

func TestAttemptErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("unknown delivery", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		if err := e.d.Attempt(ctx, "msg_unknown", 1); err != nil {
			t.Errorf("Attempt(unknown, 1) = %v, want nil (nothing to do)", err)
		}
		if calls := e.sched.Calls(); len(calls) != 0 {
			t.Errorf("Scheduler calls = %v, want none", calls)
		}
	})
	t.Run("secret source fails", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.secrets.err = errBoom
		r := newReceiver(t, status(200))
		m := msg("cl_a", r.URL)
		_, err := e.d.Deliver(ctx, m, nil)
		if !errors.Is(err, errBoom) {
			t.Errorf("Deliver with failing secrets = %v, want %v", err, errBoom)
		}
		if d := e.get(t, m.ID); d.Status != StatusPending || d.Attempts != 0 || len(r.Requests()) != 0 {
			t.Errorf("after failed Deliver: Status, Attempts, requests = %s, %d, %d, want PENDING, 0, 0", d.Status, d.Attempts, len(r.Requests()))
		}
	})
	t.Run("invalid secret", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.secrets.Set("cl_a", "not a secret")
		r := newReceiver(t, status(200))
		m := msg("cl_a", r.URL)
		if _, err := e.d.Deliver(ctx, m, nil); err == nil {
			t.Errorf("Deliver with an invalid secret = nil, want an error")
		}
		if n := len(r.Requests()); n != 0 {
			t.Errorf("receiver saw %d requests, want 0", n)
		}
	})
	t.Run("scheduler fails", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.sched.err = errBoom
		r := newReceiver(t, status(500))
		m := msg("cl_a", r.URL)
		if _, err := e.d.Deliver(ctx, m, nil); !errors.Is(err, errBoom) {
			t.Errorf("Deliver with failing scheduler = %v, want %v (so the task runs again)", err, errBoom)
		}
		// The attempt is recorded; running the task again only re-schedules.
		e.sched.err = nil
		if err := e.d.Attempt(ctx, m.ID, 1); err != nil {
			t.Fatalf("Attempt(%s, 1) again = %v, want nil", m.ID, err)
		}
		d := e.get(t, m.ID)
		if calls := e.sched.Calls(); len(calls) != 1 || calls[0].Attempt != 2 || !calls[0].At.Equal(*d.NextAttemptAt) {
			t.Errorf("Scheduler calls = %v, want attempt 2 at %v", calls, d.NextAttemptAt)
		}
		if n := len(r.Requests()); n != 1 {
			t.Errorf("receiver saw %d requests, want 1", n)
		}
	})
}

// A task may run up to a second early: Attempt waits that out (real time,
// at most 1.5 s) and then sends; a cancelled context stops the wait.
func TestAttemptSlightlyEarly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	r := newReceiver(t, status(500), status(200))
	m := msg("cl_a", r.URL)
	e.deliver(t, m)
	d := e.get(t, m.ID)
	e.clock.Set(d.NextAttemptAt.Add(-50 * time.Millisecond))

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := e.d.Attempt(cctx, m.ID, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("Attempt(%s, 2) 50ms early with a cancelled context = %v, want context.Canceled", m.ID, err)
	}
	if n := len(r.Requests()); n != 1 {
		t.Fatalf("receiver saw %d requests, want 1", n)
	}
	if err := e.d.Attempt(ctx, m.ID, 2); err != nil {
		t.Fatalf("Attempt(%s, 2) 50ms early = %v, want nil", m.ID, err)
	}
	if d := e.get(t, m.ID); d.Status != StatusDelivered || d.Attempts != 2 {
		t.Errorf("Status, Attempts = %s, %d, want DELIVERED, 2", d.Status, d.Attempts)
	}
}

// Two runs of the same attempt (say, a task redelivered while the first run
// still works): only one is recorded; the loser neither fails nor schedules.
func TestAttemptRaceLoserRecordsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	r := newReceiver(t, status(500))
	m := msg("cl_a", r.URL)
	if _, err := e.store.Create(ctx, m, e.clock.Now(), nil); err != nil {
		t.Fatal(err)
	}
	dl, err := e.store.Get(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.d.attempt(ctx, dl); err != nil {
		t.Fatalf("first attempt = %v, want nil", err)
	}
	if err := e.d.attempt(ctx, dl); err != nil {
		t.Fatalf("second run of attempt 1 = %v, want nil", err)
	}
	d := e.get(t, m.ID)
	if d.Attempts != 1 || len(d.AttemptLog) != 1 {
		t.Errorf("Attempts, log = %d, %d, want 1, 1", d.Attempts, len(d.AttemptLog))
	}
	if calls := e.sched.Calls(); len(calls) != 1 {
		t.Errorf("Scheduler calls = %v, want 1", calls)
	}
}

func TestAttemptLogRoundTrip(t *testing.T) {
	next := time.Date(2026, 11, 26, 12, 0, 5, 0, time.UTC)
	d := Delivery{ID: "msg_1", URL: "https://example.com/h", Payload: []byte(`{"a":1}`)}
	for _, sigs := range []int{1, 2} {
		a := Attempt{Number: 3, StartedAt: time.Date(2026, 11, 26, 12, 0, 0, 123e6, time.UTC), DurationMs: 42, URL: d.URL,
			RequestHeaders: requestHeaders(d, 1795737600, "Boomerang/test", sigs), StatusCode: 503,
			ResponseHeaders: map[string]string{"Retry-After": "5"}, ResponseBody: "busy", ErrorClass: ClassStatus,
			Error: "receiver answered 503", Outcome: OutcomeRetry, NextAttemptAt: &next, sigs: sigs}
		a.RequestHeaders["webhook-timestamp"] = strconv.FormatInt(a.StartedAt.Unix(), 10)
		raw, err := encodeAttempt(a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeAttempt(raw, d)
		if err != nil {
			t.Fatal(err)
		}
		a.sigs = 0
		if !reflect.DeepEqual(got, a) {
			t.Errorf("round trip with %d signatures:\n got %+v\nwant %+v", sigs, got, a)
		}
		if want := map[int]string{1: "v1,<redacted>", 2: "2 × v1,<redacted>"}[sigs]; got.RequestHeaders["webhook-signature"] != want {
			t.Errorf("signature header %q, want %q", got.RequestHeaders["webhook-signature"], want)
		}
	}
	if _, err := decodeAttempt([]byte("{"), d); err == nil {
		t.Error("decodeAttempt accepted broken JSON")
	}
}

func TestFlatten(t *testing.T) {
	h := http.Header{"A": {"1", "2"}, "B": {"x"}}
	got := flatten(h)
	if len(got) != 2 || got["A"] != "1, 2" || got["B"] != "x" {
		t.Errorf("flatten(%v) = %v, want A: \"1, 2\", B: \"x\"", h, got)
	}
}

// The log through a Logger option must not break anything.
func TestDispatcherDefaults(t *testing.T) {
	d := NewDispatcher(DispatcherOptions{})
	if d.now == nil || d.log == nil {
		t.Fatalf("NewDispatcher(zero options): now set %v, log %v, want defaults", d.now != nil, d.log)
	}
	if got := d.now(); time.Since(got) > time.Minute || time.Until(got) > time.Minute {
		t.Errorf("default Now() = %v, want about time.Now()", got)
	}
	if d.client.CheckRedirect == nil {
		t.Errorf("client.CheckRedirect = nil, want redirects refused")
	}
}

// The stored excerpt is cut at 4096 bytes without splitting a UTF-8
// character (which used to become a U+FFFD and grow the excerpt past the
// limit); bytes that are invalid in the answer itself become U+FFFD.
func TestDispatchResponseBodyCutAtCharacter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want string
	}{
		{"ascii", strings.Repeat("x", 5000), strings.Repeat("x", 4096)},
		{"2-byte char across the limit", strings.Repeat("x", 4095) + "é" + "tail", strings.Repeat("x", 4095)},
		{"3-byte char across the limit", strings.Repeat("x", 4094) + "€" + "tail", strings.Repeat("x", 4094)},
		{"4-byte char across the limit", strings.Repeat("x", 4093) + "😀" + "tail", strings.Repeat("x", 4093)},
		{"char ending at the limit", strings.Repeat("x", 4094) + "é" + "tail", strings.Repeat("x", 4094) + "é"},
		{"invalid byte at the limit", strings.Repeat("x", 4095) + "\xff" + "tail", strings.Repeat("x", 4095) + "\uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(tt.body)) })
			m := msg("cl_a", r.URL)
			e.deliver(t, m)
			got := e.get(t, m.ID).AttemptLog[0].ResponseBody
			if got != tt.want {
				t.Errorf("ResponseBody of a %d-byte answer = %d bytes ending %q, want %d bytes ending %q",
					len(tt.body), len(got), got[max(0, len(got)-8):], len(tt.want), tt.want[len(tt.want)-8:])
			}
		})
	}
}

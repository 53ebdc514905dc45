package webhooks_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/signing"
	"github.com/boomerang-dev/boomerang/webhooks"
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

// checkAttemptLog checks the fields every attempt log entry must have, as
// the store gives them back: the request headers rebuilt, the signature
// redacted.
func checkAttemptLog(t *testing.T, a webhooks.Attempt, n int, start time.Time, d webhooks.Delivery, sentSig string) {
	t.Helper()
	if a.Number != n {
		t.Errorf("attempt Number = %d, want %d", a.Number, n)
	}
	if a.URL != d.URL {
		t.Errorf("attempt %d URL = %q, want %q", n, a.URL, d.URL)
	}
	if !a.StartedAt.Equal(start) {
		t.Errorf("attempt %d StartedAt = %v, want %v (the injected clock)", n, a.StartedAt, start)
	}
	if a.DurationMs < 0 {
		t.Errorf("attempt %d DurationMs = %d, want ≥ 0", n, a.DurationMs)
	}
	want := map[string]string{
		"webhook-id":        d.ID,
		"webhook-timestamp": strconv.FormatInt(start.Unix(), 10),
		"content-type":      "application/json",
		"content-length":    strconv.Itoa(len(d.Payload)),
		"user-agent":        "Boomerang-test/1.0",
		"webhook-signature": "v1,<redacted>",
	}
	for name, wantV := range want {
		if got, ok := headerValue(a.RequestHeaders, name); !ok || got != wantV {
			t.Errorf("attempt %d RequestHeaders[%s] = %q (present %v), want %q", n, name, got, ok, wantV)
		}
	}
	for _, s := range strings.Fields(sentSig) {
		_, b64, _ := strings.Cut(s, ",")
		for k, v := range a.RequestHeaders {
			if strings.Contains(v, b64) {
				t.Errorf("attempt %d log header %s holds the real signature %q", n, k, s)
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
		opts     []option
		url      func(t *testing.T, r *receiver) string // nil: the receiver's /hook
		dynamic  func(e *env) http.HandlerFunc          // a handler that needs the env's clock
		// the first attempt
		wantClass    string
		wantOutcome  string
		wantCode     int
		wantStatus   webhooks.Status
		wantRetryIn  time.Duration // 0: no retry scheduled
		wantRequests int           // requests the receiver sees for attempt 1
		check        func(t *testing.T, e *env, r *receiver, d webhooks.Delivery)
	}
	tests := []dispatchCase{
		{
			name:        "200 delivers",
			handlers:    []http.HandlerFunc{withHeader(200, "X-Receiver", "yes")},
			wantOutcome: webhooks.OutcomeDelivered, wantCode: 200, wantStatus: webhooks.StatusDelivered, wantRequests: 1,
			check: func(t *testing.T, e *env, r *receiver, d webhooks.Delivery) {
				if got := d.AttemptLog[0].ResponseHeaders["X-Receiver"]; got != "yes" {
					t.Errorf("ResponseHeaders = %v, want X-Receiver: yes", d.AttemptLog[0].ResponseHeaders)
				}
				if d.DeliveredAt == nil || !d.DeliveredAt.Equal(d.AttemptLog[0].StartedAt) {
					t.Errorf("DeliveredAt = %v, want %v", d.DeliveredAt, d.AttemptLog[0].StartedAt)
				}
				if d.NextAttemptAt != nil {
					t.Errorf("NextAttemptAt = %v, want nil once delivered", d.NextAttemptAt)
				}
			},
		},
		{
			name:        "204 delivers",
			handlers:    []http.HandlerFunc{status(204)},
			wantOutcome: webhooks.OutcomeDelivered, wantCode: 204, wantStatus: webhooks.StatusDelivered, wantRequests: 1,
		},
		{
			name:      "500 then 200: retry, then delivered by attempt 2",
			handlers:  []http.HandlerFunc{status(500), status(200)},
			wantClass: webhooks.ClassStatus, wantOutcome: webhooks.OutcomeRetry, wantCode: 500, wantStatus: webhooks.StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
			check: func(t *testing.T, e *env, r *receiver, d webhooks.Delivery) {
				if d.LastError != "receiver answered 500" || d.LastStatusCode != 500 {
					t.Errorf("LastError, LastStatusCode = %q, %d, want %q, 500", d.LastError, d.LastStatusCode, "receiver answered 500")
				}
				if got := d.AttemptLog[0].ResponseBody; got != "answer 500" {
					t.Errorf("ResponseBody = %q, want %q", got, "answer 500")
				}
				e.clock.Set(*d.NextAttemptAt)
				if err := e.d.Attempt(context.Background(), d.ID, 2); err != nil {
					t.Fatalf("Attempt(%s, 2) = %v, want nil", d.ID, err)
				}
				d = e.get(t, d.ID)
				if d.Status != webhooks.StatusDelivered || d.Attempts != 2 || len(d.AttemptLog) != 2 {
					t.Fatalf("after Attempt 2: Status, Attempts, log = %s, %d, %d, want DELIVERED, 2, 2", d.Status, d.Attempts, len(d.AttemptLog))
				}
				a := d.AttemptLog[1]
				checkAttemptLog(t, a, 2, e.clock.Now(), d, r.Requests()[1].Header.Get(signing.HeaderSignature))
				if a.Outcome != webhooks.OutcomeDelivered || a.StatusCode != 200 || a.ErrorClass != "" {
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
			wantClass: webhooks.ClassStatus, wantOutcome: webhooks.OutcomeFailed, wantCode: 410, wantStatus: webhooks.StatusFailed,
			wantRequests: 1,
		},
		{
			name:      "400 is retried",
			handlers:  []http.HandlerFunc{status(400)},
			wantClass: webhooks.ClassStatus, wantOutcome: webhooks.OutcomeRetry, wantCode: 400, wantStatus: webhooks.StatusPending,
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
			opts:      []option{withTimeout(200 * time.Millisecond)},
			wantClass: webhooks.ClassTimeout, wantOutcome: webhooks.OutcomeRetry, wantStatus: webhooks.StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
		},
		{
			name: "302 is not followed and counts as a failure",
			url: func(t *testing.T, r *receiver) string {
				target := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
					t.Errorf("the redirect target was requested; redirects must not be followed")
				})
				r.SetHandlers(func(w http.ResponseWriter, req *http.Request) {
					http.Redirect(w, req, target.URL+"/elsewhere", http.StatusFound)
				})
				return r.URL + "/hook"
			},
			wantClass: webhooks.ClassRedirect, wantOutcome: webhooks.OutcomeRetry, wantCode: 302, wantStatus: webhooks.StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
			check: func(t *testing.T, e *env, r *receiver, d webhooks.Delivery) {
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
			wantClass: webhooks.ClassConnect, wantOutcome: webhooks.OutcomeRetry, wantStatus: webhooks.StatusPending,
			wantRetryIn: p.Delay(1),
			check: func(t *testing.T, e *env, r *receiver, d webhooks.Delivery) {
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
			wantClass: webhooks.ClassStatus, wantOutcome: webhooks.OutcomeRetry, wantCode: 429, wantStatus: webhooks.StatusPending,
			wantRetryIn: 7 * time.Second, wantRequests: 1,
		},
		{
			name:      "429 Retry-After beyond MaxInterval is capped",
			handlers:  []http.HandlerFunc{withHeader(429, "Retry-After", "86400")},
			wantClass: webhooks.ClassStatus, wantOutcome: webhooks.OutcomeRetry, wantCode: 429, wantStatus: webhooks.StatusPending,
			wantRetryIn: p.MaxInterval, wantRequests: 1,
		},
		{
			// Retry-After stretches the policy's wait, never shortens it.
			name:      "429 Retry-After shorter than the backoff",
			handlers:  []http.HandlerFunc{withHeader(429, "Retry-After", "1")},
			wantClass: webhooks.ClassStatus, wantOutcome: webhooks.OutcomeRetry, wantCode: 429, wantStatus: webhooks.StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
		},
		{
			name:      "429 garbage Retry-After uses the backoff",
			handlers:  []http.HandlerFunc{withHeader(429, "Retry-After", "soon")},
			wantClass: webhooks.ClassStatus, wantOutcome: webhooks.OutcomeRetry, wantCode: 429, wantStatus: webhooks.StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
		},
		{
			name:      "500 Retry-After is ignored",
			handlers:  []http.HandlerFunc{withHeader(500, "Retry-After", "60")},
			wantClass: webhooks.ClassStatus, wantOutcome: webhooks.OutcomeRetry, wantCode: 500, wantStatus: webhooks.StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
		},
		{
			name: "503 Retry-After HTTP date",
			dynamic: func(e *env) http.HandlerFunc {
				return withHeader(503, "Retry-After", e.clock.Now().Add(90*time.Second).Format(http.TimeFormat))
			},
			wantClass: webhooks.ClassStatus, wantOutcome: webhooks.OutcomeRetry, wantCode: 503, wantStatus: webhooks.StatusPending,
			wantRetryIn: 90 * time.Second, wantRequests: 1,
		},
		{
			name: "100 KiB response body: 4096 bytes stored",
			handlers: []http.HandlerFunc{func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(200)
				w.Write([]byte(strings.Repeat("x", 100<<10)))
			}},
			wantOutcome: webhooks.OutcomeDelivered, wantCode: 200, wantStatus: webhooks.StatusDelivered, wantRequests: 1,
			check: func(t *testing.T, e *env, r *receiver, d webhooks.Delivery) {
				if got := len(d.AttemptLog[0].ResponseBody); got != webhooks.MaxResponseStoreForTest {
					t.Errorf("len(ResponseBody) = %d, want %d", got, webhooks.MaxResponseStoreForTest)
				}
			},
		},
		{
			name: "invalid UTF-8 in the response body is replaced",
			handlers: []http.HandlerFunc{func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(500)
				w.Write([]byte("bad \xff byte"))
			}},
			wantClass: webhooks.ClassStatus, wantOutcome: webhooks.OutcomeRetry, wantCode: 500, wantStatus: webhooks.StatusPending,
			wantRetryIn: p.Delay(1), wantRequests: 1,
			check: func(t *testing.T, e *env, r *receiver, d webhooks.Delivery) {
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
			created := e.newDelivery(t, "cli_a", url)
			start := e.clock.Now()
			e.first(t, created)

			d := e.get(t, created.ID)
			if d.Status != tt.wantStatus || d.Attempts != 1 || len(d.AttemptLog) != 1 {
				t.Fatalf("after FirstAttempt: Status, Attempts, log = %s, %d, %d, want %s, 1, 1 (log %+v)",
					d.Status, d.Attempts, len(d.AttemptLog), tt.wantStatus, d.AttemptLog)
			}
			reqs := r.Requests()
			if len(reqs) != tt.wantRequests {
				t.Errorf("receiver saw %d requests, want %d", len(reqs), tt.wantRequests)
			}
			var sentSig string
			if len(reqs) > 0 {
				sentSig = reqs[0].Header.Get(signing.HeaderSignature)
				if !bytes.Equal(reqs[0].Body, created.Payload) {
					t.Errorf("receiver got body %s, want the job's webhook body %s", reqs[0].Body, created.Payload)
				}
			}
			if !bytes.Equal(d.Payload, created.Payload) {
				t.Errorf("stored Payload = %s, want %s", d.Payload, created.Payload)
			}
			a := d.AttemptLog[0]
			checkAttemptLog(t, a, 1, start, d, sentSig)
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
				checkCalls(t, "after attempt 1", calls, []schedCall{{created.ID, 2, want}})
			}
			if tt.check != nil {
				tt.check(t, e, r, d)
			}
		})
	}
}

// egress.Policy{} refuses loopback: the attempt is "blocked" and final.
func TestDispatchBlockedByEgressPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withTransport(egress.Policy{}.Transport()))
	r := newReceiver(t, status(200))
	created := e.newDelivery(t, "cli_a", r.URL+"/hook")
	e.first(t, created)
	d := e.get(t, created.ID)
	if d.Status != webhooks.StatusFailed || len(d.AttemptLog) != 1 {
		t.Fatalf("Status, log = %s, %d, want FAILED, 1", d.Status, len(d.AttemptLog))
	}
	a := d.AttemptLog[0]
	if a.ErrorClass != webhooks.ClassBlocked || a.Outcome != webhooks.OutcomeFailed || a.NextAttemptAt != nil {
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
	created := e.newDelivery(t, "cli_a", srv.URL+"/hook")
	e.first(t, created)
	d := e.get(t, created.ID)
	a := d.AttemptLog[0]
	if a.ErrorClass != webhooks.ClassTLS || a.Outcome != webhooks.OutcomeRetry || d.Status != webhooks.StatusPending {
		t.Errorf("attempt = class %q (%s), outcome %q, status %s, want tls, retry, PENDING", a.ErrorClass, a.Error, a.Outcome, d.Status)
	}
	if strings.HasPrefix(a.Error, "Post ") {
		t.Errorf("Error = %q, want the URL prefix trimmed", a.Error)
	}
}

func TestDispatchInvalidURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	created := e.newDelivery(t, "cli_a", "http://[::1")
	e.first(t, created)
	a := e.get(t, created.ID).AttemptLog[0]
	if a.ErrorClass != webhooks.ClassConnect || !strings.HasPrefix(a.Error, "invalid request: ") {
		t.Errorf("attempt to %q = class %q, error %q, want connect, invalid request", created.URL, a.ErrorClass, a.Error)
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
			created := e.newDelivery(t, "cli_a", r.URL+"/hook")
			e.first(t, created)
			d := e.get(t, created.ID)
			a := d.AttemptLog[0]
			if d.Status != webhooks.StatusDelivered || a.ErrorClass != "" || a.StatusCode != 200 || len(a.ResponseBody) > webhooks.MaxResponseStoreForTest {
				t.Errorf("attempt = class %q (%s), status %d, body %d bytes, delivery %s; want delivered with ≤ 4 KiB kept",
					a.ErrorClass, a.Error, a.StatusCode, len(a.ResponseBody), d.Status)
			}
		})
	}
}

// An attempt reads at most 64 KiB of an answer: a receiver that sends
// exactly that much and then keeps the response open sees the attempt hang
// up, long before the delivery timeout.
func TestDispatchReadsAtMost64KiB(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withTimeout(time.Minute))
	var hungUp atomic.Bool
	r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
		w.WriteHeader(200)
		w.Write(bytes.Repeat([]byte("y"), webhooks.MaxResponseReadForTest))
		w.(http.Flusher).Flush()
		select {
		case <-req.Context().Done():
			hungUp.Store(true)
		case <-time.After(10 * time.Second): // only if the attempt reads on
		}
	})
	created := e.newDelivery(t, "cli_a", r.URL+"/hook")
	start := time.Now()
	e.first(t, created)
	t.Logf("attempt with a %d-byte answer kept open took %v", webhooks.MaxResponseReadForTest, time.Since(start).Round(time.Millisecond))
	d := e.get(t, created.ID)
	if d.Status != webhooks.StatusDelivered || len(d.AttemptLog[0].ResponseBody) != webhooks.MaxResponseStoreForTest {
		t.Errorf("Status, stored body = %s, %d bytes, want DELIVERED, %d", d.Status, len(d.AttemptLog[0].ResponseBody), webhooks.MaxResponseStoreForTest)
	}
	waitUntil(t, "the receiver sees the attempt hang up", hungUp.Load)
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
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(tt.body)) })
			created := e.newDelivery(t, "cli_a", r.URL)
			e.first(t, created)
			got := e.get(t, created.ID).AttemptLog[0].ResponseBody
			if got != tt.want {
				t.Errorf("ResponseBody of a %d-byte answer = %d bytes ending %q, want %d bytes ending %q",
					len(tt.body), len(got), got[max(0, len(got)-8):], len(tt.want), tt.want[len(tt.want)-8:])
			}
		})
	}
}

// classify on errors from real clients: each class from a real failure.
func TestClassifyRealErrors(t *testing.T) {
	t.Parallel()
	tls := newTLSReceiver(t)
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	})
	open := egress.Policy{AllowPrivate: true}.Transport()
	closed := egress.Policy{}.Transport()
	t.Cleanup(open.CloseIdleConnections)
	tests := []struct {
		name      string
		transport http.RoundTripper
		url       string
		timeout   time.Duration
		wantClass string
	}{
		{"untrusted certificate", open, tls.URL, 5 * time.Second, webhooks.ClassTLS},
		{"blocked loopback", closed, tls.URL, 5 * time.Second, webhooks.ClassBlocked},
		{"refused", open, refusedURL(t), 5 * time.Second, webhooks.ClassConnect},
		{"timeout", open, slow.URL, 200 * time.Millisecond, webhooks.ClassTimeout},
		{"dns", open, "http://boomerang-test.invalid/hook", 5 * time.Second, webhooks.ClassDNS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tt.url, nil)
			resp, err := (&http.Client{Transport: tt.transport}).Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("POST %s succeeded, want an error", tt.url)
			}
			if class, msg := webhooks.ClassifyForTest(err); class != tt.wantClass {
				t.Errorf("classify(%v) = %q (%s), want %q", err, class, msg, tt.wantClass)
			}
		})
	}
}

// FirstAttempt makes attempt 1 of a delivery FinishJob just created; when
// the gate defers it, it returns nil and schedules attempt 1 a second past
// the deferral, and the delivery says why it waits.
func TestFirstAttempt(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	tests := []struct {
		name string
		opts []option
		// setup runs before the FirstAttempt; it returns what the receiver
		// saw meanwhile and a func that ends it.
		setup        func(t *testing.T, e *env, r *receiver) (requests int, end func())
		handler      http.HandlerFunc
		wantStatus   webhooks.Status
		wantAttempts int
		wantReason   string
		wantUntil    func(now time.Time) time.Time // the deferral's end
		wantCall     func(now time.Time, id string) []schedCall
	}{
		{
			name: "delivered", handler: status(200),
			wantStatus: webhooks.StatusDelivered, wantAttempts: 1,
			wantCall: func(time.Time, string) []schedCall { return nil },
		},
		{
			name: "the receiver fails: retry scheduled by the policy", handler: status(503),
			wantStatus: webhooks.StatusPending, wantAttempts: 1,
			wantCall: func(now time.Time, id string) []schedCall { return []schedCall{{id, 2, now.Add(p.Delay(1))}} },
		},
		{
			name: "the host is at its cap", opts: []option{withGate(1, 0, 0)},
			setup: func(t *testing.T, e *env, r *receiver) (int, func()) {
				release := make(chan struct{})
				r.SetHandlers(hold(release, 200), status(200))
				holder := e.newDelivery(t, "cli_other", r.URL+"/other")
				done := make(chan error, 1)
				go func() { done <- e.d.FirstAttempt(context.Background(), holder) }()
				waitUntil(t, "the holder's request arrives", func() bool { return len(r.Requests()) == 1 })
				return 1, func() {
					close(release)
					if err := <-done; err != nil {
						t.Errorf("holder's FirstAttempt = %v", err)
					}
				}
			},
			handler:    status(200),
			wantStatus: webhooks.StatusPending, wantAttempts: 0, wantReason: webhooks.DeferHostBusy,
			wantUntil: func(now time.Time) time.Time { return now.Add(webhooks.BusyRetryForTest) },
			wantCall: func(now time.Time, id string) []schedCall {
				return []schedCall{{id, 1, now.Add(webhooks.BusyRetryForTest + time.Second)}}
			},
		},
		{
			name: "the endpoint's circuit is open", opts: []option{withGate(0, 1, time.Minute)},
			setup: func(t *testing.T, e *env, r *receiver) (int, func()) {
				e.first(t, e.newDelivery(t, "cli_a", r.URL+"/hook")) // one 500 opens it (threshold 1)
				return 1, func() {}
			},
			handler:    status(500),
			wantStatus: webhooks.StatusPending, wantAttempts: 0, wantReason: webhooks.DeferEndpointOpen,
			wantUntil: func(now time.Time) time.Time { return now.Add(time.Minute) },
			wantCall: func(now time.Time, id string) []schedCall {
				return []schedCall{{id, 1, now.Add(time.Minute + time.Second)}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.opts...)
			r := newReceiver(t, tt.handler)
			before, end := 0, func() {}
			if tt.setup != nil {
				before, end = tt.setup(t, e, r)
			}
			beforeCalls := len(e.sched.Calls())
			created := e.newDelivery(t, "cli_a", r.URL+"/hook")
			now := e.clock.Now()
			err := e.d.FirstAttempt(context.Background(), created)
			sent := len(r.Requests()) - before
			end()
			if err != nil {
				t.Fatalf("FirstAttempt(%s) = %v, want nil", created.ID, err)
			}
			d := e.get(t, created.ID)
			if d.Status != tt.wantStatus || d.Attempts != tt.wantAttempts || len(d.AttemptLog) != tt.wantAttempts || sent != tt.wantAttempts {
				t.Errorf("after FirstAttempt: Status, Attempts, log, requests = %s, %d, %d, %d, want %s, %d, %d, %d",
					d.Status, d.Attempts, len(d.AttemptLog), sent, tt.wantStatus, tt.wantAttempts, tt.wantAttempts, tt.wantAttempts)
			}
			if tt.wantReason == "" {
				if d.DeferredReason != "" || d.DeferredUntil != nil {
					t.Errorf("DeferredReason, DeferredUntil = %q, %v, want none", d.DeferredReason, d.DeferredUntil)
				}
			} else {
				until := tt.wantUntil(now)
				if d.DeferredReason != tt.wantReason || d.DeferredUntil == nil || !d.DeferredUntil.Equal(until) ||
					d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(until) {
					t.Errorf("DeferredReason, DeferredUntil, NextAttemptAt = %q, %v, %v, want %q, %v, %v",
						d.DeferredReason, d.DeferredUntil, d.NextAttemptAt, tt.wantReason, until, until)
				}
			}
			checkCalls(t, "FirstAttempt", e.sched.Calls()[beforeCalls:], tt.wantCall(now, created.ID))
		})
	}
}

func TestAttemptErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("unknown delivery", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		for _, id := range []string{ids.New(ids.Delivery, e.clock.Now()), "msg_malformed"} {
			if err := e.d.Attempt(ctx, id, 1); err != nil {
				t.Errorf("Attempt(%s, 1) = %v, want nil (nothing to do)", id, err)
			}
		}
		if calls := e.sched.Calls(); len(calls) != 0 {
			t.Errorf("Scheduler calls = %v, want none", calls)
		}
	})
	t.Run("secret source fails", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.secrets.setErr(errBoom)
		r := newReceiver(t, status(200))
		created := e.newDelivery(t, "cli_a", r.URL)
		if err := e.d.FirstAttempt(ctx, created); !errors.Is(err, errBoom) {
			t.Errorf("FirstAttempt with failing secrets = %v, want %v", err, errBoom)
		}
		if d := e.get(t, created.ID); d.Status != webhooks.StatusPending || d.Attempts != 0 || len(r.Requests()) != 0 {
			t.Errorf("after failed FirstAttempt: Status, Attempts, requests = %s, %d, %d, want PENDING, 0, 0", d.Status, d.Attempts, len(r.Requests()))
		}
	})
	t.Run("invalid secret", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.secrets.Set("cli_a", "not a secret")
		r := newReceiver(t, status(200))
		if err := e.d.FirstAttempt(ctx, e.newDelivery(t, "cli_a", r.URL)); err == nil {
			t.Errorf("FirstAttempt with an invalid secret = nil, want an error")
		}
		if n := len(r.Requests()); n != 0 {
			t.Errorf("receiver saw %d requests, want 0", n)
		}
	})
	t.Run("scheduler fails", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.sched.setErr(errBoom, 0)
		r := newReceiver(t, status(500))
		created := e.newDelivery(t, "cli_a", r.URL)
		if err := e.d.FirstAttempt(ctx, created); !errors.Is(err, errBoom) {
			t.Errorf("FirstAttempt with failing scheduler = %v, want %v (so the caller runs it again)", err, errBoom)
		}
		// The attempt is recorded; running it again only re-schedules.
		e.sched.setErr(nil, 0)
		if err := e.d.Attempt(ctx, created.ID, 1); err != nil {
			t.Fatalf("Attempt(%s, 1) again = %v, want nil", created.ID, err)
		}
		d := e.get(t, created.ID)
		checkCalls(t, "re-run of attempt 1", e.sched.Calls(), []schedCall{{created.ID, 2, *d.NextAttemptAt}})
		if n := len(r.Requests()); n != 1 {
			t.Errorf("receiver saw %d requests, want 1", n)
		}
	})
}

// A store whose Redis is gone makes every dispatcher call fail with a
// Redis error, never ErrNotFound or a silent nil.
func TestDispatcherRedisDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	rdb := redis.NewClient(opt)
	e := newEnvOn(t, rdb)
	r := newReceiver(t, status(200))
	created := e.newDelivery(t, "cli_a", r.URL)
	rdb.Close()
	checks := []struct {
		name string
		err  func() error
	}{
		{"FirstAttempt", func() error { return e.d.FirstAttempt(ctx, created) }},
		{"Attempt", func() error { return e.d.Attempt(ctx, created.ID, 1) }},
		{"Replay", func() error { _, err := e.d.Replay(ctx, created.ID); return err }},
		{"StartBulkReplay", func() error { _, err := e.d.StartBulkReplay(ctx, webhooks.Filter{}, false); return err }},
		{"GetReplay", func() error { _, err := e.d.GetReplay(ctx, ids.New(ids.Replay, e.clock.Now())); return err }},
		{"RunBulkReplay", func() error { return e.d.RunBulkReplay(ctx, ids.New(ids.Replay, e.clock.Now())) }},
	}
	for _, c := range checks {
		err := c.err()
		if err == nil || errors.Is(err, webhooks.ErrNotFound) || errors.Is(err, webhooks.ErrReplayNotFound) {
			t.Errorf("%s with Redis down = %v, want a Redis error", c.name, err)
		}
	}
}

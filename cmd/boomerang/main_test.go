package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/testkit"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/signing"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// service is a Boomerang started through run(), as main starts it.
type service struct {
	t        *testing.T
	base     string
	admin    string
	stdout   *syncBuffer
	stderr   *syncBuffer
	cancel   context.CancelFunc
	done     chan error
	apiKey   string
	secret   string
	clientID string
}

const testAdminToken = "test-admin-token-0123456789abcdef-XYZ"

// startService runs Boomerang on 127.0.0.1:0 against the given Redis URL.
func startService(t *testing.T, env map[string]string) *service {
	t.Helper()
	vars := map[string]string{
		"BOOMERANG_ADDR":                    "127.0.0.1:0",
		"BOOMERANG_ADMIN_TOKEN":             testAdminToken,
		"BOOMERANG_ALLOW_PRIVATE_CALLBACKS": "true",
		"BOOMERANG_LOG_FORMAT":              "json",
		"BOOMERANG_SHUTDOWN_TIMEOUT":        "5s",
		"BOOMERANG_TASK_CHECK_INTERVAL":     "50ms", // retries in this test wait for it
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1), admin: testAdminToken}
	go func() {
		s.done <- run(ctx, []string{"boomerang", "serve"}, func(k string) string { return vars[k] }, s.stdout, s.stderr)
	}()
	addrRE := regexp.MustCompile(`boomerang: API listening on (http://\S+)`)
	deadline := time.Now().Add(15 * time.Second)
	for s.base == "" {
		if m := addrRE.FindStringSubmatch(s.stdout.String()); m != nil {
			s.base = m[1]
			break
		}
		select {
		case err := <-s.done:
			t.Fatalf("run returned before listening: %v\nstdout:\n%s\nstderr:\n%s", err, s.stdout, s.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("service did not start in 15s\nstdout:\n%s\nstderr:\n%s", s.stdout, s.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(s.stop)
	return s
}

func (s *service) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("run returned %v", err)
		}
	case <-time.After(20 * time.Second):
		s.t.Error("run did not return within 20s of cancellation")
	}
}

// call makes a request and decodes a JSON answer into out (if not nil).
func (s *service) call(method, path, token string, body any, out any, header ...string) (int, http.Header) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, resp.Header
}

func (s *service) createClient(name string) {
	s.t.Helper()
	var c struct{ ID, APIKey, SigningSecret string }
	if code, _ := s.call("POST", "/admin/v1/clients", s.admin, map[string]string{"name": name}, &c); code != http.StatusCreated {
		s.t.Fatalf("create client: status %d", code)
	}
	s.clientID, s.apiKey, s.secret = c.ID, c.APIKey, c.SigningSecret
}

func (s *service) submit(typ, callback string, payload any) string {
	s.t.Helper()
	var r struct{ RequestID, Status, StatusURL string }
	code, h := s.call("POST", "/v1/jobs", s.apiKey, map[string]any{"type": typ, "payload": payload, "callbackUrl": callback, "metadata": map[string]string{"test": s.t.Name()}}, &r)
	if code != http.StatusAccepted || r.Status != "ACCEPTED" || h.Get("Location") != "/v1/jobs/"+r.RequestID || r.StatusURL != h.Get("Location") {
		s.t.Fatalf("submit: status %d, body %+v, Location %q", code, r, h.Get("Location"))
	}
	return r.RequestID
}

type jobState struct {
	RequestID   string          `json:"requestId"`
	Status      string          `json:"status"`
	Result      json.RawMessage `json:"result"`
	Error       *struct{ Code, Message string }
	CompletedAt *time.Time `json:"completedAt"`
	Delivery    *struct {
		ID, Status     string
		Attempts       int
		LastStatusCode int
	} `json:"delivery"`
}

func (s *service) job(id string) jobState {
	s.t.Helper()
	var j jobState
	if code, _ := s.call("GET", "/v1/jobs/"+id, s.apiKey, nil, &j); code != http.StatusOK {
		s.t.Fatalf("GET job %s: status %d", id, code)
	}
	return j
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// received is one webhook as the receiver saw it.
type received struct {
	id, path string
	at       time.Time
	body     []byte
	header   http.Header
}

// receiver is a real HTTP receiver; fail decides per request whether to
// answer 500 instead of 204.
type testReceiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	failOn func(path string, seenBefore int) bool
}

func newReceiver(t *testing.T) *testReceiver {
	r := &testReceiver{t: t, failOn: func(string, int) bool { return false }}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		seen := 0
		for _, g := range r.got {
			if g.id == req.Header.Get("webhook-id") {
				seen++
			}
		}
		r.got = append(r.got, received{id: req.Header.Get("webhook-id"), path: req.URL.Path, at: time.Now(), body: body, header: req.Header.Clone()})
		fail := r.failOn(req.URL.Path, seen)
		r.mu.Unlock()
		if fail {
			http.Error(w, "receiver is failing on purpose", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *testReceiver) setFailOn(f func(path string, seenBefore int) bool) {
	r.mu.Lock()
	r.failOn = f
	r.mu.Unlock()
}

func (r *testReceiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *testReceiver) byID(id string) []received {
	var out []received
	for _, g := range r.all() {
		if g.id == id {
			out = append(out, g)
		}
	}
	return out
}

// verify checks a webhook with our verifier and the third-party one.
func verify(t *testing.T, secret string, g received) {
	t.Helper()
	if err := signing.Verify(secret, g.header, g.body); err != nil {
		t.Errorf("signing.Verify rejected webhook %s: %v", g.id, err)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(g.body, g.header); err != nil {
		t.Errorf("third-party Standard Webhooks verifier rejected webhook %s: %v", g.id, err)
	}
	if ua := g.header.Get("User-Agent"); !strings.HasPrefix(ua, "Boomerang/") {
		t.Errorf("User-Agent = %q, want Boomerang/<version>", ua)
	}
	if ct := g.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestEndToEnd(t *testing.T) {
	t.Logf("redis: %s", redistest.Kind())
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in map[string]string
		_ = json.NewDecoder(r.Body).Decode(&in)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"upper":%q}`, strings.ToUpper(in["text"]))
	}))
	defer upstream.Close()

	svc := startService(t, map[string]string{
		"BOOMERANG_REDIS_URL":          redistest.URL(t),
		"BOOMERANG_RETRY_INITIAL":      "200ms",
		"BOOMERANG_RETRY_MAX_INTERVAL": "1s",
		"BOOMERANG_RETRY_MAX_ATTEMPTS": "3",
		"BOOMERANG_DELIVERY_TIMEOUT":   "2s",
		"BOOMERANG_JOB_HTTP":           "upper=" + upstream.URL + "/upper",
		"BOOMERANG_SECRET_GRACE":       "3s",
		// One receiver host plays every role here, failing on purpose in
		// some subtests; the circuit breaker has tests of its own.
		"BOOMERANG_BREAKER_THRESHOLD": "0",
	})
	svc.createClient("e2e")
	rcv := newReceiver(t)

	t.Run("50 jobs completed and delivered with valid signatures", func(t *testing.T) {
		ids := make([]string, 50)
		for i := range ids {
			ids[i] = svc.submit("echo", rcv.srv.URL+"/ok", map[string]int{"n": i})
		}
		for _, id := range ids {
			waitFor(t, "job "+id+" delivered", 20*time.Second, func() bool {
				j := svc.job(id)
				return j.Status == "COMPLETED" && j.Delivery != nil && j.Delivery.Status == "DELIVERED"
			})
		}
		for i, id := range ids {
			j := svc.job(id)
			if want := fmt.Sprintf(`{"n":%d}`, i); string(j.Result) != want {
				t.Errorf("job %s result = %s, want %s", id, j.Result, want)
			}
			got := rcv.byID(j.Delivery.ID)
			if len(got) != 1 {
				t.Fatalf("job %s: receiver got %d webhooks, want 1", id, len(got))
			}
			verify(t, svc.secret, got[0])
			var body struct {
				Type string
				Data struct {
					RequestID, Status string
					Result            json.RawMessage
					Metadata          map[string]string
				}
			}
			if err := json.Unmarshal(got[0].body, &body); err != nil {
				t.Fatal(err)
			}
			if body.Type != "job.completed" || body.Data.RequestID != id || body.Data.Status != "COMPLETED" ||
				string(body.Data.Result) != string(j.Result) || body.Data.Metadata["test"] == "" {
				t.Errorf("webhook body of %s = %s", id, got[0].body)
			}
		}
	})

	t.Run("flaky receiver: retries logged, same webhook-id", func(t *testing.T) {
		rcv.setFailOn(func(path string, seen int) bool { return path == "/flaky" && seen < 2 })
		id := svc.submit("echo", rcv.srv.URL+"/flaky", "hi")
		var j jobState
		waitFor(t, "flaky delivery", 20*time.Second, func() bool {
			j = svc.job(id)
			return j.Delivery != nil && j.Delivery.Status == "DELIVERED"
		})
		got := rcv.byID(j.Delivery.ID)
		if len(got) != 3 || j.Delivery.Attempts != 3 {
			t.Fatalf("receiver saw %d requests, delivery.attempts = %d; want 3 and 3", len(got), j.Delivery.Attempts)
		}
		for _, g := range got {
			verify(t, svc.secret, g)
		}
		var d struct {
			Attempts []struct {
				Number        int
				StatusCode    int
				ErrorClass    string
				Outcome       string
				NextAttemptAt *time.Time
			}
		}
		svc.call("GET", "/admin/v1/deliveries/"+j.Delivery.ID, svc.admin, nil, &d)
		if len(d.Attempts) != 3 {
			t.Fatalf("attempt log has %d entries, want 3: %+v", len(d.Attempts), d.Attempts)
		}
		for i, a := range d.Attempts {
			wantStatus, wantOutcome := 500, "retry"
			if i == 2 {
				wantStatus, wantOutcome = 204, "delivered"
			}
			if a.Number != i+1 || a.StatusCode != wantStatus || a.Outcome != wantOutcome || (wantOutcome == "retry") != (a.NextAttemptAt != nil) {
				t.Errorf("attempt %d = %+v, want number %d status %d outcome %s", i, a, i+1, wantStatus, wantOutcome)
			}
		}
	})

	t.Run("failing receiver ends FAILED, then single and bulk replay deliver", func(t *testing.T) {
		rcv.setFailOn(func(path string, _ int) bool { return path == "/down" })
		a := svc.submit("echo", rcv.srv.URL+"/down", "a")
		b := svc.submit("echo", rcv.srv.URL+"/down", "b")
		c := svc.submit("echo", rcv.srv.URL+"/down", "c")
		var deliveries []string
		for _, id := range []string{a, b, c} {
			var j jobState
			waitFor(t, "delivery of "+id+" FAILED", 20*time.Second, func() bool {
				j = svc.job(id)
				return j.Delivery != nil && j.Delivery.Status == "FAILED"
			})
			if j.Delivery.Attempts != 3 || j.Delivery.LastStatusCode != 500 {
				t.Errorf("failed delivery %+v, want 3 attempts, last status 500", *j.Delivery)
			}
			deliveries = append(deliveries, j.Delivery.ID)
		}
		var failed struct{ Data []struct{ ID string } }
		svc.call("GET", "/admin/v1/deliveries?status=FAILED&clientId="+svc.clientID, svc.admin, nil, &failed)
		if len(failed.Data) != 3 {
			t.Fatalf("admin lists %d FAILED deliveries, want 3", len(failed.Data))
		}

		rcv.setFailOn(func(string, int) bool { return false })
		if code, _ := svc.call("POST", "/admin/v1/deliveries/"+deliveries[0]+"/replay", svc.admin, nil, nil); code != http.StatusAccepted {
			t.Fatalf("replay: status %d", code)
		}
		// A second replay is 409 while the first is PENDING; if the first
		// was already DELIVERED, it is a replay of its own (202).
		replays := 1
		switch code, _ := svc.call("POST", "/admin/v1/deliveries/"+deliveries[0]+"/replay", svc.admin, nil, nil); code {
		case http.StatusConflict:
		case http.StatusAccepted:
			replays = 2
		default:
			t.Errorf("second replay: status %d, want 409 (or 202 if the first had already delivered)", code)
		}
		waitFor(t, "single replay delivered", 20*time.Second, func() bool {
			j := svc.job(a)
			return j.Delivery.Status == "DELIVERED" && j.Delivery.Attempts == 3+replays
		})

		var rep struct {
			ReplayID string
			Matched  int
		}
		code, _ := svc.call("POST", "/admin/v1/deliveries/replay", svc.admin, map[string]any{"status": "FAILED", "clientId": svc.clientID}, &rep)
		if code != http.StatusAccepted || rep.Matched != 2 {
			t.Fatalf("bulk replay: status %d, %+v; want 202 with matched 2", code, rep)
		}
		for _, id := range []string{b, c} {
			waitFor(t, "bulk replay delivered "+id, 20*time.Second, func() bool { return svc.job(id).Delivery.Status == "DELIVERED" })
		}
		var progress struct {
			State             string
			Matched, Replayed int
		}
		waitFor(t, "bulk replay done", 10*time.Second, func() bool {
			svc.call("GET", "/admin/v1/replays/"+rep.ReplayID, svc.admin, nil, &progress)
			return progress.State == "done"
		})
		if progress.Replayed != 2 {
			t.Errorf("replay progress %+v, want 2 replayed", progress)
		}
		for i, d := range deliveries {
			want := 4
			if i == 0 {
				want = 3 + replays
			}
			got := rcv.byID(d)
			if len(got) != want {
				t.Errorf("delivery %s reached the receiver %d times, want 3 failures + %d replays", d, len(got), want-3)
			}
			for _, g := range got {
				verify(t, svc.secret, g)
			}
		}
	})

	t.Run("payload travels to the receiver byte for byte", func(t *testing.T) {
		deep := strings.Repeat(`[`, 500) + `"<&>"` + strings.Repeat(`]`, 500)
		for _, payload := range []string{
			`"a<b&c>d"`,
			"{\"ls\": \"\u2028\u2029\", \"escaped\": \"\\u2028 \\u003c \\/\"}",
			`{"big": 123456789012345678901234567890, "negzero": -0, "huge": 1e400, "tiny": 1E-400}`,
			`[ 1 ,  2,	3 ]`,
			deep,
		} {
			body := `{"type":"echo","callbackUrl":"` + rcv.srv.URL + `/exact","payload":` + payload + `}`
			req, _ := http.NewRequest("POST", svc.base+"/v1/jobs", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+svc.apiKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var r struct{ RequestID string }
			_ = json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("submit payload %.40s: status %d", payload, resp.StatusCode)
			}
			var got []received
			waitFor(t, "webhook of "+r.RequestID, 20*time.Second, func() bool {
				got = rcv.byID(jobs.DeliveryID(r.RequestID))
				return len(got) > 0
			})
			if !bytes.Contains(got[0].body, []byte(`"result":`+payload+`,`)) {
				t.Errorf("payload %.60s did not arrive byte for byte; webhook body %.300s", payload, got[0].body)
			}
			verify(t, svc.secret, got[0])
		}
	})

	t.Run("HTTP-forwarding job type", func(t *testing.T) {
		id := svc.submit("upper", rcv.srv.URL+"/ok", map[string]string{"text": "boomerang"})
		waitFor(t, "forwarded job delivered", 20*time.Second, func() bool {
			j := svc.job(id)
			return j.Delivery != nil && j.Delivery.Status == "DELIVERED"
		})
		if j := svc.job(id); string(j.Result) != `{"upper":"BOOMERANG"}` {
			t.Errorf("result = %s, want the upstream's JSON", j.Result)
		}
	})

	t.Run("idempotency key returns the original job", func(t *testing.T) {
		body := map[string]any{"type": "echo", "payload": 1, "callbackUrl": rcv.srv.URL + "/ok"}
		var r1, r2 struct{ RequestID string }
		c1, _ := svc.call("POST", "/v1/jobs", svc.apiKey, body, &r1, "Idempotency-Key", "abc")
		c2, _ := svc.call("POST", "/v1/jobs", svc.apiKey, body, &r2, "Idempotency-Key", "abc")
		body["payload"] = 2
		c3, _ := svc.call("POST", "/v1/jobs", svc.apiKey, body, nil, "Idempotency-Key", "abc")
		if c1 != 202 || c2 != 202 || r1.RequestID != r2.RequestID || c3 != http.StatusConflict {
			t.Errorf("idempotency: %d %d %d, ids %s %s; want 202 202 409 and one id", c1, c2, c3, r1.RequestID, r2.RequestID)
		}
	})

	t.Run("secret rotation: both secrets verify during the grace period, only the new one after", func(t *testing.T) {
		old := svc.secret
		var rot struct{ SigningSecret string }
		if code, _ := svc.call("POST", "/admin/v1/clients/"+svc.clientID+"/secret/rotate", svc.admin, nil, &rot); code != http.StatusOK || !strings.HasPrefix(rot.SigningSecret, "whsec_") {
			t.Fatalf("rotate: status %d, %+v", code, rot)
		}
		deliver := func() received {
			id := svc.submit("echo", rcv.srv.URL+"/rot", "r")
			var j jobState
			waitFor(t, "rotation delivery", 10*time.Second, func() bool {
				j = svc.job(id)
				return j.Delivery != nil && j.Delivery.Status == "DELIVERED"
			})
			return rcv.byID(j.Delivery.ID)[0]
		}
		during := deliver()
		if n := len(strings.Fields(during.header.Get("webhook-signature"))); n != 2 {
			t.Errorf("during the grace period webhook-signature has %d signatures, want 2", n)
		}
		verify(t, old, during)
		verify(t, rot.SigningSecret, during)

		time.Sleep(3500 * time.Millisecond) // BOOMERANG_SECRET_GRACE=3s
		after := deliver()
		verify(t, rot.SigningSecret, after)
		wh, _ := standardwebhooks.NewWebhook(old)
		if err := wh.Verify(after.body, after.header); err == nil {
			t.Error("after the grace period the old secret still verifies")
		}
		if err := signing.Verify(old, after.header, after.body); err == nil {
			t.Error("after the grace period signing.Verify accepts the old secret")
		}
		svc.secret = rot.SigningSecret
	})

	t.Run("revoked key and disabled client are refused at once", func(t *testing.T) {
		var k struct{ ID, APIKey string }
		if code, _ := svc.call("POST", "/admin/v1/clients/"+svc.clientID+"/keys", svc.admin, nil, &k); code != http.StatusCreated {
			t.Fatalf("add key: status %d", code)
		}
		if code, _ := svc.call("GET", "/v1/jobs/req_none", k.APIKey, nil, nil); code != http.StatusNotFound {
			t.Fatalf("new key: status %d, want 404 (authenticated)", code)
		}
		if code, _ := svc.call("DELETE", "/admin/v1/clients/"+svc.clientID+"/keys/"+k.ID, svc.admin, nil, nil); code != http.StatusNoContent {
			t.Fatalf("revoke: status %d", code)
		}
		if code, _ := svc.call("GET", "/v1/jobs/req_none", k.APIKey, nil, nil); code != http.StatusUnauthorized {
			t.Errorf("revoked key: status %d, want 401", code)
		}
	})

	svc.stop()
	logs := svc.stderr.String()
	for name, secret := range map[string]string{"API key": svc.apiKey, "signing secret": svc.secret, "admin token": testAdminToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("the %s appears in the logs", name)
		}
	}
	for _, g := range rcv.all() {
		for _, sig := range strings.Fields(g.header.Get("webhook-signature")) {
			if _, b64, _ := strings.Cut(sig, ","); strings.Contains(logs, b64) {
				t.Errorf("a webhook signature appears in the logs")
			}
		}
	}
	if !strings.Contains(logs, `"requestId"`) || !strings.Contains(logs, `"deliveryId"`) {
		t.Errorf("logs lack requestId/deliveryId attributes")
	}
}

// TestCompletionToFirstAttempt measures the latency from a job's completion
// to its webhook's arrival over 1 000 jobs. It reports; it asserts no time.
func TestCompletionToFirstAttempt(t *testing.T) {
	testkit.Long(t)
	svc := startService(t, map[string]string{"BOOMERANG_REDIS_URL": redistest.URL(t)})
	svc.createClient("latency")
	rcv := newReceiver(t)
	const n = 1000
	tick := time.NewTicker(5 * time.Millisecond) // a steady 200 jobs/s, not one burst
	defer tick.Stop()
	submitted := map[string]time.Time{}
	for i := 0; i < n; i++ {
		<-tick.C
		start := time.Now()
		submitted[svc.submit("echo", rcv.srv.URL+"/lat", i)] = start
	}
	waitFor(t, "all 1000 webhooks", 60*time.Second, func() bool { return len(rcv.all()) >= n })
	var lat, total []time.Duration
	for _, g := range rcv.all() {
		var body struct {
			Data struct {
				RequestID   string
				CompletedAt time.Time
			}
		}
		if err := json.Unmarshal(g.body, &body); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, g.at.Sub(body.Data.CompletedAt))
		total = append(total, g.at.Sub(submitted[body.Data.RequestID]))
	}
	if len(lat) != n {
		t.Fatalf("got %d webhooks for %d jobs", len(lat), n)
	}
	for _, m := range []struct {
		what string
		d    []time.Duration
	}{{"completion → webhook received", lat}, {"submit → webhook received", total}} {
		sort.Slice(m.d, func(i, j int) bool { return m.d[i] < m.d[j] })
		t.Logf("%s, %d jobs at 200/s: p50 %v, p90 %v, p99 %v, max %v (redis: %s)",
			m.what, n, m.d[n/2], m.d[n*9/10], m.d[n*99/100], m.d[n-1], redistest.Kind())
	}
}

// TestQuickStart follows the README's quick start: the service on the
// embedded Redis with nothing configured but private callbacks, the demo
// client's export lines, `boomerang listen`, one echo job.
func TestQuickStart(t *testing.T) {
	svc := startService(t, map[string]string{"BOOMERANG_ADMIN_TOKEN": "", "BOOMERANG_REDIS_URL": ""})
	out := svc.stdout.String()
	if !strings.Contains(out, "EMBEDDED IN-MEMORY Redis") {
		t.Errorf("no loud embedded-mode warning in:\n%s", out)
	}
	exports := map[string]string{}
	for _, m := range regexp.MustCompile(`export (\w+)=(\S+)`).FindAllStringSubmatch(out, -1) {
		exports[m[1]] = m[2]
	}
	if exports["API_KEY"] == "" || exports["SIGNING_SECRET"] == "" || len(exports["ADMIN_TOKEN"]) < 32 {
		t.Fatalf("export lines missing in:\n%s", out)
	}
	svc.apiKey, svc.admin = exports["API_KEY"], exports["ADMIN_TOKEN"]

	ctx, cancel := context.WithCancel(context.Background())
	lout := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"boomerang", "listen", "--secret", exports["SIGNING_SECRET"], "--addr", "127.0.0.1:0"}, func(string) string { return "" }, lout, io.Discard)
	}()
	defer func() { cancel(); <-done }()
	var addr string
	waitFor(t, "listen to start", 10*time.Second, func() bool {
		m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(lout.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	id := svc.submit("echo", addr+"/hook", map[string]string{"hello": "world"})
	waitFor(t, "the signed webhook at boomerang listen", 15*time.Second, func() bool {
		return strings.Contains(lout.String(), "✔ webhook") && strings.Contains(lout.String(), id)
	})
	if code, _ := svc.call("GET", "/admin/v1/deliveries?limit=5", svc.admin, nil, nil); code != http.StatusOK {
		t.Errorf("admin with the generated token: status %d", code)
	}
}

// TestAdminOnItsOwnListener: with BOOMERANG_ADMIN_ADDR the public listener
// answers 404 for /admin, and the admin listener serves it.
func TestAdminOnItsOwnListener(t *testing.T) {
	svc := startService(t, map[string]string{"BOOMERANG_REDIS_URL": redistest.URL(t), "BOOMERANG_ADMIN_ADDR": "127.0.0.1:0"})
	var adminBase string
	waitFor(t, "admin listener", 10*time.Second, func() bool {
		m := regexp.MustCompile(`admin API listening on (http://\S+)`).FindStringSubmatch(svc.stdout.String())
		if m != nil {
			adminBase = m[1]
		}
		return m != nil
	})
	if code, _ := svc.call("GET", "/admin/v1/clients", svc.admin, nil, nil); code != http.StatusNotFound {
		t.Errorf("public listener /admin: status %d, want 404", code)
	}
	public := svc.base
	svc.base = adminBase
	if code, _ := svc.call("GET", "/admin/v1/clients", svc.admin, nil, nil); code != http.StatusOK {
		t.Errorf("admin listener: status %d, want 200", code)
	}
	if code, _ := svc.call("GET", "/v1/jobs/req_x", "bmr_x", nil, nil); code != http.StatusNotFound {
		t.Errorf("admin listener serves the client API: status %d, want 404", code)
	}
	svc.base = public
}

// TestSlowlorisIsCutOff: a client that trickles its headers is
// disconnected by the server's header timeout instead of holding the
// connection.
func TestSlowlorisIsCutOff(t *testing.T) {
	testkit.Long(t)
	svc := startService(t, map[string]string{"BOOMERANG_REDIS_URL": redistest.URL(t)})
	conn, err := net.Dial("tcp", strings.TrimPrefix(svc.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /v1/jobs HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	closed := make(chan error, 1)
	go func() {
		buf := make([]byte, 1024)
		for {
			if _, err := conn.Read(buf); err != nil {
				closed <- err
				return
			}
		}
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case err := <-closed:
			t.Logf("server closed the trickling connection after %v (%v)", time.Since(start).Round(100*time.Millisecond), err)
			return
		case <-tick.C:
			_, _ = conn.Write([]byte(fmt.Sprintf("X-Slow-%d: y\r\n", i)))
			if time.Since(start) > 30*time.Second {
				t.Fatal("a client trickling headers held its connection for 30 s")
			}
		}
	}
}

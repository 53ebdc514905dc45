package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
)

func TestHTTPForwarder(t *testing.T) {
	big404 := "not found: " + strings.Repeat("x", 10<<10)
	tests := []struct {
		name    string
		status  int
		body    string
		ctype   string
		want    string // the result, when no error is wanted
		wantErr *jobs.Failure
		// wantInMessage must appear in the error message.
		wantInMessage []string
		maxMessage    int // bound on the message length, if set
	}{
		{name: "200 JSON", status: 200, body: `{"answer": [4, 2]}`, ctype: "application/json", want: `{"answer": [4, 2]}`},
		{name: "200 JSON scalar, no Content-Type", status: 200, body: `42`, want: `42`},
		{name: "201 JSON", status: 201, body: `"made"`, want: `"made"`},
		{name: "200 JSON kept byte for byte", status: 200, body: "\n {\"html\": \"a<b&c>d\", \"n\": 123456789012345678901234567890, \"z\": -0, \"e\": 1e400, \"ls\": \"\u2028\"}\n",
			ctype: "application/json", want: "{\"html\": \"a<b&c>d\", \"n\": 123456789012345678901234567890, \"z\": -0, \"e\": 1e400, \"ls\": \"\u2028\"}"},
		{name: "200 text/plain", status: 200, body: "hello <world> & all", ctype: "text/plain",
			wantErr: &jobs.Failure{Code: "upstream_not_json", Permanent: true}, wantInMessage: []string{"200", "text/plain"}},
		{name: "200 HTML", status: 200, body: "<html><body>Login</body></html>", ctype: "text/html; charset=utf-8",
			wantErr: &jobs.Failure{Code: "upstream_not_json", Permanent: true}, wantInMessage: []string{"text/html"}},
		{name: "200 HTML that happens to be JSON", status: 200, body: `"x"`, ctype: "text/html",
			wantErr: &jobs.Failure{Code: "upstream_not_json", Permanent: true}},
		{name: "200 non-JSON bad UTF-8", status: 200, body: "caf\xe9",
			wantErr: &jobs.Failure{Code: "upstream_not_json", Permanent: true}},
		{name: "200 truncated JSON", status: 200, body: `{"ok":`, ctype: "application/json",
			wantErr: &jobs.Failure{Code: "upstream_not_json", Permanent: true}},
		{name: "200 empty", status: 200, body: "", want: `null`},
		{name: "204 no content", status: 204, want: `null`},
		{name: "200 whitespace only", status: 200, body: " \n", want: `null`},
		{name: "500", status: 500, body: "database on fire", wantErr: &jobs.Failure{Code: "upstream_500"},
			wantInMessage: []string{"500", "database on fire"}},
		{name: "503 empty body", status: 503, wantErr: &jobs.Failure{Code: "upstream_503"}, wantInMessage: []string{"503"}},
		{name: "404 with a body", status: 404, body: big404, wantErr: &jobs.Failure{Code: "upstream_404", Permanent: true},
			wantInMessage: []string{"404", "not found: xxxx"}, maxMessage: 600},
		{name: "404 with Latin-1 body", status: 404, body: "Seite nicht gefunden: \xfcberall" + strings.Repeat(".", 1000),
			wantErr: &jobs.Failure{Code: "upstream_404", Permanent: true}, wantInMessage: []string{"404", "Seite nicht gefunden", "\ufffdberall"}, maxMessage: 600},
		{name: "404 cut inside a rune", status: 404, body: strings.Repeat("a", 511) + "é" + strings.Repeat("b", 100),
			wantErr: &jobs.Failure{Code: "upstream_404", Permanent: true}, wantInMessage: []string{"404", strings.Repeat("a", 511)}, maxMessage: 600},
		{name: "422", status: 422, body: `{"error":"bad field"}`, wantErr: &jobs.Failure{Code: "upstream_422", Permanent: true},
			wantInMessage: []string{"422", `{"error":"bad field"}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var gotMethod, gotCType, gotAccept, gotBody string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				gotMethod, gotCType, gotAccept, gotBody = r.Method, r.Header.Get("Content-Type"), r.Header.Get("Accept"), string(b)
				mu.Unlock()
				if tc.ctype != "" {
					w.Header().Set("Content-Type", tc.ctype)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			const payload = `{"in":1}`
			f := jobs.HTTPForwarder{URL: srv.URL + "/work", Client: jobs.NewUpstreamClient()}
			got, err := f.Process(context.Background(), jobs.Input{Payload: json.RawMessage(payload)})

			mu.Lock()
			if gotMethod != http.MethodPost || gotCType != "application/json" || gotAccept != "application/json" || gotBody != payload {
				t.Errorf("upstream got %s, Content-Type %q, Accept %q, body %q; want POST, application/json, application/json, %q",
					gotMethod, gotCType, gotAccept, gotBody, payload)
			}
			mu.Unlock()
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Process against %d %q: %v", tc.status, tc.body, err)
				}
				if string(got) != tc.want || !json.Valid(got) {
					t.Errorf("Process against %d %q = %s, want %s", tc.status, tc.body, got, tc.want)
				}
				return
			}
			var fail *jobs.Failure
			if !errors.As(err, &fail) {
				t.Fatalf("Process against %d = %v (%T), want a *jobs.Failure", tc.status, err, err)
			}
			if fail.Code != tc.wantErr.Code || fail.Permanent != tc.wantErr.Permanent || jobs.IsPermanent(err) != tc.wantErr.Permanent {
				t.Errorf("Process against %d = code %q permanent %v, want code %q permanent %v", tc.status, fail.Code, fail.Permanent, tc.wantErr.Code, tc.wantErr.Permanent)
			}
			for _, s := range tc.wantInMessage {
				if !strings.Contains(fail.Message, s) {
					t.Errorf("message %q does not contain %q", trunc(fail.Message), s)
				}
			}
			if tc.maxMessage > 0 && len(fail.Message) > tc.maxMessage {
				t.Errorf("message is %d bytes for a %d-byte body, want at most %d", len(fail.Message), len(tc.body), tc.maxMessage)
			}
			if !strings.HasPrefix(err.Error(), fail.Code+": ") {
				t.Errorf("Error() = %q, want it to start with the code", trunc(err.Error()))
			}
		})
	}
}

func TestHTTPForwarderTooLargeResult(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat(" ", 64<<10))
		for n := 0; n <= 8<<20; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	_, err := jobs.HTTPForwarder{URL: srv.URL, Client: srv.Client()}.Process(context.Background(), jobs.Input{Payload: json.RawMessage(`1`)})
	var fail *jobs.Failure
	if !errors.As(err, &fail) || fail.Code != "result_too_large" || !fail.Permanent {
		t.Fatalf("Process against an answer over 8 MiB = %v, want a permanent result_too_large failure", err)
	}
}

func TestHTTPForwarderConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	url := "http://" + addr + "/work?token=s3cr3t"
	_, err = jobs.HTTPForwarder{URL: url, Client: &http.Client{}}.Process(context.Background(), jobs.Input{Payload: json.RawMessage(`1`)})
	var fail *jobs.Failure
	if !errors.As(err, &fail) {
		t.Fatalf("Process against a closed port = %v (%T), want a *jobs.Failure", err, err)
	}
	if fail.Code != "upstream_unreachable" || fail.Permanent {
		t.Errorf("Process against a closed port = code %q permanent %v, want retryable upstream_unreachable", fail.Code, fail.Permanent)
	}
	if strings.Contains(fail.Message, "s3cr3t") || strings.Contains(fail.Message, "/work") {
		t.Errorf("message %q repeats the upstream URL", fail.Message)
	}
	if fail.Unwrap() == nil {
		t.Error("the failure does not wrap the network error")
	}
}

func TestHTTPForwarderSlowUpstream(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	got, err := jobs.HTTPForwarder{URL: srv.URL, Client: srv.Client()}.Process(ctx, jobs.Input{Payload: json.RawMessage(`1`)})
	if err == nil {
		t.Fatalf("Process against an upstream slower than the deadline = %s, nil; want an error", got)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if jobs.IsPermanent(err) {
		t.Errorf("a slow upstream is a permanent error: %v", err)
	}
}

func TestHTTPForwarderBadURLIsPermanent(t *testing.T) {
	_, err := jobs.HTTPForwarder{URL: "http://bad host/", Client: &http.Client{}}.Process(context.Background(), jobs.Input{})
	if err == nil || !jobs.IsPermanent(err) {
		t.Fatalf("Process with an invalid URL = %v, want a permanent error", err)
	}
}

// A job whose type forwards to an upstream that answers 404 fails at once
// and carries the upstream's status in its error.
func TestRunHTTPForwarderJob(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "missing") {
			http.Error(w, "no such thing", http.StatusNotFound)
			return
		}
		io.Copy(w, r.Body)
	}))
	defer srv.Close()
	e := newEnv(t, func(r *jobs.Registry) {
		r.Register("fwd", jobs.HTTPForwarder{URL: srv.URL + "/ok", Client: srv.Client()}, time.Minute)
		r.Register("fwd-missing", jobs.HTTPForwarder{URL: srv.URL + "/missing", Client: srv.Client()}, time.Minute)
	})
	tests := []struct {
		typ        string
		wantStatus jobs.Status
		wantResult string
		wantCode   string
	}{
		{"fwd", jobs.StatusCompleted, `{"x":1}`, ""},
		{"fwd-missing", jobs.StatusFailed, "", "upstream_404"},
	}
	for _, tc := range tests {
		j := e.submitType(t, tc.typ, `{"x":1}`)
		if err := e.svc.Run(context.Background(), j.ID); err != nil {
			t.Fatalf("Run(%s): %v", tc.typ, err)
		}
		got := e.get(t, "cli_a", j.ID)
		code := errorCode(got.Error)
		if got.Status != tc.wantStatus || string(got.Result) != tc.wantResult || code != tc.wantCode {
			t.Errorf("%s job = %s result %s code %q, want %s result %s code %q", tc.typ, got.Status, got.Result, code, tc.wantStatus, tc.wantResult, tc.wantCode)
		}
	}
}

// An upstream slower than the type's timeout fails the job with code
// "timeout", not with the forwarder's "upstream_unreachable".
func TestRunHTTPForwarderTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	e := newEnv(t, func(r *jobs.Registry) {
		r.Register("slow", jobs.HTTPForwarder{URL: srv.URL, Client: srv.Client()}, 20*time.Millisecond)
	}, withMaxAttempts(2))
	j := e.submitType(t, "slow", `1`)
	if err := e.svc.Run(context.Background(), j.ID); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	if got := e.job(t, j.ID); got.Status != jobs.StatusProcessing || errorCode(got.LastError) != "timeout" || len(e.enq.Calls()) != 1 {
		t.Fatalf("after the first Run against a slow upstream: %s, last error %+v, %d retries enqueued; want PROCESSING, timeout, 1",
			got.Status, got.LastError, len(e.enq.Calls()))
	}
	e.clock.Set(e.enq.Calls()[0].At)
	if err := e.svc.Run(context.Background(), j.ID); err != nil {
		t.Fatalf("last Run: %v", err)
	}
	got := e.get(t, "cli_a", j.ID)
	if got.Status != jobs.StatusFailed || errorCode(got.Error) != "timeout" {
		t.Errorf("job against a slow upstream = %s %+v, want FAILED with code timeout", got.Status, got.Error)
	}
}

func TestPermanent(t *testing.T) {
	base := &jobs.Failure{Code: "c", Message: "m"}
	plain := errors.New("plain")
	tests := []struct {
		name      string
		err       error
		wantCode  string
		wantPerm  bool
		wantIsErr error
	}{
		{"plain error", jobs.Permanent(plain), "processing_failed", true, plain},
		{"Failure", jobs.Permanent(base), "c", true, nil},
		{"wrapped Failure", jobs.Permanent(errors.Join(errors.New("ctx"), base)), "c", true, nil},
		{"not marked", base, "c", false, nil},
		{"plain, not marked", plain, "", false, nil},
	}
	for _, tc := range tests {
		if got := jobs.IsPermanent(tc.err); got != tc.wantPerm {
			t.Errorf("IsPermanent(%s) = %v, want %v", tc.name, got, tc.wantPerm)
		}
		var f *jobs.Failure
		if tc.wantCode != "" && (!errors.As(tc.err, &f) || f.Code != tc.wantCode) {
			t.Errorf("%s: failure %+v, want code %q", tc.name, f, tc.wantCode)
		}
		if tc.wantIsErr != nil && !errors.Is(tc.err, tc.wantIsErr) {
			t.Errorf("%s: %v does not wrap %v", tc.name, tc.err, tc.wantIsErr)
		}
	}
	if base.Permanent {
		t.Error("Permanent changed the Failure it was given")
	}
	if jobs.IsPermanent(nil) {
		t.Error("IsPermanent(nil) = true")
	}
}

func TestRegistry(t *testing.T) {
	r := jobs.NewRegistry()
	if names := r.Names(); names == nil || len(names) != 0 {
		t.Errorf("Names of an empty registry = %#v, want an empty, non-nil slice", names)
	}
	for _, n := range []string{"zeta", "alpha", "mid", "alpha.v2", "alpha-v2"} {
		r.Register(n, jobs.Echo, time.Second)
	}
	r.Register("mid", jobs.Echo, time.Minute) // re-registering replaces
	if got, want := r.Names(), []string{"alpha", "alpha-v2", "alpha.v2", "mid", "zeta"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	typ, ok := r.Lookup("mid")
	if !ok || typ.Name != "mid" || typ.Timeout != time.Minute || typ.Processor == nil {
		t.Errorf("Lookup(mid) = %+v, %v; want mid with timeout 1m", typ, ok)
	}
	if _, ok := r.Lookup("nope"); ok {
		t.Error("Lookup(nope) found a type")
	}
}

func TestEcho(t *testing.T) {
	for _, in := range []string{`{"a": 1}`, `null`, `"s"`, ``} {
		got, err := jobs.Echo.Process(context.Background(), jobs.Input{Payload: json.RawMessage(in)})
		if err != nil || string(got) != in {
			t.Errorf("Echo(%q) = %q, %v; want the payload back", in, got, err)
		}
	}
}

func trunc(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// An upstream answering with a redirect never makes the forwarder send the
// client's payload anywhere else: the 3xx fails the job.
func TestHTTPForwarderNeverFollowsRedirects(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		var canaryHits atomic.Int32
		canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { canaryHits.Add(1) }))
		upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, canary.URL+"/steal", status)
		}))
		_, err := jobs.HTTPForwarder{URL: upstream.URL, Client: jobs.NewUpstreamClient()}.Process(context.Background(),
			jobs.Input{RequestID: "req_x", Payload: json.RawMessage(`{"secret":1}`)})
		upstream.Close()
		canary.Close()
		var fail *jobs.Failure
		if !errors.As(err, &fail) || !fail.Permanent || fail.Code != fmt.Sprintf("upstream_%d", status) {
			t.Errorf("upstream answering %d: error %v, want a permanent upstream_%d failure", status, err, status)
		}
		if n := canaryHits.Load(); n != 0 {
			t.Errorf("upstream answering %d: the redirect target got %d requests, want 0", status, n)
		}
	}
}

// Every forwarded request says who sends it and for which job, with the
// request id as Idempotency-Key on every retry.
func TestHTTPForwarderHeaders(t *testing.T) {
	var mu sync.Mutex
	var got []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Clone())
		n := len(got)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	f := jobs.HTTPForwarder{URL: srv.URL, Client: jobs.NewUpstreamClient(), UserAgent: "Boomerang/1.2.3"}
	in := jobs.Input{RequestID: "req_01JD3M4X2Z8QK3V9W7T5N6P4R2", Type: "report", Payload: json.RawMessage(`{}`), Attempt: 1}
	if _, err := f.Process(context.Background(), in); err == nil {
		t.Fatal("first try against a 503: no error, want a retryable one")
	}
	in.Attempt = 2
	if _, err := f.Process(context.Background(), in); err != nil {
		t.Fatalf("retry: %v", err)
	}
	for i, h := range got {
		for name, want := range map[string]string{"User-Agent": "Boomerang/1.2.3", "Boomerang-Request-Id": in.RequestID,
			"Idempotency-Key": in.RequestID, "Content-Type": "application/json"} {
			if h.Get(name) != want {
				t.Errorf("request %d: %s = %q, want %q", i+1, name, h.Get(name), want)
			}
		}
	}
}

// Package examples_test runs the example workers (worker-python, worker-node)
// as real processes against a real Boomerang process, with a real Redis and a
// real webhook receiver, so that the templates people copy are known to work.
//
// The data flow of one test: the test builds cmd/boomerang once, starts it,
// creates a client and a worker key through the admin API, and starts the
// worker with BOOMERANG_URL pointing at a recording proxy in front of the
// server. The proxy logs every worker call and injects the faults a worker
// must survive (a dropped connection, a 503). Jobs go in through the client
// API; signed webhooks come out at an httptest receiver.
//
// A runtime missing from PATH skips its test, unless BOOMERANG_REQUIRE_RUNTIMES
// is set (CI sets it): then the test fails.
package examples_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/signing"
	"github.com/boomerang-dev/boomerang/testkit"
)

// The example workers, each run by its runtime from this directory.
var workers = []struct {
	name    string
	runtime string
	script  string
}{
	{"python", "python3", "worker-python/worker.py"},
	{"node", "node", "worker-node/worker.mjs"},
}

const (
	adminToken = "examples-admin-token-0123456789abcdef"
	jobType    = "wordcount"
	// bigRef does not fit in an int64 nor in a double: it comes back exact
	// only if no one on the way turns it into a number type.
	bigRef = "123456789012345678901234567890"
)

func TestWorkers(t *testing.T) {
	for _, w := range workers {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			runtime := lookRuntime(t, w.runtime)
			srv := startServer(t)
			secret, apiKey := srv.createClient(t)
			workerKey := srv.createWorker(t)
			rcv := newReceiver(t)
			px := newProxy(t, srv.base)
			wk := startWorker(t, runtime, w.script, map[string]string{
				"BOOMERANG_URL":           px.srv.URL,
				"BOOMERANG_WORKER_KEY":    workerKey,
				"BOOMERANG_TYPES":         jobType,
				"BOOMERANG_CONCURRENCY":   "2",
				"BOOMERANG_LEASE_SECONDS": "5", // heartbeats every 1.7 s
			})
			submit := func(payload string) string {
				return srv.submit(t, apiKey, rcv.srv.URL+"/hook", payload)
			}

			t.Run("completes with the exact result, after a dropped claim and a 503", func(t *testing.T) {
				id := submit(`{"text":"the quick  brown fox\njumps","ref":` + bigRef + `}`)
				wh := rcv.await(t, id)
				verifyWebhook(t, secret, wh)
				if wh.Type != "job.completed" || wh.Data.Status != "COMPLETED" {
					t.Fatalf("webhook %s %s, want job.completed COMPLETED: %s", wh.Type, wh.Data.Status, wh.raw)
				}
				result := decodeExact(t, wh.Data.Result)
				if result["words"] != json.Number("5") || result["ref"] != json.Number(bigRef) {
					t.Errorf("result = %s, want words 5 and ref %s exactly", wh.Data.Result, bigRef)
				}
				if got := srv.jobResult(t, apiKey, id); !bytes.Equal(compact(t, got), compact(t, wh.Data.Result)) {
					t.Errorf("GET /v1/jobs/%s result = %s, webhook result = %s", id, got, wh.Data.Result)
				}

				var percents []float64
				for _, c := range px.calls(id, "heartbeat") {
					var hb struct{ Progress *struct{ Percent float64 } }
					_ = json.Unmarshal(c.body, &hb)
					if hb.Progress != nil && c.status == http.StatusOK {
						percents = append(percents, hb.Progress.Percent)
					}
				}
				if len(percents) < 2 || percents[0] != 10 || percents[len(percents)-1] != 50 {
					t.Errorf("heartbeats answered 200 carried progress %v, want 10 then 50", percents)
				}
				completes := px.calls(id, "complete")
				if len(completes) != 2 || completes[0].status != http.StatusServiceUnavailable || completes[1].status != http.StatusOK ||
					!bytes.Equal(completes[0].body, completes[1].body) {
					t.Errorf("complete calls %v, want the injected 503 then 200, same body", completes)
				}
				if !px.droppedClaim() {
					t.Error("the proxy never dropped a claim connection")
				}
				tp := px.claimTraceparent(t, id)
				for _, c := range append(px.calls(id, "heartbeat"), completes...) {
					if c.traceparent != tp {
						t.Errorf("%s sent traceparent %q, want the claim's %q", c.path, c.traceparent, tp)
					}
				}
			})

			t.Run("a handler error fails the job", func(t *testing.T) {
				id := submit(`{"text":42}`)
				wh := rcv.await(t, id)
				verifyWebhook(t, secret, wh)
				if wh.Type != "job.failed" || wh.Data.Error == nil || wh.Data.Error.Code != "bad_payload" {
					t.Fatalf("webhook = %s, want job.failed with error code bad_payload", wh.raw)
				}
				fails := px.calls(id, "fail")
				if len(fails) != 1 || !strings.Contains(string(fails[0].body), `"retryable":false`) {
					t.Errorf("fail calls %v, want one with retryable false", fails)
				}
			})

			t.Run("a job canceled while held is dropped", func(t *testing.T) {
				id := submit(`{"text":"slow words","delaySeconds":4}`)
				waitFor(t, "the worker to claim "+id, 10*time.Second, func() bool { return px.claimed(id) })
				var view struct{ Status string }
				if code := srv.call(t, "POST", "/v1/jobs/"+id+"/cancel", apiKey, nil, &view); code != http.StatusOK || view.Status != "CANCELED" {
					t.Fatalf("cancel: status %d, job %q; want 200 CANCELED", code, view.Status)
				}
				wh := rcv.await(t, id)
				verifyWebhook(t, secret, wh)
				if wh.Type != "job.canceled" || wh.Data.Status != "CANCELED" {
					t.Errorf("webhook = %s, want job.canceled", wh.raw)
				}
				waitFor(t, "the worker to drop "+id, 10*time.Second, func() bool {
					return strings.Contains(wk.out.String(), "job "+id+" dropped: job-canceled")
				})
				if n := len(px.calls(id, "complete")) + len(px.calls(id, "fail")); n != 0 {
					t.Errorf("the worker reported %d outcome(s) of a canceled job, want none", n)
				}
				var told bool
				for _, c := range px.calls(id, "heartbeat") {
					told = told || (c.status == http.StatusConflict && strings.Contains(string(c.answer), "/job-canceled"))
				}
				if !told {
					t.Errorf("no heartbeat of %s was answered 409 job-canceled: %v", id, px.calls(id, "heartbeat"))
				}
			})

			t.Run("SIGTERM finishes the running job, then exits 0", func(t *testing.T) {
				id := submit(`{"text":"one two three","delaySeconds":2}`)
				waitFor(t, "the worker to claim "+id, 10*time.Second, func() bool { return px.claimed(id) })
				if err := wk.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				// The other loop is in a 30 s long poll: exiting well before
				// that shows that the worker cuts it.
				select {
				case <-wk.done:
				case <-time.After(10 * time.Second):
					t.Fatalf("worker still running 10 s after SIGTERM; output:\n%s", wk.out)
				}
				if code := wk.cmd.ProcessState.ExitCode(); code != 0 {
					t.Errorf("worker exit code %d, want 0", code)
				}
				completes := px.calls(id, "complete")
				if len(completes) != 1 || completes[0].status != http.StatusOK {
					t.Errorf("complete calls of %s: %v, want one answered 200 before the exit", id, completes)
				}
				if wh := rcv.await(t, id); wh.Type != "job.completed" || string(compact(t, wh.Data.Result)) != `{"words":3,"ref":null}` {
					t.Errorf("webhook = %s, want job.completed with {\"words\":3,\"ref\":null}", wh.raw)
				}
			})

			if strings.Contains(wk.out.String(), workerKey) {
				t.Error("the worker printed its key")
			}
		})
	}
}

// lookRuntime finds a runtime on PATH; without it the test skips, or fails
// when BOOMERANG_REQUIRE_RUNTIMES is set.
func lookRuntime(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("BOOMERANG_REQUIRE_RUNTIMES") != "" {
		t.Fatalf("%s is not on PATH and BOOMERANG_REQUIRE_RUNTIMES is set: %v", name, err)
	}
	t.Skipf("%s is not on PATH (set BOOMERANG_REQUIRE_RUNTIMES to make this a failure)", name)
	return ""
}

// ---- the server, a process ----

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds cmd/boomerang once per test binary.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "boomerang-examples-"); buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, "boomerang"), "./cmd/boomerang")
		cmd.Dir = ".." // the module root: go test runs in examples/
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/boomerang: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "boomerang")
}

type server struct {
	base string
	out  *testkit.SyncBuffer
}

// startServer runs Boomerang on a free port with its own Redis database.
func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{out: &testkit.SyncBuffer{}}
	// Traces are exported (to a sink that drops them) so that claims carry
	// the job's traceparent, which the workers must send back.
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	t.Cleanup(sink.Close)
	cmd := exec.Command(binary(t), "serve")
	cmd.Env = environ(map[string]string{
		"OTEL_TRACES_EXPORTER":               "otlp",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink.URL + "/v1/traces",
		"BOOMERANG_ADDR":                     "127.0.0.1:0",
		"BOOMERANG_REDIS_URL":                redistest.URL(t),
		"BOOMERANG_ADMIN_TOKEN":              adminToken,
		"BOOMERANG_ALLOW_PRIVATE_CALLBACKS":  "true",
		"BOOMERANG_JOB_EXTERNAL":             jobType,
		"BOOMERANG_LOG_FORMAT":               "json",
		"BOOMERANG_SHUTDOWN_TIMEOUT":         "5s",
		"BOOMERANG_TASK_CHECK_INTERVAL":      "50ms",
	})
	done := startProcess(t, "boomerang", cmd, s.out)
	addr := regexp.MustCompile(`boomerang: API listening on (http://\S+)`)
	waitFor(t, "the server to listen", 15*time.Second, func() bool {
		select {
		case <-done:
			t.Fatalf("the server exited at start:\n%s", s.out)
		default:
		}
		m := addr.FindStringSubmatch(s.out.String())
		if m != nil {
			s.base = m[1]
		}
		return m != nil
	})
	return s
}

// environ is this process's environment without BOOMERANG_ variables, plus vars.
func environ(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BOOMERANG_") {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// startProcess starts cmd with its output in out. The process dies with the
// test (SIGTERM, then SIGKILL) or with the test binary (Pdeathsig); out goes
// to the test log if the test failed. The channel is closed when it exits.
func startProcess(t *testing.T, name string, cmd *exec.Cmd, out *testkit.SyncBuffer) chan struct{} {
	t.Helper()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out)
		}
	})
	return done
}

// call makes a request and decodes a JSON answer into out (if not nil).
func (s *server) call(t *testing.T, method, path, token string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

func (s *server) createClient(t *testing.T) (secret, apiKey string) {
	t.Helper()
	var c struct{ APIKey, SigningSecret string }
	if code := s.call(t, "POST", "/admin/v1/clients", adminToken, map[string]string{"name": "examples"}, &c); code != http.StatusCreated {
		t.Fatalf("create client: status %d", code)
	}
	return c.SigningSecret, c.APIKey
}

func (s *server) createWorker(t *testing.T) string {
	t.Helper()
	var w struct{ WorkerKey string }
	body := map[string]any{"name": "examples", "types": []string{jobType}}
	if code := s.call(t, "POST", "/admin/v1/workers", adminToken, body, &w); code != http.StatusCreated || !strings.HasPrefix(w.WorkerKey, "bmw_") {
		t.Fatalf("create worker: status %d, key prefix %.4q", code, w.WorkerKey)
	}
	return w.WorkerKey
}

// submit posts a job whose payload is the JSON text given, unchanged.
func (s *server) submit(t *testing.T, apiKey, callback, payload string) string {
	t.Helper()
	var r struct{ RequestID string }
	body := map[string]any{"type": jobType, "payload": json.RawMessage(payload), "callbackUrl": callback}
	if code := s.call(t, "POST", "/v1/jobs", apiKey, body, &r); code != http.StatusAccepted {
		t.Fatalf("submit %s: status %d", payload, code)
	}
	return r.RequestID
}

func (s *server) jobResult(t *testing.T, apiKey, id string) json.RawMessage {
	t.Helper()
	var j struct{ Result json.RawMessage }
	if code := s.call(t, "GET", "/v1/jobs/"+id, apiKey, nil, &j); code != http.StatusOK {
		t.Fatalf("GET job %s: status %d", id, code)
	}
	return j.Result
}

// ---- the worker, a process ----

type worker struct {
	cmd  *exec.Cmd
	out  *testkit.SyncBuffer
	done chan struct{}
}

func startWorker(t *testing.T, runtime, script string, env map[string]string) *worker {
	t.Helper()
	w := &worker{cmd: exec.Command(runtime, script), out: &testkit.SyncBuffer{}}
	w.cmd.Env = environ(env)
	w.done = startProcess(t, filepath.Base(script), w.cmd, w.out)
	return w
}

// ---- the proxy between worker and server ----

// workerCall is one worker request as the proxy saw it.
type workerCall struct {
	path        string
	body        []byte
	status      int // 0: the proxy dropped the connection
	answer      []byte
	traceparent string // the header the worker sent
}

func (c workerCall) String() string {
	return fmt.Sprintf("{%s %s → %d %s}", c.path, c.body, c.status, c.answer)
}

// proxy forwards worker calls to the server and logs them. It drops the
// connection of the first claim and answers the first complete 503 itself,
// the faults a worker must retry.
type proxy struct {
	srv  *httptest.Server
	mu   sync.Mutex
	log  []workerCall
	seen map[string]int // calls per path suffix, faults included
}

func newProxy(t *testing.T, upstream string) *proxy {
	p := &proxy{seen: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		verb := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		tp := r.Header.Get("traceparent")
		p.mu.Lock()
		p.seen[verb]++
		first := p.seen[verb] == 1
		p.mu.Unlock()

		switch {
		case verb == "claim" && first:
			p.record(workerCall{path: r.URL.Path, body: body})
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		case verb == "complete" && first:
			answer := []byte(`{"type":"about:blank","title":"Service Unavailable","status":503}`)
			p.record(workerCall{path: r.URL.Path, body: body, status: http.StatusServiceUnavailable, answer: answer, traceparent: tp})
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write(answer)
			return
		}

		req, err := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil { // the worker went away (a cut long poll), or the server did
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		p.record(workerCall{path: r.URL.Path, body: body, status: resp.StatusCode, answer: answer, traceparent: tp})
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(answer)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// claimTraceparent is the traceparent of the claim answer that gave id.
func (p *proxy) claimTraceparent(t *testing.T, id string) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.log {
		var claim struct{ RequestID, TraceParent string }
		if strings.HasSuffix(c.path, "/claim") && json.Unmarshal(c.answer, &claim) == nil && claim.RequestID == id {
			if claim.TraceParent == "" {
				t.Fatalf("the claim of %s carries no traceparent: %s", id, c.answer)
			}
			return claim.TraceParent
		}
	}
	t.Fatalf("no claim answer gave %s", id)
	return ""
}

func (p *proxy) record(c workerCall) {
	p.mu.Lock()
	p.log = append(p.log, c)
	p.mu.Unlock()
}

// calls returns the calls of verb (heartbeat, complete, fail) on job id.
func (p *proxy) calls(id, verb string) []workerCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []workerCall
	for _, c := range p.log {
		if c.path == "/v1/worker/jobs/"+id+"/"+verb {
			out = append(out, c)
		}
	}
	return out
}

// claimed reports whether a claim answered with job id.
func (p *proxy) claimed(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.log {
		var j struct{ RequestID string }
		if c.path == "/v1/worker/claim" && c.status == http.StatusOK && json.Unmarshal(c.answer, &j) == nil && j.RequestID == id {
			return true
		}
	}
	return false
}

func (p *proxy) droppedClaim() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.log {
		if c.path == "/v1/worker/claim" && c.status == 0 {
			return true
		}
	}
	return false
}

// ---- the webhook receiver ----

// webhook is one delivery as the receiver saw it.
type webhook struct {
	Type string
	Data struct {
		RequestID string
		Status    string
		Result    json.RawMessage
		Error     *struct{ Code, Message string }
	}
	raw    []byte
	header http.Header
}

type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]webhook // by request id; the first delivery
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: map[string]webhook{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		wh := webhook{raw: raw, header: req.Header.Clone()}
		if err := json.Unmarshal(raw, &wh); err != nil {
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		if _, ok := r.got[wh.Data.RequestID]; !ok {
			r.got[wh.Data.RequestID] = wh
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) await(t *testing.T, id string) webhook {
	t.Helper()
	var wh webhook
	waitFor(t, "the webhook of "+id, 10*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		var ok bool
		wh, ok = r.got[id]
		return ok
	})
	return wh
}

func verifyWebhook(t *testing.T, secret string, wh webhook) {
	t.Helper()
	if err := signing.Verify(secret, wh.header, wh.raw); err != nil {
		t.Errorf("signing.Verify rejected the webhook of %s: %v", wh.Data.RequestID, err)
	}
}

// ---- helpers ----

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

// decodeExact decodes a JSON object keeping numbers as their text.
func decodeExact(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return m
}

func compact(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("compact %s: %v", raw, err)
	}
	return b.Bytes()
}

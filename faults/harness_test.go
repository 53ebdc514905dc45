package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/boomerang-dev/boomerang/testkit"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/signing"
	"github.com/redis/go-redis/v9"
)

// adminToken is the BOOMERANG_ADMIN_TOKEN of every service the tests start.
const adminToken = "faults-admin-token-0123456789abcdef-XYZ"

var (
	binPath string // the service binary, built once by TestMain (without -race)
	// workDir holds the logs of the services and redis-servers; it is kept
	// when a test fails or FAULTS_KEEP_LOGS is set.
	workDir string
)

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	if !testkit.LongTests() {
		fmt.Println("faults: skipped, a long suite: set " + testkit.LongEnv + "=1 to run it (.ci/run does)")
		return 0
	}
	dir, err := os.MkdirTemp("", "boomerang-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	workDir, binPath = dir, filepath.Join(dir, "boomerang")
	build := exec.Command("go", "build", "-o", binPath, "./cmd/boomerang")
	build.Dir = ".." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "faults: go build ./cmd/boomerang: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	if code == 0 && os.Getenv("FAULTS_KEEP_LOGS") == "" {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "faults: service and redis-server logs kept in %s\n", dir)
	}
	return code
}

// testDir returns a directory of workDir for this test's logs and data.
func testDir(t *testing.T, what string) string {
	t.Helper()
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	d := filepath.Join(workDir, name, what)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---- redis-server owned by one test ----

// aof makes a redis-server durable: every acknowledged write is fsynced.
var aof = []string{"--appendonly", "yes", "--appendfsync", "always"}

// redisServer is a redis-server subprocess owned by one test: it can be
// SIGKILLed and restarted on the same port with the same data directory.
type redisServer struct {
	t       *testing.T
	port    int
	args    []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedis(t *testing.T, extra ...string) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("the fault tests need redis-server on PATH (they kill and restart it); CI installs it")
	}
	dir := testDir(t, "redis")
	r := &redisServer{t: t, port: freePort(t), logPath: filepath.Join(dir, "redis.log")}
	r.args = append([]string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "",
		"--dir", dir, "--maxmemory-policy", "noeviction"}, extra...)
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			t.Logf("redis-server log %s, last lines:\n%s", r.logPath, tail(r.logPath, 20))
		}
	})
	return r
}

func (r *redisServer) url() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) }

// start runs redis-server and waits until it answers PING (after loading its AOF).
func (r *redisServer) start() error {
	f, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command("redis-server", r.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()

	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.port), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at start; log:\n%s", tail(r.logPath, 20))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("redis-server on port %d did not answer PING within 15s", r.port)
}

// kill SIGKILLs redis-server and waits until it is gone.
func (r *redisServer) kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		r.t.Errorf("redis-server did not die within 10s of SIGKILL")
	}
}

// ---- the service under test, a subprocess ----

// service is the Boomerang binary running as a subprocess on a fixed port,
// so that a restart keeps its address.
type service struct {
	t       *testing.T
	env     map[string]string
	addr    string
	base    string
	logPath string
	hc      *http.Client

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// startService starts Boomerang with the common settings plus env and
// stops it when the test ends.
func startService(t *testing.T, env map[string]string) *service {
	t.Helper()
	s := &service{t: t, env: env, addr: "127.0.0.1:" + strconv.Itoa(freePort(t)),
		logPath: filepath.Join(testDir(t, "service"), "service.log"),
		hc: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}}}
	s.base = "http://" + s.addr
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if code, _, err := s.terminate(15 * time.Second); err != nil {
			t.Errorf("stopping the service: %v", err)
		} else if code != 0 && code != -1 {
			t.Logf("service exited with code %d at the end of the test", code)
		}
		if t.Failed() {
			t.Logf("service log %s (stdout and stderr), last lines:\n%s", s.logPath, tail(s.logPath, 40))
		}
	})
	return s
}

func (s *service) environ() []string {
	vars := map[string]string{
		"BOOMERANG_ADDR":                    s.addr,
		"BOOMERANG_ADMIN_TOKEN":             adminToken,
		"BOOMERANG_ALLOW_PRIVATE_CALLBACKS": "true",
		"BOOMERANG_LOG_FORMAT":              "json",
	}
	for k, v := range s.env {
		vars[k] = v
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// listenWriter copies the service's stdout to the log and notices the
// "API listening on" line.
type listenWriter struct {
	log       io.Writer
	mu        sync.Mutex
	buf       bytes.Buffer
	listening chan struct{}
	seen      bool
}

func (w *listenWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = w.log.Write(p)
	if !w.seen {
		w.buf.Write(p)
		if strings.Contains(w.buf.String(), "API listening on") {
			w.seen = true
			close(w.listening)
		}
	}
	return len(p), nil
}

// start runs the binary and waits for "API listening on"; it is safe to
// call from any goroutine (it never calls t.Fatal).
func (s *service) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starts++
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "=== start %d at %s ===\n", s.starts, time.Now().Format(time.RFC3339Nano))
	out, err := os.OpenFile(s.logPath, os.O_APPEND|os.O_WRONLY, 0o644) // stdout's copy, open while it runs
	if err != nil {
		return err
	}
	lw := &listenWriter{log: out, listening: make(chan struct{})}
	cmd := exec.Command(binPath, "serve")
	cmd.Env = s.environ()
	cmd.Stdout, cmd.Stderr = lw, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start service: %w", err)
	}
	exited := make(chan struct{})
	go func() { // cmd.ProcessState says how it ended
		_ = cmd.Wait()
		out.Close()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	select {
	case <-lw.listening:
		return nil
	case <-exited:
		return fmt.Errorf("service exited before listening; log:\n%s", tail(s.logPath, 30))
	case <-time.After(30 * time.Second):
		return fmt.Errorf("service did not listen within 30s; log:\n%s", tail(s.logPath, 30))
	}
}

// kill SIGKILLs the service and waits until it is gone.
func (s *service) kill() error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("service did not die within 10s of SIGKILL")
	}
}

// terminate sends SIGTERM and waits up to wait for the exit, then kills.
// It returns the exit code (-1 if it had to be killed or was already
// gone by a signal) and how long the exit took.
func (s *service) terminate(wait time.Duration) (code int, took time.Duration, err error) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	select {
	case <-exited:
		return cmd.ProcessState.ExitCode(), 0, nil
	default:
	}
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return cmd.ProcessState.ExitCode(), time.Since(start), nil
	case <-time.After(wait):
	}
	_ = s.kill()
	return -1, time.Since(start), fmt.Errorf("service did not exit within %s of SIGTERM (killed)", wait)
}

// call makes one request; it never fails the test, so goroutines may use it.
func (s *service) call(method, path, token string, body any, out any, header ...string) (int, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header, err
	}
	if out != nil && len(raw) > 0 && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, resp.Header, fmt.Errorf("decode %q: %w", raw, err)
		}
	}
	return resp.StatusCode, resp.Header, nil
}

// apiClient is a client of the service as the admin API created it.
type apiClient struct {
	ID, APIKey, SigningSecret string
}

func (s *service) newClient(name string) apiClient {
	s.t.Helper()
	var c apiClient
	code, _, err := s.call("POST", "/admin/v1/clients", adminToken, map[string]string{"name": name}, &c)
	if err != nil || code != http.StatusCreated || c.APIKey == "" || c.SigningSecret == "" {
		s.t.Fatalf("create client: status %d, error %v", code, err)
	}
	return c
}

// submit POSTs an echo job; it returns the status, the requestId of a 202
// and the answer's Content-Type.
func (s *service) submit(key, callback string, payload any) (code int, requestID, contentType string, err error) {
	var r struct{ RequestID string }
	code, h, err := s.call("POST", "/v1/jobs", key, map[string]any{"type": "echo", "payload": payload, "callbackUrl": callback}, &r)
	if h != nil {
		contentType = h.Get("Content-Type")
	}
	return code, r.RequestID, contentType, err
}

type jobView struct {
	RequestID string
	Status    string
	Delivery  *struct {
		ID, Status string
		Attempts   int
	}
}

func (j jobView) done() bool {
	return j.Status == "COMPLETED" && j.Delivery != nil && j.Delivery.Status == "DELIVERED"
}

func (s *service) job(key, id string) (jobView, error) {
	var j jobView
	code, _, err := s.call("GET", "/v1/jobs/"+id, key, nil, &j)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET /v1/jobs/%s: status %d", id, code)
	}
	return j, err
}

// waitJobsDone polls GET /v1/jobs/{id} until every job is COMPLETED with
// its delivery DELIVERED, or the deadline passes; it returns the last view
// of every job.
func (s *service) waitJobsDone(key string, ids []string, timeout time.Duration) map[string]jobView {
	views := make(map[string]jobView, len(ids))
	pending := append([]string(nil), ids...)
	deadline := time.Now().Add(timeout)
	for round := 0; round < 10000 && len(pending) > 0; round++ {
		var mu sync.Mutex
		var still []string
		var wg sync.WaitGroup
		work := make(chan string)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range work {
					j, err := s.job(key, id)
					mu.Lock()
					if err == nil {
						views[id] = j
					}
					if err != nil || !j.done() {
						still = append(still, id)
					}
					mu.Unlock()
				}
			}()
		}
		for _, id := range pending {
			work <- id
		}
		close(work)
		wg.Wait()
		pending = still
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	return views
}

// ---- the receiver of webhooks ----

// Answers a receiver can give.
const (
	answerOK    = "ok"    // 204 (after the receiver's delay)
	answer500   = "500"   // 500
	answer429   = "429"   // 429 with Retry-After: 1
	answerReset = "reset" // hijack the connection and close it with SO_LINGER 0 (RST)
	answerHang  = "hang"  // block until the request's context ends
)

// hook is one request the receiver saw, whatever it answered.
type hook struct {
	path        string
	webhookID   string
	requestID   string
	completedAt time.Time
	at          time.Time
	answer      string
	sigErr      error
	body        []byte
}

// receiver records every webhook request and answers as decide says.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	decide func(seq int) string        // nil: always answerOK
	delay  func(seq int) time.Duration // wait before an answerOK; nil: none
	byPath map[string]string           // an answer per URL path, before decide
	quit   chan struct{}

	seq    atomic.Int64
	mu     sync.Mutex
	secret string
	hooks  []hook
}

// newReceiver starts a receiver on 127.0.0.1; it stops when the test ends.
func newReceiver(t *testing.T, decide func(int) string, delay func(int) time.Duration) *receiver {
	r := &receiver{t: t, decide: decide, delay: delay, quit: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		close(r.quit)
		r.srv.Close()
	})
	return r
}

func (r *receiver) url(path string) string { return r.srv.URL + path }

// localhostURL names the receiver by "localhost" instead of 127.0.0.1: the
// same address, another callback host.
func (r *receiver) localhostURL(path string) string {
	return strings.Replace(r.srv.URL, "127.0.0.1", "localhost", 1) + path
}

func (r *receiver) setSecret(s string) {
	r.mu.Lock()
	r.secret = s
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	at := time.Now()
	seq := int(r.seq.Add(1) - 1)
	answer := answerOK
	if a, ok := r.byPath[req.URL.Path]; ok {
		answer = a
	} else if r.decide != nil {
		answer = r.decide(seq)
	}
	var msg struct {
		Data struct {
			RequestID   string    `json:"requestId"`
			CompletedAt time.Time `json:"completedAt"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &msg)
	r.mu.Lock()
	var sigErr error
	if r.secret != "" {
		sigErr = signing.Verify(r.secret, req.Header, body)
	}
	r.hooks = append(r.hooks, hook{path: req.URL.Path, webhookID: req.Header.Get("webhook-id"), requestID: msg.Data.RequestID,
		completedAt: msg.Data.CompletedAt, at: at, answer: answer, sigErr: sigErr, body: body})
	r.mu.Unlock()

	switch answer {
	case answer500:
		http.Error(w, "receiver fails on purpose", http.StatusInternalServerError)
	case answer429:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	case answerReset:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			r.t.Errorf("hijack: %v", err)
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends RST
		}
		conn.Close()
	case answerHang:
		select {
		case <-req.Context().Done():
		case <-r.quit:
		case <-time.After(60 * time.Second):
		}
	default:
		if r.delay != nil {
			select {
			case <-time.After(r.delay(seq)):
			case <-r.quit:
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (r *receiver) all() []hook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hook(nil), r.hooks...)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.hooks)
}

// requestIDs returns the distinct requestIds the receiver saw.
func requestIDs(r *receiver) map[string]bool {
	seen := map[string]bool{}
	for _, h := range r.all() {
		seen[h.requestID] = true
	}
	return seen
}

// coverage says how many of ids have reached the receiver at least once.
func (r *receiver) coverage(ids []string) int {
	seen := requestIDs(r)
	n := 0
	for _, id := range ids {
		if seen[id] {
			n++
		}
	}
	return n
}

// waitCoverage waits until every id reached the receiver or timeout passes.
func (r *receiver) waitCoverage(ids []string, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		n := r.coverage(ids)
		if n == len(ids) || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settled is when every accepted job had reached the receiver (arrived)
// and when the API showed every one COMPLETED and DELIVERED (recorded).
type settled struct {
	covered           int
	arrived, recorded time.Time
	views             map[string]jobView
}

// waitSettled waits, within one deadline, first for every id to reach the
// receiver, then for the API to show each one delivered: an attempt that
// reached the receiver may be recorded only after asynq recovers its task.
func waitSettled(s *service, r *receiver, key string, ids []string, timeout time.Duration) settled {
	deadline := time.Now().Add(timeout)
	var st settled
	st.covered = r.waitCoverage(ids, time.Until(deadline))
	st.arrived = time.Now()
	st.views = s.waitJobsDone(key, ids, max(time.Until(deadline), 30*time.Second))
	st.recorded = time.Now()
	return st
}

// dedupReport checks the at-least-once promise over what the receiver saw:
// every id arrived, each requestId under exactly one webhook-id, equal to
// the delivery id the API shows. It returns lost and duplicate counts.
func dedupReport(t *testing.T, r *receiver, ids []string, views map[string]jobView) (lost, duplicates int) {
	t.Helper()
	byRequest := map[string]map[string]int{}
	requests := 0
	for _, h := range r.all() {
		if h.sigErr != nil {
			t.Errorf("webhook %s failed signature verification: %v", h.webhookID, h.sigErr)
		}
		if byRequest[h.requestID] == nil {
			byRequest[h.requestID] = map[string]int{}
		}
		byRequest[h.requestID][h.webhookID]++
		requests++
	}
	for _, id := range ids {
		seen := byRequest[id]
		if len(seen) == 0 {
			lost++
			if lost <= 10 {
				t.Errorf("job %s (got 202) never reached the receiver; last view %+v", id, views[id])
			}
			continue
		}
		if len(seen) != 1 {
			t.Errorf("job %s arrived under %d webhook-ids %v, want exactly one", id, len(seen), seen)
		}
		for wid, n := range seen {
			duplicates += n - 1
			if v, ok := views[id]; ok && v.Delivery != nil && v.Delivery.ID != wid {
				t.Errorf("job %s: webhook-id %s, but the API shows delivery %s", id, wid, v.Delivery.ID)
			}
		}
	}
	for id, v := range views {
		if !v.done() {
			t.Errorf("job %s not COMPLETED+DELIVERED at the end: %+v (delivery %+v)", id, v, v.Delivery)
		}
	}
	if len(views) != len(ids) {
		t.Errorf("could read %d of %d jobs", len(views), len(ids))
	}
	return lost, duplicates
}

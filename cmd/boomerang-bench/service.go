package main

// The service under test: built from ./cmd/boomerang, run as "serve" in a
// subprocess, its output kept, its admin API used to create a client and
// a worker key.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	servicePackage = "github.com/boomerang-dev/boomerang/cmd/boomerang"
	// The lines "boomerang serve" prints on stdout once it listens.
	apiListening   = "boomerang: API listening on "
	pprofListening = "boomerang: pprof listening on "
	// startTimeout bounds each step of start-up: listening, then ready.
	startTimeout = 30 * time.Second
)

// buildService builds the service into dir with the go tool on PATH.
func buildService(ctx context.Context, dir string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("bench: no go tool on PATH to build the service: pass --serve-binary")
	}
	bin := filepath.Join(dir, "boomerang")
	out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, servicePackage).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("bench: go build %s (run from inside the module, or pass --serve-binary): %w\n%s", servicePackage, err, out)
	}
	return bin, nil
}

// controlledEnv are set by the bench itself; droppedEnv would break it.
func controlledEnv() []string {
	return []string{"BOOMERANG_REDIS_URL", "BOOMERANG_REDIS_CLUSTER", "BOOMERANG_ADDR", "BOOMERANG_ADMIN_TOKEN",
		"BOOMERANG_ALLOW_PRIVATE_CALLBACKS", "BOOMERANG_DEBUG_ADDR"}
}

func droppedEnv() []string {
	return []string{"BOOMERANG_ADMIN_ADDR", "BOOMERANG_ROLE", "BOOMERANG_REQUIRE_HTTPS"}
}

// benchDefaultEnv applies unless the user set the variable. The per-client
// rate limit stays on, so that its Redis round trip is measured as in a
// default deployment, but far above what the one benchmark client sends
// (BOOMERANG_RATE_LIMIT=0 measures without it).
func benchDefaultEnv() map[string]string {
	return map[string]string{
		"BOOMERANG_LOG_LEVEL":  "warn",
		"BOOMERANG_RATE_LIMIT": "1000000",
		"BOOMERANG_RATE_BURST": "10000000",
	}
}

// passThroughEnv returns the BOOMERANG_* variables of this process that the
// service inherits; redacted hides values that may be secret.
func passThroughEnv(redacted bool) map[string]string {
	out := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "BOOMERANG_") || slices.Contains(controlledEnv(), k) || slices.Contains(droppedEnv(), k) {
			continue
		}
		if redacted && (strings.Contains(k, "TOKEN") || strings.Contains(k, "SECRET") || strings.Contains(k, "URL")) {
			v = "<redacted>"
		}
		out[k] = v
	}
	return out
}

// serviceEnv is the service's environment: this process's, less its
// BOOMERANG_* variables, plus those passed through, the bench's defaults,
// redisEnv (none: the embedded Redis) and the bench's own settings.
func serviceEnv(redisEnv []string, adminToken string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BOOMERANG_") {
			env = append(env, kv)
		}
	}
	pass := passThroughEnv(false)
	for k, v := range benchDefaultEnv() {
		if _, ok := pass[k]; !ok {
			pass[k] = v
		}
	}
	for k, v := range pass {
		env = append(env, k+"="+v)
	}
	env = append(env, redisEnv...)
	return append(env,
		"BOOMERANG_ADDR=127.0.0.1:0", // the service prints the port it got
		"BOOMERANG_ADMIN_TOKEN="+adminToken,
		"BOOMERANG_ALLOW_PRIVATE_CALLBACKS=true",
		"BOOMERANG_DEBUG_ADDR=127.0.0.1:0",
	)
}

// benchService is a running "boomerang serve".
type benchService struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port
	debug  string // pprof base URL
	admin  string
	exited chan struct{}

	mu      sync.Mutex
	lines   int
	tail    []string
	stopped bool
}

// startService runs binary serve and waits until it listens and is ready.
// If it exits or is not ready in time, the error carries its last lines.
func startService(ctx context.Context, binary string, redisEnv []string) (*benchService, error) {
	s := &benchService{admin: randomToken(), exited: make(chan struct{})}
	s.cmd = exec.Command(binary, "serve")
	s.cmd.Env = serviceEnv(redisEnv, s.admin)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start service %s serve: %w", binary, err)
	}
	addrs := s.readOutput(stdout, stderr)
	if err := s.waitListening(ctx, addrs); err != nil {
		s.stop()
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// readOutput keeps the service's output and sends the addresses it listens
// on; s.exited is closed once the process has exited and its output is read.
func (s *benchService) readOutput(stdout, stderr io.Reader) <-chan string {
	addrs := make(chan string, 2)
	var pipes sync.WaitGroup
	pipes.Go(func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.addLine(sc.Text())
			if a, ok := strings.CutPrefix(sc.Text(), apiListening); ok {
				addrs <- "api " + a
			}
			if a, ok := strings.CutPrefix(sc.Text(), pprofListening); ok {
				addrs <- "pprof " + a
			}
		}
	})
	pipes.Go(func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.addLine(sc.Text())
		}
	})
	go func() {
		pipes.Wait() // Wait must not run before the pipes are read to the end
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	return addrs
}

func (s *benchService) waitListening(ctx context.Context, addrs <-chan string) error {
	timeout := time.After(startTimeout)
	for s.base == "" || s.debug == "" {
		select {
		case a := <-addrs:
			if v, ok := strings.CutPrefix(a, "api "); ok {
				s.base = v
			} else {
				s.debug = strings.TrimPrefix(a, "pprof ")
			}
		case <-s.exited:
			return fmt.Errorf("service exited before listening (%s):\n%s", s.cmd.ProcessState, s.tailText())
		case <-timeout:
			return fmt.Errorf("service did not listen within %s:\n%s", startTimeout, s.tailText())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// waitReady polls /readyz: Redis reachable and workers running.
func (s *benchService) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(startTimeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("service exited before it was ready (%s):\n%s", s.cmd.ProcessState, s.tailText())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("service not ready within %s:\n%s", startTimeout, s.tailText())
		}
	}
}

func (s *benchService) addLine(l string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.HasPrefix(l, "boomerang: ") && strings.Contains(l, "listening on") {
		return // our own start-up lines, not log output
	}
	s.lines++
	s.tail = append(s.tail, l)
	if len(s.tail) > 20 {
		s.tail = s.tail[1:]
	}
}

type serviceLog struct {
	Lines int      `json:"stderrLines"`
	Tail  []string `json:"stderrTail,omitempty"`
}

func (s *benchService) log() serviceLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return serviceLog{Lines: s.lines, Tail: slices.Clone(s.tail)}
}

func (s *benchService) tailText() string { return strings.Join(s.log().Tail, "\n") }

func (s *benchService) pid() int { return s.cmd.Process.Pid }

// alive returns an error with the service's last lines if it has exited.
func (s *benchService) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("service exited (%s):\n%s", s.cmd.ProcessState, s.tailText())
	default:
		return nil
	}
}

// stop asks the service to shut down and kills it if it takes too long.
func (s *benchService) stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.mu.Unlock()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(40 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// createClient creates the bench's API client through the admin API.
func (s *benchService) createClient(ctx context.Context, hc *http.Client) (secret, apiKey string, err error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/admin/v1/clients", strings.NewReader(`{"name":"bench"}`))
	req.Header.Set("Authorization", "Bearer "+s.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("create client: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var c struct {
		APIKey        string `json:"apiKey"`
		SigningSecret string `json:"signingSecret"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &c) != nil || c.APIKey == "" || c.SigningSecret == "" {
		return "", "", fmt.Errorf("create client: status %d: %s", resp.StatusCode, raw)
	}
	return c.SigningSecret, c.APIKey, nil
}

// createWorker creates a worker key for types through the admin API.
func (s *benchService) createWorker(ctx context.Context, hc *http.Client, types ...string) (string, error) {
	body, _ := json.Marshal(map[string]any{"name": "bench", "types": types})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/admin/v1/workers", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+s.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("create worker: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var w struct {
		WorkerKey string `json:"workerKey"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &w) != nil || w.WorkerKey == "" {
		return "", fmt.Errorf("create worker: status %d: %s", resp.StatusCode, raw)
	}
	return w.WorkerKey, nil
}

func benchHTTPClient(submitters int) *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil, // loopback only, never a proxy
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        4 * max(submitters, 64),
			MaxIdleConnsPerHost: 2 * max(submitters, 64), // ≥ submitters, and room for the open-loop phase
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// fetchProfile saves the service's profile of the next seconds to file:
// kind "profile" (CPU) or "allocs" (allocations in those seconds).
func fetchProfile(ctx context.Context, debugBase, kind string, seconds int, file string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/%s?seconds=%d", debugBase, kind, max(seconds, 1)), nil)
	resp, err := (&http.Client{Timeout: time.Duration(seconds+30) * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: status %d", resp.StatusCode)
	}
	if dir := filepath.Dir(file); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/signing"
)

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listeningRE = regexp.MustCompile(`listening on http://(\S+) \(verifying with (\d+) secret\(s\)\)`)

// startListen runs listen in a goroutine and returns its base URL, its
// stdout and stderr, and a function that stops it and returns its error.
func startListen(t *testing.T, args ...string) (baseURL string, stdout, stderr *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- listen(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), stdout, stderr) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(stdout.String()); m != nil {
			baseURL = "http://" + m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("listen(%q) returned early: %v; stderr: %s", args, err, stderr)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("listen(%q) printed no address within 10 s; stdout: %q", args, stdout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			testClient.CloseIdleConnections()
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("listen did not return within 10 s of ctx cancellation")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { stop() })
	return baseURL, stdout, stderr, stop
}

// testClient has its own connection pool, closed before each stop so that
// the server's graceful shutdown need not wait for idle connections.
var testClient = &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}

// post sends a webhook and returns the status code and response body.
func post(t *testing.T, url, id, timestamp, signature, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if id != "" {
		req.Header.Set(signing.HeaderID, id)
	}
	req.Header.Set(signing.HeaderTimestamp, timestamp)
	req.Header.Set(signing.HeaderSignature, signature)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func newTestSecret(t *testing.T) string {
	t.Helper()
	s, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestListen(t *testing.T) {
	secret, other := newTestSecret(t), newTestSecret(t)
	url, stdout, _, stop := startListen(t, "--secret", secret)
	if !strings.Contains(stdout.String(), "verifying with 1 secret(s)") {
		t.Errorf("startup line %q does not say 1 secret", stdout)
	}

	now := time.Now().Unix()
	nowStr := strconv.FormatInt(now, 10)
	const body = `{"type":"invoice.paid","data":{"id":42}}`
	goodSig, _ := signing.Sign(secret, "msg_good", now, []byte(body))
	wrongSig, _ := signing.Sign(other, "msg_wrong", now, []byte(body))
	stale := now - 600
	staleSig, _ := signing.Sign(secret, "msg_stale", stale, []byte(body))
	textSig, _ := signing.Sign(secret, "msg_text", now, []byte("plain \x1b[31mtext"))

	tests := []struct {
		name       string
		path       string
		id, ts     string
		sig, body  string
		wantStatus int
		wantResp   string // substring of the response body
		wantOut    []string
	}{
		{"signed", "/hooks/stripe?x=1", "msg_good", nowStr, goodSig, body, http.StatusNoContent, "",
			[]string{"✔ webhook msg_good verified (timestamp " + nowStr + ", 40 bytes) POST /hooks/stripe?x=1\n{\n  \"type\": \"invoice.paid\",\n  \"data\": {\n    \"id\": 42\n  }\n}\n"}},
		{"wrong secret", "/", "msg_wrong", nowStr, wrongSig, body, http.StatusUnauthorized, "invalid signature",
			[]string{"✘ rejected msg_wrong: invalid signature\n"}},
		{"tampered body", "/", "msg_good", nowStr, goodSig, body + " ", http.StatusUnauthorized, "invalid signature",
			[]string{"✘ rejected msg_good: invalid signature\n"}},
		{"stale timestamp", "/", "msg_stale", strconv.FormatInt(stale, 10), staleSig, body, http.StatusUnauthorized, "too old",
			[]string{"✘ rejected msg_stale: invalid webhook timestamp: too old\n"}},
		{"no id", "/", "", nowStr, goodSig, body, http.StatusUnauthorized, "webhook-id",
			[]string{"✘ rejected (no webhook-id): missing webhook header: webhook-id\n"}},
		{"not JSON", "/t", "msg_text", nowStr, textSig, "plain \x1b[31mtext", http.StatusNoContent, "",
			[]string{"✔ webhook msg_text verified", "POST /t\nplain ?[31mtext\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, resp := post(t, url+tt.path, tt.id, tt.ts, tt.sig, tt.body)
			if status != tt.wantStatus || !strings.Contains(resp, tt.wantResp) {
				t.Errorf("POST %s id=%q: got %d %q, want %d containing %q", tt.path, tt.id, status, resp, tt.wantStatus, tt.wantResp)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("POST %s id=%q: stdout lacks %q; stdout:\n%s", tt.path, tt.id, want, stdout)
				}
			}
		})
	}

	t.Run("GET", func(t *testing.T) {
		resp, err := testClient.Get(url + "/hooks")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
			t.Errorf("GET /hooks: got %d Allow=%q, want 405 Allow=POST", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})

	t.Run("body too large", func(t *testing.T) {
		big := strings.Repeat("a", 10<<20+1)
		status, _ := post(t, url+"/", "msg_big", nowStr, goodSig, big)
		if status != http.StatusRequestEntityTooLarge {
			t.Errorf("POST 10 MiB + 1 byte: got %d, want 413", status)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				id := "msg_conc_" + strconv.Itoa(i)
				sig, _ := signing.Sign(secret, id, now, []byte(body))
				if status, resp := post(t, url+"/", id, nowStr, sig, body); status != http.StatusNoContent {
					t.Errorf("concurrent POST %s: got %d %q, want 204", id, status, resp)
				}
			})
		}
		wg.Wait()
		for i := range 8 {
			if want := "✔ webhook msg_conc_" + strconv.Itoa(i) + " verified"; !strings.Contains(stdout.String(), want) {
				t.Errorf("stdout lacks %q", want)
			}
		}
	})

	start := time.Now()
	if err := stop(); err != nil {
		t.Errorf("listen after ctx cancellation = %v, want nil", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("listen took %v to shut down with no request in flight, want < 3 s", d)
	}
	out := stdout.String()
	for _, s := range []string{strings.TrimPrefix(secret, "whsec_"), strings.TrimPrefix(goodSig, "v1,"), strings.TrimPrefix(wrongSig, "v1,")} {
		if strings.Contains(out, s) {
			t.Errorf("stdout contains a secret or signature %q:\n%s", s, out)
		}
	}
}

func TestListenSeveralSecrets(t *testing.T) {
	a, b, c := newTestSecret(t), newTestSecret(t), newTestSecret(t)
	url, stdout, _, stop := startListen(t, "--secret", a+","+b, "--secret", c, "--tolerance", "1h")
	if !strings.Contains(stdout.String(), "verifying with 3 secret(s)") {
		t.Errorf("startup line %q does not say 3 secrets", stdout)
	}
	ts := time.Now().Unix() - 1800 // inside the 1 h tolerance
	for i, secret := range []string{a, b, c} {
		id := "msg_" + strconv.Itoa(i)
		sig, _ := signing.Sign(secret, id, ts, []byte("{}"))
		if status, resp := post(t, url, id, strconv.FormatInt(ts, 10), sig, "{}"); status != http.StatusNoContent {
			t.Errorf("POST signed with secret %d: got %d %q, want 204", i+1, status, resp)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("listen after ctx cancellation = %v, want nil", err)
	}
}

func TestListenArgs(t *testing.T) {
	good := newTestSecret(t)
	tests := []struct {
		args []string
		want string // substring of the error
	}{
		{nil, "--secret"},
		{[]string{"--addr", "127.0.0.1:0"}, "--secret"},
		{[]string{"--secret", ""}, "--secret"},
		{[]string{"--secret", "whsec_short"}, "invalid secret"},
		{[]string{"--secret", good + ",nope"}, "secret 2 of 2"},
		{[]string{"--secret", good, "--tolerance", "0s"}, "--tolerance"},
		{[]string{"--secret", good, "--tolerance", "soon"}, "tolerance"},
		{[]string{"--secret", good, "extra"}, "extra"},
		{[]string{"--bogus"}, "bogus"},
		{[]string{"--secret", good, "--addr", "256.0.0.1:99999"}, "listen"},
	}
	for _, tt := range tests {
		var stdout, stderr syncBuffer
		err := listen(t.Context(), tt.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("listen(%q) = %v, want an error mentioning %q", tt.args, err, tt.want)
			continue
		}
		for _, s := range []string{strings.TrimPrefix(good, "whsec_"), "whsec_short"} {
			if strings.Contains(err.Error()+stderr.String()+stdout.String(), s) {
				t.Errorf("listen(%q) output or error shows the secret: %v; %s", tt.args, err, stderr.String())
			}
		}
	}

	// --help prints usage and is not an error.
	var stderr syncBuffer
	if err := listen(t.Context(), []string{"--help"}, io.Discard, &stderr); err != nil {
		t.Errorf("listen --help = %v, want nil", err)
	}
	if !strings.Contains(stderr.String(), "-secret") {
		t.Errorf("listen --help usage %q does not mention -secret", stderr.String())
	}
}

func TestListenViaRun(t *testing.T) {
	// The dispatcher in main.go passes the remaining arguments on.
	err := run(t.Context(), []string{"boomerang", "listen"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--secret") {
		t.Errorf("run(boomerang listen) = %v, want an error mentioning --secret", err)
	}
}

func TestListenShutdownForcesStuckConnections(t *testing.T) {
	saved := listenShutdownTimeout
	listenShutdownTimeout = 200 * time.Millisecond
	t.Cleanup(func() { listenShutdownTimeout = saved })

	url, _, stderr, stop := startListen(t, "--secret", newTestSecret(t))
	// A connection that never sends a request keeps Shutdown waiting.
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(50 * time.Millisecond) // let the server accept it
	start := time.Now()
	if err := stop(); err != nil {
		t.Errorf("listen with a stuck connection = %v, want nil", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("listen took %v to stop, want about the 200 ms timeout", d)
	}
	if !strings.Contains(stderr.String(), "closing connections") {
		t.Errorf("stderr %q does not report the forced close", stderr)
	}
}

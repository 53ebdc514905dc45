package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/testkit"
)

// startWork runs `boomerang work args...` against f until the returned stop
// is called; stop returns run's error and the worker's log.
func startWork(t *testing.T, f *fakeAPI, args ...string) (stop func() (error, string), log *testkit.SyncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log = &testkit.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"boomerang", "work"}, args...), f.env(), &testkit.SyncBuffer{}, log)
	}()
	stopped := false
	stop = func() (error, string) {
		t.Helper()
		cancel()
		stopped = true
		select {
		case err := <-done:
			return err, log.String()
		case <-time.After(5 * time.Second):
			t.Fatalf("work did not return within 5s of its context's end\nlog:\n%s", log)
			return nil, ""
		}
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	return stop, log
}

func TestWorkRunsTheCommand(t *testing.T) {
	t.Setenv("BOOMERANG_WORKER_KEY", fakeWorkerKey) // as a real worker's environment would hold it
	f := newFakeAPI(t)
	f.claims <- claimJSON("req_1", `{"n":21}`, nil)
	script := `payload=$(cat)
echo "progress 50 half" >&2
sleep 0.7
printf '{"got":%s,"job":"%s","key":"%s"}\n' "$payload" "$BOOMERANG_JOB_ID" "${BOOMERANG_WORKER_KEY:-}"`
	stop, _ := startWork(t, f, "--type", "shell", "--lease", "1s", "--", "/bin/sh", "-c", script)

	waitFor(t, "the job's completion", 5*time.Second, func() bool { return len(f.calls(&f.completes)) > 0 })
	if err, log := stop(); err != nil {
		t.Fatalf("work: %v\nlog:\n%s", err, log)
	}
	c := f.calls(&f.completes)[0]
	want := map[string]any{"leaseId": "lease-req_1", "result": map[string]any{"got": map[string]any{"n": 21.0}, "job": "req_1", "key": ""}}
	if c.id != "req_1" || !reflect.DeepEqual(c.body, want) {
		t.Errorf("complete of %s with %v\nwant req_1 with %v (the payload read from stdin, the job ID in the environment, no worker key)", c.id, c.body, want)
	}
	var progress []any
	for _, hb := range f.calls(&f.heartbeats) {
		if p, ok := hb.body["progress"]; ok {
			progress = append(progress, p)
		}
		if hb.body["leaseId"] != "lease-req_1" {
			t.Errorf("heartbeat %v: want leaseId lease-req_1", hb.body)
		}
	}
	wantProgress := []any{map[string]any{"percent": 50.0, "message": "half"}}
	if !reflect.DeepEqual(progress, wantProgress) {
		t.Errorf("heartbeats carried progress %v, want %v once (heartbeats: %d)", progress, wantProgress, len(f.calls(&f.heartbeats)))
	}
	if n := len(f.calls(&f.fails)); n != 0 {
		t.Errorf("%d fail calls, want none", n)
	}
}

func TestWorkReportsHowTheCommandEnded(t *testing.T) {
	longStderr := strings.Repeat("x", 5000) + "END"
	tests := []struct {
		name          string
		script        string
		wantComplete  any    // result wanted; nil: a failure is wanted
		wantCode      string // of the failure
		wantMessage   string
		wantRetryable bool
	}{
		{"exit 3 fails with the end of stderr", `echo "progress 10 starting" >&2; echo "first line" >&2; echo "it broke" >&2; exit 3`,
			nil, "exit_3", "progress 10 starting\nfirst line\nit broke", false},
		{"exit 75 may be retried", `echo "try later" >&2; exit 75`, nil, "exit_75", "try later", true},
		{"no stderr says the exit status", `exit 9`, nil, "exit_9", "exit status 9", false},
		{"stderr is cut to its last 4 KiB", `printf '` + longStderr + `' >&2; exit 1`, nil, "exit_1", longStderr[len(longStderr)-4096:], false},
		{"stdout that is not JSON", `echo "hello world"`, nil, "invalid_result", "stdout is not JSON: hello world", false},
		{"stdout past --max-result", `printf '"%s"' 0123456789012345678901234567890123456789`, nil, "result_too_large", "stdout passed 32 bytes", false},
		{"empty stdout is null", `true`, "null", "", "", false},
		{"a JSON string", `echo '"done"'`, "done", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.claims <- claimJSON("req_1", `{}`, nil)
			stop, _ := startWork(t, f, "--type", "shell", "--max-result", "32", "--", "/bin/sh", "-c", tt.script)
			waitFor(t, "a report", 5*time.Second, func() bool { return len(f.calls(&f.completes))+len(f.calls(&f.fails)) > 0 })
			err, log := stop()
			if err != nil {
				t.Fatalf("work: %v", err)
			}
			completes, fails := f.calls(&f.completes), f.calls(&f.fails)
			if tt.wantComplete != nil {
				if len(completes) != 1 || len(fails) != 0 {
					t.Fatalf("%d completes, %d fails (%v); want the result %v\nlog:\n%s", len(completes), len(fails), fails, tt.wantComplete, log)
				}
				got := completes[0].body["result"]
				if tt.wantComplete == "null" {
					if got != nil {
						t.Errorf("result %v, want null", got)
					}
				} else if got != tt.wantComplete {
					t.Errorf("result %v, want %v", got, tt.wantComplete)
				}
				return
			}
			if len(fails) != 1 || len(completes) != 0 {
				t.Fatalf("%d completes, %d fails; want one failure %s\nlog:\n%s", len(completes), len(fails), tt.wantCode, log)
			}
			body := fails[0].body
			jobErr, _ := body["error"].(map[string]any)
			if jobErr["code"] != tt.wantCode || jobErr["message"] != tt.wantMessage || body["retryable"] != tt.wantRetryable || body["leaseId"] != "lease-req_1" {
				t.Errorf("fail %v\nwant code %q, message %q, retryable %v", body, tt.wantCode, tt.wantMessage, tt.wantRetryable)
			}
			if !contains(log, "job failed", "job=req_1", "code="+tt.wantCode) {
				t.Errorf("log does not have the job's line:\n%s", log)
			}
		})
	}
}

// processGone reports whether pid has ended (a zombie waiting for its
// parent counts as ended).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return os.IsNotExist(err)
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] == "Z"
}

// readPID waits for a script to write its PID to file.
func readPID(t *testing.T, file string) int {
	t.Helper()
	var pid int
	waitFor(t, "the PID in "+file, 5*time.Second, func() bool {
		b, err := os.ReadFile(file)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	return pid
}

// treeScript writes the PIDs of the shell and of a child of it to dir, then
// waits for the child, which would sleep for 30 s.
const treeScript = `sleep 30 & echo $! > "$0/child.tmp" && mv "$0/child.tmp" "$0/child"; echo $$ > "$0/shell.tmp" && mv "$0/shell.tmp" "$0/shell"; wait`

func TestWorkKillsTheCommandWhenTheJobIsTakenBack(t *testing.T) {
	tests := []struct {
		name       string
		status     int // of the heartbeats once the command runs; 0: 200
		slug       string
		deadline   time.Duration // from now; 0: none
		wantReason string
	}{
		{"job canceled", 409, "job-canceled", 0, "409 job-canceled"},
		{"lease lost", 409, "lease-lost", 0, "409 lease-lost"},
		{"job expired", 409, "job-expired", 0, "409 job-expired"},
		{"deadline passed", 0, "", 1500 * time.Millisecond, "the job's deadline passed"},
		{"no heartbeat gets through for a whole lease", 503, "service-unavailable", 0, "lease lapsed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			f := newFakeAPI(t)
			var deadline *time.Time
			if tt.deadline > 0 {
				d := time.Now().Add(tt.deadline)
				deadline = &d
			}
			f.claims <- claimJSON("req_1", `{}`, deadline)
			stop, log := startWork(t, f, "--type", "shell", "--lease", "1s", "--kill-grace", "2s", "--", "/bin/sh", "-c", treeScript, dir)
			shell, child := readPID(t, filepath.Join(dir, "shell")), readPID(t, filepath.Join(dir, "child"))
			if processGone(shell) || processGone(child) {
				t.Fatal("the command ended before the job was taken back")
			}
			if tt.status != 0 {
				f.mu.Lock()
				f.heartbeat = func(string) (int, string) { return tt.status, tt.slug }
				f.mu.Unlock()
			}
			waitFor(t, "the job to be dropped", 5*time.Second, func() bool { return strings.Contains(log.String(), "job dropped") })
			waitFor(t, "the command and its child to end", 3*time.Second, func() bool { return processGone(shell) && processGone(child) })
			err, logText := stop()
			if err != nil {
				t.Fatalf("work: %v", err)
			}
			if n, m := len(f.calls(&f.completes)), len(f.calls(&f.fails)); n+m != 0 {
				t.Errorf("%d completes and %d fails after the job was taken back, want none", n, m)
			}
			if !contains(logText, "job dropped", "job=req_1", tt.wantReason) {
				t.Errorf("log does not say why the job was dropped (%q):\n%s", tt.wantReason, logText)
			}
		})
	}
}

func TestWorkShutdown(t *testing.T) {
	tests := []struct {
		name         string
		script       string
		grace        string
		wantComplete bool
		wantLog      string
		tree         bool // the script started a child too
	}{
		{"a running job finishes and is reported", `echo $$ > "$0/shell.tmp" && mv "$0/shell.tmp" "$0/shell"; sleep 0.5; echo '{"finished":true}'`,
			"5s", true, "job completed", false},
		{"past the grace period it is killed and not reported", treeScript, "300ms", false, "the worker is shutting down", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := newFakeAPI(t)
			f.claims <- claimJSON("req_1", `{}`, nil)
			stop, _ := startWork(t, f, "--type", "shell", "--grace", tt.grace, "--kill-grace", "1s", "--", "/bin/sh", "-c", tt.script, dir)
			shell, child := readPID(t, filepath.Join(dir, "shell")), 0
			if tt.tree {
				child = readPID(t, filepath.Join(dir, "child"))
			}
			start := time.Now()
			err, log := stop() // as SIGTERM does
			if err != nil {
				t.Fatalf("work: %v", err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("work took %s to stop", took)
			}
			// Signals are delivered asynchronously: a process signalled
			// just before work returned may take a moment to exit.
			gone := func() bool { return processGone(shell) && (child == 0 || processGone(child)) }
			for deadline := time.Now().Add(time.Second); !gone() && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if !gone() {
				t.Errorf("the command or its child still runs 1 s after work returned")
			}
			if got := len(f.calls(&f.completes)) == 1; got != tt.wantComplete {
				t.Errorf("completed: %v, want %v\nlog:\n%s", got, tt.wantComplete, log)
			}
			if !contains(log, "stopping: no more claims", tt.wantLog) {
				t.Errorf("log without %q:\n%s", tt.wantLog, log)
			}
		})
	}
}

func TestWorkRefused(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"no type", []string{"--", "/bin/true"}, nil, "--type is required"},
		{"no command", []string{"--type", "shell"}, nil, "no COMMAND"},
		{"no such command", []string{"--type", "shell", "--", "/no/such/program"}, nil, "COMMAND"},
		{"bad numbers", []string{"--type", "shell", "--concurrency", "0", "--lease", "500ms", "--", "/bin/true"}, nil, "--concurrency 0: want at least 1\n--lease 500ms: want at least 1s"},
		{"no worker key", []string{"--type", "shell", "--", "/bin/true"}, map[string]string{"BOOMERANG_API_KEY": fakeAPIKey}, "no key: set BOOMERANG_WORKER_KEY"},
		{"the server refuses the key", []string{"--type", "shell", "--worker-key", "bmw_wrong", "--", "/bin/true"}, nil, "claim: 401 unauthorized"},
		{"a client key is not a worker key", []string{"--type", "shell", "--worker-key", fakeAPIKey, "--", "/bin/true"}, nil, "claim: 401 unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			getenv := f.env()
			if tt.env != nil {
				tt.env["BOOMERANG_URL"] = f.srv.URL
				getenv = func(k string) string { return tt.env[k] }
			}
			var log testkit.SyncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, append([]string{"boomerang", "work"}, tt.args...), getenv, &testkit.SyncBuffer{}, &log)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("work %q: %v, want an error with %q", tt.args, err, tt.wantErr)
			}
			if strings.Contains(log.String()+errString(err), "bmw_wrong") || strings.Contains(log.String(), fakeWorkerKey) {
				t.Errorf("a key was logged:\n%s", log.String())
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestWorkRunsJobsConcurrently(t *testing.T) {
	f := newFakeAPI(t)
	for i := range 3 {
		f.claims <- claimJSON("req_"+strconv.Itoa(i), strconv.Itoa(i), nil)
	}
	// Each job waits until all three have started: with fewer at once, none ends.
	dir := t.TempDir()
	script := `n=$(cat); touch "$0/$n"; while [ ! -e "$0/0" ] || [ ! -e "$0/1" ] || [ ! -e "$0/2" ]; do sleep 0.05; done; echo "$n"`
	stop, _ := startWork(t, f, "--type", "shell", "--concurrency", "3", "--", "/bin/sh", "-c", script, dir)
	waitFor(t, "three completions", 5*time.Second, func() bool { return len(f.calls(&f.completes)) == 3 })
	if err, log := stop(); err != nil {
		t.Fatalf("work: %v\n%s", err, log)
	}
	got := map[string]any{}
	for _, c := range f.calls(&f.completes) {
		got[c.id] = c.body["result"]
	}
	want := map[string]any{"req_0": 0.0, "req_1": 1.0, "req_2": 2.0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results %v, want %v", got, want)
	}
}

func TestWorkFailsAJobWhoseResultTheServerRefuses(t *testing.T) {
	tests := []struct {
		status   int
		slug     string
		wantCode string
	}{
		{422, "validation-error", "invalid_result"},
		{413, "body-too-large", "result_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.slug, func(t *testing.T) {
			f := newFakeAPI(t)
			f.complete = func(string) (int, string) { return tt.status, tt.slug }
			f.claims <- claimJSON("req_1", `{}`, nil)
			stop, _ := startWork(t, f, "--type", "shell", "--", "/bin/sh", "-c", `echo '{"big":true}'`)
			waitFor(t, "a fail after the refused completion", 5*time.Second, func() bool { return len(f.calls(&f.fails)) > 0 })
			if err, log := stop(); err != nil {
				t.Fatalf("work: %v\n%s", err, log)
			}
			body := f.calls(&f.fails)[0].body
			jobErr, _ := body["error"].(map[string]any)
			msg, _ := jobErr["message"].(string)
			if jobErr["code"] != tt.wantCode || body["retryable"] != false || !strings.Contains(msg, strconv.Itoa(tt.status)+" "+tt.slug) {
				t.Errorf("fail %v after a %d %s on complete; want code %s, not retryable, the problem in the message", body, tt.status, tt.slug, tt.wantCode)
			}
		})
	}
}

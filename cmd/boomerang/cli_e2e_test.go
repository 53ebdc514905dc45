package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
)

// TestCLIEndToEnd runs the real service, `boomerang work` with a shell
// script as its COMMAND, and `boomerang submit --watch`, all through run():
// the job goes from the CLI to the service, to the worker and its script,
// and back, with its progress on the way and its signed webhook at the end.
func TestCLIEndToEnd(t *testing.T) {
	svc := startService(t, map[string]string{
		"BOOMERANG_REDIS_URL":        redistest.URL(t),
		"BOOMERANG_JOB_EXTERNAL":     "shell",
		"BOOMERANG_WORKER_LEASE_MIN": "1s", // a heartbeat every 333 ms with --lease 1s
	})
	svc.createClient("cli-e2e")
	var worker struct{ WorkerKey string }
	if code, _ := svc.call("POST", "/admin/v1/workers", svc.admin, map[string]any{"name": "cli-e2e", "types": []string{"shell"}}, &worker); code != http.StatusCreated {
		t.Fatalf("create worker: status %d", code)
	}
	rcv := newReceiver(t)
	env := map[string]string{"BOOMERANG_URL": svc.base, "BOOMERANG_API_KEY": svc.apiKey, "BOOMERANG_WORKER_KEY": worker.WorkerKey}
	getenv := func(k string) string { return env[k] }

	script := filepath.Join(t.TempDir(), "double.sh")
	if err := os.WriteFile(script, []byte(`payload=$(cat)
echo "progress 50 half" >&2
sleep 1.2
printf '{"job":"%s","payload":%s}\n' "$BOOMERANG_JOB_ID" "$payload"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	var workLog testkit.SyncBuffer
	workDone := make(chan error, 1)
	go func() {
		workDone <- run(workCtx, []string{"boomerang", "work", "--type", "shell", "--lease", "1s", "--", "/bin/sh", script}, getenv, &testkit.SyncBuffer{}, &workLog)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out, errOut testkit.SyncBuffer
	err := run(ctx, []string{"boomerang", "submit", "--type", "shell", "--payload", `{"n":7}`, "--callback", rcv.srv.URL + "/cli", "--watch"}, getenv, &out, &errOut)
	if err != nil {
		t.Fatalf("submit --watch: %v\nstdout:\n%s\nstderr:\n%s\nworker:\n%s", err, &out, &errOut, &workLog)
	}
	stdout := out.String()
	id := strings.TrimSpace(strings.TrimPrefix(errOut.String(), "boomerang: submitted "))
	var result map[string]any
	if i := strings.Index(stdout, "{"); i < 0 || json.Unmarshal([]byte(stdout[i:]), &result) != nil {
		t.Fatalf("submit --watch printed no result JSON:\n%s", stdout)
	}
	if result["job"] != id || !contains(stdout, " PROCESSING 50% half\n", " COMPLETED 100% half\n") {
		t.Errorf("submit --watch printed\n%s\nwant the progress, the end and the result of job %s", stdout, id)
	}
	if p, _ := result["payload"].(map[string]any); p["n"] != 7.0 {
		t.Errorf("result %v: want the payload read from stdin", result)
	}

	waitFor(t, "the webhook", 10*time.Second, func() bool { return len(rcv.all()) > 0 })
	for _, g := range rcv.all() {
		verify(t, svc.secret, g)
		if !strings.Contains(string(g.body), `"type":"job.completed"`) || !strings.Contains(string(g.body), `"payload":{"n":7}`) {
			t.Errorf("webhook %s: %s; want job.completed with the result", g.id, g.body)
		}
	}

	out = testkit.SyncBuffer{}
	if err := run(ctx, []string{"boomerang", "status", id}, getenv, &out, &errOut); err != nil || !contains(out.String(), `"status": "COMPLETED"`, `"n": 7`) {
		t.Errorf("status %s: %v\n%s", id, err, &out)
	}

	stopWork()
	select {
	case err := <-workDone:
		if err != nil {
			t.Errorf("work: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("work did not stop within 5s")
	}
	if log := workLog.String(); !contains(log, "job completed", "job="+id) || strings.Contains(log, worker.WorkerKey) {
		t.Errorf("worker log: want the job's line and never the key:\n%s", log)
	}
	t.Logf("submit --watch printed:\n%s", stdout)
}

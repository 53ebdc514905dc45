package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestExternalWorkerKilled SIGKILLs a `boomerang work` process while it
// holds 20 leased jobs (its command sleeps), then starts another worker.
// Every job must complete exactly once, through the second worker, once
// its lease lapses: lost 0, one outcome per job, and no job whose webhooks
// carry two different outcomes. The first worker's orphaned commands are
// still running when the jobs are handed over; they may never report.
func TestExternalWorkerKilled(t *testing.T) {
	t.Parallel()
	const jobs = 20
	const lease = 5 * time.Second // BOOMERANG_WORKER_LEASE_MIN's default
	rds := startRedis(t)
	rcv := newReceiver(t, nil, nil)
	svc := startService(t, map[string]string{"BOOMERANG_REDIS_URL": rds.url(), "BOOMERANG_JOB_EXTERNAL": "shell"})
	cl := svc.newClient("external-worker-killed")
	rcv.setSecret(cl.SigningSecret)
	var wk struct{ WorkerKey string }
	if code, _, err := svc.call("POST", "/admin/v1/workers", adminToken, map[string]any{"name": "killed", "types": []string{"shell"}}, &wk); err != nil || code != http.StatusCreated {
		t.Fatalf("create worker: %d %v", code, err)
	}

	var ids []string
	for i := range jobs {
		var r struct{ RequestID string }
		code, _, err := svc.call("POST", "/v1/jobs", cl.APIKey, map[string]any{"type": "shell", "payload": map[string]int{"n": i},
			"callbackUrl": rcv.url("/external")}, &r)
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("submit %d: %d %v", i, code, err)
		}
		ids = append(ids, r.RequestID)
	}

	// The first worker takes all 20 and sits on them: its command answers
	// "first" only after 30 s, long after the kill.
	first := startWork(t, svc, wk.WorkerKey, "first", jobs, lease, `sleep 30; printf '{"by":"first"}'`)
	waitFor(t, "20 jobs leased by the first worker", 20*time.Second, func() bool {
		n := 0
		for _, id := range ids {
			if v, err := svc.job(cl.APIKey, id); err == nil && v.Status == "PROCESSING" {
				n++
			}
		}
		return n == jobs
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	killed := time.Now()
	t.Logf("SIGKILL to the first worker holding %d leases", jobs)

	startWork(t, svc, wk.WorkerKey, "second", 4, lease, `cat >/dev/null; printf '{"by":"second"}'`)
	views := svc.waitJobsDone(cl.APIKey, ids, 60*time.Second)
	took := time.Since(killed)
	lost, duplicates := dedupReport(t, rcv, ids, views)

	// One outcome per job: every webhook of a job carries the same body,
	// and that body is the second worker's result at attempt 2.
	bodies := map[string]map[string]bool{}
	for _, h := range rcv.all() {
		if bodies[h.requestID] == nil {
			bodies[h.requestID] = map[string]bool{}
		}
		bodies[h.requestID][string(h.body)] = true
	}
	twoOutcomes := 0
	for _, id := range ids {
		if len(bodies[id]) > 1 {
			twoOutcomes++
			t.Errorf("job %s has webhooks with %d different bodies", id, len(bodies[id]))
		}
		for b := range bodies[id] {
			var msg struct {
				Data struct{ Result struct{ By string } }
			}
			_ = json.Unmarshal([]byte(b), &msg)
			if msg.Data.Result.By != "second" {
				t.Errorf("job %s completed by %q, want the second worker", id, msg.Data.Result.By)
			}
		}
		var j struct{ Attempt int }
		if _, _, err := svc.call("GET", "/v1/jobs/"+id, cl.APIKey, nil, &j); err == nil && j.Attempt != 2 {
			t.Errorf("job %s ended at attempt %d, want 2 (the lapsed lease counts)", id, j.Attempt)
		}
	}
	t.Logf("%d jobs: lost %d, duplicate webhooks %d, jobs with two outcomes %d; all delivered %v after the kill (lease %v)",
		jobs, lost, duplicates, twoOutcomes, took.Round(time.Millisecond), lease)
	if took > lease+10*time.Second {
		t.Errorf("the jobs took %v after the kill, want about the lease (%v) and a few seconds", took, lease)
	}
}

// startWork runs `boomerang work` for type shell with a shell command; the
// process is killed when the test ends.
func startWork(t *testing.T, svc *service, key, name string, concurrency int, lease time.Duration, script string) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(testDir(t, "work-"+name), "work.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(context.Background(), binPath, "work", "--type", "shell",
		"--concurrency", fmt.Sprint(concurrency), "--lease", lease.String(), "--claim-wait", "5s", "--", "/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "BOOMERANG_URL=" + svc.base, "BOOMERANG_WORKER_KEY=" + key}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		f.Close()
		if t.Failed() {
			t.Logf("%s worker log:\n%s", name, tail(logPath, 20))
		}
		if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte(key)) {
			t.Errorf("the %s worker logged its key", name)
		}
	})
	return cmd
}

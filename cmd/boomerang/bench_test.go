package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/testkit"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/redis/go-redis/v9"
)

// TestBench runs the whole benchmark with tiny numbers against a built
// service binary. It checks the results file and the correctness counts,
// never a time.
func TestBench(t *testing.T) {
	testkit.Long(t)
	bin := filepath.Join(t.TempDir(), "boomerang")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// Two databases of the test server: the ceiling's and the service's.
	ceilingURL := redistest.URL(t)
	serviceOpt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "results", "bench.json")
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err = run(ctx, []string{"boomerang", "bench", "--redis-url", ceilingURL, "--service-db", strconv.Itoa(serviceOpt.DB),
		"--serve-binary", bin, "--jobs", "200", "--submitters", "8", "--rate", "50", "--duration", "1s", "--runs", "1",
		"--wait", "20s", "--out", out, "--cpuprofile", filepath.Join(t.TempDir(), "cpu.pprof"), "--profile-seconds", "1"},
		os.Getenv, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Logf("stdout:\n%s", stdout.String())
	for _, want := range []string{"THROUGHPUT / ASYNQ CEILING", "asynq ceiling", "submit→webhook p99", "service RSS peak", "redis per retained job"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}

	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"machine.numCpu", "machine.goos", "machine.goarch", "machine.goVersion", "machine.redisVersion",
		"flags.jobs", "flags.submitters", "flags.rate", "flags.duration", "flags.runs",
		"service.concurrency", "service.taskCheckIntervalMs",
		"runs.0.ceiling.tasksPerSec", "runs.0.ceiling.enqueuePerSec", "runs.0.ceiling.concurrency",
		"runs.0.throughput.submitPerSec", "runs.0.throughput.deliveredPerSec", "runs.0.throughput.accepted",
		"runs.0.throughput.non202", "runs.0.throughput.missing", "runs.0.ratio",
		"runs.0.latency.submitToWebhookMs.p50", "runs.0.latency.submitToWebhookMs.p90",
		"runs.0.latency.submitToWebhookMs.p99", "runs.0.latency.submitToWebhookMs.max",
		"runs.0.latency.completionToWebhookMs.p50", "runs.0.latency.completionToWebhookMs.p99",
		"runs.0.serviceRss.peakMiB", "runs.0.redis.usedMemoryBefore", "runs.0.redis.usedMemoryAfter",
		"runs.0.redis.bytesPerJob", "runs.0.redis.jobsRetained",
		"runs.0.signatureFailures", "runs.0.lostWebhooks", "runs.0.notAccepted",
		"median.ratio", "median.deliveredPerSec", "median.ceilingTasksPerSec", "median.latencySubmitToWebhookP99Ms",
		"median.serviceRssPeakMiB", "median.redisBytesPerJob", "checks",
	} {
		if lookupJSON(res, path) == nil {
			t.Errorf("results lack %s", path)
		}
	}
	num := func(path string) float64 {
		v, _ := lookupJSON(res, path).(float64)
		return v
	}
	if n := num("runs.0.signatureFailures"); n != 0 {
		t.Errorf("%v webhooks failed signature verification", n)
	}
	if n := num("runs.0.lostWebhooks"); n != 0 {
		t.Errorf("%v webhooks lost", n)
	}
	if n := num("runs.0.notAccepted"); n != 0 {
		t.Errorf("%v submissions not accepted", n)
	}
	if n := num("runs.0.throughput.accepted"); n != 200 {
		t.Errorf("throughput phase accepted %v jobs, want 200", n)
	}
	if n := num("runs.0.latency.accepted"); n != 50 {
		t.Errorf("latency phase accepted %v jobs, want 50", n)
	}
	if n := num("runs.0.redis.jobsRetained"); n != 250 {
		t.Errorf("jobs retained = %v, want 250", n)
	}
	if num("runs.0.ceiling.tasksPerSec") <= 0 || num("runs.0.throughput.deliveredPerSec") <= 0 || num("runs.0.ratio") <= 0 {
		t.Errorf("rates not measured: %s", raw)
	}
}

// lookupJSON follows a dotted path ("runs.0.ratio") through decoded JSON.
func lookupJSON(v any, path string) any {
	for part := range strings.SplitSeq(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[part]
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

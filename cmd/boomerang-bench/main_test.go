package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/redis/go-redis/v9"
)

// TestHelp checks that --help succeeds and lists every flag.
func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"boomerang-bench", "--help"}, os.Getenv, &stdout, &stderr); err != nil {
		t.Fatalf("--help: %v, want no error (exit 0)\nstderr:\n%s", err, stderr.String())
	}
	var f benchFlags
	newFlagSet(&f).VisitAll(func(fl *flag.Flag) {
		if !strings.Contains(stdout.String(), "  -"+fl.Name+" ") && !strings.Contains(stdout.String(), "  -"+fl.Name+"\n") {
			t.Errorf("--help does not list -%s:\n%s", fl.Name, stdout.String())
		}
	})
}

func TestParsePhases(t *testing.T) {
	for _, tc := range []struct {
		only    string
		idle    time.Duration
		want    []string
		wantErr bool
	}{
		{"", time.Minute, []string{"ceiling", "external", "throughput", "latency", "idle"}, false},
		{"", 0, []string{"ceiling", "external", "throughput", "latency"}, false},
		{"idle", time.Second, []string{"idle"}, false},
		{"latency, ceiling", time.Second, []string{"ceiling", "latency"}, false},
		{"throughput,external", 0, []string{"external", "throughput"}, false},
		{"idle", 0, nil, true},
		{"warmup", time.Second, nil, true},
	} {
		p, err := parsePhases(tc.only, tc.idle)
		if (err != nil) != tc.wantErr || (err == nil && strings.Join(p.names(), ",") != strings.Join(tc.want, ",")) {
			t.Errorf("parsePhases(%q, %s) = %v, %v; want %v, error %v", tc.only, tc.idle, p.names(), err, tc.want, tc.wantErr)
		}
	}
}

// TestBench runs the whole benchmark with tiny numbers, building the
// service itself, on two databases of the test server. It checks the
// results file and the correctness counts, never a time.
func TestBench(t *testing.T) {
	testkit.Long(t)
	ceilingURL := redistest.URL(t)
	serviceOpt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "results", "bench.json")
	stdout := runBench(t, out, "--redis-url", ceilingURL, "--service-db", strconv.Itoa(serviceOpt.DB),
		"--cpuprofile", filepath.Join(t.TempDir(), "cpu.pprof"), "--profile-seconds", "1")
	for _, want := range []string{"THROUGHPUT / ASYNQ CEILING", "asynq ceiling", "submit→webhook p99", "service RSS peak",
		"redis per retained job", "redis calls per job / per task", "idle service CPU", "idle redis-server CPU",
		"idle redis commands/s", "idle embedded service CPU", "redis calls by command", "evalsha"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	res := readResults(t, out)
	wantKeys(t, res, []string{
		"machine.numCpu", "machine.goos", "machine.goarch", "machine.goVersion", "machine.redisVersion", "machine.redisMasters.0",
		"flags.jobs", "flags.submitters", "flags.rate", "flags.duration", "flags.runs", "flags.idle", "flags.cluster",
		"service.concurrency", "service.taskCheckIntervalMs", "phases.3",
		"runs.0.ceiling.tasksPerSec", "runs.0.ceiling.enqueuePerSec", "runs.0.ceiling.concurrency",
		"runs.0.ceiling.redisCallsPerTask.total", "runs.0.ceiling.redisCallsPerTask.evalsha",
		"runs.0.throughput.submitPerSec", "runs.0.throughput.deliveredPerSec", "runs.0.throughput.accepted",
		"runs.0.throughput.non202", "runs.0.throughput.missing", "runs.0.ratio", "runs.0.redisCallsRatio",
		"runs.0.throughput.redisCallsPerJob.total", "runs.0.throughput.redisCallsPerJob.evalsha",
		"runs.0.latency.submitToWebhookMs.p50", "runs.0.latency.submitToWebhookMs.p90",
		"runs.0.latency.submitToWebhookMs.p99", "runs.0.latency.submitToWebhookMs.max",
		"runs.0.latency.completionToWebhookMs.p50", "runs.0.latency.completionToWebhookMs.p99",
		"runs.0.serviceRss.peakMiB", "runs.0.redis.usedMemoryBefore", "runs.0.redis.usedMemoryAfter",
		"runs.0.redis.bytesPerJob", "runs.0.redis.jobsRetained",
		"runs.0.idle.service.cpuPct", "runs.0.idle.redis.cpuSecPerMin", "runs.0.idle.redisCmdsPerSec",
		"runs.0.idle.embedded.cpuPct", "runs.0.idle.redisCmdsPerSecByCommand",
		"runs.0.signatureFailures", "runs.0.lostWebhooks", "runs.0.notAccepted",
		"runs.0.external.jobsPerSec", "runs.0.externalRatio", "median.externalJobsPerSec",
		"median.ratio", "median.deliveredPerSec", "median.ceilingTasksPerSec", "median.latencySubmitToWebhookP99Ms",
		"median.serviceRssPeakMiB", "median.redisBytesPerJob", "median.redisCallsRatio",
		"median.idleServiceCpuPct", "median.idleRedisCpuPct", "median.idleRedisCmdsPerSec", "median.idleEmbeddedCpuPct",
		"checks",
	})
	checkCorrectness(t, res, 200, 50)
	if num(res, "runs.0.ceiling.tasksPerSec") <= 0 || num(res, "runs.0.throughput.deliveredPerSec") <= 0 || num(res, "runs.0.ratio") <= 0 {
		t.Errorf("rates not measured: %v", res["runs"])
	}
	if num(res, "runs.0.redisCallsRatio") <= 0 || num(res, "runs.0.idle.seconds") <= 0 {
		t.Errorf("redis calls ratio or idle window not measured: %v", res["runs"])
	}
}

// TestBenchExternal runs the external phase beside the throughput phase
// it is compared with: every job accepted, claimed exactly once by one of
// the workers, completed and delivered; every number measured. No times
// are checked, only that they were taken.
func TestBenchExternal(t *testing.T) {
	testkit.Long(t)
	ceilingURL := redistest.URL(t)
	serviceOpt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "external.json")
	stdout := runBench(t, out, "--redis-url", ceilingURL, "--service-db", strconv.Itoa(serviceOpt.DB),
		"--only", "throughput,external", "--workers", "3")
	for _, want := range []string{"3 workers claim+complete", "claim latency p50 / p99", "external / throughput: jobs/s",
		"external / throughput: redis calls per job", "per external job", "external jobs claimed twice or never"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	res := readResults(t, out)
	wantKeys(t, res, []string{"flags.workers", "phases.1", "runs.0.external.claimLatencyMs.p50", "runs.0.external.claimLatencyMs.p99",
		"runs.0.external.redisCallsPerJob.evalsha", "runs.0.external.cpu.serviceSec", "median.externalClaimLatencyP99Ms",
		"median.externalRedisCallsRatio", "median.externalClaimsPerSec"})
	for path, want := range map[string]float64{
		"flags.workers":                    3,
		"runs.0.external.workers":          3,
		"runs.0.external.accepted":         200,
		"runs.0.external.claims":           200,
		"runs.0.external.delivered":        200,
		"runs.0.external.claimLatencyMs.n": 200,
		"runs.0.external.missing":          0,
		"runs.0.external.claimedTwice":     0,
		"runs.0.external.unclaimed":        0,
		"runs.0.external.claimErrors":      0,
		"runs.0.external.completeErrors":   0,
		"runs.0.throughput.accepted":       200,
		"runs.0.lostWebhooks":              0,
		"runs.0.notAccepted":               0,
		"runs.0.signatureFailures":         0,
		"runs.0.malformedWebhooks":         0,
	} {
		if got := num(res, path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	for _, path := range []string{"runs.0.external.jobsPerSec", "runs.0.external.claimsPerSec", "runs.0.external.submitPerSec",
		"runs.0.external.redisCallsPerJob.total", "runs.0.external.claimRequestMs.p50",
		"runs.0.external.completeRequestMs.p50", "runs.0.externalRatio", "runs.0.externalRedisCallsRatio", "median.externalJobsPerSec"} {
		if got := num(res, path); got <= 0 {
			t.Errorf("%s = %v, want > 0", path, got)
		}
	}
}

// TestBenchCluster runs the benchmark on a private 3-master Redis Cluster:
// the ceiling alone must work; the service phases work once the service
// supports BOOMERANG_REDIS_CLUSTER, and until then the bench must fail fast
// with the service's own message.
func TestBenchCluster(t *testing.T) {
	testkit.Long(t)
	for _, tool := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("--cluster needs %s on PATH", tool)
		}
	}
	out := filepath.Join(t.TempDir(), "ceiling.json")
	runBench(t, out, "--cluster", "--only", "ceiling")
	res := readResults(t, out)
	wantKeys(t, res, []string{"machine.redisMasters.2", "runs.0.ceiling.masterOpsPerSec.2", "runs.0.ceiling.redisCallsPerTask.total"})
	if q := num(res, "runs.0.ceiling.queues"); q != clusterCeilingQueues {
		t.Errorf("ceiling queues = %v, want %d", q, clusterCeilingQueues)
	}
	for i := range clusterMasters {
		if ops := num(res, "runs.0.ceiling.masterOpsPerSec."+strconv.Itoa(i)); ops <= 0 {
			t.Errorf("master %d ran no commands in the ceiling phase", i)
		}
	}

	out = filepath.Join(t.TempDir(), "all.json")
	start := time.Now()
	stdout, err := tryBench(t, out, "--cluster")
	if err != nil {
		if !strings.Contains(err.Error(), "service exited") {
			t.Fatalf("bench --cluster: %v, want success or the service's refusal", err)
		}
		t.Skipf("the service refuses cluster mode (after %s); the bench reported:\n%v", time.Since(start).Round(time.Second), err)
	}
	if !strings.Contains(stdout, "per master") {
		t.Errorf("table lacks the per-master section:\n%s", stdout)
	}
	res = readResults(t, out)
	wantKeys(t, res, []string{"runs.0.throughput.masterOpsPerSec.2", "runs.0.masterKeysAfter.2", "runs.0.idle.masterOpsPerSec.2"})
	checkCorrectness(t, res, 200, 50)
}

// runBench runs the bench with tiny numbers plus args and returns its stdout.
func runBench(t *testing.T, out string, args ...string) string {
	t.Helper()
	stdout, err := tryBench(t, out, args...)
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	return stdout
}

func tryBench(t *testing.T, out string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	tiny := []string{"boomerang-bench", "--jobs", "200", "--submitters", "8", "--rate", "50", "--duration", "1s",
		"--idle", "2s", "--runs", "1", "--wait", "20s", "--out", out}
	var stdout, stderr bytes.Buffer
	err := run(ctx, append(tiny, args...), os.Getenv, &stdout, &stderr)
	t.Logf("bench %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stdout.String(), stderr.String())
	return stdout.String(), err
}

func readResults(t *testing.T, file string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func wantKeys(t *testing.T, res map[string]any, paths []string) {
	t.Helper()
	for _, path := range paths {
		if lookupJSON(res, path) == nil {
			t.Errorf("results lack %s", path)
		}
	}
}

// checkCorrectness checks every job was accepted and delivered, once, signed.
func checkCorrectness(t *testing.T, res map[string]any, throughputJobs, latencyJobs float64) {
	t.Helper()
	for path, want := range map[string]float64{
		"runs.0.signatureFailures":   0,
		"runs.0.lostWebhooks":        0,
		"runs.0.notAccepted":         0,
		"runs.0.malformedWebhooks":   0,
		"runs.0.throughput.accepted": throughputJobs,
		"runs.0.latency.accepted":    latencyJobs,
		"runs.0.redis.jobsRetained":  throughputJobs + latencyJobs,
	} {
		if got := num(res, path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
}

func num(res map[string]any, path string) float64 {
	v, _ := lookupJSON(res, path).(float64)
	return v
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

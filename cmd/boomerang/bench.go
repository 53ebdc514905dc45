package main

// boomerang bench: a reproducible load benchmark of the whole service.
//
// One run has three phases on one Redis:
//
//  1. ceiling: raw asynq (no Boomerang) with the service's concurrency and
//     task check interval, N no-op tasks enqueued by as many goroutines as
//     the load phase has submitters; tasks per second from the first
//     enqueue to the last task processed;
//  2. throughput: the service runs as a subprocess ("serve"); N echo jobs
//     are submitted as fast as possible; 202s per second, and jobs
//     completed and delivered per second (first submit to last webhook);
//  3. latency: an open-loop ticker submits at a fixed rate; percentiles of
//     submit→webhook and completion→webhook.
//
// A receiver in this process verifies every webhook's signature. The
// service's RSS is sampled from /proc, Redis memory from INFO memory. See
// docs/benchmarks.md for the results and how to read them.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/boomerang-dev/boomerang/signing"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Targets from the issue "Fast: throughput and latency near the asynq ceiling".
const (
	targetRatio        = 0.50 // throughput / asynq ceiling
	targetP50Ms        = 10.0 // submit→webhook at the latency rate
	targetP99Ms        = 50.0
	targetRSSMiB       = 150.0
	targetBytesPerJob  = 2048.0
	benchClockTicksSec = 100 // USER_HZ of /proc/<pid>/stat on Linux
)

type benchFlags struct {
	RedisURL       string        `json:"redisUrl"`
	ServiceDB      int           `json:"serviceDb"`
	Jobs           int           `json:"jobs"`
	Submitters     int           `json:"submitters"`
	Rate           float64       `json:"rate"`
	Duration       time.Duration `json:"-"`
	DurationStr    string        `json:"duration"`
	Runs           int           `json:"runs"`
	Out            string        `json:"out"`
	CPUProfile     string        `json:"cpuprofile,omitempty"`
	ProfileSeconds int           `json:"profileSeconds,omitempty"`
	ServeBinary    string        `json:"serveBinary"`
	Wait           time.Duration `json:"-"`
	WaitStr        string        `json:"wait"`
}

// bench runs the benchmark; see the comment at the top of this file.
func bench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("boomerang bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f benchFlags
	fs.StringVar(&f.RedisURL, "redis-url", "", "Redis to run on (default $BOOMERANG_REDIS_URL, else a private redis-server). "+
		"The ceiling uses the URL's database and the service the next one (see --service-db); BOTH ARE FLUSHED")
	fs.IntVar(&f.ServiceDB, "service-db", -1, "database number of the service phases (-1: the ceiling's database + 1)")
	fs.IntVar(&f.Jobs, "jobs", 20000, "jobs of the throughput phase (and no-op tasks of the ceiling phase)")
	fs.IntVar(&f.Submitters, "submitters", 32, "submitting goroutines of the throughput phase (and enqueuers of the ceiling phase)")
	fs.Float64Var(&f.Rate, "rate", 200, "jobs per second of the latency phase (open loop)")
	fs.DurationVar(&f.Duration, "duration", 10*time.Second, "length of the latency phase")
	fs.IntVar(&f.Runs, "runs", 1, "repeat everything this many times and report medians")
	fs.StringVar(&f.Out, "out", "", "JSON results file (default bench-results/bench-<timestamp>.json)")
	fs.StringVar(&f.CPUProfile, "cpuprofile", "", "write the service's CPU profile, taken during the first throughput phase, to this file")
	fs.IntVar(&f.ProfileSeconds, "profile-seconds", 8, "length of the CPU profile, from the start of the throughput phase")
	fs.StringVar(&f.ServeBinary, "serve-binary", "", "boomerang binary to run as the service (default: this executable)")
	fs.DurationVar(&f.Wait, "wait", 30*time.Second, "give up waiting for webhooks after this long without a new one")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if f.Jobs < 1 || f.Submitters < 1 || f.Rate <= 0 || f.Duration <= 0 || f.Runs < 1 || f.Wait <= 0 {
		return errors.New("bench: --jobs, --submitters, --rate, --duration, --runs and --wait must be positive")
	}
	f.DurationStr, f.WaitStr = f.Duration.String(), f.Wait.String()
	if f.RedisURL == "" {
		f.RedisURL = getenv("BOOMERANG_REDIS_URL")
	}
	if f.ServeBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: find this executable: %w", err)
		}
		f.ServeBinary = exe
	}
	started := time.Now()
	if f.Out == "" {
		f.Out = filepath.Join("bench-results", "bench-"+started.Format("20060102-150405")+".json")
	}
	concurrency, checkInterval, err := serviceWorkerSettings(getenv)
	if err != nil {
		return err
	}
	progress := func(format string, a ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", a...) }

	rs, err := openBenchRedis(ctx, f.RedisURL, f.ServiceDB)
	if err != nil {
		return err
	}
	defer rs.close()
	progress("redis %s (%s); ceiling on db %d, service on db %d (both flushed)", rs.version, rs.mode, rs.ceilingDB, rs.serviceDB)

	res := benchResults{
		StartedAt: started.UTC(),
		Command:   "boomerang bench " + strings.Join(args, " "),
		Flags:     f,
		Machine:   machineInfo(rs),
		Service:   serviceSettings{Concurrency: concurrency, TaskCheckIntervalMs: ms(checkInterval), Env: passThroughEnv(true), Defaults: benchDefaultEnv},
	}
	res.Flags.RedisURL = redactURL(f.RedisURL)
	for i := 1; i <= f.Runs; i++ {
		progress("run %d of %d", i, f.Runs)
		if la := loadAvg1(); la > float64(runtime.NumCPU())/2 {
			progress("WARNING: load average %.1f on %d CPUs: other processes will distort the numbers (see cpu.otherSec in the JSON)", la, runtime.NumCPU())
		}
		r, err := benchRun(ctx, i, f, rs, concurrency, checkInterval, i == 1 && f.CPUProfile != "", progress)
		if err != nil {
			return fmt.Errorf("bench run %d: %w", i, err)
		}
		res.Runs = append(res.Runs, r)
	}
	res.Median = medians(res.Runs)
	res.Checks = checks(res.Median, res.Runs)
	res.FinishedAt = time.Now().UTC()

	if err := os.MkdirAll(filepath.Dir(f.Out), 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	raw, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(f.Out, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	printTable(stdout, res)
	fmt.Fprintf(stdout, "\nresults: %s\n", f.Out)
	if f.CPUProfile != "" {
		fmt.Fprintf(stdout, "cpu profile (service, run 1 throughput phase): %s   (go tool pprof -top %s)\n", f.CPUProfile, f.CPUProfile)
	}
	return nil
}

// serviceWorkerSettings reads the two settings the ceiling must share with
// the service, with the service's defaults.
func serviceWorkerSettings(getenv func(string) string) (int, time.Duration, error) {
	concurrency, interval := 50, 10*time.Millisecond
	if v := getenv("BOOMERANG_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, fmt.Errorf("BOOMERANG_CONCURRENCY: %q is not a positive integer", v)
		}
		concurrency = n
	}
	if v := getenv("BOOMERANG_TASK_CHECK_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, 0, fmt.Errorf("BOOMERANG_TASK_CHECK_INTERVAL: %q is not a positive duration", v)
		}
		interval = d
	}
	return concurrency, interval, nil
}

// ---------------------------------------------------------------- results

type benchResults struct {
	StartedAt  time.Time          `json:"startedAt"`
	FinishedAt time.Time          `json:"finishedAt"`
	Command    string             `json:"command"`
	Flags      benchFlags         `json:"flags"`
	Machine    machine            `json:"machine"`
	Service    serviceSettings    `json:"service"`
	Runs       []runResult        `json:"runs"`
	Median     map[string]float64 `json:"median"`
	Checks     []check            `json:"checks"`
}

type machine struct {
	NumCPU       int    `json:"numCpu"`
	CPUModel     string `json:"cpuModel,omitempty"`
	GOOS         string `json:"goos"`
	GOARCH       string `json:"goarch"`
	GoVersion    string `json:"goVersion"`
	RedisVersion string `json:"redisVersion"`
	RedisMode    string `json:"redisMode"` // "private redis-server" or "external"
}

type serviceSettings struct {
	Concurrency         int               `json:"concurrency"`
	TaskCheckIntervalMs float64           `json:"taskCheckIntervalMs"`
	Env                 map[string]string `json:"passThroughEnv"`
	Defaults            map[string]string `json:"benchDefaultEnv"` // applied where Env has no value
}

type runResult struct {
	Run        int              `json:"run"`
	Ceiling    ceilingResult    `json:"ceiling"`
	Throughput throughputResult `json:"throughput"`
	// Ratio is throughput.deliveredPerSec / ceiling.tasksPerSec.
	Ratio             float64       `json:"ratio"`
	Latency           latencyResult `json:"latency"`
	RSS               rssResult     `json:"serviceRss"`
	Redis             redisResult   `json:"redis"`
	SignatureFailures int64         `json:"signatureFailures"`
	DuplicateWebhooks int64         `json:"duplicateWebhooks"`
	MalformedWebhooks int64         `json:"malformedWebhooks"`
	LostWebhooks      int           `json:"lostWebhooks"`
	NotAccepted       int           `json:"notAccepted"`
	ServiceLog        serviceLog    `json:"serviceLog"`
	CPUProfile        string        `json:"cpuProfile,omitempty"`
}

type ceilingResult struct {
	Tasks               int      `json:"tasks"`
	Enqueuers           int      `json:"enqueuers"`
	Concurrency         int      `json:"concurrency"`
	TaskCheckIntervalMs float64  `json:"taskCheckIntervalMs"`
	Seconds             float64  `json:"seconds"`
	EnqueueSeconds      float64  `json:"enqueueSeconds"`
	EnqueuePerSec       float64  `json:"enqueuePerSec"`
	TasksPerSec         float64  `json:"tasksPerSec"`
	EnqueueErrors       int64    `json:"enqueueErrors"`
	CPU                 cpuUsage `json:"cpu"`
	// RedisCallsPerTask is INFO commandstats' calls per task, commands run
	// inside asynq's Lua scripts included.
	RedisCallsPerTask map[string]float64 `json:"redisCallsPerTask"`
}

type throughputResult struct {
	Jobs            int     `json:"jobs"`
	Submitters      int     `json:"submitters"`
	Accepted        int     `json:"accepted"`
	Non202          int     `json:"non202"`
	SubmitErrors    int     `json:"submitErrors"`
	SubmitSeconds   float64 `json:"submitSeconds"`
	SubmitPerSec    float64 `json:"submitPerSec"`
	Delivered       int     `json:"delivered"`
	Missing         int     `json:"missing"`
	Seconds         float64 `json:"seconds"` // first submit to last webhook
	DeliveredPerSec float64 `json:"deliveredPerSec"`
	SubmitMs        pcts    `json:"submitRequestMs"` // one POST /v1/jobs round trip
	// DrainPerSec is the delivery rate once all submissions are answered:
	// jobs delivered after the last 202 / (last webhook - last 202).
	DrainPerSec float64  `json:"drainPerSec"`
	CPU         cpuUsage `json:"cpu"`
	// RedisCallsPerJob is INFO commandstats' calls per accepted job during
	// the phase, commands run inside Lua scripts included.
	RedisCallsPerJob map[string]float64 `json:"redisCallsPerJob"`
}

type latencyResult struct {
	Rate                float64 `json:"rate"`
	DurationSec         float64 `json:"durationSec"`
	Jobs                int     `json:"jobs"`
	Accepted            int     `json:"accepted"`
	Non202              int     `json:"non202"`
	SubmitErrors        int     `json:"submitErrors"`
	Delivered           int     `json:"delivered"`
	Missing             int     `json:"missing"`
	SendLagMaxMs        float64 `json:"sendLagMaxMs"` // how late the open-loop sender was at worst
	SubmitToWebhookMs   pcts    `json:"submitToWebhookMs"`
	CompletionToWebhook pcts    `json:"completionToWebhookMs"`
	SubmitMs            pcts    `json:"submitRequestMs"`
}

type pcts struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

type rssResult struct {
	IdleMiB float64 `json:"idleMiB"`
	PeakMiB float64 `json:"peakMiB"` // sampled every 100 ms during the load phases
	HWMMiB  float64 `json:"hwmMiB"`  // VmHWM at the end: the kernel's own peak
	Samples int     `json:"samples"`
}

type redisResult struct {
	UsedMemoryBefore int64   `json:"usedMemoryBefore"`
	UsedMemoryAfter  int64   `json:"usedMemoryAfter"`
	JobsRetained     int     `json:"jobsRetained"`
	BytesPerJob      float64 `json:"bytesPerJob"`
	KeysBefore       int64   `json:"keysBefore"`
	KeysAfter        int64   `json:"keysAfter"`
	KeysPerJob       float64 `json:"keysPerJob"`
}

// cpuUsage is CPU seconds spent during a phase, by process.
type cpuUsage struct {
	WallSec    float64 `json:"wallSec"`
	ServiceSec float64 `json:"serviceSec,omitempty"`
	RedisSec   float64 `json:"redisSec"`
	BenchSec   float64 `json:"benchSec"` // load generator + receiver (+ asynq in the ceiling phase)
	// From /proc/stat, all CPUs: UserSysSec is user+nice+system time,
	// IrqSec interrupt and softirq time (loopback networking is mostly
	// here), StealSec time the hypervisor gave to someone else. OtherSec is
	// UserSysSec+IrqSec minus the three processes above (whose system time
	// includes the softirq work done for them): CPU used by other processes
	// on the machine. Much of it means a disturbed run.
	UserSysSec float64 `json:"userSysSec"`
	OtherSec   float64 `json:"otherSec"`
	IrqSec     float64 `json:"irqSec"`
	StealSec   float64 `json:"stealSec"`
	LoadAvg1   float64 `json:"loadAvg1AtEnd"`
}

type serviceLog struct {
	Lines int      `json:"stderrLines"`
	Tail  []string `json:"stderrTail,omitempty"`
}

type check struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	OK     bool    `json:"ok"`
}

// metrics flattens a run into named numbers; medians and checks use them.
func (r runResult) metrics() map[string]float64 {
	return map[string]float64{
		"ceilingTasksPerSec":              r.Ceiling.TasksPerSec,
		"ceilingEnqueuePerSec":            r.Ceiling.EnqueuePerSec,
		"ceilingRedisCallsPerTask":        r.Ceiling.RedisCallsPerTask["total"],
		"ceilingRedisEvalshaPerTask":      r.Ceiling.RedisCallsPerTask["evalsha"],
		"submitPerSec":                    r.Throughput.SubmitPerSec,
		"deliveredPerSec":                 r.Throughput.DeliveredPerSec,
		"ratio":                           r.Ratio,
		"drainPerSec":                     r.Throughput.DrainPerSec,
		"redisCallsPerJob":                r.Throughput.RedisCallsPerJob["total"],
		"redisEvalshaPerJob":              r.Throughput.RedisCallsPerJob["evalsha"],
		"throughputSubmitP50Ms":           r.Throughput.SubmitMs.P50,
		"throughputSubmitP99Ms":           r.Throughput.SubmitMs.P99,
		"latencySubmitToWebhookP50Ms":     r.Latency.SubmitToWebhookMs.P50,
		"latencySubmitToWebhookP90Ms":     r.Latency.SubmitToWebhookMs.P90,
		"latencySubmitToWebhookP99Ms":     r.Latency.SubmitToWebhookMs.P99,
		"latencySubmitToWebhookMaxMs":     r.Latency.SubmitToWebhookMs.Max,
		"latencyCompletionToWebhookP50Ms": r.Latency.CompletionToWebhook.P50,
		"latencyCompletionToWebhookP90Ms": r.Latency.CompletionToWebhook.P90,
		"latencyCompletionToWebhookP99Ms": r.Latency.CompletionToWebhook.P99,
		"latencyCompletionToWebhookMaxMs": r.Latency.CompletionToWebhook.Max,
		"latencySubmitRequestP50Ms":       r.Latency.SubmitMs.P50,
		"latencySubmitRequestP99Ms":       r.Latency.SubmitMs.P99,
		"serviceRssPeakMiB":               r.RSS.PeakMiB,
		"serviceRssHwmMiB":                r.RSS.HWMMiB,
		"redisBytesPerJob":                r.Redis.BytesPerJob,
		"redisKeysPerJob":                 r.Redis.KeysPerJob,
		"throughputCpuServiceSec":         r.Throughput.CPU.ServiceSec,
		"throughputCpuRedisSec":           r.Throughput.CPU.RedisSec,
		"throughputCpuBenchSec":           r.Throughput.CPU.BenchSec,
		"throughputWallSec":               r.Throughput.CPU.WallSec,
		"throughputCpuOtherSec":           r.Throughput.CPU.OtherSec,
		"ceilingCpuOtherSec":              r.Ceiling.CPU.OtherSec,
		"signatureFailures":               float64(r.SignatureFailures),
		"lostWebhooks":                    float64(r.LostWebhooks),
		"notAccepted":                     float64(r.NotAccepted),
	}
}

func medians(runs []runResult) map[string]float64 {
	all := map[string][]float64{}
	for _, r := range runs {
		for k, v := range r.metrics() {
			all[k] = append(all[k], v)
		}
	}
	out := map[string]float64{}
	for k, vs := range all {
		slices.Sort(vs)
		n := len(vs)
		if n%2 == 1 {
			out[k] = vs[n/2]
		} else {
			out[k] = (vs[n/2-1] + vs[n/2]) / 2
		}
	}
	return out
}

// checks compares the medians with the targets; correctness counts (lost
// webhooks, bad signatures, refused submissions) are summed over all runs.
func checks(m map[string]float64, runs []runResult) []check {
	var sig, lost, refused float64
	for _, r := range runs {
		sig += float64(r.SignatureFailures)
		lost += float64(r.LostWebhooks)
		refused += float64(r.NotAccepted)
	}
	return []check{
		{"throughput / ceiling", m["ratio"], fmt.Sprintf("≥ %.2f", targetRatio), m["ratio"] >= targetRatio},
		{"submit→webhook p50 ms", m["latencySubmitToWebhookP50Ms"], fmt.Sprintf("≤ %.0f", targetP50Ms), m["latencySubmitToWebhookP50Ms"] <= targetP50Ms},
		{"submit→webhook p99 ms", m["latencySubmitToWebhookP99Ms"], fmt.Sprintf("≤ %.0f", targetP99Ms), m["latencySubmitToWebhookP99Ms"] <= targetP99Ms},
		{"service RSS peak MiB", m["serviceRssPeakMiB"], fmt.Sprintf("≤ %.0f", targetRSSMiB), m["serviceRssPeakMiB"] > 0 && m["serviceRssPeakMiB"] <= targetRSSMiB},
		{"redis bytes per retained job", m["redisBytesPerJob"], fmt.Sprintf("≤ %.0f", targetBytesPerJob), m["redisBytesPerJob"] > 0 && m["redisBytesPerJob"] <= targetBytesPerJob},
		{"signature failures (all runs)", sig, "= 0", sig == 0},
		{"lost webhooks (all runs)", lost, "= 0", lost == 0},
		{"submissions not accepted (all runs)", refused, "= 0", refused == 0},
	}
}

func printTable(w io.Writer, res benchResults) {
	m := res.Median
	okStr := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "NOT OK"
	}
	byMetric := map[string]check{}
	for _, c := range res.Checks {
		byMetric[c.Metric] = c
	}
	what := "median of " + strconv.Itoa(len(res.Runs)) + " runs"
	if len(res.Runs) == 1 {
		what = "1 run"
	}
	fmt.Fprintf(w, "\nboomerang bench: %d jobs by %d submitters; latency at %g jobs/s for %s; concurrency %d; %s\n",
		res.Flags.Jobs, res.Flags.Submitters, res.Flags.Rate, res.Flags.DurationStr, res.Service.Concurrency, what)
	fmt.Fprintf(w, "machine: %d CPUs %s/%s, %s, redis %s (%s)\n\n", res.Machine.NumCPU, res.Machine.GOOS, res.Machine.GOARCH,
		res.Machine.GoVersion, res.Machine.RedisVersion, res.Machine.RedisMode)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tvalue\ttarget\tok?")
	fmt.Fprintln(tw, "------\t-----\t------\t---")
	row := func(name, value, target, ok string) { fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, value, target, ok) }
	ceil := m["ceilingTasksPerSec"]
	row("asynq ceiling, no-op tasks/s (enqueue+process)", fmt.Sprintf("%.0f", ceil), "", "")
	row("submit rate, 202/s", fmt.Sprintf("%.0f", m["submitPerSec"]), "", "")
	c := byMetric["throughput / ceiling"]
	row("throughput, completed+delivered jobs/s", fmt.Sprintf("%.0f", m["deliveredPerSec"]), fmt.Sprintf("≥ %.0f (50%% of ceiling)", ceil*targetRatio), okStr(c.OK))
	row("RATIO throughput / ceiling", fmt.Sprintf("%.3f", m["ratio"]), c.Target, okStr(c.OK))
	c = byMetric["submit→webhook p50 ms"]
	row(fmt.Sprintf("submit→webhook p50 at %g/s", res.Flags.Rate), fmtMs(m["latencySubmitToWebhookP50Ms"]), c.Target+" ms", okStr(c.OK))
	row("submit→webhook p90", fmtMs(m["latencySubmitToWebhookP90Ms"]), "", "")
	c = byMetric["submit→webhook p99 ms"]
	row("submit→webhook p99", fmtMs(m["latencySubmitToWebhookP99Ms"]), c.Target+" ms", okStr(c.OK))
	row("submit→webhook max", fmtMs(m["latencySubmitToWebhookMaxMs"]), "", "")
	row("completion→webhook p50 / p90", fmtMs(m["latencyCompletionToWebhookP50Ms"])+" / "+fmtMs(m["latencyCompletionToWebhookP90Ms"]), "", "")
	row("completion→webhook p99 / max", fmtMs(m["latencyCompletionToWebhookP99Ms"])+" / "+fmtMs(m["latencyCompletionToWebhookMaxMs"]), "", "")
	c = byMetric["service RSS peak MiB"]
	row("service RSS peak", fmt.Sprintf("%.1f MiB", m["serviceRssPeakMiB"]), c.Target+" MiB", okStr(c.OK))
	c = byMetric["redis bytes per retained job"]
	row("redis per retained job", fmt.Sprintf("%.0f B (%.1f keys)", m["redisBytesPerJob"], m["redisKeysPerJob"]), c.Target+" B", okStr(c.OK))
	for _, name := range []string{"signature failures (all runs)", "lost webhooks (all runs)", "submissions not accepted (all runs)"} {
		c = byMetric[name]
		row(name, fmt.Sprintf("%.0f", c.Value), c.Target, okStr(c.OK))
	}
	row("CPU s in throughput phase: service / redis / bench / other", fmt.Sprintf("%.1f / %.1f / %.1f / %.1f of %.1f s wall × %d CPUs",
		m["throughputCpuServiceSec"], m["throughputCpuRedisSec"], m["throughputCpuBenchSec"], m["throughputCpuOtherSec"], m["throughputWallSec"], res.Machine.NumCPU), "", "")
	tw.Flush()
	if len(res.Runs) > 1 {
		fmt.Fprintln(w, "\nper run: ceiling/s  throughput/s  ratio  p50  p99 (submit→webhook)  RSS MiB  B/job")
		for _, r := range res.Runs {
			fmt.Fprintf(w, "  run %d: %.0f  %.0f  %.3f  %s  %s  %.1f  %.0f\n", r.Run, r.Ceiling.TasksPerSec, r.Throughput.DeliveredPerSec,
				r.Ratio, fmtMs(r.Latency.SubmitToWebhookMs.P50), fmtMs(r.Latency.SubmitToWebhookMs.P99), r.RSS.PeakMiB, r.Redis.BytesPerJob)
		}
	}
	if len(res.Runs) == 1 {
		fmt.Fprintf(w, "\nTHROUGHPUT / ASYNQ CEILING = %.0f / %.0f = %.3f (target ≥ %.2f)\n", m["deliveredPerSec"], ceil, m["ratio"], targetRatio)
	} else {
		fmt.Fprintf(w, "\nTHROUGHPUT / ASYNQ CEILING = %.3f, the median of the per-run ratios (target ≥ %.2f); the medians' ratio is %.0f / %.0f = %.3f\n",
			m["ratio"], targetRatio, m["deliveredPerSec"], ceil, m["deliveredPerSec"]/ceil)
	}
}

func fmtMs(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + " ms" }

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

func secs(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

func percentiles(ds []time.Duration) pcts {
	if len(ds) == 0 {
		return pcts{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { // nearest rank
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return pcts{N: len(s), P50: ms(at(0.50)), P90: ms(at(0.90)), P99: ms(at(0.99)), Max: ms(s[len(s)-1])}
}

func perSec(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return math.Round(float64(n)/d.Seconds()*10) / 10
}

// ---------------------------------------------------------------- one run

func benchRun(ctx context.Context, n int, f benchFlags, rs *benchRedis, concurrency int, checkInterval time.Duration,
	profile bool, progress func(string, ...any)) (r runResult, err error) {
	r.Run = n

	// Phase 1: the asynq ceiling.
	r.Ceiling, err = ceilingPhase(ctx, rs, concurrency, checkInterval, f.Submitters, f.Jobs)
	if err != nil {
		return r, fmt.Errorf("ceiling: %w", err)
	}
	progress("  ceiling: %d no-op tasks in %.2fs = %.0f tasks/s (enqueue %.0f/s); CPU s redis %.1f bench %.1f other %.1f", r.Ceiling.Tasks, r.Ceiling.Seconds,
		r.Ceiling.TasksPerSec, r.Ceiling.EnqueuePerSec, r.Ceiling.CPU.RedisSec, r.Ceiling.CPU.BenchSec, r.Ceiling.CPU.OtherSec)

	// The service, on its own freshly flushed database.
	svcDB := rs.client(rs.serviceDB)
	defer svcDB.Close()
	if err := svcDB.FlushDB(ctx).Err(); err != nil {
		return r, fmt.Errorf("flush service db: %w", err)
	}
	rcv, err := startBenchReceiver()
	if err != nil {
		return r, err
	}
	defer rcv.close()
	svc, err := startBenchService(ctx, f.ServeBinary, rs.url(rs.serviceDB))
	if err != nil {
		return r, err
	}
	defer func() {
		svc.stop()
		r.ServiceLog = svc.log()
	}()
	hc := benchHTTPClient(f.Submitters)
	secret, apiKey, err := svc.createClient(ctx, hc)
	if err != nil {
		return r, err
	}
	if rcv.verifier, err = signing.NewVerifier(secret); err != nil {
		return r, err
	}
	r.RSS.IdleMiB = readRSSMiB(svc.pid(), "VmRSS:")
	memBefore := rs.usedMemory(ctx)
	keysBefore, _ := svcDB.DBSize(ctx).Result()

	rss := startRSSSampler(svc.pid())
	load := &loadGen{hc: hc, base: svc.base, apiKey: apiKey, admin: svc.admin, callback: rcv.url + "/hook", rcv: rcv, wait: f.Wait}

	// Phase 2: throughput.
	var profDone chan error
	if profile {
		profDone = make(chan error, 1)
		go func() { profDone <- fetchProfile(ctx, svc.debug, f.ProfileSeconds, f.CPUProfile) }()
		r.CPUProfile = f.CPUProfile
	}
	cpu0, calls0 := rs.cpuSnapshot(ctx, svc.pid()), rs.commandCalls(ctx)
	r.Throughput, err = load.throughput(ctx, f.Jobs, f.Submitters, n)
	if err != nil {
		rss.stop()
		return r, fmt.Errorf("throughput: %w", err)
	}
	r.Throughput.CPU = rs.cpuSnapshot(ctx, svc.pid()).since(cpu0)
	if err := load.settle(ctx); err != nil {
		progress("  %v", err)
	}
	r.Throughput.RedisCallsPerJob = perJob(rs.commandCalls(ctx), calls0, r.Throughput.Accepted)
	if r.Ceiling.TasksPerSec > 0 {
		r.Ratio = math.Round(r.Throughput.DeliveredPerSec/r.Ceiling.TasksPerSec*1000) / 1000
	}
	progress("  throughput: %d accepted at %.0f/s; %d delivered in %.2fs = %.0f/s (ratio %.3f); missing %d; CPU s service %.1f redis %.1f bench %.1f other %.1f",
		r.Throughput.Accepted, r.Throughput.SubmitPerSec, r.Throughput.Delivered, r.Throughput.Seconds, r.Throughput.DeliveredPerSec, r.Ratio, r.Throughput.Missing,
		r.Throughput.CPU.ServiceSec, r.Throughput.CPU.RedisSec, r.Throughput.CPU.BenchSec, r.Throughput.CPU.OtherSec)
	if profDone != nil {
		if err := <-profDone; err != nil {
			progress("  cpu profile: %v", err)
			r.CPUProfile = ""
		}
	}

	// Phase 3: latency at a steady rate.
	r.Latency, err = load.latency(ctx, f.Rate, f.Duration, n)
	if err != nil {
		rss.stop()
		return r, fmt.Errorf("latency: %w", err)
	}
	progress("  latency at %g/s: submit→webhook p50 %s p99 %s; completion→webhook p50 %s p99 %s; missing %d",
		f.Rate, fmtMs(r.Latency.SubmitToWebhookMs.P50), fmtMs(r.Latency.SubmitToWebhookMs.P99),
		fmtMs(r.Latency.CompletionToWebhook.P50), fmtMs(r.Latency.CompletionToWebhook.P99), r.Latency.Missing)

	// Everything is delivered (or given up on): the service records each
	// attempt just after the receiver answers, so wait for that too.
	if err := load.settle(ctx); err != nil {
		progress("  %v", err)
	}
	r.RSS.PeakMiB, r.RSS.Samples = rss.stop()
	r.RSS.HWMMiB = readRSSMiB(svc.pid(), "VmHWM:")
	r.Redis.UsedMemoryBefore, r.Redis.UsedMemoryAfter = memBefore, rs.usedMemory(ctx)
	r.Redis.KeysBefore = keysBefore
	r.Redis.KeysAfter, _ = svcDB.DBSize(ctx).Result()
	r.Redis.JobsRetained = r.Throughput.Accepted + r.Latency.Accepted
	if r.Redis.JobsRetained > 0 && memBefore > 0 && r.Redis.UsedMemoryAfter > 0 {
		r.Redis.BytesPerJob = math.Round(float64(r.Redis.UsedMemoryAfter-memBefore)/float64(r.Redis.JobsRetained)*10) / 10
		r.Redis.KeysPerJob = math.Round(float64(r.Redis.KeysAfter-keysBefore)/float64(r.Redis.JobsRetained)*100) / 100
	}
	progress("  service RSS peak %.1f MiB; redis %.0f bytes per retained job", r.RSS.PeakMiB, r.Redis.BytesPerJob)

	r.SignatureFailures = rcv.sigFailures.Load()
	r.DuplicateWebhooks = rcv.duplicates.Load()
	r.MalformedWebhooks = rcv.malformed.Load()
	r.LostWebhooks = r.Throughput.Missing + r.Latency.Missing
	r.NotAccepted = r.Throughput.Non202 + r.Throughput.SubmitErrors + r.Latency.Non202 + r.Latency.SubmitErrors
	return r, nil
}

// ---------------------------------------------------------------- ceiling

func ceilingPhase(ctx context.Context, rs *benchRedis, concurrency int, checkInterval time.Duration, enqueuers, n int) (ceilingResult, error) {
	res := ceilingResult{Tasks: n, Enqueuers: enqueuers, Concurrency: concurrency, TaskCheckIntervalMs: ms(checkInterval)}
	// Like the service: one go-redis client, pool Concurrency+20, shared by
	// the enqueuing client and the worker server.
	opt := rs.options(rs.ceilingDB)
	opt.PoolSize = max(opt.PoolSize, concurrency+20)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return res, fmt.Errorf("flush ceiling db: %w", err)
	}
	var processed atomic.Int64
	var lastAt atomic.Int64
	finished := make(chan struct{})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:       concurrency,
		TaskCheckInterval: checkInterval,
		LogLevel:          asynq.WarnLevel,
	})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		if processed.Add(1) == int64(n) {
			lastAt.Store(time.Now().UnixNano())
			close(finished)
		}
		return nil
	})); err != nil {
		return res, fmt.Errorf("start asynq server: %w", err)
	}
	defer srv.Shutdown()
	time.Sleep(200 * time.Millisecond) // let the workers reach their idle poll

	client := asynq.NewClientFromRedisClient(rdb)      // shared connection: not closed here
	payload := []byte("req_01KBENCHBENCHBENCHBENCHBE") // the size of a request id, like a job task
	var next atomic.Int64
	var enqueueErrs atomic.Int64
	var wg sync.WaitGroup
	cpu0, calls0 := rs.cpuSnapshot(ctx, 0), rs.commandCalls(ctx)
	start := time.Now()
	for range enqueuers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				if _, err := client.EnqueueContext(ctx, asynq.NewTask("bench:noop", payload)); err != nil {
					enqueueErrs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	enqueued := time.Since(start)
	res.EnqueueErrors = enqueueErrs.Load()
	if res.EnqueueErrors > 0 {
		return res, fmt.Errorf("%d enqueue errors", res.EnqueueErrors)
	}
	timeout := time.NewTimer(2*time.Minute + time.Duration(n)*time.Millisecond)
	defer timeout.Stop()
	select {
	case <-finished:
	case <-timeout.C:
		return res, fmt.Errorf("only %d of %d tasks processed in time", processed.Load(), n)
	case <-ctx.Done():
		return res, ctx.Err()
	}
	total := time.Unix(0, lastAt.Load()).Sub(start)
	res.CPU = rs.cpuSnapshot(ctx, 0).since(cpu0)
	res.RedisCallsPerTask = perJob(rs.commandCalls(ctx), calls0, n)
	res.Seconds, res.EnqueueSeconds = secs(total), secs(enqueued)
	res.TasksPerSec, res.EnqueuePerSec = perSec(n, total), perSec(n, enqueued)
	srv.Shutdown()
	// Leave nothing of the ceiling behind for the service phases' memory figures.
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return res, err
	}
	return res, nil
}

// ---------------------------------------------------------------- redis

type benchRedis struct {
	base      *url.URL
	ceilingDB int
	serviceDB int
	mode      string
	version   string
	cmd       *exec.Cmd
	info      *redis.Client // for INFO, on the ceiling db
	dir       string
}

func openBenchRedis(ctx context.Context, raw string, serviceDB int) (*benchRedis, error) {
	rs := &benchRedis{mode: "external"}
	if raw == "" {
		path, err := exec.LookPath("redis-server")
		if err != nil {
			return nil, errors.New("bench: no --redis-url or BOOMERANG_REDIS_URL, and redis-server is not on PATH: " +
				"install it (Debian/Ubuntu: sudo apt-get install redis-server) or pass --redis-url redis://127.0.0.1:6379/1")
		}
		if raw, err = rs.startServer(ctx, path); err != nil {
			return nil, err
		}
		rs.mode = "private redis-server"
	}
	u, err := url.Parse(raw)
	if err != nil {
		rs.close()
		return nil, fmt.Errorf("bench: redis url: %w", err)
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		rs.close()
		return nil, fmt.Errorf("bench: redis url: %w", err)
	}
	q := u.Query()
	q.Del("db")
	u.RawQuery = q.Encode()
	rs.base, rs.ceilingDB, rs.serviceDB = u, opt.DB, serviceDB
	if serviceDB < 0 {
		rs.serviceDB = opt.DB + 1
	}
	if rs.serviceDB == rs.ceilingDB {
		rs.close()
		return nil, errors.New("bench: --service-db must differ from the database of --redis-url")
	}
	rs.info = rs.client(rs.ceilingDB)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		err := rs.info.Ping(pctx).Err()
		if err == nil {
			break
		}
		if pctx.Err() != nil {
			rs.close()
			return nil, fmt.Errorf("bench: redis at %s does not answer: %w", redactURL(raw), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rs.version = rs.infoField(ctx, "server", "redis_version")
	if rs.version == "" {
		rs.version = "unknown"
	}
	return rs, nil
}

func (rs *benchRedis) startServer(ctx context.Context, path string) (string, error) {
	port, err := freeLoopbackPort()
	if err != nil {
		return "", err
	}
	if rs.dir, err = os.MkdirTemp("", "boomerang-bench-redis-"); err != nil {
		return "", err
	}
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction", "--dir", rs.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("bench: start redis-server: %w", err)
	}
	rs.cmd = cmd
	return "redis://127.0.0.1:" + strconv.Itoa(port) + "/0", nil
}

func (rs *benchRedis) close() {
	if rs.info != nil {
		rs.info.Close()
	}
	if rs.cmd != nil {
		_ = rs.cmd.Process.Kill()
		_ = rs.cmd.Wait()
	}
	if rs.dir != "" {
		os.RemoveAll(rs.dir)
	}
}

func (rs *benchRedis) url(db int) string {
	u := *rs.base
	u.Path = "/" + strconv.Itoa(db)
	return u.String()
}

func (rs *benchRedis) options(db int) *redis.Options {
	opt, _ := redis.ParseURL(rs.url(db)) // parsed once already
	return opt
}

func (rs *benchRedis) client(db int) *redis.Client { return redis.NewClient(rs.options(db)) }

func (rs *benchRedis) infoField(ctx context.Context, section, field string) string {
	txt, err := rs.info.Info(ctx, section).Result()
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(txt, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// usedMemory is INFO memory's used_memory, or -1 if the server has none.
func (rs *benchRedis) usedMemory(ctx context.Context) int64 {
	n, err := strconv.ParseInt(rs.infoField(ctx, "memory", "used_memory"), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// commandCalls reads INFO commandstats: calls per command since the server
// started (or since CONFIG RESETSTAT).
func (rs *benchRedis) commandCalls(ctx context.Context) map[string]int64 {
	txt, err := rs.info.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil
	}
	out := map[string]int64{}
	for line := range strings.SplitSeq(txt, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		for kv := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				out[name], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out
}

// perJob divides the growth of each command's calls by jobs, keeping the
// commands that ran at least once per 100 jobs, and adds their "total".
func perJob(after, before map[string]int64, jobs int) map[string]float64 {
	if after == nil || jobs == 0 {
		return nil
	}
	out := map[string]float64{}
	var total int64
	for k, v := range after {
		d := v - before[k]
		total += d
		if float64(d)/float64(jobs) >= 0.01 {
			out[k] = math.Round(float64(d)/float64(jobs)*100) / 100
		}
	}
	out["total"] = math.Round(float64(total)/float64(jobs)*100) / 100
	return out
}

type cpuSnap struct {
	at               time.Time
	service, redis   float64
	bench            float64
	machine          procStat
	hasService, hasR bool
}

// procStat is the CPU time of all CPUs from /proc/stat's cpu line.
type procStat struct{ userSys, irq, steal float64 }

func readProcStat() procStat {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return procStat{}
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return procStat{}
	}
	v := func(i int) float64 { n, _ := strconv.ParseFloat(f[i], 64); return n / benchClockTicksSec }
	// user nice system idle iowait irq softirq steal
	return procStat{userSys: v(1) + v(2) + v(3), irq: v(6) + v(7), steal: v(8)}
}

func loadAvg1() float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// cpuSnapshot reads the CPU seconds used so far by the service (pid, if not
// 0, from /proc), Redis (INFO cpu) and this process (getrusage).
func (rs *benchRedis) cpuSnapshot(ctx context.Context, pid int) cpuSnap {
	s := cpuSnap{at: time.Now(), machine: readProcStat()}
	if pid > 0 {
		s.service, s.hasService = procCPUSeconds(pid)
	}
	u, err1 := strconv.ParseFloat(rs.infoField(ctx, "cpu", "used_cpu_user"), 64)
	k, err2 := strconv.ParseFloat(rs.infoField(ctx, "cpu", "used_cpu_sys"), 64)
	s.redis, s.hasR = u+k, err1 == nil && err2 == nil
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.bench = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return s
}

func (s cpuSnap) since(p cpuSnap) cpuUsage {
	round := func(v float64) float64 { return math.Round(v*100) / 100 }
	c := cpuUsage{WallSec: round(s.at.Sub(p.at).Seconds()), BenchSec: round(s.bench - p.bench),
		UserSysSec: round(s.machine.userSys - p.machine.userSys), IrqSec: round(s.machine.irq - p.machine.irq),
		StealSec: round(s.machine.steal - p.machine.steal), LoadAvg1: loadAvg1()}
	if s.hasService && p.hasService {
		c.ServiceSec = round(s.service - p.service)
	}
	if s.hasR && p.hasR {
		c.RedisSec = round(s.redis - p.redis)
	}
	// A process's system time includes the softirq time spent on its
	// behalf, which /proc/stat counts as softirq, not system.
	c.OtherSec = round(c.UserSysSec + c.IrqSec - c.ServiceSec - c.RedisSec - c.BenchSec)
	return c
}

func procCPUSeconds(pid int) (float64, bool) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the whole line.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(raw[i+1:]))
	if len(fields) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseFloat(fields[11], 64)
	st, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return (ut + st) / benchClockTicksSec, true
}

// ---------------------------------------------------------------- service

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

var (
	apiAddrRE   = regexp.MustCompile(`API listening on (http://\S+)`)
	pprofAddrRE = regexp.MustCompile(`pprof listening on (http://\S+)`)
)

// controlledEnv are set by the bench itself; droppedEnv would break it.
var (
	controlledEnv = []string{"BOOMERANG_REDIS_URL", "BOOMERANG_ADDR", "BOOMERANG_ADMIN_TOKEN", "BOOMERANG_ALLOW_PRIVATE_CALLBACKS", "BOOMERANG_DEBUG_ADDR"}
	droppedEnv    = []string{"BOOMERANG_ADMIN_ADDR", "BOOMERANG_ROLE", "BOOMERANG_REQUIRE_HTTPS"}
)

// benchDefaultEnv applies unless the user set the variable. The per-client
// rate limit stays on, so that its Redis round trip is measured as in a
// default deployment, but far above what the one benchmark client sends
// (BOOMERANG_RATE_LIMIT=0 measures without it).
var benchDefaultEnv = map[string]string{
	"BOOMERANG_LOG_LEVEL":  "warn",
	"BOOMERANG_RATE_LIMIT": "1000000",
	"BOOMERANG_RATE_BURST": "10000000",
}

// passThroughEnv returns the BOOMERANG_* variables of this process that the
// service inherits; redacted hides values that may be secret.
func passThroughEnv(redacted bool) map[string]string {
	out := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "BOOMERANG_") || slices.Contains(controlledEnv, k) || slices.Contains(droppedEnv, k) {
			continue
		}
		if redacted && (strings.Contains(k, "TOKEN") || strings.Contains(k, "SECRET") || strings.Contains(k, "URL")) {
			v = "<redacted>"
		}
		out[k] = v
	}
	return out
}

func startBenchService(ctx context.Context, binary, redisURL string) (*benchService, error) {
	s := &benchService{admin: randomToken(), exited: make(chan struct{})}
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BOOMERANG_") {
			env = append(env, kv)
		}
	}
	pass := passThroughEnv(false)
	for k, v := range benchDefaultEnv {
		if _, ok := pass[k]; !ok {
			pass[k] = v
		}
	}
	for k, v := range pass {
		env = append(env, k+"="+v)
	}
	env = append(env,
		"BOOMERANG_REDIS_URL="+redisURL,
		"BOOMERANG_ADDR=127.0.0.1:0", // the service prints the port it got
		"BOOMERANG_ADMIN_TOKEN="+s.admin,
		"BOOMERANG_ALLOW_PRIVATE_CALLBACKS=true",
		"BOOMERANG_DEBUG_ADDR=127.0.0.1:0",
	)
	cmd := exec.Command(binary, "serve")
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start service %s serve: %w", binary, err)
	}
	s.cmd = cmd
	apiCh, dbgCh := make(chan string, 1), make(chan string, 1)
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() {
		defer pipes.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.addLine(sc.Text())
			if m := apiAddrRE.FindStringSubmatch(sc.Text()); m != nil {
				apiCh <- m[1]
			}
			if m := pprofAddrRE.FindStringSubmatch(sc.Text()); m != nil {
				dbgCh <- m[1]
			}
		}
	}()
	go func() {
		defer pipes.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.addLine(sc.Text())
		}
	}()
	go func() {
		pipes.Wait() // Wait must not run before the pipes are read to the end
		_ = cmd.Wait()
		close(s.exited)
	}()
	timeout := time.After(30 * time.Second)
	for s.base == "" || s.debug == "" {
		select {
		case s.base = <-apiCh:
		case s.debug = <-dbgCh:
		case <-s.exited:
			return nil, fmt.Errorf("service exited before listening:\n%s", strings.Join(s.log().Tail, "\n"))
		case <-timeout:
			s.stop()
			return nil, fmt.Errorf("service did not listen within 30s:\n%s", strings.Join(s.log().Tail, "\n"))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		}
	}
	// Ready means Redis reachable and workers running.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("service not ready within 30s:\n%s", strings.Join(s.log().Tail, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
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

func (s *benchService) log() serviceLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return serviceLog{Lines: s.lines, Tail: slices.Clone(s.tail)}
}

func (s *benchService) pid() int { return s.cmd.Process.Pid }

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

func fetchProfile(ctx context.Context, debugBase string, seconds int, file string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", debugBase, max(seconds, 1)), nil)
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

// ---------------------------------------------------------------- RSS

type rssSampler struct {
	stopCh  chan struct{}
	done    chan struct{}
	peakKB  int64
	samples int
}

func startRSSSampler(pid int) *rssSampler {
	s := &rssSampler{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if kb := readStatusKB(pid, "VmRSS:"); kb > 0 {
				s.peakKB = max(s.peakKB, kb)
				s.samples++
			}
			select {
			case <-s.stopCh:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak in MiB and the sample count.
func (s *rssSampler) stop() (float64, int) {
	select {
	case <-s.stopCh:
	default:
		close(s.stopCh)
	}
	<-s.done
	return math.Round(float64(s.peakKB)/1024*10) / 10, s.samples
}

func readStatusKB(pid int, field string) int64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}

func readRSSMiB(pid int, field string) float64 {
	return math.Round(float64(readStatusKB(pid, field))/1024*10) / 10
}

// ---------------------------------------------------------------- receiver

type webhookRec struct {
	at          time.Time
	completedAt time.Time
}

type benchReceiver struct {
	srv      *http.Server
	url      string
	verifier *signing.Verifier // set before any job is submitted

	mu          sync.Mutex
	byRequest   map[string]webhookRec // first receipt per requestId
	seen        map[string]struct{}   // webhook-ids
	received    atomic.Int64          // distinct webhooks
	lastAt      atomic.Int64          // unix nanos of the latest distinct webhook
	sigFailures atomic.Int64
	duplicates  atomic.Int64
	malformed   atomic.Int64
}

func startBenchReceiver() (*benchReceiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &benchReceiver{url: "http://" + l.Addr().String(), byRequest: map[string]webhookRec{}, seen: map[string]struct{}{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

func (r *benchReceiver) close() { _ = r.srv.Close() }

func (r *benchReceiver) serve(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	if err := r.verifier.Verify(req.Header, body); err != nil {
		r.sigFailures.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var msg struct {
		Data struct {
			RequestID   string    `json:"requestId"`
			CompletedAt time.Time `json:"completedAt"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &msg); err != nil || msg.Data.RequestID == "" {
		r.malformed.Add(1)
		http.Error(w, "malformed", http.StatusBadRequest)
		return
	}
	id := req.Header.Get(signing.HeaderID)
	r.mu.Lock()
	_, dup := r.seen[id]
	if !dup {
		r.seen[id] = struct{}{}
		r.byRequest[msg.Data.RequestID] = webhookRec{at: at, completedAt: msg.Data.CompletedAt}
	}
	r.mu.Unlock()
	if dup {
		r.duplicates.Add(1)
	} else {
		r.received.Add(1)
		r.lastAt.Store(at.UnixNano())
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *benchReceiver) lookup(ids []string) map[string]webhookRec {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]webhookRec, len(ids))
	for _, id := range ids {
		if rec, ok := r.byRequest[id]; ok {
			out[id] = rec
		}
	}
	return out
}

// ---------------------------------------------------------------- load

type loadGen struct {
	hc       *http.Client
	base     string
	apiKey   string
	admin    string
	callback string
	rcv      *benchReceiver
	wait     time.Duration
}

type submission struct {
	id    string
	start time.Time
	took  time.Duration
	code  int
	err   error
}

func (g *loadGen) submit(ctx context.Context, body []byte) submission {
	s := submission{start: time.Now()}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.base+"/v1/jobs", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.hc.Do(req)
	if err != nil {
		s.err, s.took = err, time.Since(s.start)
		return s
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.took, s.code = time.Since(s.start), resp.StatusCode
	if resp.StatusCode == http.StatusAccepted {
		var a struct {
			RequestID string `json:"requestId"`
		}
		if json.Unmarshal(raw, &a) == nil {
			s.id = a.RequestID
		}
	}
	return s
}

func (g *loadGen) jobBody(phase string, run, i int) []byte {
	return fmt.Appendf(nil, `{"type":"echo","payload":{"n":%d},"callbackUrl":%q,"metadata":{"bench":"%s-%d"}}`, i, g.callback, phase, run)
}

// awaitWebhooks waits until every id has its webhook, or until g.wait
// passes with no new webhook at all; it returns what arrived. base is the
// receiver's count before the ids were submitted: while waiting it compares
// counts only, so that it takes no CPU or lock from the receiver.
func (g *loadGen) awaitWebhooks(ctx context.Context, ids []string, base int64) (map[string]webhookRec, error) {
	lastCount, lastChange := int64(-1), time.Now()
	for {
		n := g.rcv.received.Load()
		if n-base >= int64(len(ids)) {
			if got := g.rcv.lookup(ids); len(got) == len(ids) {
				return got, nil
			}
		}
		if n != lastCount {
			lastCount, lastChange = n, time.Now()
		} else if time.Since(lastChange) > g.wait {
			return g.rcv.lookup(ids), nil
		}
		select {
		case <-ctx.Done():
			return g.rcv.lookup(ids), ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (g *loadGen) throughput(ctx context.Context, n, submitters, run int) (throughputResult, error) {
	res := throughputResult{Jobs: n, Submitters: submitters}
	subs := make([]submission, n)
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = g.jobBody("throughput", run, i)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	base := g.rcv.received.Load()
	start := time.Now()
	for range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				subs[i] = g.submit(ctx, bodies[i])
			}
		}()
	}
	wg.Wait()
	submitted := time.Since(start)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	ids, took := g.tally(subs, &res.Accepted, &res.Non202, &res.SubmitErrors)
	res.SubmitSeconds, res.SubmitPerSec = secs(submitted), perSec(res.Accepted, submitted)
	res.SubmitMs = percentiles(took)
	got, err := g.awaitWebhooks(ctx, ids, base)
	if err != nil {
		return res, err
	}
	var last time.Time
	for _, rec := range got {
		if rec.at.After(last) {
			last = rec.at
		}
	}
	res.Delivered, res.Missing = len(got), len(ids)-len(got)
	if !last.IsZero() {
		res.Seconds = secs(last.Sub(start))
		res.DeliveredPerSec = perSec(len(got), last.Sub(start))
		submitEnd := start.Add(submitted)
		after := 0
		for _, rec := range got {
			if rec.at.After(submitEnd) {
				after++
			}
		}
		res.DrainPerSec = perSec(after, last.Sub(submitEnd))
	}
	return res, nil
}

func (g *loadGen) tally(subs []submission, accepted, non202, errs *int) (ids []string, took []time.Duration) {
	for _, s := range subs {
		switch {
		case s.err != nil:
			*errs++
		case s.code != http.StatusAccepted || s.id == "":
			*non202++
		default:
			*accepted++
			ids = append(ids, s.id)
			took = append(took, s.took)
		}
	}
	return ids, took
}

// latency submits at a fixed rate with an open loop: each submission is
// sent at its scheduled time whatever happened to the earlier ones.
func (g *loadGen) latency(ctx context.Context, rate float64, d time.Duration, run int) (latencyResult, error) {
	n := max(int(math.Round(rate*d.Seconds())), 1)
	res := latencyResult{Rate: rate, DurationSec: d.Seconds(), Jobs: n}
	period := time.Duration(float64(time.Second) / rate)
	subs := make([]submission, n)
	var wg sync.WaitGroup
	var lagMax time.Duration
	base := g.rcv.received.Load()
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * period)
		if wait := time.Until(due); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				wg.Wait()
				return res, ctx.Err()
			}
		}
		lagMax = max(lagMax, time.Since(due))
		body := g.jobBody("latency", run, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			subs[i] = g.submit(ctx, body)
		}()
	}
	wg.Wait()
	res.SendLagMaxMs = ms(lagMax)
	ids, took := g.tally(subs, &res.Accepted, &res.Non202, &res.SubmitErrors)
	res.SubmitMs = percentiles(took)
	got, err := g.awaitWebhooks(ctx, ids, base)
	if err != nil {
		return res, err
	}
	var total, sinceDone []time.Duration
	for _, s := range subs {
		rec, ok := got[s.id]
		if s.id == "" || !ok {
			continue
		}
		total = append(total, rec.at.Sub(s.start))
		if !rec.completedAt.IsZero() {
			sinceDone = append(sinceDone, rec.at.Sub(rec.completedAt))
		}
	}
	res.Delivered, res.Missing = len(got), len(ids)-len(got)
	res.SubmitToWebhookMs, res.CompletionToWebhook = percentiles(total), percentiles(sinceDone)
	return res, nil
}

// settle waits until the service has no PENDING delivery left: it records
// each attempt just after the receiver's answer.
func (g *loadGen) settle(ctx context.Context) error {
	deadline := time.Now().Add(g.wait)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/admin/v1/deliveries?status=PENDING&limit=1", nil)
		req.Header.Set("Authorization", "Bearer "+g.admin)
		resp, err := g.hc.Do(req)
		if err == nil {
			var p struct {
				Data []json.RawMessage `json:"data"`
			}
			err = json.NewDecoder(resp.Body).Decode(&p)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK && len(p.Data) == 0 {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("deliveries still PENDING after %s", g.wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- misc

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = url.User("redacted")
	return u.String()
}

func machineInfo(rs *benchRedis) machine {
	m := machine{NumCPU: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version(),
		RedisVersion: rs.version, RedisMode: rs.mode}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// Command boomerang-bench is a reproducible load benchmark of the whole
// Boomerang service, measured against the raw asynq ceiling in the same run,
// on the same Redis, with the same concurrency:
//
//	go run ./cmd/boomerang-bench --runs 3
//
// It builds ./cmd/boomerang (or runs --serve-binary) as a subprocess and
// starts a private redis-server on a free loopback port (or uses --redis-url,
// or, with --cluster, a private 3-master Redis Cluster). One run has five
// phases; --only picks some of them:
//
//  1. ceiling: raw asynq (no Boomerang) with the service's concurrency and
//     task check interval, N no-op tasks enqueued by as many goroutines as
//     the load phase has submitters (over 16 queues on a cluster); tasks per
//     second from the first enqueue to the last task processed.
//  2. external: a service of its own with BOOMERANG_JOB_EXTERNAL=bench; N
//     jobs submitted as in the throughput phase while --workers goroutines
//     claim and complete them over HTTP (issue 10); jobs per second (first
//     submit to last webhook), claims per second, Redis commands per job,
//     and claim latency (the submission's 202 → the claim's 200). Against
//     the throughput phase of the same run: both ratios.
//  3. throughput: "boomerang serve" on a freshly flushed database; N echo
//     jobs submitted as fast as possible; 202s per second, and jobs completed
//     and delivered per second (first submit to last webhook).
//  4. latency: an open loop submits at a fixed rate; percentiles of
//     submit→webhook and completion→webhook.
//  5. idle (--idle, default 60s): the same service, doing nothing; the CPU
//     of the service and of redis-server (/proc/<pid>/stat) and Redis
//     commands per second. Then an embedded service (no Redis URL: miniredis
//     in its own process) is measured as long.
//
// A receiver in this process verifies every webhook's signature (package
// signing). The service's RSS is sampled from /proc, Redis memory from INFO
// memory, Redis commands from INFO commandstats (which counts the commands
// scripts run too).
//
// Reading the results: the table on stdout gives the median of --runs runs
// against its targets; the JSON file (--out) has every run, every number, the
// machine and the flags. The ratio throughput / ceiling is the headline: the
// service's cost per job against asynq's per task, on this machine. Redis
// calls per job / per task says how many Redis commands Boomerang adds.
// The external phase is read against the throughput phase: external /
// throughput jobs/s and Redis calls per job say what doing the work outside
// costs against doing it inside.
// cpu.otherSec in the JSON is CPU used by other processes during a phase: a
// run where it is large was disturbed. See docs/benchmarks.md.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Targets from the issue "Fast: throughput and latency near the asynq
// ceiling", and for what doing nothing may cost.
const (
	targetRatio           = 0.50 // throughput / asynq ceiling
	targetP50Ms           = 10.0 // submit→webhook at the latency rate
	targetP99Ms           = 50.0
	targetRSSMiB          = 150.0
	targetBytesPerJob     = 2048.0
	targetCallsRatio      = 2.0 // Redis calls per job / per no-op task
	targetIdleServicePct  = 0.5 // % of one core
	targetIdleRedisPct    = 0.5
	targetIdleEmbeddedPct = 2.0
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "boomerang-bench:", err)
		os.Exit(1)
	}
}

// run is the whole program; tests call it directly. args[0] is the
// program's name.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f, err := parseFlags(args[1:], getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	b, err := newBench(ctx, f, getenv, stderr)
	if err != nil {
		return err
	}
	defer b.close()
	res := b.newResults(args[1:])
	for i := 1; i <= f.Runs; i++ {
		b.progress("run %d of %d", i, f.Runs)
		if la := loadAvg1(); la > float64(runtime.NumCPU())/2 {
			b.progress("WARNING: load average %.1f on %d CPUs: other processes will distort the numbers (see cpu.otherSec in the JSON)", la, runtime.NumCPU())
		}
		r, err := b.run(ctx, i)
		if err != nil {
			return fmt.Errorf("bench run %d: %w", i, err)
		}
		res.Runs = append(res.Runs, r)
	}
	res.Median = medians(res.Runs, b.phases)
	res.Checks = checks(res.Median, res.Runs, b.phases)
	res.FinishedAt = time.Now().UTC()
	if err := writeJSON(f.Out, res); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	printTable(stdout, res, b.phases)
	fmt.Fprintf(stdout, "\nresults: %s\n", f.Out)
	if f.CPUProfile != "" && b.phases.throughput {
		fmt.Fprintf(stdout, "cpu profile (service, run 1 throughput phase): %s   (go tool pprof -top %s; allocations: -sample_index=alloc_space %s.allocs)\n", f.CPUProfile, f.CPUProfile, f.CPUProfile)
	}
	return nil
}

// ---------------------------------------------------------------- flags

type benchFlags struct {
	RedisURL       string        `json:"redisUrl"`
	ServiceDB      int           `json:"serviceDb"`
	Cluster        bool          `json:"cluster"`
	Jobs           int           `json:"jobs"`
	Submitters     int           `json:"submitters"`
	Workers        int           `json:"workers"`
	Rate           float64       `json:"rate"`
	Duration       time.Duration `json:"-"`
	DurationStr    string        `json:"duration"`
	Idle           time.Duration `json:"-"`
	IdleStr        string        `json:"idle"`
	Only           string        `json:"only,omitempty"`
	Runs           int           `json:"runs"`
	Out            string        `json:"out"`
	CPUProfile     string        `json:"cpuprofile,omitempty"`
	ProfileSeconds int           `json:"profileSeconds,omitempty"`
	ServeBinary    string        `json:"serveBinary"`
	Wait           time.Duration `json:"-"`
	WaitStr        string        `json:"wait"`
}

// newFlagSet defines every flag into f.
func newFlagSet(f *benchFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("boomerang-bench", flag.ContinueOnError)
	fs.StringVar(&f.RedisURL, "redis-url", "", "Redis to run on (default $BOOMERANG_REDIS_URL, else a private redis-server). "+
		"The ceiling uses the URL's database and the service the next one (see --service-db); BOTH ARE FLUSHED")
	fs.IntVar(&f.ServiceDB, "service-db", -1, "database number of the service phases (-1: the ceiling's database + 1)")
	fs.BoolVar(&f.Cluster, "cluster", false, "run on a private 3-master Redis Cluster (needs redis-server and redis-cli on PATH); "+
		"the ceiling spreads its tasks over 16 queues and the service runs with BOOMERANG_REDIS_CLUSTER=true")
	fs.IntVar(&f.Jobs, "jobs", 20000, "jobs of the throughput and external phases (and no-op tasks of the ceiling phase)")
	fs.IntVar(&f.Submitters, "submitters", 32, "submitting goroutines of the throughput and external phases (and enqueuers of the ceiling phase)")
	fs.IntVar(&f.Workers, "workers", 8, "external workers (claim → complete loops over HTTP) of the external phase")
	fs.Float64Var(&f.Rate, "rate", 200, "jobs per second of the latency phase (open loop)")
	fs.DurationVar(&f.Duration, "duration", 10*time.Second, "length of the latency phase")
	fs.DurationVar(&f.Idle, "idle", 60*time.Second, "length of the idle phase, and of the idle embedded service after it (0: no idle phase)")
	fs.StringVar(&f.Only, "only", "", "run only these phases, comma-separated: ceiling, external, throughput, latency, idle (default: all)")
	fs.IntVar(&f.Runs, "runs", 1, "repeat everything this many times and report medians")
	fs.StringVar(&f.Out, "out", "", "JSON results file (default bench-results/bench-<timestamp>.json)")
	fs.StringVar(&f.CPUProfile, "cpuprofile", "", "write the service's CPU profile, taken during the first throughput phase, to this file, and its allocations over the same seconds to this file + .allocs")
	fs.IntVar(&f.ProfileSeconds, "profile-seconds", 8, "length of the CPU profile, from the start of the throughput phase")
	fs.StringVar(&f.ServeBinary, "serve-binary", "", "boomerang binary to run as the service (default: go build ./cmd/boomerang into a temp dir)")
	fs.DurationVar(&f.Wait, "wait", 30*time.Second, "give up waiting for webhooks after this long without a new one")
	return fs
}

const usageHeader = `usage: go run ./cmd/boomerang-bench [flags]

Benchmarks the Boomerang service against the raw asynq ceiling on the same
Redis: phases ceiling, external, throughput, latency and idle (see go doc
./cmd/boomerang-bench and docs/benchmarks.md).

Flags:
`

// parseFlags parses and checks the flags. For --help it prints the usage to
// stdout and returns flag.ErrHelp.
func parseFlags(args []string, getenv func(string) string, stdout, stderr io.Writer) (benchFlags, error) {
	var f benchFlags
	fs := newFlagSet(&f)
	var msgs bytes.Buffer
	fs.SetOutput(&msgs)
	fs.Usage = func() {
		msgs.WriteString(usageHeader)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = stdout.Write(msgs.Bytes())
			return f, err
		}
		_, _ = stderr.Write(msgs.Bytes())
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	return f, f.complete(getenv)
}

// complete checks the flags and fills in the defaults that depend on others.
func (f *benchFlags) complete(getenv func(string) string) error {
	if f.Jobs < 1 || f.Submitters < 1 || f.Workers < 1 || f.Rate <= 0 || f.Duration <= 0 || f.Runs < 1 || f.Wait <= 0 || f.Idle < 0 {
		return errors.New("--jobs, --submitters, --workers, --rate, --duration, --runs and --wait must be positive, --idle 0 or more")
	}
	if _, err := parsePhases(f.Only, f.Idle); err != nil {
		return err
	}
	if f.Cluster && f.RedisURL != "" {
		return errors.New("--cluster starts its own Redis Cluster: drop --redis-url")
	}
	f.DurationStr, f.WaitStr, f.IdleStr = f.Duration.String(), f.Wait.String(), f.Idle.String()
	if f.RedisURL == "" && !f.Cluster {
		f.RedisURL = getenv("BOOMERANG_REDIS_URL")
	}
	if f.Out == "" {
		f.Out = filepath.Join("bench-results", "bench-"+time.Now().Format("20060102-150405")+".json")
	}
	return nil
}

// phaseSet is which phases run.
type phaseSet struct{ ceiling, external, throughput, latency, idle bool }

func parsePhases(only string, idle time.Duration) (phaseSet, error) {
	if only == "" {
		return phaseSet{ceiling: true, external: true, throughput: true, latency: true, idle: idle > 0}, nil
	}
	var p phaseSet
	for name := range strings.SplitSeq(only, ",") {
		switch strings.TrimSpace(name) {
		case "ceiling":
			p.ceiling = true
		case "external":
			p.external = true
		case "throughput":
			p.throughput = true
		case "latency":
			p.latency = true
		case "idle":
			if idle <= 0 {
				return p, errors.New("--only idle needs --idle above 0")
			}
			p.idle = true
		default:
			return p, fmt.Errorf("--only: unknown phase %q (want ceiling, external, throughput, latency, idle)", name)
		}
	}
	return p, nil
}

func (p phaseSet) load() bool    { return p.throughput || p.latency }
func (p phaseSet) service() bool { return p.load() || p.idle }

func (p phaseSet) names() []string {
	var out []string
	for _, ph := range []struct {
		on   bool
		name string
	}{{p.ceiling, "ceiling"}, {p.external, "external"}, {p.throughput, "throughput"}, {p.latency, "latency"}, {p.idle, "idle"}} {
		if ph.on {
			out = append(out, ph.name)
		}
	}
	return out
}

// ---------------------------------------------------------------- orchestration

// bench is one invocation: its settings and what it started.
type bench struct {
	f             benchFlags
	phases        phaseSet
	rs            *benchRedis
	binary        string // the boomerang binary run as the service
	dir           string // temp dir: the built binary, Redis data
	concurrency   int
	checkInterval time.Duration
	progress      func(format string, a ...any)
}

func newBench(ctx context.Context, f benchFlags, getenv func(string) string, stderr io.Writer) (*bench, error) {
	b := &bench{f: f, binary: f.ServeBinary}
	b.phases, _ = parsePhases(f.Only, f.Idle) // checked by complete
	b.progress = func(format string, a ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", a...) }
	var err error
	if b.concurrency, b.checkInterval, err = serviceWorkerSettings(getenv); err != nil {
		return nil, err
	}
	if b.dir, err = os.MkdirTemp("", "boomerang-bench-"); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if b.rs, err = openBenchRedis(ctx, f, b.dir); err != nil {
		b.close()
		return nil, err
	}
	b.progress("redis %s (%s); %s", b.rs.version, b.rs.mode, b.rs.describeDBs())
	if b.binary == "" && (b.phases.service() || b.phases.external) {
		b.progress("building %s", servicePackage)
		if b.binary, err = buildService(ctx, b.dir); err != nil {
			b.close()
			return nil, err
		}
	}
	return b, nil
}

func (b *bench) close() {
	if b.rs != nil {
		b.rs.close()
	}
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// run is one run of every phase asked for.
func (b *bench) run(ctx context.Context, n int) (r runResult, err error) {
	r.Run = n
	if b.phases.ceiling {
		if r.Ceiling, err = ceilingPhase(ctx, b.rs, b.concurrency, b.checkInterval, b.f.Submitters, b.f.Jobs); err != nil {
			return r, fmt.Errorf("ceiling: %w", err)
		}
		c := r.Ceiling
		b.progress("  ceiling: %d no-op tasks on %d queue(s) in %.2fs = %.0f tasks/s (enqueue %.0f/s); %.1f redis calls per task; CPU s redis %.1f bench %.1f other %.1f",
			c.Tasks, c.Queues, c.Seconds, c.TasksPerSec, c.EnqueuePerSec, c.RedisCallsPerTask["total"], c.CPU.RedisSec, c.CPU.BenchSec, c.CPU.OtherSec)
	}
	// Right after the ceiling and before the throughput phase that it is
	// compared with, so that both see the machine as alike as can be.
	if b.phases.external {
		ext, err := b.externalPhase(ctx)
		if err != nil {
			return r, fmt.Errorf("external: %w", err)
		}
		r.External = &ext
	}
	if b.phases.service() {
		if err := b.servicePhases(ctx, &r, n == 1 && b.f.CPUProfile != ""); err != nil {
			return r, err
		}
	}
	if x := r.External; x != nil { // the run's correctness counts cover every phase
		r.SignatureFailures += x.SignatureFailures
		r.DuplicateWebhooks += x.DuplicateWebhooks
		r.MalformedWebhooks += x.MalformedWebhooks
		r.LostWebhooks += x.Missing
		r.NotAccepted += x.Non202 + x.SubmitErrors
	}
	if r.External != nil && b.phases.throughput {
		r.ExternalRatio = ratio(r.External.JobsPerSec, r.Throughput.DeliveredPerSec)
		r.ExternalRedisCallsRatio = ratio(r.External.RedisCallsPerJob["total"], r.Throughput.RedisCallsPerJob["total"])
		b.progress("  external / throughput: jobs/s %.3f, redis calls per job %.3f", r.ExternalRatio, r.ExternalRedisCallsRatio)
	}
	if b.phases.idle {
		embedded, err := b.idleEmbedded(ctx)
		if err != nil {
			return r, fmt.Errorf("idle embedded service: %w", err)
		}
		r.Idle.Embedded = &embedded
	}
	return r, nil
}

// servicePhases starts the service on a freshly flushed database and runs
// the phases that need it: throughput, latency, idle.
func (b *bench) servicePhases(ctx context.Context, r *runResult, profile bool) error {
	if err := b.rs.flushService(ctx); err != nil {
		return fmt.Errorf("flush service db: %w", err)
	}
	svc, err := startService(ctx, b.binary, b.rs.serviceEnv())
	if err != nil {
		return err
	}
	defer func() {
		svc.stop()
		r.ServiceLog = svc.log()
	}()
	if b.phases.load() {
		if err := b.loadPhases(ctx, r, svc, profile); err != nil {
			return err
		}
	}
	if b.phases.idle {
		idle, err := b.idlePhase(ctx, svc)
		if err != nil {
			return fmt.Errorf("idle: %w", err)
		}
		r.Idle = &idle
	}
	r.MasterKeysAfter = b.rs.nodeKeys(ctx)
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

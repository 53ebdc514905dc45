package main

// Results: what one run measured, medians over runs, the checks against the
// targets, the table on stdout and the JSON file.

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

type benchResults struct {
	StartedAt  time.Time          `json:"startedAt"`
	FinishedAt time.Time          `json:"finishedAt"`
	Command    string             `json:"command"`
	Flags      benchFlags         `json:"flags"`
	Phases     []string           `json:"phases"`
	Machine    machine            `json:"machine"`
	Service    serviceSettings    `json:"service"`
	Runs       []runResult        `json:"runs"`
	Median     map[string]float64 `json:"median"`
	Checks     []check            `json:"checks"`
}

type machine struct {
	NumCPU       int      `json:"numCpu"`
	CPUModel     string   `json:"cpuModel,omitempty"`
	GOOS         string   `json:"goos"`
	GOARCH       string   `json:"goarch"`
	GoVersion    string   `json:"goVersion"`
	RedisVersion string   `json:"redisVersion"`
	RedisMode    string   `json:"redisMode"`    // "private redis-server", "external" or a private cluster
	RedisMasters []string `json:"redisMasters"` // the order of every masterOpsPerSec and masterKeysAfter
}

type serviceSettings struct {
	Concurrency         int               `json:"concurrency"`
	TaskCheckIntervalMs float64           `json:"taskCheckIntervalMs"`
	Env                 map[string]string `json:"passThroughEnv"`
	Defaults            map[string]string `json:"benchDefaultEnv"` // applied where Env has no value
}

type runResult struct {
	Run      int             `json:"run"`
	Ceiling  ceilingResult   `json:"ceiling"`
	External *externalResult `json:"external,omitempty"`
	// ExternalRatio is external.jobsPerSec / throughput.deliveredPerSec,
	// ExternalRedisCallsRatio external.redisCallsPerJob.total /
	// throughput.redisCallsPerJob.total: external workers against echo
	// jobs run inside the service.
	ExternalRatio           float64          `json:"externalRatio,omitempty"`
	ExternalRedisCallsRatio float64          `json:"externalRedisCallsRatio,omitempty"`
	Throughput              throughputResult `json:"throughput"`
	// Ratio is throughput.deliveredPerSec / ceiling.tasksPerSec.
	Ratio float64 `json:"ratio"`
	// RedisCallsRatio is throughput.redisCallsPerJob.total /
	// ceiling.redisCallsPerTask.total.
	RedisCallsRatio float64       `json:"redisCallsRatio"`
	Latency         latencyResult `json:"latency"`
	Idle            *idleResult   `json:"idle,omitempty"`
	RSS             rssResult     `json:"serviceRss"`
	Redis           redisResult   `json:"redis"`
	MasterKeysAfter []int64       `json:"masterKeysAfter,omitempty"` // the service's keys per master at the end
	// The correctness counts of every phase that ran, external included.
	SignatureFailures int64      `json:"signatureFailures"`
	DuplicateWebhooks int64      `json:"duplicateWebhooks"`
	MalformedWebhooks int64      `json:"malformedWebhooks"`
	LostWebhooks      int        `json:"lostWebhooks"`
	NotAccepted       int        `json:"notAccepted"`
	ServiceLog        serviceLog `json:"serviceLog"`
	CPUProfile        string     `json:"cpuProfile,omitempty"`
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

type check struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	OK     bool    `json:"ok"`
}

func (b *bench) newResults(args []string) benchResults {
	f := b.f
	f.RedisURL = redactURL(f.RedisURL)
	return benchResults{
		StartedAt: time.Now().UTC(),
		Command:   "boomerang-bench " + strings.Join(args, " "),
		Flags:     f,
		Phases:    b.phases.names(),
		Machine:   machineInfo(b.rs),
		Service: serviceSettings{Concurrency: b.concurrency, TaskCheckIntervalMs: ms(b.checkInterval),
			Env: passThroughEnv(true), Defaults: benchDefaultEnv()},
	}
}

func machineInfo(rs *benchRedis) machine {
	m := machine{NumCPU: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version(),
		RedisVersion: rs.version, RedisMode: rs.mode, RedisMasters: rs.addrs()}
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

func writeJSON(file string, res benchResults) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(raw, '\n'), 0o644)
}

// ---------------------------------------------------------------- metrics

// metrics flattens a run into named numbers, those of the phases that ran;
// medians and checks use them.
func (r runResult) metrics(ph phaseSet) map[string]float64 {
	m := map[string]float64{}
	if ph.ceiling {
		maps.Copy(m, r.ceilingMetrics())
	}
	if ph.throughput {
		maps.Copy(m, r.throughputMetrics())
	}
	if ph.ceiling && ph.throughput {
		m["ratio"], m["redisCallsRatio"] = r.Ratio, r.RedisCallsRatio
	}
	if ph.latency {
		maps.Copy(m, r.latencyMetrics())
	}
	if r.External != nil {
		maps.Copy(m, r.External.metrics())
		if ph.throughput {
			m["externalRatio"], m["externalRedisCallsRatio"] = r.ExternalRatio, r.ExternalRedisCallsRatio
		}
	}
	if ph.load() {
		maps.Copy(m, r.loadMetrics())
	}
	if r.Idle != nil {
		maps.Copy(m, r.Idle.metrics())
	}
	return m
}

func (r runResult) ceilingMetrics() map[string]float64 {
	return map[string]float64{
		"ceilingTasksPerSec":         r.Ceiling.TasksPerSec,
		"ceilingEnqueuePerSec":       r.Ceiling.EnqueuePerSec,
		"ceilingRedisCallsPerTask":   r.Ceiling.RedisCallsPerTask["total"],
		"ceilingRedisEvalshaPerTask": r.Ceiling.RedisCallsPerTask["evalsha"],
		"ceilingCpuOtherSec":         r.Ceiling.CPU.OtherSec,
		"ceilingRedisReadsPerTask":   r.Ceiling.RedisReadsPerTask,
		"ceilingCpuRedisUsPerTask":   usPer(r.Ceiling.CPU.RedisSec, r.Ceiling.Tasks),
		"ceilingCpuBenchUsPerTask":   usPer(r.Ceiling.CPU.BenchSec, r.Ceiling.Tasks),
	}
}

func (r runResult) throughputMetrics() map[string]float64 {
	t := r.Throughput
	return map[string]float64{
		"submitPerSec":            t.SubmitPerSec,
		"deliveredPerSec":         t.DeliveredPerSec,
		"drainPerSec":             t.DrainPerSec,
		"redisCallsPerJob":        t.RedisCallsPerJob["total"],
		"redisEvalshaPerJob":      t.RedisCallsPerJob["evalsha"],
		"redisReadsPerJob":        t.RedisReadsPerJob,
		"throughputSubmitP50Ms":   t.SubmitMs.P50,
		"throughputSubmitP99Ms":   t.SubmitMs.P99,
		"throughputCpuServiceSec": t.CPU.ServiceSec,
		"throughputCpuRedisSec":   t.CPU.RedisSec,
		"throughputCpuBenchSec":   t.CPU.BenchSec,
		"throughputWallSec":       t.CPU.WallSec,
		"throughputCpuOtherSec":   t.CPU.OtherSec,
		// CPU per job is steadier than jobs/s on a shared machine: what
		// other processes take shows as less wall time, not as more CPU.
		"throughputCpuServiceUsPerJob": usPer(t.CPU.ServiceSec, t.Delivered),
		"throughputCpuRedisUsPerJob":   usPer(t.CPU.RedisSec, t.Delivered),
		"throughputCpuBenchUsPerJob":   usPer(t.CPU.BenchSec, t.Delivered),
	}
}

// usPer is CPU seconds per item, in microseconds.
func usPer(sec float64, n int) float64 {
	if n <= 0 {
		return 0
	}
	return sec * 1e6 / float64(n)
}

func (r runResult) latencyMetrics() map[string]float64 {
	l := r.Latency
	return map[string]float64{
		"latencySubmitToWebhookP50Ms":     l.SubmitToWebhookMs.P50,
		"latencySubmitToWebhookP90Ms":     l.SubmitToWebhookMs.P90,
		"latencySubmitToWebhookP99Ms":     l.SubmitToWebhookMs.P99,
		"latencySubmitToWebhookMaxMs":     l.SubmitToWebhookMs.Max,
		"latencyCompletionToWebhookP50Ms": l.CompletionToWebhook.P50,
		"latencyCompletionToWebhookP90Ms": l.CompletionToWebhook.P90,
		"latencyCompletionToWebhookP99Ms": l.CompletionToWebhook.P99,
		"latencyCompletionToWebhookMaxMs": l.CompletionToWebhook.Max,
		"latencySubmitRequestP50Ms":       l.SubmitMs.P50,
		"latencySubmitRequestP99Ms":       l.SubmitMs.P99,
	}
}

func (x externalResult) metrics() map[string]float64 {
	return map[string]float64{
		"externalJobsPerSec":               x.JobsPerSec,
		"externalClaimsPerSec":             x.ClaimsPerSec,
		"externalSubmitPerSec":             x.SubmitPerSec,
		"externalRedisCallsPerJob":         x.RedisCallsPerJob["total"],
		"externalClaimLatencyP50Ms":        x.ClaimLatencyMs.P50,
		"externalClaimLatencyP90Ms":        x.ClaimLatencyMs.P90,
		"externalClaimLatencyP99Ms":        x.ClaimLatencyMs.P99,
		"externalClaimLatencyMaxMs":        x.ClaimLatencyMs.Max,
		"externalClaimRequestP50Ms":        x.ClaimRequestMs.P50,
		"externalClaimRequestP99Ms":        x.ClaimRequestMs.P99,
		"externalCompleteRequestP50Ms":     x.CompleteRequestMs.P50,
		"externalCompleteRequestP99Ms":     x.CompleteRequestMs.P99,
		"externalCompletionToWebhookP50Ms": x.CompletionToWebhookMs.P50,
		"externalCompletionToWebhookP99Ms": x.CompletionToWebhookMs.P99,
		"externalSubmitP50Ms":              x.SubmitMs.P50,
		"externalSubmitP99Ms":              x.SubmitMs.P99,
		"externalEmptyClaims":              float64(x.EmptyClaims),
		"externalCpuServiceSec":            x.CPU.ServiceSec,
		"externalCpuRedisSec":              x.CPU.RedisSec,
		"externalCpuBenchSec":              x.CPU.BenchSec,
		"externalWallSec":                  x.CPU.WallSec,
		"externalCpuOtherSec":              x.CPU.OtherSec,
	}
}

func (r runResult) loadMetrics() map[string]float64 {
	return map[string]float64{
		"serviceRssPeakMiB": r.RSS.PeakMiB,
		"serviceRssHwmMiB":  r.RSS.HWMMiB,
		"redisBytesPerJob":  r.Redis.BytesPerJob,
		"redisKeysPerJob":   r.Redis.KeysPerJob,
		"signatureFailures": float64(r.SignatureFailures),
		"lostWebhooks":      float64(r.LostWebhooks),
		"notAccepted":       float64(r.NotAccepted),
	}
}

func (i idleResult) metrics() map[string]float64 {
	m := map[string]float64{
		"idleServiceCpuPct":       i.Service.Pct,
		"idleServiceCpuSecPerMin": i.Service.SecPerMin,
		"idleRedisCpuPct":         i.Redis.Pct,
		"idleRedisCpuSecPerMin":   i.Redis.SecPerMin,
		"idleRedisCmdsPerSec":     i.RedisCmdsPerSec,
	}
	if i.Embedded != nil {
		m["idleEmbeddedCpuPct"], m["idleEmbeddedCpuSecPerMin"] = i.Embedded.Pct, i.Embedded.SecPerMin
	}
	return m
}

func medians(runs []runResult, ph phaseSet) map[string]float64 {
	return medianByKey(runs, func(r runResult) map[string]float64 { return r.metrics(ph) })
}

// medianByKey is, for each key of the maps pick returns, the median of its
// values over the runs that have it.
func medianByKey(runs []runResult, pick func(runResult) map[string]float64) map[string]float64 {
	all := map[string][]float64{}
	for _, r := range runs {
		for k, v := range pick(r) {
			all[k] = append(all[k], v)
		}
	}
	out := map[string]float64{}
	for k, vs := range all {
		out[k] = median(vs)
	}
	return out
}

// medianByIndex is, for each index of the slices pick returns, the median.
func medianByIndex(runs []runResult, pick func(runResult) []float64) []float64 {
	var all [][]float64
	for _, r := range runs {
		for i, v := range pick(r) {
			if i == len(all) {
				all = append(all, nil)
			}
			all[i] = append(all[i], v)
		}
	}
	out := make([]float64, len(all))
	for i, vs := range all {
		out[i] = median(vs)
	}
	return out
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ---------------------------------------------------------------- checks

// checks compares the medians with the targets; correctness counts (lost
// webhooks, bad signatures, refused submissions) are summed over all runs.
func checks(m map[string]float64, runs []runResult, ph phaseSet) []check {
	var cs []check
	if ph.ceiling && ph.throughput {
		cs = append(cs, check{"throughput / ceiling", m["ratio"], fmt.Sprintf("≥ %.2f", targetRatio), m["ratio"] >= targetRatio})
	}
	if ph.latency {
		cs = append(cs, atMost("submit→webhook p50 ms", m["latencySubmitToWebhookP50Ms"], targetP50Ms, false),
			atMost("submit→webhook p99 ms", m["latencySubmitToWebhookP99Ms"], targetP99Ms, false))
	}
	if ph.load() {
		cs = append(cs, atMost("service RSS peak MiB", m["serviceRssPeakMiB"], targetRSSMiB, true),
			atMost("redis bytes per retained job", m["redisBytesPerJob"], targetBytesPerJob, true))
	}
	if ph.ceiling && ph.throughput {
		cs = append(cs, atMost("redis calls per job / per task", m["redisCallsRatio"], targetCallsRatio, true))
	}
	if ph.idle {
		cs = append(cs, atMost("idle service CPU %", m["idleServiceCpuPct"], targetIdleServicePct, false),
			atMost("idle redis-server CPU %", m["idleRedisCpuPct"], targetIdleRedisPct, false),
			atMost("idle embedded service CPU %", m["idleEmbeddedCpuPct"], targetIdleEmbeddedPct, false))
	}
	if ph.load() || ph.external {
		cs = append(cs, correctness(runs)...)
	}
	if ph.external {
		var wrong float64
		for _, r := range runs {
			if r.External != nil {
				wrong += float64(r.External.ClaimedTwice + r.External.Unclaimed)
			}
		}
		cs = append(cs, check{"external jobs claimed twice or never (all runs)", wrong, "= 0", wrong == 0})
	}
	return cs
}

// atMost checks v ≤ limit; positive also requires v > 0 (0 means not measured).
func atMost(metric string, v, limit float64, positive bool) check {
	return check{metric, v, "≤ " + strconv.FormatFloat(limit, 'f', -1, 64), v <= limit && (!positive || v > 0)}
}

func correctness(runs []runResult) []check {
	var sig, lost, refused float64
	for _, r := range runs {
		sig += float64(r.SignatureFailures)
		lost += float64(r.LostWebhooks)
		refused += float64(r.NotAccepted)
	}
	return []check{
		{"signature failures (all runs)", sig, "= 0", sig == 0},
		{"lost webhooks (all runs)", lost, "= 0", lost == 0},
		{"submissions not accepted (all runs)", refused, "= 0", refused == 0},
	}
}

// ---------------------------------------------------------------- table

// table prints rows of metric, value, target and whether it is met.
type table struct {
	tw     *tabwriter.Writer
	checks map[string]check
}

func (t table) row(name, value, target, ok string) {
	fmt.Fprintf(t.tw, "%s\t%s\t%s\t%s\n", name, value, target, ok)
}

// checked prints a row whose target and verdict come from check name;
// unit follows the target.
func (t table) checked(label, value, name, unit string) {
	c, ok := t.checks[name]
	if !ok {
		t.row(label, value, "", "")
		return
	}
	t.row(label, value, c.Target+unit, verdict(c.OK))
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "NOT OK"
}

func printTable(w io.Writer, res benchResults, ph phaseSet) {
	printHeader(w, res)
	t := table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0), checks: map[string]check{}}
	for _, c := range res.Checks {
		t.checks[c.Metric] = c
	}
	t.row("metric", "value", "target", "ok?")
	t.row("------", "-----", "------", "---")
	m := res.Median
	if ph.ceiling || ph.throughput {
		t.throughputRows(m, ph)
	}
	if ph.external {
		t.externalRows(m, res.Flags.Workers, ph)
	}
	if ph.latency {
		t.latencyRows(m, res.Flags.Rate)
	}
	if ph.load() {
		t.checked("service RSS peak", fmt.Sprintf("%.1f MiB", m["serviceRssPeakMiB"]), "service RSS peak MiB", " MiB")
		t.checked("redis per retained job", fmt.Sprintf("%.0f B (%.1f keys)", m["redisBytesPerJob"], m["redisKeysPerJob"]), "redis bytes per retained job", " B")
	}
	t.callRows(m, ph)
	if ph.idle {
		t.idleRows(m)
	}
	if ph.load() || ph.external {
		for _, name := range []string{"signature failures (all runs)", "lost webhooks (all runs)", "submissions not accepted (all runs)"} {
			t.checked(name, fmt.Sprintf("%.0f", t.checks[name].Value), name, "")
		}
	}
	if ph.external {
		name := "external jobs claimed twice or never (all runs)"
		t.checked(name, fmt.Sprintf("%.0f", t.checks[name].Value), name, "")
	}
	if ph.throughput {
		t.row("CPU s in throughput phase: service / redis / bench / other", fmt.Sprintf("%.1f / %.1f / %.1f / %.1f of %.1f s wall × %d CPUs",
			m["throughputCpuServiceSec"], m["throughputCpuRedisSec"], m["throughputCpuBenchSec"], m["throughputCpuOtherSec"], m["throughputWallSec"], res.Machine.NumCPU), "", "")
		t.row("CPU µs per job: service / redis / bench", fmt.Sprintf("%.0f / %.0f / %.0f", m["throughputCpuServiceUsPerJob"],
			m["throughputCpuRedisUsPerJob"], m["throughputCpuBenchUsPerJob"]), "", "")
	}
	if ph.ceiling {
		t.row("CPU µs per no-op task (ceiling): redis / bench", fmt.Sprintf("%.0f / %.0f", m["ceilingCpuRedisUsPerTask"],
			m["ceilingCpuBenchUsPerTask"]), "", "")
	}
	if ph.ceiling && ph.throughput {
		// What each system spends on one unit of work: the service and its
		// Redis per job, against asynq (its client and server run in the
		// bench) and its Redis per task. The load generator and receiver are
		// not part of either.
		job := m["throughputCpuServiceUsPerJob"] + m["throughputCpuRedisUsPerJob"]
		task := m["ceilingCpuRedisUsPerTask"] + m["ceilingCpuBenchUsPerTask"]
		t.row("CPU per job (service + redis) / per no-op task (asynq + redis)", fmt.Sprintf("%.2f (%.0f / %.0f µs)", ratio(job, task), job, task), "", "")
	}
	if ph.external {
		t.row("CPU s in external phase: service / redis / bench / other", fmt.Sprintf("%.1f / %.1f / %.1f / %.1f of %.1f s wall × %d CPUs",
			m["externalCpuServiceSec"], m["externalCpuRedisSec"], m["externalCpuBenchSec"], m["externalCpuOtherSec"], m["externalWallSec"], res.Machine.NumCPU), "", "")
	}
	t.tw.Flush()
	printCommands(w, res.Runs, ph)
	printMasters(w, res)
	printRuns(w, res.Runs, ph)
	printRatio(w, m, len(res.Runs), ph)
}

func printHeader(w io.Writer, res benchResults) {
	what := "median of " + strconv.Itoa(len(res.Runs)) + " runs"
	if len(res.Runs) == 1 {
		what = "1 run"
	}
	f := res.Flags
	fmt.Fprintf(w, "\nboomerang-bench (%s): %d jobs by %d submitters; %d external workers; latency at %g jobs/s for %s; idle %s; concurrency %d; %s\n",
		strings.Join(res.Phases, ", "), f.Jobs, f.Submitters, f.Workers, f.Rate, f.DurationStr, f.IdleStr, res.Service.Concurrency, what)
	fmt.Fprintf(w, "machine: %d CPUs %s/%s, %s, redis %s (%s)\n\n", res.Machine.NumCPU, res.Machine.GOOS, res.Machine.GOARCH,
		res.Machine.GoVersion, res.Machine.RedisVersion, res.Machine.RedisMode)
}

func (t table) throughputRows(m map[string]float64, ph phaseSet) {
	ceil := m["ceilingTasksPerSec"]
	if ph.ceiling {
		t.row("asynq ceiling, no-op tasks/s (enqueue+process)", fmt.Sprintf("%.0f", ceil), "", "")
	}
	if !ph.throughput {
		return
	}
	t.row("submit rate, 202/s", fmt.Sprintf("%.0f", m["submitPerSec"]), "", "")
	if !ph.ceiling {
		t.row("throughput, completed+delivered jobs/s", fmt.Sprintf("%.0f", m["deliveredPerSec"]), "", "")
		return
	}
	t.row("throughput, completed+delivered jobs/s", fmt.Sprintf("%.0f", m["deliveredPerSec"]),
		fmt.Sprintf("≥ %.0f (%.0f%% of ceiling)", ceil*targetRatio, targetRatio*100), verdict(t.checks["throughput / ceiling"].OK))
	t.checked("RATIO throughput / ceiling", fmt.Sprintf("%.3f", m["ratio"]), "throughput / ceiling", "")
}

func (t table) externalRows(m map[string]float64, workers int, ph phaseSet) {
	t.row(fmt.Sprintf("external: jobs/s, %d workers claim+complete over HTTP, delivered", workers), fmt.Sprintf("%.0f", m["externalJobsPerSec"]), "", "")
	t.row("external: claims/s (first submit → last claim)", fmt.Sprintf("%.0f", m["externalClaimsPerSec"]), "", "")
	t.row("external: submit rate, 202/s", fmt.Sprintf("%.0f", m["externalSubmitPerSec"]), "", "")
	t.row("external: claim latency p50 / p99 (202 → claim 200)", fmtMs(m["externalClaimLatencyP50Ms"])+" / "+fmtMs(m["externalClaimLatencyP99Ms"]), "", "")
	t.row("external: claim latency max", fmtMs(m["externalClaimLatencyMaxMs"]), "", "")
	t.row("external: claim round trip p50 / p99 (with a job, wait included)", fmtMs(m["externalClaimRequestP50Ms"])+" / "+fmtMs(m["externalClaimRequestP99Ms"]), "", "")
	t.row("external: complete request p50 / p99", fmtMs(m["externalCompleteRequestP50Ms"])+" / "+fmtMs(m["externalCompleteRequestP99Ms"]), "", "")
	t.row("external: completion→webhook p50 / p99", fmtMs(m["externalCompletionToWebhookP50Ms"])+" / "+fmtMs(m["externalCompletionToWebhookP99Ms"]), "", "")
	t.row("external: redis calls per job (INFO commandstats)", fmt.Sprintf("%.1f", m["externalRedisCallsPerJob"]), "", "")
	if ph.throughput {
		t.row("external / throughput: jobs/s", fmt.Sprintf("%.3f", m["externalRatio"]), "", "")
		t.row("external / throughput: redis calls per job", fmt.Sprintf("%.3f", m["externalRedisCallsRatio"]), "", "")
	}
}

func (t table) latencyRows(m map[string]float64, rate float64) {
	t.checked(fmt.Sprintf("submit→webhook p50 at %g/s", rate), fmtMs(m["latencySubmitToWebhookP50Ms"]), "submit→webhook p50 ms", " ms")
	t.row("submit→webhook p90", fmtMs(m["latencySubmitToWebhookP90Ms"]), "", "")
	t.checked("submit→webhook p99", fmtMs(m["latencySubmitToWebhookP99Ms"]), "submit→webhook p99 ms", " ms")
	t.row("submit→webhook max", fmtMs(m["latencySubmitToWebhookMaxMs"]), "", "")
	t.row("completion→webhook p50 / p90", fmtMs(m["latencyCompletionToWebhookP50Ms"])+" / "+fmtMs(m["latencyCompletionToWebhookP90Ms"]), "", "")
	t.row("completion→webhook p99 / max", fmtMs(m["latencyCompletionToWebhookP99Ms"])+" / "+fmtMs(m["latencyCompletionToWebhookMaxMs"]), "", "")
}

func (t table) callRows(m map[string]float64, ph phaseSet) {
	if ph.ceiling {
		t.row("redis calls per no-op task (ceiling, INFO commandstats)", fmt.Sprintf("%.1f", m["ceilingRedisCallsPerTask"]), "", "")
	}
	if ph.throughput {
		t.row("redis calls per job (service, INFO commandstats)", fmt.Sprintf("%.1f", m["redisCallsPerJob"]), "", "")
	}
	if ph.ceiling {
		t.row("redis round trips per no-op task (INFO total_reads_processed)", fmt.Sprintf("%.2f", m["ceilingRedisReadsPerTask"]), "", "")
	}
	if ph.throughput {
		t.row("redis round trips per job (INFO total_reads_processed)", fmt.Sprintf("%.2f", m["redisReadsPerJob"]), "", "")
	}
	if ph.ceiling && ph.throughput {
		t.checked("redis calls per job / per task", fmt.Sprintf("%.2f", m["redisCallsRatio"]), "redis calls per job / per task", "")
	}
}

func (t table) idleRows(m map[string]float64) {
	pct := func(k string) string {
		return fmt.Sprintf("%.3f %% (%.3f CPU-s/min)", m[k+"CpuPct"], m[k+"CpuSecPerMin"])
	}
	t.checked("idle service CPU, % of one core", pct("idleService"), "idle service CPU %", " %")
	t.checked("idle redis-server CPU, % of one core", pct("idleRedis"), "idle redis-server CPU %", " %")
	t.row("idle redis commands/s", fmt.Sprintf("%.1f", m["idleRedisCmdsPerSec"]), "", "")
	t.checked("idle embedded service CPU, % of one core", pct("idleEmbedded"), "idle embedded service CPU %", " %")
}

// printCommands lists Redis calls by command: per no-op task of the ceiling
// and per job of the service (medians), most frequent first.
func printCommands(w io.Writer, runs []runResult, ph phaseSet) {
	if !ph.ceiling && !ph.throughput && !ph.external {
		return
	}
	perTask := medianByKey(runs, func(r runResult) map[string]float64 { return r.Ceiling.RedisCallsPerTask })
	perJob := medianByKey(runs, func(r runResult) map[string]float64 { return r.Throughput.RedisCallsPerJob })
	perExt := medianByKey(runs, func(r runResult) map[string]float64 {
		if r.External == nil {
			return nil
		}
		return r.External.RedisCallsPerJob
	})
	names := slices.Collect(maps.Keys(perTask))
	for _, m := range []map[string]float64{perJob, perExt} {
		for k := range m {
			if !slices.Contains(names, k) {
				names = append(names, k)
			}
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(perJob[b]+perTask[b]+perExt[b], perJob[a]+perTask[a]+perExt[a]), cmp.Compare(a, b))
	})
	cell := func(on bool, v float64) string {
		if !on {
			return "-"
		}
		return fmt.Sprintf("%.2f", v)
	}
	fmt.Fprintln(w, "\nredis calls by command (INFO commandstats, scripts' commands included):")
	fmt.Fprintf(w, "  %-16s %14s %10s %16s\n", "command", "per no-op task", "per job", "per external job")
	for _, k := range names {
		fmt.Fprintf(w, "  %-16s %14s %10s %16s\n", k, cell(ph.ceiling, perTask[k]), cell(ph.throughput, perJob[k]), cell(ph.external, perExt[k]))
	}
}

// printMasters shows how the load spread over a cluster's masters.
func printMasters(w io.Writer, res benchResults) {
	if len(res.Machine.RedisMasters) < 2 {
		return
	}
	col := func(pick func(runResult) []float64) []float64 { return medianByIndex(res.Runs, pick) }
	ceil := col(func(r runResult) []float64 { return r.Ceiling.MasterOpsPerSec })
	thr := col(func(r runResult) []float64 { return r.Throughput.MasterOpsPerSec })
	lat := col(func(r runResult) []float64 { return r.Latency.MasterOpsPerSec })
	idle := col(func(r runResult) []float64 {
		if r.Idle == nil {
			return nil
		}
		return r.Idle.MasterOpsPerSec
	})
	keys := col(func(r runResult) []float64 {
		var out []float64
		for _, k := range r.MasterKeysAfter {
			out = append(out, float64(k))
		}
		return out
	})
	at := func(vs []float64, i int) string {
		if i >= len(vs) {
			return "-"
		}
		return fmt.Sprintf("%.0f", vs[i])
	}
	fmt.Fprintln(w, "\nper master: commands/s in each phase, and the service's keys at the end:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  master\tceiling\tthroughput\tlatency\tidle\tkeys\t")
	for i, addr := range res.Machine.RedisMasters {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t\n", addr, at(ceil, i), at(thr, i), at(lat, i), at(idle, i), at(keys, i))
	}
	tw.Flush()
}

func printRuns(w io.Writer, runs []runResult, ph phaseSet) {
	if len(runs) >= 2 && ph.external {
		fmt.Fprintln(w, "\nper run (external): jobs/s  claims/s  claim latency p50  p99  redis calls per job  ratios to throughput (jobs/s, calls)")
		for _, r := range runs {
			x := r.External
			fmt.Fprintf(w, "  run %d: %.0f  %.0f  %s  %s  %.1f  %.3f  %.3f\n", r.Run, x.JobsPerSec, x.ClaimsPerSec, fmtMs(x.ClaimLatencyMs.P50),
				fmtMs(x.ClaimLatencyMs.P99), x.RedisCallsPerJob["total"], r.ExternalRatio, r.ExternalRedisCallsRatio)
		}
	}
	if len(runs) < 2 || !ph.ceiling || !ph.throughput || !ph.latency {
		return
	}
	fmt.Fprintln(w, "\nper run: ceiling/s  throughput/s  ratio  p50  p99 (submit→webhook)  RSS MiB  B/job")
	for _, r := range runs {
		fmt.Fprintf(w, "  run %d: %.0f  %.0f  %.3f  %s  %s  %.1f  %.0f\n", r.Run, r.Ceiling.TasksPerSec, r.Throughput.DeliveredPerSec,
			r.Ratio, fmtMs(r.Latency.SubmitToWebhookMs.P50), fmtMs(r.Latency.SubmitToWebhookMs.P99), r.RSS.PeakMiB, r.Redis.BytesPerJob)
	}
}

func printRatio(w io.Writer, m map[string]float64, runs int, ph phaseSet) {
	if !ph.ceiling || !ph.throughput {
		return
	}
	ceil := m["ceilingTasksPerSec"]
	if runs == 1 {
		fmt.Fprintf(w, "\nTHROUGHPUT / ASYNQ CEILING = %.0f / %.0f = %.3f (target ≥ %.2f)\n", m["deliveredPerSec"], ceil, m["ratio"], targetRatio)
		return
	}
	fmt.Fprintf(w, "\nTHROUGHPUT / ASYNQ CEILING = %.3f, the median of the per-run ratios (target ≥ %.2f); the medians' ratio is %.0f / %.0f = %.3f\n",
		m["ratio"], targetRatio, m["deliveredPerSec"], ceil, m["deliveredPerSec"]/ceil)
}

// ---------------------------------------------------------------- numbers

func fmtMs(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + " ms" }

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

func secs(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// ratio is a / b to 3 decimals, or 0 without a b.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return math.Round(a/b*1000) / 1000
}

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

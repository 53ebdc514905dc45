package main

// The external phase (issue 10): jobs done by external workers over HTTP.
// A service with BOOMERANG_JOB_EXTERNAL=bench on a freshly flushed
// database; submitters as in the throughput phase (closed loop, --jobs by
// --submitters) and --workers goroutines that each loop claim → complete
// (result = the payload) until every webhook has reached the receiver.

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boomerang-dev/boomerang/apiclient"
	"github.com/boomerang-dev/boomerang/signing"
)

const (
	externalType  = "bench"          // the job type the workers claim
	externalWait  = time.Second      // each claim's waitSeconds
	externalLease = 60 * time.Second // each claim's leaseSeconds
)

type externalResult struct {
	Jobs         int     `json:"jobs"`
	Submitters   int     `json:"submitters"`
	Workers      int     `json:"workers"`
	Accepted     int     `json:"accepted"`
	Non202       int     `json:"non202"`
	SubmitErrors int     `json:"submitErrors"`
	SubmitPerSec float64 `json:"submitPerSec"`
	Delivered    int     `json:"delivered"`
	Missing      int     `json:"missing"`
	Seconds      float64 `json:"seconds"`    // first submit to last webhook
	JobsPerSec   float64 `json:"jobsPerSec"` // delivered / seconds
	// Claims are the claims answered 200 (a job), EmptyClaims those
	// answered 204 (the wait ended). ClaimsPerSec is Claims from the first
	// submit to the last claim answered with a job.
	Claims       int     `json:"claims"`
	EmptyClaims  int     `json:"emptyClaims"`
	ClaimsPerSec float64 `json:"claimsPerSec"`
	// ClaimedTwice counts the extra claims of jobs claimed more than once,
	// Unclaimed the accepted jobs no worker claimed: both must be 0.
	ClaimedTwice   int    `json:"claimedTwice"`
	Unclaimed      int    `json:"unclaimed"`
	ClaimErrors    int    `json:"claimErrors"`
	CompleteErrors int    `json:"completeErrors"`
	FirstError     string `json:"firstError,omitempty"`
	// ClaimLatencyMs is from the 202 of a job's submission, as the
	// submitter read it (the job is ready then), to the 200 of the claim
	// that carried it, as the worker read it. The job is ready a little
	// earlier (the 202 follows the script that lists it), so a waiting
	// worker may be answered first: ClaimedBefore202 counts those, whose
	// latencies are negative.
	ClaimLatencyMs   pcts `json:"claimLatencyMs"`
	ClaimedBefore202 int  `json:"claimedBefore202"`
	// One round trip of a claim that returned a job (its wait for one
	// included), of a complete, of a submission.
	ClaimRequestMs    pcts `json:"claimRequestMs"`
	CompleteRequestMs pcts `json:"completeRequestMs"`
	SubmitMs          pcts `json:"submitRequestMs"`
	// CompletionToWebhookMs is from completedAt in the webhook (the
	// service's clock at the complete) to the webhook's arrival.
	CompletionToWebhookMs pcts     `json:"completionToWebhookMs"`
	CPU                   cpuUsage `json:"cpu"`
	// RedisCallsPerJob is INFO commandstats' calls per accepted job during
	// the phase (idle claims, scripts' commands and the settle check
	// included), as in the throughput phase.
	RedisCallsPerJob  map[string]float64 `json:"redisCallsPerJob"`
	MasterOpsPerSec   []float64          `json:"masterOpsPerSec,omitempty"`
	SignatureFailures int64              `json:"signatureFailures"`
	DuplicateWebhooks int64              `json:"duplicateWebhooks"`
	MalformedWebhooks int64              `json:"malformedWebhooks"`
	ServiceLog        serviceLog         `json:"serviceLog"`
}

// externalPhase runs the phase on a service of its own, started like the
// others' plus BOOMERANG_JOB_EXTERNAL, with a new client, worker key and
// receiver.
func (b *bench) externalPhase(ctx context.Context) (res externalResult, err error) {
	if err := b.rs.flushService(ctx); err != nil {
		return res, fmt.Errorf("flush service db: %w", err)
	}
	svc, err := startService(ctx, b.binary, append(b.rs.serviceEnv(), externalEnv()))
	if err != nil {
		return res, err
	}
	defer func() {
		svc.stop()
		res.ServiceLog = svc.log()
	}()
	rcv, err := startReceiver()
	if err != nil {
		return res, err
	}
	defer rcv.close()
	hc := benchHTTPClient(b.f.Submitters + b.f.Workers)
	secret, apiKey, err := svc.createClient(ctx, hc)
	if err != nil {
		return res, err
	}
	if rcv.verifier, err = signing.NewVerifier(secret); err != nil {
		return res, err
	}
	workerKey, err := svc.createWorker(ctx, hc, externalType)
	if err != nil {
		return res, err
	}
	// apiclient bounds each call itself: its HTTP client has no timeout.
	wc, err := apiclient.New(svc.base, workerKey, apiclient.WithHTTPClient(&http.Client{Transport: hc.Transport}),
		apiclient.WithUserAgent("boomerang-bench"))
	if err != nil {
		return res, err
	}
	g := &loadGen{hc: hc, base: svc.base, apiKey: apiKey, admin: svc.admin, callback: rcv.url + "/hook", rcv: rcv, wait: b.f.Wait}
	cpu0, calls0, load0 := snapCPU(ctx, b.rs, svc.pid()), b.rs.commandCalls(ctx), b.rs.nodeLoad(ctx)
	var cpu1 cpuSnap
	if res, err = g.external(ctx, wc, b.f.Jobs, b.f.Submitters, b.f.Workers, func() { cpu1 = snapCPU(ctx, b.rs, svc.pid()) }); err != nil {
		return res, err
	}
	res.CPU = cpu1.since(cpu0)
	if err := g.settle(ctx); err != nil {
		b.progress("  %v", err)
	}
	res.RedisCallsPerJob = perJob(b.rs.commandCalls(ctx), calls0, res.Accepted)
	res.MasterOpsPerSec = b.rs.nodeLoad(ctx).opsPerSec(load0)
	res.SignatureFailures, res.DuplicateWebhooks, res.MalformedWebhooks = rcv.sigFailures.Load(), rcv.duplicates.Load(), rcv.malformed.Load()
	if err := svc.alive(); err != nil {
		return res, err
	}
	b.progress("  external: %d accepted at %.0f/s; %d workers claimed %d (%.0f/s) and %d delivered in %.2fs = %.0f jobs/s; "+
		"claim latency p50 %s p99 %s; missing %d, claimed twice %d, unclaimed %d; %.1f redis calls per job; CPU s service %.1f redis %.1f bench %.1f other %.1f",
		res.Accepted, res.SubmitPerSec, res.Workers, res.Claims, res.ClaimsPerSec, res.Delivered, res.Seconds, res.JobsPerSec,
		fmtMs(res.ClaimLatencyMs.P50), fmtMs(res.ClaimLatencyMs.P99), res.Missing, res.ClaimedTwice, res.Unclaimed,
		res.RedisCallsPerJob["total"], res.CPU.ServiceSec, res.CPU.RedisSec, res.CPU.BenchSec, res.CPU.OtherSec)
	return res, nil
}

// externalEnv declares the bench's type external, beside any external
// types of this process's environment (the last value of a variable wins).
func externalEnv() string {
	types := []string{externalType}
	for t := range strings.SplitSeq(passThroughEnv(false)["BOOMERANG_JOB_EXTERNAL"], ",") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	return "BOOMERANG_JOB_EXTERNAL=" + strings.Join(types, ",")
}

// external submits n jobs of the external type from submitters goroutines
// while workers goroutines claim and complete them, and waits for their
// webhooks; then it calls loaded (the end of the measured load) and stops
// the workers.
func (g *loadGen) external(ctx context.Context, wc *apiclient.Client, n, submitters, workers int, loaded func()) (externalResult, error) {
	res := externalResult{Jobs: n, Submitters: submitters, Workers: workers}
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"type":%q,"payload":{"n":%d},"callbackUrl":%q,"metadata":{"bench":"external"}}`, externalType, i, g.callback)
	}
	var stop atomic.Bool
	logs := make([]workerLog, workers)
	var wg sync.WaitGroup
	for i := range logs {
		wg.Go(func() { logs[i].work(ctx, wc, &stop) })
	}
	defer func() { stop.Store(true); wg.Wait() }()

	start := time.Now()
	subs := g.submitAll(ctx, bodies, submitters)
	submitted := time.Since(start)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	ids, took := g.tally(subs, &res.Accepted, &res.Non202, &res.SubmitErrors)
	res.SubmitPerSec, res.SubmitMs = perSec(res.Accepted, submitted), percentiles(took)
	got, err := g.awaitWebhooks(ctx, ids, 0)
	if err != nil {
		return res, err
	}
	loaded()
	stop.Store(true)
	wg.Wait()

	res.Delivered, res.Missing = len(got), len(ids)-len(got)
	if last, _ := lastArrival(got, start); !last.IsZero() {
		res.Seconds, res.JobsPerSec = secs(last.Sub(start)), perSec(len(got), last.Sub(start))
	}
	var sinceDone []time.Duration
	for _, rec := range got {
		if !rec.completedAt.IsZero() {
			sinceDone = append(sinceDone, rec.at.Sub(rec.completedAt))
		}
	}
	res.CompletionToWebhookMs = percentiles(sinceDone)
	res.tallyClaims(subs, logs, start)
	return res, nil
}

// tallyClaims counts the workers' claims against the accepted submissions:
// claim latency, and jobs claimed twice or never.
func (res *externalResult) tallyClaims(subs []submission, logs []workerLog, start time.Time) {
	first := map[string]time.Time{} // each job's first claim
	var lastClaim time.Time
	var claimTook, completeTook []time.Duration
	for _, l := range logs {
		res.EmptyClaims += l.empty
		res.ClaimErrors += l.claimErrors
		res.CompleteErrors += l.completeErrors
		res.FirstError = cmp.Or(res.FirstError, l.firstError)
		claimTook, completeTook = append(claimTook, l.claimTook...), append(completeTook, l.completeTook...)
		for _, c := range l.claims {
			res.Claims++
			if c.at.After(lastClaim) {
				lastClaim = c.at
			}
			t, ok := first[c.id]
			if ok {
				res.ClaimedTwice++
			}
			if !ok || c.at.Before(t) {
				first[c.id] = c.at
			}
		}
	}
	var latency []time.Duration
	for _, s := range subs {
		if s.id == "" || s.code != http.StatusAccepted {
			continue
		}
		at, ok := first[s.id]
		if !ok {
			res.Unclaimed++
			continue
		}
		d := at.Sub(s.start.Add(s.took))
		if d < 0 {
			res.ClaimedBefore202++
		}
		latency = append(latency, d)
	}
	res.ClaimLatencyMs, res.ClaimRequestMs, res.CompleteRequestMs = percentiles(latency), percentiles(claimTook), percentiles(completeTook)
	if !lastClaim.IsZero() {
		res.ClaimsPerSec = perSec(res.Claims, lastClaim.Sub(start))
	}
}

// workerLog is what one worker goroutine did; only it writes it.
type workerLog struct {
	claims                      []claimRec
	claimTook, completeTook     []time.Duration
	empty                       int
	claimErrors, completeErrors int
	firstError                  string
}

type claimRec struct {
	id string
	at time.Time // when the claim's 200 was read
}

// work claims and completes jobs, the payload as the result, until stop.
// A claim that fails is not retried at once, so that a refusal does not
// spin (the phase then ends with its jobs missing and the first error).
func (l *workerLog) work(ctx context.Context, wc *apiclient.Client, stop *atomic.Bool) {
	req := apiclient.ClaimRequest{Types: []string{externalType}, Wait: externalWait, Lease: externalLease}
	for !stop.Load() && ctx.Err() == nil {
		t0 := time.Now()
		c, ok, err := wc.Claim(ctx, req)
		at := time.Now()
		switch {
		case err != nil:
			l.claimErrors++
			l.noteError(err)
			_ = sleep(ctx, 100*time.Millisecond)
			continue
		case !ok:
			l.empty++
			continue
		}
		l.claims = append(l.claims, claimRec{id: c.RequestID, at: at})
		l.claimTook = append(l.claimTook, at.Sub(t0))
		if err := wc.Complete(ctx, c.RequestID, c.LeaseID, c.Payload); err != nil {
			l.completeErrors++
			l.noteError(err)
			continue
		}
		l.completeTook = append(l.completeTook, time.Since(at))
	}
}

func (l *workerLog) noteError(err error) {
	if l.firstError == "" {
		l.firstError = err.Error()
	}
}

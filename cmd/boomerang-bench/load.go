package main

// The load generator: the throughput phase (closed loop, as fast as
// possible) and the latency phase (open loop at a fixed rate), and what is
// measured around them.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boomerang-dev/boomerang/signing"
)

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
	// RedisReadsPerJob is Redis's socket reads (INFO stats
	// total_reads_processed) per accepted job: its round trips, however
	// many commands each carries.
	RedisReadsPerJob float64   `json:"redisReadsPerJob"`
	MasterOpsPerSec  []float64 `json:"masterOpsPerSec,omitempty"`
}

type latencyResult struct {
	Rate                float64   `json:"rate"`
	DurationSec         float64   `json:"durationSec"`
	Jobs                int       `json:"jobs"`
	Accepted            int       `json:"accepted"`
	Non202              int       `json:"non202"`
	SubmitErrors        int       `json:"submitErrors"`
	Delivered           int       `json:"delivered"`
	Missing             int       `json:"missing"`
	SendLagMaxMs        float64   `json:"sendLagMaxMs"` // how late the open-loop sender was at worst
	SubmitToWebhookMs   pcts      `json:"submitToWebhookMs"`
	CompletionToWebhook pcts      `json:"completionToWebhookMs"`
	SubmitMs            pcts      `json:"submitRequestMs"`
	MasterOpsPerSec     []float64 `json:"masterOpsPerSec,omitempty"`
}

// ---------------------------------------------------------------- phases

// loadPhases runs throughput and latency against svc with a new client and
// receiver, then accounts for memory and correctness.
func (b *bench) loadPhases(ctx context.Context, r *runResult, svc *benchService, profile bool) error {
	rcv, err := startReceiver()
	if err != nil {
		return err
	}
	defer rcv.close()
	hc := benchHTTPClient(b.f.Submitters)
	secret, apiKey, err := svc.createClient(ctx, hc)
	if err != nil {
		return err
	}
	if rcv.verifier, err = signing.NewVerifier(secret); err != nil {
		return err
	}
	r.RSS.IdleMiB = readRSSMiB(svc.pid(), "VmRSS:")
	memBefore, keysBefore := b.rs.usedMemory(ctx), b.rs.serviceKeys(ctx)
	rss := startRSSSampler(svc.pid())
	defer rss.stop()
	g := &loadGen{hc: hc, base: svc.base, apiKey: apiKey, admin: svc.admin, callback: rcv.url + "/hook", rcv: rcv, wait: b.f.Wait}
	if b.phases.throughput {
		if err := b.throughputStep(ctx, r, g, svc, profile); err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
	}
	if b.phases.latency {
		if err := b.latencyStep(ctx, r, g); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	// Everything is delivered (or given up on): the service records each
	// attempt just after the receiver answers, so wait for that too.
	if err := g.settle(ctx); err != nil {
		b.progress("  %v", err)
	}
	r.RSS.PeakMiB, r.RSS.Samples = rss.stop()
	r.RSS.HWMMiB = readRSSMiB(svc.pid(), "VmHWM:")
	b.redisAccount(ctx, r, memBefore, keysBefore)
	r.SignatureFailures, r.DuplicateWebhooks, r.MalformedWebhooks = rcv.sigFailures.Load(), rcv.duplicates.Load(), rcv.malformed.Load()
	r.LostWebhooks = r.Throughput.Missing + r.Latency.Missing
	r.NotAccepted = r.Throughput.Non202 + r.Throughput.SubmitErrors + r.Latency.Non202 + r.Latency.SubmitErrors
	return nil
}

func (b *bench) throughputStep(ctx context.Context, r *runResult, g *loadGen, svc *benchService, profile bool) error {
	var profDone chan error
	if profile {
		profDone = make(chan error, 2)
		go func() { profDone <- fetchProfile(ctx, svc.debug, "profile", b.f.ProfileSeconds, b.f.CPUProfile) }()
		go func() {
			profDone <- fetchProfile(ctx, svc.debug, "allocs", b.f.ProfileSeconds, b.f.CPUProfile+".allocs")
		}()
		r.CPUProfile = b.f.CPUProfile
	}
	cpu0, calls0, load0, reads0 := snapCPU(ctx, b.rs, svc.pid()), b.rs.commandCalls(ctx), b.rs.nodeLoad(ctx), b.rs.readEvents(ctx)
	var err error
	if r.Throughput, err = g.throughput(ctx, b.f.Jobs, b.f.Submitters, r.Run); err != nil {
		return err
	}
	t := &r.Throughput
	t.CPU = snapCPU(ctx, b.rs, svc.pid()).since(cpu0)
	if err := g.settle(ctx); err != nil {
		b.progress("  %v", err)
	}
	t.RedisCallsPerJob = perJob(b.rs.commandCalls(ctx), calls0, t.Accepted)
	t.RedisReadsPerJob = readsPer(b.rs.readEvents(ctx), reads0, t.Accepted)
	t.MasterOpsPerSec = b.rs.nodeLoad(ctx).opsPerSec(load0)
	r.Ratio = ratio(t.DeliveredPerSec, r.Ceiling.TasksPerSec)
	r.RedisCallsRatio = ratio(t.RedisCallsPerJob["total"], r.Ceiling.RedisCallsPerTask["total"])
	b.progress("  throughput: %d accepted at %.0f/s; %d delivered in %.2fs = %.0f/s (ratio %.3f); missing %d; %.1f redis calls per job; CPU s service %.1f redis %.1f bench %.1f other %.1f",
		t.Accepted, t.SubmitPerSec, t.Delivered, t.Seconds, t.DeliveredPerSec, r.Ratio, t.Missing, t.RedisCallsPerJob["total"],
		t.CPU.ServiceSec, t.CPU.RedisSec, t.CPU.BenchSec, t.CPU.OtherSec)
	if profDone != nil {
		for range 2 {
			if err := <-profDone; err != nil {
				b.progress("  profile: %v", err)
				r.CPUProfile = ""
			}
		}
	}
	return nil
}

func (b *bench) latencyStep(ctx context.Context, r *runResult, g *loadGen) error {
	load0 := b.rs.nodeLoad(ctx)
	var err error
	if r.Latency, err = g.latency(ctx, b.f.Rate, b.f.Duration, r.Run); err != nil {
		return err
	}
	l := &r.Latency
	l.MasterOpsPerSec = b.rs.nodeLoad(ctx).opsPerSec(load0)
	b.progress("  latency at %g/s: submit→webhook p50 %s p99 %s; completion→webhook p50 %s p99 %s; missing %d",
		b.f.Rate, fmtMs(l.SubmitToWebhookMs.P50), fmtMs(l.SubmitToWebhookMs.P99),
		fmtMs(l.CompletionToWebhook.P50), fmtMs(l.CompletionToWebhook.P99), l.Missing)
	return nil
}

// redisAccount fills in Redis memory and keys per retained job.
func (b *bench) redisAccount(ctx context.Context, r *runResult, memBefore, keysBefore int64) {
	m := &r.Redis
	m.UsedMemoryBefore, m.UsedMemoryAfter = memBefore, b.rs.usedMemory(ctx)
	m.KeysBefore, m.KeysAfter = keysBefore, b.rs.serviceKeys(ctx)
	m.JobsRetained = r.Throughput.Accepted + r.Latency.Accepted
	if m.JobsRetained > 0 && memBefore > 0 && m.UsedMemoryAfter > 0 {
		m.BytesPerJob = math.Round(float64(m.UsedMemoryAfter-memBefore)/float64(m.JobsRetained)*10) / 10
		m.KeysPerJob = math.Round(float64(m.KeysAfter-keysBefore)/float64(m.JobsRetained)*100) / 100
	}
	b.progress("  service RSS peak %.1f MiB; redis %.0f bytes per retained job", r.RSS.PeakMiB, m.BytesPerJob)
}

// ---------------------------------------------------------------- generator

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

// throughput submits n jobs from submitters goroutines as fast as the
// service answers, and waits for their webhooks.
func (g *loadGen) throughput(ctx context.Context, n, submitters, run int) (throughputResult, error) {
	res := throughputResult{Jobs: n, Submitters: submitters}
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = g.jobBody("throughput", run, i)
	}
	base := g.rcv.received.Load()
	start := time.Now()
	subs := g.submitAll(ctx, bodies, submitters)
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
	res.Delivered, res.Missing = len(got), len(ids)-len(got)
	last, after := lastArrival(got, start.Add(submitted))
	if !last.IsZero() {
		res.Seconds = secs(last.Sub(start))
		res.DeliveredPerSec = perSec(len(got), last.Sub(start))
		res.DrainPerSec = perSec(after, last.Sub(start.Add(submitted)))
	}
	return res, nil
}

// submitAll submits every body from submitters goroutines.
func (g *loadGen) submitAll(ctx context.Context, bodies [][]byte, submitters int) []submission {
	subs := make([]submission, len(bodies))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range submitters {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) || ctx.Err() != nil {
					return
				}
				subs[i] = g.submit(ctx, bodies[i])
			}
		})
	}
	wg.Wait()
	return subs
}

// lastArrival is the latest webhook's arrival, and how many arrived after t.
func lastArrival(got map[string]webhookRec, t time.Time) (last time.Time, after int) {
	for _, rec := range got {
		if rec.at.After(last) {
			last = rec.at
		}
		if rec.at.After(t) {
			after++
		}
	}
	return last, after
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
	base := g.rcv.received.Load()
	subs, lagMax, err := g.submitOpenLoop(ctx, n, time.Duration(float64(time.Second)/rate), run)
	if err != nil {
		return res, err
	}
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

// submitOpenLoop sends n submissions, one every period, each in its own
// goroutine; it returns them and how late the sender was at worst.
func (g *loadGen) submitOpenLoop(ctx context.Context, n int, period time.Duration, run int) ([]submission, time.Duration, error) {
	subs := make([]submission, n)
	var wg sync.WaitGroup
	defer wg.Wait()
	var lagMax time.Duration
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * period)
		if wait := time.Until(due); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, 0, ctx.Err()
			}
		}
		lagMax = max(lagMax, time.Since(due))
		body := g.jobBody("latency", run, i)
		wg.Go(func() { subs[i] = g.submit(ctx, body) })
	}
	wg.Wait()
	return subs, lagMax, nil
}

// settle waits until the service has no PENDING delivery left: it records
// each attempt just after the receiver's answer.
func (g *loadGen) settle(ctx context.Context) error {
	deadline := time.Now().Add(g.wait)
	for {
		if g.nonePending(ctx) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("deliveries still PENDING after %s", g.wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *loadGen) nonePending(ctx context.Context) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/admin/v1/deliveries?status=PENDING&limit=1", nil)
	req.Header.Set("Authorization", "Bearer "+g.admin)
	resp, err := g.hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var p struct {
		Data []json.RawMessage `json:"data"`
	}
	return json.NewDecoder(resp.Body).Decode(&p) == nil && resp.StatusCode == http.StatusOK && len(p.Data) == 0
}

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/boomerang-dev/boomerang/apiclient"
	"github.com/boomerang-dev/boomerang/strictjson"
	"github.com/cenkalti/backoff/v4"
)

const workHelp = `
COMMAND runs once per job, in a process group of its own:
  stdin    the job's payload (JSON)
  stdout   the result: JSON, or nothing for null
  stderr   lines "progress <0-100> <message>" report progress; the last 4 KiB
           become error.message if the job fails
  exit     0 completes the job; 75 fails it so that it may be retried; any
           other status fails it (error.code exit_<status>)
  env      BOOMERANG_JOB_ID, BOOMERANG_JOB_TYPE, BOOMERANG_JOB_ATTEMPT and
           BOOMERANG_JOB_DEADLINE; never the worker key
COMMAND gets SIGTERM (SIGKILL after --kill-grace) if the job is canceled or
expires, or its lease is lost. On SIGTERM, work stops claiming and waits up to
--grace for the running jobs.
`

// workConfig is what `boomerang work` was asked to do.
type workConfig struct {
	types       []string
	concurrency int
	lease       time.Duration // asked for at each claim; a heartbeat every third of it
	claimWait   time.Duration // long poll of each claim
	grace       time.Duration // on SIGTERM, how long running jobs may still take
	command     commandSpec   // env is the worker's; each job adds its own
}

// workCmd runs an external worker: COMMAND does each job of the given types,
// its payload on stdin, its result on stdout.
func workCmd(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("work", "work --type T [--concurrency N] [--lease 60s] [--grace 30s] -- COMMAND [ARGS...]", stderr)
	var types typesFlag
	fs.Var(&types, "type", "job `type` to claim (repeatable, or comma-separated)")
	concurrency := fs.Int("concurrency", 1, "jobs run at once")
	lease := fs.Duration("lease", time.Minute, "lease asked for each job (whole seconds); a heartbeat renews it every third of it")
	claimWait := fs.Duration("claim-wait", 30*time.Second, "how long each claim waits for a job (whole seconds; at most the server's BOOMERANG_WORKER_WAIT_MAX)")
	grace := fs.Duration("grace", 30*time.Second, "on SIGTERM, how long running jobs may still take; then they are killed and not reported, and the server gives them to another worker once their lease lapses")
	killGrace := fs.Duration("kill-grace", 10*time.Second, "between SIGTERM and SIGKILL when COMMAND must stop")
	maxResult := fs.Int("max-result", 1<<20-4<<10, "largest `bytes` of stdout taken as the result (the server's request limit, BOOMERANG_MAX_BODY_BYTES, is 1 MiB by default)")
	api := addAPIFlags(fs, "worker-key", "BOOMERANG_WORKER_KEY")
	usage := fs.Usage
	fs.Usage = func() { usage(); fmt.Fprint(fs.Output(), workHelp) }
	if err := fs.Parse(args); err != nil {
		return commandError("work", err)
	}
	cfg := workConfig{types: types, concurrency: *concurrency, lease: *lease, claimWait: *claimWait, grace: *grace,
		command: commandSpec{argv: fs.Args(), env: childEnv(os.Environ()), maxStdout: *maxResult, killGrace: *killGrace}}
	if err := cfg.check(); err != nil {
		return fmt.Errorf("work: %w", err)
	}
	path, err := exec.LookPath(cfg.command.argv[0])
	if err != nil {
		return fmt.Errorf("work: COMMAND: %w", err)
	}
	cfg.command.argv[0] = path
	c, base, err := api.client(getenv)
	if err != nil {
		return fmt.Errorf("work: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	log.Info("worker started", "url", base, "types", strings.Join(cfg.types, ","), "concurrency", cfg.concurrency, "command", strings.Join(fs.Args(), " "))
	return (&worker{api: c, cfg: cfg, log: log}).run(ctx)
}

func (c workConfig) check() error {
	var errs []error
	if len(c.types) == 0 {
		errs = append(errs, errors.New("--type is required"))
	}
	if c.concurrency < 1 {
		errs = append(errs, fmt.Errorf("--concurrency %d: want at least 1", c.concurrency))
	}
	if c.lease < time.Second {
		errs = append(errs, fmt.Errorf("--lease %s: want at least 1s", c.lease))
	}
	if c.grace < 0 || c.command.killGrace < 0 || c.claimWait < 0 {
		errs = append(errs, errors.New("--grace, --kill-grace and --claim-wait must not be negative"))
	}
	if c.command.maxStdout < 1 {
		errs = append(errs, errors.New("--max-result must be positive"))
	}
	if len(c.command.argv) == 0 {
		errs = append(errs, errors.New("no COMMAND: put it after --, e.g. boomerang work --type resize -- ./resize.sh"))
	}
	return errors.Join(errs...)
}

// typesFlag collects --type values.
type typesFlag []string

func (t *typesFlag) String() string { return strings.Join(*t, ",") }

func (t *typesFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*t = append(*t, part)
		}
	}
	return nil
}

// childEnv is the worker's environment without its credentials: COMMAND
// runs whatever a job says and has no use for them.
func childEnv(environ []string) []string {
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if name != "BOOMERANG_WORKER_KEY" && name != "BOOMERANG_API_KEY" && name != "BOOMERANG_ADMIN_TOKEN" {
			env = append(env, kv)
		}
	}
	return env
}

// worker claims jobs and runs COMMAND for each.
type worker struct {
	api *apiclient.Client
	cfg workConfig
	log *slog.Logger
}

// Why a job was dropped without being reported.
var (
	errShutdown = errors.New("the worker is shutting down and the grace period is over")
	errDeadline = errors.New("the job's deadline passed")
)

// run runs cfg.concurrency claim loops until ctx ends, then lets the running
// jobs finish for up to cfg.grace. It fails if the server refuses the claims
// (a wrong key, a type not allowed).
func (w *worker) run(ctx context.Context) error {
	claimCtx, stopClaims := context.WithCancelCause(ctx)
	defer stopClaims(nil)
	// Jobs outlive ctx: SIGTERM stops the claims, not the jobs running.
	jobsCtx, abandon := context.WithCancelCause(context.WithoutCancel(ctx))
	defer abandon(nil)

	var wg sync.WaitGroup
	var mu sync.Mutex
	var fatal error
	for range w.cfg.concurrency {
		wg.Go(func() {
			if err := w.claimLoop(claimCtx, jobsCtx); err != nil {
				mu.Lock()
				fatal = cmp.Or(fatal, err)
				mu.Unlock()
				stopClaims(err)
			}
		})
	}
	loopsDone := make(chan struct{})
	go func() { wg.Wait(); close(loopsDone) }()

	select {
	case <-loopsDone:
	case <-claimCtx.Done():
		w.log.Info("stopping: no more claims; running jobs may finish", "grace", w.cfg.grace.String())
		t := time.NewTimer(w.cfg.grace)
		defer t.Stop()
		select {
		case <-loopsDone:
		case <-t.C:
			abandon(errShutdown)
			<-loopsDone
		}
	}
	return fatal
}

// claimLoop claims a job, runs it, and again, until ctx ends. It returns an
// error only when claiming cannot succeed (401, 403, 422).
func (w *worker) claimLoop(ctx, jobsCtx context.Context) error {
	retry := backoff.NewExponentialBackOff()
	retry.MaxInterval = 30 * time.Second
	retry.MaxElapsedTime = 0 // keep trying: the server may be down for a while
	for ctx.Err() == nil {
		claim, ok, err := w.api.Claim(ctx, apiclient.ClaimRequest{Types: w.cfg.types, Wait: w.cfg.claimWait, Lease: w.cfg.lease})
		switch {
		case ctx.Err() != nil:
			return nil
		case refused(err):
			return err
		case err != nil:
			wait := retry.NextBackOff()
			w.log.Warn("claim failed; retrying", "error", err, "in", wait.Round(time.Millisecond).String())
			sleep(ctx, wait)
			continue
		}
		retry.Reset()
		if ok {
			w.runJob(jobsCtx, claim)
		}
	}
	return nil
}

// refused reports whether the server refused a call for a reason that
// repeating it will not change: of a claim, a wrong key or type; of a job's
// heartbeat or report, that the job is no longer this worker's (409
// lease-lost, job-canceled, job-expired).
func refused(err error) bool {
	var p *apiclient.Problem
	return errors.As(err, &p) && p.Status >= 400 && p.Status < 500 &&
		p.Status != http.StatusTooManyRequests && p.Status != http.StatusRequestTimeout
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// runJob runs COMMAND for one claimed job, heartbeating meanwhile, and
// reports how it ended, unless the job was taken away (canceled, expired,
// lease lost) or abandoned at shutdown: then COMMAND is killed and nothing
// is reported. It logs one line.
func (w *worker) runJob(ctx context.Context, c apiclient.Claim) {
	log := w.log.With("job", c.RequestID, "type", c.Type, "attempt", c.Attempt)
	ctx = apiclient.WithTraceParent(ctx, c.TraceParent) // heartbeats and reports in the job's trace
	jobCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if c.Deadline != nil {
		var cancel context.CancelFunc
		jobCtx, cancel = context.WithDeadlineCause(jobCtx, *c.Deadline, errDeadline)
		defer cancel()
	}

	progress := newProgressBox()
	hbCtx, stopHeartbeats := context.WithCancel(jobCtx)
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); w.heartbeat(hbCtx, c, progress, stop) }()

	spec := w.cfg.command
	spec.env = append(spec.env[:len(spec.env):len(spec.env)], jobEnv(c)...)
	o := runCommand(jobCtx, spec, c.Payload, progress.set)
	stopHeartbeats()
	<-hbDone

	took := o.duration.Round(time.Millisecond).String()
	if cause := context.Cause(jobCtx); cause != nil {
		log.Warn("job dropped: COMMAND killed, not reported", "reason", cause.Error(), "took", took)
		return
	}
	result, jobErr, retryable := judge(o)
	if jobErr == nil {
		err := w.api.Complete(ctx, c.RequestID, c.LeaseID, result)
		var p *apiclient.Problem
		if !errors.As(err, &p) || p.Status != http.StatusRequestEntityTooLarge && p.Status != http.StatusUnprocessableEntity {
			logReport(log, err, "job completed", "took", took, "resultBytes", len(result))
			return
		}
		// The server refuses the result itself: fail the job, rather than
		// let its lease lapse and have it run again to the same end.
		jobErr = &apiclient.JobError{Code: "invalid_result", Message: "the server refused the result: " + p.Error()}
		if p.Status == http.StatusRequestEntityTooLarge {
			jobErr.Code = "result_too_large"
		}
	}
	status, err := w.api.Fail(ctx, c.RequestID, c.LeaseID, *jobErr, retryable)
	logReport(log, err, "job failed", "code", jobErr.Code, "retryable", retryable, "status", string(status), "took", took)
}

// logReport logs the job's line: msg if the report got through, else why not.
func logReport(log *slog.Logger, err error, msg string, attrs ...any) {
	switch {
	case err == nil:
		log.Info(msg, attrs...)
	case refused(err):
		log.Warn("job dropped: the server no longer takes its report", append(attrs, "reason", err.Error())...)
	default:
		log.Error("job report failed; the lease will lapse and the job run again", append(attrs, "error", err.Error())...)
	}
}

// jobEnv tells COMMAND which job it runs.
func jobEnv(c apiclient.Claim) []string {
	env := []string{"BOOMERANG_JOB_ID=" + c.RequestID, "BOOMERANG_JOB_TYPE=" + c.Type,
		"BOOMERANG_JOB_ATTEMPT=" + strconv.Itoa(c.Attempt)}
	if c.Deadline != nil {
		env = append(env, "BOOMERANG_JOB_DEADLINE="+c.Deadline.Format(time.RFC3339))
	}
	if c.TraceParent != "" {
		env = append(env, "TRACEPARENT="+c.TraceParent) // the OpenTelemetry convention for a child process
	}
	return env
}

// judge turns how COMMAND ended into the job's result, or its error and
// whether another attempt may succeed.
func judge(o outcome) (result json.RawMessage, jobErr *apiclient.JobError, retryable bool) {
	fail := func(code, message string) *apiclient.JobError {
		return &apiclient.JobError{Code: code, Message: message}
	}
	orStatus := func(tail string) string { return cmp.Or(tail, o.describe()) }
	switch {
	case o.startErr != nil:
		return nil, fail("start_failed", o.describe()), true
	case o.signaled != "":
		return nil, fail("killed", strings.TrimSpace("COMMAND ended by "+o.signaled+"\n"+o.tail)), false
	case o.exitCode == 75: // EX_TEMPFAIL
		return nil, fail("exit_75", orStatus(o.tail)), true
	case o.exitCode != 0:
		return nil, fail("exit_"+strconv.Itoa(o.exitCode), orStatus(o.tail)), false
	case o.orphaned:
		return nil, fail("output_incomplete", "COMMAND exited, but a process it started kept stdout or stderr open; they were closed"), false
	case o.overflow:
		return nil, fail("result_too_large", fmt.Sprintf("stdout passed %d bytes", len(o.stdout))), false
	}
	out := []byte(strings.TrimSpace(string(o.stdout)))
	if len(out) == 0 {
		return json.RawMessage("null"), nil, false
	}
	if !json.Valid(out) {
		return nil, fail("invalid_result", "stdout is not JSON: "+clip(oneLine(string(out)), 200)), false
	}
	if err := strictjson.Check(out); err != nil { // what the server checks too
		return nil, fail("invalid_result", "stdout is not JSON that travels byte for byte: "+err.Error()), false
	}
	return out, nil, false
}

// heartbeat renews the lease every third of it and sends the latest
// progress. When the server says the job is no longer ours (canceled,
// expired, lease lost), or no heartbeat got through for a whole lease, it
// calls stop, which kills COMMAND.
func (w *worker) heartbeat(ctx context.Context, c apiclient.Claim, progress *progressBox, stop context.CancelCauseFunc) {
	// Counted on this machine's clock from the claim's answer: the server's
	// leaseExpiresAt would carry any clock skew between the two.
	expires := time.Now().Add(w.cfg.lease)
	t := time.NewTicker(w.cfg.lease / 3)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-progress.changed:
			// New progress goes out at once, at most once a second (the
			// server keeps no more than that anyway).
			if wait := time.Second - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		sent := time.Now()
		last = sent
		p, seq := progress.pending()
		hctx, cancel := context.WithDeadline(ctx, expires)
		_, err := w.api.Heartbeat(hctx, c.RequestID, c.LeaseID, p)
		cancel()
		switch {
		case err == nil:
			expires = sent.Add(w.cfg.lease)
			progress.sent(seq)
		case ctx.Err() != nil:
			return
		case refused(err): // 409 lease-lost, job-canceled, job-expired; or 404, 401...
			stop(fmt.Errorf("the server took the job back: %w", err))
			return
		case !time.Now().Before(expires):
			stop(fmt.Errorf("lease lapsed: no heartbeat got through for %s: %w", w.cfg.lease, err))
			return
		default:
			w.log.Warn("heartbeat failed; retrying", "job", c.RequestID, "error", err.Error())
		}
	}
}

// progressBox holds COMMAND's latest progress until a heartbeat carries it.
type progressBox struct {
	mu      sync.Mutex
	latest  *apiclient.Progress
	seq     int           // changes so far
	sentAt  int           // seq of the last one sent
	changed chan struct{} // signalled (buffer 1) by each change
}

func newProgressBox() *progressBox { return &progressBox{changed: make(chan struct{}, 1)} }

func (b *progressBox) set(percent float64, message string) {
	b.mu.Lock()
	b.latest = &apiclient.Progress{Percent: percent, Message: message}
	b.seq++
	b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// pending returns the progress not sent yet (nil if none) and its seq.
func (b *progressBox) pending() (*apiclient.Progress, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seq == b.sentAt {
		return nil, b.seq
	}
	p := *b.latest
	return &p, b.seq
}

// sent records that the progress of seq got through.
func (b *progressBox) sent(seq int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sentAt = max(b.sentAt, seq)
}

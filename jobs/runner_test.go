package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
)

// The runner takes jobs from the ready lists as they are submitted. Its
// blocking pops wait a minute, far longer than the test's guard, so a
// runner that found jobs by polling would fail it.
func TestRunnerProcessesJobsAsTheyCome(t *testing.T) {
	const n = 50
	e := newEnv(t, nil, withPartitions(2))
	e.del.delivered = make(chan string, n)
	r := e.svc.StartRunner(e.store, jobs.RunnerOptions{Partitions: []int{0, 1}, Concurrency: 3, Wait: time.Minute})
	defer r.Stop()

	start := time.Now()
	want := make([]string, 0, n)
	for i := range n {
		want = append(want, e.submit(t, "cli_a", echoSub(fmt.Sprintf(`{"i":%d}`, i))).ID)
	}
	got := receive(t, e.del.delivered, n, "jobs finished")
	t.Logf("%d jobs submitted and run in %v", n, time.Since(start))
	if !sameSet(got, want) {
		t.Errorf("jobs delivered = %v, want each of %v once", got, want)
	}
	for _, id := range want {
		if j := e.job(t, id); j.Status != jobs.StatusCompleted || j.Attempts != 1 {
			t.Errorf("job %s = %s attempts %d, want COMPLETED 1", id, j.Status, j.Attempts)
		}
	}
}

// No more jobs run at once than the runner's concurrency, however many
// partitions hold ready jobs.
func TestRunnerRespectsConcurrency(t *testing.T) {
	const n, concurrency = 9, 3
	var mu sync.Mutex
	running, most := 0, 0
	started := make(chan string, n)
	release := make(chan struct{})
	proc := jobs.ProcessorFunc(func(ctx context.Context, in jobs.Input) (json.RawMessage, error) {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		defer func() {
			mu.Lock()
			running--
			mu.Unlock()
		}()
		started <- in.RequestID
		select {
		case <-release:
			return json.RawMessage(`1`), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	e := newEnv(t, func(r *jobs.Registry) { r.Register("work", proc, time.Minute) }, withPartitions(2))
	e.del.delivered = make(chan string, n)
	r := e.svc.StartRunner(e.store, jobs.RunnerOptions{Partitions: []int{0, 1}, Concurrency: concurrency, Wait: time.Second})
	defer r.Stop()
	for range n {
		e.submitType(t, "work", `1`)
	}
	// Fill the slots, then free one at a time: each lets exactly one more
	// job start, and nothing else may.
	receive(t, started, concurrency, "jobs started")
	for range n - concurrency {
		release <- struct{}{}
		receive(t, started, 1, "a job started after one ended")
	}
	for range concurrency {
		release <- struct{}{}
	}
	receive(t, e.del.delivered, n, "jobs finished")
	mu.Lock()
	defer mu.Unlock()
	if most != concurrency {
		t.Errorf("at most %d jobs ran at once with concurrency %d, want %d", most, concurrency, concurrency)
	}
}

// Stop lets a running job finish within the grace period: Stop returns
// after it, and the job completed normally.
func TestRunnerStopLetsRunningJobsFinish(t *testing.T) {
	started := make(chan string, 1)
	canceled := make(chan bool, 1)
	proc := jobs.ProcessorFunc(func(ctx context.Context, in jobs.Input) (json.RawMessage, error) {
		started <- in.RequestID
		select {
		case <-time.After(200 * time.Millisecond): // still running when Stop is called
			canceled <- false
			return json.RawMessage(`"finished"`), nil
		case <-ctx.Done():
			canceled <- true
			return nil, ctx.Err()
		}
	})
	e := newEnv(t, func(r *jobs.Registry) { r.Register("work", proc, time.Minute) })
	r := e.svc.StartRunner(e.store, jobs.RunnerOptions{Partitions: []int{0}, Concurrency: 2, Wait: time.Minute, Grace: time.Minute})
	j := e.submitType(t, "work", `1`)
	receive(t, started, 1, "job started")
	r.Stop()
	if len(canceled) != 1 || <-canceled {
		t.Errorf("the running job was canceled or had not ended when Stop returned; want it to finish first")
	}
	if got := e.job(t, j.ID); got.Status != jobs.StatusCompleted || string(got.Result) != `"finished"` {
		t.Errorf("job after Stop = %s result %s, want COMPLETED \"finished\"", got.Status, got.Result)
	}
	if n := len(e.del.First()); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

// A job still running when the grace period ends is canceled, and freed
// for another worker at once.
func TestRunnerStopInterruptsJobsAfterGrace(t *testing.T) {
	p := newBlocking()
	e := newEnv(t, func(r *jobs.Registry) { r.Register("work", p, time.Minute) })
	r := e.svc.StartRunner(e.store, jobs.RunnerOptions{Partitions: []int{0}, Concurrency: 2, Wait: time.Minute, Grace: 50 * time.Millisecond})
	j := e.submitType(t, "work", `1`)
	receive(t, p.started, 1, "job started")
	r.Stop()
	got := e.job(t, j.ID)
	if got.Status != jobs.StatusProcessing || got.Attempts != 0 || errorCode(got.LastError) != "interrupted" {
		t.Errorf("job after Stop = %s attempts %d last error %+v; want PROCESSING, 0 attempts (given back), interrupted", got.Status, got.Attempts, got.LastError)
	}
	if calls, want := e.enq.Calls(), []enqueueCall{{j.ID, 1, t0, time.Minute}}; !reflect.DeepEqual(calls, want) {
		t.Errorf("EnqueueJob calls = %+v, want %+v", calls, want)
	}
	if n := len(e.del.First()); n != 0 {
		t.Errorf("%d deliveries of an interrupted job", n)
	}
}

// returnWatcher is the real ready queue, reporting the jobs put back.
type returnWatcher struct {
	jobs.ReadyQueue
	mu       sync.Mutex
	returned []string
}

func (w *returnWatcher) ReturnReady(ctx context.Context, id string) error {
	w.mu.Lock()
	w.returned = append(w.returned, id)
	w.mu.Unlock()
	return w.ReadyQueue.ReturnReady(ctx, id)
}

func (w *returnWatcher) Returned() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.returned)
}

// A blocking pop still waiting when Stop is called may take a job after
// it: the runner puts that job back at the head of its ready list, for
// another worker, and does not run it.
func TestRunnerReturnsAJobTakenWhileStopping(t *testing.T) {
	ctx := context.Background()
	p := &countingProcessor{fn: jobs.Echo}
	e := newEnv(t, func(r *jobs.Registry) { r.Register("work", p, time.Minute) }, withPartitions(2))
	q := &returnWatcher{ReadyQueue: e.store}
	r := e.svc.StartRunner(q, jobs.RunnerOptions{Partitions: []int{0, 1}, Concurrency: 3, Wait: time.Minute})
	for deadline := time.Now().Add(guard); e.blockedPops(t) < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the runner's pops never blocked in Redis (%d blocked)", e.blockedPops(t))
		}
	}
	r.Stop() // the pops stay blocked: BLPOP does not end with its context

	j := e.submitType(t, "work", `1`)
	// Redis serves blocked pops in order: the runner's, then this one,
	// which gets the job once the runner has put it back.
	got, err := e.store.NextReady(ctx, ids.Partition(j.ID), guard)
	if err != nil || got != j.ID {
		t.Fatalf("NextReady after the runner stopped = %q, %v; want %s", got, err, j.ID)
	}
	if returned := q.Returned(); !reflect.DeepEqual(returned, []string{j.ID}) {
		t.Errorf("ReturnReady calls = %v, want [%s]", returned, j.ID)
	}
	if n := p.Calls(); n != 0 {
		t.Errorf("a stopped runner ran %d jobs", n)
	}
	if got := e.job(t, j.ID); got.Status != jobs.StatusAccepted || got.Attempts != 0 {
		t.Errorf("job = %s attempts %d, want ACCEPTED 0 (never claimed)", got.Status, got.Attempts)
	}
}

package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/webhooks"
)

func TestRunEchoCompletesAndDelivers(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	const payload = `{"b": [1, 2],  "a":"x<&>", "u":"\u00e9"}`
	sub := echoSub(payload)
	sub.Metadata = map[string]string{"order": "42", "team": "blue"}
	j := e.submit(t, "cli_a", sub)
	e.clock.Advance(1500 * time.Millisecond)

	if err := e.svc.Run(ctx, j.ID); err != nil {
		t.Fatalf("Run(%s): %v", j.ID, err)
	}
	got := e.get(t, "cli_a", j.ID)
	done := e.clock.Now()
	if got.Status != jobs.StatusCompleted || got.Attempts != 1 || got.Error != nil || got.LastError != nil ||
		got.CompletedAt == nil || !got.CompletedAt.Equal(done) || !got.UpdatedAt.Equal(done) || got.Payload != nil {
		t.Fatalf("after Run: %+v; want COMPLETED at %v, attempts 1, no error, payload dropped", got, done)
	}
	if string(got.Result) != payload {
		t.Errorf("result = %s, want the payload bytes exactly: %s", got.Result, payload)
	}
	if got.DeliveryID != jobs.DeliveryID(j.ID) {
		t.Errorf("deliveryId = %q, want %q", got.DeliveryID, jobs.DeliveryID(j.ID))
	}
	if calls := e.enq.Calls(); len(calls) != 0 {
		t.Errorf("a job that completed enqueued %+v", calls)
	}

	// FinishJob's delivery goes to the first attempt, with the body that
	// the store rebuilds for every later attempt.
	first := e.del.First()
	if len(first) != 1 || len(e.del.Attempts()) != 0 {
		t.Fatalf("FirstAttempt got %d deliveries and Attempt %d calls; want 1 and 0", len(first), len(e.del.Attempts()))
	}
	d := first[0]
	msgID := jobs.DeliveryID(j.ID)
	if d.ID != msgID || d.RequestID != j.ID || d.ClientID != "cli_a" || d.EventType != jobs.EventCompleted || d.URL != callback ||
		d.Status != webhooks.StatusPending || d.Attempts != 0 {
		t.Errorf("delivery = {ID %q RequestID %q ClientID %q EventType %q URL %q Status %s Attempts %d}; want {%q %q cli_a job.completed %q PENDING 0}",
			d.ID, d.RequestID, d.ClientID, d.EventType, d.URL, d.Status, d.Attempts, msgID, j.ID, callback)
	}
	want, err := jobs.WebhookBody(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.Payload, want) {
		t.Errorf("delivery body\n got: %s\nwant: %s (jobs.WebhookBody of the stored job)", d.Payload, want)
	}
	stored, err := e.store.GetDelivery(ctx, msgID, false)
	if err != nil {
		t.Fatalf("GetDelivery(%s): %v", msgID, err)
	}
	if !bytes.Equal(stored.Payload, d.Payload) || stored.Status != webhooks.StatusPending {
		t.Errorf("stored delivery = %s body %s; want PENDING with the body handed to FirstAttempt %s", stored.Status, stored.Payload, d.Payload)
	}

	// The body is the documented webhook JSON.
	var body map[string]json.RawMessage
	if err := json.Unmarshal(d.Payload, &body); err != nil {
		t.Fatalf("body %s is not a JSON object: %v", d.Payload, err)
	}
	if keys := sortedKeys(body); !reflect.DeepEqual(keys, []string{"data", "timestamp", "type"}) {
		t.Errorf("body keys = %v, want [data timestamp type]; body %s", keys, d.Payload)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(body["data"], &data); err != nil {
		t.Fatalf("data %s is not a JSON object: %v", body["data"], err)
	}
	if keys := sortedKeys(data); !reflect.DeepEqual(keys, []string{"completedAt", "createdAt", "metadata", "requestId", "result", "status", "type"}) {
		t.Errorf("data keys = %v; want completedAt createdAt metadata requestId result status type", keys)
	}
	var typed struct {
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
		Data      struct {
			RequestID   string            `json:"requestId"`
			Type        string            `json:"type"`
			Status      string            `json:"status"`
			Metadata    map[string]string `json:"metadata"`
			CreatedAt   time.Time         `json:"createdAt"`
			CompletedAt time.Time         `json:"completedAt"`
		} `json:"data"`
	}
	if err := json.Unmarshal(d.Payload, &typed); err != nil {
		t.Fatal(err)
	}
	dd := typed.Data
	if typed.Type != "job.completed" || dd.RequestID != j.ID || dd.Type != "echo" || dd.Status != "COMPLETED" ||
		!reflect.DeepEqual(dd.Metadata, sub.Metadata) || !dd.CreatedAt.Equal(t0) ||
		!dd.CompletedAt.Equal(done) || !typed.Timestamp.Equal(done) {
		t.Errorf("body = %s; want type job.completed, requestId %s, type echo, status COMPLETED, metadata %v, createdAt %v, completedAt and timestamp %v",
			d.Payload, j.ID, sub.Metadata, t0, done)
	}
	if !bytes.Contains(d.Payload, []byte(`"result":`+payload+`,`)) {
		t.Errorf("body %s does not carry the payload byte for byte: %s", d.Payload, payload)
	}
}

func TestRunProcessorOutcomes(t *testing.T) {
	boom := errors.New("boom")
	waitForDeadline := jobs.ProcessorFunc(func(ctx context.Context, _ jobs.Input) (json.RawMessage, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("waiting: %w", ctx.Err())
	})
	fail := func(err error) jobs.ProcessorFunc {
		return func(context.Context, jobs.Input) (json.RawMessage, error) { return nil, err }
	}
	// Each Run ends in a retry (the job stays PROCESSING with its last
	// error, and the next attempt is enqueued) or in FAILED.
	type outcome struct {
		retry   bool
		code    string // of the last error (retry) or of the job's error
		message string // "" skips the check
	}
	tests := []struct {
		name        string
		proc        jobs.Processor
		timeout     time.Duration
		maxAttempts int
		runs        []outcome // one per Run
	}{
		{"retryable error, retried until MaxAttempts", fail(boom), time.Second, 3, []outcome{
			{retry: true, code: "processing_failed", message: "boom"},
			{retry: true, code: "processing_failed", message: "boom"},
			{code: "processing_failed", message: "boom"},
		}},
		{"MaxAttempts 1 fails at once", fail(boom), time.Second, 1, []outcome{
			{code: "processing_failed", message: "boom"},
		}},
		{"permanent error fails at once", fail(jobs.Permanent(boom)), time.Second, 5, []outcome{
			{code: "processing_failed", message: "boom"},
		}},
		{"permanent Failure keeps its code", fail(&jobs.Failure{Code: "bad_image", Message: "not a PNG", Permanent: true}), time.Second, 5, []outcome{
			{code: "bad_image", message: "not a PNG"},
		}},
		{"Permanent of a Failure keeps its code", fail(jobs.Permanent(&jobs.Failure{Code: "quota", Message: "over quota"})), time.Second, 5, []outcome{
			{code: "quota", message: "over quota"},
		}},
		{"retryable Failure keeps its code", fail(fmt.Errorf("wrapped: %w", &jobs.Failure{Code: "upstream_503", Message: "busy"})), time.Second, 2, []outcome{
			{retry: true, code: "upstream_503", message: "busy"},
			{code: "upstream_503", message: "busy"},
		}},
		{"timeout retried, then code timeout", waitForDeadline, 10 * time.Millisecond, 2, []outcome{
			{retry: true, code: "timeout"},
			{code: "timeout"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, func(r *jobs.Registry) { r.Register("work", tc.proc, tc.timeout) }, withMaxAttempts(tc.maxAttempts))
			j := e.submitType(t, "work", `{}`)
			for i, want := range tc.runs {
				attempt := i + 1
				if err := e.svc.Run(ctx, j.ID); err != nil {
					t.Fatalf("Run #%d: %v, want nil", attempt, err)
				}
				got := e.job(t, j.ID)
				calls := e.enq.Calls()
				if want.retry {
					at := e.clock.Now().Add(retryDelay(attempt))
					if got.Status != jobs.StatusProcessing || got.Attempts != attempt || got.Error != nil || got.LastError == nil ||
						got.LastError.Code != want.code || (want.message != "" && got.LastError.Message != want.message) {
						t.Fatalf("after Run #%d: %s attempts %d error %+v last error %+v; want PROCESSING, %d attempts, last error %s %q",
							attempt, got.Status, got.Attempts, got.Error, got.LastError, attempt, want.code, want.message)
					}
					wantCall := enqueueCall{RequestID: j.ID, Attempt: attempt + 1, At: at, Timeout: tc.timeout}
					if len(calls) != attempt || calls[attempt-1] != wantCall {
						t.Fatalf("after Run #%d: EnqueueJob calls %+v, want the last %+v", attempt, calls, wantCall)
					}
					if n := len(e.del.First()); n != 0 {
						t.Errorf("after Run #%d: %d deliveries of a job that has not ended", attempt, n)
					}
					e.clock.Set(at)
					continue
				}
				if got.Status != jobs.StatusFailed || got.Attempts != attempt || got.LastError != nil || got.Error == nil ||
					got.Error.Code != want.code || got.Error.Message == "" || (want.message != "" && got.Error.Message != want.message) {
					t.Fatalf("after Run #%d: %s attempts %d error %+v last error %+v; want FAILED after %d attempts with %s %q",
						attempt, got.Status, got.Attempts, got.Error, got.LastError, attempt, want.code, want.message)
				}
				if got.Result != nil || got.CompletedAt == nil {
					t.Errorf("failed job has result %s, completedAt %v; want no result and a completedAt", got.Result, got.CompletedAt)
				}
				if len(calls) != attempt-1 {
					t.Errorf("a failed job enqueued %+v; want only the %d retries", calls, attempt-1)
				}
				first := e.del.First()
				if len(first) != 1 || first[0].EventType != jobs.EventFailed || first[0].ID != jobs.DeliveryID(j.ID) {
					t.Fatalf("deliveries = %+v; want one job.failed delivery with id %s", first, jobs.DeliveryID(j.ID))
				}
				var body struct {
					Type string `json:"type"`
					Data struct {
						Status string          `json:"status"`
						Error  *jobs.Error     `json:"error"`
						Result json.RawMessage `json:"result"`
					} `json:"data"`
				}
				if err := json.Unmarshal(first[0].Payload, &body); err != nil {
					t.Fatal(err)
				}
				if body.Type != jobs.EventFailed || body.Data.Status != "FAILED" || body.Data.Error == nil ||
					*body.Data.Error != *got.Error || body.Data.Result != nil {
					t.Errorf("failed body = %s; want type job.failed, status FAILED, error %+v, no result", first[0].Payload, got.Error)
				}
			}
		})
	}
}

// A retryable failure is stored with the time of the next attempt, whose
// task is enqueued; a Run before then is refused, one after it processes.
func TestRunRetryWaitsForItsTime(t *testing.T) {
	ctx := context.Background()
	var inputs []jobs.Input
	p := &countingProcessor{fn: func(_ context.Context, in jobs.Input) (json.RawMessage, error) {
		inputs = append(inputs, in)
		if in.Attempt == 1 {
			return nil, errors.New("not yet")
		}
		return json.RawMessage(`"done"`), nil
	}}
	e := newEnv(t, func(r *jobs.Registry) { r.Register("work", p, 7*time.Second) })
	sub := echoSub(`{"p":1}`)
	sub.Type, sub.Metadata = "work", map[string]string{"m": "1"}
	j := e.submit(t, "cli_a", sub)
	e.clock.Advance(time.Second)
	failedAt := e.clock.Now()
	if err := e.svc.Run(ctx, j.ID); err != nil {
		t.Fatalf("Run #1: %v", err)
	}
	at := failedAt.Add(retryDelay(1))
	got := e.job(t, j.ID)
	if got.Status != jobs.StatusProcessing || got.Attempts != 1 || !reflect.DeepEqual(got.LastError, &jobs.Error{Code: "processing_failed", Message: "not yet"}) ||
		!got.UpdatedAt.Equal(failedAt) || string(got.Payload) != `{"p":1}` {
		t.Fatalf("after a retryable failure: %+v; want PROCESSING, attempts 1, last error processing_failed \"not yet\", updated %v, payload kept", got, failedAt)
	}
	if calls, want := e.enq.Calls(), []enqueueCall{{j.ID, 2, at, 7 * time.Second}}; !reflect.DeepEqual(calls, want) {
		t.Fatalf("EnqueueJob calls = %+v, want %+v", calls, want)
	}

	for _, now := range []time.Time{failedAt, at.Add(-time.Millisecond)} {
		e.clock.Set(now)
		var leased *jobs.LeasedError
		if err := e.svc.Run(ctx, j.ID); !errors.As(err, &leased) || !leased.Until.Equal(at) {
			t.Fatalf("Run at %v, before the retry time %v = %v; want a *LeasedError until %v", now, at, err, at)
		}
	}
	if n := p.Calls(); n != 1 {
		t.Fatalf("processor called %d times before the retry time, want 1", n)
	}

	e.clock.Set(at)
	if err := e.svc.Run(ctx, j.ID); err != nil {
		t.Fatalf("Run at the retry time: %v", err)
	}
	got = e.job(t, j.ID)
	if got.Status != jobs.StatusCompleted || got.Attempts != 2 || got.LastError != nil || string(got.Result) != `"done"` {
		t.Errorf("after the retry: %s attempts %d last error %+v result %s; want COMPLETED, 2 attempts, no last error, \"done\"",
			got.Status, got.Attempts, got.LastError, got.Result)
	}
	want := []jobs.Input{
		{RequestID: j.ID, Type: "work", Payload: json.RawMessage(`{"p":1}`), Metadata: sub.Metadata, Attempt: 1},
		{RequestID: j.ID, Type: "work", Payload: json.RawMessage(`{"p":1}`), Metadata: sub.Metadata, Attempt: 2},
	}
	if !reflect.DeepEqual(inputs, want) {
		t.Errorf("processor inputs = %+v, want %+v", inputs, want)
	}
	if n := len(e.enq.Calls()); n != 1 {
		t.Errorf("EnqueueJob called %d times, want once", n)
	}
}

// blocking is a processor that reports each call and waits for release or
// its context.
type blocking struct {
	started chan jobs.Input
	release chan struct{}
	result  json.RawMessage
	*countingProcessor
}

func newBlocking() *blocking {
	b := &blocking{started: make(chan jobs.Input, 100), release: make(chan struct{}), result: json.RawMessage(`"ok"`)}
	b.countingProcessor = &countingProcessor{fn: func(ctx context.Context, in jobs.Input) (json.RawMessage, error) {
		b.started <- in
		select {
		case <-b.release:
			return b.result, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}
	return b
}

// A Run holds its job under a lease: another Run meanwhile is refused and
// does not process.
func TestRunHoldsALease(t *testing.T) {
	ctx := context.Background()
	p := newBlocking()
	e := newEnv(t, func(r *jobs.Registry) { r.Register("work", p, time.Minute) }, withLease(time.Hour))
	j := e.submitType(t, "work", `1`)
	done := runAsync(ctx, e.svc, j.ID)
	receive(t, p.started, 1, "processor start")

	if got := e.job(t, j.ID); got.Status != jobs.StatusProcessing || got.Attempts != 1 {
		t.Errorf("while processing: %s attempts %d, want PROCESSING 1", got.Status, got.Attempts)
	}
	for _, s := range []*jobs.Service{e.svc, e.service()} {
		var leased *jobs.LeasedError
		if err := s.Run(ctx, j.ID); !errors.As(err, &leased) || !leased.Until.Equal(t0.Add(time.Hour)) {
			t.Errorf("second Run while the first processes = %v; want a *LeasedError until %v", err, t0.Add(time.Hour))
		}
	}
	close(p.release)
	if err := <-done; err != nil {
		t.Fatalf("first Run: %v", err)
	}
	if n := p.Calls(); n != 1 {
		t.Errorf("processor called %d times, want 1", n)
	}
	if got := e.job(t, j.ID); got.Status != jobs.StatusCompleted || got.Attempts != 1 {
		t.Errorf("after the first Run: %s attempts %d, want COMPLETED 1", got.Status, got.Attempts)
	}
	if n := len(e.del.First()); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

// leaseWatcher is the real store, reporting every lease it renewed.
type leaseWatcher struct {
	jobs.Store
	renewed chan time.Time
}

func (w leaseWatcher) ExtendJobLease(ctx context.Context, j jobs.Job, until time.Time) error {
	err := w.Store.ExtendJobLease(ctx, j, until)
	if err == nil {
		select {
		case w.renewed <- until:
		default:
		}
	}
	return err
}

// waitFor waits until the lease is renewed until at least until.
func (w leaseWatcher) waitFor(t *testing.T, until time.Time) {
	t.Helper()
	timeout := time.After(guard)
	for {
		select {
		case got := <-w.renewed:
			if !got.Before(until) {
				return
			}
		case <-timeout:
			t.Fatalf("the lease was not renewed until %v or later", until)
		}
	}
}

// The lease is renewed while a slow processor runs: long after the first
// lease would have lapsed, another Run is still refused.
func TestRunRenewsItsLease(t *testing.T) {
	ctx := context.Background()
	const lease = 300 * time.Millisecond
	p := newBlocking()
	e := newEnv(t, func(r *jobs.Registry) { r.Register("work", p, time.Minute) }, withLease(lease))
	w := leaseWatcher{Store: e.store, renewed: make(chan time.Time, 100)}
	svc := e.service(func(o *jobs.ServiceOptions) { o.Store = w })
	j := e.submitType(t, "work", `1`)
	done := runAsync(ctx, svc, j.ID)
	receive(t, p.started, 1, "processor start")

	// Time passes (the fake clock: the lease renews on a real ticker, every
	// lease/3, to the fake now + lease).
	for step := 1; step <= 3; step++ {
		e.clock.Advance(time.Second)
		now := e.clock.Now()
		w.waitFor(t, now.Add(lease))
		var leased *jobs.LeasedError
		if err := e.svc.Run(ctx, j.ID); !errors.As(err, &leased) || leased.Until.Before(now.Add(lease)) {
			t.Fatalf("Run %v after the claim, during the first Run = %v; want a *LeasedError until %v or later", now.Sub(t0), err, now.Add(lease))
		}
	}
	close(p.release)
	if err := <-done; err != nil {
		t.Fatalf("first Run: %v", err)
	}
	if n := p.Calls(); n != 1 {
		t.Errorf("processor called %d times, want 1", n)
	}
	if got := e.job(t, j.ID); got.Status != jobs.StatusCompleted || got.Attempts != 1 {
		t.Errorf("job = %s attempts %d, want COMPLETED 1", got.Status, got.Attempts)
	}
}

// A finished job that runs again (a task retried after a crash) is not
// processed again: Run only makes sure its delivery's first attempt
// happened.
func TestRunFinishedJobOnlyAttemptsDelivery(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		fn     jobs.ProcessorFunc
		status jobs.Status
	}{
		{"completed", jobs.Echo, jobs.StatusCompleted},
		{"failed", func(context.Context, jobs.Input) (json.RawMessage, error) {
			return nil, jobs.Permanent(errors.New("no"))
		}, jobs.StatusFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &countingProcessor{fn: tc.fn}
			e := newEnv(t, func(r *jobs.Registry) { r.Register("work", p, time.Second) })
			j := e.submitType(t, "work", `{"k":"v"}`)
			for i := range 3 {
				if err := e.svc.Run(ctx, j.ID); err != nil {
					t.Fatalf("Run #%d: %v", i+1, err)
				}
				e.clock.Advance(time.Hour)
			}
			if n := p.Calls(); n != 1 {
				t.Errorf("processor called %d times over 3 Runs, want 1", n)
			}
			if got := e.job(t, j.ID); got.Status != tc.status || got.Attempts != 1 {
				t.Errorf("job = %s attempts %d, want %s attempts 1", got.Status, got.Attempts, tc.status)
			}
			if n := len(e.del.First()); n != 1 {
				t.Errorf("FirstAttempt called %d times, want 1", n)
			}
			msgID := jobs.DeliveryID(j.ID)
			if got, want := e.del.Attempts(), []attemptCall{{msgID, 1}, {msgID, 1}}; !reflect.DeepEqual(got, want) {
				t.Errorf("Attempt calls = %+v, want %+v", got, want)
			}
		})
	}
}

func TestRunUnknownJobIsNil(t *testing.T) {
	e := newEnv(t, nil, withPartitions(2))
	for _, id := range []string{"req_unknown", "", "x", ids.New(ids.Request, t0), ids.NewIn(ids.Request, t0, 1), ids.NewIn(ids.Request, t0, 31)} {
		if err := e.svc.Run(context.Background(), id); err != nil {
			t.Errorf("Run(%q) = %v, want nil", id, err)
		}
	}
	if n, m := len(e.del.First()), len(e.del.Attempts()); n+m != 0 {
		t.Errorf("Runs of unknown jobs made %d first attempts and %d attempts", n, m)
	}
	if ks := e.dataKeys(t); len(ks) != 0 {
		t.Errorf("Runs of unknown jobs wrote %v", ks)
	}
}

// The outcome and the delivery are stored together before the first
// attempt: when that attempt fails, Run says so (the task is retried), and
// the next Run only attempts the delivery again.
func TestRunDelivererErrorIsReturned(t *testing.T) {
	ctx := context.Background()
	p := &countingProcessor{fn: jobs.Echo}
	e := newEnv(t, func(r *jobs.Registry) { r.Register("work", p, time.Second) })
	j := e.submitType(t, "work", `1`)
	down := errors.New("dispatcher down")
	e.del.SetErr(down)
	if err := e.svc.Run(ctx, j.ID); !errors.Is(err, down) {
		t.Fatalf("Run with a failing Deliverer = %v, want %v", err, down)
	}
	if got := e.job(t, j.ID); got.Status != jobs.StatusCompleted || got.DeliveryID != jobs.DeliveryID(j.ID) {
		t.Errorf("job after the failed first attempt = %s delivery %q, want COMPLETED with its delivery", got.Status, got.DeliveryID)
	}
	if d, err := e.store.GetDelivery(ctx, jobs.DeliveryID(j.ID), false); err != nil || d.Status != webhooks.StatusPending {
		t.Errorf("delivery after the failed first attempt = %+v, %v; want PENDING", d, err)
	}
	e.del.SetErr(nil)
	if err := e.svc.Run(ctx, j.ID); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if got, want := e.del.Attempts(), []attemptCall{{jobs.DeliveryID(j.ID), 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Attempt calls after the second Run = %+v, want %+v", got, want)
	}
	if got := e.job(t, j.ID); got.Attempts != 1 || p.Calls() != 1 {
		t.Errorf("after the second Run: attempts %d, processor calls %d; want 1 and 1", got.Attempts, p.Calls())
	}
}

// A result must travel byte for byte, so a processor's result that is not
// JSON fails the job instead of being re-encoded.
func TestRunResultIsKeptByteForByte(t *testing.T) {
	tests := []struct {
		result   string
		want     string // the stored result; "" when the job must fail
		wantCode string
	}{
		{`{"ok": true,  "html": "a<b&c>d"}`, `{"ok": true,  "html": "a<b&c>d"}`, ""},
		{` [1, 2.50, "\u00e9"] `, ` [1, 2.50, "\u00e9"] `, ""},
		{``, `null`, ""},
		{`plain text`, "", "invalid_result"},
		{`{"ok":`, "", "invalid_result"},
		{`{"a":1,"a":2}`, "", "invalid_result"},
		{`"\ud800"`, "", "invalid_result"},
	}
	for _, tc := range tests {
		e := newEnv(t, func(r *jobs.Registry) {
			r.Register("work", jobs.ProcessorFunc(func(context.Context, jobs.Input) (json.RawMessage, error) {
				return json.RawMessage(tc.result), nil
			}), time.Second)
		})
		j := e.submitType(t, "work", `1`)
		if err := e.svc.Run(context.Background(), j.ID); err != nil {
			t.Fatalf("Run with result %q: %v", tc.result, err)
		}
		got := e.job(t, j.ID)
		wantStatus := jobs.StatusCompleted
		if tc.wantCode != "" {
			wantStatus = jobs.StatusFailed
		}
		if string(got.Result) != tc.want || errorCode(got.Error) != tc.wantCode || got.Status != wantStatus {
			t.Errorf("processor result %q: job %s, result %q, error %+v; want %s, result %q, code %q",
				tc.result, got.Status, got.Result, got.Error, wantStatus, tc.want, tc.wantCode)
		}
		if first := e.del.First(); len(first) != 1 {
			t.Errorf("processor result %q: %d deliveries, want 1", tc.result, len(first))
		} else if body, _ := jobs.WebhookBody(got); !bytes.Equal(first[0].Payload, body) {
			t.Errorf("processor result %q: delivery body %s, want %s", tc.result, first[0].Payload, body)
		}
	}
}

func TestRunTypeUnknownToWorkerFails(t *testing.T) {
	e := newEnv(t, func(r *jobs.Registry) { r.Register("gone", jobs.Echo, time.Second) })
	j := e.submitType(t, "gone", `1`)
	worker := e.service(func(o *jobs.ServiceOptions) { o.Registry = jobs.NewRegistry() }) // a worker without the type
	if err := worker.Run(context.Background(), j.ID); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := e.job(t, j.ID)
	if got.Status != jobs.StatusFailed || errorCode(got.Error) != "unknown_type" || got.Attempts != 1 {
		t.Errorf("job of a type the worker lacks = %s attempts %d error %+v, want FAILED unknown_type after 1 attempt", got.Status, got.Attempts, got.Error)
	}
	if first := e.del.First(); len(first) != 1 || first[0].EventType != jobs.EventFailed {
		t.Errorf("deliveries = %+v, want one job.failed", first)
	}
}

// Attempts used up by runs that never recorded an outcome (crashed
// processes, whose leases lapsed, or a lower MaxAttempts after a deploy)
// fail the job without processing it.
func TestRunAttemptsExhaustedBeforeProcessing(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	tests := []struct {
		name        string
		crashed     int // claims that never ended, before the Run
		failed      int // Runs that failed and were retried, before the Run
		maxAttempts int // of the last Run
		wantMessage string
	}{
		{"crashed runs", 2, 0, 2, "processing did not succeed in 2 attempts"},
		{"a failed and a crashed run", 1, 1, 2, "processing did not succeed in 2 attempts"},
		{"MaxAttempts lowered", 0, 1, 1, "processing did not succeed in 1 attempts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &countingProcessor{fn: func(context.Context, jobs.Input) (json.RawMessage, error) { return nil, boom }}
			e := newEnv(t, func(r *jobs.Registry) { r.Register("work", p, time.Second) }, withMaxAttempts(5), withLease(time.Minute))
			j := e.submitType(t, "work", `1`)
			for range tc.failed {
				if err := e.svc.Run(ctx, j.ID); err != nil {
					t.Fatalf("failing Run: %v", err)
				}
				e.clock.Advance(time.Hour)
			}
			for range tc.crashed {
				now := e.clock.Now()
				if _, err := e.store.ClaimJob(ctx, j.ID, now, now.Add(time.Minute)); err != nil {
					t.Fatalf("ClaimJob (a run that crashes): %v", err)
				}
				e.clock.Advance(time.Hour) // its lease lapses
			}
			if err := e.service(withMaxAttempts(tc.maxAttempts)).Run(ctx, j.ID); err != nil {
				t.Fatalf("Run with attempts exhausted: %v", err)
			}
			got := e.job(t, j.ID)
			want := &jobs.Error{Code: "attempts_exhausted", Message: tc.wantMessage}
			if got.Status != jobs.StatusFailed || !reflect.DeepEqual(got.Error, want) || got.Attempts != tc.maxAttempts+1 {
				t.Errorf("job = %s attempts %d error %+v; want FAILED %+v, attempts %d (the claims)", got.Status, got.Attempts, got.Error, want, tc.maxAttempts+1)
			}
			if n := p.Calls(); n != tc.failed {
				t.Errorf("processor called %d times, want %d", n, tc.failed)
			}
			if first := e.del.First(); len(first) != 1 || first[0].EventType != jobs.EventFailed {
				t.Errorf("deliveries = %+v, want one job.failed", first)
			}
		})
	}
}

// A worker shutting down while a job processes frees the job for another
// worker at once, without counting the interrupted attempt: a deploy during
// a job's last attempt must not fail it. Run returns the context's error,
// so a task running it goes back to its queue.
func TestRunInterruptedFreesTheJob(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  func(ctx context.Context) error
	}{
		{"processor returns the context's error", func(ctx context.Context) error { return ctx.Err() }},
		{"processor returns a permanent error", func(ctx context.Context) error { return jobs.Permanent(ctx.Err()) }},
		{"processor returns a timeout", func(context.Context) error { return context.DeadlineExceeded }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e := newEnv(t, func(r *jobs.Registry) {
				r.Register("work", jobs.ProcessorFunc(func(pctx context.Context, in jobs.Input) (json.RawMessage, error) {
					if ctx.Err() != nil { // another worker, after the shutdown
						return json.RawMessage(`"first"`), nil
					}
					cancel() // the worker shuts down mid-job
					<-pctx.Done()
					return nil, tc.err(pctx)
				}), time.Minute)
			})
			j := e.submitType(t, "work", `1`)
			e.clock.Advance(time.Second)
			now := e.clock.Now()
			if err := e.svc.Run(ctx, j.ID); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run during shutdown = %v, want the context's error (the job is handed on)", err)
			}
			got := e.job(t, j.ID)
			if got.Status != jobs.StatusProcessing || got.Attempts != 0 || got.Error != nil || errorCode(got.LastError) != "interrupted" {
				t.Errorf("job after an interrupted Run = %s attempts %d error %+v last error %+v; want PROCESSING, 0 attempts (given back), last error interrupted",
					got.Status, got.Attempts, got.Error, got.LastError)
			}
			if calls, want := e.enq.Calls(), []enqueueCall{{j.ID, 1, now, time.Minute}}; !reflect.DeepEqual(calls, want) {
				t.Errorf("EnqueueJob calls = %+v, want %+v (the same attempt again, due now)", calls, want)
			}
			if n := len(e.del.First()); n != 0 {
				t.Errorf("an interrupted job was delivered %d times", n)
			}
			// Another worker takes it at once, without waiting for a lease.
			if err := e.service().Run(context.Background(), j.ID); err != nil {
				t.Fatalf("Run by another worker: %v", err)
			}
			if got := e.job(t, j.ID); got.Status != jobs.StatusCompleted || got.Attempts != 1 || string(got.Result) != `"first"` {
				t.Errorf("after another worker's Run: %s attempts %d result %s, want COMPLETED 1 \"first\"", got.Status, got.Attempts, got.Result)
			}
		})
	}
}

func TestRunEnqueueFailureIsReturned(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(r *jobs.Registry) {
		r.Register("work", jobs.ProcessorFunc(func(context.Context, jobs.Input) (json.RawMessage, error) {
			return nil, errors.New("boom")
		}), time.Second)
	})
	j := e.submitType(t, "work", `1`)
	down := errors.New("queue down")
	e.enq.SetErr(down)
	// The failed attempt is stored, so recovery (or the task's own retry,
	// refused until the retry time) runs the next one.
	if err := e.svc.Run(ctx, j.ID); !errors.Is(err, down) {
		t.Fatalf("Run with a failing Enqueuer = %v, want %v", err, down)
	}
	if got := e.job(t, j.ID); got.Status != jobs.StatusProcessing || got.Attempts != 1 || errorCode(got.LastError) != "processing_failed" {
		t.Errorf("job = %s attempts %d last error %+v; want PROCESSING, 1 attempt, last error processing_failed", got.Status, got.Attempts, got.LastError)
	}
	var leased *jobs.LeasedError
	if err := e.svc.Run(ctx, j.ID); !errors.As(err, &leased) || !leased.Until.Equal(t0.Add(retryDelay(1))) {
		t.Errorf("Run before the retry time = %v, want a *LeasedError until %v", err, t0.Add(retryDelay(1)))
	}
}

func TestRunClosedRedisReturnsError(t *testing.T) {
	e := newEnv(t, nil)
	j := e.submit(t, "cli_a", echoSub(`1`))
	e.rdb.Close()
	if err := e.svc.Run(context.Background(), j.ID); err == nil {
		t.Fatal("Run over a closed Redis client = nil, want an error so the task is retried")
	}
}

func sortedKeys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

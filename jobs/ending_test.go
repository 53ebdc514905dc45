package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
)

// untilStopped is a processor that runs until its context ends, saying
// when it started and when it stopped.
type untilStopped struct {
	started chan string
	stopped chan time.Time
}

func newUntilStopped() *untilStopped {
	return &untilStopped{started: make(chan string, 8), stopped: make(chan time.Time, 8)}
}

func (b *untilStopped) Process(ctx context.Context, in jobs.Input) (json.RawMessage, error) {
	b.started <- in.RequestID
	<-ctx.Done()
	b.stopped <- time.Now()
	return nil, ctx.Err()
}

// TestCancelStopsAProcessorInAnotherProcess: the API process cancels a job
// that a worker process is running; the worker hears it through the
// store's stop announcements and its processor's context ends within a
// second; the run then records nothing, and the webhook is job.canceled.
func TestCancelStopsAProcessorInAnotherProcess(t *testing.T) {
	proc := newUntilStopped()
	e := newEnv(t, func(r *jobs.Registry) { r.Register("block", proc, time.Minute) })
	worker := e.service()
	e.listen(t, worker, false, false, true)
	ctx := context.Background()
	j := e.submitType(t, "block", `1`)
	run := runAsync(ctx, worker, j.ID)
	receive(t, proc.started, 1, "the processor's start")

	e.clock.Advance(time.Second)
	start := time.Now()
	got, err := e.svc.Cancel(ctx, "cli_a", j.ID)
	if err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	rec := e.record(t, j.ID)
	stoppedAt := receive(t, proc.stopped, 1, "the processor's stop")[0]
	t.Logf("cancel → processor stopped in the other process: %v", stoppedAt.Sub(start))
	if d := stoppedAt.Sub(start); d > time.Second {
		t.Errorf("the processor stopped %v after the cancel, want within 1 s", d)
	}
	if err := receive(t, run, 1, "the run's end")[0]; err != nil {
		t.Errorf("the canceled run returned %v, want nil (the cancel delivers)", err)
	}
	wantErr := jobs.Error{Code: "canceled", Message: "the job was canceled by its client"}
	if got.Status != jobs.StatusCanceled || got.Error == nil || *got.Error != wantErr {
		t.Errorf("Cancel = %s %+v, want CANCELED %+v", got.Status, got.Error, wantErr)
	}
	stored := e.get(t, "cli_a", j.ID)
	if stored.Status != jobs.StatusCanceled || stored.Error == nil || *stored.Error != wantErr || stored.CompletedAt == nil ||
		!stored.CompletedAt.Equal(e.clock.Now()) || stored.Payload != nil || stored.Result != nil {
		t.Errorf("stored: %s %+v completedAt %v; want CANCELED %+v at %v, no payload or result", stored.Status, stored.Error,
			stored.CompletedAt, wantErr, e.clock.Now())
	}
	if after := e.record(t, j.ID); !maps.Equal(rec, after) {
		t.Errorf("the stopped run wrote to the record\nafter the cancel %v\n after the run   %v", rec, after)
	}
	if n, calls := len(e.del.First()), e.enq.Calls(); n != 0 || len(calls) != 0 {
		t.Errorf("the stopped run delivered %d webhooks and enqueued %+v; want nothing", n, calls)
	}
	checkDelivery(t, e, j.ID, jobs.EventCanceled, `"error":{"code":"canceled","message":"the job was canceled by its client"}`)
}

func TestCancel(t *testing.T) {
	tests := []struct {
		name     string
		clientID string // who cancels ("" the operator)
		setup    func(t *testing.T, e *env, id string)
		wantErr  error
		wantMsg  string
	}{
		{"its client, an ACCEPTED job", "cli_a", nil, nil, "the job was canceled by its client"},
		{"the operator, any client's job", "", nil, nil, "the job was canceled by an operator"},
		{"its client, a job in processing", "cli_a", func(t *testing.T, e *env, id string) {
			if _, err := e.store.ClaimJob(context.Background(), id, e.clock.Now(), e.clock.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}, nil, "the job was canceled by its client"},
		{"another client", "cli_b", nil, jobs.ErrNotFound, ""},
		{"a completed job", "cli_a", func(t *testing.T, e *env, id string) {
			if err := e.svc.Run(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		}, jobs.ErrFinished, ""},
		{"a canceled job", "cli_a", func(t *testing.T, e *env, id string) {
			if _, err := e.svc.Cancel(context.Background(), "cli_a", id); err != nil {
				t.Fatal(err)
			}
		}, jobs.ErrFinished, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			j := e.submitType(t, "echo", `1`)
			if tt.setup != nil {
				tt.setup(t, e, j.ID)
			}
			e.clock.Advance(time.Second)
			rec := e.record(t, j.ID)
			scheduled := len(e.enq.Scheduled())
			got, err := e.svc.Cancel(context.Background(), tt.clientID, j.ID)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Cancel = %v, want %v", err, tt.wantErr)
				}
				if after := e.record(t, j.ID); !maps.Equal(rec, after) {
					t.Errorf("a refused cancel changed the record\nbefore %v\n after %v", rec, after)
				}
				if n := len(e.enq.Scheduled()); n != scheduled {
					t.Errorf("a refused cancel scheduled %d deliveries", n-scheduled)
				}
				return
			}
			if err != nil || got.Status != jobs.StatusCanceled || got.Error == nil || got.Error.Message != tt.wantMsg {
				t.Fatalf("Cancel = %s %+v, %v; want CANCELED %q", got.Status, got.Error, err, tt.wantMsg)
			}
			checkDelivery(t, e, j.ID, jobs.EventCanceled, `"status":"CANCELED"`)
		})
	}
	t.Run("no such job", func(t *testing.T) {
		e := newEnv(t, nil)
		if _, err := e.svc.Cancel(context.Background(), "", "req_01KJ0000000000000000000000"); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("Cancel of no job = %v, want ErrNotFound", err)
		}
	})
}

// TestCancelStopsAnExternalWorker: once a job is canceled, its worker's
// next heartbeat, complete or fail is refused with ErrCanceled, though a
// heartbeat of the same lease was written a moment ago (heartbeats within
// a second are answered from memory), whether the cancel came through this
// API process or another one.
func TestCancelStopsAnExternalWorker(t *testing.T) {
	for _, where := range []string{"this process", "another process"} {
		t.Run(where, func(t *testing.T) {
			e := newEnv(t, externalTypes)
			ctx := context.Background()
			api := e.service()
			e.listen(t, api, false, false, true)
			j := e.submitType(t, "transcode", `1`)
			c := claimNow(t, api, time.Minute, "transcode")
			e.clock.Advance(time.Second)
			if _, err := api.Heartbeat(ctx, j.ID, c.LeaseID, &jobs.Progress{Percent: 10}); err != nil {
				t.Fatalf("Heartbeat: %v", err)
			}
			canceler := api
			if where == "another process" {
				canceler = e.svc
			}
			if _, err := canceler.Cancel(ctx, "cli_a", j.ID); err != nil {
				t.Fatalf("Cancel: %v", err)
			}
			rec := e.record(t, j.ID)
			// The clock stands still: only the cancel, not the end of the
			// coalescing second, can make the heartbeat go to the store.
			var err error
			for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				if _, err = api.Heartbeat(ctx, j.ID, c.LeaseID, &jobs.Progress{Percent: 20}); err != nil {
					break
				}
			}
			if !errors.Is(err, jobs.ErrCanceled) {
				t.Errorf("Heartbeat after the cancel = %v, want ErrCanceled within a second", err)
			}
			if _, err := api.Complete(ctx, j.ID, c.LeaseID, []string{"transcode"}, json.RawMessage(`1`)); !errors.Is(err, jobs.ErrCanceled) {
				t.Errorf("Complete after the cancel = %v, want ErrCanceled", err)
			}
			if _, err := api.Fail(ctx, j.ID, c.LeaseID, []string{"transcode"}, jobs.Error{Code: "x"}, true); !errors.Is(err, jobs.ErrCanceled) {
				t.Errorf("Fail after the cancel = %v, want ErrCanceled", err)
			}
			if after := e.record(t, j.ID); !maps.Equal(rec, after) {
				t.Errorf("the worker's calls after the cancel changed the record\nbefore %v\n after %v", rec, after)
			}
			checkDelivery(t, e, j.ID, jobs.EventCanceled, `"code":"canceled"`)
		})
	}
}

// TestExpireAtTheDeadline runs on the real clock: a job submitted with a
// deadline 1.5 s ahead has its expiry enqueued for then, and the expiry
// (run a little early, as tasks on whole seconds are) ends it as EXPIRED
// within a second of the deadline; its worker is told ErrExpired.
func TestExpireAtTheDeadline(t *testing.T) {
	t.Parallel() // waits 1.5 s; measures no Redis commands
	e := newEnv(t, externalTypes, withNow(time.Now))
	e.svc = e.service()
	ctx := context.Background()
	deadline := time.Now().Add(1500 * time.Millisecond).UTC()
	sub := echoSub(`1`)
	sub.Type, sub.Deadline = "transcode", &deadline
	j := e.submit(t, "cli_a", sub)
	wantDeadline := deadline.Truncate(time.Millisecond)
	if exp := e.enq.Expiries(); !reflect.DeepEqual(exp, []enqueueCall{{j.ID, 0, wantDeadline, 0}}) {
		t.Errorf("expiries enqueued = %+v, want one for %s at %v", exp, j.ID, wantDeadline)
	}
	if got := e.get(t, "cli_a", j.ID); got.Deadline == nil || !got.Deadline.Equal(wantDeadline) {
		t.Errorf("GetJob deadline = %v, want %v", got.Deadline, wantDeadline)
	}
	c := claimNow(t, e.svc, time.Minute, "transcode")

	if err := e.svc.Expire(ctx, j.ID); err != nil {
		t.Fatalf("Expire: %v", err)
	}
	late := time.Since(wantDeadline)
	t.Logf("expired %v after the deadline", late)
	if late < 0 || late > time.Second {
		t.Errorf("Expire ended the job %v after its deadline, want within [0, 1 s]", late)
	}
	got := e.job(t, j.ID)
	if got.Status != jobs.StatusExpired || errorCode(got.Error) != "deadline_exceeded" ||
		!strings.Contains(got.Error.Message, wantDeadline.Format(time.RFC3339Nano)) {
		t.Errorf("job = %s %+v, want EXPIRED deadline_exceeded naming %v", got.Status, got.Error, wantDeadline)
	}
	checkDelivery(t, e, j.ID, jobs.EventExpired, `"code":"deadline_exceeded"`)
	if _, err := e.svc.Heartbeat(ctx, j.ID, c.LeaseID, nil); !errors.Is(err, jobs.ErrExpired) {
		t.Errorf("Heartbeat after the expiry = %v, want ErrExpired", err)
	}
	if _, err := e.svc.Complete(ctx, j.ID, c.LeaseID, []string{"transcode"}, json.RawMessage(`1`)); !errors.Is(err, jobs.ErrExpired) {
		t.Errorf("Complete after the expiry = %v, want ErrExpired", err)
	}
	// The expiry task again (asynq retried it): nothing changes.
	rec := e.record(t, j.ID)
	if err := e.svc.Expire(ctx, j.ID); err != nil {
		t.Errorf("Expire again: %v", err)
	}
	if after := e.record(t, j.ID); !maps.Equal(rec, after) || len(e.enq.Scheduled()) != 1 {
		t.Errorf("a repeated expiry changed the record or scheduled %d deliveries", len(e.enq.Scheduled()))
	}
}

func TestExpireLeavesOthersAlone(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(t *testing.T, e *env) string
	}{
		{"a job without a deadline", func(t *testing.T, e *env) string { return e.submitType(t, "echo", `1`).ID }},
		{"a completed job", func(t *testing.T, e *env) string {
			sub := echoSub(`1`)
			d := e.clock.Now().Add(time.Minute)
			sub.Deadline = &d
			j := e.submit(t, "cli_a", sub)
			if err := e.svc.Run(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			e.clock.Set(d)
			return j.ID
		}},
		{"no such job", func(*testing.T, *env) string { return "req_01KJ0000000000000000000000" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			id := tt.setup(t, e)
			before := e.dataKeysAndRecord(t, id)
			if err := e.svc.Expire(ctx, id); err != nil {
				t.Errorf("Expire = %v, want nil", err)
			}
			if after := e.dataKeysAndRecord(t, id); !reflect.DeepEqual(before, after) {
				t.Errorf("Expire changed the store\nbefore %v\n after %v", before, after)
			}
		})
	}
	t.Run("its context ends first", func(t *testing.T) {
		e := newEnv(t, nil)
		sub := echoSub(`1`)
		d := e.clock.Now().Add(time.Hour)
		sub.Deadline = &d
		j := e.submit(t, "cli_a", sub)
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if err := e.svc.Expire(cctx, j.ID); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Expire an hour early, context ending = %v, want context.DeadlineExceeded (the task runs again)", err)
		}
		if got := e.job(t, j.ID); got.Status != jobs.StatusAccepted {
			t.Errorf("job = %s, want ACCEPTED", got.Status)
		}
	})
}

// dataKeysAndRecord is what Expire may change: the keys and the record.
func (e *env) dataKeysAndRecord(t testing.TB, id string) []any {
	return []any{e.dataKeys(t), e.record(t, id)}
}

func TestSubmitDeadline(t *testing.T) {
	const maxDeadline = time.Hour
	tests := []struct {
		name     string
		in       time.Duration // from now
		wantCode string        // "" accepted
	}{
		{"in the past", -time.Second, "in-past"},
		{"now", 0, "in-past"},
		{"a millisecond ahead", time.Millisecond, ""},
		{"at the maximum", maxDeadline, ""},
		{"beyond the maximum", maxDeadline + time.Millisecond, "too-far"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, func(o *jobs.ServiceOptions) { o.MaxDeadline = maxDeadline })
			d := e.clock.Now().Add(tt.in)
			sub := echoSub(`1`)
			sub.Deadline = &d
			j, _, err := e.svc.Submit(context.Background(), "cli_a", sub)
			if tt.wantCode == "" {
				if err != nil || j.Deadline == nil || !j.Deadline.Equal(d) {
					t.Fatalf("Submit with deadline now+%v = %+v, %v; want accepted with it", tt.in, j.Deadline, err)
				}
				if exp := e.enq.Expiries(); len(exp) != 1 || !exp[0].At.Equal(d) {
					t.Errorf("expiries = %+v, want one at %v", exp, d)
				}
				return
			}
			var ve *jobs.ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "deadline" || ve.Fields[0].Code != tt.wantCode {
				t.Fatalf("Submit with deadline now+%v = %v, want a ValidationError on deadline, code %s", tt.in, err, tt.wantCode)
			}
			if keys := e.dataKeys(t); len(keys) != 0 || len(e.enq.Expiries()) != 0 {
				t.Errorf("a refused submission stored %v and enqueued expiries %v", keys, e.enq.Expiries())
			}
		})
	}
}

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

	"github.com/boomerang-dev/boomerang/jobs"
)

func TestRunEchoCompletesAndDelivers(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	const payload = `{"b": [1, 2],  "a":"x", "u":"\u00e9"}`
	sub := echoSub(payload)
	sub.Metadata = map[string]string{"order": "42", "team": "blue"}
	j := e.submit(t, "cli_a", sub)

	if err := e.svc.Run(ctx, j.ID); err != nil {
		t.Fatalf("Run(%s): %v", j.ID, err)
	}
	got := e.get(t, "cli_a", j.ID)
	if got.Status != jobs.StatusCompleted || got.Attempts != 1 || got.Error != nil || got.CompletedAt == nil {
		t.Fatalf("after Run: %+v; want COMPLETED, attempts 1, no error, completedAt set", got)
	}
	if string(got.Result) != payload {
		t.Errorf("result = %s, want the payload bytes exactly: %s", got.Result, payload)
	}
	if got.DeliveryID != jobs.DeliveryID(j.ID) {
		t.Errorf("deliveryId = %q, want %q", got.DeliveryID, jobs.DeliveryID(j.ID))
	}

	msgs := e.del.Messages()
	if len(msgs) != 1 {
		t.Fatalf("Deliver called %d times, want 1", len(msgs))
	}
	m := msgs[0]
	if m.ID != jobs.DeliveryID(j.ID) || m.RequestID != j.ID || m.ClientID != "cli_a" || m.EventType != jobs.EventCompleted || m.URL != callback {
		t.Errorf("message = {ID %q RequestID %q ClientID %q EventType %q URL %q}; want {%q %q cli_a job.completed %q}",
			m.ID, m.RequestID, m.ClientID, m.EventType, m.URL, jobs.DeliveryID(j.ID), j.ID, callback)
	}

	// The body is the documented webhook JSON.
	var body map[string]json.RawMessage
	if err := json.Unmarshal(m.Body, &body); err != nil {
		t.Fatalf("body %s is not a JSON object: %v", m.Body, err)
	}
	if keys := sortedKeys(body); !reflect.DeepEqual(keys, []string{"data", "timestamp", "type"}) {
		t.Errorf("body keys = %v, want [data timestamp type]; body %s", keys, m.Body)
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
			Result      json.RawMessage   `json:"result"`
			Metadata    map[string]string `json:"metadata"`
			CreatedAt   time.Time         `json:"createdAt"`
			CompletedAt time.Time         `json:"completedAt"`
		} `json:"data"`
	}
	if err := json.Unmarshal(m.Body, &typed); err != nil {
		t.Fatal(err)
	}
	d := typed.Data
	if typed.Type != "job.completed" || d.RequestID != j.ID || d.Type != "echo" || d.Status != "COMPLETED" ||
		!reflect.DeepEqual(d.Metadata, sub.Metadata) || !d.CreatedAt.Equal(got.CreatedAt) ||
		!d.CompletedAt.Equal(*got.CompletedAt) || !typed.Timestamp.Equal(*got.CompletedAt) {
		t.Errorf("body = %s; want type job.completed, requestId %s, type echo, status COMPLETED, metadata %v, createdAt %v, completedAt and timestamp %v",
			m.Body, j.ID, sub.Metadata, got.CreatedAt, got.CompletedAt)
	}
	if !bytes.Contains(m.Body, []byte(`"result":`+payload+`,`)) {
		t.Errorf("body %s does not carry the payload byte for byte: %s", m.Body, payload)
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
	type outcome struct {
		retry    bool  // Run returns an error
		is       error // and that error matches this one (errors.Is), if set
		status   jobs.Status
		attempts int
		code     string // of the job error, FAILED only
		message  string
	}
	tests := []struct {
		name        string
		proc        jobs.Processor
		timeout     time.Duration
		maxAttempts int
		runs        []outcome // one per Run
	}{
		{"retryable error, retried until MaxAttempts", fail(boom), time.Second, 3, []outcome{
			{retry: true, is: boom, status: jobs.StatusProcessing, attempts: 1},
			{retry: true, is: boom, status: jobs.StatusProcessing, attempts: 2},
			{status: jobs.StatusFailed, attempts: 3, code: "processing_failed", message: "boom"},
		}},
		{"MaxAttempts 1 fails at once", fail(boom), time.Second, 1, []outcome{
			{status: jobs.StatusFailed, attempts: 1, code: "processing_failed", message: "boom"},
		}},
		{"permanent error fails at once", fail(jobs.Permanent(boom)), time.Second, 5, []outcome{
			{status: jobs.StatusFailed, attempts: 1, code: "processing_failed", message: "boom"},
		}},
		{"permanent Failure keeps its code", fail(&jobs.Failure{Code: "bad_image", Message: "not a PNG", Permanent: true}), time.Second, 5, []outcome{
			{status: jobs.StatusFailed, attempts: 1, code: "bad_image", message: "not a PNG"},
		}},
		{"Permanent of a Failure keeps its code", fail(jobs.Permanent(&jobs.Failure{Code: "quota", Message: "over quota"})), time.Second, 5, []outcome{
			{status: jobs.StatusFailed, attempts: 1, code: "quota", message: "over quota"},
		}},
		{"retryable Failure: its code on the last attempt", fail(fmt.Errorf("wrapped: %w", &jobs.Failure{Code: "upstream_503", Message: "busy"})), time.Second, 2, []outcome{
			{retry: true, status: jobs.StatusProcessing, attempts: 1},
			{status: jobs.StatusFailed, attempts: 2, code: "upstream_503", message: "busy"},
		}},
		{"timeout retried, then code timeout", waitForDeadline, 10 * time.Millisecond, 2, []outcome{
			{retry: true, is: context.DeadlineExceeded, status: jobs.StatusProcessing, attempts: 1},
			{status: jobs.StatusFailed, attempts: 2, code: "timeout"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(r *jobs.Registry) { r.Register("work", tc.proc, tc.timeout) }, withMaxAttempts(tc.maxAttempts))
			sub := echoSub(`{}`)
			sub.Type = "work"
			j := e.submit(t, "cli_a", sub)
			for i, want := range tc.runs {
				err := e.svc.Run(context.Background(), j.ID)
				switch {
				case !want.retry && err != nil:
					t.Fatalf("Run #%d: %v, want nil", i+1, err)
				case want.retry && err == nil:
					t.Fatalf("Run #%d = nil, want the processor's error", i+1)
				case want.is != nil && !errors.Is(err, want.is):
					t.Fatalf("Run #%d error = %v, want %v", i+1, err, want.is)
				}
				got := e.get(t, "cli_a", j.ID)
				if got.Status != want.status || got.Attempts != want.attempts {
					t.Fatalf("after Run #%d: status %s attempts %d, want %s %d", i+1, got.Status, got.Attempts, want.status, want.attempts)
				}
				msgs := e.del.Messages()
				if want.status != jobs.StatusFailed {
					if got.Error != nil || len(msgs) != 0 {
						t.Errorf("after Run #%d: error %+v, %d messages; want neither before the job ends", i+1, got.Error, len(msgs))
					}
					continue
				}
				if got.Error == nil || got.Error.Code != want.code || (want.message != "" && got.Error.Message != want.message) || got.Error.Message == "" {
					t.Errorf("job error = %+v, want code %q message %q", got.Error, want.code, want.message)
				}
				if got.Result != nil || got.CompletedAt == nil {
					t.Errorf("failed job has result %s, completedAt %v; want no result and a completedAt", got.Result, got.CompletedAt)
				}
				if len(msgs) != 1 || msgs[0].EventType != jobs.EventFailed || msgs[0].ID != jobs.DeliveryID(j.ID) {
					t.Fatalf("messages = %+v; want one job.failed message with id %s", msgs, jobs.DeliveryID(j.ID))
				}
				var body struct {
					Type string `json:"type"`
					Data struct {
						Status string          `json:"status"`
						Error  *jobs.Error     `json:"error"`
						Result json.RawMessage `json:"result"`
					} `json:"data"`
				}
				if err := json.Unmarshal(msgs[0].Body, &body); err != nil {
					t.Fatal(err)
				}
				if body.Type != jobs.EventFailed || body.Data.Status != "FAILED" || body.Data.Error == nil ||
					*body.Data.Error != *got.Error || body.Data.Result != nil {
					t.Errorf("failed body = %s; want type job.failed, status FAILED, error %+v, no result", msgs[0].Body, got.Error)
				}
			}
		})
	}
}

func TestRunRetryableErrorIsReturnedAsIs(t *testing.T) {
	boom := errors.New("boom")
	e := newEnv(t, func(r *jobs.Registry) {
		r.Register("work", jobs.ProcessorFunc(func(context.Context, jobs.Input) (json.RawMessage, error) { return nil, boom }), time.Second)
	})
	sub := echoSub(`1`)
	sub.Type = "work"
	j := e.submit(t, "cli_a", sub)
	if err := e.svc.Run(context.Background(), j.ID); !errors.Is(err, boom) {
		t.Fatalf("Run error = %v, want %v", err, boom)
	}
}

func TestRunCompletedJobRedeliversWithoutReprocessing(t *testing.T) {
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
			sub := echoSub(`{"k":"v"}`)
			sub.Type = "work"
			sub.Metadata = map[string]string{"m": "1"}
			j := e.submit(t, "cli_a", sub)
			for i := 0; i < 3; i++ {
				if err := e.svc.Run(ctx, j.ID); err != nil {
					t.Fatalf("Run #%d: %v", i+1, err)
				}
			}
			if n := p.Calls(); n != 1 {
				t.Errorf("processor called %d times over 3 Runs, want 1", n)
			}
			got := e.get(t, "cli_a", j.ID)
			if got.Status != tc.status || got.Attempts != 1 {
				t.Errorf("job = %s attempts %d, want %s attempts 1", got.Status, got.Attempts, tc.status)
			}
			msgs := e.del.Messages()
			if len(msgs) != 3 {
				t.Fatalf("Deliver called %d times, want 3", len(msgs))
			}
			for i, m := range msgs[1:] {
				if m.ID != msgs[0].ID || m.EventType != msgs[0].EventType || m.URL != msgs[0].URL || !bytes.Equal(m.Body, msgs[0].Body) {
					t.Errorf("re-delivery #%d = {%s %s %s %s}; want the first delivery again {%s %s %s %s}",
						i+1, m.ID, m.EventType, m.URL, m.Body, msgs[0].ID, msgs[0].EventType, msgs[0].URL, msgs[0].Body)
				}
			}
		})
	}
}

func TestRunUnknownJobIsNil(t *testing.T) {
	e := newEnv(t, nil)
	for _, id := range []string{"req_unknown", "", "x"} {
		if err := e.svc.Run(context.Background(), id); err != nil {
			t.Errorf("Run(%q) = %v, want nil", id, err)
		}
	}
	if n := len(e.del.Messages()); n != 0 {
		t.Errorf("Deliver called %d times for unknown jobs", n)
	}
}

func TestRunDelivererErrorIsReturned(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	j := e.submit(t, "cli_a", echoSub(`1`))
	down := errors.New("dispatcher down")
	e.del.SetErr(down)
	if err := e.svc.Run(ctx, j.ID); !errors.Is(err, down) {
		t.Fatalf("Run with a failing Deliverer = %v, want %v", err, down)
	}
	// The outcome and the delivery are written together or not at all: the
	// job is not COMPLETED without a delivery, and the next Run processes
	// it again (at-least-once processing) and delivers.
	if got := e.get(t, "cli_a", j.ID); got.Status != jobs.StatusProcessing {
		t.Errorf("status after the failed delivery = %s, want PROCESSING (nothing written)", got.Status)
	}
	e.del.SetErr(nil)
	if err := e.svc.Run(ctx, j.ID); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if got := e.get(t, "cli_a", j.ID); got.Attempts != 2 || got.Status != jobs.StatusCompleted {
		t.Errorf("after the second Run: attempts %d status %s, want 2 COMPLETED", got.Attempts, got.Status)
	}
	if n := len(e.del.Messages()); n != 1 {
		t.Errorf("deliveries handed over = %d, want 1", n)
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
		{``, `null`, ""},
		{`plain text`, "", "invalid_result"},
		{`{"ok":`, "", "invalid_result"},
	}
	for _, tc := range tests {
		e := newEnv(t, func(r *jobs.Registry) {
			r.Register("work", jobs.ProcessorFunc(func(context.Context, jobs.Input) (json.RawMessage, error) {
				return json.RawMessage(tc.result), nil
			}), time.Second)
		})
		sub := echoSub(`1`)
		sub.Type = "work"
		j := e.submit(t, "cli_a", sub)
		if err := e.svc.Run(context.Background(), j.ID); err != nil {
			t.Fatal(err)
		}
		got := e.get(t, "cli_a", j.ID)
		code := ""
		if got.Error != nil {
			code = got.Error.Code
		}
		if string(got.Result) != tc.want || code != tc.wantCode {
			t.Errorf("processor result %q: stored result %s, error code %q; want result %s, code %q", tc.result, got.Result, code, tc.want, tc.wantCode)
		}
	}
}

func TestRunTypeUnknownToWorkerFails(t *testing.T) {
	e := newEnv(t, func(r *jobs.Registry) { r.Register("gone", jobs.Echo, time.Second) })
	sub := echoSub(`1`)
	sub.Type = "gone"
	j := e.submit(t, "cli_a", sub)
	worker := e.service(jobs.NewRegistry(), 5) // a worker without the type
	if err := worker.Run(context.Background(), j.ID); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := e.get(t, "cli_a", j.ID)
	if got.Status != jobs.StatusFailed || got.Error == nil || got.Error.Code != "unknown_type" {
		t.Errorf("job of a type the worker lacks = %s %+v, want FAILED unknown_type", got.Status, got.Error)
	}
}

func TestRunAttemptsExhaustedBeforeProcessing(t *testing.T) {
	boom := errors.New("boom")
	p := &countingProcessor{fn: func(context.Context, jobs.Input) (json.RawMessage, error) { return nil, boom }}
	e := newEnv(t, func(r *jobs.Registry) { r.Register("work", p, time.Second) }, withMaxAttempts(5))
	sub := echoSub(`1`)
	sub.Type = "work"
	j := e.submit(t, "cli_a", sub)
	if err := e.svc.Run(context.Background(), j.ID); !errors.Is(err, boom) {
		t.Fatalf("first Run = %v, want %v", err, boom)
	}
	// Configuration lowered MaxAttempts to 1 before the retry.
	if err := e.service(e.reg, 1).Run(context.Background(), j.ID); err != nil {
		t.Fatalf("Run with attempts exhausted: %v", err)
	}
	got := e.get(t, "cli_a", j.ID)
	if got.Status != jobs.StatusFailed || got.Error == nil || got.Error.Code != "attempts_exhausted" || got.Attempts != 1 {
		t.Errorf("job = %s attempts %d error %+v; want FAILED attempts_exhausted after 1 attempt", got.Status, got.Attempts, got.Error)
	}
	if n := p.Calls(); n != 1 {
		t.Errorf("processor called %d times, want 1", n)
	}
}

func TestRunCanceledContextLeavesJobForLater(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t, func(r *jobs.Registry) {
		r.Register("work", jobs.ProcessorFunc(func(pctx context.Context, _ jobs.Input) (json.RawMessage, error) {
			cancel() // the worker shuts down mid-job
			<-pctx.Done()
			return nil, jobs.Permanent(pctx.Err())
		}), time.Minute)
	}, withMaxAttempts(1))
	sub := echoSub(`1`)
	sub.Type = "work"
	j := e.submit(t, "cli_a", sub)
	if err := e.svc.Run(ctx, j.ID); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run during shutdown = %v, want context.Canceled", err)
	}
	if got := e.get(t, "cli_a", j.ID); got.Status != jobs.StatusProcessing || got.Error != nil {
		t.Errorf("job after an interrupted Run = %s %+v, want PROCESSING without error", got.Status, got.Error)
	}
	if n := len(e.del.Messages()); n != 0 {
		t.Errorf("an interrupted job was delivered %d times", n)
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

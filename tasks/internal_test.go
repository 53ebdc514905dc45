package tasks

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/hibiken/asynq"
)

func TestWholeSeconds(t *testing.T) {
	tests := []struct{ in, want time.Duration }{
		{0, 0},
		{time.Nanosecond, time.Second},
		{999 * time.Millisecond, time.Second},
		{time.Second, time.Second},
		{time.Second + time.Nanosecond, 2 * time.Second},
		{1500 * time.Millisecond, 2 * time.Second},
		{10 * time.Second, 10 * time.Second},
		{90*time.Second + time.Millisecond, 91 * time.Second},
		{-time.Second, 0},
	}
	for _, tc := range tests {
		if got := wholeSeconds(tc.in); got != tc.want {
			t.Errorf("wholeSeconds(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestMuxRoutesPayloads(t *testing.T) {
	type call struct {
		kind, id string
		n        int
	}
	var calls []call
	h := Handlers{
		RunJob: func(_ context.Context, id string) error { calls = append(calls, call{"job", id, 0}); return nil },
		Attempt: func(_ context.Context, id string, n int) error {
			calls = append(calls, call{"attempt", id, n})
			return nil
		},
		RunBulkReplay: func(_ context.Context, id string) error { calls = append(calls, call{"replay", id, 0}); return nil },
	}
	mux := h.mux()
	tests := []struct {
		typ, payload string
		want         *call // nil: rejected with SkipRetry, no handler called
	}{
		{TypeJob, "req_1", &call{"job", "req_1", 0}},
		{TypeReplay, "rpl_1", &call{"replay", "rpl_1", 0}},
		{TypeDelivery, `{"d":"msg_1","n":3}`, &call{"attempt", "msg_1", 3}},
		{TypeDelivery, `not json`, nil},
		{TypeDelivery, ``, nil},
		{TypeDelivery, `{"d":"","n":1}`, nil},
		{TypeDelivery, `{"d":"msg_1","n":0}`, nil},
		{TypeDelivery, `{"d":"msg_1","n":-1}`, nil},
		{TypeDelivery, `{"d":"msg_1"}`, nil},
		{TypeDelivery, `{"d":"msg_1","n":"2"}`, nil},
	}
	for _, tc := range tests {
		calls = nil
		err := mux.ProcessTask(context.Background(), asynq.NewTask(tc.typ, []byte(tc.payload)))
		if tc.want == nil {
			if !errors.Is(err, asynq.SkipRetry) || len(calls) != 0 {
				t.Errorf("%s %q: error %v, calls %v; want SkipRetry and no handler call", tc.typ, tc.payload, err, calls)
			}
			continue
		}
		if err != nil || len(calls) != 1 || calls[0] != *tc.want {
			t.Errorf("%s %q: error %v, calls %v; want nil and %v", tc.typ, tc.payload, err, calls, *tc.want)
		}
	}
	if err := mux.ProcessTask(context.Background(), asynq.NewTask("other:type", nil)); err == nil {
		t.Error("a task of an unknown type was handled")
	}
}

func TestMuxReturnsHandlerErrors(t *testing.T) {
	boom := errors.New("boom")
	fail := func(context.Context, string) error { return boom }
	mux := Handlers{RunJob: fail, RunBulkReplay: fail,
		Attempt: func(context.Context, string, int) error { return boom }}.mux()
	for _, task := range []*asynq.Task{
		asynq.NewTask(TypeJob, []byte("req_1")),
		asynq.NewTask(TypeReplay, []byte("rpl_1")),
		asynq.NewTask(TypeDelivery, []byte(`{"d":"msg_1","n":1}`)),
	} {
		if err := mux.ProcessTask(context.Background(), task); !errors.Is(err, boom) || errors.Is(err, asynq.SkipRetry) {
			t.Errorf("%s: error %v, want the handler's error, retryable", task.Type(), err)
		}
	}
}

func TestAsynqLogger(t *testing.T) {
	var buf bytes.Buffer
	l := asynqLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	tests := []struct {
		log  func(...any)
		want string
	}{
		{l.Debug, `level=DEBUG msg="lease 3" component=asynq`},
		{l.Info, `level=INFO msg="lease 3" component=asynq`},
		{l.Warn, `level=WARN msg="lease 3" component=asynq`},
		{l.Error, `level=ERROR msg="lease 3" component=asynq`},
		{l.Fatal, `level=ERROR msg="lease 3" component=asynq fatal=true`},
	}
	for _, tc := range tests {
		buf.Reset()
		tc.log("lease ", 3)
		if !strings.Contains(buf.String(), tc.want) {
			t.Errorf("logged %q, want it to contain %q", buf.String(), tc.want)
		}
	}
}

// A time that is not after the queue's now needs no ProcessAt: the attempt
// is due at once.
func TestDueTimeBoundary(t *testing.T) {
	rdb := redistest.Client(t)
	q := NewQueue(rdb, []string{"p0.x", "p1.y"}, time.Second)
	defer q.Close()
	now := time.Now().Add(time.Hour) // the queue's clock runs an hour ahead
	q.now = func() time.Time { return now }
	insp := asynq.NewInspectorFromRedisClient(rdb)
	req := ids.NewIn(ids.Request, now, 1)
	msg := ids.Delivery + ids.Body(req)
	enqueue := map[string]func(n int, at time.Time) error{
		req: func(n int, at time.Time) error { return q.EnqueueJob(context.Background(), req, n, at, time.Second) },
		msg: func(n int, at time.Time) error { return q.ScheduleAttempt(context.Background(), msg, n, at) },
	}
	tests := []struct {
		n     int
		at    time.Time
		state asynq.TaskState
	}{
		{1, now, asynq.TaskStatePending},
		{2, now.Add(-time.Minute), asynq.TaskStatePending},
		{3, now.Add(time.Second), asynq.TaskStateScheduled},
		{4, time.Time{}, asynq.TaskStatePending},
	}
	for id, enq := range enqueue {
		for _, tc := range tests {
			if err := enq(tc.n, tc.at); err != nil {
				t.Fatal(err)
			}
			info, err := insp.GetTaskInfo("p1.y", id+":"+strconv.Itoa(tc.n))
			if err != nil {
				t.Fatalf("%s attempt %d: %v", id, tc.n, err)
			}
			if info.State != tc.state {
				t.Errorf("%s attempt %d at now%+v is %v, want %v", id, tc.n, tc.at.Sub(now), info.State, tc.state)
			}
		}
	}
}

package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
)

// events reads a stream until it closes, failing the test if it does not
// within the guard.
func events(t testing.TB, st *jobs.Stream) []jobs.Event {
	t.Helper()
	var out []jobs.Event
	timeout := time.After(guard)
	for {
		select {
		case e, ok := <-st.Events:
			if !ok {
				if err := st.Err(); err != nil {
					t.Errorf("stream ended with %v", err)
				}
				return out
			}
			out = append(out, e)
		case <-timeout:
			t.Fatalf("the stream did not close; events so far: %v", describe(out))
		}
	}
}

// next reads n events of a stream.
func next(t testing.TB, st *jobs.Stream, n int) []jobs.Event {
	t.Helper()
	return receive(t, st.Events, n, "stream events")
}

// describe is "<id> <name> <data>" per event, for failure messages.
func describe(evs []jobs.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%d %s %s", e.ID, e.Name, e.Data)
	}
	return out
}

func namesAndIDs(evs []jobs.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%d %s", e.ID, e.Name)
	}
	return out
}

// statusOf decodes a status event.
type statusData struct {
	RequestID string      `json:"requestId"`
	Status    jobs.Status `json:"status"`
	Attempt   int         `json:"attempt"`
	UpdatedAt time.Time   `json:"updatedAt"`
	LastError *jobs.Error `json:"lastError"`
	Percent   float64     `json:"percent"` // progress events
	Message   string      `json:"message"`
}

func decode(t testing.TB, e jobs.Event) statusData {
	t.Helper()
	var d statusData
	if err := json.Unmarshal(e.Data, &d); err != nil {
		t.Fatalf("event %d %s data %s: %v", e.ID, e.Name, e.Data, err)
	}
	return d
}

// runExternalJob takes an external job through every kind of event:
// claimed (1), progress (2), a retryable failure (3), claimed again (4),
// completed (5). Each step is a second later.
func runExternalJob(t *testing.T, e *env, id string) {
	t.Helper()
	ctx := context.Background()
	e.clock.Advance(time.Second)
	c := claimNow(t, e.svc, time.Minute, "transcode")
	e.clock.Advance(time.Second)
	if _, err := e.svc.Heartbeat(ctx, id, c.LeaseID, &jobs.Progress{Percent: 40, Message: "encoding"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	if _, err := e.svc.Fail(ctx, id, c.LeaseID, []string{"transcode"}, jobs.Error{Code: "gpu_busy", Message: "later"}, true); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(retryDelay(1))
	if ok, err := e.store.RequeueExternal(ctx, id, "transcode", e.clock.Now()); !ok || err != nil {
		t.Fatalf("requeue: %v, %v", ok, err)
	}
	c = claimNow(t, e.svc, time.Minute, "transcode")
	e.clock.Advance(time.Second)
	if _, err := e.svc.Complete(ctx, id, c.LeaseID, []string{"transcode"}, json.RawMessage(bigPayload)); err != nil {
		t.Fatal(err)
	}
}

var wantRun = []string{"0 status", "1 status", "2 progress", "3 status", "4 status", "5 job.completed"}

func TestWatchStreamsEveryChangeThenTheWebhook(t *testing.T) {
	e := newEnv(t, externalTypes)
	e.listen(t, e.svc, true, false, false)
	j := e.submitType(t, "transcode", `1`)
	st, err := e.svc.Watch(context.Background(), "cli_a", j.ID, 0, false)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	runExternalJob(t, e, j.ID)
	evs := events(t, st)
	if got := namesAndIDs(evs); !slices.Equal(got, wantRun) {
		t.Fatalf("events = %v\nwant %v", describe(evs), wantRun)
	}
	want := []statusData{
		{RequestID: j.ID, Status: jobs.StatusAccepted, UpdatedAt: t0},
		{RequestID: j.ID, Status: jobs.StatusProcessing, Attempt: 1, UpdatedAt: t0.Add(time.Second)},
		{RequestID: j.ID, Percent: 40, Message: "encoding", UpdatedAt: t0.Add(2 * time.Second)},
		{RequestID: j.ID, Status: jobs.StatusProcessing, Attempt: 1, UpdatedAt: t0.Add(3 * time.Second), LastError: &jobs.Error{Code: "gpu_busy", Message: "later"}},
		{RequestID: j.ID, Status: jobs.StatusProcessing, Attempt: 2, UpdatedAt: t0.Add(3*time.Second + retryDelay(1))},
	}
	for i, w := range want {
		got := decode(t, evs[i])
		if got.RequestID != w.RequestID || got.Status != w.Status || got.Attempt != w.Attempt || !got.UpdatedAt.Equal(w.UpdatedAt) ||
			got.Percent != w.Percent || got.Message != w.Message || !sameError(got.LastError, w.LastError) {
			t.Errorf("event %d = %s\nwant %+v", evs[i].ID, evs[i].Data, w)
		}
	}
	final := evs[len(evs)-1]
	d, err := e.store.GetDelivery(context.Background(), jobs.DeliveryID(j.ID), false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(final.Data, d.Payload) || !strings.Contains(string(final.Data), `"result":`+bigPayload) {
		t.Errorf("final event data = %s\nwant the webhook body %s", final.Data, d.Payload)
	}
}

func sameError(a, b *jobs.Error) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func TestWatchResumesAfterLastEventID(t *testing.T) {
	e := newEnv(t, externalTypes)
	e.listen(t, e.svc, true, false, false)
	ctx := context.Background()
	j := e.submitType(t, "transcode", `1`)
	st, err := e.svc.Watch(ctx, "cli_a", j.ID, 0, false) // makes it watched: its events are kept
	if err != nil {
		t.Fatal(err)
	}
	runExternalJob(t, e, j.ID)
	all := events(t, st)

	tests := []struct {
		after int
		want  []string
	}{
		{0, wantRun[1:]},
		{2, wantRun[3:]},
		{4, wantRun[5:]},
	}
	t.Run("after the end", func(t *testing.T) {
		if _, err := e.svc.Watch(ctx, "cli_a", j.ID, 5, true); !errors.Is(err, jobs.ErrNoMoreEvents) {
			t.Errorf("resumed after the final event: %v, want ErrNoMoreEvents (nothing more, ever)", err)
		}
	})
	for _, tt := range tests {
		t.Run(fmt.Sprintf("after %d", tt.after), func(t *testing.T) {
			st, err := e.svc.Watch(ctx, "cli_a", j.ID, tt.after, true)
			if err != nil {
				t.Fatal(err)
			}
			evs := events(t, st)
			if got := namesAndIDs(evs); !slices.Equal(got, tt.want) {
				t.Fatalf("resumed after %d: %v\nwant %v", tt.after, describe(evs), tt.want)
			}
			for _, ev := range evs { // the very events the first watcher got
				if i := slices.IndexFunc(all, func(x jobs.Event) bool { return x.ID == ev.ID && x.Name == ev.Name }); i < 0 || !bytes.Equal(all[i].Data, ev.Data) {
					t.Errorf("resumed event %d %s = %s; the live one was different", ev.ID, ev.Name, ev.Data)
				}
			}
		})
	}

	t.Run("while the job runs", func(t *testing.T) {
		j := e.submitType(t, "transcode", `1`)
		if _, _, err := e.store.WatchJob(ctx, j.ID); err != nil { // watched since its creation
			t.Fatal(err)
		}
		e.clock.Advance(time.Second)
		c := claimNow(t, e.svc, time.Minute, "transcode") // event 1
		for i := range 2 {                                // events 2 and 3
			e.clock.Advance(time.Second)
			if _, err := e.svc.Heartbeat(ctx, j.ID, c.LeaseID, &jobs.Progress{Percent: float64(10 * (i + 1))}); err != nil {
				t.Fatal(err)
			}
		}
		st, err := e.svc.Watch(ctx, "cli_a", j.ID, 1, true)
		if err != nil {
			t.Fatal(err)
		}
		evs := next(t, st, 2)
		if got := namesAndIDs(evs); !slices.Equal(got, []string{"2 progress", "3 progress"}) {
			t.Fatalf("resumed after 1: %v, want 2 progress, 3 progress", describe(evs))
		}
		e.clock.Advance(time.Second)
		if _, err := e.svc.Complete(ctx, j.ID, c.LeaseID, []string{"transcode"}, json.RawMessage(`1`)); err != nil {
			t.Fatal(err)
		}
		if got := namesAndIDs(events(t, st)); !slices.Equal(got, []string{"4 job.completed"}) {
			t.Errorf("then live: %v, want 4 job.completed", got)
		}
	})

	t.Run("too far back", func(t *testing.T) {
		j := e.submitType(t, "transcode", `1`)
		if _, _, err := e.store.WatchJob(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
		c := claimNow(t, e.svc, time.Minute, "transcode")
		for i := range 60 { // events 2..61; the store keeps the last 50
			e.clock.Advance(time.Second)
			if _, err := e.svc.Heartbeat(ctx, j.ID, c.LeaseID, &jobs.Progress{Percent: float64(i)}); err != nil {
				t.Fatal(err)
			}
		}
		st, err := e.svc.Watch(ctx, "cli_a", j.ID, 3, true)
		if err != nil {
			t.Fatal(err)
		}
		ev := next(t, st, 1)[0]
		if d := decode(t, ev); ev.ID != 61 || ev.Name != "status" || d.Status != jobs.StatusProcessing || d.Attempt != 1 {
			t.Errorf("resumed after 3 of 61 events = %d %s %s; want a status snapshot numbered 61", ev.ID, ev.Name, ev.Data)
		}
	})
}

// TestWatchReadsBackWhatItMissed: the events subscription restarted (a zero
// event) or an event went missing: the stream reads the missed events back
// from the store, in order, once each.
func TestWatchReadsBackWhatItMissed(t *testing.T) {
	e := newEnv(t, externalTypes)
	ctx := context.Background()
	feed := make(chan jobs.Event) // the test decides what the hub hears
	e.svc.Listen(feed, nil, nil)
	t.Cleanup(func() { close(feed) })
	j := e.submitType(t, "transcode", `1`)
	st, err := e.svc.Watch(ctx, "cli_a", j.ID, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := namesAndIDs(next(t, st, 1)); !slices.Equal(got, []string{"0 status"}) {
		t.Fatalf("first event %v, want 0 status", got)
	}

	e.clock.Advance(time.Second)
	c := claimNow(t, e.svc, time.Minute, "transcode") // event 1, unheard
	feed <- jobs.Event{}                              // the subscription restarted
	if got := namesAndIDs(next(t, st, 1)); !slices.Equal(got, []string{"1 status"}) {
		t.Fatalf("after a zero event: %v, want 1 status read back", got)
	}

	for i := range 2 { // events 2 and 3; only 3 is heard
		e.clock.Advance(time.Second)
		if _, err := e.svc.Heartbeat(ctx, j.ID, c.LeaseID, &jobs.Progress{Percent: float64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := e.store.JobEvents(ctx, j.ID, 2, 3)
	if err != nil || len(evs) != 1 {
		t.Fatalf("JobEvents(2, 3) = %v, %v", evs, err)
	}
	feed <- evs[0]
	feed <- evs[0] // heard twice: sent once
	got := next(t, st, 2)
	if names := namesAndIDs(got); !slices.Equal(names, []string{"2 progress", "3 progress"}) {
		t.Fatalf("after event 3 alone: %v, want 2 and 3 in order", describe(got))
	}
	if d := decode(t, got[0]); d.Percent != 1 {
		t.Errorf("event 2 = %s, want percent 1", got[0].Data)
	}

	e.clock.Advance(time.Second)
	if _, err := e.svc.Cancel(ctx, "", j.ID); err != nil {
		t.Fatal(err)
	}
	feed <- jobs.Event{}
	final := events(t, st)
	if names := namesAndIDs(final); !slices.Equal(names, []string{"4 job.canceled"}) {
		t.Errorf("after the cancel and a zero event: %v, want 4 job.canceled, then the end", describe(final))
	}
}

func TestWatchEndedJobAndRefusals(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	j := e.submitType(t, "echo", bigPayload)
	if err := e.svc.Run(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st, err := e.svc.Watch(ctx, "", j.ID, 0, false) // the operator
	if err != nil {
		t.Fatal(err)
	}
	evs := events(t, st)
	if got := namesAndIDs(evs); !slices.Equal(got, []string{"0 job.completed"}) || time.Since(start) > time.Second {
		t.Fatalf("watching a completed job: %v after %v; want its webhook at once, then the end", describe(evs), time.Since(start))
	}
	want, _ := jobs.WebhookBody(e.job(t, j.ID))
	if !bytes.Equal(evs[0].Data, want) {
		t.Errorf("final event %s\nwant the webhook body %s", evs[0].Data, want)
	}
	for _, tc := range []struct{ client, id string }{{"cli_b", j.ID}, {"cli_a", "req_01KJ0000000000000000000000"}, {"cli_a", "nonsense"}} {
		if _, err := e.svc.Watch(ctx, tc.client, tc.id, 0, false); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("Watch(%s, %s) = %v, want ErrNotFound", tc.client, tc.id, err)
		}
	}
}

func TestWaitFinal(t *testing.T) {
	e := newEnv(t, externalTypes)
	e.listen(t, e.svc, true, false, false)
	ctx := context.Background()

	t.Run("an ended job at once", func(t *testing.T) {
		j := e.submitType(t, "echo", `1`)
		if err := e.svc.Run(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		got, err := e.svc.WaitFinal(ctx, "cli_a", j.ID, 5*time.Second)
		if err != nil || got.Status != jobs.StatusCompleted || time.Since(start) > 200*time.Millisecond {
			t.Errorf("WaitFinal of a completed job = %s, %v after %v; want COMPLETED at once", got.Status, err, time.Since(start))
		}
	})
	t.Run("when it ends", func(t *testing.T) {
		j := e.submitType(t, "transcode", `1`)
		c := claimNow(t, e.svc, time.Minute, "transcode")
		type result struct {
			j   jobs.Job
			err error
			at  time.Time
		}
		done := make(chan result, 1)
		go func() {
			got, err := e.svc.WaitFinal(ctx, "cli_a", j.ID, 5*time.Second)
			done <- result{got, err, time.Now()}
		}()
		time.Sleep(100 * time.Millisecond)
		e.clock.Advance(time.Second)
		completed := time.Now()
		if _, err := e.svc.Complete(ctx, j.ID, c.LeaseID, []string{"transcode"}, json.RawMessage(`"ok"`)); err != nil {
			t.Fatal(err)
		}
		r := receive(t, done, 1, "WaitFinal")[0]
		if r.err != nil || r.j.Status != jobs.StatusCompleted || string(r.j.Result) != `"ok"` {
			t.Fatalf("WaitFinal = %s result %s, %v; want COMPLETED \"ok\"", r.j.Status, r.j.Result, r.err)
		}
		t.Logf("completed → WaitFinal returned: %v", r.at.Sub(completed))
		if d := r.at.Sub(completed); d > 200*time.Millisecond {
			t.Errorf("WaitFinal returned %v after the completion, want at once", d)
		}
	})
	t.Run("the wait ends first", func(t *testing.T) {
		j := e.submitType(t, "transcode", `1`)
		start := time.Now()
		got, err := e.svc.WaitFinal(ctx, "cli_a", j.ID, 300*time.Millisecond)
		took := time.Since(start)
		if err != nil || got.Status != jobs.StatusAccepted || took < 300*time.Millisecond || took > time.Second {
			t.Errorf("WaitFinal(300ms) of a waiting job = %s, %v after %v; want ACCEPTED after the wait", got.Status, err, took)
		}
	})
	t.Run("another client's job", func(t *testing.T) {
		j := e.submitType(t, "transcode", `1`)
		if _, err := e.svc.WaitFinal(ctx, "cli_b", j.ID, time.Second); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("WaitFinal by another client = %v, want ErrNotFound", err)
		}
	})
}

// TestIdleStreamCost: streams of jobs that do not change cost Redis
// nothing once started: they wait on the in-process hub, fed by the one
// events subscription of the process (whose own check is a PING after 30 s
// of silence: 2 a minute per process, whatever the number of streams).
func TestIdleStreamCost(t *testing.T) {
	const streams, idle = 10, 3 * time.Second
	e := newEnv(t, externalTypes)
	e.listen(t, e.svc, true, false, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ids []string
	for range streams {
		ids = append(ids, e.submitType(t, "transcode", `1`).ID)
	}
	for range streams / 2 { // half of them held by a worker
		claimNow(t, e.svc, time.Hour, "transcode")
	}
	var all []*jobs.Stream
	for _, id := range ids {
		st, err := e.svc.Watch(ctx, "cli_a", id, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		next(t, st, 1) // its start: the snapshot
		all = append(all, st)
	}

	before := commandCalls(t, e.rdb)
	time.Sleep(idle)
	total, breakdown := commandsSince(t, e.rdb, before)
	perMinute := float64(total) / float64(streams) * float64(time.Minute) / float64(idle)
	t.Logf("%d idle streams for %v: %d Redis commands (%s); %.1f per stream per minute", streams, idle, total, breakdown, perMinute)
	if total != 0 {
		t.Errorf("%d idle streams cost %d Redis commands in %v (%s), want 0", streams, total, idle, breakdown)
	}
	for _, st := range all {
		select {
		case ev, ok := <-st.Events:
			t.Errorf("an idle stream sent %v (open %v)", describe([]jobs.Event{ev}), ok)
		default:
		}
	}
}

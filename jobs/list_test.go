package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/page"
)

// makeJob submits a job of typ a second after the previous one and runs it
// once, unless typ is "".
func (e *env) makeJob(t *testing.T, clientID, typ string) jobs.Job {
	t.Helper()
	e.clock.Advance(time.Second)
	sub := echoSub(`{"p":1}`)
	if typ != "" {
		sub.Type = typ
	}
	j := e.submit(t, clientID, sub)
	if typ != "" {
		if err := e.svc.Run(context.Background(), j.ID); err != nil {
			t.Fatalf("Run(%s job): %v", typ, err)
		}
	}
	return e.get(t, clientID, j.ID)
}

// statusEnv registers "fail" (fails at once) and "retry" (stays PROCESSING),
// over two partitions, so listings merge them.
func statusEnv(t *testing.T) *env {
	return newEnv(t, func(r *jobs.Registry) {
		r.Register("fail", jobs.ProcessorFunc(func(context.Context, jobs.Input) (json.RawMessage, error) {
			return nil, jobs.Permanent(errors.New("no"))
		}), time.Second)
		r.Register("retry", jobs.ProcessorFunc(func(context.Context, jobs.Input) (json.RawMessage, error) {
			return nil, errors.New("later")
		}), time.Second)
	}, withPartitions(2))
}

func TestListFiltersAndPages(t *testing.T) {
	ctx := context.Background()
	e := statusEnv(t)
	// In creation order, one second apart.
	a1 := e.makeJob(t, "alice", "echo")  // COMPLETED
	a2 := e.makeJob(t, "alice", "")      // ACCEPTED
	a3 := e.makeJob(t, "alice", "fail")  // FAILED
	b1 := e.makeJob(t, "bob", "")        // ACCEPTED
	b2 := e.makeJob(t, "bob", "echo")    // COMPLETED
	a4 := e.makeJob(t, "alice", "retry") // PROCESSING
	for j, want := range map[*jobs.Job]jobs.Status{&a1: jobs.StatusCompleted, &a2: jobs.StatusAccepted, &a3: jobs.StatusFailed,
		&b1: jobs.StatusAccepted, &b2: jobs.StatusCompleted, &a4: jobs.StatusProcessing} {
		if j.Status != want {
			t.Fatalf("setup: job %s is %s, want %s", j.ID, j.Status, want)
		}
	}
	tests := []struct {
		filter jobs.Filter
		want   []jobs.Job
	}{
		{jobs.Filter{}, []jobs.Job{a4, b2, b1, a3, a2, a1}},
		{jobs.Filter{Status: jobs.StatusAccepted}, []jobs.Job{b1, a2}},
		{jobs.Filter{Status: jobs.StatusCompleted}, []jobs.Job{b2, a1}},
		{jobs.Filter{Status: jobs.StatusProcessing}, []jobs.Job{a4}},
		{jobs.Filter{Status: jobs.StatusFailed}, []jobs.Job{a3}},
		{jobs.Filter{ClientID: "alice"}, []jobs.Job{a4, a3, a2, a1}},
		{jobs.Filter{ClientID: "bob"}, []jobs.Job{b2, b1}},
		{jobs.Filter{ClientID: "alice", Status: jobs.StatusCompleted}, []jobs.Job{a1}},
		{jobs.Filter{ClientID: "alice", Status: jobs.StatusFailed}, []jobs.Job{a3}},
		{jobs.Filter{ClientID: "bob", Status: jobs.StatusFailed}, nil},
		{jobs.Filter{ClientID: "carol"}, nil},
	}
	for _, tc := range tests {
		for _, limit := range []int{1, 2, 100} {
			var got []jobs.Job
			cursor := ""
			for pages := 1; ; pages++ {
				pg, next, err := e.svc.List(ctx, tc.filter, limit, cursor)
				if err != nil {
					t.Fatalf("List(%+v, %d, %q): %v", tc.filter, limit, cursor, err)
				}
				if len(pg) > limit {
					t.Fatalf("List(%+v, limit %d) returned %d jobs", tc.filter, limit, len(pg))
				}
				got = append(got, pg...)
				if next == "" {
					break
				}
				if pages > len(tc.want)+1 {
					t.Fatalf("List(%+v, limit %d) does not stop paging", tc.filter, limit)
				}
				cursor = next
			}
			if !reflect.DeepEqual(jobIDs(got), jobIDs(tc.want)) {
				t.Errorf("List(%+v) with limit %d = %v, want %v", tc.filter, limit, jobIDs(got), jobIDs(tc.want))
				continue
			}
			for i, j := range got {
				w := tc.want[i]
				if len(j.Payload) != 0 || len(j.Result) != 0 {
					t.Errorf("List returned payload %s / result %s for %s; want neither", j.Payload, j.Result, j.ID)
				}
				if j.Status != w.Status || j.ClientID != w.ClientID || j.Type != w.Type || j.Attempts != w.Attempts ||
					!j.CreatedAt.Equal(w.CreatedAt) || !j.UpdatedAt.Equal(w.UpdatedAt) || !reflect.DeepEqual(j.Error, w.Error) ||
					!reflect.DeepEqual(j.LastError, w.LastError) || j.DeliveryID != w.DeliveryID || (j.CompletedAt == nil) != (w.CompletedAt == nil) {
					t.Errorf("List entry %+v differs from Get %+v", j, w)
				}
			}
		}
	}
	if _, _, err := e.svc.List(ctx, jobs.Filter{}, 10, "not-a-cursor"); !errors.Is(err, page.ErrBadCursor) {
		t.Errorf("List with a malformed cursor = %v, want page.ErrBadCursor", err)
	}
}

func TestGetReturnsEveryField(t *testing.T) {
	e := statusEnv(t)
	sub := echoSub(`{"p":1}`)
	sub.Type = "fail"
	sub.Metadata = map[string]string{"x": "y"}
	j := e.submit(t, "alice", sub)
	e.clock.Advance(2 * time.Second)
	if err := e.svc.Run(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	got := e.get(t, "alice", j.ID)
	done := t0.Add(2 * time.Second)
	want := jobs.Job{ID: j.ID, ClientID: "alice", Type: "fail", Status: jobs.StatusFailed,
		Error: &jobs.Error{Code: "processing_failed", Message: "no"}, CallbackURL: callback, Metadata: map[string]string{"x": "y"},
		CreatedAt: t0, UpdatedAt: done, CompletedAt: &done, Attempts: 1, DeliveryID: jobs.DeliveryID(j.ID)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get = %+v\nwant %+v", got, want)
	}

	// A job waiting for its retry shows why its last attempt failed.
	r := e.submit(t, "alice", jobs.Submission{Type: "retry", CallbackURL: callback})
	if err := e.svc.Run(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	got = e.get(t, "alice", r.ID)
	want = jobs.Job{ID: r.ID, ClientID: "alice", Type: "retry", Status: jobs.StatusProcessing, Payload: json.RawMessage(`null`),
		CallbackURL: callback, CreatedAt: done, UpdatedAt: done, Attempts: 1, LastError: &jobs.Error{Code: "processing_failed", Message: "later"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get = %+v\nwant %+v", got, want)
	}
}

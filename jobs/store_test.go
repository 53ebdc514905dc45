package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
)

// statusEnv registers "fail" (fails at once) and "retry" (stays PROCESSING).
func statusEnv(t *testing.T) *env {
	return newEnv(t, func(r *jobs.Registry) {
		r.Register("fail", jobs.ProcessorFunc(func(context.Context, jobs.Input) (json.RawMessage, error) {
			return nil, jobs.Permanent(errors.New("no"))
		}), time.Second)
		r.Register("retry", jobs.ProcessorFunc(func(context.Context, jobs.Input) (json.RawMessage, error) {
			return nil, errors.New("later")
		}), time.Second)
	})
}

// makeJob submits a job of typ and runs it once unless typ is "".
func (e *env) makeJob(t *testing.T, clientID, typ string) jobs.Job {
	t.Helper()
	sub := echoSub(`{"p":1}`)
	if typ != "" {
		sub.Type = typ
	}
	j := e.submit(t, clientID, sub)
	if typ != "" {
		_ = e.svc.Run(context.Background(), j.ID)
	}
	return e.get(t, clientID, j.ID)
}

func TestStoreListFiltersAndPages(t *testing.T) {
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
		{jobs.Filter{ClientID: "bob", Status: jobs.StatusFailed}, nil},
		{jobs.Filter{ClientID: "carol"}, nil},
	}
	for _, tc := range tests {
		for _, limit := range []int{1, 2, 100} {
			var got []jobs.Job
			cursor := ""
			for pages := 1; ; pages++ {
				page, next, err := e.svc.List(ctx, tc.filter, limit, cursor)
				if err != nil {
					t.Fatalf("List(%+v, %d, %q): %v", tc.filter, limit, cursor, err)
				}
				if len(page) > limit {
					t.Fatalf("List(%+v, limit %d) returned %d jobs", tc.filter, limit, len(page))
				}
				got = append(got, page...)
				if next == "" {
					break
				}
				if pages > len(tc.want)+1 {
					t.Fatalf("List(%+v, limit %d) does not stop paging", tc.filter, limit)
				}
				cursor = next
			}
			if !reflect.DeepEqual(ids(got), ids(tc.want)) {
				t.Errorf("List(%+v) with limit %d = %v, want %v", tc.filter, limit, ids(got), ids(tc.want))
			}
			for i, j := range got {
				w := tc.want[i]
				if len(j.Payload) != 0 || len(j.Result) != 0 {
					t.Errorf("List returned payload %s / result %s for %s; want neither", j.Payload, j.Result, j.ID)
				}
				if j.Status != w.Status || j.ClientID != w.ClientID || j.Type != w.Type || j.Attempts != w.Attempts ||
					!j.CreatedAt.Equal(w.CreatedAt) || !j.UpdatedAt.Equal(w.UpdatedAt) || !reflect.DeepEqual(j.Error, w.Error) ||
					j.DeliveryID != w.DeliveryID || (j.CompletedAt == nil) != (w.CompletedAt == nil) {
					t.Errorf("List entry %+v differs from Get %+v", j, w)
				}
			}
		}
	}
	if _, _, err := e.svc.List(ctx, jobs.Filter{}, 10, "not-a-cursor"); err == nil {
		t.Error("List accepted a malformed cursor")
	}
}

func TestStoreUnfinished(t *testing.T) {
	ctx := context.Background()
	e := statusEnv(t)
	oldAccepted := e.makeJob(t, "alice", "")
	oldProcessing := e.makeJob(t, "bob", "retry")
	_ = e.makeJob(t, "alice", "echo") // finished: never
	_ = e.makeJob(t, "alice", "fail") // finished: never
	e.clock.Set(t0.Add(time.Hour))
	newAccepted := e.makeJob(t, "alice", "")
	newProcessing := e.makeJob(t, "alice", "retry")

	tests := []struct {
		name string
		now  time.Time
		age  time.Duration
		want []string
	}{
		{"only the old ones", t0.Add(time.Hour + time.Minute), 30 * time.Minute, []string{oldAccepted.ID, oldProcessing.ID}},
		{"all unfinished", t0.Add(2 * time.Hour), 30 * time.Minute, []string{newAccepted.ID, oldAccepted.ID, newProcessing.ID, oldProcessing.ID}},
		{"none old enough", t0.Add(2 * time.Hour), 3 * time.Hour, nil},
	}
	for _, tc := range tests {
		var got []string
		err := unfinished(ctx, e.store, tc.now, tc.age, func(j jobs.Job) error {
			if j.Status != jobs.StatusAccepted && j.Status != jobs.StatusProcessing {
				t.Errorf("Unfinished gave %s in status %s", j.ID, j.Status)
			}
			got = append(got, j.ID)
			return nil
		})
		if err != nil {
			t.Fatalf("Unfinished(%s): %v", tc.name, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Unfinished(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}

	stop := errors.New("stop")
	calls := 0
	err := unfinished(ctx, e.store, t0.Add(2*time.Hour), 0, func(jobs.Job) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Unfinished with a failing fn = %v after %d calls, want %v after 1", err, calls, stop)
	}
}

func TestStoreUnfinishedPagesThroughMany(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	e.clock.step = time.Millisecond
	const n = 1203
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		want[e.submit(t, "alice", echoSub(`1`)).ID] = true
	}
	seen := map[string]bool{}
	err := unfinished(ctx, e.store, t0.Add(time.Hour), time.Minute, func(j jobs.Job) error {
		if seen[j.ID] {
			t.Errorf("Unfinished gave %s twice", j.ID)
		}
		seen[j.ID] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n || !reflect.DeepEqual(seen, want) {
		t.Errorf("Unfinished gave %d jobs, want all %d", len(seen), n)
	}
}

func TestStoreTrim(t *testing.T) {
	ctx := context.Background()
	e := statusEnv(t)
	expiredOld := e.makeJob(t, "alice", "")   // t0, record gone
	liveOld := e.makeJob(t, "alice", "echo")  // t0+1s, record kept
	expiredBob := e.makeJob(t, "bob", "fail") // t0+4s, record gone
	e.clock.Set(t0.Add(time.Hour))
	expiredNew := e.makeJob(t, "alice", "") // created after the cutoff, record gone
	for _, j := range []jobs.Job{expiredOld, expiredBob, expiredNew} {
		if err := e.rdb.Del(ctx, "bmr:job:"+j.ID).Err(); err != nil { // what expiry does
			t.Fatal(err)
		}
	}
	cutoff := t0.Add(30 * time.Minute)
	count := func(f jobs.Filter) int64 {
		t.Helper()
		key := "bmr:job:idx"
		if f.ClientID != "" {
			key += ":c:" + f.ClientID
		}
		if f.Status != "" {
			key += ":s:" + string(f.Status)
		}
		n, err := e.rdb.ZCard(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	steps := []struct {
		name      string
		clientIDs []string
		want      int // entries removed
		after     map[jobs.Filter]int64
	}{
		// Only the global indexes: the expired old records' entries in
		// "all" and in their status index.
		{"global only", nil, 4, map[jobs.Filter]int64{
			{}: 2, {Status: jobs.StatusAccepted}: 1, {Status: jobs.StatusFailed}: 0, {Status: jobs.StatusCompleted}: 1,
			{ClientID: "alice"}: 3, {ClientID: "bob"}: 1,
		}},
		{"alice", []string{"alice"}, 2, map[jobs.Filter]int64{
			{ClientID: "alice"}: 2, {ClientID: "alice", Status: jobs.StatusAccepted}: 1, {ClientID: "alice", Status: jobs.StatusCompleted}: 1,
			{ClientID: "bob"}: 1,
		}},
		{"alice and bob", []string{"alice", "bob"}, 2, map[jobs.Filter]int64{
			{ClientID: "bob"}: 0, {ClientID: "bob", Status: jobs.StatusFailed}: 0,
		}},
		{"again", []string{"alice", "bob"}, 0, map[jobs.Filter]int64{{}: 2}},
	}
	for _, s := range steps {
		n, err := e.store.Trim(ctx, s.clientIDs, cutoff)
		if err != nil || n != s.want {
			t.Errorf("Trim(%s) = %d, %v; want %d removed", s.name, n, err, s.want)
		}
		for f, want := range s.after {
			if got := count(f); got != want {
				t.Errorf("after Trim(%s): index %+v holds %d entries, want %d", s.name, f, got, want)
			}
		}
	}
	list, _, err := e.store.List(ctx, jobs.Filter{}, 10, "")
	if err != nil || !reflect.DeepEqual(ids(list), []string{liveOld.ID}) {
		t.Errorf("List after Trim = %v, %v; want only %s (the expired new record's entry stays but is skipped)", ids(list), err, liveOld.ID)
	}
	if got := count(jobs.Filter{ClientID: "alice", Status: jobs.StatusAccepted}); got != 1 {
		t.Errorf("the entry of a record created after the cutoff was trimmed")
	}
}

func TestStoreGetDecodesEveryField(t *testing.T) {
	e := statusEnv(t)
	sub := echoSub(`{"p":1}`)
	sub.Type = "fail"
	sub.Metadata = map[string]string{"x": "y"}
	j := e.submit(t, "alice", sub)
	if err := e.svc.Run(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	got, err := e.store.Get(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := jobs.Job{ID: j.ID, ClientID: "alice", Type: "fail", Status: jobs.StatusFailed, Payload: json.RawMessage(`{"p":1}`),
		Error: &jobs.Error{Code: "processing_failed", Message: "no"}, CallbackURL: callback, Metadata: map[string]string{"x": "y"},
		CreatedAt: t0, Attempts: 1, DeliveryID: jobs.DeliveryID(j.ID)}
	// The clock moved one second per reading: submit, start, finish.
	want.UpdatedAt = t0.Add(2 * time.Second)
	completed := want.UpdatedAt
	want.CompletedAt = &completed
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get = %+v\nwant %+v", got, want)
	}
}

// unfinished is what the recovery sweep asks: ACCEPTED, then PROCESSING.
func unfinished(ctx context.Context, s *jobs.Store, now time.Time, age time.Duration, fn func(jobs.Job) error) error {
	if err := s.Stuck(ctx, jobs.StatusAccepted, now, age, fn); err != nil {
		return err
	}
	return s.Stuck(ctx, jobs.StatusProcessing, now, age, fn)
}

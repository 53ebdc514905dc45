package recovery_test

import (
	"context"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// TestMaintainRestartsStalledReplays: a running bulk replay that made no
// progress for longer than the grace is started again (its task was
// lost); others are left alone.
func TestMaintainRestartsStalledReplays(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1)
	now := w.clk.Now()
	tests := []struct {
		name    string
		state   string
		updated time.Time
		restart bool
	}{
		{"running, stalled past the grace", webhooks.ReplayRunning, now.Add(-replayGrace - time.Millisecond), true},
		{"running, stalled for days", webhooks.ReplayRunning, now.Add(-72 * time.Hour), true},
		{"running, stalled for exactly the grace", webhooks.ReplayRunning, now.Add(-replayGrace), false},
		{"running, progressing", webhooks.ReplayRunning, now.Add(-time.Second), false},
		{"done long ago", webhooks.ReplayDone, now.Add(-72 * time.Hour), false},
		{"failed long ago", webhooks.ReplayFailed, now.Add(-72 * time.Hour), false},
	}
	var want []string
	name := map[string]string{}
	for i, tc := range tests {
		r := webhooks.BulkReplay{ID: ids.New(ids.Replay, now.Add(time.Duration(i)*time.Millisecond)), State: tc.state,
			Filter: webhooks.Filter{Status: webhooks.StatusFailed}, CreatedAt: tc.updated, UpdatedAt: tc.updated}
		if tc.state != webhooks.ReplayRunning {
			r.FinishedAt = &tc.updated
		}
		if err := w.store.SaveReplay(ctx, r); err != nil {
			t.Fatal(err)
		}
		name[r.ID] = tc.name
		if tc.restart {
			want = append(want, r.ID)
		}
	}
	rep, err := w.sweeper.Maintain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range w.queue.take() {
		if c.Kind != "replay" {
			t.Errorf("Maintain asked for %v", c)
			continue
		}
		got = append(got, c.ID)
	}
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) || rep.ReplaysRestarted != len(want) {
		var gotNames, wantNames []string
		for _, id := range got {
			gotNames = append(gotNames, name[id])
		}
		for _, id := range want {
			wantNames = append(wantNames, name[id])
		}
		t.Errorf("Maintain restarted %q (report %d), want %q", gotNames, rep.ReplaysRestarted, wantNames)
	}
}

// TestMaintainTrimsExpiredEntries: index entries older than the retention
// whose record expired are dropped; those of live records, and recent
// ones, stay.
func TestMaintainTrimsExpiredEntries(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 2)
	run := func(status int) string {
		w.status.Store(int32(status))
		j := w.submit(t, "echo")
		if err := w.jobs.Run(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
		return j.ID
	}
	delivered, failed, alive := run(204), run(410), run(204)
	w.clk.Advance(retention + time.Minute)
	recent := w.submit(t, "echo").ID
	for _, id := range []string{delivered, failed, recent} {
		w.deleteRecord(t, id)
	}
	before := w.indexEntries()
	rep, err := w.sweeper.Maintain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := w.indexEntries()
	// delivered: jobs, jobs:c, dlv, dlv:c; failed: those and dlv:f, dlv:f:c.
	if wantTrimmed := 4 + 6; rep.EntriesTrimmed != wantTrimmed {
		t.Errorf("Maintain trimmed %d entries, want %d", rep.EntriesTrimmed, wantTrimmed)
	}
	for _, id := range []string{delivered, failed} {
		if n := after[ids.Body(id)]; n != 0 {
			t.Errorf("%d index entries left of an expired job (%d before)", n, before[ids.Body(id)])
		}
	}
	for name, id := range map[string]string{"a live record": alive, "a recent expired record": recent} {
		if n := after[ids.Body(id)]; n == 0 || n != before[ids.Body(id)] {
			t.Errorf("%s has %d index entries after the trim, want all %d", name, n, before[ids.Body(id)])
		}
	}
	if calls := w.queue.take(); len(calls) != 0 {
		t.Errorf("Maintain asked for %v", callsString(calls))
	}
}

// indexEntries counts, per job body, the entries of every index of every
// partition (the layout of redisstore/doc.go).
func (w *world) indexEntries() map[string]int {
	ctx := context.Background()
	out := map[string]int{}
	for _, tag := range w.store.Tags() {
		for _, sfx := range []string{"jobs", "jobs:f", "dlv", "dlv:f", "jobs:c:", "jobs:f:", "dlv:c:", "dlv:f:"} {
			if sfx[len(sfx)-1] == ':' {
				sfx += w.clientID
			}
			for _, m := range w.rdb.ZRange(ctx, indexKey(tag, sfx), 0, -1).Val() {
				out[m[len(m)-ids.Len:]]++
			}
		}
	}
	return out
}

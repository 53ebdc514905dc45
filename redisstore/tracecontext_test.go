package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// The trace context travels in the record: stored at creation, read with
// every claim, replaced by the span that ends the job and by a replay's,
// read with the delivery; and it costs no Redis command (the same HSETs
// carry it). Not parallel: INFO commandstats is server-wide.
func TestTraceParentTravelsWithTheRecord(t *testing.T) {
	const (
		submitTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		endTP    = "00-4bf92f3577b34da6a3ce929d0e0e4736-102cad07daa10cf8-01"
		replayTP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	)
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	// In the past: a record whose id's time is still ahead of the clock
	// gets a PEXPIRE with each write (Store.touch), which would make the
	// two paths' counts differ by timing alone.
	t0 := time.Now().UTC().Add(-time.Second)
	path := func(tp, end string, i int) (webhooks.Delivery, map[string]int64) {
		before := commandCalls(t, rdb)
		j := newJob("cli_01KJ0000000000000000TRACE", t0.Add(time.Duration(i)*time.Millisecond), 0)
		j.TraceParent = tp
		create(t, s, j)
		got := claim(t, s, j.ID, t0.Add(time.Second))
		if got.TraceParent != tp {
			t.Errorf("ClaimJob read traceparent %q, want %q (stored at creation)", got.TraceParent, tp)
		}
		got.TraceParent = end
		done, m := completed(t, got, `{"ok":true}`, t0.Add(2*time.Second))
		d := finish(t, s, done, m)
		if err := s.RecordAttempt(ctx, d, attempt(d, 1, t0.Add(3*time.Second), true), webhooks.StatusDelivered); err != nil {
			t.Fatal(err)
		}
		return d, diffCalls(before, commandCalls(t, rdb))
	}
	path("", "", 0) // warm-up: scripts loaded, connections made
	_, plain := path("", "", 1)
	d, traced := path(submitTP, endTP, 2)
	if kind := redistest.Kind(); kind != "embedded miniredis" {
		for c, n := range traced {
			if plain[c] != n {
				t.Errorf("%s: %d calls with a trace context, %d without; want the same", c, n, plain[c])
			}
		}
		if len(plain) != len(traced) {
			t.Errorf("commands with a trace context %v, without %v; want the same", traced, plain)
		}
	}
	if d.TraceParent != endTP || getDelivery(t, s, d.ID, false).TraceParent != endTP {
		t.Errorf("delivery traceparent %q as finished, %q as read; want %q (the span that ended the job)",
			d.TraceParent, getDelivery(t, s, d.ID, false).TraceParent, endTP)
	}
	reopened, err := s.ReopenDelivery(ctx, d.ID, t0.Add(time.Minute), replayTP)
	if err != nil {
		t.Fatal(err)
	}
	if reopened.TraceParent != endTP || getDelivery(t, s, d.ID, false).TraceParent != replayTP {
		t.Errorf("reopened delivery traceparent %q, then read %q; want %q (the original, to link to), then %q (the replay's)",
			reopened.TraceParent, getDelivery(t, s, d.ID, false).TraceParent, endTP, replayTP)
	}
}

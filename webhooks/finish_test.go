package webhooks

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/timeindex"
)

// TestDeliverWithFinishIsAtomic: the delivery and the job's completion are
// one write. A finish whose check fails writes no delivery and makes no
// attempt; one that passes leaves both.
func TestDeliverWithFinishIsAtomic(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	r := newReceiver(t, status(204))
	jobs := timeindex.Family{Base: "test:job:idx", Statuses: []string{"PROCESSING", "COMPLETED"},
		HashKey: func(id string) string { return "test:job:" + id }}
	created := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	if _, _, err := jobs.Create(ctx, e.rdb, timeindex.Record{ID: "req_1", ClientID: "cl_a", Status: "PROCESSING",
		CreatedAt: created, TTL: time.Hour, Fields: []any{"id", "req_1"}}); err != nil {
		t.Fatal(err)
	}
	finish := func(from string) *timeindex.Update {
		return &timeindex.Update{Family: jobs, Change: timeindex.Change{ID: "req_1", ClientID: "cl_a", CreatedAt: created,
			From: []string{from}, To: "COMPLETED", Fields: []any{"result", "42"}, TTL: time.Hour}}
	}

	m := msg("cl_a", r.URL)
	if _, err := e.d.Deliver(ctx, m, finish("ACCEPTED")); !errors.Is(err, timeindex.ErrWrongStatus) {
		t.Fatalf("Deliver with a failing finish = %v, want ErrWrongStatus", err)
	}
	if _, err := e.store.Get(ctx, m.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("a delivery exists although the job's completion was refused: %v", err)
	}
	if n := len(r.Requests()); n != 0 {
		t.Errorf("receiver saw %d requests, want none", n)
	}

	if _, err := e.d.Deliver(ctx, m, finish("PROCESSING")); err != nil {
		t.Fatal(err)
	}
	if st := e.rdb.HGet(ctx, "test:job:req_1", "status").Val(); st != "COMPLETED" {
		t.Errorf("job status = %q, want COMPLETED", st)
	}
	if d := e.get(t, m.ID); d.Status != StatusDelivered {
		t.Errorf("delivery status = %s, want DELIVERED", d.Status)
	}
	if n, _ := e.rdb.ZCard(ctx, "test:job:idx:s:COMPLETED").Result(); n != 1 {
		t.Errorf("COMPLETED index holds %d entries, want 1", n)
	}
	// The second run of the same task finds the job finished: refused, and
	// the existing delivery is untouched.
	if _, err := e.d.Deliver(ctx, m, finish("PROCESSING")); !errors.Is(err, timeindex.ErrWrongStatus) {
		t.Errorf("finishing twice = %v, want ErrWrongStatus", err)
	}
}

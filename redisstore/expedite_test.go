package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// TestExpediteDelivery: a retry-now moves the next attempt to now and drops
// a deferral, moves recovery with it, and refuses a delivery that changed
// since it was read (an attempt recorded) or is not PENDING.
func TestExpediteDelivery(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	d := delivery(t, s, "cli_a", t0, 0)
	a := attempt(d, 1, t0, false)
	if err := s.RecordAttempt(ctx, d, a, webhooks.StatusPending); err != nil {
		t.Fatal(err)
	}
	d = getDelivery(t, s, d.ID, false)
	if err := s.PostponeDelivery(ctx, d, 2, t0.Add(time.Hour), webhooks.DeferHostOpen); err != nil {
		t.Fatal(err)
	}
	d = getDelivery(t, s, d.ID, false)

	now := t0.Add(10 * time.Second).Truncate(time.Millisecond) // the store keeps ms
	if err := s.ExpediteDelivery(ctx, d, now); err != nil {
		t.Fatalf("ExpediteDelivery = %v, want nil", err)
	}
	got := getDelivery(t, s, d.ID, false)
	want := d
	want.NextAttemptAt, want.UpdatedAt, want.DeferredUntil, want.DeferredReason = &now, now, nil, ""
	if asJSON(got) != asJSON(want) || got.DeferredAttempt != 0 {
		t.Errorf("after ExpediteDelivery:\n got %s (deferred attempt %d)\nwant %s", asJSON(got), got.DeferredAttempt, asJSON(want))
	}
	if due, _ := dueAt(t, s, rdb, d.RequestID); !due.Equal(now.Add(recoverAfter)) {
		t.Errorf("due after ExpediteDelivery = %v, want %v", due, now.Add(recoverAfter))
	}
	if err := s.ExpediteDelivery(ctx, got, now); err != nil {
		t.Errorf("ExpediteDelivery repeated = %v, want nil", err)
	}

	// Attempt 2 is recorded (delivered): a retry-now from the older read
	// changes nothing.
	if err := s.RecordAttempt(ctx, got, attempt(got, 2, now, true), webhooks.StatusDelivered); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, rdb)
	if err := s.ExpediteDelivery(ctx, got, now.Add(time.Second)); !errors.Is(err, webhooks.ErrStale) {
		t.Errorf("ExpediteDelivery from a read older than an attempt = %v, want ErrStale", err)
	}
	if err := s.ExpediteDelivery(ctx, getDelivery(t, s, d.ID, false), now.Add(time.Second)); !errors.Is(err, webhooks.ErrStale) {
		t.Errorf("ExpediteDelivery of a DELIVERED delivery = %v, want ErrStale", err)
	}
	unchanged(t, rdb, before, "a refused ExpediteDelivery")
}

package webhooks_test

import (
	"context"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/webhooks"
)

// BenchmarkFirstAttempt is one whole first attempt (sign, POST to a
// loopback receiver, record) against real Redis; making the delivery
// (CreateJob, ClaimJob, FinishJob) is not timed.
func BenchmarkFirstAttempt(b *testing.B) {
	ctx := context.Background()
	r := newReceiver(b, status(204))
	e := newEnv(b, withScheduler(&countingScheduler{}))
	var first string
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		d := e.newDelivery(b, "cli_bench", r.URL+"/hook")
		if first == "" {
			first = d.ID
		}
		r.Reset() // keep the receiver's memory flat
		b.StartTimer()
		if err := e.d.FirstAttempt(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if d := e.get(b, first); d.Status != webhooks.StatusDelivered {
		b.Fatalf("first benchmark delivery = %s, want DELIVERED", d.Status)
	}
}

func BenchmarkRetryPolicyDelay(b *testing.B) {
	p := webhooks.DefaultRetryPolicy()
	var sink time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink += p.Delay(i%p.MaxAttempts + 1)
	}
	_ = sink
}

package webhooks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
)

// BenchmarkDispatchAttempt is one whole Deliver (create, sign, POST to a
// loopback receiver, record) against real Redis.
func BenchmarkDispatchAttempt(b *testing.B) {
	ctx := context.Background()
	r := newReceiver(b, status(204))
	e := newEnv(b, withScheduler(&countingScheduler{}))
	body := []byte(`{"type":"job.completed","data":{"result":"ok"}}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		m := Message{ID: fmt.Sprintf("msg_bench_%09d", i), RequestID: "req_bench", ClientID: "cl_bench",
			EventType: "job.completed", URL: r.URL + "/hook", Body: body}
		if _, err := e.d.Deliver(ctx, m, nil); err != nil {
			b.Fatal(err)
		}
		r.mu.Lock()
		r.reqs = r.reqs[:0] // keep the receiver's memory flat
		r.mu.Unlock()
	}
	b.StopTimer()
	if d, err := e.store.Get(ctx, fmt.Sprintf("msg_bench_%09d", 0)); err != nil || d.Status != StatusDelivered {
		b.Fatalf("first benchmark delivery = %s, %v, want DELIVERED", d.Status, err)
	}
}

func BenchmarkRetryPolicyDelay(b *testing.B) {
	p := DefaultRetryPolicy()
	var sink time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink += p.Delay(i%p.MaxAttempts + 1)
	}
	_ = sink
}

func BenchmarkStoreCreate(b *testing.B) {
	ctx := context.Background()
	s := NewStore(redistest.Client(b), testRetention)
	now := time.Now()
	body := []byte(`{"type":"job.completed","data":{"result":"ok"}}`)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m := Message{ID: fmt.Sprintf("msg_bench_%09d", i), RequestID: "req_bench", ClientID: "cl_bench",
			EventType: "job.completed", URL: "https://receiver.example/hook", Body: body}
		if _, err := s.Create(ctx, m, now, nil); err != nil {
			b.Fatal(err)
		}
	}
}

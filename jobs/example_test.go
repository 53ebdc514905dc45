package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
)

// A job type is a name, a Processor and a timeout. Errors marked with
// Permanent fail the job at once; other errors are retried.
func ExampleRegistry_Register() {
	r := jobs.NewRegistry()
	r.Register("echo", jobs.Echo, 30*time.Second)
	r.Register("upper", jobs.ProcessorFunc(func(ctx context.Context, in jobs.Input) (json.RawMessage, error) {
		var s string
		if err := json.Unmarshal(in.Payload, &s); err != nil {
			return nil, jobs.Permanent(fmt.Errorf("payload must be a JSON string: %w", err))
		}
		return json.Marshal(strings.ToUpper(s))
	}), 10*time.Second)

	typ, _ := r.Lookup("upper")
	out, err := typ.Processor.Process(context.Background(), jobs.Input{Payload: json.RawMessage(`"hello"`)})
	fmt.Println(string(out), err)
	_, err = typ.Processor.Process(context.Background(), jobs.Input{Payload: json.RawMessage(`42`)})
	fmt.Println("permanent:", jobs.IsPermanent(err))
	fmt.Println(r.Names(), typ.Timeout)
	// Output:
	// "HELLO" <nil>
	// permanent: true
	// [echo upper] 10s
}

// The webhook of a finished job carries its result byte for byte, and its
// delivery's id derives from the job's.
func ExampleWebhookBody() {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	done := created.Add(1500 * time.Millisecond)
	j := jobs.Job{ID: "req_01JD3M4X2Z8QK3V9W7T5N6P4R2", Type: "echo", Status: jobs.StatusCompleted,
		Result: json.RawMessage(`{"html": "<b>", "n": 1.50}`), Metadata: map[string]string{"order": "42"},
		CreatedAt: created, UpdatedAt: done, CompletedAt: &done}
	body, err := jobs.WebhookBody(j)
	fmt.Println(string(body), err)
	fmt.Println(jobs.DeliveryID(j.ID))
	// Output:
	// {"type":"job.completed","timestamp":"2026-03-01T12:00:01.5Z","data":{"requestId":"req_01JD3M4X2Z8QK3V9W7T5N6P4R2","type":"echo","status":"COMPLETED","result":{"html": "<b>", "n": 1.50},"metadata":{"order":"42"},"createdAt":"2026-03-01T12:00:00Z","completedAt":"2026-03-01T12:00:01.5Z"}} <nil>
	// msg_01JD3M4X2Z8QK3V9W7T5N6P4R2
}

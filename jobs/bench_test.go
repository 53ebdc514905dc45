package jobs_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
)

func BenchmarkWebhookBody(b *testing.B) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	done := created.Add(time.Second)
	j := jobs.Job{ID: "req_01JD3M4X2Z8QK3V9W7T5N6P4R2", ClientID: "cli_x", Type: "echo", Status: jobs.StatusCompleted,
		Result:   json.RawMessage(`{"items":[{"id":1,"name":"one"},{"id":2,"name":"two"}],"total":2}`),
		Metadata: map[string]string{"order": "42", "team": "blue"}, CreatedAt: created, UpdatedAt: done, CompletedAt: &done}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jobs.WebhookBody(j); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSubmit(b *testing.B) {
	e := newEnv(b, nil)
	ctx := context.Background()
	sub := echoSub(`{"n":1,"s":"some payload"}`)
	sub.Metadata = map[string]string{"order": "42"}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := e.svc.Submit(ctx, "cli_a", sub); err != nil {
			b.Fatal(err)
		}
	}
}

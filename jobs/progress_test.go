package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/boomerang-dev/boomerang/jobs"
)

// TestReportProgressIsCoalesced: a Go processor reporting progress 100
// times in 1.5 s costs at most one store write a second, and the latest
// report is the one the job shows.
func TestReportProgressIsCoalesced(t *testing.T) {
	t.Parallel() // runs 2 s on the real clock; measures no Redis commands
	reported, release := make(chan struct{}), make(chan struct{})
	proc := jobs.ProcessorFunc(func(ctx context.Context, in jobs.Input) (json.RawMessage, error) {
		for i := 1; i <= 100; i++ {
			jobs.ReportProgress(ctx, float64(i), fmt.Sprintf("step %d", i))
			time.Sleep(15 * time.Millisecond)
		}
		close(reported)
		select {
		case <-release:
			return json.RawMessage(`"done"`), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	e := newEnv(t, func(r *jobs.Registry) { r.Register("report", proc, time.Minute) })
	cs := &countingStore{Store: e.store}
	svc := e.service(withStore(cs))
	j := e.submitType(t, "report", `1`)
	run := runAsync(context.Background(), svc, j.ID)
	select {
	case <-reported:
	case <-time.After(guard):
		t.Fatal("the processor did not finish reporting")
	}
	// The latest report reaches the store at the next flush, within a
	// second.
	var p *jobs.Progress
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if p = e.get(t, "cli_a", j.ID).Progress; p != nil && p.Percent == 100 {
			break
		}
	}
	if p == nil || p.Percent != 100 || p.Message != "step 100" {
		t.Errorf("progress shown = %+v, want the latest report (100 %%, step 100) within a second", p)
	}
	writes := cs.progress.Load()
	t.Logf("100 reports in 1.5 s: %d progress writes", writes)
	if writes < 1 || writes > 3 {
		t.Errorf("100 reports in 1.5 s made %d progress writes, want 1 to 3 (one a second at most)", writes)
	}
	close(release)
	if err := receive(t, run, 1, "the run's end")[0]; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := e.get(t, "cli_a", j.ID); got.Status != jobs.StatusCompleted || got.Progress == nil || got.Progress.Percent != 100 {
		t.Errorf("after the run: %s progress %+v; want COMPLETED with the last progress", got.Status, got.Progress)
	}
	jobs.ReportProgress(context.Background(), 50, "outside a processor: ignored") // must not panic
}

// TestProgressIsBounded: a worker's progress is clamped to 0–100 (two
// decimals) and its message cut to MaxProgressMessage bytes of valid UTF-8.
func TestProgressIsBounded(t *testing.T) {
	long := strings.Repeat("é", jobs.MaxProgressMessage) // 2 bytes each
	tests := []struct {
		percent     float64
		message     string
		wantPercent float64
		wantMessage string
	}{
		{42.4242, "ok", 42.42, "ok"},
		{-5, "", 0, ""},
		{150, "", 100, ""},
		{math.NaN(), "", 0, ""},
		{math.Inf(1), "", 100, ""},
		{1, long, 1, long[:jobs.MaxProgressMessage]},
		{1, "a" + long, 1, "a" + long[:jobs.MaxProgressMessage-2]}, // no rune cut in half
		{1, "bad \xff byte", 1, "bad \uFFFD byte"},
	}
	e := newEnv(t, externalTypes)
	ctx := context.Background()
	j := e.submitType(t, "transcode", `1`)
	c := claimNow(t, e.svc, time.Minute, "transcode")
	for _, tt := range tests {
		e.clock.Advance(time.Second) // past the coalescing
		if _, err := e.svc.Heartbeat(ctx, j.ID, c.LeaseID, &jobs.Progress{Percent: tt.percent, Message: tt.message}); err != nil {
			t.Fatalf("Heartbeat(%v, %q): %v", tt.percent, tt.message, err)
		}
		p := e.get(t, "cli_a", j.ID).Progress
		if p == nil || p.Percent != tt.wantPercent || p.Message != tt.wantMessage || !utf8.ValidString(p.Message) {
			t.Errorf("progress (%v, %d bytes) stored as %+v; want %v, %d bytes", tt.percent, len(tt.message), p, tt.wantPercent, len(tt.wantMessage))
		}
	}
}

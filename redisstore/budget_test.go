package redisstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/redis/go-redis/v9"
)

// The targets for the store's part of a delivered job.
const (
	maxBytesPerJob    = 2048
	maxCommandsPerJob = 24 // of the service's 36, asynq-free dispatch included
)

// TestMemoryAndCommandBudget runs 2 000 jobs through the store's whole
// path (create, pop, claim, finish, one DELIVERED attempt), as the
// service does with the benchmark's echo jobs, and measures what Redis
// holds and runs per job: used_memory and the commandstats calls, which
// count the commands scripts run too. INFO is server-wide, so this test
// runs alone (not parallel: the parallel tests wait until it is done).
func TestMemoryAndCommandBudget(t *testing.T) {
	if redistest.Kind() == "embedded miniredis" {
		t.Skip("INFO memory and commandstats need a real Redis (redis-server on PATH or BOOMERANG_TEST_REDIS_URL)")
	}
	const n = 2000
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	url := "http://127.0.0.1:43210/hook"
	newEcho := func(i int) jobs.Job {
		now := time.Now().UTC()
		return jobs.Job{ID: ids.NewIn(ids.Request, now, 0), ClientID: "cli_01KJ00000000000000000BENCH", Type: "echo", Status: jobs.StatusAccepted,
			Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), CallbackURL: url, Metadata: map[string]string{"bench": "load-1"},
			CreatedAt: now.Truncate(time.Millisecond), UpdatedAt: now,
			// Measured with traces on, the heavier case: the record
			// carries a traceparent (TestTraceParentTravelsWithTheRecord
			// checks it costs no command).
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	}
	var held []jobs.Job // claimed
	var dlvs []webhooks.Delivery
	steps := []struct {
		name string
		run  func(i int) error
	}{
		{"CreateJob", func(i int) error {
			_, _, err := s.CreateJob(ctx, newEcho(i), nil)
			return err
		}},
		{"NextReady", func(int) error {
			id, err := s.NextReady(ctx, 0, time.Second)
			if err == nil && id == "" {
				err = fmt.Errorf("no job ready")
			}
			held = append(held, jobs.Job{ID: id})
			return err
		}},
		{"ClaimJob", func(i int) error {
			now := time.Now().UTC()
			j, err := s.ClaimJob(ctx, held[i].ID, now, now.Add(30*time.Second))
			held[i] = j
			return err
		}},
		{"FinishJob", func(i int) error {
			done := time.Now().UTC()
			j := held[i]
			j.Status, j.Result, j.UpdatedAt, j.CompletedAt, j.DeliveryID = jobs.StatusCompleted, j.Payload, done, &done, jobs.DeliveryID(j.ID)
			d, err := s.FinishJob(ctx, j, message(t, j))
			dlvs = append(dlvs, d)
			return err
		}},
		{"RecordAttempt", func(i int) error {
			d := dlvs[i]
			start := time.Now().UTC()
			a := webhooks.Attempt{Number: 1, StartedAt: start, DurationMs: 1, URL: d.URL, Signatures: 1, StatusCode: 204,
				RequestHeaders:  webhooks.RequestHeaders(d, start.Unix(), "Boomerang/1.0", 1),
				ResponseHeaders: map[string]string{"Date": start.Format(time.RFC1123)}, Outcome: webhooks.OutcomeDelivered}
			return s.RecordAttempt(ctx, d, a, webhooks.StatusDelivered)
		}},
	}
	// One job first, outside the measure: scripts loaded, indexes and
	// connections made.
	for _, st := range steps {
		if err := st.run(0); err != nil {
			t.Fatalf("warm-up %s: %v", st.name, err)
		}
	}
	held, dlvs = held[:0], dlvs[:0]

	mem0 := usedMemory(t, rdb)
	total := map[string]int64{}
	var memAccepted int64
	for _, st := range steps {
		before := commandCalls(t, rdb)
		for i := range n {
			if err := st.run(i); err != nil {
				t.Fatalf("%s %d: %v", st.name, i, err)
			}
		}
		delta := diffCalls(before, commandCalls(t, rdb))
		var sum int64
		for c, v := range delta {
			total[c] += v
			sum += v
		}
		t.Logf("%-13s %5.2f commands/job: %s", st.name, float64(sum)/n, perJob(delta, n))
		if st.name == "NextReady" {
			memAccepted = usedMemory(t, rdb) - mem0
		}
	}
	mem := usedMemory(t, rdb) - mem0
	var sum int64
	for _, v := range total {
		sum += v
	}
	perJobCmds, perJobBytes := float64(sum)/n, float64(mem)/n
	t.Logf("store path    %5.2f commands/job: %s", perJobCmds, perJob(total, n))
	rec, err := rdb.MemoryUsage(ctx, recordKey(s, held[n/2].ID)).Result()
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := rdb.ObjectEncoding(ctx, recordKey(s, held[n/2].ID)).Result()
	t.Logf("memory: %.0f B/job retained after delivery (%.0f B/job while ACCEPTED); one record %d B (%s), indexes and key overhead the rest",
		perJobBytes, float64(memAccepted)/n, rec, enc)
	if perJobBytes > maxBytesPerJob {
		t.Errorf("%.0f bytes per delivered job, want at most %d", perJobBytes, maxBytesPerJob)
	}
	if perJobCmds > maxCommandsPerJob {
		t.Errorf("%.2f Redis commands per delivered job in the store, want at most %d", perJobCmds, maxCommandsPerJob)
	}
}

// commandCalls returns the calls of every command, from INFO commandstats,
// less INFO's own.
func commandCalls(t *testing.T, rdb *redis.Client) map[string]int64 {
	t.Helper()
	out, err := redistest.CommandCalls(context.Background(), rdb)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffCalls(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for c, v := range after {
		if d := v - before[c]; d != 0 {
			out[c] = d
		}
	}
	return out
}

func perJob(calls map[string]int64, n int) string {
	names := make([]string, 0, len(calls))
	for c := range calls {
		names = append(names, c)
	}
	slices.SortFunc(names, func(a, b string) int {
		if calls[a] != calls[b] {
			return int(calls[b] - calls[a])
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, c := range names {
		parts = append(parts, fmt.Sprintf("%s %.2f", c, float64(calls[c])/float64(n)))
	}
	return strings.Join(parts, ", ")
}

func usedMemory(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("INFO memory has no used_memory")
	return 0
}

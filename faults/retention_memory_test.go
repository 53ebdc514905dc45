package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/signing"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/redis/go-redis/v9"
)

// Fakes at the domain's own seams: the job task and the retry task are not
// needed (jobs run inline and every attempt succeeds), any URL is fine, and
// the receiver is an in-process RoundTripper that answers 204.
type (
	noEnqueuer   struct{}
	noScheduler  struct{}
	anyURL       struct{}
	staticSecret string
	answer204    struct{}
)

func (noEnqueuer) EnqueueJob(context.Context, string, int, time.Time, time.Duration) error {
	return nil
}
func (noEnqueuer) EnqueueExpiry(context.Context, string, time.Time) error { return nil }
func (noEnqueuer) ScheduleAttempt(context.Context, string, int, time.Time) error {
	return nil
}
func (noScheduler) ScheduleAttempt(context.Context, string, int, time.Time) error {
	return fmt.Errorf("no retry expected: every attempt answers 204")
}
func (anyURL) CanonicalURLFor(_, u string) (string, error) { return u, nil }
func (s staticSecret) SigningSecrets(context.Context, string) ([]string, error) {
	return []string{string(s)}, nil
}
func (answer204) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: http.StatusNoContent, Status: "204 No Content", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// TestRetentionMemory creates 100 000 finished jobs, each with a DELIVERED
// delivery and one attempt, through the exported domain API on a private
// redis-server; it reports the bytes each retained job costs, lets the
// retention (3 s) pass, trims the indexes and checks that Redis gives the
// memory back.
func TestRetentionMemory(t *testing.T) {
	start := time.Now()
	const n, workers, retention = 100_000, 64, 3 * time.Second
	clientID := ids.New(ids.Client, time.Now())
	ctx := context.Background()

	// Active expiry is paused while the jobs are made (it takes longer than
	// the retention), so that all of them are in memory when it is measured.
	rds := startRedis(t, "--appendonly", "no", "--enable-debug-command", "yes")
	addr := strings.TrimPrefix(rds.url(), "redis://")
	meter := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 1})
	defer meter.Close()
	base := usedMemory(t, meter)
	if err := meter.Do(ctx, "DEBUG", "SET-ACTIVE-EXPIRE", "0").Err(); err != nil {
		t.Fatalf("DEBUG SET-ACTIVE-EXPIRE 0: %v", err)
	}

	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: workers})
	store, err := redisstore.New(ctx, rdb, redisstore.Options{Retention: retention})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	dispatcher := webhooks.NewDispatcher(webhooks.DispatcherOptions{
		Store: store, Transport: answer204{}, Secrets: staticSecret(secret), Scheduler: noScheduler{},
		Policy: webhooks.DefaultRetryPolicy(), Timeout: 5 * time.Second, UserAgent: "Boomerang/faults",
	})
	registry := jobs.NewRegistry()
	registry.Register("echo", jobs.Echo, time.Minute)
	svc := jobs.NewService(jobs.ServiceOptions{Store: store, Registry: registry, URLs: anyURL{},
		Enqueuer: noEnqueuer{}, Deliverer: dispatcher})

	// Every 1 000th job is checked right after it is made, within its
	// retention: reading an expired key would delete it.
	var next, failed, checked atomic.Int64
	var firstErr atomic.Value
	var sample atomic.Value // MEMORY USAGE of one job's keys, for the log
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				j, _, err := svc.Submit(ctx, clientID, jobs.Submission{Type: "echo",
					Payload:     json.RawMessage(`{"n":` + strconv.Itoa(i) + `,"hello":"world"}`),
					CallbackURL: "https://receiver.example/hooks/boomerang"})
				if err == nil { // as the runner does: take the next job from the ready queue
					var id string
					if id, err = store.NextReady(ctx, 0, time.Second); err == nil {
						err = svc.Run(ctx, id)
						j.ID = id
					}
				}
				if err == nil && i%1000 == 0 {
					err = checkFinished(ctx, store, j.ID)
					checked.Add(1)
					if i == n/2 {
						sample.Store(breakdown(ctx, meter, j.ID))
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	made := time.Since(start)
	if failed.Load() > 0 {
		t.Fatalf("%d of %d jobs failed, first: %v", failed.Load(), n, firstErr.Load())
	}
	// Counted from the index: reading the records themselves would expire
	// them (their retention has passed); every 1 000th was checked DELIVERED.
	delivered, err := store.CountDeliveries(ctx, webhooks.Filter{ClientID: clientID})
	if err != nil || delivered != n {
		t.Fatalf("deliveries: %d, error %v; want %d", delivered, err, n)
	}
	full := usedMemory(t, meter)
	keys, _ := meter.DBSize(ctx).Result()
	perJob := float64(full-base) / n
	t.Logf("%d jobs made in %v (%d workers); used_memory %s → %s with all retained (%d keys): %.0f bytes per job "+
		"(one record: job, delivery and attempt; and 4 index entries); %d checked COMPLETED + DELIVERED with 1 attempt%s",
		n, made.Round(time.Millisecond), workers, mib(base), mib(full), keys, perJob, checked.Load(), sample.Load())

	// Let retention pass: Redis expires the records itself.
	if err := meter.Do(ctx, "DEBUG", "SET-ACTIVE-EXPIRE", "1").Err(); err != nil {
		t.Fatalf("DEBUG SET-ACTIVE-EXPIRE 1: %v", err)
	}
	time.Sleep(time.Until(start.Add(made + retention + 100*time.Millisecond)))
	expired := time.Now()
	for i := 0; i < 600; i++ {
		if k, _ := meter.DBSize(ctx).Result(); k <= 5 { // what is left: the 4 index sorted sets and the partition count
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	left, _ := meter.DBSize(ctx).Result()
	beforeTrim := usedMemory(t, meter)
	now := time.Now()
	trimmed, err := store.Trim(ctx, []string{clientID}, now)
	if err != nil {
		t.Fatalf("trim: %v", err)
	}
	rdb.Close() // its connections' buffers are not part of the data
	var end int64
	tolerance := max(base/10, 1<<20)
	for i := 0; i < 100; i++ { // Redis shrinks its emptied hash tables in its cron
		if end = usedMemory(t, meter); end-base <= tolerance {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	keysEnd, _ := meter.DBSize(ctx).Result()
	if keysEnd != 1 {
		t.Errorf("%d keys left after expiry and trimming, want 1 (the partition count)", keysEnd)
	}
	if end-base > tolerance {
		t.Errorf("used_memory %s after expiry and trimming, start %s: more than %s above", mib(end), mib(base), mib(tolerance))
	}
	t.Logf("retention: expired by Redis in %v (%d keys left: index sets holding %s); trimmed %d index entries; "+
		"used_memory back to %s (start %s, %+d bytes); %.0f bytes per retained job; elapsed %v",
		time.Since(expired).Round(time.Millisecond), left, mib(beforeTrim-base), trimmed,
		mib(end), mib(base), end-base, perJob, time.Since(start).Round(time.Millisecond))
}

// checkFinished checks that a job is COMPLETED and its delivery DELIVERED
// with exactly one attempt.
func checkFinished(ctx context.Context, store *redisstore.Store, id string) error {
	j, err := store.GetJob(ctx, id)
	if err != nil || j.Status != jobs.StatusCompleted || j.DeliveryID == "" {
		return fmt.Errorf("job %s: status %s, delivery %q, error %v; want COMPLETED with a delivery", id, j.Status, j.DeliveryID, err)
	}
	d, err := store.GetDelivery(ctx, j.DeliveryID, true)
	if err != nil || d.Status != webhooks.StatusDelivered || len(d.AttemptLog) != 1 {
		return fmt.Errorf("delivery %s: status %s, %d attempts, error %v; want DELIVERED with 1", j.DeliveryID, d.Status, len(d.AttemptLog), err)
	}
	return nil
}

// usedMemory reads used_memory from INFO memory.
func usedMemory(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatalf("INFO memory: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("used_memory %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("no used_memory in INFO memory")
	return 0
}

// breakdown is MEMORY USAGE of every key that names one job (found with
// SCAN, so it follows the stores' key layout), for the log.
func breakdown(ctx context.Context, c *redis.Client, requestID string) string {
	suffix := strings.TrimPrefix(requestID, "req_") // shared by req_… and msg_… ids
	var keys []string
	iter := c.Scan(ctx, 0, "*"+suffix+"*", 10000).Iterator()
	for i := 0; i < 100000 && iter.Next(ctx); i++ {
		keys = append(keys, iter.Val())
	}
	sort.Strings(keys)
	out := ""
	for _, k := range keys {
		if n, err := c.MemoryUsage(ctx, k, 0).Result(); err == nil { // SAMPLES 0: every field
			out += fmt.Sprintf(", %s %d B", strings.Replace(k, suffix, "…", 1), n)
		}
	}
	if out == "" {
		return ""
	}
	return "; MEMORY USAGE of one job's keys" + out
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

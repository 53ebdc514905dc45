package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/redis/go-redis/v9"
)

// seedDeliveries makes n deliveries through the store's real path
// (CreateJob, ClaimJob, FinishJob, RecordAttempt): every tenth FAILED, the
// rest DELIVERED, for clients cli[i%len(cli)].
func seedDeliveries(t *testing.T, store *redisstore.Store, n, partitions int, cli []string) {
	t.Helper()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	base := time.Now().Add(-time.Hour)
	for range 8 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := seedOne(ctx, store, i, partitions, base.Add(time.Duration(i)*time.Millisecond), cli[i%len(cli)]); err != nil {
					errs <- fmt.Errorf("delivery %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func seedOne(ctx context.Context, store *redisstore.Store, i, partitions int, now time.Time, client string) error {
	id := ids.NewIn(ids.Request, now, i%partitions)
	j := jobs.Job{ID: id, ClientID: client, Type: "echo", Status: jobs.StatusAccepted, Payload: json.RawMessage(`{}`),
		CallbackURL: "http://127.0.0.1:9/hook", CreatedAt: now.Truncate(time.Millisecond), UpdatedAt: now}
	if _, _, err := store.CreateJob(ctx, j, nil); err != nil {
		return err
	}
	claimed, err := store.ClaimJob(ctx, id, now, now.Add(time.Minute))
	if err != nil {
		return err
	}
	done := now.UTC()
	claimed.Status, claimed.Result, claimed.UpdatedAt, claimed.CompletedAt, claimed.DeliveryID =
		jobs.StatusCompleted, json.RawMessage(`{}`), done, &done, jobs.DeliveryID(id)
	body, err := jobs.WebhookBody(claimed)
	if err != nil {
		return err
	}
	d, err := store.FinishJob(ctx, claimed, webhooks.Message{ID: claimed.DeliveryID, RequestID: id, ClientID: client,
		EventType: jobs.EventCompleted, URL: claimed.CallbackURL, Body: body})
	if err != nil {
		return err
	}
	a := webhooks.Attempt{Number: 1, StartedAt: now, URL: d.URL, StatusCode: 204, Outcome: webhooks.OutcomeDelivered}
	status := webhooks.StatusDelivered
	if i%10 == 0 {
		a.StatusCode, a.ErrorClass, a.Outcome, status = 410, webhooks.ClassStatus, webhooks.OutcomeFailed, webhooks.StatusFailed
	}
	return store.RecordAttempt(ctx, d, a, status)
}

// TestPagingOverTheRealStore pages the console through the real store: a
// page costs the same few Redis commands whether there are 2 000
// deliveries or (long suite) 100 000, because it reads one window of the
// time-ordered indexes and nothing counts.
func TestPagingOverTheRealStore(t *testing.T) {
	n := 2_000
	if testkit.LongTests() {
		n = 100_000
	}
	const partitions = 4
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries, opt.ReadTimeout, opt.WriteTimeout, opt.PoolSize = -1, -1, -1, 8*runtime.GOMAXPROCS(0)+2
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	store, err := redisstore.New(ctx, rdb, redisstore.Options{Partitions: partitions, Retention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cli := []string{ids.New(ids.Client, time.Now()), ids.New(ids.Client, time.Now())}
	start := time.Now()
	seedDeliveries(t, store, n, partitions, cli)
	t.Logf("seeded %d deliveries in %v", n, time.Since(start).Round(time.Millisecond))

	fx := &fixture{t: t, now: time.Now(), log: &bytes.Buffer{}}
	fx.srv = httptest.NewServer(New(Options{AdminToken: testToken, Deliveries: store, Replays: &fakeReplays{}, Jobs: fakeJobs{},
		Clients: &fakeClients{}, Now: fx.clock}))
	t.Cleanup(fx.srv.Close)
	b := fx.browser()
	b.login()

	commands := func() int64 {
		calls, err := redistest.CommandCalls(ctx, rdb)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, c := range calls {
			sum += c
		}
		return sum
	}
	// A page reads ≤ pageSize+1 members per partition's index and then the
	// records of at most pageSize+1 of them: 55 commands, whatever n.
	const maxPerPage = 2*(pageSize+1) + 2*partitions
	for _, tc := range []struct{ query string }{
		{""}, {"status=FAILED"}, {"client=" + cli[1]}, {"status=FAILED&client=" + cli[0]},
	} {
		next, prev, rows := "/admin/deliveries?"+tc.query, "", 0
		for page := 0; page < 3 && next != ""; page++ {
			before := commands()
			a := b.do("GET", strings.ReplaceAll(next, "&amp;", "&"), nil)
			cost := commands() - before
			if a.code != http.StatusOK {
				t.Fatalf("GET %s: got %d\n%s", next, a.code, a.body)
			}
			ms := rowRE.FindAllStringSubmatch(a.body, -1)
			if len(ms) != pageSize {
				t.Errorf("GET %s: %d rows, want %d", next, len(ms), pageSize)
			}
			for _, m := range ms {
				if prev != "" && m[1] >= prev {
					t.Errorf("GET %s: %s after %s, want newest first with no repeat", next, m[1], prev)
				}
				prev = m[1]
			}
			rows += len(ms)
			t.Logf("GET %s: %d Redis commands", next, cost)
			if cost > maxPerPage {
				t.Errorf("GET %s over %d deliveries: %d Redis commands, want at most %d", next, n, cost, maxPerPage)
			}
			next = ""
			if m := nextRE.FindStringSubmatch(a.body); m != nil {
				next = m[1]
			}
		}
		if rows != 3*pageSize {
			t.Errorf("/admin/deliveries?%s: %d rows on 3 pages, want %d", tc.query, rows, 3*pageSize)
		}
	}
}

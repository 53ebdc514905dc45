package webhooks

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/testkit"

	"github.com/redis/go-redis/v9"
)

// pipeClient lets the store's own writes (Store.Create and Store.record,
// through timeindex's scripts) be pipelined: EvalSha queues the script and
// answers at once with the scripts' success value {1, ""}; HGetAll (the
// read-back at the end of Create) answers a PENDING stub without a round
// trip. Exec sends the batch and checks every script's real answer.
// Everything else goes to the real client.
type pipeClient struct {
	redis.UniversalClient
	pipe redis.Pipeliner
	cmds []*redis.Cmd
}

func newPipeClient(rdb redis.UniversalClient) *pipeClient {
	return &pipeClient{UniversalClient: rdb, pipe: rdb.Pipeline()}
}

func (c *pipeClient) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	c.cmds = append(c.cmds, c.pipe.EvalSha(ctx, sha1, keys, args...))
	ok := redis.NewCmd(ctx)
	ok.SetVal([]any{int64(1), ""})
	return ok
}

func (c *pipeClient) HGetAll(ctx context.Context, key string) *redis.MapStringStringCmd {
	cmd := redis.NewMapStringStringCmd(ctx)
	cmd.SetVal(map[string]string{"status": string(StatusPending)})
	return cmd
}

// Exec runs the queued scripts and fails unless each answered {1, ...}.
func (c *pipeClient) Exec(ctx context.Context) error {
	defer func() { c.cmds = c.cmds[:0] }()
	if _, err := c.pipe.Exec(ctx); err != nil {
		return err
	}
	for _, cmd := range c.cmds {
		res, err := cmd.Slice()
		if err != nil {
			return err
		}
		if len(res) == 0 || res[0] != int64(1) {
			return fmt.Errorf("script answered %v", res)
		}
	}
	return nil
}

// createFailed writes n FAILED deliveries with one failed attempt each,
// through Store.Create and Store.record: the first directly (which loads
// the scripts into Redis), the others pipelined in batches from several
// goroutines.
func createFailed(t testing.TB, s *Store, n int, clients []string, start time.Time) {
	t.Helper()
	ctx := context.Background()
	const batch = 500
	one := func(st *Store, i int) error {
		m := Message{ID: fmt.Sprintf("msg_scale_%07d", i), RequestID: fmt.Sprintf("req_scale_%07d", i),
			ClientID: clients[i%len(clients)], EventType: "job.completed", URL: "http://127.0.0.1:9/hook",
			Body: []byte(`{"n":1}`)}
		created := start.Add(time.Duration(i) * time.Millisecond)
		if _, err := st.Create(ctx, m, created, nil); err != nil {
			return err
		}
		d := Delivery{ID: m.ID, ClientID: m.ClientID, CreatedAt: created}
		a := Attempt{Number: 1, StartedAt: created, URL: m.URL, StatusCode: 410,
			ErrorClass: ClassStatus, Error: "receiver answered 410", Outcome: OutcomeFailed}
		return st.record(ctx, d, a, StatusFailed)
	}
	if err := one(s, 0); err != nil {
		t.Fatalf("creating FAILED delivery 0: %v", err)
	}
	var next atomic.Int64
	next.Store(1)
	var wg sync.WaitGroup
	workers := 4 * runtime.GOMAXPROCS(0)
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc := newPipeClient(s.rdb)
			ps := NewStore(pc, s.retention)
			for {
				from := int(next.Add(batch)) - batch
				if from >= n {
					return
				}
				for i := from; i < min(from+batch, n); i++ {
					if err := one(ps, i); err != nil {
						errs <- err
						return
					}
				}
				if err := pc.Exec(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating FAILED deliveries: %v", err)
	}
}

func TestCreateFailedHelper(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	createFailed(t, e.store, 2500, []string{"cl_a"}, e.clock.Now())
	for _, tt := range []struct {
		status Status
		want   int64
	}{{StatusFailed, 2500}, {StatusPending, 0}} {
		if c, err := e.store.Count(ctx, Filter{Status: tt.status}); err != nil || c != tt.want {
			t.Errorf("Count(%s) = %d, %v, want %d", tt.status, c, err, tt.want)
		}
	}
	for _, id := range []string{"msg_scale_0000000", "msg_scale_0001234", "msg_scale_0002499"} {
		d := e.get(t, id)
		if d.Status != StatusFailed || d.Attempts != 1 || len(d.AttemptLog) != 1 || d.AttemptLog[0].StatusCode != 410 {
			t.Errorf("%s: Status, Attempts, log = %s, %d, %+v, want FAILED, 1, one 410", id, d.Status, d.Attempts, d.AttemptLog)
		}
	}
}

func TestBulkReplayScale(t *testing.T) {
	testkit.Long(t)
	t.Parallel()
	const n = 100_000
	ctx := context.Background()
	e := newEnv(t)
	sched := &countingScheduler{}
	d := NewDispatcher(DispatcherOptions{Store: e.store, Secrets: e.secrets, Scheduler: sched, Replays: e.starter,
		Policy: testPolicy(), Timeout: time.Second, Now: e.clock.Now})

	setup := time.Now()
	createFailed(t, e.store, n, []string{"cl_a", "cl_b"}, e.clock.Now().Add(-time.Hour))
	t.Logf("setup: %d FAILED deliveries in %v", n, time.Since(setup).Round(time.Millisecond))

	r, err := d.StartBulkReplay(ctx, Filter{Status: StatusFailed}, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Matched != n {
		t.Fatalf("StartBulkReplay(FAILED) Matched = %d, want %d", r.Matched, n)
	}
	run := time.Now()
	if err := d.RunBulkReplay(ctx, r.ID); err != nil {
		t.Fatalf("RunBulkReplay = %v", err)
	}
	elapsed := time.Since(run)
	got, err := d.GetReplay(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != ReplayDone || got.Replayed != n || got.Skipped != 0 {
		t.Errorf("GetReplay = state %s, Replayed %d, Skipped %d, want done, %d, 0", got.State, got.Replayed, got.Skipped, n)
	}
	if c := sched.n.Load(); c != n {
		t.Errorf("Scheduler calls = %d, want %d", c, n)
	}
	for _, tt := range []struct {
		status Status
		want   int64
	}{{StatusFailed, 0}, {StatusPending, n}} {
		if c, err := e.store.Count(ctx, Filter{Status: tt.status}); err != nil || c != tt.want {
			t.Errorf("Count(%s) after replay = %d, %v, want %d", tt.status, c, err, tt.want)
		}
	}
	t.Logf("RunBulkReplay of %d FAILED deliveries: %v (%.0f/s)", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
}

package clients_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/redis/go-redis/v9"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// countingStore is the real store, counting the reads the caches are
// meant to spare and telling when its change feed is subscribed.
type countingStore struct {
	*redisstore.Store
	clientOfKey, getClient atomic.Int64
	// afterGet, when set, runs after a GetClient read, before its answer
	// reaches the Service.
	afterGet func()

	subscribeOnce sync.Once
	subscribed    chan struct{} // closed when Changes is first (re)subscribed
}

func (s *countingStore) ClientOfKey(ctx context.Context, keyHash string) (string, error) {
	s.clientOfKey.Add(1)
	return s.Store.ClientOfKey(ctx, keyHash)
}

func (s *countingStore) GetClient(ctx context.Context, id string, withKeys bool) (clients.Client, error) {
	s.getClient.Add(1)
	c, err := s.Store.GetClient(ctx, id, withKeys)
	if s.afterGet != nil {
		s.afterGet()
	}
	return c, err
}

// Changes passes the real feed on, but for its first value ("" when the
// subscription starts), which closes subscribed instead: the tests start
// watching with nothing cached, and passing it on would make Watch drop the
// whole cache at a moment of its own, after the test cached a client.
func (s *countingStore) Changes(ctx context.Context) <-chan string {
	in := s.Store.Changes(ctx)
	out := make(chan string)
	go func() {
		defer close(out)
		first := true
		for id := range in {
			if first && id == "" {
				first = false
				s.subscribeOnce.Do(func() { close(s.subscribed) })
				continue
			}
			first = false
			s.subscribeOnce.Do(func() { close(s.subscribed) })
			select {
			case out <- id:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (s *countingStore) reads() (clientOfKey, getClient int64) {
	return s.clientOfKey.Load(), s.getClient.Load()
}

// process is one Boomerang process's view of the tenants: its own Redis
// connection, store and Service, on a database other processes may share.
type process struct {
	svc   *clients.Service
	store *countingStore
	rdb   *redis.Client
}

// newProcess starts a process on the Redis database at url.
func newProcess(t *testing.T, url string, clk *testkit.Clock) *process {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	st, err := redisstore.New(context.Background(), rdb, redisstore.Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("redisstore.New: %v", err)
	}
	cs := &countingStore{Store: st, subscribed: make(chan struct{})}
	return &process{svc: clients.NewService(cs, clients.Options{Now: clk.Now}), store: cs, rdb: rdb}
}

// newService is one process on a database of its own.
func newService(t *testing.T) (*clients.Service, *redis.Client, *testkit.Clock) {
	t.Helper()
	clk := testkit.NewClock(t0)
	p := newProcess(t, redistest.URL(t), clk)
	return p.svc, p.rdb, clk
}

// watch runs p's Watch until the test ends and returns once it is
// subscribed, so that announcements made from then on reach it.
func (p *process) watch(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.svc.Watch(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-p.store.subscribed:
	case <-time.After(30 * time.Second): // bounds a hang only
		t.Fatal("Watch did not subscribe to the change feed")
	}
}

func create(t *testing.T, s *clients.Service, name string, jobTypes ...string) (clients.Client, string, string) {
	t.Helper()
	c, key, secret, err := s.Create(context.Background(), name, jobTypes...)
	if err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
	return c, key, secret
}

// eventually polls cond until it holds; the deadline only bounds a hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func hints(keys []clients.Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.ID+" "+k.Hint)
	}
	return out
}

// short keeps secrets out of failure messages.
func short(secrets []string) []string {
	out := make([]string, len(secrets))
	for i, s := range secrets {
		out[i] = s[:10] + "..."
	}
	return out
}

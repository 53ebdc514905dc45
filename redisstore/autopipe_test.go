package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/redis/go-redis/v9"
)

// pipelineGate counts the pipelines that reach Redis and holds the first
// one until released, so that the test can queue commands behind it.
type pipelineGate struct {
	mu      sync.Mutex
	sizes   []int
	held    chan struct{} // closed when the first pipeline is being held
	release chan struct{}
}

func newPipelineGate() *pipelineGate {
	return &pipelineGate{held: make(chan struct{}), release: make(chan struct{})}
}

func (g *pipelineGate) DialHook(next redis.DialHook) redis.DialHook { return next }
func (g *pipelineGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (g *pipelineGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		switch cmds[0].Name() {
		case "hello", "select", "client", "auth":
			return next(ctx, cmds) // a new connection's set-up
		}
		g.mu.Lock()
		g.sizes = append(g.sizes, len(cmds))
		first := len(g.sizes) == 1
		g.mu.Unlock()
		if first {
			close(g.held)
			<-g.release
		}
		return next(ctx, cmds)
	}
}

func (g *pipelineGate) pipelines() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.sizes...)
}

// queued waits until n calls wait in a's queue.
func queued(t *testing.T, a *autoPipe, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		a.mu.Lock()
		got := len(a.queue)
		a.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued; want %d", got, n)
		}
	}
}

// idle fails unless a runs no flusher.
func idle(t *testing.T, a *autoPipe) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		a.mu.Lock()
		running, q := a.running, len(a.queue)
		a.mu.Unlock()
		if running == 0 && q == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after every call returned: %d flushers running, %d calls queued; want none (an idle Store runs nothing)", running, q)
		}
	}
}

// value is caller i's value: "v<i>" padded so that its SET's arguments
// ("set", the key, the value) come to 1 000 bytes.
func value(i int) string {
	v := fmt.Sprintf("v%d", i)
	return v + strings.Repeat(".", 1000-len("set")-len(fmt.Sprintf("autopipe:%d", i))-len(v))
}

// TestAutoPipeSharesRoundTrips: commands that arrive while a pipeline is
// out go together in the next one, at most maxCmds at a time, and each
// caller reads its own replies, in its own order.
func TestAutoPipeSharesRoundTrips(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		callers        int
		maxCmds        int
		maxBytes       int   // each caller's SET carries 1 000 bytes
		wantPipelines  []int // commands per pipeline: the held first, then the queued; a pipeline takes no caller more once it holds maxCmds or maxBytes
		commandsPerCal int
	}{
		{"all queued in one", 50, 256, 1 << 20, []int{2, 98}, 2},
		{"split at maxCmds", 25, 10, 1 << 20, []int{1, 10, 10, 4}, 1},
		{"a caller's commands stay together", 6, 5, 1 << 20, []int{2, 6, 4}, 2},
		{"split at maxBytes", 10, 256, 3000, []int{2, 6, 6, 6}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rdb := redistest.Client(t)
			gate := newPipelineGate()
			rdb.AddHook(gate)
			a := &autoPipe{rdb: rdb, flushers: 1, maxCmds: tc.maxCmds, maxBytes: tc.maxBytes}
			ctx := context.Background()

			type reply struct {
				caller int
				got    []string
				err    error
			}
			replies := make(chan reply, tc.callers)
			call := func(i int) {
				cmds := make([]redis.Cmder, tc.commandsPerCal)
				for k := range cmds {
					// Each caller's own key; its second command reads what
					// its first wrote.
					key := fmt.Sprintf("autopipe:%d", i)
					if k == 0 {
						cmds[k] = redis.NewStatusCmd(ctx, "set", key, value(i))
					} else {
						cmds[k] = redis.NewStringCmd(ctx, "get", key)
					}
				}
				err := a.do(ctx, cmds...)
				var got []string
				for _, c := range cmds {
					switch c := c.(type) {
					case *redis.StatusCmd:
						got = append(got, c.Val())
					case *redis.StringCmd:
						got = append(got, c.Val())
					}
					if err == nil {
						err = c.Err()
					}
				}
				replies <- reply{i, got, err}
			}
			go call(0)
			<-gate.held
			for i := 1; i < tc.callers; i++ {
				go call(i)
			}
			queued(t, a, tc.callers-1)
			close(gate.release)
			for range tc.callers {
				r := <-replies
				want := []string{"OK", value(r.caller)}[:tc.commandsPerCal]
				if r.err != nil || fmt.Sprint(r.got) != fmt.Sprint(want) {
					t.Errorf("caller %d read %q, %v; want %q, nil", r.caller, r.got, r.err, want)
				}
			}
			// The first pipeline is the held one, with caller 0 alone.
			if got := gate.pipelines(); fmt.Sprint(got) != fmt.Sprint(tc.wantPipelines) {
				t.Errorf("pipelines of %v commands; want %v", got, tc.wantPipelines)
			}
			idle(t, a)
		})
	}
}

// TestAutoPipeCallerStopsWaiting: a caller whose context ends stops
// waiting with its context's error. Commands that had not left the queue
// are not sent; the commands queued with them still run for the others. A
// context that has ended already sends nothing.
func TestAutoPipeCallerStopsWaiting(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	gate := newPipelineGate()
	rdb.AddHook(gate)
	a := newAutoPipe(rdb, 1)
	bg := context.Background()

	ended, cancel := context.WithCancel(bg)
	cancel()
	if err := a.do(ended, redis.NewIntCmd(bg, "incr", "autopipe:ended")); !errors.Is(err, context.Canceled) {
		t.Fatalf("do with an ended context = %v; want %v", err, context.Canceled)
	}

	first := make(chan error, 1)
	go func() { first <- a.do(bg, redis.NewStatusCmd(bg, "ping")) }()
	<-gate.held
	ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
	defer cancel()
	if err := a.do(ctx, redis.NewIntCmd(ctx, "incr", "autopipe:canceled")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("do with a context that ends while the pipeline is out = %v; want %v", err, context.DeadlineExceeded)
	}
	other := redis.NewIntCmd(bg, "incr", "autopipe:other")
	done := make(chan error, 1)
	go func() { done <- a.do(bg, other) }()
	queued(t, a, 1) // the canceled call left the queue
	close(gate.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || other.Val() != 1 {
		t.Fatalf("the command queued after the canceled one: %d, %v; want 1, nil", other.Val(), err)
	}
	for _, k := range []string{"autopipe:ended", "autopipe:canceled"} {
		if n, err := rdb.Exists(bg, k).Result(); err != nil || n != 0 {
			t.Errorf("%s exists (%d, %v): a withdrawn command ran", k, n, err)
		}
	}
	idle(t, a)
}

// TestAutoPipeFailedRoundTrip: when Redis cannot be reached, every caller
// gets the error in its own commands, and nothing hangs.
func TestAutoPipeFailedRoundTrip(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	a := newAutoPipe(rdb, 4)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			cmd := redis.NewIntCmd(context.Background(), "incr", fmt.Sprint("k", i))
			if err := a.do(context.Background(), cmd); err != nil {
				t.Errorf("do = %v; want nil (the error is the command's)", err)
			}
			if cmd.Err() == nil {
				t.Errorf("caller %d: no error from an unreachable Redis", i)
			}
		})
	}
	wg.Wait()
	idle(t, a)
}

// TestRunScriptLoadsWhatRedisLacks: after SCRIPT FLUSH (a restarted or
// failed-over Redis), the scripts sent through the pipe load themselves.
func TestRunScriptLoadsWhatRedisLacks(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ctx := context.Background()
	s, err := New(ctx, rdb, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sc := redis.NewScript(`-- KEYS[1]: a counter; returns its new value
return redis.call('INCR', KEYS[1])`)
	for i := 1; i <= 3; i++ {
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		n, err := s.runScript(ctx, sc, []string{"autopipe:script"}).Int()
		if err != nil || n != i {
			t.Fatalf("run %d after SCRIPT FLUSH = %d, %v; want %d, nil", i, n, err, i)
		}
	}
	idle(t, s.pipes[0])
}

// TestNoSharedPipelinesOnACluster: one Redis has one pipe; a Cluster has
// none (a shared pipeline would wait for its slowest master), and its calls
// still work, each on its own.
func TestNoSharedPipelinesOnACluster(t *testing.T) {
	t.Parallel()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}) // never dialed
	defer cc.Close()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, tc := range []struct {
		name string
		rdb  redis.UniversalClient
		want int
	}{{"cluster", cc, 0}, {"one redis", c, 1}} {
		if got := len(newAutoPipes(tc.rdb)); got != tc.want {
			t.Errorf("%s: %d pipes; want %d", tc.name, got, tc.want)
		}
	}

	rdb := redistest.Client(t)
	ctx := context.Background()
	s, err := New(ctx, rdb, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.pipes = nil // as on a Cluster
	set, get := redis.NewStatusCmd(ctx, "set", "nopipe:k", "v"), redis.NewStringCmd(ctx, "get", "nopipe:k")
	if err := s.send(ctx, set, get); err != nil || set.Err() != nil || get.Val() != "v" {
		t.Fatalf("send without a pipe: %v; set %v; get %q, %v; want v", err, set.Err(), get.Val(), get.Err())
	}
	one := redis.NewIntCmd(ctx, "incr", "nopipe:n")
	if err := s.send(ctx, one); err != nil || one.Val() != 1 {
		t.Fatalf("send of one command without a pipe: %d, %v; want 1", one.Val(), err)
	}
}

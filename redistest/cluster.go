package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterEnv names an external Redis Cluster that StartCluster uses instead
// of starting one, in the form that URL returns.
const ClusterEnv = "BOOMERANG_TEST_REDIS_CLUSTER"

// ClusterOptions shape the cluster StartCluster starts. An external cluster
// (ClusterEnv) ignores them.
type ClusterOptions struct {
	Masters     int           // at least 3 (redis-cli's minimum); 0 means 3
	Replicas    int           // replicas per master, 0 or more
	AOF         bool          // appendonly yes with appendfsync always; otherwise no persistence
	NodeTimeout time.Duration // cluster-node-timeout; 0 means 2s, so a failover takes seconds
}

// Node is a master and the slots it serves.
type Node struct {
	ID       string
	Addr     string   // host:port
	Slots    [][2]int // inclusive ranges, ascending
	Replicas []string // addresses of its replicas that are not failing
}

// Owns reports whether slot is one of n's slots.
func (n Node) Owns(slot int) bool {
	for _, r := range n.Slots {
		if r[0] <= slot && slot <= r[1] {
			return true
		}
	}
	return false
}

// Cluster is a local Redis Cluster of real redis-server processes, owned by
// one test (or by a parent test whose subtests share it and call Flush).
//
// StartCluster starts the nodes on free loopback ports, each in its own temp
// dir with its log (redis.log) beside its nodes.conf, joins them with
// `redis-cli --cluster create`, and waits until every node says
// cluster_state:ok and all agree on which master serves which slots and
// which replica follows which master. The
// nodes die when the test ends (t.Cleanup) or when the test binary dies
// (Pdeathsig). When the test fails, the last lines of every node's log go to
// the test log.
//
// If BOOMERANG_TEST_REDIS_CLUSTER names a cluster (a go-redis cluster URL),
// StartCluster flushes that cluster and uses it instead; run one package at a
// time (go test -p 1) against it. KillMaster then fails the test.
type Cluster struct {
	auth     redis.Options // username, password, TLS for every connection
	external string        // the ClusterEnv URL; "" when we started the nodes
	extAddrs []string      // the external cluster's nodes

	mu      sync.Mutex // guards process.killed
	procs   []*process
	masters []string // masters just after the cluster formed, for URL
}

// process is one redis-server we started.
type process struct {
	addr   string
	dir    string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	killed bool
}

// StartCluster starts opts.Masters masters with opts.Replicas replicas each,
// forms a cluster of them and waits until it is healthy. It fails the test,
// with redis-cli's output or the reason the cluster is not healthy, if
// anything goes wrong.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if u := os.Getenv(ClusterEnv); u != "" {
		return useExternal(t, u)
	}
	if opts.Masters == 0 {
		opts.Masters = 3
	}
	if opts.NodeTimeout == 0 {
		opts.NodeTimeout = 2 * time.Second
	}
	if opts.Masters < 3 || opts.Replicas < 0 {
		t.Fatalf("redistest: a cluster needs at least 3 masters and 0 or more replicas, got %+v", opts)
	}
	server, err1 := exec.LookPath("redis-server")
	cli, err2 := exec.LookPath("redis-cli")
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("redistest: a cluster needs redis-server and redis-cli on PATH (apt-get install redis-server): %v", err)
	}

	c := &Cluster{}
	for range opts.Masters * (1 + opts.Replicas) {
		c.procs = append(c.procs, &process{dir: t.TempDir()})
	}
	// Registered after the first TempDir, so it runs before the dirs go.
	t.Cleanup(func() { c.stop(t) })
	for _, p := range c.procs {
		if err := p.start(server, opts); err != nil {
			t.Fatalf("redistest: %v", err)
		}
	}

	// redis-cli makes the first opts.Masters addresses the masters.
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.Replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	c.WaitHealthy(t, 30*time.Second)

	masters, err := c.Masters(ctx)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	for _, m := range masters {
		c.masters = append(c.masters, m.Addr)
	}
	return c
}

func useExternal(t testing.TB, u string) *Cluster {
	t.Helper()
	opt, err := redis.ParseClusterURL(u)
	if err != nil {
		t.Fatalf("redistest: %s: %v", ClusterEnv, err)
	}
	c := &Cluster{external: u}
	c.auth = redis.Options{Username: opt.Username, Password: opt.Password, TLSConfig: opt.TLSConfig}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var nodes []clusterNode
	for _, seed := range opt.Addrs {
		if nodes, err = c.clusterNodes(ctx, seed); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: %s: %v", ClusterEnv, err)
	}
	for _, n := range nodes {
		if !n.has("fail") && !n.has("noaddr") {
			c.extAddrs = append(c.extAddrs, n.addr)
		}
	}
	slices.Sort(c.extAddrs)
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("redistest: %s: %v", ClusterEnv, err)
	}
	c.WaitHealthy(t, 30*time.Second)
	t.Logf("redistest: using the external Redis Cluster in %s (%d nodes), flushed", ClusterEnv, len(c.extAddrs))
	return c
}

// start starts p's redis-server as a cluster node on fresh ports (a
// cluster bus port too) and waits until it answers (process.run).
func (p *process) start(server string, o ClusterOptions) error {
	return p.run(server, func(port int) ([]string, error) {
		bus, err := freePort()
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(p.dir, "nodes.conf")
		_ = os.Remove(conf) // a failed try may have left one with its port
		args := []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", conf,
			"--cluster-node-timeout", strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10),
			// A replica may take over however long its link was down, and
			// replicas sync at once instead of after 5 s.
			"--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay", "0",
			"--dir", p.dir, "--save", "", "--maxmemory-policy", "noeviction",
			"--logfile", "", // to stdout, which is the log file
		}
		if o.AOF {
			args = append(args, "--appendonly", "yes", "--appendfsync", "always")
		} else {
			args = append(args, "--appendonly", "no")
		}
		return args, nil
	})
}

func (p *process) logPath() string { return filepath.Join(p.dir, "redis.log") }

// tail returns the last n lines of p's log.
func (p *process) tail(n int) string {
	b, err := os.ReadFile(p.logPath())
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// kill sends SIGKILL and waits for the process to exit.
func (p *process) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
	}
}

// stop kills every node, first logging the end of each node's log if the
// test failed.
func (c *Cluster) stop(t testing.TB) {
	for _, p := range c.procs {
		if t.Failed() && p.cmd != nil {
			t.Logf("redistest: last lines of %s (%s):\n%s", p.addr, p.logPath(), p.tail(20))
		}
		p.kill()
	}
}

// Addrs returns the host:port of every node, replicas included, killed
// nodes excluded.
func (c *Cluster) Addrs() []string {
	if c.external != "" {
		return slices.Clone(c.extAddrs)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var addrs []string
	for _, p := range c.procs {
		if !p.killed {
			addrs = append(addrs, p.addr)
		}
	}
	return addrs
}

// URL returns a go-redis cluster URL (redis.ParseClusterURL) that lists the
// masters the cluster started with, less those killed since; clients find
// the rest of the cluster by themselves.
func (c *Cluster) URL() string {
	if c.external != "" {
		return c.external
	}
	live := c.Addrs()
	var addrs []string
	for _, m := range c.masters {
		if slices.Contains(live, m) {
			addrs = append(addrs, m)
		}
	}
	if len(addrs) == 0 {
		addrs = live
	}
	u := "redis://" + addrs[0]
	if len(addrs) > 1 {
		u += "?addr=" + strings.Join(addrs[1:], "&addr=")
	}
	return u
}

// Client returns a cluster client, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cl := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:     c.Addrs(),
		Username:  c.auth.Username,
		Password:  c.auth.Password,
		TLSConfig: c.auth.TLSConfig,
	})
	t.Cleanup(func() { cl.Close() })
	return cl
}

// KillMaster SIGKILLs the node at addr, normally a master so that a replica
// takes over its slots (WaitHealthy waits for that). Any node of a cluster
// this test started may be killed; nodes are not restarted.
func (c *Cluster) KillMaster(t testing.TB, addr string) {
	t.Helper()
	if c.external != "" {
		t.Fatalf("redistest: KillMaster needs a cluster this test started, but %s names an external cluster, which redistest does not kill", ClusterEnv)
	}
	c.mu.Lock()
	var victim *process
	for _, p := range c.procs {
		if p.addr == addr && !p.killed {
			victim, p.killed = p, true
		}
	}
	c.mu.Unlock()
	if victim == nil {
		t.Fatalf("redistest: KillMaster(%s): no live node of this cluster there", addr)
	}
	victim.kill()
}

// WaitHealthy waits until every live node says cluster_state:ok, every
// replica is in sync with its master, and all nodes agree on who replicates
// whom and on a slot map in which a live, non-failing master serves each of
// the 16384 slots. It fails the test, with
// the last reason, if that takes longer than timeout.
func (c *Cluster) WaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c.healthy(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: cluster not healthy after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) healthy(ctx context.Context) error {
	var first, firstView string
	for _, addr := range c.Addrs() {
		view, err := c.nodeView(ctx, addr)
		if err != nil {
			return err
		}
		if first == "" {
			first, firstView = addr, view
		} else if view != firstView {
			return fmt.Errorf("nodes disagree: %s sees %s; %s sees %s", first, firstView, addr, view)
		}
	}
	return nil
}

// nodeView checks the node at addr and returns its view of the cluster, one
// "addr [ranges] [replicas]" per master, sorted. Comparing views tells
// whether the nodes agree on the slots and on who replicates whom; a node
// learns that another became a replica some time after the replica knows.
func (c *Cluster) nodeView(ctx context.Context, addr string) (string, error) {
	rdb := c.node(addr)
	defer rdb.Close()
	info, err := rdb.ClusterInfo(ctx).Result()
	if err != nil {
		return "", fmt.Errorf("%s: CLUSTER INFO: %w", addr, err)
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return "", fmt.Errorf("%s: cluster_state is not ok", addr)
	}
	text, err := rdb.ClusterNodes(ctx).Result()
	if err != nil {
		return "", fmt.Errorf("%s: CLUSTER NODES: %w", addr, err)
	}
	nodes := parseClusterNodes(text)
	var masters []string
	slots := 0
	for _, n := range nodes {
		if n.has("myself") && n.has("slave") {
			repl, err := rdb.Info(ctx, "replication").Result()
			if err != nil {
				return "", fmt.Errorf("%s: INFO replication: %w", addr, err)
			}
			if !strings.Contains(repl, "master_link_status:up") {
				return "", fmt.Errorf("%s: replica not in sync with its master", addr)
			}
		}
		if !n.has("master") || len(n.slots) == 0 {
			continue
		}
		if n.has("fail") || n.has("fail?") || c.isKilled(n.addr) {
			return "", fmt.Errorf("%s: slots %v are still on the failing master %s", addr, n.slots, n.addr)
		}
		for _, r := range n.slots {
			slots += r[1] - r[0] + 1
		}
		masters = append(masters, fmt.Sprint(n.addr, n.slots, replicasOf(nodes, n.id)))
	}
	if slots != 16384 {
		return "", fmt.Errorf("%s: masters serve %d of 16384 slots", addr, slots)
	}
	slices.Sort(masters)
	return strings.Join(masters, " "), nil
}

func (c *Cluster) isKilled(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if p.addr == addr {
			return p.killed
		}
	}
	return false
}

// node returns a client of the single node at addr. It does not retry, so
// that a dead node fails a check at once.
func (c *Cluster) node(addr string) *redis.Client {
	o := c.auth
	o.Addr, o.MaxRetries = addr, -1
	return redis.NewClient(&o)
}

// Masters returns the current masters (they change after a failover) with
// their slots, ordered by their first slot, as the first node that answers
// sees them.
func (c *Cluster) Masters(ctx context.Context) ([]Node, error) {
	var err error
	for _, addr := range c.Addrs() {
		var nodes []clusterNode
		if nodes, err = c.clusterNodes(ctx, addr); err == nil {
			return mastersOf(nodes), nil
		}
	}
	return nil, fmt.Errorf("redistest: no node answered CLUSTER NODES: %w", err)
}

// MasterFor returns the master that serves key's slot.
func (c *Cluster) MasterFor(ctx context.Context, key string) (Node, error) {
	masters, err := c.Masters(ctx)
	if err != nil {
		return Node{}, err
	}
	rdb := c.node(masters[0].Addr)
	defer rdb.Close()
	slot, err := rdb.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return Node{}, fmt.Errorf("redistest: CLUSTER KEYSLOT %s: %w", key, err)
	}
	for _, m := range masters {
		if m.Owns(int(slot)) {
			return m, nil
		}
	}
	return Node{}, fmt.Errorf("redistest: no master serves slot %d of %s", slot, key)
}

// Flush runs FLUSHALL on every master.
func (c *Cluster) Flush(ctx context.Context) error {
	_, err := c.eachMaster(ctx, func(rdb *redis.Client) (int64, error) {
		return 0, rdb.FlushAll(ctx).Err()
	})
	return err
}

// KeysPerMaster returns how many keys match pattern on each master, by
// master address, so that tests can check how keys spread.
func (c *Cluster) KeysPerMaster(ctx context.Context, pattern string) (map[string]int, error) {
	counts, err := c.eachMaster(ctx, func(rdb *redis.Client) (int64, error) {
		var n int64
		iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			n++
		}
		return n, iter.Err()
	})
	if err != nil {
		return nil, err
	}
	keys := make(map[string]int, len(counts))
	for addr, n := range counts {
		keys[addr] = int(n)
	}
	return keys, nil
}

// CommandsPerMaster returns how many commands each master has run since it
// started (the sum of calls in INFO commandstats), by master address, so
// that tests can check how traffic spreads. Each call adds a few commands
// of its own (CLUSTER NODES, INFO) to the count.
func (c *Cluster) CommandsPerMaster(ctx context.Context) (map[string]int64, error) {
	return c.eachMaster(ctx, func(rdb *redis.Client) (int64, error) {
		calls, err := CommandCalls(ctx, rdb)
		if err != nil {
			return 0, err
		}
		var total int64
		for _, n := range calls {
			total += n
		}
		return total, nil
	})
}

// eachMaster runs f on a client of each current master and returns its
// results by master address.
func (c *Cluster) eachMaster(ctx context.Context, f func(*redis.Client) (int64, error)) (map[string]int64, error) {
	masters, err := c.Masters(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(masters))
	for _, m := range masters {
		rdb := c.node(m.Addr)
		n, err := f(rdb)
		rdb.Close()
		if err != nil {
			return nil, fmt.Errorf("redistest: master %s: %w", m.Addr, err)
		}
		out[m.Addr] = n
	}
	return out, nil
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr, master string
	flags            []string // myself, master, slave, fail?, fail, noaddr, ...
	slots            [][2]int
}

func (n clusterNode) has(flag string) bool { return slices.Contains(n.flags, flag) }

func (c *Cluster) clusterNodes(ctx context.Context, addr string) ([]clusterNode, error) {
	rdb := c.node(addr)
	defer rdb.Close()
	text, err := rdb.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("%s: CLUSTER NODES: %w", addr, err)
	}
	return parseClusterNodes(text), nil
}

// parseClusterNodes parses CLUSTER NODES output:
//
//	<id> <ip:port@busport[,hostname]> <flags> <master id|-> <ping> <pong> <epoch> <link> <slot>...
//
// where a slot is "n", "n-m", or "[n->-id]" / "[n-<-id]" while it migrates
// (ignored here).
func parseClusterNodes(text string) []clusterNode {
	var nodes []clusterNode
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := clusterNode{id: f[0], addr: addr, flags: strings.Split(f[2], ","), master: f[3]}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue
			}
			lo, hi, isRange := strings.Cut(s, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil {
				n.slots = append(n.slots, [2]int{a, b})
			}
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// replicasOf returns the addresses of the replicas of the master with the
// given id that are not failing, sorted.
func replicasOf(nodes []clusterNode, id string) []string {
	var addrs []string
	for _, r := range nodes {
		if r.master == id && !r.has("fail") && !r.has("fail?") {
			addrs = append(addrs, r.addr)
		}
	}
	slices.Sort(addrs)
	return addrs
}

// mastersOf returns the masters that serve slots, with their replicas,
// ordered by first slot.
func mastersOf(nodes []clusterNode) []Node {
	var masters []Node
	for _, n := range nodes {
		if !n.has("master") || len(n.slots) == 0 {
			continue
		}
		m := Node{ID: n.id, Addr: n.addr, Slots: n.slots, Replicas: replicasOf(nodes, n.id)}
		slices.SortFunc(m.Slots, func(a, b [2]int) int { return a[0] - b[0] })
		masters = append(masters, m)
	}
	slices.SortFunc(masters, func(a, b Node) int { return a.Slots[0][0] - b.Slots[0][0] })
	return masters
}

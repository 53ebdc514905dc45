package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelEnv names an external Sentinel setup that StartSentinel uses
// instead of starting one: a go-redis failover URL naming the Sentinels and
// the master, e.g.
// redis://s1:26379?addr=s2:26379&addr=s3:26379&master_name=mymaster.
const SentinelEnv = "BOOMERANG_TEST_REDIS_SENTINEL"

// sentinelMaster is the name the Sentinels we start monitor the master by.
const sentinelMaster = "boomerang"

// SentinelOptions shape the setup StartSentinel starts. An external setup
// (SentinelEnv) ignores them.
type SentinelOptions struct {
	Replicas  int           // replicas of the master, 1 or more; 0 means 1
	AOF       bool          // appendonly yes with appendfsync always; otherwise no persistence
	DownAfter time.Duration // down-after-milliseconds; 0 means 2s, so a failover takes about 3 s
}

// Sentinel is a master, its replicas and three Sentinels that watch it, all
// real redis-server processes owned by one test.
//
// StartSentinel starts each on a free loopback port in its own temp dir,
// with its log (redis.log) beside its data or sentinel.conf, and waits until
// the replicas are in sync and every Sentinel knows the master, its
// replicas and the two other Sentinels (without the others a Sentinel can
// neither reach the quorum nor win the election that a failover needs). The
// processes die when the test ends (t.Cleanup) or when the test binary dies
// (Pdeathsig). When the test fails, the last lines of every log go to the
// test log.
//
// If BOOMERANG_TEST_REDIS_SENTINEL names a setup, StartSentinel flushes its
// master and uses it instead; run one package at a time (go test -p 1)
// against it. KillMaster then skips the test.
type Sentinel struct {
	opt      redis.FailoverOptions // Sentinel addresses, master name, credentials
	external string                // the SentinelEnv URL; "" when we started the processes

	nodes     []*process // the master it started with, then the replicas
	sentinels []*process
	killed    []string // addresses of the masters KillMaster killed
}

// StartSentinel starts a master with opts.Replicas replicas and three
// Sentinels (quorum 2) and waits until they are ready. It fails the test,
// with the reason and the logs, if anything goes wrong.
func StartSentinel(t testing.TB, opts SentinelOptions) *Sentinel {
	t.Helper()
	if u := os.Getenv(SentinelEnv); u != "" {
		return useExternalSentinel(t, u)
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.DownAfter == 0 {
		// Not 1s: a Sentinel counts down-after from the moment it links
		// to a new master, so with 1s a master just promoted whose first
		// PONG comes late on a busy machine is taken for down, and the
		// other Sentinels' "down" answers about the old master, still
		// fresh, make that a second failover (seen about once in ten
		// runs of faults.TestSentinelFailover; redis/redis#8607).
		opts.DownAfter = 2 * time.Second
	}
	if opts.Replicas < 1 {
		t.Fatalf("redistest: a Sentinel setup needs at least one replica to fail over to, got %+v", opts)
	}
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: a Sentinel setup needs redis-server on PATH (apt-get install redis-server): %v", err)
	}

	s := &Sentinel{}
	s.opt.MasterName = sentinelMaster
	for range 1 + opts.Replicas {
		s.nodes = append(s.nodes, &process{dir: t.TempDir()})
	}
	for range 3 {
		s.sentinels = append(s.sentinels, &process{dir: t.TempDir()})
	}
	// Registered after the first TempDir, so it runs before the dirs go.
	t.Cleanup(func() { s.stop(t) })

	master := s.nodes[0]
	if err := master.run(server, func(port int) ([]string, error) { return nodeArgs(port, master.dir, opts), nil }); err != nil {
		t.Fatalf("redistest: master: %v", err)
	}
	for _, r := range s.nodes[1:] {
		err := r.run(server, func(port int) ([]string, error) {
			host, mport, _ := net.SplitHostPort(master.addr)
			return append(nodeArgs(port, r.dir, opts), "--replicaof", host, mport), nil
		})
		if err != nil {
			t.Fatalf("redistest: replica: %v", err)
		}
	}
	// Replicas in sync first, so that each Sentinel's first look at the
	// master already lists them.
	s.wait(t, 30*time.Second, s.replicasInSync)
	for _, p := range s.sentinels {
		err := p.run(server, func(port int) ([]string, error) {
			conf := filepath.Join(p.dir, "sentinel.conf")
			return []string{conf, "--sentinel"}, os.WriteFile(conf, []byte(sentinelConf(port, p.dir, master.addr, opts)), 0o644)
		})
		if err != nil {
			t.Fatalf("redistest: sentinel: %v", err)
		}
		s.opt.SentinelAddrs = append(s.opt.SentinelAddrs, p.addr)
	}
	s.wait(t, 30*time.Second, s.ready)
	return s
}

// nodeArgs are the arguments of a master or replica on port.
func nodeArgs(port int, dir string, o SentinelOptions) []string {
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--save", "", "--maxmemory-policy", "noeviction",
		// Replicas sync at once instead of after 5 s, also with the
		// master a failover promotes.
		"--repl-diskless-sync-delay", "0",
		"--logfile", "", // to stdout, which is the log file
	}
	if o.AOF {
		return append(args, "--appendonly", "yes", "--appendfsync", "always")
	}
	return append(args, "--appendonly", "no")
}

// sentinelConf is the configuration file of a Sentinel on port. A Sentinel
// rewrites it as it learns (its id, peers, replicas, the current master).
// A failover-timeout of a few seconds bounds an election that no Sentinel
// wins (a split vote), after which another is tried at twice that.
func sentinelConf(port int, dir, master string, o SentinelOptions) string {
	host, mport, _ := net.SplitHostPort(master)
	name := sentinelMaster
	return strings.Join([]string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		"dir " + dir,
		`logfile ""`,
		"sentinel monitor " + name + " " + host + " " + mport + " 2",
		"sentinel down-after-milliseconds " + name + " " + strconv.FormatInt(o.DownAfter.Milliseconds(), 10),
		"sentinel failover-timeout " + name + " 3000",
		"sentinel parallel-syncs " + name + " 1",
	}, "\n") + "\n"
}

func useExternalSentinel(t testing.TB, u string) *Sentinel {
	t.Helper()
	opt, err := redis.ParseFailoverURL(u)
	if err != nil {
		t.Fatalf("redistest: %s: %v", SentinelEnv, err)
	}
	if opt.MasterName == "" {
		t.Fatalf("redistest: %s must name the master with ?master_name=", SentinelEnv)
	}
	s := &Sentinel{opt: *opt, external: u}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := redis.NewFailoverClient(s.failoverOptions())
	defer rdb.Close()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatalf("redistest: %s: flush the master: %v", SentinelEnv, err)
	}
	addr, err := s.Master(ctx)
	if err != nil {
		t.Fatalf("redistest: %s: %v", SentinelEnv, err)
	}
	t.Logf("redistest: using the external Sentinel setup in %s (master %q at %s, %d Sentinels), flushed",
		SentinelEnv, opt.MasterName, addr, len(opt.SentinelAddrs))
	return s
}

// run starts p's redis-server with the arguments args makes for a free
// port and waits until it answers. Another process can take a free port
// before redis-server binds it, so it tries three times.
func (p *process) run(server string, args func(port int) ([]string, error)) error {
	var err error
	for range 3 {
		if err = p.tryRun(server, args); err == nil {
			return nil
		}
	}
	return err
}

func (p *process) tryRun(server string, args func(port int) ([]string, error)) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	p.addr = "127.0.0.1:" + strconv.Itoa(port)
	argv, err := args(port)
	if err != nil {
		return err
	}
	log, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child keeps its own descriptor
	cmd := exec.Command(server, argv...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.cmd, p.exited = cmd, exited

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		rdb := redis.NewClient(&redis.Options{Addr: p.addr, MaxRetries: -1})
		err = rdb.Ping(context.Background()).Err()
		rdb.Close()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited: %s\n%s", p.addr, cmd.ProcessState, p.tail(10))
		case <-time.After(20 * time.Millisecond):
		}
	}
	p.kill()
	return fmt.Errorf("redis-server on %s did not answer within 10s: %v\n%s", p.addr, err, p.tail(10))
}

// stop kills the Sentinels, then the nodes, then logs the end of each log
// if the test failed.
func (s *Sentinel) stop(t testing.TB) {
	for _, p := range append(slices.Clone(s.sentinels), s.nodes...) {
		p.kill()
	}
	if !t.Failed() {
		return
	}
	// A Sentinel logs only events: its whole story of the failover fits.
	for _, p := range s.sentinels {
		t.Logf("redistest: last lines of Sentinel %s (%s):\n%s", p.addr, p.logPath(), p.tail(60))
	}
	for _, p := range s.nodes {
		t.Logf("redistest: last lines of %s (%s):\n%s", p.addr, p.logPath(), p.tail(20))
	}
}

// wait calls check until it returns nil, and fails the test with its last
// error if that takes longer than timeout.
func (s *Sentinel) wait(t testing.TB, timeout time.Duration, check func(context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := check(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: Sentinel setup not ready after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replicasInSync checks that every replica's link to its master is up.
func (s *Sentinel) replicasInSync(ctx context.Context) error {
	for _, r := range s.nodes[1:] {
		rdb := s.node(r.addr)
		info, err := rdb.Info(ctx, "replication").Result()
		rdb.Close()
		if err != nil {
			return fmt.Errorf("replica %s: INFO replication: %w", r.addr, err)
		}
		if !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica %s not in sync with its master", r.addr)
		}
	}
	return nil
}

// ready checks that every Sentinel sees the master up with all its
// replicas up, and knows the other Sentinels.
func (s *Sentinel) ready(ctx context.Context) error {
	master := s.nodes[0].addr
	for _, addr := range s.opt.SentinelAddrs {
		sc := s.sentinel(addr)
		m, err := sc.Master(ctx, s.opt.MasterName).Result()
		if err != nil {
			sc.Close()
			return fmt.Errorf("sentinel %s: SENTINEL MASTER: %w", addr, err)
		}
		replicas, err := sc.Replicas(ctx, s.opt.MasterName).Result()
		sc.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: SENTINEL REPLICAS: %w", addr, err)
		}
		switch got := net.JoinHostPort(m["ip"], m["port"]); {
		case got != master:
			return fmt.Errorf("sentinel %s sees the master at %s, want %s", addr, got, master)
		case m["flags"] != "master":
			return fmt.Errorf("sentinel %s: master flags %q", addr, m["flags"])
		case m["num-other-sentinels"] != strconv.Itoa(len(s.sentinels)-1):
			return fmt.Errorf("sentinel %s knows %s other Sentinels, want %d", addr, m["num-other-sentinels"], len(s.sentinels)-1)
		}
		up := 0
		for _, r := range replicas {
			if r["flags"] == "slave" && r["master-link-status"] == "ok" {
				up++
			}
		}
		if up != len(s.nodes)-1 {
			return fmt.Errorf("sentinel %s sees %d replicas up, want %d: %v", addr, up, len(s.nodes)-1, replicas)
		}
	}
	return nil
}

// URL returns a go-redis failover URL (redis.ParseFailoverURL) that names
// the Sentinels: redis://s1?addr=s2&addr=s3. The master's name is
// MasterName.
func (s *Sentinel) URL() string {
	if s.external != "" {
		u, _ := url.Parse(s.external) // parsed by useExternalSentinel
		q := u.Query()
		q.Del("master_name")
		u.RawQuery = q.Encode()
		return u.String()
	}
	addrs := s.opt.SentinelAddrs
	return "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
}

// MasterName returns the name the Sentinels know the master by.
func (s *Sentinel) MasterName() string { return s.opt.MasterName }

// Client returns a failover client of the master, closed when the test ends.
func (s *Sentinel) Client(t testing.TB) *redis.Client {
	rdb := redis.NewFailoverClient(s.failoverOptions())
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func (s *Sentinel) failoverOptions() *redis.FailoverOptions {
	o := s.opt
	o.SentinelAddrs = slices.Clone(o.SentinelAddrs)
	return &o
}

// Master asks the Sentinels, in turn, where the master is (SENTINEL
// get-master-addr-by-name) and returns the first answer, host:port.
func (s *Sentinel) Master(ctx context.Context) (string, error) {
	var errs []error
	for _, addr := range s.opt.SentinelAddrs {
		addr, err := s.masterSeenBy(ctx, addr)
		if err == nil {
			return addr, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("redistest: no Sentinel named the master: %w", errors.Join(errs...))
}

func (s *Sentinel) masterSeenBy(ctx context.Context, sentinel string) (string, error) {
	sc := s.sentinel(sentinel)
	defer sc.Close()
	hp, err := sc.GetMasterAddrByName(ctx, s.opt.MasterName).Result()
	if err != nil {
		return "", fmt.Errorf("sentinel %s: get-master-addr-by-name %s: %w", sentinel, s.opt.MasterName, err)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// KillMaster SIGKILLs the current master, as the Sentinels name it, and
// returns its address. The node is not restarted. It skips the test on an
// external setup, which redistest does not kill.
func (s *Sentinel) KillMaster(t testing.TB) string {
	t.Helper()
	if s.external != "" {
		t.Skipf("redistest: KillMaster needs a Sentinel setup this test started, but %s names an external one, which redistest does not kill", SentinelEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := s.Master(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(s.nodes, func(p *process) bool { return p.addr == addr })
	if i < 0 || slices.Contains(s.killed, addr) {
		t.Fatalf("redistest: KillMaster: the Sentinels name %s, which is no live node of this setup", addr)
	}
	s.killed = append(s.killed, addr)
	s.nodes[i].kill()
	return addr
}

// WaitFailover waits until every Sentinel names the same new master (not
// one KillMaster killed) and that node answers and says it is a master
// (ROLE), and returns its address. It fails the test, with the last reason,
// if that takes longer than timeout.
func (s *Sentinel) WaitFailover(t testing.TB, timeout time.Duration) string {
	t.Helper()
	var master string
	s.wait(t, timeout, func(ctx context.Context) error {
		var err error
		master, err = s.newMaster(ctx)
		return err
	})
	return master
}

func (s *Sentinel) newMaster(ctx context.Context) (string, error) {
	var master string
	for _, sentinel := range s.opt.SentinelAddrs {
		addr, err := s.masterSeenBy(ctx, sentinel)
		switch {
		case err != nil:
			return "", err
		case slices.Contains(s.killed, addr):
			return "", fmt.Errorf("sentinel %s still names the killed master %s", sentinel, addr)
		case master != "" && addr != master:
			return "", fmt.Errorf("the Sentinels disagree: %s and %s", master, addr)
		}
		master = addr
	}
	rdb := s.node(master)
	defer rdb.Close()
	role, err := rdb.Do(ctx, "ROLE").Slice()
	if err != nil {
		return "", fmt.Errorf("new master %s: ROLE: %w", master, err)
	}
	if len(role) == 0 || role[0] != "master" {
		return "", fmt.Errorf("new master %s: ROLE says %v", master, role)
	}
	return master, nil
}

// node returns a client of the master or replica at addr. It does not
// retry, so that a dead node fails a check at once.
func (s *Sentinel) node(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1,
		Username: s.opt.Username, Password: s.opt.Password, TLSConfig: s.opt.TLSConfig})
}

// sentinel returns a client of the Sentinel at addr, without retries.
func (s *Sentinel) sentinel(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1,
		Username: s.opt.SentinelUsername, Password: s.opt.SentinelPassword, TLSConfig: s.opt.TLSConfig})
}

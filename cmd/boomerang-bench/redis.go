package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// benchRedis is the Redis the phases run on: one server (private or
// external), whose databases the ceiling and the service share, or the
// masters of a private Redis Cluster, where both use database 0 in turn.
type benchRedis struct {
	mode      string
	version   string
	cluster   bool
	base      *url.URL // one server: its URL without a database
	ceilingDB int
	serviceDB int
	nodes     []redisNode  // the server, or the cluster's masters
	procs     []*redisProc // the servers this process started
}

// redisNode is one server to read INFO and DBSIZE from.
type redisNode struct {
	addr string
	rdb  *redis.Client // on one server, on the ceiling's database
	pid  int           // 0 for a server this process did not start
}

func openBenchRedis(ctx context.Context, f benchFlags, dir string) (*benchRedis, error) {
	if f.Cluster {
		return openCluster(ctx, dir)
	}
	return openServer(ctx, f.RedisURL, f.ServiceDB, dir)
}

// openServer connects to raw, or starts a private redis-server if raw is "".
func openServer(ctx context.Context, raw string, serviceDB int, dir string) (*benchRedis, error) {
	rs := &benchRedis{mode: "external"}
	pid := 0
	if raw == "" {
		p, err := startPrivateServer(ctx, dir)
		if err != nil {
			return nil, err
		}
		rs.procs = append(rs.procs, p)
		raw, pid, rs.mode = "redis://"+p.addr+"/0", p.pid(), "private redis-server"
	}
	if err := rs.parseURL(raw, serviceDB); err != nil {
		rs.close()
		return nil, err
	}
	rs.nodes = []redisNode{{addr: rs.base.Host, rdb: rs.client(rs.ceilingDB), pid: pid}}
	if err := rs.ready(ctx); err != nil {
		rs.close()
		return nil, fmt.Errorf("bench: redis at %s does not answer: %w", redactURL(raw), err)
	}
	return rs, nil
}

func (rs *benchRedis) parseURL(raw string, serviceDB int) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bench: redis url: %w", err)
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return fmt.Errorf("bench: redis url: %w", err)
	}
	q := u.Query()
	q.Del("db")
	u.RawQuery = q.Encode()
	rs.base, rs.ceilingDB, rs.serviceDB = u, opt.DB, serviceDB
	if serviceDB < 0 {
		rs.serviceDB = opt.DB + 1
	}
	if rs.serviceDB == rs.ceilingDB {
		return errors.New("bench: --service-db must differ from the database of --redis-url")
	}
	return nil
}

// ready waits up to 10 s for every node to answer, then reads the version.
func (rs *benchRedis) ready(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, n := range rs.nodes {
		for {
			err := n.rdb.Ping(pctx).Err()
			if err == nil {
				break
			}
			if pctx.Err() != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if rs.version = rs.infoField(ctx, rs.nodes[0], "server", "redis_version"); rs.version == "" {
		rs.version = "unknown"
	}
	return nil
}

func (rs *benchRedis) close() {
	for _, n := range rs.nodes {
		n.rdb.Close()
	}
	for _, p := range rs.procs {
		p.kill()
	}
}

// describeDBs says where the ceiling and the service run.
func (rs *benchRedis) describeDBs() string {
	if rs.cluster {
		return fmt.Sprintf("masters %s; ceiling and service in turn, each on flushed masters", strings.Join(rs.addrs(), " "))
	}
	return fmt.Sprintf("ceiling on db %d, service on db %d (both flushed)", rs.ceilingDB, rs.serviceDB)
}

func (rs *benchRedis) addrs() []string {
	var out []string
	for _, n := range rs.nodes {
		out = append(out, n.addr)
	}
	return out
}

// url is the one server's URL for database db.
func (rs *benchRedis) url(db int) string {
	u := *rs.base
	u.Path = "/" + strconv.Itoa(db)
	return u.String()
}

func (rs *benchRedis) options(db int) *redis.Options {
	opt, _ := redis.ParseURL(rs.url(db)) // parsed once already
	return opt
}

func (rs *benchRedis) client(db int) *redis.Client { return redis.NewClient(rs.options(db)) }

// serviceEnv is the Redis part of the service's environment.
func (rs *benchRedis) serviceEnv() []string {
	if !rs.cluster {
		return []string{"BOOMERANG_REDIS_URL=" + rs.url(rs.serviceDB)}
	}
	a := rs.addrs()
	return []string{"BOOMERANG_REDIS_URL=redis://" + a[0] + "?addr=" + strings.Join(a[1:], "&addr="), "BOOMERANG_REDIS_CLUSTER=true"}
}

func (rs *benchRedis) flushCeiling(ctx context.Context) error { return rs.flush(ctx, rs.ceilingDB) }
func (rs *benchRedis) flushService(ctx context.Context) error { return rs.flush(ctx, rs.serviceDB) }

func (rs *benchRedis) flush(ctx context.Context, db int) error {
	if !rs.cluster {
		c := rs.client(db)
		defer c.Close()
		return c.FlushDB(ctx).Err()
	}
	for _, n := range rs.nodes {
		if err := n.rdb.FlushDB(ctx).Err(); err != nil {
			return fmt.Errorf("%s: %w", n.addr, err)
		}
	}
	return nil
}

// nodeKeys is the keys of the service's database on each node.
func (rs *benchRedis) nodeKeys(ctx context.Context) []int64 {
	if !rs.cluster {
		c := rs.client(rs.serviceDB)
		defer c.Close()
		n, _ := c.DBSize(ctx).Result()
		return []int64{n}
	}
	var out []int64
	for _, n := range rs.nodes {
		k, _ := n.rdb.DBSize(ctx).Result()
		out = append(out, k)
	}
	return out
}

// serviceKeys is the keys of the service's database, all nodes together.
func (rs *benchRedis) serviceKeys(ctx context.Context) int64 {
	var sum int64
	for _, k := range rs.nodeKeys(ctx) {
		sum += k
	}
	return sum
}

// ---------------------------------------------------------------- INFO

func (rs *benchRedis) infoField(ctx context.Context, n redisNode, section, field string) string {
	txt, err := n.rdb.Info(ctx, section).Result()
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(txt, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// usedMemory is INFO memory's used_memory of all nodes, or -1 if a server
// has none.
func (rs *benchRedis) usedMemory(ctx context.Context) int64 {
	var sum int64
	for _, node := range rs.nodes {
		n, err := strconv.ParseInt(rs.infoField(ctx, node, "memory", "used_memory"), 10, 64)
		if err != nil {
			return -1
		}
		sum += n
	}
	return sum
}

// infoCPUSeconds is INFO cpu's user+sys seconds of all nodes.
func (rs *benchRedis) infoCPUSeconds(ctx context.Context) (float64, bool) {
	var sum float64
	for _, n := range rs.nodes {
		u, err1 := strconv.ParseFloat(rs.infoField(ctx, n, "cpu", "used_cpu_user"), 64)
		k, err2 := strconv.ParseFloat(rs.infoField(ctx, n, "cpu", "used_cpu_sys"), 64)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		sum += u + k
	}
	return sum, true
}

// redisCPU is the CPU seconds the Redis servers have used: utime+stime from
// /proc/<pid>/stat when this process started them all, else INFO cpu. It
// also says which.
func (rs *benchRedis) redisCPU(ctx context.Context) (float64, string, bool) {
	var sum float64
	for _, n := range rs.nodes {
		s, ok := 0.0, false
		if n.pid > 0 {
			s, ok = procCPUSeconds(n.pid)
		}
		if !ok {
			v, ok := rs.infoCPUSeconds(ctx)
			return v, "INFO cpu", ok
		}
		sum += s
	}
	return sum, "/proc/<pid>/stat", true
}

// commandCalls reads INFO commandstats of every node, summed: calls per
// command since the servers started (or since CONFIG RESETSTAT).
func (rs *benchRedis) commandCalls(ctx context.Context) map[string]int64 {
	out := map[string]int64{}
	for _, n := range rs.nodes {
		calls := rs.nodeCommandCalls(ctx, n)
		if calls == nil {
			return nil
		}
		for k, v := range calls {
			out[k] += v
		}
	}
	return out
}

// readEvents is how many times the Redis nodes read from a client socket
// (INFO stats total_reads_processed, summed): about one per round trip,
// however many commands it carries. -1 if a node would not say.
func (rs *benchRedis) readEvents(ctx context.Context) int64 {
	var total int64
	for _, n := range rs.nodes {
		txt, err := n.rdb.Info(ctx, "stats").Result()
		if err != nil {
			return -1
		}
		found := false
		for line := range strings.SplitSeq(txt, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_reads_processed:"); ok {
				r, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return -1
				}
				total, found = total+r, true
			}
		}
		if !found {
			return -1
		}
	}
	return total
}

// readsPer is read events per item between two readEvents, or 0 when
// either is unknown.
func readsPer(after, before int64, n int) float64 {
	if after < 0 || before < 0 || n <= 0 {
		return 0
	}
	return math.Round(float64(after-before)/float64(n)*100) / 100
}

func (rs *benchRedis) nodeCommandCalls(ctx context.Context, n redisNode) map[string]int64 {
	txt, err := n.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil
	}
	out := map[string]int64{}
	for line := range strings.SplitSeq(txt, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		for kv := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				out[name], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out
}

// perJob divides the growth of each command's calls by jobs, keeping the
// commands that ran at least once per 100 jobs, and adds their "total".
func perJob(after, before map[string]int64, jobs int) map[string]float64 {
	if after == nil || jobs == 0 {
		return nil
	}
	out := map[string]float64{}
	var total int64
	for k, v := range after {
		d := v - before[k]
		total += d
		if float64(d)/float64(jobs) >= 0.01 {
			out[k] = math.Round(float64(d)/float64(jobs)*100) / 100
		}
	}
	out["total"] = math.Round(float64(total)/float64(jobs)*100) / 100
	return out
}

// nodeLoad is the commands each node had run, at a moment.
type nodeLoad struct {
	at    time.Time
	calls []int64
}

func (rs *benchRedis) nodeLoad(ctx context.Context) nodeLoad {
	l := nodeLoad{at: time.Now()}
	for _, n := range rs.nodes {
		var total int64
		for _, v := range rs.nodeCommandCalls(ctx, n) {
			total += v
		}
		l.calls = append(l.calls, total)
	}
	return l
}

// opsPerSec is each node's commands per second since prev.
func (l nodeLoad) opsPerSec(prev nodeLoad) []float64 {
	secs := l.at.Sub(prev.at).Seconds()
	if secs <= 0 || len(l.calls) != len(prev.calls) {
		return nil
	}
	out := make([]float64, len(l.calls))
	for i := range l.calls {
		out[i] = math.Round(float64(l.calls[i]-prev.calls[i])/secs*10) / 10
	}
	return out
}

// ---------------------------------------------------------------- servers

// redisProc is a redis-server this process started, with its own dir and log.
type redisProc struct {
	cmd    *exec.Cmd
	addr   string
	dir    string
	exited chan struct{}
}

func startPrivateServer(ctx context.Context, dir string) (*redisProc, error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("bench: no --redis-url or BOOMERANG_REDIS_URL, and redis-server is not on PATH: " +
			"install it (Debian/Ubuntu: sudo apt-get install redis-server) or pass --redis-url redis://127.0.0.1:6379/1")
	}
	return startRedisServer(ctx, path, dir)
}

// startRedisServer starts redis-server on a free loopback port, without
// persistence and with noeviction, plus extra arguments, and waits until it
// answers. It dies with this process.
func startRedisServer(ctx context.Context, path, parent string, extra ...string) (*redisProc, error) {
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	p := &redisProc{addr: "127.0.0.1:" + strconv.Itoa(port), exited: make(chan struct{})}
	if p.dir, err = os.MkdirTemp(parent, "redis-"); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(p.dir, "redis.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own descriptor
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--maxmemory-policy", "noeviction", "--dir", p.dir}, extra...)
	p.cmd = exec.Command(path, args...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start redis-server: %w", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	if err := p.waitAnswer(ctx); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

func (p *redisProc) waitAnswer(ctx context.Context) error {
	rdb := redis.NewClient(&redis.Options{Addr: p.addr, MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := rdb.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("bench: redis-server on %s exited:\n%s", p.addr, p.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: redis-server on %s did not answer within 10s: %w\n%s", p.addr, err, p.logTail())
		}
	}
}

func (p *redisProc) pid() int { return p.cmd.Process.Pid }

func (p *redisProc) logTail() string {
	raw, err := os.ReadFile(filepath.Join(p.dir, "redis.log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}

func (p *redisProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = url.User("redacted")
	return u.String()
}

// Package config reads Boomerang's configuration from the environment, once,
// and validates it. Every error names the variable at fault.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/egress"
)

// Role says which parts of Boomerang a process runs.
type Role string

// The roles: all runs the API and the workers in one process.
const (
	RoleAll    Role = "all"
	RoleAPI    Role = "api"
	RoleWorker Role = "worker"
)

// RunsAPI and RunsWorkers tell what a role serves.
func (r Role) RunsAPI() bool     { return r == RoleAll || r == RoleAPI }
func (r Role) RunsWorkers() bool { return r == RoleAll || r == RoleWorker }

// Config is the whole configuration, passed by value to whatever needs a part.
type Config struct {
	RedisURL            string // empty: embedded in-memory Redis
	RedisCluster        bool   // RedisURL names the nodes of a Redis Cluster
	RedisSentinelMaster string // RedisURL names Sentinels, which watch this master
	RedisWaitReplicas   int    // WAIT for this many replicas before a 202
	RedisWaitTimeout    time.Duration
	Partitions          int // jobs spread over this many partitions
	Addr                string
	AdminAddr           string // empty: admin API on Addr
	DebugAddr           string // empty: no pprof listener
	MetricsAddr         string // empty: /metrics served with the admin API, behind its token
	AdminToken          string
	Role                Role

	Concurrency       int
	TaskCheckInterval time.Duration

	RetryInitial     time.Duration
	RetryMaxInterval time.Duration
	RetryMaxAttempts int
	DeliveryTimeout  time.Duration
	RecoverAfter     time.Duration // how late work may be before recovery steps in
	HostConcurrency  int           // concurrent attempts per callback host and process
	BreakerThreshold int           // consecutive failures that open a host's circuit
	BreakerCooldown  time.Duration // how long an open circuit defers attempts

	JobMaxAttempts int
	JobTimeout     time.Duration            // default per type
	JobTimeouts    map[string]time.Duration // per type overrides
	JobHTTP        map[string]string        // type → upstream URL
	JobHTTPAsync   map[string]string        // type → upstream URL that finishes later
	JobExternal    []string                 // types done by external workers
	JobMaxDeadline time.Duration            // cap of a submission's deadline
	PublicURL      string                   // the API's address as upstreams reach it

	WorkerWaitMax  time.Duration // longest claim long-poll
	WorkerLeaseMin time.Duration
	WorkerLeaseMax time.Duration

	Retention       time.Duration
	SecretGrace     time.Duration
	MaxBodyBytes    int64
	Limits          Limits
	RateLimit       int // requests per second per client; 0 disables
	RateBurst       int
	ShutdownTimeout time.Duration

	AllowPrivateCallbacks bool
	AllowCallbackCIDRs    []netip.Prefix
	RequireHTTPS          bool

	LogLevel  string // debug, info, warn, error
	LogFormat string // auto, json, text
}

// Limits bound the parts of a job submission.
type Limits struct {
	MaxPayloadBytes  int
	MaxMetadataKeys  int
	MaxMetadataBytes int
	MaxKeyLength     int
	MaxTypeLength    int
	TypePattern      *regexp.Regexp
}

// Embedded reports whether Boomerang runs on its in-memory Redis.
func (c Config) Embedded() bool { return c.RedisURL == "" }

// Var documents one environment variable; Vars is the table the README shows.
type Var struct{ Name, Default, Help string }

// Vars lists every variable Load reads.
var Vars = []Var{
	{"BOOMERANG_REDIS_URL", "(empty: embedded in-memory Redis)", "redis:// or rediss:// URL of the Redis that holds jobs, deliveries and tasks; for a cluster or Sentinels, the first node and ?addr=host:port for each other one"},
	{"BOOMERANG_REDIS_CLUSTER", "false", "BOOMERANG_REDIS_URL names the nodes of a Redis Cluster, e.g. redis://h1:6379?addr=h2:6379&addr=h3:6379"},
	{"BOOMERANG_REDIS_SENTINEL_MASTER", "", "the master name Sentinels watch; BOOMERANG_REDIS_URL then names the Sentinels, e.g. redis://s1:26379?addr=s2:26379"},
	{"BOOMERANG_REDIS_WAIT_REPLICAS", "0", "wait until this many replicas have a new job (Redis WAIT) before answering 202"},
	{"BOOMERANG_REDIS_WAIT_TIMEOUT", "1s", "longest wait for BOOMERANG_REDIS_WAIT_REPLICAS; past it the answer is 503"},
	{"BOOMERANG_PARTITIONS", "1 (16 on a cluster)", "partitions jobs are spread over, each with its own keys and asynq queue, so a cluster's masters share the work; fixed once a Redis is in use"},
	{"BOOMERANG_ADDR", ":8080", "listen address of the HTTP API"},
	{"BOOMERANG_ADMIN_ADDR", "(empty: same as BOOMERANG_ADDR)", "serve /admin on its own listener, e.g. 127.0.0.1:8081; the public one then answers 404 for /admin; a worker-only process (BOOMERANG_ROLE=worker) serves /healthz and /readyz there, for probes"},
	{"BOOMERANG_METRICS_ADDR", "(empty: /metrics with the admin API, behind the admin token)", "serve Prometheus metrics at /metrics on their own listener, without a token, e.g. 127.0.0.1:9464 (keep it private); the only way a worker-only process serves them"},
	{"BOOMERANG_DEBUG_ADDR", "", "serve Go's pprof profiles on this address, e.g. 127.0.0.1:6060 (keep it private)"},
	{"BOOMERANG_ADMIN_TOKEN", "(generated in embedded mode)", "admin bearer token, at least 32 characters; required with a real Redis"},
	{"BOOMERANG_ROLE", "all", "all, api or worker: scale the API and the workers apart on one Redis"},
	{"BOOMERANG_CONCURRENCY", "50", "tasks (jobs and delivery attempts) run at once per worker process"},
	{"BOOMERANG_TASK_CHECK_INTERVAL", "1s", "how often an idle worker polls its task queues (retries, recoveries, replays), times a quarter of the partitions past four, so that idle polling does not grow with them; new jobs do not wait for it, they come through a blocking pop"},
	{"BOOMERANG_RETRY_INITIAL", "5s", "wait before the first delivery retry"},
	{"BOOMERANG_RETRY_MAX_INTERVAL", "10h", "longest wait between attempts; also caps Retry-After"},
	{"BOOMERANG_RETRY_MAX_ATTEMPTS", "12", "delivery attempts in all, the first included"},
	{"BOOMERANG_DELIVERY_TIMEOUT", "15s", "time a receiver has to answer one attempt"},
	{"BOOMERANG_RECOVER_AFTER", "30s (at least the delivery timeout + 15s)", "how late a job or a delivery may be before recovery runs it again: a job whose worker died, a lost retry task"},
	{"BOOMERANG_HOST_CONCURRENCY", "10", "delivery attempts in flight at once per callback host (host:port) and worker process, halved by each consecutive failure of the host to answer; one endpoint gets at most three quarters; more wait without using up an attempt"},
	{"BOOMERANG_BREAKER_THRESHOLD", "5", "consecutive failures that open an endpoint's circuit (5xx, 429, no answer), or a host's (no answer: DNS, connect, TLS, timeout); 0 disables the circuit breakers"},
	{"BOOMERANG_BREAKER_COOLDOWN", "30s", "how long an open circuit defers its deliveries before one probe; an attempt waits for it once, then fails without a request (class circuit-open) and the delivery keeps its schedule"},
	{"BOOMERANG_JOB_MAX_ATTEMPTS", "5", "processing attempts of a job before it is FAILED"},
	{"BOOMERANG_JOB_TIMEOUT", "10m", "processing timeout of a job type without its own"},
	{"BOOMERANG_JOB_TIMEOUTS", "", "per-type timeouts, e.g. report=30m,echo=5s"},
	{"BOOMERANG_JOB_HTTP", "", "HTTP-forwarding job types, e.g. report=http://reports.internal/generate"},
	{"BOOMERANG_JOB_HTTP_ASYNC", "", "job types whose upstream accepts the work and finishes it later through a completion URL, e.g. approve=https://approvals.internal/start"},
	{"BOOMERANG_JOB_EXTERNAL", "", "job types done by external workers, which claim them over HTTP with a worker key, e.g. transcode,thumbnail"},
	{"BOOMERANG_JOB_MAX_DEADLINE", "720h", "latest deadline a submission may set; also the deadline of an async job submitted without one"},
	{"BOOMERANG_PUBLIC_URL", "(the API's own address)", "base URL of the API as upstreams reach it; completion URLs start with it (required on a worker-only process with async types)"},
	{"BOOMERANG_WORKER_WAIT_MAX", "60s", "longest waitSeconds of a claim"},
	{"BOOMERANG_WORKER_LEASE_MIN", "5s", "shortest leaseSeconds of a claim"},
	{"BOOMERANG_WORKER_LEASE_MAX", "1h", "longest leaseSeconds of a claim"},
	{"BOOMERANG_RETENTION", "168h", "how long jobs, deliveries and attempts are kept after their last change"},
	{"BOOMERANG_SECRET_GRACE", "24h", "how long a rotated-out signing secret still signs"},
	{"BOOMERANG_MAX_BODY_BYTES", "1048576", "largest accepted request body"},
	{"BOOMERANG_MAX_PAYLOAD_BYTES", "524288", "largest job payload"},
	{"BOOMERANG_MAX_METADATA_KEYS", "32", "most metadata keys a job may carry"},
	{"BOOMERANG_MAX_METADATA_BYTES", "4096", "largest metadata, keys and values together"},
	{"BOOMERANG_MAX_IDEMPOTENCY_KEY_BYTES", "255", "longest Idempotency-Key"},
	{"BOOMERANG_MAX_TYPE_LENGTH", "64", "longest job type name"},
	{"BOOMERANG_JOB_TYPE_PATTERN", "^[a-z][a-z0-9_.-]*$", "regular expression every job type name must match"},
	{"BOOMERANG_RATE_LIMIT", "500", "client API requests per second per client, shared by all API replicas (0 disables); over it: 429 with Retry-After"},
	{"BOOMERANG_RATE_BURST", "1000", "requests a client may make at once before the rate limit applies"},
	{"BOOMERANG_SHUTDOWN_TIMEOUT", "30s", "time in-flight work gets on SIGTERM"},
	{"BOOMERANG_ALLOW_PRIVATE_CALLBACKS", "false", "allow callbacks to loopback, private and link-local addresses (development)"},
	{"BOOMERANG_ALLOW_CALLBACK_CIDRS", "", "ranges callbacks may reach although private, e.g. 10.20.0.0/16"},
	{"BOOMERANG_REQUIRE_HTTPS", "false", "refuse http:// callback URLs"},
	{"BOOMERANG_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"BOOMERANG_LOG_FORMAT", "auto", "json, text, or auto (JSON unless stderr is a terminal)"},
}

// Load reads and validates the configuration. All errors are reported at once.
func Load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	c := Config{
		RedisURL:            p.str("BOOMERANG_REDIS_URL", ""),
		RedisCluster:        p.bool("BOOMERANG_REDIS_CLUSTER"),
		RedisSentinelMaster: p.str("BOOMERANG_REDIS_SENTINEL_MASTER", ""),
		RedisWaitReplicas:   p.int("BOOMERANG_REDIS_WAIT_REPLICAS", 0, 0, 100),
		RedisWaitTimeout:    p.dur("BOOMERANG_REDIS_WAIT_TIMEOUT", time.Second, time.Millisecond),
		Partitions:          p.int("BOOMERANG_PARTITIONS", 0, 1, 1024),
		Addr:                p.str("BOOMERANG_ADDR", ":8080"),
		AdminAddr:           p.str("BOOMERANG_ADMIN_ADDR", ""),
		AdminToken:          p.str("BOOMERANG_ADMIN_TOKEN", ""),
		DebugAddr:           p.str("BOOMERANG_DEBUG_ADDR", ""),
		MetricsAddr:         p.str("BOOMERANG_METRICS_ADDR", ""),
		Role:                Role(p.str("BOOMERANG_ROLE", "all")),
		Concurrency:         p.int("BOOMERANG_CONCURRENCY", 50, 1, 10000),
		TaskCheckInterval:   p.dur("BOOMERANG_TASK_CHECK_INTERVAL", time.Second, time.Millisecond),
		RetryInitial:        p.dur("BOOMERANG_RETRY_INITIAL", 5*time.Second, time.Millisecond),
		RetryMaxInterval:    p.dur("BOOMERANG_RETRY_MAX_INTERVAL", 10*time.Hour, time.Millisecond),
		RetryMaxAttempts:    p.int("BOOMERANG_RETRY_MAX_ATTEMPTS", 12, 1, 1000),
		DeliveryTimeout:     p.dur("BOOMERANG_DELIVERY_TIMEOUT", 15*time.Second, 100*time.Millisecond),
		RecoverAfter:        p.dur("BOOMERANG_RECOVER_AFTER", 0, time.Second),
		HostConcurrency:     p.int("BOOMERANG_HOST_CONCURRENCY", 10, 1, 10000),
		BreakerThreshold:    p.int("BOOMERANG_BREAKER_THRESHOLD", 5, 0, 1000),
		BreakerCooldown:     p.dur("BOOMERANG_BREAKER_COOLDOWN", 30*time.Second, 100*time.Millisecond),
		JobMaxAttempts:      p.int("BOOMERANG_JOB_MAX_ATTEMPTS", 5, 1, 100),
		JobTimeout:          p.dur("BOOMERANG_JOB_TIMEOUT", 10*time.Minute, time.Second),
		JobTimeouts:         p.timeouts("BOOMERANG_JOB_TIMEOUTS"),
		JobHTTP:             p.upstreams("BOOMERANG_JOB_HTTP"),
		JobHTTPAsync:        p.upstreams("BOOMERANG_JOB_HTTP_ASYNC"),
		JobExternal:         p.list("BOOMERANG_JOB_EXTERNAL"),
		JobMaxDeadline:      p.dur("BOOMERANG_JOB_MAX_DEADLINE", 30*24*time.Hour, time.Second),
		PublicURL:           p.str("BOOMERANG_PUBLIC_URL", ""),
		WorkerWaitMax:       p.dur("BOOMERANG_WORKER_WAIT_MAX", time.Minute, 0),
		WorkerLeaseMin:      p.dur("BOOMERANG_WORKER_LEASE_MIN", 5*time.Second, time.Second),
		WorkerLeaseMax:      p.dur("BOOMERANG_WORKER_LEASE_MAX", time.Hour, time.Second),
		Retention:           p.dur("BOOMERANG_RETENTION", 7*24*time.Hour, time.Minute),
		SecretGrace:         p.dur("BOOMERANG_SECRET_GRACE", 24*time.Hour, 0),
		MaxBodyBytes:        int64(p.int("BOOMERANG_MAX_BODY_BYTES", 1<<20, 1024, 1<<30)),
		Limits: Limits{
			MaxPayloadBytes:  p.int("BOOMERANG_MAX_PAYLOAD_BYTES", 512<<10, 1, 1<<30),
			MaxMetadataKeys:  p.int("BOOMERANG_MAX_METADATA_KEYS", 32, 1, 10000),
			MaxMetadataBytes: p.int("BOOMERANG_MAX_METADATA_BYTES", 4096, 1, 1<<20),
			MaxKeyLength:     p.int("BOOMERANG_MAX_IDEMPOTENCY_KEY_BYTES", 255, 1, 4096),
			MaxTypeLength:    p.int("BOOMERANG_MAX_TYPE_LENGTH", 64, 1, 256),
			TypePattern:      p.regexp("BOOMERANG_JOB_TYPE_PATTERN", `^[a-z][a-z0-9_.-]*$`),
		},
		RateLimit:             p.int("BOOMERANG_RATE_LIMIT", 500, 0, 1_000_000),
		RateBurst:             p.int("BOOMERANG_RATE_BURST", 1000, 1, 10_000_000),
		ShutdownTimeout:       p.dur("BOOMERANG_SHUTDOWN_TIMEOUT", 30*time.Second, time.Second),
		AllowPrivateCallbacks: p.bool("BOOMERANG_ALLOW_PRIVATE_CALLBACKS"),
		AllowCallbackCIDRs:    p.cidrs("BOOMERANG_ALLOW_CALLBACK_CIDRS"),
		RequireHTTPS:          p.bool("BOOMERANG_REQUIRE_HTTPS"),
		LogLevel:              p.oneOf("BOOMERANG_LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		LogFormat:             p.oneOf("BOOMERANG_LOG_FORMAT", "auto", "auto", "json", "text"),
	}
	switch c.Role {
	case RoleAll, RoleAPI, RoleWorker:
	default:
		p.fail("BOOMERANG_ROLE", "must be all, api or worker, not %q", c.Role)
	}
	if c.RecoverAfter == 0 {
		c.RecoverAfter = max(30*time.Second, c.DeliveryTimeout+15*time.Second)
	}
	if c.Partitions == 0 {
		c.Partitions = 1
		if c.RedisCluster {
			c.Partitions = 16
		}
	}
	if c.RedisCluster && c.RedisSentinelMaster != "" {
		p.fail("BOOMERANG_REDIS_CLUSTER", "and BOOMERANG_REDIS_SENTINEL_MASTER cannot both be set")
	}
	if c.RedisURL == "" && (c.RedisCluster || c.RedisSentinelMaster != "") {
		p.fail("BOOMERANG_REDIS_URL", "is required with BOOMERANG_REDIS_CLUSTER or BOOMERANG_REDIS_SENTINEL_MASTER")
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			p.fail("BOOMERANG_REDIS_URL", "must be a redis:// or rediss:// URL")
		}
		if c.AdminToken == "" && c.Role.RunsAPI() {
			p.fail("BOOMERANG_ADMIN_TOKEN", "is required with a real Redis (at least 32 characters)")
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < 32 {
		p.fail("BOOMERANG_ADMIN_TOKEN", "must be at least 32 characters, has %d", len(c.AdminToken))
	}
	if c.RetryMaxInterval < c.RetryInitial {
		p.fail("BOOMERANG_RETRY_MAX_INTERVAL", "(%s) must not be less than BOOMERANG_RETRY_INITIAL (%s)", c.RetryMaxInterval, c.RetryInitial)
	}
	// Operator-defined type names must be names clients can submit.
	checkName := func(env, name string) {
		if len(name) > c.Limits.MaxTypeLength || !c.Limits.TypePattern.MatchString(name) {
			p.fail(env, "job type %q must match BOOMERANG_JOB_TYPE_PATTERN %s and be at most %d bytes",
				name, c.Limits.TypePattern, c.Limits.MaxTypeLength)
		}
	}
	for name := range c.JobHTTP {
		checkName("BOOMERANG_JOB_HTTP", name)
	}
	for name := range c.JobTimeouts {
		checkName("BOOMERANG_JOB_TIMEOUTS", name)
	}
	// Each type is defined once: built in, forwarded, async or external.
	defined := map[string]string{"echo": "built in"}
	define := func(env, name string) {
		if by, ok := defined[name]; ok {
			p.fail(env, "type %q is defined already (%s)", name, by)
			return
		}
		defined[name] = env
	}
	for _, name := range sortedKeys(c.JobHTTP) {
		define("BOOMERANG_JOB_HTTP", name)
	}
	for _, name := range sortedKeys(c.JobHTTPAsync) {
		checkName("BOOMERANG_JOB_HTTP_ASYNC", name)
		define("BOOMERANG_JOB_HTTP_ASYNC", name)
	}
	for _, name := range c.JobExternal {
		checkName("BOOMERANG_JOB_EXTERNAL", name)
		define("BOOMERANG_JOB_EXTERNAL", name)
	}
	if err := c.ListenerClash(); err != nil {
		p.errs = append(p.errs, err)
	}
	if c.WorkerLeaseMax < c.WorkerLeaseMin {
		p.fail("BOOMERANG_WORKER_LEASE_MAX", "(%s) must not be less than BOOMERANG_WORKER_LEASE_MIN (%s)", c.WorkerLeaseMax, c.WorkerLeaseMin)
	}
	if len(c.JobHTTPAsync) > 0 && c.Role == RoleWorker && c.PublicURL == "" {
		p.fail("BOOMERANG_PUBLIC_URL", "is required with BOOMERANG_JOB_HTTP_ASYNC on a worker-only process (BOOMERANG_ROLE=worker): completion URLs must reach the API")
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			p.fail("BOOMERANG_PUBLIC_URL", "must be an http(s) URL without query or fragment, not %q", c.PublicURL)
		}
	}
	if len(p.errs) > 0 {
		return Config{}, errors.Join(p.errs...)
	}
	return c, nil
}

// ListenerClash names two listeners of this process on one address (one
// would fail at listen time with "address already in use", naming no
// variable), or returns nil. Port 0 (any free port) never clashes; a host
// left out or unspecified (":8080", "0.0.0.0:8080") clashes with any host
// on the same port. A worker-only process does not listen on
// BOOMERANG_ADDR. serve calls it again after its --addr flag.
func (c Config) ListenerClash() error {
	type listener struct{ name, addr string }
	var ls []listener
	if c.Role.RunsAPI() {
		ls = append(ls, listener{"BOOMERANG_ADDR", c.Addr})
	}
	ls = append(ls, listener{"BOOMERANG_ADMIN_ADDR", c.AdminAddr}, listener{"BOOMERANG_METRICS_ADDR", c.MetricsAddr},
		listener{"BOOMERANG_DEBUG_ADDR", c.DebugAddr})
	for i, a := range ls {
		for _, b := range ls[:i] {
			if sameListener(a.addr, b.addr) {
				return fmt.Errorf("%s (%s) must differ from %s (%s): each listener needs its own address", a.name, a.addr, b.name, b.addr)
			}
		}
	}
	return nil
}

// sameListener reports whether two listen addresses would take one port.
func sameListener(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil {
		return a == b
	}
	if pa != pb || pa == "0" {
		return false
	}
	any := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return h == "" || (err == nil && ip.IsUnspecified())
	}
	return ha == hb || any(ha) || any(hb)
}

type parser struct {
	getenv func(string) string
	errs   []error
}

func (p *parser) fail(name, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s %s", name, fmt.Sprintf(format, args...)))
}

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

func (p *parser) int(name string, def, min, max int) int {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		p.fail(name, "must be a whole number from %d to %d, not %q", min, max, v)
		return def
	}
	return n
}

func (p *parser) dur(name string, def, min time.Duration) time.Duration {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < min {
		p.fail(name, "must be a Go duration of at least %s such as 500ms or 10h, not %q", min, v)
		return def
	}
	return d
}

func (p *parser) regexp(name, def string) *regexp.Regexp {
	v := p.str(name, def)
	re, err := regexp.Compile(v)
	if err != nil {
		p.fail(name, "is not a valid regular expression: %v", err)
		return regexp.MustCompile(def)
	}
	return re
}

func (p *parser) bool(name string) bool {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(name, "must be true or false, not %q", v)
	}
	return b
}

func (p *parser) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(p.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	p.fail(name, "must be one of %s, not %q", strings.Join(allowed, ", "), v)
	return def
}

// pairs splits "a=x,b=y" and reports malformed and repeated entries.
func (p *parser) pairs(name string) map[string]string {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return nil
	}
	out := map[string]string{}
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		switch {
		case !ok || val == "":
			p.fail(name, "entry %q must look like type=value", part)
		case out[k] != "":
			p.fail(name, "job type %q appears twice", k)
		default:
			out[k] = val
		}
	}
	return out
}

func (p *parser) timeouts(name string) map[string]time.Duration {
	out := map[string]time.Duration{}
	for k, v := range p.pairs(name) {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			p.fail(name, "timeout of %q must be a duration of at least 1s, not %q", k, v)
			continue
		}
		out[k] = d
	}
	return out
}

func (p *parser) upstreams(name string) map[string]string {
	out := p.pairs(name)
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		u, err := url.Parse(out[k])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.fail(name, "upstream of %q must be an http(s) URL, not %q", k, out[k])
		}
	}
	return out
}

// list splits "a,b" into its non-empty, trimmed items.
func (p *parser) list(name string) []string {
	var out []string
	for _, item := range strings.Split(p.getenv(name), ",") {
		if item = strings.TrimSpace(item); item != "" && !slices.Contains(out, item) {
			out = append(out, item)
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (p *parser) cidrs(name string) []netip.Prefix {
	out, err := egress.ParseCIDRs(p.getenv(name))
	if err != nil {
		p.fail(name, "%v", err)
	}
	return out
}

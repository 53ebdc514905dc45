package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/config"
	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/handlers"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/recovery"
	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/redis/go-redis/v9"
)

// serve runs the service until ctx ends.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "listen address (overrides BOOMERANG_ADDR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if *addr != "" {
		cfg.Addr = *addr
	}
	log := newLogger(cfg, stderr)

	rdb, stopRedis, err := openRedis(ctx, &cfg, stdout, log)
	if err != nil {
		return err
	}
	defer stopRedis()

	app := wire(cfg, rdb, log)
	defer app.queue.Close()
	if cfg.Embedded() {
		if err := createDemoClient(ctx, app.clients, cfg, getenv("BOOMERANG_ADMIN_TOKEN") == "", stdout); err != nil {
			return err
		}
	}

	if cfg.DebugAddr != "" {
		dbg, err := startHTTP(cfg.DebugAddr, pprofHandler(), "pprof", stdout, log)
		if err != nil {
			return err
		}
		defer dbg.Close()
	}

	var workersUp atomic.Bool
	var workers *tasks.Server
	stopMaintenance := func() {}
	if cfg.Role.RunsWorkers() {
		workers = tasks.NewServer(rdb, tasks.ServerOptions{
			Concurrency:              cfg.Concurrency,
			JobRetryDelay:            webhooks.RetryPolicy{Initial: time.Second, MaxInterval: 5 * time.Minute, MaxAttempts: cfg.JobMaxAttempts}.Delay,
			ShutdownTimeout:          cfg.ShutdownTimeout,
			TaskCheckInterval:        cfg.TaskCheckInterval,
			DelayedTaskCheckInterval: 200 * time.Millisecond,
			Logger:                   log,
		}, tasks.Handlers{RunJob: app.jobs.Run, Attempt: app.dispatcher.Attempt, RunBulkReplay: app.dispatcher.RunBulkReplay})
		if err := workers.Start(); err != nil {
			return err
		}
		workersUp.Store(true)
		stopMaintenance = app.sweeper.Start(ctx, time.Minute)
	}
	shutdownWorkers := func() {
		stopMaintenance()
		if workers != nil {
			workersUp.Store(false)
			workers.Shutdown()
		}
	}

	ready := func(ctx context.Context) error {
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis unreachable")
		}
		if cfg.Role.RunsWorkers() && !workersUp.Load() {
			return errors.New("workers not running")
		}
		return nil
	}
	if !cfg.Role.RunsAPI() {
		fmt.Fprintln(stdout, "boomerang: worker running (BOOMERANG_ROLE=worker)")
		<-ctx.Done()
		shutdownWorkers()
		return nil
	}

	deps := handlers.Deps{Jobs: app.jobs, Clients: app.clients, Deliveries: app.deliveries, Replays: app.dispatcher,
		Limiter: clients.NewRateLimiter(rdb, float64(cfg.RateLimit), cfg.RateBurst, time.Now),
		Ready:   ready, AdminToken: cfg.AdminToken, MaxBody: cfg.MaxBodyBytes, Grace: cfg.SecretGrace, Logger: log}
	public := handlers.ServePublic | handlers.ServeAdmin
	var servers []*http.Server
	if cfg.AdminAddr != "" {
		public = handlers.ServePublic
		s, err := startHTTP(cfg.AdminAddr, handlers.New(deps, handlers.ServeAdmin), "admin API", stdout, log)
		if err != nil {
			shutdownWorkers()
			return err
		}
		servers = append(servers, s)
	}
	s, err := startHTTP(cfg.Addr, handlers.New(deps, public), "API", stdout, log)
	if err != nil {
		shutdownWorkers()
		return err
	}
	servers = append(servers, s)

	<-ctx.Done()
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(sctx)
	}
	shutdownWorkers()
	return nil
}

// startHTTP starts an HTTP server with timeouts a slow client cannot exploit.
func startHTTP(addr string, h http.Handler, what string, stdout io.Writer, log *slog.Logger) (*http.Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "error", err)
		}
	}()
	fmt.Fprintf(stdout, "boomerang: %s listening on http://%s\n", what, l.Addr())
	return s, nil
}

// openRedis connects to the configured Redis, or starts the embedded one.
func openRedis(ctx context.Context, cfg *config.Config, stdout io.Writer, log *slog.Logger) (redis.UniversalClient, func(), error) {
	if !cfg.Embedded() {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, nil, fmt.Errorf("BOOMERANG_REDIS_URL: %w", err)
		}
		opt.PoolSize = max(opt.PoolSize, cfg.Concurrency+20)
		rdb := redis.NewClient(opt)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for {
			err := rdb.Ping(pctx).Err()
			if err == nil {
				break
			}
			if pctx.Err() != nil {
				rdb.Close()
				return nil, nil, fmt.Errorf("redis at BOOMERANG_REDIS_URL does not answer: %w", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		return rdb, func() { rdb.Close() }, nil
	}
	mr := miniredis.NewMiniRedis()
	mr.ClockTTL(true) // without it keys with a TTL never expire
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, nil, fmt.Errorf("start embedded redis: %w", err)
	}
	banner := "WARNING: BOOMERANG_REDIS_URL is not set: running on an EMBEDDED IN-MEMORY Redis at " + mr.Addr() +
		". Nothing survives a restart. Set BOOMERANG_REDIS_URL for anything but a try-out."
	fmt.Fprintf(stdout, "\n*** %s ***\n\n", banner)
	log.Warn(banner)
	if cfg.AdminToken == "" {
		cfg.AdminToken = randomToken()
		fmt.Fprintln(stdout, "boomerang: BOOMERANG_ADMIN_TOKEN is not set: generated one (embedded mode only), shown below")
	}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), PoolSize: cfg.Concurrency + 20})
	return rdb, func() { rdb.Close(); mr.Close() }, nil
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func createDemoClient(ctx context.Context, store *clients.Store, cfg config.Config, generatedToken bool, stdout io.Writer) error {
	c, key, secret, err := store.Create(ctx, "demo")
	if err != nil {
		return fmt.Errorf("create demo client: %w", err)
	}
	admin := cfg.AdminToken
	if !generatedToken {
		admin = "$BOOMERANG_ADMIN_TOKEN" // the operator's own: never echoed
	}
	fmt.Fprintf(stdout, "boomerang: created demo client %s; paste these lines into another terminal:\n\n"+
		"  export API_KEY=%s\n  export SIGNING_SECRET=%s\n  export ADMIN_TOKEN=%s\n\n", c.ID, key, secret, admin)
	if !cfg.AllowPrivateCallbacks && len(cfg.AllowCallbackCIDRs) == 0 {
		fmt.Fprintln(stdout, "boomerang: callbacks to loopback and private addresses are refused; set BOOMERANG_ALLOW_PRIVATE_CALLBACKS=true to try it locally")
	}
	return nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	opts := &slog.HandlerOptions{Level: levels[cfg.LogLevel]}
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// app is the wired domain.
type app struct {
	clients    *clients.Store
	jobs       *jobs.Service
	deliveries *webhooks.Store
	dispatcher *webhooks.Dispatcher
	queue      *tasks.Queue
	sweeper    *recovery.Sweeper
}

// recoveryGrace is how overdue work must be before the sweep re-enqueues it:
// above asynq's ~65 s recovery of crashed tasks.
const recoveryGrace = 2 * time.Minute

func maxJobTimeout(cfg config.Config) time.Duration {
	d := cfg.JobTimeout
	for _, t := range cfg.JobTimeouts {
		d = max(d, t)
	}
	return d
}

func wire(cfg config.Config, rdb redis.UniversalClient, log *slog.Logger) app {
	cl := clients.NewStore(rdb, time.Now)
	dstore := webhooks.NewStore(rdb, cfg.Retention)
	jstore := jobs.NewStore(rdb, cfg.Retention)
	queue := tasks.NewQueue(rdb, cfg.DeliveryTimeout)
	policy := egress.Policy{AllowPrivate: cfg.AllowPrivateCallbacks, AllowCIDRs: cfg.AllowCallbackCIDRs, RequireHTTPS: cfg.RequireHTTPS}
	dispatcher := webhooks.NewDispatcher(webhooks.DispatcherOptions{
		Store: dstore, Transport: policy.Transport(), Secrets: cl, Scheduler: queue, Replays: queue,
		Policy:           webhooks.RetryPolicy{Initial: cfg.RetryInitial, MaxInterval: cfg.RetryMaxInterval, MaxAttempts: cfg.RetryMaxAttempts},
		Timeout:          cfg.DeliveryTimeout,
		HostConcurrency:  cfg.HostConcurrency,
		BreakerThreshold: cfg.BreakerThreshold,
		BreakerCooldown:  cfg.BreakerCooldown,
		UserAgent:        "Boomerang/" + version,
		Logger:           log,
	})
	svc := jobs.NewService(jobs.ServiceOptions{
		Store: jstore, Registry: registry(cfg), URLs: egress.Checker{Policy: policy}, Enqueuer: queue, Deliverer: dispatcher,
		MaxAttempts: cfg.JobMaxAttempts, Logger: log,
		Limits: jobs.Limits{MaxPayloadBytes: cfg.Limits.MaxPayloadBytes, MaxMetadataKeys: cfg.Limits.MaxMetadataKeys,
			MaxMetadataBytes: cfg.Limits.MaxMetadataBytes, MaxKeyLength: cfg.Limits.MaxKeyLength,
			MaxTypeLength: cfg.Limits.MaxTypeLength, TypePattern: cfg.Limits.TypePattern},
	})
	sweeper := &recovery.Sweeper{
		Jobs: jstore, Deliveries: dstore, Clients: cl, Queue: queue,
		JobAge:     maxJobTimeout(cfg) + cfg.DeliveryTimeout + recoveryGrace,
		JobTimeout: maxJobTimeout(cfg), Grace: recoveryGrace, Retention: cfg.Retention, Now: time.Now, Logger: log,
	}
	return app{clients: cl, jobs: svc, deliveries: dstore, dispatcher: dispatcher, queue: queue, sweeper: sweeper}
}

// registry holds the built-in job types and the operator's HTTP-forwarding
// types. Upstreams are the operator's own, so they skip the SSRF policy.
func registry(cfg config.Config) *jobs.Registry {
	timeout := func(name string) time.Duration {
		if d, ok := cfg.JobTimeouts[name]; ok {
			return d
		}
		return cfg.JobTimeout
	}
	r := jobs.NewRegistry()
	r.Register("echo", jobs.Echo, timeout("echo"))
	upstream := jobs.NewUpstreamClient()
	for name, url := range cfg.JobHTTP {
		r.Register(name, jobs.HTTPForwarder{URL: url, Client: upstream, UserAgent: "Boomerang/" + version}, timeout(name))
	}
	return r
}

// pprofHandler serves Go's profiles; only on BOOMERANG_DEBUG_ADDR.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

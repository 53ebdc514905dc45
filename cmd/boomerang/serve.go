package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/config"
	"github.com/boomerang-dev/boomerang/handlers"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/tracing"
	"github.com/redis/go-redis/v9"
)

// serve runs the service until ctx ends.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "serve [--addr ADDR]", stderr)
	addr := fs.String("addr", "", "listen `address` (overrides BOOMERANG_ADDR)")
	fs.Usage = func() { serveUsage(fs) }
	if err := fs.Parse(args); err != nil {
		return commandError("serve", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q (its configuration is BOOMERANG_* variables: serve -h)", fs.Arg(0))
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if *addr != "" {
		cfg.Addr = *addr
		if err := cfg.ListenerClash(); err != nil {
			return fmt.Errorf("configuration:\n--addr: %w", err)
		}
	}
	log := newLogger(cfg, stderr)
	tracer, err := startTracing(getenv, stdout, log)
	if err != nil {
		return err
	}
	defer stopTracing(ctx, tracer, cfg.ShutdownTimeout, log) // last: after the servers and workers

	rdb, stopRedis, err := openRedis(ctx, &cfg, stdout, log)
	if err != nil {
		return err
	}
	defer stopRedis()

	// The API listens first: its address is the completion URLs' default.
	var apiListener net.Listener
	publicURL := cfg.PublicURL
	if cfg.Role.RunsAPI() {
		if apiListener, err = net.Listen("tcp", cfg.Addr); err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
		}
		defer apiListener.Close()
		if publicURL == "" {
			publicURL = ownURL(apiListener.Addr().String())
		}
	} else if publicURL == "" {
		publicURL = ownURL(cfg.Addr)
	}

	app, err := wire(ctx, cfg, rdb, publicURL, log, tracer)
	if err != nil {
		return err
	}
	defer app.queue.Close()
	defer listenForChanges(ctx, cfg, app)()
	if cfg.Embedded() {
		if err := createDemoClient(ctx, app.clients, cfg, getenv("BOOMERANG_ADMIN_TOKEN") == "", stdout); err != nil {
			return err
		}
	}
	closeSide, err := startSideListeners(cfg, app, stdout, log)
	if err != nil {
		return err
	}
	defer closeSide()

	w, err := runWorkers(ctx, cfg, rdb, app, log)
	if err != nil {
		return err
	}
	if !cfg.Role.RunsAPI() {
		return serveWorkerOnly(ctx, cfg, w, stdout, log)
	}
	return serveAPI(ctx, cfg, rdb, app, apiListener, w, tracer, stdout, log)
}

// listenForChanges subscribes this process to what every process hears:
// client changes (cached clients dropped), revoked worker keys (API), job events for its watchers and
// types with work for its claims (API), jobs that ended (all: workers stop
// processors, APIs forget coalesced heartbeats). It returns the unsubscribe.
func listenForChanges(ctx context.Context, cfg config.Config, app app) (stop func()) {
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	go app.clients.Watch(watchCtx)
	var events <-chan jobs.Event
	var available <-chan string
	if cfg.Role.RunsAPI() {
		events, available = app.store.Events(watchCtx), app.store.Available(watchCtx)
		go app.workers.Watch(watchCtx) // drop revoked worker keys from the cache
	}
	app.jobs.Listen(events, available, app.store.Stops(watchCtx))
	return stopWatch
}

// startSideListeners starts the pprof and metrics listeners, if set; close
// stops them.
func startSideListeners(cfg config.Config, app app, stdout io.Writer, log *slog.Logger) (closeAll func(), err error) {
	var servers []*http.Server
	closeAll = func() {
		for _, s := range servers {
			_ = s.Close()
		}
	}
	if cfg.DebugAddr != "" {
		dbg, err := startHTTP(cfg.DebugAddr, pprofHandler(), "pprof", stdout, log)
		if err != nil {
			return closeAll, err
		}
		servers = append(servers, dbg)
	}
	if cfg.MetricsAddr != "" {
		ms, err := startHTTP(cfg.MetricsAddr, metricsOnly(app.metrics.Handler(log)), "metrics", stdout, log)
		if err != nil {
			closeAll()
			return closeAll, err
		}
		servers = append(servers, ms)
	} else if !cfg.Role.RunsAPI() {
		log.Info("metrics not served: a worker-only process serves them only on BOOMERANG_METRICS_ADDR")
	}
	return closeAll, nil
}

// workerState is this process's workers, if it runs any, and its
// readiness.
type workerState struct {
	up       atomic.Bool
	shutdown func()
	ready    func(ctx context.Context) error
}

// runWorkers starts the workers if cfg's role runs them; ready then
// answers whether Redis answers and they run.
func runWorkers(ctx context.Context, cfg config.Config, rdb redis.UniversalClient, app app, log *slog.Logger) (*workerState, error) {
	w := &workerState{shutdown: func() {}}
	if cfg.Role.RunsWorkers() {
		stop, err := startWorkers(ctx, cfg, rdb, app, log)
		if err != nil {
			return nil, err
		}
		w.up.Store(true)
		w.shutdown = func() { w.up.Store(false); stop() }
	}
	w.ready = func(ctx context.Context) error {
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis unreachable")
		}
		if cfg.Role.RunsWorkers() && !w.up.Load() {
			return errors.New("workers not running")
		}
		return nil
	}
	return w, nil
}

// serveWorkerOnly runs a process without the API until ctx ends. Its admin
// listener, if set, serves only the health routes, for probes
// (deploy/kubernetes, boomerang healthcheck).
func serveWorkerOnly(ctx context.Context, cfg config.Config, w *workerState, stdout io.Writer, log *slog.Logger) error {
	if cfg.AdminAddr != "" {
		s, err := startHTTP(cfg.AdminAddr, handlers.New(handlers.Deps{Ready: w.ready, Logger: log}, 0), "health", stdout, log)
		if err != nil {
			w.shutdown()
			return err
		}
		defer s.Close() // after the workers' drain, during which /readyz answers 503
	}
	fmt.Fprintln(stdout, "boomerang: worker running (BOOMERANG_ROLE=worker)")
	<-ctx.Done()
	w.shutdown()
	return nil
}

// serveAPI serves the API (and the admin API, console and metrics, on the
// admin listener if set) on l until ctx ends, then shuts down gracefully.
func serveAPI(ctx context.Context, cfg config.Config, rdb redis.UniversalClient, app app, l net.Listener, w *workerState, tracer *tracing.Tracer,
	stdout io.Writer, log *slog.Logger) error {
	defer w.shutdown()
	deps := handlers.Deps{Jobs: app.jobs, Work: app.jobs, Workers: app.workers, Clients: app.clients, Deliveries: app.store, Replays: app.dispatcher, Retries: app.dispatcher,
		WorkerLimits: handlers.WorkerLimits{WaitMax: cfg.WorkerWaitMax, LeaseMin: cfg.WorkerLeaseMin, LeaseMax: cfg.WorkerLeaseMax},
		Limiter:      clients.NewRateLimiter(app.store, float64(cfg.RateLimit), cfg.RateBurst, time.Now),
		Ready:        w.ready, AdminToken: cfg.AdminToken, MaxBody: cfg.MaxBodyBytes, Grace: cfg.SecretGrace, Logger: log,
		Observe: app.metrics.ObserveRequest, Console: newConsole(cfg, rdb, app, log)}
	if cfg.MetricsAddr == "" {
		deps.Metrics = app.metrics.Handler(log) // with the admin API, behind its token
	}
	public := handlers.ServePublic | handlers.ServeAdmin
	adminURL := ownURL(l.Addr().String())
	var servers []*http.Server
	if cfg.AdminAddr != "" {
		public, adminURL = handlers.ServePublic, ownURL(cfg.AdminAddr)
		s, err := startHTTP(cfg.AdminAddr, tracer.Handler(handlers.New(deps, handlers.ServeAdmin)), "admin API", stdout, log)
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	if !cfg.Embedded() {
		printFirstClient(ctx, app.clients, adminURL, stdout, log)
	}
	s, err := serveHTTP(l, tracer.Handler(handlers.New(deps, public)), "API", stdout, log)
	if err != nil {
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
	return nil
}

// startHTTP starts an HTTP server with timeouts a slow client cannot exploit.
func startHTTP(addr string, h http.Handler, what string, stdout io.Writer, log *slog.Logger) (*http.Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return serveHTTP(l, h, what, stdout, log)
}

// ownURL is the URL of a listen address as a local client reaches it.
func ownURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// serveHTTP serves on l with timeouts a slow client cannot exploit (the
// event stream and long-polls lift the write timeout for themselves).
func serveHTTP(l net.Listener, h http.Handler, what string, stdout io.Writer, log *slog.Logger) (*http.Server, error) {
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

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func createDemoClient(ctx context.Context, store *clients.Service, cfg config.Config, generatedToken bool, stdout io.Writer) error {
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
	// Lines about a job carry its requestId, deliveryId and traceId.
	if format == "text" {
		return slog.New(tracing.LogHandler(slog.NewTextHandler(w, opts)))
	}
	return slog.New(tracing.LogHandler(slog.NewJSONHandler(w, opts)))
}

// metricsOnly serves h at /metrics and nothing else.
func metricsOnly(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return mux
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

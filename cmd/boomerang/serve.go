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
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	go app.clients.Watch(watchCtx) // drop cached clients as they change, in every process
	// What every process hears: job events for its watchers (API), types
	// with work for its claims (API), jobs that ended (all).
	var events <-chan jobs.Event
	var available, stops <-chan string
	if cfg.Role.RunsAPI() {
		events, available = app.store.Events(watchCtx), app.store.Available(watchCtx)
	}
	stops = app.store.Stops(watchCtx) // workers stop processors; APIs forget coalesced heartbeats
	app.jobs.Listen(events, available, stops)
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

	if cfg.MetricsAddr != "" {
		ms, err := startHTTP(cfg.MetricsAddr, metricsOnly(app.metrics.Handler(log)), "metrics", stdout, log)
		if err != nil {
			return err
		}
		defer ms.Close()
	} else if !cfg.Role.RunsAPI() {
		log.Info("metrics not served: a worker-only process serves them only on BOOMERANG_METRICS_ADDR")
	}

	var workersUp atomic.Bool
	shutdownWorkers := func() {}
	if cfg.Role.RunsWorkers() {
		stop, err := startWorkers(ctx, cfg, rdb, app, log)
		if err != nil {
			return err
		}
		workersUp.Store(true)
		shutdownWorkers = func() { workersUp.Store(false); stop() }
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
		// A worker has no API; its admin listener, if set, serves only the
		// health routes, for probes (deploy/kubernetes, boomerang healthcheck).
		if cfg.AdminAddr != "" {
			s, err := startHTTP(cfg.AdminAddr, handlers.New(handlers.Deps{Ready: ready, Logger: log}, 0), "health", stdout, log)
			if err != nil {
				shutdownWorkers()
				return err
			}
			defer s.Close()
		}
		fmt.Fprintln(stdout, "boomerang: worker running (BOOMERANG_ROLE=worker)")
		<-ctx.Done()
		shutdownWorkers()
		return nil
	}

	deps := handlers.Deps{Jobs: app.jobs, Work: app.jobs, Workers: app.workers, Clients: app.clients, Deliveries: app.store, Replays: app.dispatcher, Retries: app.dispatcher,
		WorkerLimits: handlers.WorkerLimits{WaitMax: cfg.WorkerWaitMax, LeaseMin: cfg.WorkerLeaseMin, LeaseMax: cfg.WorkerLeaseMax},
		Limiter:      clients.NewRateLimiter(app.store, float64(cfg.RateLimit), cfg.RateBurst, time.Now),
		Ready:        ready, AdminToken: cfg.AdminToken, MaxBody: cfg.MaxBodyBytes, Grace: cfg.SecretGrace, Logger: log,
		Observe: app.metrics.ObserveRequest}
	if cfg.MetricsAddr == "" {
		deps.Metrics = app.metrics.Handler(log) // with the admin API, behind its token
	}
	deps.Console = newConsole(cfg, rdb, app, log)
	public := handlers.ServePublic | handlers.ServeAdmin
	var servers []*http.Server
	if cfg.AdminAddr != "" {
		public = handlers.ServePublic
		s, err := startHTTP(cfg.AdminAddr, tracer.Handler(handlers.New(deps, handlers.ServeAdmin)), "admin API", stdout, log)
		if err != nil {
			shutdownWorkers()
			return err
		}
		servers = append(servers, s)
	}
	if !cfg.Embedded() {
		adminURL := ownURL(apiListener.Addr().String())
		if cfg.AdminAddr != "" {
			adminURL = ownURL(cfg.AdminAddr)
		}
		printFirstClient(ctx, app.clients, adminURL, stdout, log)
	}
	s, err := serveHTTP(apiListener, tracer.Handler(handlers.New(deps, public)), "API", stdout, log)
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

package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/config"
	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/metrics"
	"github.com/boomerang-dev/boomerang/recovery"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/boomerang-dev/boomerang/tracing"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/boomerang-dev/boomerang/workers"
	"github.com/redis/go-redis/v9"
)

// app is the wired domain.
type app struct {
	store      *redisstore.Store
	clients    *clients.Service
	jobs       *jobs.Service
	dispatcher *webhooks.Dispatcher
	queue      *tasks.Queue
	sweeper    *recovery.Sweeper
	workers    *workers.Registry
	metrics    *metrics.Metrics
	stats      *tasks.Stats // queue state, read at most every 10 s for every reader
}

func maxJobTimeout(cfg config.Config) time.Duration {
	d := cfg.JobTimeout
	for _, t := range cfg.JobTimeouts {
		d = max(d, t)
	}
	return d
}

// wire builds the domain; publicURL is the API's address as upstreams
// reach it (completion URLs start with it).
func wire(ctx context.Context, cfg config.Config, rdb redis.UniversalClient, publicURL string, log *slog.Logger, tracer *tracing.Tracer) (app, error) {
	store, err := redisstore.New(ctx, rdb, redisstore.Options{Partitions: cfg.Partitions, Retention: cfg.Retention,
		RecoverAfter: cfg.RecoverAfter, WaitReplicas: cfg.RedisWaitReplicas, WaitTimeout: cfg.RedisWaitTimeout})
	if err != nil {
		return app{}, fmt.Errorf("redis: %w", err)
	}
	cl := clients.NewService(store, clients.Options{Logger: log})
	m, stats := metrics.New(), tasks.NewStats(rdb, store.Tags(), 0)
	if err := m.WatchQueues(metrics.QueueOptions{Stats: stats, ReadyLengths: store.ReadyLengths, Tags: store.Tags()}); err != nil {
		return app{}, err
	}
	queue := tasks.NewQueue(rdb, store.Tags(), cfg.DeliveryTimeout)
	policy := egress.Policy{AllowPrivate: cfg.AllowPrivateCallbacks, AllowCIDRs: cfg.AllowCallbackCIDRs, RequireHTTPS: cfg.RequireHTTPS}
	dispatcher := webhooks.NewDispatcher(webhooks.DispatcherOptions{
		Store: m.Deliveries(store), Transport: policy.Transport(), Secrets: cl, Scheduler: queue, Runner: queue, Replays: queue,
		Policy:           webhooks.RetryPolicy{Initial: cfg.RetryInitial, MaxInterval: cfg.RetryMaxInterval, MaxAttempts: cfg.RetryMaxAttempts},
		Timeout:          cfg.DeliveryTimeout,
		HostConcurrency:  cfg.HostConcurrency,
		BreakerThreshold: cfg.BreakerThreshold,
		BreakerCooldown:  cfg.BreakerCooldown,
		UserAgent:        "Boomerang/" + version,
		Logger:           log,
		Tracer:           tracer,
	})
	reg := registry(cfg)
	// Callback host names are resolved at submission; verdicts last 30 s.
	urls := egress.Checker{Policy: policy, Names: egress.NewNameCache(egress.NameCacheOptions{})}
	svc := jobs.NewService(jobs.ServiceOptions{
		Store: m.Jobs(store, reg.Names()), Registry: reg, MaxDeadline: cfg.JobMaxDeadline, PublicURL: publicURL, URLs: urls, Enqueuer: queue, Deliverer: dispatcher,
		MaxAttempts: cfg.JobMaxAttempts, Partitions: store.Partitions(), Logger: log, Tracer: tracer,
		RetryDelay: webhooks.RetryPolicy{Initial: time.Second, MaxInterval: 5 * time.Minute, MaxAttempts: cfg.JobMaxAttempts}.Delay,
		Limits: jobs.Limits{MaxPayloadBytes: cfg.Limits.MaxPayloadBytes, MaxMetadataKeys: cfg.Limits.MaxMetadataKeys,
			MaxMetadataBytes: cfg.Limits.MaxMetadataBytes, MaxKeyLength: cfg.Limits.MaxKeyLength,
			MaxTypeLength: cfg.Limits.MaxTypeLength, TypePattern: cfg.Limits.TypePattern},
	})
	sweeper := &recovery.Sweeper{Store: store, Clients: cl, Queue: queue, JobTimeout: maxJobTimeout(cfg),
		RecoverAfter: cfg.RecoverAfter, ReplayGrace: 2 * time.Minute, Retention: cfg.Retention, Now: time.Now, Logger: log}
	if len(cfg.JobExternal) > 0 {
		// A lease taken just after a look lapses no sooner than the next
		// look, which then knows it: lapses are seen within a tick.
		sweeper.IdleCheck = min(5*time.Second, cfg.WorkerLeaseMin)
	}
	wr := workers.NewRegistry(store, reg.External, time.Now)
	wr.Logger = log
	return app{store: store, clients: cl, jobs: svc, dispatcher: dispatcher, queue: queue, sweeper: sweeper, workers: wr, metrics: m, stats: stats}, nil
}

// startWorkers runs the job runner (new jobs, from the ready queue), the
// task server (retries, recoveries, replays) and the recovery sweep; stop
// ends them, letting running work finish within the shutdown timeout.
func startWorkers(ctx context.Context, cfg config.Config, rdb redis.UniversalClient, a app, log *slog.Logger) (stop func(), err error) {
	// asynq polls every partition's queue at each check: past four
	// partitions, checks space out so that idle polling stays at four
	// queues' worth whatever the partition count (retries and recoveries
	// may start that much later; new jobs never wait for it).
	check := cfg.TaskCheckInterval * time.Duration(max(1, (a.store.Partitions()+3)/4))
	srv := tasks.NewServer(rdb, a.store.Tags(), tasks.ServerOptions{
		Concurrency:              cfg.Concurrency,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		TaskCheckInterval:        check,
		DelayedTaskCheckInterval: check,
		Logger:                   log,
	}, tasks.Handlers{RunJob: a.jobs.Run, Attempt: a.dispatcher.Attempt, RunBulkReplay: a.dispatcher.RunBulkReplay,
		ExpireJob: a.jobs.Expire})
	if err := srv.Start(); err != nil {
		return nil, err
	}
	partitions := make([]int, a.store.Partitions())
	for i := range partitions {
		partitions[i] = i
	}
	runner := a.jobs.StartRunner(a.store, jobs.RunnerOptions{Partitions: partitions, Concurrency: cfg.Concurrency,
		Grace: cfg.ShutdownTimeout})
	stopSweep := a.sweeper.Start(ctx, time.Second, 5*time.Minute)
	return func() {
		stopSweep()
		runner.Stop()
		srv.Shutdown()
	}, nil
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
	for name, url := range cfg.JobHTTPAsync {
		r.RegisterAsync(name, jobs.HTTPAsync{URL: url, Client: upstream, UserAgent: "Boomerang/" + version}, timeout(name))
	}
	for _, name := range cfg.JobExternal {
		r.RegisterExternal(name)
	}
	return r
}

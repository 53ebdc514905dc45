package main

import (
	"log/slog"
	"net/http"

	"github.com/boomerang-dev/boomerang/config"
	"github.com/boomerang-dev/boomerang/console"
	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/redis/go-redis/v9"
)

// newConsole is the admin console over the same services as the admin
// API, with asynqmon (read-only) at /admin/queues; its queue page shares
// the metrics' tasks.Stats reading (at most one every 10 s).
func newConsole(cfg config.Config, rdb redis.UniversalClient, a app, log *slog.Logger) http.Handler {
	return console.New(console.Options{AdminToken: cfg.AdminToken, Deliveries: a.store, Replays: a.dispatcher, Retrier: a.dispatcher,
		Jobs: a.jobs, Clients: a.clients, Queues: a.stats, Ready: a.store,
		Monitor: tasks.Monitor(rdb, "/admin/queues"), Grace: cfg.SecretGrace, Logger: log})
}

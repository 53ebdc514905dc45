// Package handlers translates HTTP to Boomerang's domain and back: it
// decodes and checks requests, calls jobs, webhooks and clients, and encodes
// answers, with every error as application/problem+json (RFC 9457). It knows
// nothing of Redis or asynq.
package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
)

// Deps is everything the handlers need.
type Deps struct {
	Jobs         JobService
	Work         ExternalWork // jobs.Service: external workers and completion URLs
	Workers      Workers
	WorkerLimits WorkerLimits
	KeepAlive    time.Duration // event streams' keep-alive comment; 0 means 15 s
	Clients      ClientStore
	Deliveries   DeliveryReader
	Replays      Replayer
	Retries      Retrier
	Limiter      RateLimiter // nil: no rate limit
	Ready        func(ctx context.Context) error
	AdminToken   string
	MaxBody      int64
	Grace        time.Duration // signing-secret rotation grace period
	Logger       *slog.Logger
	Observe      ObserveRequest // nil: requests are not observed
	Metrics      http.Handler   // served at /metrics with the admin API, behind its token; nil: not served
	// Console, if set, is the admin console, served at /admin/ wherever
	// the admin API is (it does its own login; the API keeps its bearer).
	Console http.Handler
}

// completionsPrefix starts completion URLs: the token follows.
const completionsPrefix = "/v1/completions/"

// Which parts of the API a listener serves.
const (
	ServePublic = 1 << iota // client API and health
	ServeAdmin              // admin API
)

// New returns the HTTP API; serve says which parts (ServePublic|ServeAdmin).
// Parts not served answer 404, as if they did not exist.
func New(d Deps, serve int) http.Handler {
	return logRequests(d.Logger, observeRequests(d.Observe, Router(d, serve)))
}

// Router is the whole route table.
func Router(d Deps, serve int) *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = unrouted(r)
	r.MethodNotAllowedHandler = r.NotFoundHandler
	r.Use(noteRoute)
	r.Use(routeSpan)

	r.Handle("/healthz", healthz()).Methods(http.MethodGet)
	r.Handle("/readyz", readyz(d.Ready)).Methods(http.MethodGet)

	if serve&ServePublic != 0 {
		r.Handle(completionsPrefix+"{token}", completeByToken(d.Work, d.MaxBody)).Methods(http.MethodPost)

		wk := r.PathPrefix("/v1/worker").Subrouter()
		wk.Use(workerAuth(d.Workers))
		wk.Handle("/claim", claimJob(d.Work, d.WorkerLimits, d.MaxBody)).Methods(http.MethodPost)
		wk.Handle("/jobs/{requestId}/heartbeat", heartbeat(d.Work, d.MaxBody)).Methods(http.MethodPost)
		wk.Handle("/jobs/{requestId}/complete", completeWork(d.Work, d.MaxBody)).Methods(http.MethodPost)
		wk.Handle("/jobs/{requestId}/fail", failWork(d.Work, d.MaxBody)).Methods(http.MethodPost)

		v1 := r.PathPrefix("/v1").Subrouter()
		v1.Use(clientAuth(d.Clients, d.AdminToken), rateLimit(d.Limiter))
		v1.Handle("/jobs", submitJob(d.Jobs, d.MaxBody)).Methods(http.MethodPost)
		v1.Handle("/jobs/{requestId}", getJob(d.Jobs, d.Deliveries)).Methods(http.MethodGet)
		v1.Handle("/jobs/{requestId}/events", jobEvents(d.Jobs, d.KeepAlive)).Methods(http.MethodGet)
		v1.Handle("/jobs/{requestId}/cancel", cancelJob(d.Jobs, false)).Methods(http.MethodPost)
	}

	if serve&ServeAdmin != 0 {
		a := r.PathPrefix("/admin/v1").Subrouter()
		a.Use(adminAuth(d.AdminToken))
		a.Handle("/clients", createClient(d.Clients)).Methods(http.MethodPost)
		a.Handle("/clients", listClients(d.Clients)).Methods(http.MethodGet)
		a.Handle("/clients/{id}", getClient(d.Clients)).Methods(http.MethodGet)
		a.Handle("/clients/{id}", updateClient(d.Clients)).Methods(http.MethodPatch)
		a.Handle("/clients/{id}", disableClient(d.Clients)).Methods(http.MethodDelete)
		a.Handle("/clients/{id}/keys", addKey(d.Clients)).Methods(http.MethodPost)
		a.Handle("/clients/{id}/keys/{keyId}", revokeKey(d.Clients)).Methods(http.MethodDelete)
		a.Handle("/clients/{id}/secret/rotate", rotateSecret(d.Clients, d.Grace)).Methods(http.MethodPost)
		a.Handle("/jobs", listJobs(d.Jobs)).Methods(http.MethodGet)
		a.Handle("/jobs/{requestId}/cancel", cancelJob(d.Jobs, true)).Methods(http.MethodPost)
		a.Handle("/workers", createWorker(d.Workers, d.MaxBody)).Methods(http.MethodPost)
		a.Handle("/workers", listWorkers(d.Workers)).Methods(http.MethodGet)
		a.Handle("/workers/{id}", deleteWorker(d.Workers)).Methods(http.MethodDelete)
		a.Handle("/deliveries", listDeliveries(d.Deliveries)).Methods(http.MethodGet)
		a.Handle("/deliveries/replay", bulkReplay(d.Replays, d.MaxBody)).Methods(http.MethodPost)
		a.Handle("/deliveries/retry-now", bulkRetryNow(d.Retries, d.MaxBody)).Methods(http.MethodPost)
		a.Handle("/deliveries/{id}", getDelivery(d.Deliveries)).Methods(http.MethodGet)
		a.Handle("/deliveries/{id}/replay", replayDelivery(d.Replays)).Methods(http.MethodPost)
		a.Handle("/deliveries/{id}/retry-now", retryNow(d.Retries)).Methods(http.MethodPost)
		a.Handle("/replays/{replayId}", getReplay(d.Replays)).Methods(http.MethodGet)
		if d.Metrics != nil {
			r.Handle("/metrics", adminAuth(d.AdminToken)(d.Metrics)).Methods(http.MethodGet)
		}
		if d.Console != nil {
			r.Handle("/admin", http.RedirectHandler("/admin/", http.StatusMovedPermanently))
			r.PathPrefix("/admin/").MatcherFunc(notAdminAPI).Handler(d.Console)
		}
	}
	return r
}

// notAdminAPI keeps the console out of /admin/v1, whose unknown routes
// stay problems.
func notAdminAPI(r *http.Request, _ *mux.RouteMatch) bool {
	return r.URL.Path != "/admin/v1" && !strings.HasPrefix(r.URL.Path, "/admin/v1/")
}

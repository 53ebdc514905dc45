// Package metrics exposes Boomerang's Prometheus metrics: HTTP requests by
// route template, jobs by type, delivery attempts by outcome and error
// class, deferrals, the task queues, and the Go runtime and process.
//
// The domain is not edited to count: the job and delivery stores handed to
// jobs.Service and webhooks.Dispatcher are wrapped (Metrics.Jobs,
// Metrics.Deliveries), so what is counted is exactly what was recorded;
// handlers reports each request through a func (Metrics.ObserveRequest);
// the queues are read at scrape time through tasks.Stats, at most once per
// 10 s whoever scrapes (Metrics.WatchQueues).
//
// Cardinality stays bounded: every label value comes from a fixed set
// (route templates, configured job types, statuses, outcomes, error
// classes, deferral reasons, queue names). No label carries a URL, a client
// id or a request id.
package metrics

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Unmatched is the route label of requests that matched no route.
const Unmatched = "unmatched"

// Buckets of the histograms, in seconds.
var (
	httpBuckets    = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	jobBuckets     = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600}
	attemptBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 60}
	lagBuckets     = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 3 * 3600, 10 * 3600, 24 * 3600, 48 * 3600}
)

// Metrics is Boomerang's metrics, in a registry of their own (not the
// global default one): a process may make several, as tests do.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests    *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
	jobsSubmitted   *prometheus.CounterVec
	jobsFinished    *prometheus.CounterVec
	jobDuration     *prometheus.HistogramVec
	attempts        *prometheus.CounterVec
	attemptDuration prometheus.Histogram
	lag             prometheus.Histogram
	deferred        *prometheus.CounterVec
}

// New returns the metrics, registered with the Go runtime and process
// collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boomerang_http_requests_total",
			Help: "HTTP requests answered, by route template (\"unmatched\" if none matched) and status code.",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "boomerang_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route template (long-polls and event streams included).",
			Buckets: httpBuckets,
		}, []string{"route"}),
		jobsSubmitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boomerang_jobs_submitted_total",
			Help: "Jobs accepted, by type (a repeat with the same Idempotency-Key is not counted again).",
		}, []string{"type"}),
		jobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boomerang_jobs_finished_total",
			Help: "Jobs that ended, by type and final status (COMPLETED, FAILED, CANCELED, EXPIRED).",
		}, []string{"type", "status"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "boomerang_job_duration_seconds",
			Help:    "Time from a job's submission to its end, by type.",
			Buckets: jobBuckets,
		}, []string{"type"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boomerang_delivery_attempts_total",
			Help: "Webhook delivery attempts recorded, by outcome (delivered, retry, failed) and error class (none when delivered).",
		}, []string{"outcome", "class"}),
		attemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "boomerang_delivery_attempt_duration_seconds",
			Help:    "Time one delivery attempt took, request sent to answer read (millisecond resolution; attempts not sent because a circuit was open are left out).",
			Buckets: attemptBuckets,
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "boomerang_delivery_lag_seconds",
			Help:    "Time from a job's end to its webhook's successful delivery, retries included (replays left out).",
			Buckets: lagBuckets,
		}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boomerang_deliveries_deferred_total",
			Help: "Delivery attempts put off without counting, by reason (an open circuit, a concurrency cap).",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.jobsSubmitted, m.jobsFinished, m.jobDuration,
		m.attempts, m.attemptDuration, m.lag, m.deferred,
	)
	m.initDeliveries()
	return m
}

// Registry is where the metrics are registered, for tests and for
// registering more.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus's text format (or OpenMetrics,
// if asked). A collector that fails (Redis unreadable) is logged to log, if
// not nil, and the rest still served.
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	var errLog promhttp.Logger
	if log != nil {
		errLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:          errLog,
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
		Timeout:           20 * time.Second,
	})
}

// ObserveRequest counts an answered HTTP request; route is its route
// template ("" when no route matched), never the raw path
// (handlers.ObserveRequest).
func (m *Metrics) ObserveRequest(route string, code int, elapsed time.Duration) {
	if route == "" {
		route = Unmatched
	}
	m.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(elapsed.Seconds())
}

package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/handlers"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/gorilla/mux"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs a /metrics page (with the admin token if token is not
// empty) and parses it.
func scrape(t *testing.T, url, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: status %d, want 200: %s", url, resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: parse: %v", url, err)
	}
	return families
}

// sample is the value of the series of family name whose labels include
// want (a histogram's sample count); ok is false if there is none.
func sample(families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// labelValues lists every label value of every boomerang_ series as
// "family{name=value}".
func labelValues(families map[string]*dto.MetricFamily) map[string]string {
	out := map[string]string{}
	for name, f := range families {
		if !strings.HasPrefix(name, "boomerang_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				out[fmt.Sprintf("%s{%s=%q}", name, l.GetName(), l.GetValue())] = l.GetValue()
			}
		}
	}
	return out
}

// TestMetricsEndToEnd: through run(), on real Redis with a real receiver,
// jobs and webhooks (one failing once, then delivered) move the counters
// with the right labels; routes are labelled by template; no label value
// carries a URL, a client id or a request or delivery id; /metrics on the
// API's listener needs the admin token.
func TestMetricsEndToEnd(t *testing.T) {
	svc := startService(t, map[string]string{
		"BOOMERANG_REDIS_URL":          redistest.URL(t),
		"BOOMERANG_RETRY_INITIAL":      "100ms",
		"BOOMERANG_RETRY_MAX_INTERVAL": "1s",
		"BOOMERANG_BREAKER_THRESHOLD":  "0",
		"BOOMERANG_JOB_HTTP":           "upper=http://127.0.0.1:1/never-used",
	})
	svc.createClient("metrics")
	rcv := newReceiver(t)
	rcv.setFailOn(func(path string, seen int) bool { return path == "/flaky" && seen == 0 })

	for _, tc := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {svc.apiKey, http.StatusUnauthorized}, {"wrong-token-0123456789abcdef0123456789", http.StatusUnauthorized}} {
		req, _ := http.NewRequest(http.MethodGet, svc.base+"/metrics", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET /metrics with token %q: status %d, want %d", tc.token, resp.StatusCode, tc.want)
		}
	}

	var requestIDs []string
	for i := range 3 {
		requestIDs = append(requestIDs, svc.submit("echo", rcv.srv.URL+"/ok", map[string]int{"n": i}))
	}
	flaky := svc.submit("echo", rcv.srv.URL+"/flaky", "once more")
	requestIDs = append(requestIDs, flaky)
	var deliveryIDs []string
	for _, id := range requestIDs {
		var j jobState
		waitFor(t, "job "+id+" delivered", 20*time.Second, func() bool {
			j = svc.job(id)
			return j.Delivery != nil && j.Delivery.Status == "DELIVERED"
		})
		deliveryIDs = append(deliveryIDs, j.Delivery.ID)
	}
	if got := len(rcv.byID(deliveryIDs[3])); got != 2 {
		t.Fatalf("the flaky receiver saw %d requests, want 2 (a 500, then a 204)", got)
	}
	if code, _ := svc.call("GET", "/v1/nothing/"+requestIDs[0], svc.apiKey, nil, nil); code != http.StatusNotFound {
		t.Errorf("GET an unknown path: status %d, want 404", code)
	}
	if code, _ := svc.call("GET", "/v1/jobs/"+requestIDs[0]+"x", svc.apiKey, nil, nil); code != http.StatusNotFound {
		t.Errorf("GET an unknown job: status %d, want 404", code)
	}

	fams := scrape(t, svc.base+"/metrics", svc.admin)
	type want struct {
		name   string
		labels map[string]string
		value  float64
		atLeat bool // value is a minimum
	}
	for _, w := range []want{
		{"boomerang_jobs_submitted_total", map[string]string{"type": "echo"}, 4, false},
		{"boomerang_jobs_submitted_total", map[string]string{"type": "upper"}, 0, false},
		{"boomerang_jobs_finished_total", map[string]string{"type": "echo", "status": "COMPLETED"}, 4, false},
		{"boomerang_jobs_finished_total", map[string]string{"type": "echo", "status": "FAILED"}, 0, false},
		{"boomerang_job_duration_seconds", map[string]string{"type": "echo"}, 4, false},
		{"boomerang_delivery_attempts_total", map[string]string{"outcome": "delivered", "class": "none"}, 4, false},
		{"boomerang_delivery_attempts_total", map[string]string{"outcome": "retry", "class": "status"}, 1, false},
		{"boomerang_delivery_attempts_total", map[string]string{"outcome": "failed", "class": "status"}, 0, false},
		{"boomerang_delivery_attempt_duration_seconds", nil, 5, false},
		{"boomerang_delivery_lag_seconds", nil, 4, false},
		{"boomerang_deliveries_deferred_total", map[string]string{"reason": "host-concurrency"}, 0, false},
		{"boomerang_http_requests_total", map[string]string{"route": "/v1/jobs", "code": "202"}, 4, false},
		{"boomerang_http_requests_total", map[string]string{"route": "/v1/jobs/{requestId}", "code": "200"}, 4, true},
		{"boomerang_http_requests_total", map[string]string{"route": "/v1/jobs/{requestId}", "code": "404"}, 1, false},
		{"boomerang_http_requests_total", map[string]string{"route": "/admin/v1/clients", "code": "201"}, 1, false},
		{"boomerang_http_requests_total", map[string]string{"route": "/metrics", "code": "401"}, 3, false},
		{"boomerang_http_requests_total", map[string]string{"route": "unmatched", "code": "404"}, 1, false},
		{"boomerang_http_request_duration_seconds", map[string]string{"route": "/v1/jobs"}, 4, false},
		{"boomerang_queue_tasks", map[string]string{"queue": "maintenance", "state": "pending"}, 0, true},
		{"boomerang_queue_latency_seconds", map[string]string{"queue": "maintenance"}, 0, true},
		{"go_goroutines", nil, 1, true},
		{"process_resident_memory_bytes", nil, 1, true},
	} {
		got, ok := sample(fams, w.name, w.labels)
		switch {
		case !ok:
			t.Errorf("%s%v: no such series", w.name, w.labels)
		case w.atLeat && got < w.value:
			t.Errorf("%s%v = %v, want at least %v", w.name, w.labels, got, w.value)
		case !w.atLeat && got != w.value:
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
		}
	}

	// The queues: every partition's asynq queue, the maintenance queue and
	// every ready list, each with its states.
	queues := map[string][]string{}
	for _, m := range fams["boomerang_queue_tasks"].GetMetric() {
		var q, s string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "queue":
				q = l.GetValue()
			case "state":
				s = l.GetValue()
			}
		}
		queues[q] = append(queues[q], s)
	}
	var ready, asynqQueues int
	for q, states := range queues {
		if strings.HasPrefix(q, "ready:") {
			ready++
			if !slices.Equal(states, []string{"pending"}) {
				t.Errorf("queue %s has states %v, want [pending]", q, states)
			}
			continue
		}
		asynqQueues++
		for _, s := range []string{"pending", "active", "scheduled", "retry", "archived"} {
			if !slices.Contains(states, s) {
				t.Errorf("queue %s has states %v, missing %s", q, states, s)
			}
		}
	}
	if ready != 1 || asynqQueues != 2 {
		t.Errorf("queues %v: %d ready lists and %d asynq queues, want 1 and 2 (one partition, maintenance)", queues, ready, asynqQueues)
	}

	// No label carries a URL, an id, or a raw path: routes are the
	// router's templates.
	templates := map[string]bool{}
	router := handlers.Router(handlers.Deps{Metrics: http.NotFoundHandler()}, handlers.ServePublic|handlers.ServeAdmin)
	_ = router.Walk(func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		if tpl, err := r.GetPathTemplate(); err == nil {
			templates[tpl] = true
		}
		return nil
	})
	idLike := regexp.MustCompile(`(` + strings.Join([]string{ids.Request, ids.Delivery, ids.Client, ids.Key, ids.Replay, ids.Worker}, "|") + `)[0-9A-Z]`)
	secrets := slices.Concat(requestIDs, deliveryIDs, []string{svc.clientID, svc.apiKey, svc.secret, svc.admin, rcv.srv.URL})
	for series, v := range labelValues(fams) {
		if strings.Contains(v, "://") || idLike.MatchString(v) || strings.Contains(v, "?") {
			t.Errorf("%s: a label value carries a URL or an id", series)
		}
		for _, s := range secrets {
			if strings.Contains(v, s) {
				t.Errorf("%s: a label value carries %q", series, s)
			}
		}
		if strings.Contains(series, `{route=`) && v != "unmatched" && !templates[v] {
			t.Errorf("%s: a route label that is neither a route's template nor unmatched", series)
		}
	}
}

// TestMetricsOnTheirOwnListener: with BOOMERANG_METRICS_ADDR, /metrics is
// served there without a token, also by a worker-only process, and no
// longer on the API's listener.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	env := map[string]string{"BOOMERANG_REDIS_URL": redistest.URL(t), "BOOMERANG_METRICS_ADDR": "127.0.0.1:0"}
	listening := regexp.MustCompile(`metrics listening on (http://\S+)`)
	api := startService(t, map[string]string{"BOOMERANG_REDIS_URL": env["BOOMERANG_REDIS_URL"],
		"BOOMERANG_METRICS_ADDR": "127.0.0.1:0", "BOOMERANG_ROLE": "api"})
	worker := startWorkerOnly(t, env)
	apiMetrics := listening.FindStringSubmatch(api.stdout.String())
	workerMetrics := listening.FindStringSubmatch(worker.stdout.String())
	if apiMetrics == nil || workerMetrics == nil {
		t.Fatalf("no metrics listener announced:\napi:\n%s\nworker:\n%s", api.stdout, worker.stdout)
	}
	if code, _ := api.call("GET", "/metrics", api.admin, nil, nil); code != http.StatusNotFound {
		t.Errorf("GET /metrics on the API's listener: status %d, want 404 (served on BOOMERANG_METRICS_ADDR)", code)
	}

	api.createClient("metrics")
	rcv := newReceiver(t)
	id := api.submit("echo", rcv.srv.URL+"/ok", "hi")
	waitFor(t, "job "+id+" delivered", 20*time.Second, func() bool {
		j := api.job(id)
		return j.Delivery != nil && j.Delivery.Status == "DELIVERED"
	})

	for _, tc := range []struct {
		process, url, name string
		labels             map[string]string
	}{
		{"api", apiMetrics[1], "boomerang_jobs_submitted_total", map[string]string{"type": "echo"}},
		{"worker", workerMetrics[1], "boomerang_jobs_finished_total", map[string]string{"type": "echo", "status": "COMPLETED"}},
		{"worker", workerMetrics[1], "boomerang_delivery_attempts_total", map[string]string{"outcome": "delivered", "class": "none"}},
	} {
		fams := scrape(t, tc.url+"/metrics", "")
		if got, ok := sample(fams, tc.name, tc.labels); got != 1 {
			t.Errorf("%s process: %s%v = %v (present %v), want 1", tc.process, tc.name, tc.labels, got, ok)
		}
	}
	resp, err := http.Get(workerMetrics[1] + "/admin/v1/clients")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the metrics listener serves /admin/v1/clients: status %d, want 404", resp.StatusCode)
	}
}

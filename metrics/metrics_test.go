package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/metrics"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/webhooks"
	dto "github.com/prometheus/client_model/go"
)

// gather reads every metric of m, by family name.
func gather(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// series finds the series of family name whose labels are exactly labels.
func series(fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	for _, m := range fams[name].GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			v, ok := labels[l.GetName()]
			match = match && ok && v == l.GetValue()
		}
		if match {
			return m
		}
	}
	return nil
}

// value is a counter's value or a histogram's count and sum; -1 if there
// is no such series.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (v, sum float64) {
	m := series(fams, name, labels)
	switch {
	case m == nil:
		return -1, 0
	case m.Counter != nil:
		return m.Counter.GetValue(), 0
	case m.Gauge != nil:
		return m.Gauge.GetValue(), 0
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount()), m.Histogram.GetSampleSum()
	}
	return -1, 0
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newStore is a real store on this test's own Redis database.
func newStore(t *testing.T, partitions int) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(context.Background(), redistest.Client(t), redisstore.Options{Partitions: partitions, RecoverAfter: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newJob(typ string, at time.Time, partition int) jobs.Job {
	return jobs.Job{ID: ids.NewIn(ids.Request, at, partition), ClientID: "cli_01KJ0000000000000000METRIC", Type: typ,
		Status: jobs.StatusAccepted, Payload: json.RawMessage(`{}`), CallbackURL: "https://hooks.example.com/in?token=secret",
		CreatedAt: at, UpdatedAt: at}
}

// finish claims j and records its end with status after took, through s,
// as jobs.Service does; it returns the delivery made.
func finish(t *testing.T, s jobs.Store, j jobs.Job, status jobs.Status, took time.Duration) webhooks.Delivery {
	t.Helper()
	ctx := context.Background()
	j, err := s.ClaimJob(ctx, j.ID, j.CreatedAt, j.CreatedAt.Add(time.Minute))
	if err != nil {
		t.Fatalf("ClaimJob: %v", err)
	}
	done := j.CreatedAt.Add(took)
	j.Status, j.UpdatedAt, j.CompletedAt, j.DeliveryID = status, done, &done, jobs.DeliveryID(j.ID)
	if status == jobs.StatusCompleted {
		j.Result = json.RawMessage(`{}`)
	} else {
		j.Error = &jobs.Error{Code: "x", Message: "y"}
	}
	body, err := jobs.WebhookBody(j)
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.FinishJob(ctx, j, webhooks.Message{ID: j.DeliveryID, RequestID: j.ID, ClientID: j.ClientID,
		EventType: jobs.EventType(status), URL: j.CallbackURL, Body: body})
	if err != nil {
		t.Fatalf("FinishJob: %v", err)
	}
	return d
}

// TestJobStoreCounts: jobs are counted once their write succeeds, by
// configured type ("other" for any other), a repeat of an idempotent
// submission is not counted again, and the duration runs from submission
// to end.
func TestJobStoreCounts(t *testing.T) {
	ctx := context.Background()
	m := metrics.New()
	s := m.Jobs(newStore(t, 1), []string{"echo", "report"})
	fams := gather(t, m)
	for _, typ := range []string{"echo", "report", "other"} {
		if v, _ := value(fams, "boomerang_jobs_submitted_total", map[string]string{"type": typ}); v != 0 {
			t.Errorf("before any job: submitted{type=%s} = %v, want a series at 0", typ, v)
		}
		for _, st := range []string{"COMPLETED", "FAILED", "CANCELED", "EXPIRED"} {
			if v, _ := value(fams, "boomerang_jobs_finished_total", map[string]string{"type": typ, "status": st}); v != 0 {
				t.Errorf("before any job: finished{type=%s,status=%s} = %v, want a series at 0", typ, st, v)
			}
		}
	}

	echo1, echo2 := newJob("echo", t0, 0), newJob("echo", t0.Add(time.Millisecond), 0)
	legacy := newJob("retired-type", t0.Add(2*time.Millisecond), 0)
	idem := &jobs.Idempotency{KeyHash: "k1", Fingerprint: "f1"}
	for _, c := range []struct {
		j    jobs.Job
		idem *jobs.Idempotency
	}{{echo1, idem}, {echo2, idem}, {legacy, nil}} {
		if _, _, err := s.CreateJob(ctx, c.j, c.idem); err != nil {
			t.Fatalf("CreateJob(%s): %v", c.j.ID, err)
		}
	}
	finish(t, s, echo1, jobs.StatusCompleted, 1500*time.Millisecond)
	finish(t, s, legacy, jobs.StatusFailed, 250*time.Millisecond)
	if _, err := s.FinishJob(ctx, echo1, webhooks.Message{ID: jobs.DeliveryID(echo1.ID)}); err == nil {
		t.Fatal("FinishJob of a finished job succeeded; the test needs it refused")
	}

	fams = gather(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
		sum    float64
	}{
		{"boomerang_jobs_submitted_total", map[string]string{"type": "echo"}, 1, 0}, // echo2 reused echo1's key
		{"boomerang_jobs_submitted_total", map[string]string{"type": "other"}, 1, 0},
		{"boomerang_jobs_submitted_total", map[string]string{"type": "report"}, 0, 0},
		{"boomerang_jobs_finished_total", map[string]string{"type": "echo", "status": "COMPLETED"}, 1, 0}, // the refused repeat is not counted
		{"boomerang_jobs_finished_total", map[string]string{"type": "other", "status": "FAILED"}, 1, 0},
		{"boomerang_job_duration_seconds", map[string]string{"type": "echo"}, 1, 1.5},
		{"boomerang_job_duration_seconds", map[string]string{"type": "other"}, 1, 0.25},
	} {
		got, sum := value(fams, c.name, c.labels)
		if got != c.want || math.Abs(sum-c.sum) > 1e-9 {
			t.Errorf("%s%v = %v (sum %v), want %v (sum %v)", c.name, c.labels, got, sum, c.want, c.sum)
		}
	}
	if got := series(fams, "boomerang_jobs_submitted_total", map[string]string{"type": "retired-type"}); got != nil {
		t.Error("an unconfigured type has a series of its own, want it counted as other")
	}
}

// TestDeliveryStoreCounts: recorded attempts are counted by outcome and
// class, with their duration; the lag runs from the job's end to the
// first round's success (not a replay's); an attempt recorded twice
// (ErrStale) counts once; deferrals count by reason.
func TestDeliveryStoreCounts(t *testing.T) {
	ctx := context.Background()
	m := metrics.New()
	store := newStore(t, 1)
	js, ds := m.Jobs(store, []string{"echo"}), m.Deliveries(store)
	j := newJob("echo", t0, 0)
	if _, _, err := js.CreateJob(ctx, j, nil); err != nil {
		t.Fatal(err)
	}
	d := finish(t, js, j, jobs.StatusCompleted, time.Second)
	ended := d.CreatedAt

	// Attempt 1 fails with a 500 and is retried; attempt 2 waits for a
	// circuit; attempt 3 delivers, 10 s after the job ended.
	next := ended.Add(5 * time.Second)
	a1 := webhooks.Attempt{Number: 1, StartedAt: ended.Add(10 * time.Millisecond), DurationMs: 120, StatusCode: 500,
		ErrorClass: webhooks.ClassStatus, Outcome: webhooks.OutcomeRetry, NextAttemptAt: &next, URL: d.URL}
	if err := ds.RecordAttempt(ctx, d, a1, webhooks.StatusPending); err != nil {
		t.Fatal(err)
	}
	// Another run's attempt 1, recorded second, is refused and not counted.
	other := a1
	other.DurationMs, other.ErrorClass, other.StatusCode = 15000, webhooks.ClassTimeout, 0
	if err := ds.RecordAttempt(ctx, d, other, webhooks.StatusPending); !errors.Is(err, webhooks.ErrStale) {
		t.Fatalf("recording another attempt 1: %v, want ErrStale", err)
	}
	if d, err := store.GetDelivery(ctx, d.ID, false); err != nil {
		t.Fatal(err)
	} else if err := ds.PostponeDelivery(ctx, d, 2, next.Add(30*time.Second), webhooks.DeferEndpointOpen); err != nil {
		t.Fatal(err)
	}
	d, _ = store.GetDelivery(ctx, d.ID, false)
	a2 := webhooks.Attempt{Number: 2, StartedAt: ended.Add(9 * time.Second), ErrorClass: webhooks.ClassCircuit,
		Outcome: webhooks.OutcomeRetry, NextAttemptAt: &next, URL: d.URL}
	if err := ds.RecordAttempt(ctx, d, a2, webhooks.StatusPending); err != nil {
		t.Fatal(err)
	}
	d, _ = store.GetDelivery(ctx, d.ID, false)
	a3 := webhooks.Attempt{Number: 3, StartedAt: ended.Add(9750 * time.Millisecond), DurationMs: 250, StatusCode: 204,
		Outcome: webhooks.OutcomeDelivered, URL: d.URL}
	if err := ds.RecordAttempt(ctx, d, a3, webhooks.StatusDelivered); err != nil {
		t.Fatal(err)
	}
	// A replay delivers again, much later: an attempt, not a lag.
	d, err := store.ReopenDelivery(ctx, d.ID, ended.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	a4 := webhooks.Attempt{Number: 4, StartedAt: ended.Add(time.Hour), DurationMs: 5, StatusCode: 200,
		Outcome: webhooks.OutcomeDelivered, URL: d.URL}
	if err := ds.RecordAttempt(ctx, d, a4, webhooks.StatusDelivered); err != nil {
		t.Fatal(err)
	}

	fams := gather(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
		sum    float64
	}{
		{"boomerang_delivery_attempts_total", map[string]string{"outcome": "retry", "class": "status"}, 1, 0},
		{"boomerang_delivery_attempts_total", map[string]string{"outcome": "retry", "class": "circuit-open"}, 1, 0},
		{"boomerang_delivery_attempts_total", map[string]string{"outcome": "delivered", "class": "none"}, 2, 0},
		{"boomerang_delivery_attempts_total", map[string]string{"outcome": "retry", "class": "timeout"}, 0, 0},
		{"boomerang_delivery_attempt_duration_seconds", nil, 3, 0.375}, // the circuit-open one sent nothing
		{"boomerang_delivery_lag_seconds", nil, 1, 10},
		{"boomerang_deliveries_deferred_total", map[string]string{"reason": "endpoint-circuit-open"}, 1, 0},
		{"boomerang_deliveries_deferred_total", map[string]string{"reason": "host-concurrency"}, 0, 0},
	} {
		got, sum := value(fams, c.name, c.labels)
		if got != c.want || math.Abs(sum-c.sum) > 1e-9 {
			t.Errorf("%s%v = %v (sum %v), want %v (sum %v)", c.name, c.labels, got, sum, c.want, c.sum)
		}
	}
	for _, f := range fams {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, "://") || strings.Contains(v, "cli_") || strings.Contains(v, "req_") || strings.Contains(v, "msg_") {
					t.Errorf("%s{%s=%q}: a label carries a URL or an id", f.GetName(), l.GetName(), v)
				}
			}
		}
	}
}

// TestObserveRequest: routes are labelled as given, "unmatched" when none
// matched, with the status code.
func TestObserveRequest(t *testing.T) {
	m := metrics.New()
	m.ObserveRequest("/v1/jobs/{requestId}", 200, 30*time.Millisecond)
	m.ObserveRequest("/v1/jobs/{requestId}", 200, 10*time.Millisecond)
	m.ObserveRequest("", 404, time.Millisecond)
	fams := gather(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"boomerang_http_requests_total", map[string]string{"route": "/v1/jobs/{requestId}", "code": "200"}, 2},
		{"boomerang_http_requests_total", map[string]string{"route": "unmatched", "code": "404"}, 1},
		{"boomerang_http_request_duration_seconds", map[string]string{"route": "/v1/jobs/{requestId}"}, 2},
		{"boomerang_http_request_duration_seconds", map[string]string{"route": "unmatched"}, 1},
	} {
		if got, _ := value(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

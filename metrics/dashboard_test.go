package metrics_test

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/metrics"
	"github.com/boomerang-dev/boomerang/tasks"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"
)

const dashboardPath = "../deploy/grafana/boomerang.json"

// panel is the part of a Grafana panel the test reads; rows nest panels.
type panel struct {
	Title   string
	Type    string
	Panels  []panel
	Targets []struct{ Expr string }
}

// touchedMetrics returns metrics with every series made, as a running
// service has them: a request seen, a job submitted and finished, queues
// watched (attempts and deferrals start at zero by themselves).
func touchedMetrics(t *testing.T) *metrics.Metrics {
	t.Helper()
	m := metrics.New()
	m.ObserveRequest("/v1/jobs", 202, time.Millisecond)
	js := m.Jobs(newStore(t, 1), []string{"echo"})
	j := newJob("echo", t0, 0)
	if _, _, err := js.CreateJob(context.Background(), j, nil); err != nil {
		t.Fatal(err)
	}
	finish(t, js, j, jobs.StatusCompleted, time.Second)
	stats := fakeStats{states: []tasks.QueueState{{Queue: "p0.0", Pending: 1}}}
	ready := func(context.Context) ([]int64, error) { return []int64{1}, nil }
	if err := m.WatchQueues(metrics.QueueOptions{Stats: stats, ReadyLengths: ready, Tags: []string{"p0.0"}}); err != nil {
		t.Fatal(err)
	}
	return m
}

// queryable lists the names a PromQL expression may use for the families:
// a histogram's _bucket, _sum and _count, a summary's own name too.
func queryable(fams map[string]*dto.MetricFamily) map[string]bool {
	names := map[string]bool{}
	for name, f := range fams {
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names
}

// metricName finds the names of our metrics, the Go runtime's and the
// process's in PromQL (label names and values never start so).
var metricName = regexp.MustCompile(`\b(boomerang|go|process)_[a-zA-Z0-9_:]+`)

// TestDashboardUsesRegisteredMetrics: every metric name in every panel's
// expression, and in the dashboard's variables, is one the service
// registers (with a histogram's suffixes), and every boomerang_ metric is
// on the dashboard.
func TestDashboardUsesRegisteredMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string
		Panels     []panel
		Templating struct {
			List []struct {
				Name       string
				Definition string
			}
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	known := queryable(gather(t, touchedMetrics(t)))

	exprs := map[string]string{} // expression → where
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q has an empty query", p.Title)
				}
				exprs[tg.Expr] = "panel " + p.Title
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			exprs[v.Definition] = "variable " + v.Name
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("%s has %d queries; want the whole dashboard (20 or more)", dashboardPath, len(exprs))
	}

	used := map[string]bool{}
	for expr, where := range exprs {
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: query %q uses none of our metrics", where, expr)
		}
		for _, n := range names {
			used[n] = true
			if !known[n] {
				t.Errorf("%s: query %q uses %s, which the service does not register", where, expr, n)
			}
		}
	}
	var missing []string
	for n := range known {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(n, "boomerang_") && !used[n] && !used[base+"_bucket"] && !used[base+"_count"] && !used[base+"_sum"] && !used[base] {
			missing = append(missing, base)
		}
	}
	sort.Strings(missing)
	missing = slices.Compact(missing)
	if len(missing) > 0 {
		t.Errorf("no panel shows %v", missing)
	}
}

// TestAlertExamplesUseRegisteredMetrics: the alert rules docs/metrics.md
// offers parse, and every metric they name is one the service registers.
func TestAlertExamplesUseRegisteredMetrics(t *testing.T) {
	const path = "../docs/metrics.md"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(raw), "```yaml\n")
	block, _, closed := strings.Cut(block, "```")
	if !ok || !closed {
		t.Fatalf("%s has no yaml block of alert rules", path)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal([]byte(block), &rules); err != nil {
		t.Fatalf("%s: the alert rules do not parse: %v", path, err)
	}
	known := queryable(gather(t, touchedMetrics(t)))
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			names := metricName.FindAllString(r.Expr, -1)
			if r.Alert == "" || len(names) == 0 {
				t.Errorf("%s: rule %q with expression %q names no alert or none of our metrics", path, r.Alert, r.Expr)
			}
			for _, name := range names {
				if !known[name] {
					t.Errorf("%s: alert %s uses %s, which the service does not register", path, r.Alert, name)
				}
			}
		}
	}
	if n == 0 {
		t.Errorf("%s: no alert rules found", path)
	}
}

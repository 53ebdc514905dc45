package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is a real OTLP/HTTP endpoint: it decodes every export.
type collector struct {
	srv     *httptest.Server
	mu      sync.Mutex
	spans   []span
	exports int
}

type span struct {
	trace, id, parent, name string
	kind                    tracepb.Span_SpanKind
	attrs                   map[string]string
	links                   []string // "<trace>-<span>"
	service                 string
}

func newCollector(t *testing.T) *collector {
	c := &collector{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("collector got %s %s (%s), want POST /v1/traces in protobuf", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("collector: decode %d bytes: %v", len(body), err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.exports++
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					service = a.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					sp := span{trace: hex.EncodeToString(s.TraceId), id: hex.EncodeToString(s.SpanId),
						parent: hex.EncodeToString(s.ParentSpanId), name: s.Name, kind: s.Kind, attrs: map[string]string{}, service: service}
					for _, a := range s.Attributes {
						v := a.Value.GetStringValue()
						if _, ok := a.Value.Value.(*commonpb.AnyValue_IntValue); ok {
							v = fmt.Sprint(a.Value.GetIntValue())
						}
						sp.attrs[a.Key] = v
					}
					for _, l := range s.Links {
						sp.links = append(sp.links, hex.EncodeToString(l.TraceId)+"-"+hex.EncodeToString(l.SpanId))
					}
					c.spans = append(c.spans, sp)
				}
			}
		}
		c.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) all() []span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]span(nil), c.spans...)
}

// find returns the one span named name with the attributes of kv (key,
// value, key, value…).
func find(t *testing.T, spans []span, name string, kv ...string) span {
	t.Helper()
	var found []span
next:
	for _, s := range spans {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if s.attrs[kv[i]] != kv[i+1] {
				continue next
			}
		}
		found = append(found, s)
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %q with %q, want 1; all spans:\n%s", len(found), name, kv, dump(spans))
	}
	return found[0]
}

func byID(spans []span, id string) (span, bool) {
	for _, s := range spans {
		if s.id == id {
			return s, true
		}
	}
	return span{}, false
}

func dump(spans []span) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s %s parent %s %q %v links %v\n", s.trace, s.id, s.parent, s.name, s.attrs, s.links)
	}
	return b.String()
}

// traceparentOf splits a traceparent header into trace id and parent id.
func traceparentOf(h string) (trace, parent string) {
	p := strings.Split(h, "-")
	if len(p) != 4 {
		return "", ""
	}
	return p[1], p[2]
}

// TestTraces follows jobs through a real OTLP/HTTP endpoint: a submission
// with a traceparent is continued through its processing and each webhook
// attempt (one failed, one delivered), whose receiver gets the attempts'
// traceparents; a submission without one starts a trace at the API that
// reaches an HTTP upstream; an external worker's claim carries the job's
// traceparent; a replay starts a new trace linked to the original; log
// lines carry requestId, deliveryId and traceId. The batch delay is a
// minute: every span comes with the flush at shutdown.
func TestTraces(t *testing.T) {
	col := newCollector(t)
	var upMu sync.Mutex
	var upstreamTP []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upMu.Lock()
		upstreamTP = append(upstreamTP, r.Header.Get("traceparent"))
		first := len(upstreamTP) == 1
		upMu.Unlock()
		if first { // the job's retry comes through asynq, an hour or a second later
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer upstream.Close()
	svc := startService(t, map[string]string{
		"BOOMERANG_REDIS_URL":          redistest.URL(t),
		"BOOMERANG_RETRY_INITIAL":      "100ms",
		"BOOMERANG_RETRY_MAX_INTERVAL": "1s",
		"BOOMERANG_BREAKER_THRESHOLD":  "0",
		"BOOMERANG_JOB_HTTP":           "fwd=" + upstream.URL + "/work",
		"BOOMERANG_JOB_EXTERNAL":       "ext",
		"OTEL_EXPORTER_OTLP_ENDPOINT":  col.srv.URL,
		"OTEL_SERVICE_NAME":            "boomerang-e2e",
		"OTEL_BSP_SCHEDULE_DELAY":      "60000",
	})
	if !strings.Contains(svc.stdout.String(), `exporting traces of service "boomerang-e2e" to otlp (`+col.srv.URL+"/v1/traces)") {
		t.Errorf("stdout does not say where traces go:\n%s", svc.stdout)
	}
	svc.createClient("traces")
	rcv := newReceiver(t)
	rcv.setFailOn(func(path string, seen int) bool { return path == "/flaky" && seen == 0 })

	// 1. A traceparent sent with the submission is continued.
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	var sub struct{ RequestID string }
	if code, _ := svc.call("POST", "/v1/jobs", svc.apiKey, map[string]any{"type": "echo", "payload": 1, "callbackUrl": rcv.srv.URL + "/flaky"},
		&sub, "traceparent", "00-"+clientTrace+"-"+clientSpan+"-01"); code != http.StatusAccepted {
		t.Fatalf("submit: %d", code)
	}
	echoID := sub.RequestID
	waitFor(t, "the echo job delivered at its second attempt", 15*time.Second, func() bool {
		j := svc.job(echoID)
		return j.Delivery != nil && j.Delivery.Status == "DELIVERED" && j.Delivery.Attempts == 2
	})
	dlvID := svc.job(echoID).Delivery.ID

	// 2. Without a traceparent, the trace starts at the API and reaches
	// the HTTP upstream, at each processing attempt.
	fwdID := svc.submit("fwd", rcv.srv.URL+"/ok", map[string]string{"x": "y"})
	waitFor(t, "the forwarded job delivered", 10*time.Second, func() bool {
		j := svc.job(fwdID)
		return j.Delivery != nil && j.Delivery.Status == "DELIVERED"
	})

	// 3. An external worker's claim carries the job's traceparent.
	const extTrace = "0af7651916cd43dd8448eb211c80319c"
	if code, _ := svc.call("POST", "/v1/jobs", svc.apiKey, map[string]any{"type": "ext", "payload": 1, "callbackUrl": rcv.srv.URL + "/ok"},
		&sub, "traceparent", "00-"+extTrace+"-b7ad6b7169203331-01"); code != http.StatusAccepted {
		t.Fatalf("submit ext: %d", code)
	}
	extID := sub.RequestID
	var wk struct{ WorkerKey string }
	if code, _ := svc.call("POST", "/admin/v1/workers", svc.admin, map[string]any{"name": "tr", "types": []string{"ext"}}, &wk); code != http.StatusCreated {
		t.Fatalf("create worker: %d", code)
	}
	var claim struct{ RequestID, LeaseID, Traceparent string }
	if code, _ := svc.call("POST", "/v1/worker/claim", wk.WorkerKey, map[string]any{"types": []string{"ext"}, "waitSeconds": 5}, &claim); code != http.StatusOK || claim.RequestID != extID {
		t.Fatalf("claim: %d %+v, want job %s", code, claim, extID)
	}

	// …and a report sent with it keeps the webhook in the job's trace.
	if code, _ := svc.call("POST", "/v1/worker/jobs/"+extID+"/complete", wk.WorkerKey, map[string]any{"leaseId": claim.LeaseID, "result": 2},
		nil, "traceparent", claim.Traceparent); code != http.StatusOK {
		t.Fatalf("complete: %d", code)
	}
	waitFor(t, "the external job delivered", 10*time.Second, func() bool {
		j := svc.job(extID)
		return j.Delivery != nil && j.Delivery.Status == "DELIVERED"
	})

	// 4. A replay starts a new trace, linked to the original.
	if code, _ := svc.call("POST", "/admin/v1/deliveries/"+dlvID+"/replay", svc.admin, nil, nil); code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("replay: %d", code)
	}
	waitFor(t, "the replayed delivery delivered", 10*time.Second, func() bool {
		j := svc.job(echoID)
		return j.Delivery != nil && j.Delivery.Status == "DELIVERED" && j.Delivery.Attempts == 3
	})

	var view struct { // the admin API shows the delivery's trace, and each attempt's traceparent
		TraceID  string
		Attempts []struct{ RequestHeaders map[string]string }
	}
	if code, _ := svc.call("GET", "/admin/v1/deliveries/"+dlvID, svc.admin, nil, &view); code != http.StatusOK {
		t.Fatalf("GET the delivery: %d", code)
	}
	if n := len(col.all()); n != 0 {
		t.Logf("%d spans exported before shutdown (the batch delay is a minute)", n)
	}
	svc.stop() // flushes
	spans := col.all()
	for _, s := range spans {
		if s.service != "boomerang-e2e" {
			t.Errorf("span %q of service %q, want boomerang-e2e (OTEL_SERVICE_NAME)", s.name, s.service)
		}
	}

	// The echo job: client → POST /v1/jobs → job.submit → job.process →
	// webhook.attempt 1 and 2, all in the client's trace.
	submit := find(t, spans, "job.submit", "boomerang.request_id", echoID)
	process := find(t, spans, "job.process", "boomerang.request_id", echoID)
	a1 := find(t, spans, "webhook.attempt", "boomerang.delivery_id", dlvID, "boomerang.delivery.attempt", "1")
	a2 := find(t, spans, "webhook.attempt", "boomerang.delivery_id", dlvID, "boomerang.delivery.attempt", "2")
	a3 := find(t, spans, "webhook.attempt", "boomerang.delivery_id", dlvID, "boomerang.delivery.attempt", "3")
	srv, ok := byID(spans, submit.parent)
	if !ok || srv.name != "POST /v1/jobs" || srv.kind != tracepb.Span_SPAN_KIND_SERVER || srv.parent != clientSpan || srv.trace != clientTrace {
		t.Errorf("job.submit's parent = %+v, want the server span POST /v1/jobs, child of the client's span %s in trace %s", srv, clientSpan, clientTrace)
	}
	links := []struct {
		what          string
		child, parent span
	}{
		{"job.process ← job.submit", process, submit},
		{"webhook.attempt 1 ← job.process", a1, process},
		{"webhook.attempt 2 ← job.process", a2, process},
	}
	for _, l := range links {
		if l.child.parent != l.parent.id || l.child.trace != clientTrace {
			t.Errorf("%s: parent %s in trace %s, want %s in trace %s", l.what, l.child.parent, l.child.trace, l.parent.id, clientTrace)
		}
	}
	for _, c := range []struct {
		s                               span
		status, class, outcome, delivID string
	}{{a1, "500", "status", "retry", dlvID}, {a2, "204", "", "delivered", dlvID}, {a3, "204", "", "delivered", dlvID}} {
		got := [4]string{c.s.attrs["http.response.status_code"], c.s.attrs["error.type"], c.s.attrs["boomerang.delivery.outcome"], c.s.attrs["boomerang.delivery_id"]}
		if want := [4]string{c.status, c.class, c.outcome, c.delivID}; got != want {
			t.Errorf("attempt %s: status, class, outcome, delivery = %q, want %q", c.s.attrs["boomerang.delivery.attempt"], got, want)
		}
	}
	// The receiver saw each attempt's traceparent.
	hooks := rcv.byID(dlvID)
	if len(hooks) != 3 {
		t.Fatalf("receiver got %d webhooks of %s, want 3", len(hooks), dlvID)
	}
	for i, want := range []span{a1, a2, a3} {
		tr, parent := traceparentOf(hooks[i].header.Get("traceparent"))
		if tr != want.trace || parent != want.id {
			t.Errorf("webhook %d: traceparent %q, want trace %s, parent %s (its attempt's span)", i+1, hooks[i].header.Get("traceparent"), want.trace, want.id)
		}
	}

	// The replay: a new trace whose span links to the original, and
	// attempt 3 its child.
	replay := find(t, spans, "webhook.replay", "boomerang.delivery_id", dlvID)
	if replay.trace == clientTrace || len(replay.links) != 1 || replay.links[0] != clientTrace+"-"+process.id {
		t.Errorf("webhook.replay in trace %s with links %v, want a new trace linked to %s-%s", replay.trace, replay.links, clientTrace, process.id)
	}
	if a3.trace != replay.trace || a3.parent != replay.id {
		t.Errorf("attempt 3 in trace %s, parent %s; want the replay's trace %s, parent %s", a3.trace, a3.parent, replay.trace, replay.id)
	}
	if view.TraceID != replay.trace {
		t.Errorf("GET the delivery: traceId %q, want the replay's trace %s", view.TraceID, replay.trace)
	}
	if n := len(view.Attempts); n != 3 {
		t.Fatalf("GET the delivery: %d attempts, want 3", n)
	}
	if got, want := view.Attempts[2].RequestHeaders["traceparent"], "00-"+replay.trace+"-"+a3.id+"-01"; got != want {
		t.Errorf("attempt 3's logged request headers: traceparent %q, want %q (the one sent)", got, want)
	}
	if admin, ok := byID(spans, replay.parent); !ok || admin.name != "POST /admin/v1/deliveries/{id}/replay" {
		t.Errorf("webhook.replay's parent = %+v, want the admin request's span", admin)
	}

	// The forwarded job: its trace starts at the API, and the upstream got
	// the processing span's traceparent.
	fsub := find(t, spans, "job.submit", "boomerang.request_id", fwdID)
	fproc := find(t, spans, "job.process", "boomerang.request_id", fwdID, "boomerang.job.attempt", "2")
	fproc1 := find(t, spans, "job.process", "boomerang.request_id", fwdID, "boomerang.job.attempt", "1")
	if fsrv, ok := byID(spans, fsub.parent); !ok || fsrv.parent != "" || fsrv.trace == clientTrace {
		t.Errorf("the forwarded job's server span = %+v, want a root of a new trace", fsrv)
	}
	upMu.Lock()
	gotUp := append([]string(nil), upstreamTP...)
	upMu.Unlock()
	if len(gotUp) != 2 {
		t.Fatalf("upstream got %d requests, want 2 (503, then 200)", len(gotUp))
	}
	for i, p := range []span{fproc1, fproc} {
		if tr, parent := traceparentOf(gotUp[i]); tr != p.trace || parent != p.id || p.parent != fsub.id {
			t.Errorf("upstream request %d: traceparent %q, want trace %s parent %s (processing attempt %d's span, child of %s; its parent %s)",
				i+1, gotUp[i], p.trace, p.id, i+1, fsub.id, p.parent)
		}
	}
	if fproc1.attrs["error.type"] != "upstream_503" {
		t.Errorf("the failed processing attempt's error.type = %q, want upstream_503", fproc1.attrs["error.type"])
	}

	// The external job's claim: its submission's traceparent.
	esub := find(t, spans, "job.submit", "boomerang.request_id", extID)
	if tr, parent := traceparentOf(claim.Traceparent); tr != extTrace || parent != esub.id {
		t.Errorf("claim traceparent %q, want trace %s parent %s (the submission's span)", claim.Traceparent, extTrace, esub.id)
	}
	complete := find(t, spans, "POST /v1/worker/jobs/{requestId}/complete")
	ea := find(t, spans, "webhook.attempt", "boomerang.request_id", extID)
	if complete.trace != extTrace || complete.parent != esub.id || ea.trace != extTrace || ea.parent != complete.id {
		t.Errorf("complete span in %s under %s, its attempt in %s under %s; want both in %s, the attempt under %s, the report under %s",
			complete.trace, complete.parent, ea.trace, ea.parent, extTrace, complete.id, esub.id)
	}

	// Log lines about the echo job carry its ids and its trace.
	var sawAttempt, sawCompleted, sawClaimed bool
	for _, line := range strings.Split(svc.stderr.String(), "\n") {
		var l struct{ Msg, RequestID, DeliveryID, TraceID string }
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		if l.Msg == "job claimed by an external worker" {
			// Logged by the claim's request (a trace of its own), in the job's.
			sawClaimed = l.RequestID == extID && l.TraceID == extTrace
		}
		if l.RequestID != echoID && l.DeliveryID != dlvID {
			continue
		}
		if l.RequestID != echoID || l.DeliveryID != dlvID || l.TraceID == "" {
			t.Errorf("log line %q: requestId %q, deliveryId %q, traceId %q; want %s, %s and a trace", l.Msg, l.RequestID, l.DeliveryID, l.TraceID, echoID, dlvID)
		}
		sawAttempt = sawAttempt || (l.Msg == "delivery attempt" && l.TraceID == clientTrace)
		sawCompleted = sawCompleted || (l.Msg == "job completed" && l.TraceID == clientTrace)
	}
	if !sawClaimed {
		t.Errorf("no \"job claimed by an external worker\" line of %s in trace %s", extID, extTrace)
	}
	if !sawAttempt || !sawCompleted {
		t.Errorf("no \"delivery attempt\" (%v) or \"job completed\" (%v) line in trace %s:\n%s", sawAttempt, sawCompleted, clientTrace, svc.stderr)
	}
}

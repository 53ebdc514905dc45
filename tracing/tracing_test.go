package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/boomerang-dev/boomerang/tracing"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const (
	clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientTP    = "00-" + clientTrace + "-00f067aa0ba902b7-01"
	otherTP     = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
)

func newTracer(t *testing.T) (*tracing.Tracer, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tracing.NewWithProvider(tp), exp
}

// A nil Tracer is tracing off: nothing is started, stored or sent.
func TestNilTracerDoesNothing(t *testing.T) {
	var tr *tracing.Tracer
	ctx := context.Background()
	if c, s := tr.StartSubmit(ctx, "req_x", "echo"); c != ctx || s.TraceParent() != "" {
		t.Errorf("StartSubmit on nil: ctx changed %v, traceparent %q", c != ctx, s.TraceParent())
	}
	if c, _ := tr.StartProcess(ctx, clientTP, "req_x", "echo", 1); c != ctx {
		t.Error("StartProcess on nil changed the context")
	}
	c, a := tr.StartAttempt(ctx, clientTP, "msg_x", "req_x", 1)
	a.End(500, "status", "retry", nil)
	h := http.Header{}
	tracing.Inject(c, h)
	if c != ctx || len(h) != 0 {
		t.Errorf("StartAttempt on nil: ctx changed %v, headers %v", c != ctx, h)
	}
	next := http.NotFoundHandler()
	if got := tr.Handler(next); got == nil || tr.Shutdown(ctx) != nil {
		t.Error("Handler or Shutdown on nil misbehaved")
	}
	if got := tracing.Within(ctx, clientTP); got != clientTP {
		t.Errorf("Within without a span = %q, want the stored %q", got, clientTP)
	}
}

// Within: the span that ends a job takes over from the stored traceparent
// only inside the job's trace.
func TestWithin(t *testing.T) {
	tr, _ := newTracer(t)
	ctx, inTrace := tr.StartProcess(context.Background(), clientTP, "req_x", "echo", 1)
	otherCtx, other := tr.StartProcess(context.Background(), otherTP, "req_y", "echo", 1)
	cases := []struct {
		name   string
		ctx    context.Context
		stored string
		want   string
	}{
		{"same trace: the current span", ctx, clientTP, inTrace.TraceParent()},
		{"another trace: the stored one", otherCtx, clientTP, clientTP},
		{"nothing stored: the current span", otherCtx, "", other.TraceParent()},
		{"no span: the stored one", context.Background(), clientTP, clientTP},
	}
	for _, c := range cases {
		if got := tracing.Within(c.ctx, c.stored); got != c.want {
			t.Errorf("%s: Within = %q, want %q", c.name, got, c.want)
		}
	}
	if !strings.HasPrefix(inTrace.TraceParent(), "00-"+clientTrace+"-") {
		t.Errorf("a process span's traceparent %q is not in its stored trace %s", inTrace.TraceParent(), clientTrace)
	}
}

// The server span continues the client's traceparent, is named after the
// route, and the spans below it are its children.
func TestHandler(t *testing.T) {
	tr, exp := newTracer(t)
	var submitTP string
	h := tr.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tracing.NameRoute(r, "/v1/jobs/{requestId}")
		_, s := tr.StartSubmit(r.Context(), "req_x", "echo")
		submitTP = s.TraceParent()
		s.End(nil)
		w.WriteHeader(http.StatusTeapot)
	}))
	for _, tp := range []string{clientTP, ""} {
		req := httptest.NewRequest("GET", "/v1/jobs/req_secret", nil)
		if tp != "" {
			req.Header.Set("traceparent", tp)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	spans := exp.GetSpans()
	if len(spans) != 4 {
		t.Fatalf("%d spans, want 4 (submit and server, twice)", len(spans))
	}
	srv, submit := spans[1], spans[0]
	if srv.Name != "GET /v1/jobs/{requestId}" || srv.SpanKind != trace.SpanKindServer || srv.Parent.TraceID().String() != clientTrace ||
		srv.Parent.SpanID().String() != "00f067aa0ba902b7" || submit.Parent.SpanID() != srv.SpanContext.SpanID() {
		t.Errorf("server span %q (%v) parent %v, submit's parent %v; want the route's name, the client's span as parent, and the submit its child",
			srv.Name, srv.SpanKind, srv.Parent, submit.Parent)
	}
	for _, a := range srv.Attributes {
		if strings.Contains(a.Value.String(), "req_secret") {
			t.Errorf("server span attribute %s = %q: the raw path is never recorded", a.Key, a.Value.String())
		}
		if a.Key == "http.response.status_code" && a.Value.AsInt64() != http.StatusTeapot {
			t.Errorf("status code %d, want %d", a.Value.AsInt64(), http.StatusTeapot)
		}
	}
	if root := spans[3]; root.Parent.IsValid() || root.SpanContext.TraceID().String() == clientTrace {
		t.Errorf("without a traceparent the server span has parent %v in trace %s, want a new root", root.Parent, root.SpanContext.TraceID())
	}
	if !strings.Contains(submitTP, spans[2].SpanContext.SpanID().String()) {
		t.Errorf("submit traceparent %q is not the submit span's", submitTP)
	}
}

// A replay starts a new trace linked to the original, unless it is part of
// a request's trace.
func TestReplay(t *testing.T) {
	tr, exp := newTracer(t)
	_, s := tr.StartReplay(context.Background(), "msg_x")
	s.Link(clientTP)
	s.End(nil)
	got := exp.GetSpans()[0]
	if got.Parent.IsValid() || got.SpanContext.TraceID().String() == clientTrace || len(got.Links) != 1 ||
		got.Links[0].SpanContext.TraceID().String() != clientTrace {
		t.Errorf("replay span parent %v, trace %s, links %v; want a new root linked to %s", got.Parent, got.SpanContext.TraceID(), got.Links, clientTrace)
	}
}

// Lines about a job carry requestId, deliveryId and traceId.
func TestLogHandler(t *testing.T) {
	tr, _ := newTracer(t)
	spanCtx, _ := tr.StartProcess(context.Background(), clientTP, "req_01AB", "echo", 1)
	otherCtx, _ := tr.StartProcess(context.Background(), otherTP, "req_01CD", "echo", 1)
	cases := []struct {
		name  string
		ctx   context.Context
		with  []any
		attrs []any
		want  map[string]string
	}{
		{"requestId gets its deliveryId and the trace", spanCtx, nil, []any{"requestId", "req_01AB"},
			map[string]string{"requestId": "req_01AB", "deliveryId": "msg_01AB", "traceId": clientTrace}},
		{"deliveryId gets its requestId", context.Background(), nil, []any{"deliveryId", "msg_01AB"},
			map[string]string{"requestId": "req_01AB", "deliveryId": "msg_01AB"}},
		{"ids from With count", context.Background(), []any{"requestId", "req_01AB"}, nil,
			map[string]string{"requestId": "req_01AB", "deliveryId": "msg_01AB"}},
		{"ForJob's trace wins over another trace's span", tracing.ForJob(otherCtx, clientTP), nil, []any{"requestId", "req_01AB"},
			map[string]string{"requestId": "req_01AB", "deliveryId": "msg_01AB", "traceId": clientTrace}},
		{"a line about no job is left alone", context.Background(), nil, []any{"replayId", "rpl_1"},
			map[string]string{"replayId": "rpl_1"}},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		log := slog.New(tracing.LogHandler(slog.NewJSONHandler(&buf, nil))).With(c.with...)
		log.InfoContext(c.ctx, "line", c.attrs...)
		var got map[string]any
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"time", "level", "msg"} {
			delete(got, k)
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: line %v, want %v", c.name, got, c.want)
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %v (line %v)", c.name, k, got[k], v, got)
			}
		}
	}
}

// An attempt's span says how it went; a deferral is no error.
func TestAttemptSpan(t *testing.T) {
	cases := []struct {
		status         int
		class, outcome string
		err            error
		wantError      bool
		wantAttrs      map[string]string
	}{
		{204, "", "delivered", nil, false, map[string]string{"http.response.status_code": "204", "boomerang.delivery.outcome": "delivered"}},
		{500, "status", "retry", nil, true, map[string]string{"http.response.status_code": "500", "error.type": "status", "boomerang.delivery.outcome": "retry"}},
		{0, "timeout", "failed", nil, true, map[string]string{"error.type": "timeout", "boomerang.delivery.outcome": "failed"}},
		{0, "", "deferred", errors.New("circuit open until 12:00"), false,
			map[string]string{"boomerang.delivery.outcome": "deferred", "boomerang.delivery.deferred": "circuit open until 12:00"}},
	}
	for _, c := range cases {
		tr, exp := newTracer(t)
		_, s := tr.StartAttempt(context.Background(), clientTP, "msg_01AB", "req_01AB", 2)
		s.End(c.status, c.class, c.outcome, c.err)
		got := exp.GetSpans()[0]
		attrs := map[string]string{}
		for _, a := range got.Attributes {
			attrs[string(a.Key)] = a.Value.String()
		}
		if (got.Status.Code == codes.Error) != c.wantError || got.Parent.TraceID().String() != clientTrace ||
			attrs["boomerang.delivery.attempt"] != "2" || attrs["boomerang.delivery_id"] != "msg_01AB" {
			t.Errorf("End(%d, %q, %q, %v): status %v, parent %v, attrs %v; want error %v, a child of %s",
				c.status, c.class, c.outcome, c.err, got.Status, got.Parent, attrs, c.wantError, clientTP)
		}
		for k, v := range c.wantAttrs {
			if attrs[k] != v {
				t.Errorf("End(%d, %q, %q, %v): %s = %q, want %q", c.status, c.class, c.outcome, c.err, k, attrs[k], v)
			}
		}
	}
}

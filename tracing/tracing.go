// Package tracing follows a job through Boomerang with OpenTelemetry, from
// its submission to each attempt at its webhook, although the steps run in
// different processes, at different times, and only some of them through a
// queue that could carry a trace context.
//
// The flow: Handler makes a server span of every API request, continuing a
// W3C traceparent the client sent. The submission's span (StartSubmit) is
// stored with the job as a traceparent string (Span.TraceParent), so every
// later step reads it back with the job or its delivery, whichever process
// runs it: the processing span (StartProcess) is its child; an external
// worker gets it in its claim; the HTTP upstream and the webhook receiver
// get a traceparent header (Inject). The span that ends the job, if it is
// in the job's trace, becomes the delivery's parent (Within), so that each
// delivery attempt (StartAttempt) is a child of the processing. A replay
// (StartReplay) starts a new trace that links to the original.
//
// A nil *Tracer is tracing turned off: every method is then a no-op that
// costs no allocation, nothing is stored with jobs and no header is sent.
// New returns nil unless the OTEL_* variables ask for an exporter.
package tracing

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/boomerang-dev/boomerang/ids"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// instrumentation names the tracer, as OpenTelemetry asks of libraries.
const instrumentation = "github.com/boomerang-dev/boomerang"

// Tracer starts Boomerang's spans. The zero of a pointer (nil) is off.
type Tracer struct {
	tracer   trace.Tracer
	provider *sdktrace.TracerProvider // nil when built over another provider
}

// New builds a Tracer that exports as cfg says, or returns nil when cfg
// exports nothing. console receives the console exporter's lines.
func New(cfg Config, version string, console io.Writer) (*Tracer, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(version)}
	for k, v := range cfg.Attributes {
		if k != "service.name" {
			attrs = append(attrs, attribute.String(k, v))
		}
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, attrs...)),
		sdktrace.WithSampler(sampler(cfg)),
	}
	for _, e := range cfg.Exporters {
		var exp sdktrace.SpanExporter
		var err error
		switch e {
		case "otlp":
			o := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.Endpoint)}
			if len(cfg.Headers) > 0 {
				o = append(o, otlptracehttp.WithHeaders(cfg.Headers))
			}
			if cfg.JSON {
				o = append(o, otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON))
			}
			exp, err = otlptracehttp.New(context.Background(), o...) // connects lazily
		case "console":
			exp, err = stdouttrace.New(stdouttrace.WithWriter(console))
		}
		if err != nil {
			return nil, fmt.Errorf("traces exporter %s: %w", e, err)
		}
		var bo []sdktrace.BatchSpanProcessorOption
		if cfg.BatchDelay > 0 {
			bo = append(bo, sdktrace.WithBatchTimeout(cfg.BatchDelay))
		}
		if cfg.ExportTimeout > 0 {
			bo = append(bo, sdktrace.WithExportTimeout(cfg.ExportTimeout))
		}
		if cfg.MaxQueue > 0 {
			bo = append(bo, sdktrace.WithMaxQueueSize(cfg.MaxQueue))
		}
		if cfg.MaxBatch > 0 {
			bo = append(bo, sdktrace.WithMaxExportBatchSize(cfg.MaxBatch))
		}
		opts = append(opts, sdktrace.WithBatcher(exp, bo...))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	return &Tracer{tracer: tp.Tracer(instrumentation, trace.WithInstrumentationVersion(version)), provider: tp}, nil
}

// NewWithProvider builds a Tracer over a provider the caller owns (tests:
// an SDK provider with an in-memory exporter).
func NewWithProvider(tp trace.TracerProvider) *Tracer {
	return &Tracer{tracer: tp.Tracer(instrumentation)}
}

func sampler(cfg Config) sdktrace.Sampler {
	switch cfg.Sampler {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(cfg.SamplerArg)
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SamplerArg))
	}
	return sdktrace.ParentBased(sdktrace.AlwaysSample())
}

// Shutdown exports the spans still waiting and stops the exporters; the
// service calls it last, once its servers and workers have stopped.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil || t.provider == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Span is one of Boomerang's spans; the zero Span does nothing.
type Span struct{ s trace.Span }

// End ends the span, marking it failed if err is not nil.
func (s Span) End(err error) {
	if s.s == nil {
		return
	}
	if err != nil {
		s.s.RecordError(err)
		s.s.SetStatus(codes.Error, err.Error())
	}
	s.s.End()
}

// TraceParent is the span's W3C traceparent, to store and continue later;
// "" for the zero Span.
func (s Span) TraceParent() string {
	if s.s == nil {
		return ""
	}
	return traceParent(s.s.SpanContext())
}

// Link adds a link to the span of a stored traceparent (a replay's to
// the original trace).
func (s Span) Link(traceparent string) {
	if s.s == nil {
		return
	}
	if sc := parse(traceparent); sc.IsValid() {
		s.s.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String("boomerang.link", "replay-of")}})
	}
}

// tc is the W3C Trace Context propagator: stateless, so no global.
var tc = propagation.TraceContext{}

func traceParent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	tc.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
	return c["traceparent"]
}

// parse reads a stored traceparent; invalid or "" gives an invalid one.
func parse(traceparent string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	ctx := tc.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	return trace.SpanContextFromContext(ctx)
}

// TraceID is the trace id of a stored traceparent, "" if none.
func TraceID(traceparent string) string {
	if sc := parse(traceparent); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}

// continued is ctx with the stored traceparent as the remote parent of the
// spans started from it (and the trace of its log lines); ctx as it is
// when traceparent is not valid.
func continued(ctx context.Context, traceparent string) context.Context {
	if sc := parse(traceparent); sc.IsValid() {
		return trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return ctx
}

// Inject adds the traceparent of ctx's span to an outgoing request's
// headers (an upstream's, a webhook's); nothing without a span.
func Inject(ctx context.Context, h http.Header) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		tc.Inject(ctx, propagation.HeaderCarrier(h))
	}
}

// Within is the traceparent a job's later steps continue once its current
// step has ended it: ctx's span if it belongs to the job's trace (stored),
// else the stored one (a cancel from another trace does not take the
// job's delivery out of the job's trace).
func Within(ctx context.Context, stored string) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return stored
	}
	if st := parse(stored); st.IsValid() && st.TraceID() != sc.TraceID() {
		return stored
	}
	return traceParent(sc)
}

// Attribute keys of Boomerang's spans.
const (
	keyRequestID  = attribute.Key("boomerang.request_id")
	keyDeliveryID = attribute.Key("boomerang.delivery_id")
	keyJobType    = attribute.Key("boomerang.job.type")
	keyJobAttempt = attribute.Key("boomerang.job.attempt")
	keyJobStatus  = attribute.Key("boomerang.job.status")
	keyAttempt    = attribute.Key("boomerang.delivery.attempt")
	keyOutcome    = attribute.Key("boomerang.delivery.outcome")
	keyDeferred   = attribute.Key("boomerang.delivery.deferred")
)

// StartSubmit starts the span of a job's submission, a child of ctx's
// (the API request's); its TraceParent is stored with the job.
func (t *Tracer) StartSubmit(ctx context.Context, requestID, jobType string) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	ctx, s := t.tracer.Start(ctx, "job.submit", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(keyRequestID.String(requestID), keyJobType.String(jobType)))
	return ctx, Span{s}
}

// StartProcess starts the span of one processing attempt of a job, a child
// of its stored traceparent (the submission's).
func (t *Tracer) StartProcess(ctx context.Context, traceparent, requestID, jobType string, attempt int) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	ctx, s := t.tracer.Start(continued(ctx, traceparent), "job.process", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(keyRequestID.String(requestID), keyDeliveryID.String(deliveryID(requestID)),
			keyJobType.String(jobType), keyJobAttempt.Int(attempt)))
	return ctx, Span{s}
}

// JobEnded notes on ctx's span how the job ended (status, and the error
// code of a failed one or of a failed attempt to retry).
func JobEnded(ctx context.Context, status, code string) {
	s := trace.SpanFromContext(ctx)
	if !s.IsRecording() {
		return
	}
	if status != "" {
		s.SetAttributes(keyJobStatus.String(status))
	}
	if code != "" {
		s.SetAttributes(semconv.ErrorTypeKey.String(code))
	}
	if code != "" && (status == "" || status == "FAILED") { // a cancel or an expiry is no error of the span
		s.SetStatus(codes.Error, code)
	}
}

// StartAttempt starts the span of delivery attempt n, a child of the
// delivery's stored traceparent (the span that ended the job, or the
// replay's).
func (t *Tracer) StartAttempt(ctx context.Context, traceparent, deliveryID, requestID string, n int) (context.Context, AttemptSpan) {
	if t == nil {
		return ctx, AttemptSpan{}
	}
	ctx, s := t.tracer.Start(continued(ctx, traceparent), "webhook.attempt", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(keyDeliveryID.String(deliveryID), keyRequestID.String(requestID), keyAttempt.Int(n),
			semconv.HTTPRequestMethodPost))
	return ctx, AttemptSpan{s}
}

// AttemptSpan is a delivery attempt's span.
type AttemptSpan struct{ s trace.Span }

// End records the attempt's answer and ends the span: the HTTP status (0:
// none), the error class ("" for none), the outcome (delivered, retry,
// failed, or deferred when no attempt was made) and err, an error of the
// attempt's own bookkeeping.
func (a AttemptSpan) End(status int, class, outcome string, err error) {
	if a.s == nil {
		return
	}
	if status > 0 {
		a.s.SetAttributes(semconv.HTTPResponseStatusCode(status))
	}
	if outcome != "" {
		a.s.SetAttributes(keyOutcome.String(outcome))
	}
	switch {
	case err != nil && outcome == "deferred": // a wait, not a failure: why it waits
		a.s.SetAttributes(keyDeferred.String(err.Error()))
	case err != nil:
		a.s.RecordError(err)
		a.s.SetStatus(codes.Error, err.Error())
	case class != "":
		a.s.SetAttributes(semconv.ErrorTypeKey.String(class))
		a.s.SetStatus(codes.Error, class)
	}
	a.s.End()
}

// StartReplay starts the span of a delivery's replay: a new trace (a
// child of ctx's span, the operator's request, if any), which the
// replayed attempts continue; link it to the original with Span.Link.
func (t *Tracer) StartReplay(ctx context.Context, deliveryID string) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	opts := []trace.SpanStartOption{trace.WithAttributes(keyDeliveryID.String(deliveryID))}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		opts = append(opts, trace.WithNewRoot())
	}
	ctx, s := t.tracer.Start(ctx, "webhook.replay", opts...)
	return ctx, Span{s}
}

// deliveryID is the delivery id of a request id (jobs.DeliveryID): the
// same body after another prefix.
func deliveryID(requestID string) string {
	if b, ok := strings.CutPrefix(requestID, ids.Request); ok && b != "" {
		return ids.Delivery + b
	}
	return ""
}

package tracing

import (
	"context"
	"log/slog"
	"strings"

	"github.com/boomerang-dev/boomerang/ids"
	"go.opentelemetry.io/otel/trace"
)

// LogHandler wraps h so that every line about a job carries its requestId,
// deliveryId and traceId: a line with one of the two ids gets the other
// (they share their body), and a line logged with a context holding a
// span gets its trace id. Log calls must use the *Context variants.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h: h} }

type jobTraceKey struct{}

// ForJob makes the log lines written with ctx carry the trace of a job's
// stored traceparent rather than the current span's: a line about a job
// logged by another trace's request (a cancel, an external worker's
// report) is found with the job's trace. ctx as it is without one.
func ForJob(ctx context.Context, traceparent string) context.Context {
	if sc := parse(traceparent); sc.IsValid() {
		return context.WithValue(ctx, jobTraceKey{}, sc.TraceID().String())
	}
	return ctx
}

type logHandler struct {
	h slog.Handler
	// has says which of requestId, deliveryId and traceId the attributes
	// added with WithAttrs hold already.
	has idSet
}

type idSet struct{ request, delivery, trace string }

func (l logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	has := l.has
	r.Attrs(func(a slog.Attr) bool {
		has.note(a)
		return true
	})
	if has.request == "" && has.delivery != "" {
		if b, ok := strings.CutPrefix(has.delivery, ids.Delivery); ok {
			r.AddAttrs(slog.String("requestId", ids.Request+b))
		}
	}
	if has.delivery == "" && has.request != "" {
		if b, ok := strings.CutPrefix(has.request, ids.Request); ok {
			r.AddAttrs(slog.String("deliveryId", ids.Delivery+b))
		}
	}
	if has.trace == "" {
		if id, ok := ctx.Value(jobTraceKey{}).(string); ok {
			r.AddAttrs(slog.String("traceId", id))
		} else if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r.AddAttrs(slog.String("traceId", sc.TraceID().String()))
		}
	}
	return l.h.Handle(ctx, r)
}

func (s *idSet) note(a slog.Attr) {
	switch a.Key {
	case "requestId":
		s.request = a.Value.String()
	case "deliveryId":
		s.delivery = a.Value.String()
	case "traceId":
		s.trace = a.Value.String()
	}
}

func (l logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	has := l.has
	for _, a := range attrs {
		has.note(a)
	}
	return logHandler{h: l.h.WithAttrs(attrs), has: has}
}

// WithGroup: attributes in a group are not the line's own ids.
func (l logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h: l.h.WithGroup(name), has: l.has}
}

package tracing

import (
	"net/http"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Handler makes a server span of every request to next, continuing the
// W3C traceparent the client sent. Its name is the method until the router
// names the route (NameRoute): never the raw path, which may hold a
// completion token. With t nil, next is returned as it is.
func (t *Tracer) Handler(next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := tc.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method)))
		defer span.End()
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(ctx))
		span.SetAttributes(semconv.HTTPResponseStatusCode(rec.status))
		if rec.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(rec.status))
		}
	})
}

// NameRoute names the request's server span after its route template,
// e.g. "POST /v1/jobs/{requestId}"; the router calls it once it has
// matched the request.
func NameRoute(r *http.Request, template string) {
	s := trace.SpanFromContext(r.Context())
	if !s.IsRecording() {
		return
	}
	s.SetName(r.Method + " " + template)
	s.SetAttributes(semconv.HTTPRoute(template))
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush and the deadlines.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/tracing"
	"go.opentelemetry.io/otel"
)

// startTracing reads the standard OTEL_* variables and starts exporting
// spans if they ask for it; nil (tracing off, at no cost) if not.
func startTracing(getenv func(string) string, stdout io.Writer, log *slog.Logger) (*tracing.Tracer, error) {
	cfg, err := tracing.FromEnv(getenv)
	if err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	tracer, err := tracing.New(cfg, version, stdout)
	if err != nil || tracer == nil {
		return nil, err
	}
	// The SDK reports export failures (a collector down) through its
	// process-wide handler: make them our log lines.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("trace export failed", "error", err.Error())
	}))
	where := strings.Join(cfg.Exporters, ", ")
	if u, err := url.Parse(cfg.Endpoint); err == nil && strings.Contains(where, "otlp") {
		where += " (" + u.Scheme + "://" + u.Host + u.Path + ")" // never credentials or a query
	}
	fmt.Fprintf(stdout, "boomerang: exporting traces of service %q to %s\n", cfg.ServiceName, where)
	return tracer, nil
}

// stopTracing exports the spans still waiting, within the shutdown timeout.
func stopTracing(ctx context.Context, tracer *tracing.Tracer, timeout time.Duration, log *slog.Logger) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := tracer.Shutdown(sctx); err != nil {
		log.Warn("could not export the last spans", "error", err.Error())
	}
}

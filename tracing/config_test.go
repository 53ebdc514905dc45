package tracing_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/tracing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	cases := []struct {
		name      string
		vars      map[string]string
		exporters []string
		endpoint  string
		check     func(tracing.Config) string
	}{
		{"nothing set: nothing exported", nil, nil, "http://localhost:4318/v1/traces", nil},
		{"an endpoint alone turns OTLP on, with the signal's path",
			map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, []string{"otlp"}, "http://collector:4318/v1/traces", nil},
		{"the traces endpoint is used as it is, and wins",
			map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/otlp"},
			[]string{"otlp"}, "https://b/otlp", nil},
		{"otlp with no endpoint: the standard's default",
			map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, []string{"otlp"}, "http://localhost:4318/v1/traces", nil},
		{"none wins over an endpoint",
			map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318"}, nil, "http://a:4318/v1/traces", nil},
		{"OTEL_SDK_DISABLED turns everything off",
			map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp,console"}, nil, "http://localhost:4318/v1/traces", nil},
		{"several exporters", map[string]string{"OTEL_TRACES_EXPORTER": "console, otlp"}, []string{"console", "otlp"}, "http://localhost:4318/v1/traces", nil},
		{"service name, resource attributes, headers, sampler, batch",
			map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,deployment.environment=prod%20eu",
				"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20x,x-tenant=7", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
				"OTEL_TRACES_SAMPLER_ARG": "0.25", "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			[]string{"console"}, "http://localhost:4318/v1/traces", func(c tracing.Config) string {
				want := tracing.Config{Exporters: c.Exporters, Endpoint: c.Endpoint, JSON: true,
					Headers: map[string]string{"authorization": "Bearer x", "x-tenant": "7"}, ServiceName: "from-attrs",
					Attributes: map[string]string{"service.name": "from-attrs", "deployment.environment": "prod eu"},
					Sampler:    "parentbased_traceidratio", SamplerArg: 0.25, BatchDelay: 200 * time.Millisecond}
				if !reflect.DeepEqual(c, want) {
					return fmt.Sprintf("got  %+v\nwant %+v", c, want)
				}
				return ""
			}},
		{"OTEL_SERVICE_NAME wins over the attributes",
			map[string]string{"OTEL_SERVICE_NAME": "api-eu", "OTEL_RESOURCE_ATTRIBUTES": "service.name=x"}, nil, "http://localhost:4318/v1/traces",
			func(c tracing.Config) string {
				if c.ServiceName != "api-eu" {
					return "service name " + c.ServiceName + ", want api-eu"
				}
				return ""
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := tracing.FromEnv(env(c.vars))
			if err != nil {
				t.Fatalf("FromEnv(%v) = %v", c.vars, err)
			}
			if !slices.Equal(got.Exporters, c.exporters) || got.Endpoint != c.endpoint || got.Enabled() != (len(c.exporters) > 0) {
				t.Errorf("FromEnv(%v): exporters %q, endpoint %q, enabled %v; want %q, %q", c.vars, got.Exporters, got.Endpoint, got.Enabled(), c.exporters, c.endpoint)
			}
			if c.check != nil {
				if msg := c.check(got); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}

// Every bad value is refused with the variable's name, and a header's value
// (a credential) is never repeated.
func TestFromEnvRefuses(t *testing.T) {
	cases := []struct {
		vars    map[string]string
		wantVar string
	}{
		{map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://x/"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "secret-token-value"}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"},
		{map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"},
		{map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "5s"}, "OTEL_BSP_SCHEDULE_DELAY"},
		{map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "-1"}, "OTEL_BSP_MAX_QUEUE_SIZE"},
		{map[string]string{"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED"},
	}
	for _, c := range cases {
		_, err := tracing.FromEnv(env(c.vars))
		if err == nil || !strings.Contains(err.Error(), c.wantVar) {
			t.Errorf("FromEnv(%v) = %v, want an error naming %s", c.vars, err, c.wantVar)
		}
		if err != nil && strings.Contains(err.Error(), "secret-token-value") {
			t.Errorf("FromEnv(%v) = %v: repeats a header's value", c.vars, err)
		}
	}
}

// Vars lists every variable FromEnv reads, and only those.
func TestVarsListsEveryVariableRead(t *testing.T) {
	read := map[string]bool{}
	_, _ = tracing.FromEnv(func(k string) string { read[k] = true; return "" })
	for _, v := range tracing.Vars {
		if !read[v] {
			t.Errorf("%s is listed in Vars but never read", v)
		}
	}
	for k := range read {
		if !slices.Contains(tracing.Vars, k) {
			t.Errorf("%s is read but not listed in Vars", k)
		}
	}
}

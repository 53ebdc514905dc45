package tracing

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is what the standard OTEL_* variables say about traces.
type Config struct {
	// Exporters are where spans go: "otlp" (OTLP over HTTP) and "console"
	// (JSON lines on the console). None: tracing is off, at no cost.
	Exporters []string
	// Endpoint is the full URL spans are POSTed to, path included.
	Endpoint string
	// JSON sends OTLP as JSON (http/json) instead of protobuf.
	JSON    bool
	Headers map[string]string
	// ServiceName and Attributes describe this process (the resource).
	ServiceName string
	Attributes  map[string]string
	// Sampler and SamplerArg are OTEL_TRACES_SAMPLER and its argument.
	Sampler    string
	SamplerArg float64
	// The batch span processor: how long spans wait before export, the
	// export's timeout, and its queue and batch sizes (0: the SDK's).
	BatchDelay, ExportTimeout time.Duration
	MaxQueue, MaxBatch        int
}

// Enabled reports whether any span is exported.
func (c Config) Enabled() bool { return len(c.Exporters) > 0 }

// Vars lists the variables FromEnv reads (the README documents them).
var Vars = []string{
	"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
	"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
}

// defaultEndpoint is OTLP/HTTP's, as the specification sets it.
const defaultEndpoint = "http://localhost:4318/v1/traces"

// FromEnv reads the OpenTelemetry SDK's standard variables through getenv.
// Nothing set means nothing exported: an OTLP exporter needs
// OTEL_TRACES_EXPORTER=otlp or an OTLP endpoint. Every error names its
// variable.
func FromEnv(getenv func(string) string) (Config, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	var errs []error
	fail := func(k, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s %s", k, fmt.Sprintf(format, args...)))
	}
	c := Config{ServiceName: "boomerang", Sampler: "parentbased_always_on", SamplerArg: 1}

	endpoint := get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	endpointVar := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	if endpoint == "" {
		if base := get("OTEL_EXPORTER_OTLP_ENDPOINT"); base != "" {
			// The general endpoint is a base: each signal adds its path.
			endpoint, endpointVar = strings.TrimRight(base, "/")+"/v1/traces", "OTEL_EXPORTER_OTLP_ENDPOINT"
		}
	}
	exporters := get("OTEL_TRACES_EXPORTER")
	if exporters == "" && endpoint != "" {
		exporters = "otlp"
	}
	for _, e := range strings.Split(exporters, ",") {
		switch e = strings.ToLower(strings.TrimSpace(e)); e {
		case "", "none":
		case "otlp", "console":
			c.Exporters = append(c.Exporters, e)
		default:
			fail("OTEL_TRACES_EXPORTER", "must be otlp, console or none, not %q", e)
		}
	}
	if disabled, err := parseBool(get("OTEL_SDK_DISABLED")); err != nil {
		fail("OTEL_SDK_DISABLED", "must be true or false, not %q", get("OTEL_SDK_DISABLED"))
	} else if disabled {
		c.Exporters = nil
	}

	if endpoint == "" {
		endpoint = defaultEndpoint
	}
	if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fail(endpointVar, "must be an http(s) URL, not %q", endpoint)
	}
	c.Endpoint = endpoint

	protocol := get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	protocolVar := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	if protocol == "" {
		protocol, protocolVar = get("OTEL_EXPORTER_OTLP_PROTOCOL"), "OTEL_EXPORTER_OTLP_PROTOCOL"
	}
	switch protocol {
	case "", "http/protobuf":
	case "http/json":
		c.JSON = true
	default:
		fail(protocolVar, "must be http/protobuf or http/json (Boomerang speaks OTLP over HTTP only), not %q", protocol)
	}

	var err error
	headersVar := "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
	headers := get(headersVar)
	if headers == "" {
		headersVar, headers = "OTEL_EXPORTER_OTLP_HEADERS", get("OTEL_EXPORTER_OTLP_HEADERS")
	}
	if c.Headers, err = parsePairs(headers); err != nil {
		fail(headersVar, "%v", err) // never the value: headers carry credentials
	}
	if c.Attributes, err = parsePairs(get("OTEL_RESOURCE_ATTRIBUTES")); err != nil {
		fail("OTEL_RESOURCE_ATTRIBUTES", "%v", err)
	}
	if name := c.Attributes["service.name"]; name != "" {
		c.ServiceName = name
	}
	if name := get("OTEL_SERVICE_NAME"); name != "" {
		c.ServiceName = name
	}

	if s := strings.ToLower(get("OTEL_TRACES_SAMPLER")); s != "" {
		switch s {
		case "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio":
			c.Sampler = s
		default:
			fail("OTEL_TRACES_SAMPLER", "must be always_on, always_off, traceidratio or their parentbased_ forms, not %q", s)
		}
	}
	if a := get("OTEL_TRACES_SAMPLER_ARG"); a != "" && strings.HasSuffix(c.Sampler, "traceidratio") {
		r, err := strconv.ParseFloat(a, 64)
		if err != nil || r < 0 || r > 1 {
			fail("OTEL_TRACES_SAMPLER_ARG", "must be a ratio from 0 to 1, not %q", a)
		}
		c.SamplerArg = r
	}

	millis := func(k string) time.Duration {
		v := get(k)
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			fail(k, "must be a positive whole number of milliseconds, not %q", v)
			return 0
		}
		return time.Duration(n) * time.Millisecond
	}
	count := func(k string) int {
		v := get(k)
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			fail(k, "must be a positive whole number, not %q", v)
			return 0
		}
		return n
	}
	c.BatchDelay, c.ExportTimeout = millis("OTEL_BSP_SCHEDULE_DELAY"), millis("OTEL_BSP_EXPORT_TIMEOUT")
	c.MaxQueue, c.MaxBatch = count("OTEL_BSP_MAX_QUEUE_SIZE"), count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

func parseBool(v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	return strconv.ParseBool(v)
}

// parsePairs reads the W3C Baggage-like "k1=v1,k2=v2" of the OTEL_*
// variables, values percent-decoded.
func parsePairs(v string) (map[string]string, error) {
	if v == "" {
		return nil, nil
	}
	out := map[string]string{}
	for i, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("entry %d must look like key=value", i+1)
		}
		dec, err := url.PathUnescape(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("entry %d (%s) is not percent-encoded properly", i+1, k)
		}
		out[k] = dec
	}
	return out, nil
}

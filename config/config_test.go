package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Embedded() || c.Addr != ":8080" || c.Role != config.RoleAll || c.RetryInitial != 5*time.Second ||
		c.RetryMaxInterval != 10*time.Hour || c.RetryMaxAttempts != 12 || c.DeliveryTimeout != 15*time.Second ||
		c.Retention != 7*24*time.Hour || c.MaxBodyBytes != 1<<20 || c.SecretGrace != 24*time.Hour {
		t.Fatalf("defaults are off: %+v", c)
	}
	if !c.Role.RunsAPI() || !c.Role.RunsWorkers() {
		t.Fatal("role all must run both")
	}
}

func TestParsesEverything(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"BOOMERANG_REDIS_URL":               "redis://127.0.0.1:6379/2",
		"BOOMERANG_ADMIN_TOKEN":             strings.Repeat("a", 32),
		"BOOMERANG_ROLE":                    "worker",
		"BOOMERANG_RETRY_INITIAL":           "200ms",
		"BOOMERANG_RETRY_MAX_ATTEMPTS":      "3",
		"BOOMERANG_JOB_HTTP":                "report=http://reports.internal/generate, thumb=https://img/x",
		"BOOMERANG_JOB_TIMEOUTS":            "report=30m",
		"BOOMERANG_ALLOW_CALLBACK_CIDRS":    "127.0.0.1, 10.20.0.0/16",
		"BOOMERANG_ALLOW_PRIVATE_CALLBACKS": "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Role.RunsAPI() || !c.Role.RunsWorkers() {
		t.Error("worker role must run workers only")
	}
	if c.RetryInitial != 200*time.Millisecond || c.RetryMaxAttempts != 3 {
		t.Errorf("retry settings: %v %v", c.RetryInitial, c.RetryMaxAttempts)
	}
	if c.JobHTTP["report"] != "http://reports.internal/generate" || c.JobHTTP["thumb"] != "https://img/x" {
		t.Errorf("JobHTTP = %v", c.JobHTTP)
	}
	if c.JobTimeouts["report"] != 30*time.Minute {
		t.Errorf("JobTimeouts = %v", c.JobTimeouts)
	}
	if len(c.AllowCallbackCIDRs) != 2 || c.AllowCallbackCIDRs[0].String() != "127.0.0.1/32" {
		t.Errorf("AllowCallbackCIDRs = %v", c.AllowCallbackCIDRs)
	}
	if !c.AllowPrivateCallbacks {
		t.Error("AllowPrivateCallbacks not set")
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	token := strings.Repeat("t", 32)
	tests := []struct {
		name, value string
		extra       map[string]string
	}{
		{"BOOMERANG_RETRY_INITIAL", "5", nil},
		{"BOOMERANG_RETRY_MAX_INTERVAL", "1ms", nil},
		{"BOOMERANG_RETRY_MAX_ATTEMPTS", "0", nil},
		{"BOOMERANG_RETRY_MAX_ATTEMPTS", "lots", nil},
		{"BOOMERANG_CONCURRENCY", "-1", nil},
		{"BOOMERANG_DELIVERY_TIMEOUT", "forever", nil},
		{"BOOMERANG_ROLE", "boss", nil},
		{"BOOMERANG_REDIS_URL", "http://localhost:6379", map[string]string{"BOOMERANG_ADMIN_TOKEN": token}},
		{"BOOMERANG_ADMIN_TOKEN", "", map[string]string{"BOOMERANG_REDIS_URL": "redis://localhost:6379"}},
		{"BOOMERANG_ADMIN_TOKEN", "short", nil},
		{"BOOMERANG_ALLOW_PRIVATE_CALLBACKS", "yes please", nil},
		{"BOOMERANG_ALLOW_CALLBACK_CIDRS", "10.0.0.0/99", nil},
		{"BOOMERANG_JOB_HTTP", "report", nil},
		{"BOOMERANG_JOB_HTTP", "report=ftp://x", nil},
		{"BOOMERANG_JOB_HTTP", "echo=http://x", nil},
		{"BOOMERANG_JOB_HTTP", "Bad Name=http://x", nil},
		{"BOOMERANG_JOB_HTTP", "a=http://x,a=http://y", nil},
		{"BOOMERANG_JOB_TIMEOUTS", "report=1ms", nil},
		{"BOOMERANG_LOG_LEVEL", "loud", nil},
		{"BOOMERANG_MAX_BODY_BYTES", "1", nil},
		{"BOOMERANG_ADMIN_ADDR", ":8080", nil},
		{"BOOMERANG_METRICS_ADDR", "127.0.0.1:9464", map[string]string{"BOOMERANG_ADMIN_ADDR": "127.0.0.1:9464"}},
		{"BOOMERANG_DEBUG_ADDR", ":9", map[string]string{"BOOMERANG_ADDR": ":9"}},
		{"BOOMERANG_ADMIN_ADDR", "0.0.0.0:8080", nil},
		{"BOOMERANG_METRICS_ADDR", "127.0.0.1:9090", map[string]string{"BOOMERANG_DEBUG_ADDR": "[::]:9090"}},
	}
	for _, tt := range tests {
		vars := map[string]string{tt.name: tt.value}
		for k, v := range tt.extra {
			vars[k] = v
		}
		_, err := config.Load(env(vars))
		if err == nil || !strings.Contains(err.Error(), tt.name) {
			t.Errorf("%s=%q: got error %v, want one naming %s", tt.name, tt.value, err, tt.name)
		}
	}
}

func TestVarsDocumentsEveryVariableRead(t *testing.T) {
	read := map[string]bool{}
	_, _ = config.Load(func(k string) string { read[k] = true; return "" })
	documented := map[string]bool{}
	for _, v := range config.Vars {
		documented[v.Name] = true
		if !read[v.Name] {
			t.Errorf("%s is documented but never read", v.Name)
		}
	}
	for k := range read {
		if !documented[k] {
			t.Errorf("%s is read but not in config.Vars", k)
		}
	}
}

// Operator-defined job types follow the configured type pattern, so a type
// configured is always one clients can submit.
func TestJobTypeNamesFollowThePattern(t *testing.T) {
	vars := map[string]string{"BOOMERANG_JOB_TYPE_PATTERN": `^[a-z]+$`, "BOOMERANG_JOB_HTTP": "report.v2=http://x/"}
	if _, err := config.Load(env(vars)); err == nil || !strings.Contains(err.Error(), "BOOMERANG_JOB_HTTP") {
		t.Errorf("a type outside the pattern: %v, want an error naming BOOMERANG_JOB_HTTP", err)
	}
	vars["BOOMERANG_JOB_HTTP"] = "report=http://x/"
	vars["BOOMERANG_JOB_TIMEOUTS"] = "report=1m"
	if _, err := config.Load(env(vars)); err != nil {
		t.Errorf("a type inside the pattern: %v", err)
	}
}

// TestListenersThatDoNotClash: port 0, different hosts on one port, and a
// worker-only process's BOOMERANG_ADDR (it does not listen there) are fine.
func TestListenersThatDoNotClash(t *testing.T) {
	for _, vars := range []map[string]string{
		{"BOOMERANG_ADDR": "127.0.0.1:0", "BOOMERANG_ADMIN_ADDR": "127.0.0.1:0"},
		{"BOOMERANG_ADMIN_ADDR": "127.0.0.1:9000", "BOOMERANG_METRICS_ADDR": "127.0.0.2:9000"},
		{"BOOMERANG_ROLE": "worker", "BOOMERANG_ADMIN_ADDR": ":8080"},
	} {
		if _, err := config.Load(env(vars)); err != nil {
			t.Errorf("Load(%v) = %v, want no clash", vars, err)
		}
	}
}

package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/boomerang-dev/boomerang/redistest"
)

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestHealthcheck runs `boomerang healthcheck` with the environment of a
// real api process and of a real worker-only one, as a container's
// HEALTHCHECK does, and against listeners that are wrong.
func TestHealthcheck(t *testing.T) {
	redisURL := redistest.URL(t)
	apiEnv := map[string]string{"BOOMERANG_REDIS_URL": redisURL, "BOOMERANG_ADMIN_TOKEN": testAdminToken, "BOOMERANG_ROLE": "api", "BOOMERANG_ADDR": freeAddr(t)}
	startService(t, apiEnv)
	workerEnv := map[string]string{"BOOMERANG_REDIS_URL": redisURL, "BOOMERANG_ADMIN_ADDR": freeAddr(t)}
	worker := startWorkerOnly(t, workerEnv)
	workerEnv["BOOMERANG_ROLE"] = "worker"

	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer unavailable.Close()
	with := func(env map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range env {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}

	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string // "" for exit 0
	}{
		{"api process, /readyz on BOOMERANG_ADDR", apiEnv, nil, ""},
		{"api process, /healthz", apiEnv, []string{"-path", "/healthz"}, ""},
		{"worker-only process, /readyz on BOOMERANG_ADMIN_ADDR", workerEnv, nil, ""},
		{"worker-only process, /healthz", workerEnv, []string{"-path", "healthz"}, ""},
		{"route the binary does not serve", apiEnv, []string{"-path", "/ready"}, "404"},
		{"worker's health listener serves no API", workerEnv, []string{"-path", "/v1/jobs"}, "404"},
		{"worker-only process without BOOMERANG_ADMIN_ADDR", with(workerEnv, "BOOMERANG_ADMIN_ADDR", ""), nil, "BOOMERANG_ADMIN_ADDR"},
		{"nothing listens there", with(apiEnv, "BOOMERANG_ADDR", freeAddr(t)), nil, "connect"},
		{"process not ready (503)", apiEnv, []string{"-url", unavailable.URL}, "503"},
		{"configuration the process would refuse", with(apiEnv, "BOOMERANG_ROLE", "boss"), nil, "BOOMERANG_ROLE"},
		{"-help exits 0", apiEnv, []string{"-help"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			args := append([]string{"boomerang", "healthcheck"}, c.args...)
			err := run(context.Background(), args, func(k string) string { return c.env[k] }, &stdout, &stderr)
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("healthcheck %v: %v, want exit 0\nstderr: %s", c.args, err, stderr.String())
			case c.wantErr != "" && err == nil:
				t.Errorf("healthcheck %v: exit 0 (%s), want an error naming %q", c.args, stdout.String(), c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Errorf("healthcheck %v: %v, want an error naming %q", c.args, err, c.wantErr)
			}
		})
	}
	if !strings.Contains(worker.stdout.String(), "health listening on http://"+workerEnv["BOOMERANG_ADMIN_ADDR"]) {
		t.Errorf("worker's stdout does not announce its health listener on %s:\n%s", workerEnv["BOOMERANG_ADMIN_ADDR"], worker.stdout)
	}
}

func TestLoopbackURL(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{":8080", "http://127.0.0.1:8080"},
		{"0.0.0.0:8081", "http://127.0.0.1:8081"},
		{"[::]:9090", "http://127.0.0.1:9090"},
		{"127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"10.1.2.3:8080", "http://10.1.2.3:8080"},
		{"[::1]:8080", "http://[::1]:8080"},
		{"boomerang:8080", "http://boomerang:8080"},
	} {
		if got := loopbackURL(c.addr); got != c.want {
			t.Errorf("loopbackURL(%q) = %q, want %q", c.addr, got, c.want)
		}
	}
}

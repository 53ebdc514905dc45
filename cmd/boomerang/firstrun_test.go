package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/boomerang-dev/boomerang/redistest"
)

// TestFirstRunOnARealRedis starts the service on real redis-servers
// configured each way: it warns, naming the setting and what can be lost,
// for each one that can lose data (or says it could not check), and tells
// how to create the first client until there is one.
func TestFirstRunOnARealRedis(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantWarn   []string // parts of the WARN lines, in order of the settings
		wantNoWarn bool
	}{
		{"durable", []string{"--appendonly", "yes", "--maxmemory-policy", "noeviction"}, nil, true},
		{"neither", []string{"--appendonly", "no", "--maxmemory-policy", "allkeys-lru"},
			[]string{"appendonly is no, want yes", "lost when Redis restarts", "maxmemory-policy is allkeys-lru, want noeviction", "evicts keys"}, false},
		{"CONFIG forbidden", []string{"--rename-command", "CONFIG", ""}, []string{"could not check the Redis persistence settings", "refused"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url := redistest.StartServer(t, tc.args...)
			svc := startService(t, map[string]string{"BOOMERANG_REDIS_URL": url})
			warns := warnLines(t, svc.stderr.String())
			for _, w := range tc.wantWarn {
				if !strings.Contains(warns, w) {
					t.Errorf("redis-server %v: WARN lines do not say %q:\n%s", tc.args, w, warns)
				}
			}
			if tc.wantNoWarn && strings.Contains(warns, "Redis") {
				t.Errorf("redis-server %v: warned although durable:\n%s", tc.args, warns)
			}
			if out := svc.stdout.String(); !contains(out, "no client yet", "export BOOMERANG_URL="+svc.base, "boomerang clients create --name acme") ||
				strings.Contains(out, svc.admin) {
				t.Errorf("stdout of the first run does not tell how to create the first client (or shows the token):\n%s", out)
			}
			if tc.name != "durable" {
				return
			}
			// With a client, a restart says nothing of it.
			svc.createClient("acme")
			svc.stop()
			again := startService(t, map[string]string{"BOOMERANG_REDIS_URL": url})
			if strings.Contains(again.stdout.String(), "no client yet") {
				t.Errorf("a restart with a client still prints the first-client hint:\n%s", again.stdout)
			}
		})
	}
}

// warnLines are the WARN lines of a JSON log, one per line.
func warnLines(t *testing.T, log string) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(log, "\n") {
		var l struct{ Level string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Level == "WARN" {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

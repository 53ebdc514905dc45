package main

import (
	"strings"
	"testing"
	"time"
)

// A claim's traceparent reaches COMMAND as TRACEPARENT and goes back with
// the worker's heartbeats and report, so the job's webhook stays in its
// trace; a claim without one sends none.
func TestWorkCarriesTheJobsTraceparent(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, sent := range []string{tp, ""} {
		f := newFakeAPI(t)
		claim := claimJSON("req_1", `{}`, nil)
		if sent != "" {
			claim = strings.TrimSuffix(claim, "}") + `,"traceparent":"` + sent + `"}`
		}
		f.claims <- claim
		stop, _ := startWork(t, f, "--type", "shell", "--lease", "1s", "--", "/bin/sh", "-c", `sleep 0.5; printf '"%s"' "${TRACEPARENT:-none}"`)
		waitFor(t, "the job's completion", 5*time.Second, func() bool { return len(f.calls(&f.completes)) > 0 })
		if err, log := stop(); err != nil {
			t.Fatalf("work: %v\nlog:\n%s", err, log)
		}
		c := f.calls(&f.completes)[0]
		wantEnv := sent
		if wantEnv == "" {
			wantEnv = "none"
		}
		if c.body["result"] != wantEnv || c.header.Get("traceparent") != sent {
			t.Errorf("claim with traceparent %q: COMMAND saw TRACEPARENT %v, complete sent traceparent %q; want %q and %q",
				sent, c.body["result"], c.header.Get("traceparent"), wantEnv, sent)
		}
		for _, hb := range f.calls(&f.heartbeats) {
			if hb.header.Get("traceparent") != sent {
				t.Errorf("heartbeat sent traceparent %q, want %q", hb.header.Get("traceparent"), sent)
			}
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
)

// adminCLI runs `boomerang ARGS...` against svc with its admin token in
// the environment, as an operator's shell would.
type adminCLI struct {
	t   *testing.T
	svc *service
	env map[string]string
}

func (c adminCLI) run(args ...string) (stdout, stderr string, err error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut testkit.SyncBuffer
	err = run(ctx, append([]string{"boomerang"}, args...), func(k string) string { return c.env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// ok runs a command that must succeed and returns its stdout.
func (c adminCLI) ok(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("boomerang %s = %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// json runs a command with --json and decodes its output into v.
func (c adminCLI) json(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("boomerang %s --json printed %q: %v", strings.Join(args, " "), out, err)
	}
}

// TestAdminCLIEndToEnd drives every admin command through run() against
// the real service on a real Redis: clients are created and managed,
// deliveries fail against a broken receiver, are retried now one and in
// bulk once it is fixed, shown, listed and replayed, one and in bulk with
// its progress followed.
func TestAdminCLIEndToEnd(t *testing.T) {
	svc := startService(t, map[string]string{
		"BOOMERANG_REDIS_URL":     redistest.URL(t),
		"BOOMERANG_RETRY_INITIAL": "1h", // only a retry-now can deliver within the test
	})
	cli := adminCLI{t: t, svc: svc, env: map[string]string{"BOOMERANG_URL": svc.base, "BOOMERANG_ADMIN_TOKEN": svc.admin}}

	// Clients.
	var acme struct{ ID, Name, APIKey, SigningSecret string }
	cli.json(&acme, "clients", "create", "--name", "acme")
	if !strings.HasPrefix(acme.ID, "cli_") || acme.Name != "acme" || !strings.HasPrefix(acme.APIKey, "bmr_") || !strings.HasPrefix(acme.SigningSecret, "whsec_") {
		t.Fatalf("clients create --json = %+v, want a client with its key and secret", acme)
	}
	table := cli.ok("clients", "create", "--name", "beta", "--job-types", "echo")
	if !contains(table, "created client cli_", "(beta)", "export BOOMERANG_API_KEY=bmr_", "export SIGNING_SECRET=whsec_") {
		t.Errorf("clients create printed:\n%s", table)
	}
	betaID := strings.Fields(strings.TrimPrefix(table, "created client "))[0]
	if out := cli.ok("clients", "list"); !contains(out, "ID", "NAME", acme.ID, "acme", betaID, "beta", "echo") {
		t.Errorf("clients list printed:\n%s", out)
	}
	var page struct {
		Data       []struct{ ID string }
		NextCursor string
	}
	cli.json(&page, "clients", "list", "--limit", "1")
	if len(page.Data) != 1 || page.NextCursor == "" {
		t.Errorf("clients list --limit 1 --json = %+v, want one client and a cursor", page)
	}
	cli.json(&page, "clients", "list", "--cursor", page.NextCursor)
	if len(page.Data) != 1 {
		t.Errorf("clients list --cursor = %+v, want the other client", page)
	}
	var key struct{ ID, APIKey string }
	cli.json(&key, "clients", "add-key", acme.ID)
	if !strings.HasPrefix(key.ID, "key_") || !strings.HasPrefix(key.APIKey, "bmr_") {
		t.Errorf("clients add-key --json = %+v", key)
	}
	if out := cli.ok("clients", "show", acme.ID); !contains(out, acme.ID, "acme", "KEY ID", key.ID) {
		t.Errorf("clients show printed:\n%s", out)
	}
	if out := cli.ok("clients", "revoke-key", acme.ID, key.ID); !contains(out, "revoked key "+key.ID) {
		t.Errorf("clients revoke-key printed:\n%s", out)
	}
	var rotated struct{ SigningSecret string }
	cli.json(&rotated, "clients", "rotate-secret", acme.ID)
	if !strings.HasPrefix(rotated.SigningSecret, "whsec_") || rotated.SigningSecret == acme.SigningSecret {
		t.Errorf("clients rotate-secret --json = %+v, want a new secret", rotated)
	}
	if out := cli.ok("clients", "disable", betaID); !contains(out, "disabled client "+betaID) {
		t.Errorf("clients disable printed:\n%s", out)
	}
	if _, _, err := cli.run("clients", "show", "cli_0N0B0DY0000000000000000000"); err == nil || !contains(err.Error(), "404 not-found") {
		t.Errorf("clients show of an unknown client = %v, want a 404 not-found", err)
	}

	// Deliveries fail against a broken receiver, and wait an hour.
	svc.clientID, svc.apiKey, svc.secret = acme.ID, acme.APIKey, rotated.SigningSecret
	rcv := newReceiver(t)
	rcv.setFailOn(func(string, int) bool { return true })
	var dlv []string
	for i := range 3 {
		id := svc.submit("echo", rcv.srv.URL+"/hook", map[string]int{"n": i})
		waitFor(t, "the first attempt of "+id, 10*time.Second, func() bool {
			j := svc.job(id)
			return j.Delivery != nil && j.Delivery.Attempts == 1
		})
		dlv = append(dlv, svc.job(id).Delivery.ID)
	}
	if out := cli.ok("deliveries", "list", "--status", "pending", "--client", acme.ID); !contains(out, "STATUS", dlv[0], dlv[1], dlv[2], "PENDING", "500") {
		t.Errorf("deliveries list --status pending printed:\n%s", out)
	}
	var list struct{ Data []struct{ ID, Status string } }
	cli.json(&list, "deliveries", "list", "--status", "DELIVERED", "--since", "1h")
	if len(list.Data) != 0 {
		t.Errorf("deliveries list --status DELIVERED = %+v, want none yet", list)
	}

	// The receiver is fixed: one retried now, then the others in bulk.
	rcv.setFailOn(func(string, int) bool { return false })
	if out := cli.ok("deliveries", "retry-now", dlv[0]); !contains(out, dlv[0], "DELIVERED", "OUTCOME", "retry", "delivered", "204") {
		t.Errorf("deliveries retry-now %s printed:\n%s", dlv[0], out)
	}
	if _, _, err := cli.run("deliveries", "retry-now", dlv[0]); err == nil || !contains(err.Error(), "409 delivery-not-pending", "DELIVERED") {
		t.Errorf("deliveries retry-now of a DELIVERED delivery = %v, want 409 delivery-not-pending naming DELIVERED", err)
	}
	if out := cli.ok("deliveries", "retry-now", "--client", acme.ID, "--dry-run"); !contains(out, "dry run: 2 PENDING") {
		t.Errorf("deliveries retry-now --dry-run printed:\n%s", out)
	}
	var counts struct{ Matched, Retried int }
	cli.json(&counts, "deliveries", "retry-now", "--client", acme.ID)
	if counts.Matched != 2 || counts.Retried != 2 {
		t.Errorf("deliveries retry-now --client --json = %+v, want 2 matched and retried", counts)
	}
	for _, id := range dlv[1:] {
		waitFor(t, id+" DELIVERED", 10*time.Second, func() bool {
			var d struct{ Status string }
			cli.json(&d, "deliveries", "show", id)
			return d.Status == "DELIVERED"
		})
	}
	if out := cli.ok("deliveries", "show", dlv[1]); !contains(out, "status", "DELIVERED", "attempts", "#", "STARTED", "status: receiver answered 500") {
		t.Errorf("deliveries show printed:\n%s", out)
	}

	// Replays: one, then every DELIVERED one of the client, followed.
	var replayed struct{ ID, Status string }
	cli.json(&replayed, "deliveries", "replay", dlv[0])
	if replayed.ID != dlv[0] || replayed.Status != "PENDING" {
		t.Errorf("deliveries replay --json = %+v, want %s PENDING", replayed, dlv[0])
	}
	waitFor(t, dlv[0]+" DELIVERED again", 10*time.Second, func() bool { return len(rcv.byID(dlv[0])) == 3 })
	waitFor(t, dlv[0]+" DELIVERED again", 10*time.Second, func() bool {
		var d struct{ Status string }
		cli.json(&d, "deliveries", "show", dlv[0])
		return d.Status == "DELIVERED"
	})
	out, progress, err := cli.run("deliveries", "replay", "--status", "DELIVERED", "--client", acme.ID, "--progress")
	if err != nil || !contains(out, "state", "done", "matched", "3", "replayed") || !contains(progress, "[", "] ", "3/3 replayed") {
		t.Errorf("deliveries replay --progress = %v\nstdout:\n%s\nstderr:\n%s\nwant the counts, and a bar on stderr", err, out, progress)
	}
	out, lines, err := cli.run("deliveries", "replay", "--status", "FAILED", "--dry-run")
	if err != nil || !contains(out, "dry run", "true", "matched") || strings.Contains(lines, "[") {
		t.Errorf("deliveries replay --dry-run = %v\nstdout:\n%s\nstderr:\n%s", err, out, lines)
	}
	var rep struct {
		ReplayID string
		State    string
		Matched  int
	}
	cli.json(&rep, "deliveries", "replay", "--all", "--no-wait")
	var shown struct{ ReplayID, State string }
	cli.json(&shown, "replays", "show", rep.ReplayID, "--wait")
	if shown.ReplayID != rep.ReplayID || shown.State != "done" {
		t.Errorf("replays show --wait = %+v, want replay %s done", shown, rep.ReplayID)
	}
	if out := cli.ok("replays", "show", rep.ReplayID); !contains(out, "replay", rep.ReplayID, "state", "done") {
		t.Errorf("replays show printed:\n%s", out)
	}

	// Mistakes are refused before any call, naming what is wrong.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deliveries", "retry-now"}, "give an ID, or a filter"},
		{[]string{"deliveries", "replay", dlv[0], "--client", acme.ID}, "not both"},
		{[]string{"deliveries", "list", "--since", "yesterday"}, "--since"},
		{[]string{"clients", "create"}, "--name is required"},
		{[]string{"clients", "revoke-key", acme.ID}, "want CLIENT_ID KEY_ID"},
		{[]string{"clients", "frobnicate"}, `unknown subcommand "frobnicate"`},
		{[]string{"deliveries"}, "want a subcommand"},
	} {
		if _, _, err := cli.run(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("boomerang %s = %v, want an error with %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	noToken := adminCLI{t: t, svc: svc, env: map[string]string{"BOOMERANG_URL": svc.base}}
	if _, _, err := noToken.run("clients", "list"); err == nil || !strings.Contains(err.Error(), "BOOMERANG_ADMIN_TOKEN") {
		t.Errorf("clients list without a token = %v, want an error naming BOOMERANG_ADMIN_TOKEN", err)
	}
	if out := noToken.ok("clients", "list", "--admin-token", svc.admin); !contains(out, acme.ID) {
		t.Errorf("clients list --admin-token printed:\n%s", out)
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/redis/go-redis/v9"
)

// warnDurability logs, at WARN, each setting of a real Redis that can lose
// accepted work, and what it loses; or that it could not check (a managed
// Redis may forbid CONFIG), so the operator checks by hand.
func warnDurability(ctx context.Context, rdb redis.UniversalClient, log *slog.Logger) {
	d, err := redisstore.CheckDurability(ctx, rdb)
	if err != nil { // some nodes may have answered: their risks are logged below
		log.Warn("could not check the Redis persistence settings", "error", err,
			"want", "appendonly yes, maxmemory-policy noeviction")
	}
	if d.Unchecked != "" {
		log.Warn("could not check the Redis persistence settings; make sure of them by hand",
			"reason", d.Unchecked, "want", "appendonly yes, maxmemory-policy noeviction")
	}
	for _, r := range d.Risks {
		log.Warn("Redis setting can lose data: "+r.Setting+" is "+r.Value+", want "+r.Want,
			"setting", r.Setting, "value", r.Value, "want", r.Want, "node", r.Node, "loss", r.Loss)
	}
}

// printFirstClient tells an operator whose Redis holds no client yet how to
// create the first one (never echoing the admin token).
func printFirstClient(ctx context.Context, cl *clients.Service, adminURL string, stdout io.Writer, log *slog.Logger) {
	list, _, err := cl.List(ctx, 1, "")
	if err != nil {
		log.Warn("could not list clients", "error", err)
		return
	}
	if len(list) > 0 {
		return
	}
	fmt.Fprintf(stdout, `boomerang: no client yet. Create the first one (its API key and signing secret are printed once):

  export BOOMERANG_URL=%s
  export BOOMERANG_ADMIN_TOKEN=...   # the token this server runs with
  boomerang clients create --name acme

  or: curl -X POST "$BOOMERANG_URL/admin/v1/clients" -H "Authorization: Bearer $BOOMERANG_ADMIN_TOKEN" \
        -H 'Content-Type: application/json' -d '{"name":"acme"}'

`, adminURL)
}

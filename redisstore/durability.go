package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Risk is a Redis setting that can lose Boomerang's data, and what it loses.
type Risk struct {
	Node    string // the server's address (several on a cluster)
	Setting string // appendonly, maxmemory-policy
	Value   string // as the server has it
	Want    string // what keeps the data
	Loss    string // what can be lost
}

// Durability is what CheckDurability found: the risky settings, or that it
// could not look (Unchecked says why: a managed Redis may forbid CONFIG).
type Durability struct {
	Risks     []Risk
	Unchecked string
}

// CheckDurability reads appendonly and maxmemory-policy through CONFIG
// GET, on every master of a cluster, and names the settings that can lose
// data: without AOF, accepted jobs and pending deliveries live only in
// memory and the last snapshot; with an eviction policy, Redis may drop any
// key (a job, a task, an index entry) under memory pressure. A CONFIG
// refused (renamed, ACL, managed service) is no error: Durability says it
// could not check. Only the connection failing is an error.
func CheckDurability(ctx context.Context, rdb redis.UniversalClient) (Durability, error) {
	var (
		mu  sync.Mutex
		out Durability
	)
	check := func(ctx context.Context, c *redis.Client) error {
		risks, unchecked, err := checkNode(ctx, c)
		mu.Lock()
		defer mu.Unlock()
		out.Risks = append(out.Risks, risks...)
		if unchecked != "" && out.Unchecked == "" {
			out.Unchecked = unchecked
		}
		return err
	}
	var err error
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, check)
	case *redis.Client:
		err = check(ctx, c)
	default:
		return Durability{Unchecked: fmt.Sprintf("no check for a %T", rdb)}, nil
	}
	return out, err
}

// durableSettings are the settings checked, what keeps the data, and what
// another value can lose.
var durableSettings = []struct{ name, want, loss string }{
	{"appendonly", "yes", "accepted jobs and pending deliveries are lost when Redis restarts (all since its last RDB snapshot, if it takes any)"},
	{"maxmemory-policy", "noeviction", "Redis evicts keys under memory pressure: jobs, their tasks and deliveries can vanish"},
}

func checkNode(ctx context.Context, c *redis.Client) (risks []Risk, unchecked string, err error) {
	node := c.Options().Addr
	if node == "FailoverClient" { // go-redis's placeholder: the Sentinels pick the address
		node = "the master the Sentinels name"
	}
	for _, s := range durableSettings {
		vals, err := c.ConfigGet(ctx, s.name).Result()
		if err != nil {
			var re redis.Error
			if errors.As(err, &re) { // an answer, refusing: a managed or locked-down Redis
				return risks, fmt.Sprintf("CONFIG GET %s refused by %s: %s", s.name, node, strings.TrimSpace(re.Error())), nil
			}
			return risks, "", fmt.Errorf("CONFIG GET %s on %s: %w", s.name, node, err)
		}
		v, ok := vals[s.name]
		if !ok {
			return risks, fmt.Sprintf("CONFIG GET %s on %s answered nothing", s.name, node), nil
		}
		if !strings.EqualFold(v, s.want) {
			risks = append(risks, Risk{Node: node, Setting: s.name, Value: v, Want: s.want, Loss: s.loss})
		}
	}
	return risks, "", nil
}

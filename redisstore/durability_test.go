package redisstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/redis/go-redis/v9"
)

// TestCheckDurability runs real redis-servers configured each way.
func TestCheckDurability(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		args          []string
		wantRisks     []string // settings at risk
		wantUnchecked string   // part of why it could not check
	}{
		{"durable", []string{"--appendonly", "yes", "--maxmemory-policy", "noeviction"}, nil, ""},
		{"no AOF", []string{"--appendonly", "no", "--maxmemory-policy", "noeviction"}, []string{"appendonly=no"}, ""},
		{"evicting", []string{"--appendonly", "yes", "--maxmemory-policy", "allkeys-lru"}, []string{"maxmemory-policy=allkeys-lru"}, ""},
		{"neither", []string{"--appendonly", "no", "--maxmemory-policy", "volatile-ttl"}, []string{"appendonly=no", "maxmemory-policy=volatile-ttl"}, ""},
		{"CONFIG forbidden", []string{"--rename-command", "CONFIG", ""}, nil, "refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opt, _ := redis.ParseURL(redistest.StartServer(t, tc.args...))
			rdb := redis.NewClient(opt)
			defer rdb.Close()
			got, err := redisstore.CheckDurability(context.Background(), rdb)
			if err != nil {
				t.Fatalf("CheckDurability(%v) = %v, want nil", tc.args, err)
			}
			var risks []string
			for _, r := range got.Risks {
				risks = append(risks, r.Setting+"="+r.Value)
				if r.Loss == "" || r.Want == "" || r.Node != opt.Addr {
					t.Errorf("risk %+v: want the node %s, the safe value and what can be lost", r, opt.Addr)
				}
			}
			if strings.Join(risks, " ") != strings.Join(tc.wantRisks, " ") {
				t.Errorf("CheckDurability(%v) risks %v, want %v", tc.args, risks, tc.wantRisks)
			}
			if (tc.wantUnchecked == "") != (got.Unchecked == "") || !strings.Contains(got.Unchecked, tc.wantUnchecked) {
				t.Errorf("CheckDurability(%v) unchecked %q, want %q", tc.args, got.Unchecked, tc.wantUnchecked)
			}
		})
	}
}

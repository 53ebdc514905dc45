package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// CommandCalls returns how often each command has run on rdb's server
// since it started, from INFO commandstats, which counts the commands that
// scripts run too. INFO's own calls are left out. INFO is server-wide:
// tests that measure with it must not run beside others on that server.
func CommandCalls(ctx context.Context, rdb redis.UniversalClient) (map[string]int64, error) {
	stats, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range strings.Lines(stats) {
		// cmdstat_get:calls=3,usec=10,...
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("commandstats line %q: %w", line, err)
		}
		if name = strings.TrimPrefix(name, "cmdstat_"); name != "info" {
			out[name] = n
		}
	}
	return out, nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/boomerang-dev/boomerang/config"
	"github.com/redis/go-redis/v9"
)

// openRedis connects to the configured Redis (one server, a cluster, or a
// master behind Sentinels), or starts the embedded one.
func openRedis(ctx context.Context, cfg *config.Config, stdout io.Writer, log *slog.Logger) (redis.UniversalClient, func(), error) {
	if cfg.Embedded() {
		return openEmbedded(cfg, stdout, log)
	}
	rdb, err := newRedisClient(*cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("BOOMERANG_REDIS_URL: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		err := rdb.Ping(pctx).Err()
		if err == nil {
			break
		}
		if pctx.Err() != nil {
			rdb.Close()
			return nil, nil, fmt.Errorf("redis at BOOMERANG_REDIS_URL does not answer: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	warnDurability(ctx, rdb, log)
	return rdb, func() { rdb.Close() }, nil
}

// newRedisClient makes the client the configuration names. Its pool holds
// a connection per concurrent task and per partition's blocking pop.
func newRedisClient(cfg config.Config) (redis.UniversalClient, error) {
	pool := cfg.Concurrency + cfg.Partitions + 20
	// RESP2: Boomerang uses no RESP3 feature, and go-redis checks every
	// RESP3 connection for pending push messages before each command.
	const protocol = 2
	switch {
	case cfg.RedisCluster:
		opt, err := redis.ParseClusterURL(cfg.RedisURL)
		if err != nil {
			return nil, err
		}
		opt.PoolSize, opt.Protocol = max(opt.PoolSize, pool), protocol
		// go-redis keeps sending a failed master's slots to it until its
		// slot map reloads (default: every 60 s); reload every second, so a
		// failover costs seconds, not a minute.
		opt.ClusterStateReloadInterval = time.Second
		return redis.NewClusterClient(opt), nil
	case cfg.RedisSentinelMaster != "":
		opt, err := redis.ParseFailoverURL(cfg.RedisURL)
		if err != nil {
			return nil, err
		}
		opt.MasterName = cfg.RedisSentinelMaster
		opt.PoolSize, opt.Protocol = max(opt.PoolSize, pool), protocol
		return redis.NewFailoverClient(opt), nil
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, err
	}
	opt.PoolSize, opt.Protocol = max(opt.PoolSize, pool), protocol
	return redis.NewClient(opt), nil
}

func openEmbedded(cfg *config.Config, stdout io.Writer, log *slog.Logger) (redis.UniversalClient, func(), error) {
	mr := miniredis.NewMiniRedis()
	mr.ClockTTL(true) // without it keys with a TTL never expire
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, nil, fmt.Errorf("start embedded redis: %w", err)
	}
	banner := "WARNING: BOOMERANG_REDIS_URL is not set: running on an EMBEDDED IN-MEMORY Redis at " + mr.Addr() +
		". Nothing survives a restart. Set BOOMERANG_REDIS_URL for anything but a try-out."
	fmt.Fprintf(stdout, "\n*** %s ***\n\n", banner)
	log.Warn(banner)
	if cfg.AdminToken == "" {
		cfg.AdminToken = randomToken()
		fmt.Fprintln(stdout, "boomerang: BOOMERANG_ADMIN_TOKEN is not set: generated one (embedded mode only), shown below")
	}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), PoolSize: cfg.Concurrency + cfg.Partitions + 20, Protocol: 2})
	return rdb, func() { rdb.Close(); mr.Close() }, nil
}

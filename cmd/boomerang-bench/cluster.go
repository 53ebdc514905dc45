package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterMasters is the size of the --cluster cluster: redis-cli's minimum.
const clusterMasters = 3

// openCluster starts clusterMasters redis-servers with cluster mode on,
// joins them with `redis-cli --cluster create` (no replicas) and waits until
// every node says cluster_state:ok.
func openCluster(ctx context.Context, dir string) (*benchRedis, error) {
	server, err1 := exec.LookPath("redis-server")
	cli, err2 := exec.LookPath("redis-cli")
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("bench: --cluster needs redis-server and redis-cli on PATH (Debian/Ubuntu: sudo apt-get install redis-server): %w", err)
	}
	rs := &benchRedis{mode: fmt.Sprintf("private %d-master Redis Cluster", clusterMasters), cluster: true}
	for range clusterMasters {
		p, err := startClusterNode(ctx, server, dir)
		if err != nil {
			rs.close()
			return nil, err
		}
		rs.procs = append(rs.procs, p)
		rs.nodes = append(rs.nodes, redisNode{addr: p.addr, rdb: redis.NewClient(&redis.Options{Addr: p.addr}), pid: p.pid()})
	}
	if err := createCluster(ctx, cli, rs.addrs()); err != nil {
		rs.close()
		return nil, err
	}
	if err := waitClusterOK(ctx, rs.nodes, 30*time.Second); err != nil {
		rs.close()
		return nil, err
	}
	if err := rs.ready(ctx); err != nil {
		rs.close()
		return nil, err
	}
	return rs, nil
}

func startClusterNode(ctx context.Context, server, dir string) (*redisProc, error) {
	bus, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	// nodes.conf is relative to --dir, the node's own.
	return startRedisServer(ctx, server, dir, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "5000")
}

func createCluster(ctx context.Context, cli string, addrs []string) error {
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(cctx, cli, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("bench: redis-cli %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// waitClusterOK waits until every node sees all slots served.
func waitClusterOK(ctx context.Context, nodes []redisNode, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		bad := ""
		for _, n := range nodes {
			info, err := n.rdb.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				bad = n.addr
				break
			}
		}
		if bad == "" {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("bench: cluster not ok after %s: node %s", timeout, bad)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

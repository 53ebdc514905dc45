package main

// The idle phase: what the service and Redis cost while nothing happens.

import (
	"context"
	"math"
	"time"
)

// idleWarmup passes before an idle window opens, so that the window holds
// neither the end of the load nor the service's start-up.
const idleWarmup = 2 * time.Second

// cpuShare is CPU used over a window.
type cpuShare struct {
	Sec       float64 `json:"cpuSec"`
	Pct       float64 `json:"cpuPct"`       // % of one core
	SecPerMin float64 `json:"cpuSecPerMin"` // CPU-seconds per minute
}

func share(cpuSec, wallSec float64) cpuShare {
	if wallSec <= 0 {
		return cpuShare{}
	}
	return cpuShare{Sec: round3(cpuSec), Pct: round3(cpuSec / wallSec * 100), SecPerMin: round3(cpuSec / wallSec * 60)}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

type idleResult struct {
	Seconds float64  `json:"seconds"`
	Service cpuShare `json:"service"`
	Redis   cpuShare `json:"redis"` // all servers (masters) together
	// RedisCPUFrom is "/proc/<pid>/stat" for servers this process started,
	// "INFO cpu" for an external one.
	RedisCPUFrom string `json:"redisCpuFrom"`
	// RedisCmdsPerSec is INFO commandstats' calls per second, the commands
	// scripts run included and the bench's own INFO excluded.
	RedisCmdsPerSec          float64            `json:"redisCmdsPerSec"`
	RedisCmdsPerSecByCommand map[string]float64 `json:"redisCmdsPerSecByCommand"`
	MasterOpsPerSec          []float64          `json:"masterOpsPerSec,omitempty"`
	// Embedded is a service on its embedded Redis (miniredis in its own
	// process), measured as long, after the service above has stopped.
	Embedded *cpuShare `json:"embedded,omitempty"`
}

// idleSnap is what an idle window is measured from.
type idleSnap struct {
	at         time.Time
	service    float64
	redis      float64
	redisFrom  string
	calls      map[string]int64
	nodes      nodeLoad
	okService  bool
	okRedisCPU bool
}

func (b *bench) snapIdle(ctx context.Context, pid int) idleSnap {
	s := idleSnap{calls: b.rs.commandCalls(ctx), nodes: b.rs.nodeLoad(ctx)}
	s.redis, s.redisFrom, s.okRedisCPU = b.rs.redisCPU(ctx)
	s.service, s.okService = procCPUSeconds(pid)
	s.at = time.Now()
	return s
}

// idlePhase measures the running, idle service and Redis for --idle.
func (b *bench) idlePhase(ctx context.Context, svc *benchService) (idleResult, error) {
	if err := sleep(ctx, idleWarmup); err != nil {
		return idleResult{}, err
	}
	s0 := b.snapIdle(ctx, svc.pid())
	if err := sleep(ctx, b.f.Idle); err != nil {
		return idleResult{}, err
	}
	s1 := b.snapIdle(ctx, svc.pid())
	if err := svc.alive(); err != nil {
		return idleResult{}, err
	}
	wall := s1.at.Sub(s0.at).Seconds()
	res := idleResult{Seconds: round3(wall), RedisCPUFrom: s1.redisFrom, MasterOpsPerSec: s1.nodes.opsPerSec(s0.nodes)}
	if s0.okService && s1.okService {
		res.Service = share(s1.service-s0.service, wall)
	}
	if s0.okRedisCPU && s1.okRedisCPU {
		res.Redis = share(s1.redis-s0.redis, wall)
	}
	res.RedisCmdsPerSec, res.RedisCmdsPerSecByCommand = cmdsPerSec(s1.calls, s0.calls, wall)
	b.progress("  idle %.0fs: service %.3f%% of a core (%.3f CPU-s/min); redis %.3f%% (%.3f CPU-s/min, %s); %.1f redis commands/s",
		wall, res.Service.Pct, res.Service.SecPerMin, res.Redis.Pct, res.Redis.SecPerMin, res.RedisCPUFrom, res.RedisCmdsPerSec)
	return res, nil
}

// cmdsPerSec is the commands per second between two INFO commandstats, in
// all and by command, leaving out INFO (the bench's own).
func cmdsPerSec(after, before map[string]int64, wall float64) (float64, map[string]float64) {
	if after == nil || wall <= 0 {
		return 0, nil
	}
	by := map[string]float64{}
	var total int64
	for k, v := range after {
		if d := v - before[k]; d > 0 && k != "info" {
			total += d
			by[k] = math.Round(float64(d)/wall*100) / 100
		}
	}
	return math.Round(float64(total)/wall*100) / 100, by
}

// idleEmbedded starts a service with no Redis URL (it runs miniredis in its
// own process) and measures its CPU while idle for --idle.
func (b *bench) idleEmbedded(ctx context.Context) (cpuShare, error) {
	svc, err := startService(ctx, b.binary, nil)
	if err != nil {
		return cpuShare{}, err
	}
	defer svc.stop()
	if err := sleep(ctx, idleWarmup); err != nil {
		return cpuShare{}, err
	}
	t0 := time.Now()
	c0, ok0 := procCPUSeconds(svc.pid())
	if err := sleep(ctx, b.f.Idle); err != nil {
		return cpuShare{}, err
	}
	c1, ok1 := procCPUSeconds(svc.pid())
	if err := svc.alive(); err != nil {
		return cpuShare{}, err
	}
	if !ok0 || !ok1 {
		return cpuShare{}, nil
	}
	s := share(c1-c0, time.Since(t0).Seconds())
	b.progress("  idle embedded service: %.3f%% of a core (%.3f CPU-s/min)", s.Pct, s.SecPerMin)
	return s, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

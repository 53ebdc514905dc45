package faults

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
)

// TestClusterFailover runs the service on a Redis Cluster of 3 masters with
// a replica each (two with WAIT), submits jobs from 4 clients at a steady rate, and
// SIGKILLs the master that holds the most partitions. It checks that the
// service answers only 202 or 503 meanwhile (never a 500), that it
// recovers by itself, and reports what Redis's asynchronous replication
// lost: jobs answered 202 that never ran, because the master acknowledged
// them and died before its replica had them. The second run sets
// BOOMERANG_REDIS_WAIT_REPLICAS=1 (a WAIT before every 202) and reports its
// cost against the first run's latency, measured before the kill of each.
func TestClusterFailover(t *testing.T) {
	var base time.Duration
	for _, wait := range []string{"0", "1"} {
		t.Run("WAIT_REPLICAS="+wait, func(t *testing.T) {
			p50 := failover(t, wait)
			if wait == "0" {
				base = p50
			} else if base > 0 {
				t.Logf("WAIT 1 replica: submit p50 %v against %v without it (%.2f×)", p50, base, float64(p50)/float64(base))
			}
		})
	}
}

// failover runs one failover under load and returns the submit latency p50
// before the kill.
func failover(t *testing.T, waitReplicas string) time.Duration {
	ctx := context.Background()
	// With WAIT, a master needs a replica left after the failover to
	// acknowledge anything: two replicas each, so one remains.
	replicas := 1
	if waitReplicas != "0" {
		replicas = 2
	}
	c := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: replicas, AOF: true})
	rcv := newReceiver(t, nil, nil)
	svc := startService(t, map[string]string{
		"BOOMERANG_REDIS_URL":           c.URL(),
		"BOOMERANG_REDIS_CLUSTER":       "true",
		"BOOMERANG_REDIS_WAIT_REPLICAS": waitReplicas,
		"BOOMERANG_RATE_LIMIT":          "0",
		"BOOMERANG_RECOVER_AFTER":       "5s",
	})
	cl := svc.newClient("failover")
	rcv.setSecret(cl.SigningSecret)

	// The victim: the master holding the most partitions.
	masters, err := c.Masters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, tag := range redisstore.PartitionTags(16) {
		for _, m := range masters {
			if m.Owns(redisstore.Slot(tag)) {
				count[m.Addr]++
			}
		}
	}
	victim := masters[0].Addr
	for a, n := range count {
		if n > count[victim] {
			victim = a
		}
	}

	type result struct {
		at   time.Time
		took time.Duration
		code int
		id   string
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	start := time.Now()
	const duration, killAt = 20 * time.Second, 6 * time.Second
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for i := 0; time.Since(start) < duration; i++ {
				<-tick.C
				at := time.Now()
				code, id, _, err := svc.submit(cl.APIKey, rcv.url("/hook"), map[string]int{"n": i})
				if err != nil {
					code = -1
				}
				mu.Lock()
				results = append(results, result{at: at, took: time.Since(at), code: code, id: id})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(killAt)
	killed := time.Now()
	c.KillMaster(t, victim)
	c.WaitHealthy(t, 60*time.Second)
	healthy := time.Since(killed)
	wg.Wait()

	codes := map[int]int{}
	var accepted []string
	var before []time.Duration
	lastNon202 := time.Time{}
	for _, r := range results {
		codes[r.code]++
		if r.code == http.StatusAccepted {
			accepted = append(accepted, r.id)
			if r.at.Before(killed) {
				before = append(before, r.took)
			}
		} else if r.at.After(lastNon202) {
			lastNon202 = r.at
		}
	}
	for code, n := range codes {
		if code != http.StatusAccepted && code != http.StatusServiceUnavailable {
			t.Errorf("%d answers with status %d during the failover; want only 202 and 503", n, code)
		}
	}
	recovered := "no refusal"
	if !lastNon202.IsZero() {
		recovered = fmt.Sprintf("%v after the kill", lastNon202.Sub(killed).Round(10*time.Millisecond))
		if lastNon202.After(start.Add(duration - 2*time.Second)) {
			t.Errorf("the service still refused submissions %v after the kill: it did not recover by itself", lastNon202.Sub(killed))
		}
	}
	got := rcv.waitCoverage(accepted, 2*time.Minute)
	lost := len(accepted) - got
	sort.Slice(before, func(i, j int) bool { return before[i] < before[j] })
	p50 := time.Duration(0)
	if len(before) > 0 {
		p50 = before[len(before)/2]
	}
	t.Logf("WAIT_REPLICAS=%s: killed master %s (%d of 16 partitions); cluster healthy again %v after the kill; "+
		"answers %v; last refusal %s; %d accepted, %d delivered, %d lost (acknowledged by the dead master, not replicated); "+
		"submit p50 before the kill %v",
		waitReplicas, victim, count[victim], healthy.Round(10*time.Millisecond), codes, recovered, len(accepted), got, lost,
		p50.Round(10*time.Microsecond))
	if waitReplicas != "0" && lost > 0 {
		t.Errorf("with WAIT %s replica, %d accepted jobs were lost", waitReplicas, lost)
	}
	return p50
}

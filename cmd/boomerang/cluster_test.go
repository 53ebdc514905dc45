package main

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
)

// TestClusterEndToEnd runs the service on a real 3-master Redis Cluster
// (16 partitions, the default there) and goes through the whole flow:
// submit and deliver, retries, listings paged across partitions, single and
// bulk replay, idempotency, recovery of jobs whose ready hint was lost, and
// the spread of keys and traffic over the masters.
func TestClusterEndToEnd(t *testing.T) {
	testkit.Long(t)
	ctx := context.Background()
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	env := map[string]string{
		"BOOMERANG_REDIS_URL":          c.URL(),
		"BOOMERANG_REDIS_CLUSTER":      "true",
		"BOOMERANG_RETRY_INITIAL":      "200ms",
		"BOOMERANG_RETRY_MAX_INTERVAL": "1s",
		"BOOMERANG_RETRY_MAX_ATTEMPTS": "3",
		"BOOMERANG_DELIVERY_TIMEOUT":   "2s",
		"BOOMERANG_BREAKER_THRESHOLD":  "0",
		"BOOMERANG_RECOVER_AFTER":      "3s",
		"BOOMERANG_RATE_LIMIT":         "0",
	}
	top := t // services that outlive a subtest belong to the whole test
	svc := startService(t, env)
	svc.createClient("cluster")
	rcv := newReceiver(t)
	rdb := c.Client(t)

	t.Run("submit and deliver over every partition", func(t *testing.T) {
		var ids []string
		for i := 0; i < 160; i++ {
			ids = append(ids, svc.submit("echo", rcv.srv.URL+"/ok", map[string]int{"n": i}))
		}
		parts := map[int]bool{}
		for _, id := range ids {
			parts[partitionOf(id)] = true
			waitFor(t, "delivery of "+id, 20*time.Second, func() bool {
				j := svc.job(id)
				return j.Delivery != nil && j.Delivery.Status == "DELIVERED"
			})
		}
		if len(parts) < 12 {
			t.Errorf("160 jobs used %d of 16 partitions, want them spread", len(parts))
		}
		for _, g := range rcv.all() {
			verify(t, svc.secret, g)
		}
	})

	t.Run("retries", func(t *testing.T) {
		rcv.setFailOn(func(path string, seen int) bool { return path == "/flaky" && seen < 2 })
		id := svc.submit("echo", rcv.srv.URL+"/flaky", "x")
		waitFor(t, "flaky delivery", 20*time.Second, func() bool {
			j := svc.job(id)
			return j.Delivery != nil && j.Delivery.Status == "DELIVERED"
		})
		if j := svc.job(id); j.Delivery.Attempts != 3 {
			t.Errorf("flaky delivery took %d attempts, want 3", j.Delivery.Attempts)
		}
	})

	t.Run("listings page newest first across partitions", func(t *testing.T) {
		for _, path := range []string{"/admin/v1/jobs", "/admin/v1/deliveries"} {
			var all []string
			seen := map[string]bool{}
			cursor := ""
			for page := 0; page < 100; page++ {
				var p struct {
					Data []struct {
						ID        string `json:"id"`
						RequestID string `json:"requestId"`
						CreatedAt time.Time
					}
					NextCursor string
				}
				q := path + "?limit=7&clientId=" + svc.clientID
				if cursor != "" {
					q += "&cursor=" + cursor
				}
				if code, _ := svc.call("GET", q, svc.admin, nil, &p); code != http.StatusOK {
					t.Fatalf("GET %s: %d", q, code)
				}
				for _, d := range p.Data {
					id := d.ID
					if id == "" {
						id = d.RequestID
					}
					if seen[id] {
						t.Errorf("%s: %s listed twice", path, id)
					}
					seen[id] = true
					all = append(all, id)
				}
				if p.NextCursor == "" {
					break
				}
				cursor = p.NextCursor
			}
			if len(all) < 161 {
				t.Errorf("%s listed %d, want at least the 161 made", path, len(all))
			}
			if path == "/admin/v1/jobs" && !sort.SliceIsSorted(all, func(i, j int) bool { return all[i] > all[j] }) {
				t.Errorf("%s not newest first across partitions", path)
			}
		}
	})

	t.Run("single and bulk replay", func(t *testing.T) {
		rcv.setFailOn(func(path string, _ int) bool { return path == "/down" })
		var ids []string
		for i := 0; i < 6; i++ {
			ids = append(ids, svc.submit("echo", rcv.srv.URL+"/down", i))
		}
		for _, id := range ids {
			waitFor(t, "FAILED delivery of "+id, 20*time.Second, func() bool {
				j := svc.job(id)
				return j.Delivery != nil && j.Delivery.Status == "FAILED"
			})
		}
		rcv.setFailOn(func(string, int) bool { return false })
		if code, _ := svc.call("POST", "/admin/v1/deliveries/msg_"+strings.TrimPrefix(ids[0], "req_")+"/replay", svc.admin, nil, nil); code != http.StatusAccepted {
			t.Fatalf("replay: %d", code)
		}
		var rep struct {
			ReplayID string
			Matched  int
		}
		if code, _ := svc.call("POST", "/admin/v1/deliveries/replay", svc.admin, map[string]any{"status": "FAILED", "clientId": svc.clientID}, &rep); code != http.StatusAccepted || rep.Matched != 5 {
			t.Fatalf("bulk replay: %d, matched %d; want 202 and 5", code, rep.Matched)
		}
		for _, id := range ids {
			waitFor(t, "replayed delivery of "+id, 20*time.Second, func() bool { return svc.job(id).Delivery.Status == "DELIVERED" })
		}
	})

	t.Run("idempotency", func(t *testing.T) {
		body := map[string]any{"type": "echo", "payload": 1, "callbackUrl": rcv.srv.URL + "/ok"}
		var a, b struct{ RequestID string }
		svc.call("POST", "/v1/jobs", svc.apiKey, body, &a, "Idempotency-Key", "cluster-key")
		code, _ := svc.call("POST", "/v1/jobs", svc.apiKey, body, &b, "Idempotency-Key", "cluster-key")
		if code != http.StatusAccepted || a.RequestID == "" || a.RequestID != b.RequestID {
			t.Errorf("same key twice: %d, ids %q and %q; want one job", code, a.RequestID, b.RequestID)
		}
		body["payload"] = 2
		if code, _ := svc.call("POST", "/v1/jobs", svc.apiKey, body, nil, "Idempotency-Key", "cluster-key"); code != http.StatusConflict {
			t.Errorf("same key, another body: %d, want 409", code)
		}
	})

	t.Run("recovery runs jobs whose ready hint was lost", func(t *testing.T) {
		// An API-only replica submits; nothing pops its hints before they
		// are dropped, so only the recovery schedule can run these jobs.
		apiEnv := map[string]string{"BOOMERANG_ROLE": "api"}
		for k, v := range env {
			apiEnv[k] = v
		}
		api := startService(t, apiEnv)
		api.apiKey, api.secret = svc.apiKey, svc.secret
		svc.stop() // the only worker, for now
		var ids []string
		for i := 0; i < 20; i++ {
			ids = append(ids, api.submit("echo", rcv.srv.URL+"/ok", i))
		}
		dropped := 0
		for _, tag := range redisstore.PartitionTags(16) {
			n, _ := rdb.Del(ctx, "bmr:{"+tag+"}:ready").Result()
			dropped += int(n)
		}
		if dropped == 0 {
			t.Fatal("no ready list to drop")
		}
		svc2 := startService(top, env) // a worker again
		svc2.apiKey = svc.apiKey
		for _, id := range ids {
			waitFor(t, "recovered job "+id, 30*time.Second, func() bool {
				j := svc2.job(id)
				return j.Delivery != nil && j.Delivery.Status == "DELIVERED"
			})
		}
		svc = svc2
	})

	t.Run("3 000 jobs spread over the masters", func(t *testing.T) {
		before, err := c.CommandsPerMaster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var ids []string
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 375; i++ {
					id := svc.submit("echo", rcv.srv.URL+"/ok", i)
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		waitFor(t, "3 000 webhooks", 2*time.Minute, func() bool { return len(rcv.all()) >= 3000 })
		keys, err := c.KeysPerMaster(ctx, "bmr:*")
		if err != nil {
			t.Fatal(err)
		}
		after, _ := c.CommandsPerMaster(ctx)
		total, cmds := 0, int64(0)
		for _, n := range keys {
			total += n
		}
		for m, n := range after {
			cmds += n - before[m]
		}
		for m, n := range keys {
			share := float64(n) / float64(total)
			cshare := float64(after[m]-before[m]) / float64(cmds)
			t.Logf("master %s: %d of %d keys (%.0f %%), %.0f %% of the commands", m, n, total, 100*share, 100*cshare)
			if share < 0.20 || share > 0.47 {
				t.Errorf("master %s holds %.0f %% of Boomerang's keys, want 20–47 %%", m, 100*share)
			}
			if cshare < 0.10 {
				t.Errorf("master %s served %.0f %% of the commands: the queues are not spread", m, 100*cshare)
			}
		}
	})
}

func partitionOf(id string) int { return ids.Partition(id) }

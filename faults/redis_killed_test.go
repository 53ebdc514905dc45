package faults

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Phases of TestRedisKilled, as a submitter sees them.
const (
	phaseUp   = iota // before the kill
	phaseDown        // redis-server is dead (after the kill was confirmed, before the restart began)
	phaseBack        // restart under way or done
)

// TestRedisKilled SIGKILLs the test's redis-server (AOF, appendfsync
// always) while submitters keep POSTing, restarts it on the same port and
// directory, and checks: no 202 and only problem+json 503s while Redis is
// down, /readyz 503, the service reconnects by itself, and every job that
// got a 202 is delivered.
func TestRedisKilled(t *testing.T) {
	t.Parallel()
	start := time.Now()
	const submitters, maxPerSubmitter = 4, 5000

	rds := startRedis(t, aof...)
	rcv := newReceiver(t, nil, nil)
	svc := startService(t, map[string]string{"BOOMERANG_REDIS_URL": rds.url(), "BOOMERANG_CONCURRENCY": "20"})
	cl := svc.newClient("redis-killed")
	rcv.setSecret(cl.SigningSecret)

	var phase atomic.Int32
	type outcome struct {
		from, to int32
		code     int
		ctype    string
		id       string
		err      error
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	t.Cleanup(func() { stop.Store(true); wg.Wait() }) // before the service stops
	for w := 0; w < submitters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < maxPerSubmitter && !stop.Load(); i++ {
				from := phase.Load()
				code, id, ctype, err := svc.submit(cl.APIKey, rcv.url("/redis"), map[string]int{"w": w, "n": i})
				o := outcome{from: from, to: phase.Load(), code: code, ctype: ctype, id: id, err: err}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}

	time.Sleep(2 * time.Second)
	rds.kill()
	killed := time.Now()
	phase.Store(phaseDown)
	readyCodes := map[int]int{}
	for i := 0; i < 6; i++ { // 3 s down, /readyz asked every 500 ms
		time.Sleep(500 * time.Millisecond)
		code, _, err := svc.call("GET", "/readyz", "", nil, nil)
		if err != nil {
			t.Errorf("GET /readyz while Redis is down: %v", err)
		}
		readyCodes[code]++
	}
	phase.Store(phaseBack)
	if err := rds.start(); err != nil {
		t.Fatalf("restart redis-server: %v", err)
	}
	redisBack := time.Now()
	var readyAfter time.Duration
	ready := false
	for i := 0; i < 300 && !ready; i++ {
		if code, _, _ := svc.call("GET", "/readyz", "", nil, nil); code == http.StatusOK {
			readyAfter, ready = time.Since(redisBack), true
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ready {
		t.Errorf("/readyz not 200 within 30s of Redis coming back")
	}
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()

	if readyCodes[http.StatusServiceUnavailable] != 6 {
		t.Errorf("/readyz while Redis was down answered %v, want 503 every time", readyCodes)
	}
	var accepted []string
	names := [...]string{phaseUp: "up", phaseDown: "down", phaseBack: "back"}
	codes := map[string]map[string]int{} // phase asked→answered (one name if the same) → status → count
	downRequests, down503, total503, during500 := 0, 0, 0, 0
	for _, o := range outcomes {
		key := fmt.Sprint(o.code)
		if o.err != nil {
			key = "error"
		}
		window := names[o.from]
		if o.to != o.from {
			window += "→" + names[o.to]
		}
		if codes[window] == nil {
			codes[window] = map[string]int{}
		}
		codes[window][key]++
		if key == "503" {
			total503++
		}
		if o.code == http.StatusAccepted && o.err == nil {
			accepted = append(accepted, o.id)
		}
		if o.from == phaseDown && o.to == phaseDown { // asked and answered while Redis was dead
			downRequests++
			switch {
			case o.err != nil:
				t.Errorf("submit while Redis was down: %v", o.err)
			case o.code == http.StatusAccepted:
				t.Errorf("202 for %s while Redis was down", o.id)
			case o.code != http.StatusServiceUnavailable || !strings.HasPrefix(o.ctype, "application/problem+json"):
				t.Errorf("while Redis was down: status %d, Content-Type %q; want 503 application/problem+json", o.code, o.ctype)
			default:
				down503++
			}
		} else if o.code == http.StatusInternalServerError && o.to == phaseBack && o.err == nil {
			during500++ // explained below, or an error
		} else if o.err != nil || (o.code != http.StatusAccepted && o.code != http.StatusServiceUnavailable) {
			t.Errorf("submit in phase %s: status %d, error %v; want 202 or 503", window, o.code, o.err)
		}
	}
	t.Logf("answers by phase (asked→answered): %v; /readyz while down: %v; ready %v after Redis came back",
		codes, readyCodes, readyAfter.Round(time.Millisecond))
	if during500 > 0 {
		// While redis-server loads its AOF it answers "LOADING ..."; the API
		// must answer 503 then, never 500.
		t.Errorf("%d × 500 after Redis came back, want 503 while it loads", during500)
	}

	st := waitSettled(svc, rcv, cl.APIKey, accepted, 4*time.Minute)
	covered, arrived, views := st.covered, st.arrived, st.views
	lost, dups := dedupReport(t, rcv, accepted, views)
	if lost != 0 || covered != len(accepted) {
		t.Errorf("lost %d of %d jobs that got a 202", lost, len(accepted))
	}

	// A write can land although its reply was lost with Redis: Submit then
	// answers 503 for a job that is stored (ACCEPTED without a task, until
	// the recovery sweep runs it) or even enqueued. List what Redis holds
	// beyond the 202s.
	phantoms := listPhantoms(t, svc, cl.ID, accepted)
	unexpected := len(requestIDs(rcv)) - rcv.coverage(accepted)
	t.Logf("redis killed: %d × 202, %d × 503 (%d requests while down, all 503: %d), lost=%d, duplicates=%d, "+
		"%d × 500 while Redis loaded its AOF, stored without a 202: %v, webhooks for requests that got no 202: %d; "+
		"all arrived %v after the restart of Redis (%v after the kill), all shown DELIVERED %v after the restart; elapsed %v",
		len(accepted), total503, downRequests, down503, lost, dups, during500, phantoms, unexpected,
		arrived.Sub(redisBack).Round(time.Millisecond), arrived.Sub(killed).Round(time.Millisecond),
		st.recorded.Sub(redisBack).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// listPhantoms lists, through the admin API, the client's jobs that are
// not among accepted, by status.
func listPhantoms(t *testing.T, svc *service, clientID string, accepted []string) map[string][]string {
	t.Helper()
	ok := map[string]bool{}
	for _, id := range accepted {
		ok[id] = true
	}
	out := map[string][]string{}
	cursor := ""
	for page := 0; page < 1000; page++ {
		var p struct {
			Data []struct {
				RequestID string `json:"requestId"`
				Status    string `json:"status"`
			} `json:"data"`
			NextCursor string `json:"nextCursor"`
		}
		code, _, err := svc.call("GET", "/admin/v1/jobs?limit=500&clientId="+clientID+"&cursor="+cursor, adminToken, nil, &p)
		if err != nil || code != http.StatusOK {
			t.Errorf("list jobs: status %d, error %v", code, err)
			return out
		}
		for _, j := range p.Data {
			if !ok[j.RequestID] {
				out[j.Status] = append(out[j.Status], j.RequestID)
			}
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	for _, ids := range out {
		sort.Strings(ids)
	}
	return out
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
)

// The work done anywhere, end to end on real Redis and real processes'
// code (run): two API replicas and a worker-only process, an external
// worker speaking HTTP, an async upstream completing through its token, a
// slow Go processor (an HTTP-forwarding type), and a real receiver.

// startWorkerOnly runs a BOOMERANG_ROLE=worker process through run().
func startWorkerOnly(t *testing.T, env map[string]string) *service {
	t.Helper()
	vars := map[string]string{"BOOMERANG_ROLE": "worker", "BOOMERANG_ADMIN_TOKEN": testAdminToken,
		"BOOMERANG_ALLOW_PRIVATE_CALLBACKS": "true", "BOOMERANG_LOG_FORMAT": "json", "BOOMERANG_SHUTDOWN_TIMEOUT": "5s",
		"BOOMERANG_TASK_CHECK_INTERVAL": "50ms"}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		s.done <- run(ctx, []string{"boomerang", "serve"}, func(k string) string { return vars[k] }, s.stdout, s.stderr)
	}()
	waitFor(t, "the worker to start", 15*time.Second, func() bool {
		select {
		case err := <-s.done:
			t.Fatalf("worker returned: %v\n%s\n%s", err, s.stdout, s.stderr)
		default:
		}
		return strings.Contains(s.stdout.String(), "worker running")
	})
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("worker log:\n%s", s.stderr)
		}
	})
	return s
}

// sseEvent is one server-sent event.
type sseEvent struct {
	id   int
	name string
	data string
}

// stream reads a job's events from a replica until the final event, the
// stream's end, or stopAfter events; it returns what it read.
func stream(t *testing.T, s *service, id string, lastEventID string, stopAfter int) []sseEvent {
	t.Helper()
	req, _ := http.NewRequest("GET", s.base+"/v1/jobs/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+s.apiKey)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("events: %d %q %s", resp.StatusCode, ct, b)
	}
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" {
				out = append(out, cur)
				if strings.HasPrefix(cur.name, "job.") || len(out) == stopAfter {
					return out
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id, _ = strconv.Atoi(line[4:])
		case strings.HasPrefix(line, "event: "):
			cur.name = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data += line[6:]
		}
	}
	return out
}

// upstreamLog records what an upstream was asked.
type upstreamLog struct {
	mu       sync.Mutex
	bodies   map[string]map[string]any // requestId → body (async)
	canceled map[string]time.Time      // requestId → when its request was canceled (slow)
	started  map[string]bool
}

func TestWorkAnywhere(t *testing.T) {
	t.Logf("redis: %s", redistest.Kind())
	log := &upstreamLog{bodies: map[string]map[string]any{}, canceled: map[string]time.Time{}, started: map[string]bool{}}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("Boomerang-Request-Id")
		switch r.URL.Path {
		case "/approve": // accepts; a person completes later
			var body map[string]any
			_ = json.NewDecoder(r.Body).Decode(&body)
			log.mu.Lock()
			log.bodies[id] = body
			log.mu.Unlock()
			w.WriteHeader(http.StatusAccepted)
		case "/slow": // holds the request until Boomerang gives up on it
			// Read the body: only then does the server watch the connection
			// and cancel r.Context() when the client goes.
			_, _ = io.Copy(io.Discard, r.Body)
			log.mu.Lock()
			log.started[id] = true
			log.mu.Unlock()
			<-r.Context().Done()
			log.mu.Lock()
			log.canceled[id] = time.Now()
			log.mu.Unlock()
		}
	}))
	t.Cleanup(upstream.Close)
	rcv := newReceiver(t)

	env := map[string]string{
		"BOOMERANG_REDIS_URL":      redistest.URL(t),
		"BOOMERANG_JOB_EXTERNAL":   "transcode",
		"BOOMERANG_JOB_HTTP":       "slow=" + upstream.URL + "/slow",
		"BOOMERANG_JOB_HTTP_ASYNC": "approve=" + upstream.URL + "/approve",
		"BOOMERANG_ROLE":           "api",
	}
	a := startService(t, env)
	b := startService(t, env)
	workerEnv := map[string]string{"BOOMERANG_PUBLIC_URL": a.base}
	for k, v := range env {
		if k != "BOOMERANG_ROLE" {
			workerEnv[k] = v
		}
	}
	startWorkerOnly(t, workerEnv)
	a.createClient("anywhere")
	b.apiKey, b.secret, b.clientID = a.apiKey, a.secret, a.clientID

	var wk struct{ ID, WorkerKey string }
	if code, _ := a.call("POST", "/admin/v1/workers", a.admin, map[string]any{"name": "e2e", "types": []string{"transcode"}}, &wk); code != 201 || !strings.HasPrefix(wk.WorkerKey, "bmw_") {
		t.Fatalf("create worker: %d %+v", code, wk)
	}
	type claim struct {
		RequestID, Type, LeaseID string
		Payload                  json.RawMessage
		Attempt                  int
	}
	claimOne := func(s *service) claim {
		t.Helper()
		var c claim
		code, _ := s.call("POST", "/v1/worker/claim", wk.WorkerKey, map[string]any{"types": []string{"transcode"}, "waitSeconds": 5, "leaseSeconds": 30}, &c)
		if code != 200 {
			t.Fatalf("claim: %d", code)
		}
		return c
	}
	webhook := func(id string) map[string]any {
		t.Helper()
		var got []received
		waitFor(t, "the webhook of "+id, 10*time.Second, func() bool { got = rcv.byID("msg_" + strings.TrimPrefix(id, "req_")); return len(got) > 0 })
		verify(t, a.secret, got[0])
		var body map[string]any
		if err := json.Unmarshal(got[0].body, &body); err != nil {
			t.Fatal(err)
		}
		return body
	}

	t.Run("external worker, events through the other replica, resumed", func(t *testing.T) {
		id := a.submit("transcode", rcv.srv.URL+"/hook", json.RawMessage(`{"n":12345678901234567890}`))
		// Follow it from B; stop after the progress event, as if the
		// connection dropped.
		first := make(chan []sseEvent)
		go func() { first <- stream(t, b, id, "", 3) }()
		time.Sleep(200 * time.Millisecond) // the stream is watching
		c := claimOne(a)
		if c.RequestID != id || string(c.Payload) != `{"n":12345678901234567890}` || c.Attempt != 1 {
			t.Fatalf("claim = %+v", c)
		}
		if code, _ := a.call("POST", "/v1/worker/jobs/"+id+"/heartbeat", wk.WorkerKey, map[string]any{"leaseId": c.LeaseID, "progress": map[string]any{"percent": 42, "message": "encoding"}}, nil); code != 200 {
			t.Fatalf("heartbeat: %d", code)
		}
		got := <-first
		names := []string{}
		for _, e := range got {
			names = append(names, e.name)
		}
		if strings.Join(names, ",") != "status,status,progress" || !strings.Contains(got[2].data, `"percent":42`) {
			t.Fatalf("first connection got %v: %+v", names, got)
		}
		for i := 1; i < len(got); i++ {
			if got[i].id <= got[i-1].id {
				t.Errorf("event ids not increasing: %+v", got)
			}
		}
		// While nobody listens, the job completes.
		if code, _ := a.call("POST", "/v1/worker/jobs/"+id+"/complete", wk.WorkerKey, map[string]any{"leaseId": c.LeaseID, "result": json.RawMessage(`{"out":12345678901234567890}`)}, nil); code != 200 {
			t.Fatalf("complete: %d", code)
		}
		rest := stream(t, b, id, strconv.Itoa(got[2].id), 0)
		if len(rest) != 1 || rest[0].name != "job.completed" || rest[0].id != got[2].id+1 {
			t.Fatalf("resumed after %d: %+v, want exactly the final event %d", got[2].id, rest, got[2].id+1)
		}
		if !strings.Contains(rest[0].data, `"result":{"out":12345678901234567890}`) {
			t.Errorf("final event lost the result's exact value: %s", rest[0].data)
		}
		body := webhook(id)
		if body["type"] != "job.completed" {
			t.Errorf("webhook %v", body)
		}
		// The SSE final event is the webhook, byte for byte.
		if wb := rcv.byID("msg_" + strings.TrimPrefix(id, "req_"))[0].body; string(wb) != rest[0].data {
			t.Errorf("final event data\n%s\n!= webhook body\n%s", rest[0].data, wb)
		}
	})

	t.Run("async completion through the token", func(t *testing.T) {
		id := a.submit("approve", rcv.srv.URL+"/hook", json.RawMessage(`{"doc":7}`))
		var body map[string]any
		waitFor(t, "the upstream to get the job", 10*time.Second, func() bool {
			log.mu.Lock()
			defer log.mu.Unlock()
			body = log.bodies[id]
			return body != nil
		})
		url, _ := body["completionUrl"].(string)
		if !strings.HasPrefix(url, a.base+"/v1/completions/") || body["deadline"] == nil || body["requestId"] != id {
			t.Fatalf("upstream got %v", body)
		}
		if j := a.job(id); j.Status != "PROCESSING" {
			t.Fatalf("accepted job is %s, want PROCESSING", j.Status)
		}
		post := func() int {
			resp, err := http.Post(url, "application/json", strings.NewReader(`{"result":{"approved":true}}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := post(); code != 200 {
			t.Fatalf("completion: %d", code)
		}
		if code := post(); code != 409 {
			t.Errorf("second use of the token: %d, want 409", code)
		}
		wb := webhook(id)
		if data, _ := wb["data"].(map[string]any); wb["type"] != "job.completed" || data["result"] == nil {
			t.Errorf("webhook %v", wb)
		}
		token := url[strings.LastIndex(url, "/")+1:]
		for _, s := range []*service{a, b} {
			if strings.Contains(s.stderr.String(), token) {
				t.Errorf("the completion token appears in a log")
			}
		}
	})

	// ends runs one job of each kind to an end (cancel or deadline) and
	// checks its effects.
	type kind struct{ name, typ string }
	kinds := []kind{{"Go processor", "slow"}, {"external worker", "transcode"}, {"async upstream", "approve"}}
	start := func(t *testing.T, k kind, deadline *time.Time) (id, leaseID, completionURL string) {
		body := map[string]any{"type": k.typ, "payload": 1, "callbackUrl": rcv.srv.URL + "/hook"}
		if deadline != nil {
			body["deadline"] = deadline.Format(time.RFC3339Nano)
		}
		var r struct{ RequestID string }
		if code, _ := a.call("POST", "/v1/jobs", a.apiKey, body, &r); code != 202 {
			t.Fatalf("submit %s: %d", k.typ, code)
		}
		id = r.RequestID
		switch k.typ {
		case "slow":
			waitFor(t, "the slow upstream to get "+id, 10*time.Second, func() bool { log.mu.Lock(); defer log.mu.Unlock(); return log.started[id] })
		case "transcode":
			c := claimOne(a)
			if c.RequestID != id {
				t.Fatalf("claimed %s, want %s", c.RequestID, id)
			}
			leaseID = c.LeaseID
		case "approve":
			waitFor(t, "the approval upstream to get "+id, 10*time.Second, func() bool {
				log.mu.Lock()
				defer log.mu.Unlock()
				if b := log.bodies[id]; b != nil {
					completionURL, _ = b["completionUrl"].(string)
				}
				return completionURL != ""
			})
		}
		return id, leaseID, completionURL
	}
	// stopped checks that whatever worked on the job was stopped.
	stopped := func(t *testing.T, k kind, id, leaseID, completionURL, problem string, after time.Time) {
		switch k.typ {
		case "slow":
			waitFor(t, "the Go processor of "+id+" to stop", 5*time.Second, func() bool { log.mu.Lock(); defer log.mu.Unlock(); return !log.canceled[id].IsZero() })
			log.mu.Lock()
			took := log.canceled[id].Sub(after)
			log.mu.Unlock()
			t.Logf("Go processor stopped %v after the end", took)
			if took > 1500*time.Millisecond {
				t.Errorf("the processor stopped %v after the end, want within about 1 s", took)
			}
		case "transcode":
			var p struct{ Type string }
			for _, op := range []string{"heartbeat", "complete"} {
				code, _ := a.call("POST", "/v1/worker/jobs/"+id+"/"+op, wk.WorkerKey, map[string]any{"leaseId": leaseID, "result": 1}, &p)
				if op == "heartbeat" {
					code, _ = a.call("POST", "/v1/worker/jobs/"+id+"/"+op, wk.WorkerKey, map[string]any{"leaseId": leaseID}, &p)
				}
				if code != 409 || !strings.HasSuffix(p.Type, "/"+problem) {
					t.Errorf("%s after the end: %d %s, want 409 %s", op, code, p.Type, problem)
				}
			}
		case "approve":
			resp, err := http.Post(completionURL, "application/json", strings.NewReader(`{"result":1}`))
			if err != nil {
				t.Fatal(err)
			}
			var p struct{ Type string }
			_ = json.NewDecoder(resp.Body).Decode(&p)
			resp.Body.Close()
			if resp.StatusCode != 409 || !strings.HasSuffix(p.Type, "/"+problem) {
				t.Errorf("completion URL after the end: %d %s, want 409 %s", resp.StatusCode, p.Type, problem)
			}
		}
	}

	t.Run("cancel", func(t *testing.T) {
		for _, k := range kinds {
			t.Run(k.name, func(t *testing.T) {
				id, leaseID, url := start(t, k, nil)
				var j jobState
				at := time.Now()
				if code, _ := b.call("POST", "/v1/jobs/"+id+"/cancel", b.apiKey, nil, &j); code != 200 || j.Status != "CANCELED" {
					t.Fatalf("cancel: %d %s", code, j.Status)
				}
				if code, _ := a.call("POST", "/v1/jobs/"+id+"/cancel", a.apiKey, nil, nil); code != 409 {
					t.Errorf("second cancel: %d, want 409", code)
				}
				stopped(t, k, id, leaseID, url, "job-canceled", at)
				if wb := webhook(id); wb["type"] != "job.canceled" {
					t.Errorf("webhook type %v, want job.canceled", wb["type"])
				}
			})
		}
	})

	t.Run("deadline", func(t *testing.T) {
		deadline := time.Now().Add(2500 * time.Millisecond)
		type started struct {
			k                        kind
			id, leaseID, completeURL string
		}
		var all []started
		for _, k := range kinds {
			id, leaseID, url := start(t, k, &deadline)
			all = append(all, started{k, id, leaseID, url})
		}
		for _, s := range all {
			t.Run(s.k.name, func(t *testing.T) {
				wb := webhook(s.id)
				data, _ := wb["data"].(map[string]any)
				ended, _ := time.Parse(time.RFC3339Nano, data["completedAt"].(string))
				late := ended.Sub(deadline.Truncate(time.Millisecond)) // deadlines are kept to the millisecond
				t.Logf("%s expired %v after its deadline", s.k.name, late)
				if wb["type"] != "job.expired" || data["status"] != "EXPIRED" || late < 0 || late > time.Second {
					t.Errorf("webhook %v, %v after the deadline; want job.expired within 1 s", wb["type"], late)
				}
				stopped(t, s.k, s.id, s.leaseID, s.completeURL, "job-expired", deadline)
			})
		}
	})

	// Logs carry no token and no worker key.
	keyRE := regexp.MustCompile(`bmw_[A-Za-z0-9_-]{20,}`)
	for _, s := range []*service{a, b} {
		if keyRE.MatchString(s.stderr.String()) || keyRE.MatchString(s.stdout.String()) {
			t.Error("a worker key appears in the output")
		}
	}
}

package handlers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
)

// sseEvent is one server-sent event, or a comment line.
type sseEvent struct {
	ID, Name, Data string
	Comment        string
}

func (e sseEvent) String() string {
	if e.Comment != "" {
		return ":" + e.Comment
	}
	return e.ID + " " + e.Name + " " + e.Data
}

// sseStream is an open GET /v1/jobs/{id}/events, read by its own goroutine.
type sseStream struct {
	events chan sseEvent // closes when the server ends the stream
	cancel context.CancelFunc
}

// openStream opens a job's event stream on srv as client A, with a
// Last-Event-ID unless lastID is "".
func openStream(t *testing.T, srv *httptest.Server, id, lastID string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/jobs/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+keyA)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET events: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-cache" {
		resp.Body.Close()
		t.Fatalf("GET events: %d, Content-Type %q, Cache-Control %q; want 200 text/event-stream, no-cache",
			resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	st := &sseStream{events: make(chan sseEvent, 64), cancel: cancel}
	go func() {
		defer close(st.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		var e sseEvent
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.Name != "" || len(data) > 0 {
					e.Data = strings.Join(data, "\n")
					st.events <- e
				}
				e, data = sseEvent{}, nil
			case strings.HasPrefix(line, ":"):
				st.events <- sseEvent{Comment: strings.TrimSpace(line[1:])}
			case strings.HasPrefix(line, "id: "):
				e.ID = line[len("id: "):]
			case strings.HasPrefix(line, "event: "):
				e.Name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				data = append(data, line[len("data: "):])
			default:
				st.events <- sseEvent{Name: "!unparsed", Data: line}
			}
		}
	}()
	return st
}

// next returns the next event (comments skipped), failing after a second.
func (st *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	deadline := time.After(time.Second)
	for {
		select {
		case e, ok := <-st.events:
			if !ok {
				t.Fatal("the stream ended; want one more event")
			}
			if e.Comment == "" {
				return e
			}
		case <-deadline:
			t.Fatal("no event within 1 s")
		}
	}
}

// closed fails unless the server ends the stream within a second, with no
// event before.
func (st *sseStream) closed(t *testing.T) {
	t.Helper()
	deadline := time.After(time.Second)
	for {
		select {
		case e, ok := <-st.events:
			if !ok {
				return
			}
			if e.Comment == "" {
				t.Fatalf("event %v after the final event; want the stream closed", e)
			}
		case <-deadline:
			t.Fatal("the stream is still open 1 s after the final event")
		}
	}
}

// wantEvent checks an event's name and that its id follows prev (prev < 0:
// any id), and returns its id and its data as an object.
func wantEvent(t *testing.T, e sseEvent, name string, prev int) (int, map[string]any) {
	t.Helper()
	id, err := strconv.Atoi(e.ID)
	if e.Name != name || err != nil || (prev >= 0 && id <= prev) {
		t.Fatalf("event %v; want %s with a numeric id above %d", e, name, prev)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(e.Data), &m); err != nil {
		t.Fatalf("event %v: data is not one JSON object: %v", e, err)
	}
	return id, m
}

// TestEventStream follows an external job live through the real handler
// on a real server: a status snapshot, the claim, the progress, the end
// with the webhook body, then the server closes the stream.
func TestEventStream(t *testing.T) {
	w := newWorkEnv(t)
	srv := httptest.NewServer(w.handler())
	t.Cleanup(srv.Close) // after the streams end (cleanups run last first)
	_, key := w.createWorker(t, "transcoder", "transcode")
	id := w.submit(t, "transcode", `"payload":{"n":1}`, `"metadata":{"order":"42"}`)

	st := openStream(t, srv, id, "")
	n, status := wantEvent(t, st.next(t), "status", -1)
	if status["requestId"] != id || status["status"] != "ACCEPTED" || status["updatedAt"] == nil {
		t.Errorf("first event data %v; want the job %s ACCEPTED with updatedAt", status, id)
	}

	c := w.claim(t, key, transcodeClaim)
	n, status = wantEvent(t, st.next(t), "status", n)
	if status["status"] != "PROCESSING" || status["attempt"] != 1.0 {
		t.Errorf("event after the claim: %v; want PROCESSING attempt 1", status)
	}

	object(t, w.workerCall(t, key, id, "heartbeat", `{"leaseId":"`+c.LeaseID+`","progress":{"percent":50,"message":"half"}}`), http.StatusOK)
	n, progress := wantEvent(t, st.next(t), "progress", n)
	if progress["requestId"] != id || progress["percent"] != 50.0 || progress["message"] != "half" || progress["updatedAt"] == nil {
		t.Errorf("progress event %v; want 50 %% half with updatedAt", progress)
	}

	const result = `{"frames":12345678901234567890}`
	object(t, w.workerCall(t, key, id, "complete", `{"leaseId":"`+c.LeaseID+`","result":`+result+`}`), http.StatusOK)
	final := st.next(t)
	wantEvent(t, final, jobs.EventCompleted, n)
	d, err := w.store.GetDelivery(context.Background(), jobs.DeliveryID(id), false)
	if err != nil {
		t.Fatal(err)
	}
	if final.Data != string(d.Payload) {
		t.Errorf("final event data\n%s\nwant the webhook body\n%s", final.Data, d.Payload)
	}
	if !strings.Contains(final.Data, `"result":`+result) {
		t.Errorf("final event data %s does not carry the result %s byte for byte", final.Data, result)
	}
	s := loadSpec(t)
	var body any
	_ = json.Unmarshal([]byte(final.Data), &body)
	for _, e := range s.validate("final event", mapAt(s.doc, "components", "schemas", "WebhookEvent"), body) {
		t.Error(e)
	}
	st.closed(t)
}

// TestEventStreamResume: a client that lost its connection reconnects with
// Last-Event-ID and gets every event it missed, once, then the live ones.
func TestEventStreamResume(t *testing.T) {
	w := newWorkEnv(t)
	srv := httptest.NewServer(w.handler())
	t.Cleanup(srv.Close) // after the streams end (cleanups run last first)
	_, key := w.createWorker(t, "transcoder", "transcode")
	id := w.submit(t, "transcode")

	first := openStream(t, srv, id, "")
	n, _ := wantEvent(t, first.next(t), "status", -1)
	c := w.claim(t, key, transcodeClaim)
	n, _ = wantEvent(t, first.next(t), "status", n)
	first.cancel() // the connection drops

	for _, pct := range []int{10, 20} {
		w.clock.Advance(2 * time.Second) // each heartbeat is written: none coalesced
		object(t, w.workerCall(t, key, id, "heartbeat", `{"leaseId":"`+c.LeaseID+`","progress":{"percent":`+strconv.Itoa(pct)+`}}`), http.StatusOK)
	}

	again := openStream(t, srv, id, strconv.Itoa(n))
	for _, pct := range []float64{10, 20} {
		var p map[string]any
		n, p = wantEvent(t, again.next(t), "progress", n)
		if p["percent"] != pct {
			t.Errorf("resumed progress %v, want %v %%", p, pct)
		}
	}
	object(t, w.workerCall(t, key, id, "complete", `{"leaseId":"`+c.LeaseID+`","result":null}`), http.StatusOK)
	wantEvent(t, again.next(t), jobs.EventCompleted, n)
	again.closed(t)
}

// TestEventStreamKeepAlive: an idle stream gets comment lines.
func TestEventStreamKeepAlive(t *testing.T) {
	w := newWorkEnv(t)
	w.deps.KeepAlive = 50 * time.Millisecond
	srv := httptest.NewServer(w.handler())
	t.Cleanup(srv.Close) // after the streams end (cleanups run last first)
	id := w.submit(t, "transcode")

	st := openStream(t, srv, id, "")
	wantEvent(t, st.next(t), "status", -1)
	select {
	case e, ok := <-st.events:
		if !ok || e.Comment != "keepalive" {
			t.Errorf("after the status event, idle: %v (open %v); want the comment \": keepalive\"", e, ok)
		}
	case <-time.After(time.Second):
		t.Error("no keepalive comment within 1 s (KeepAlive 50 ms)")
	}
}

// TestEventStreamOfEndedJobs: a job that has ended gets its status and its
// final event at once, then the stream closes.
func TestEventStreamOfEndedJobs(t *testing.T) {
	w := newWorkEnv(t)
	srv := httptest.NewServer(w.handler())
	t.Cleanup(srv.Close) // after the streams end (cleanups run last first)
	_, key := w.createWorker(t, "transcoder", "transcode")

	completed := w.submit(t, "transcode")
	c := w.claim(t, key, transcodeClaim)
	object(t, w.workerCall(t, key, completed, "complete", `{"leaseId":"`+c.LeaseID+`","result":[1,2]}`), http.StatusOK)
	canceled := w.submit(t, "transcode")
	w.mustDo(t, post("/v1/jobs/"+canceled+"/cancel", ""), http.StatusOK)

	for _, tc := range []struct{ id, status, event string }{
		{completed, "COMPLETED", jobs.EventCompleted},
		{canceled, "CANCELED", jobs.EventCanceled},
	} {
		start := time.Now()
		st := openStream(t, srv, tc.id, "")
		last, body := wantEvent(t, st.next(t), tc.event, -1)
		if data, _ := body["data"].(map[string]any); body["type"] != tc.event || data["requestId"] != tc.id || data["status"] != tc.status {
			t.Errorf("%s: final event data %v; want the %s webhook body", tc.id, body, tc.event)
		}
		st.closed(t)
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("%s: the stream of an ended job took %v; want it at once", tc.id, d)
		}
		// Reconnecting after the final event: 204, which makes a
		// browser's EventSource stop reconnecting.
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/jobs/"+tc.id+"/events", nil)
		req.Header.Set("Authorization", "Bearer "+keyA)
		req.Header.Set("Last-Event-ID", strconv.Itoa(last))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("%s: reconnect after the final event: %d, want 204", tc.id, resp.StatusCode)
		}
	}
}

// TestWaitForJob: ?wait= answers at once for an ended job, as soon as a
// job ends, and with the job as it stands when the wait runs out.
func TestWaitForJob(t *testing.T) {
	w := newWorkEnv(t)
	_, key := w.createWorker(t, "transcoder", "transcode")

	// Runs out: the job as it stands, after the wait.
	id := w.submit(t, "transcode")
	start := time.Now()
	g := object(t, w.do(t, get("/v1/jobs/"+id+"?wait=200ms")), http.StatusOK)
	if took := time.Since(start); g["status"] != "ACCEPTED" || took < 200*time.Millisecond || took > time.Second {
		t.Errorf("?wait=200ms on an idle job: %v after %v; want ACCEPTED after 200 ms", g["status"], took)
	}

	// Ends meanwhile: answered then.
	c := w.claim(t, key, transcodeClaim)
	go func() {
		time.Sleep(100 * time.Millisecond)
		w.workerCall(t, key, id, "complete", `{"leaseId":"`+c.LeaseID+`","result":{"ok":1}}`)
	}()
	start = time.Now()
	g = object(t, w.do(t, get("/v1/jobs/"+id+"?wait=5")), http.StatusOK)
	if took := time.Since(start); g["status"] != "COMPLETED" || took > 2*time.Second {
		t.Errorf("?wait=5 while the job completes: %v after %v; want COMPLETED within about 100 ms", g["status"], took)
	}
	if res, _ := g["result"].(map[string]any); res["ok"] != 1.0 {
		t.Errorf("?wait answer %v lacks the result", g)
	}

	// Ended already: at once.
	start = time.Now()
	g = object(t, w.do(t, get("/v1/jobs/"+id+"?wait=60s")), http.StatusOK)
	if took := time.Since(start); g["status"] != "COMPLETED" || took > 500*time.Millisecond {
		t.Errorf("?wait=60s on an ended job: %v after %v; want COMPLETED at once", g["status"], took)
	}
}

// TestWaitClientHangsUp: a client that leaves a long-poll is no internal
// error: nothing is logged above debug level for it.
func TestWaitClientHangsUp(t *testing.T) {
	w := newWorkEnv(t)
	id := w.submit(t, "transcode")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	r := httptest.NewRequest(http.MethodGet, "/v1/jobs/"+id+"?wait=5s", nil).WithContext(ctx)
	r.Header.Set("Authorization", "Bearer "+keyA)
	start := time.Now()
	w.handler().ServeHTTP(httptest.NewRecorder(), r)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the long-poll went on %v after its client left", took)
	}
	for line := range strings.SplitSeq(w.logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
			t.Errorf("a client hanging up was logged as a fault: %s", line)
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/testkit"
)

const (
	fakeAPIKey    = "bmr_test_key"
	fakeWorkerKey = "bmw_test_key"
)

// fakeAPI is Boomerang's HTTP API as worker-api.md describes it, enough to
// drive the CLI commands: it serves what a test puts in it and records what
// the commands send.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	claims chan string // claim answers (JSON); none within the wait: 204

	mu         sync.Mutex
	jobs       map[string]string // job views by ID
	streams    map[string]string // event streams by job ID
	cancels    map[string]string // job view after a cancel; absent: 409 job-final
	heartbeat  func(id string) (status int, slug string)
	complete   func(id string) (status int, slug string)
	submitted  []fakeCall
	heartbeats []fakeCall
	completes  []fakeCall
	fails      []fakeCall
}

// fakeCall is one request a command made.
type fakeCall struct {
	id     string
	header http.Header
	body   map[string]any
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, claims: make(chan string, 10), jobs: map[string]string{}, streams: map[string]string{}, cancels: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/jobs", f.client(f.submit))
	mux.HandleFunc("GET /v1/jobs/{id}", f.client(f.get))
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", f.client(f.cancel))
	mux.HandleFunc("GET /v1/jobs/{id}/events", f.client(f.events))
	mux.HandleFunc("POST /v1/worker/claim", f.worker(f.claim))
	mux.HandleFunc("POST /v1/worker/jobs/{id}/{op}", f.worker(f.report))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// env is the environment of a command run against f.
func (f *fakeAPI) env() func(string) string {
	vars := map[string]string{"BOOMERANG_URL": f.srv.URL, "BOOMERANG_API_KEY": fakeAPIKey, "BOOMERANG_WORKER_KEY": fakeWorkerKey}
	return func(k string) string { return vars[k] }
}

func problem(w http.ResponseWriter, status int, slug string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"https://boomerang.dev/problems/%s","title":"%s","status":%d,"detail":"fake %s"}`, slug, http.StatusText(status), status, slug)
}

func answerJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func (f *fakeAPI) client(h http.HandlerFunc) http.HandlerFunc { return authorized(fakeAPIKey, h) }
func (f *fakeAPI) worker(h http.HandlerFunc) http.HandlerFunc { return authorized(fakeWorkerKey, h) }

// authorized lets through only requests with key, as the real routes do.
func authorized(key string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+key {
			problem(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		h(w, r)
	}
}

func (f *fakeAPI) record(list *[]fakeCall, r *http.Request) {
	var body map[string]any
	raw, _ := io.ReadAll(r.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			f.t.Errorf("%s %s: body %q is not JSON: %v", r.Method, r.URL.Path, raw, err)
		}
	}
	f.mu.Lock()
	*list = append(*list, fakeCall{id: r.PathValue("id"), header: r.Header.Clone(), body: body})
	f.mu.Unlock()
}

func (f *fakeAPI) submit(w http.ResponseWriter, r *http.Request) {
	f.record(&f.submitted, r)
	answerJSON(w, http.StatusAccepted, `{"requestId":"req_1","status":"ACCEPTED","statusUrl":"/v1/jobs/req_1"}`)
}

func (f *fakeAPI) get(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	job, ok := f.jobs[r.PathValue("id")]
	f.mu.Unlock()
	if !ok {
		problem(w, http.StatusNotFound, "not-found")
		return
	}
	answerJSON(w, http.StatusOK, job)
}

func (f *fakeAPI) cancel(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	job, ok := f.cancels[r.PathValue("id")]
	f.mu.Unlock()
	if !ok {
		problem(w, http.StatusConflict, "job-final")
		return
	}
	answerJSON(w, http.StatusOK, job)
}

func (f *fakeAPI) events(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	stream, ok := f.streams[r.PathValue("id")]
	f.mu.Unlock()
	if !ok {
		problem(w, http.StatusNotFound, "not-found")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, stream)
}

func (f *fakeAPI) claim(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Types        []string `json:"types"`
		WaitSeconds  int      `json:"waitSeconds"`
		LeaseSeconds int      `json:"leaseSeconds"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Types) == 0 || req.LeaseSeconds < 1 || req.WaitSeconds != 30 {
		f.t.Errorf("claim %+v (%v): want types, waitSeconds 30 and leaseSeconds", req, err)
		problem(w, http.StatusUnprocessableEntity, "validation-error")
		return
	}
	select {
	case c := <-f.claims:
		answerJSON(w, http.StatusOK, c)
	case <-time.After(time.Duration(req.WaitSeconds) * time.Second):
		w.WriteHeader(http.StatusNoContent)
	case <-r.Context().Done():
	}
}

func (f *fakeAPI) report(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	switch r.PathValue("op") {
	case "heartbeat":
		f.record(&f.heartbeats, r)
		f.mu.Lock()
		answer := f.heartbeat
		f.mu.Unlock()
		if answer != nil {
			if status, slug := answer(id); status != 0 {
				problem(w, status, slug)
				return
			}
		}
		answerJSON(w, http.StatusOK, `{"leaseExpiresAt":"2030-01-01T00:00:00Z"}`)
	case "complete":
		f.record(&f.completes, r)
		f.mu.Lock()
		answer := f.complete
		f.mu.Unlock()
		if answer != nil {
			if status, slug := answer(id); status != 0 {
				problem(w, status, slug)
				return
			}
		}
		answerJSON(w, http.StatusOK, `{"requestId":"`+id+`","status":"COMPLETED"}`)
	case "fail":
		f.record(&f.fails, r)
		answerJSON(w, http.StatusOK, `{"requestId":"`+id+`","status":"FAILED"}`)
	default:
		problem(w, http.StatusNotFound, "not-found")
	}
}

// calls returns a copy of one of the recorded lists.
func (f *fakeAPI) calls(list *[]fakeCall) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), *list...)
}

// claimJSON is a claim answer for job id with payload.
func claimJSON(id, payload string, deadline *time.Time) string {
	d := "null"
	if deadline != nil {
		d = `"` + deadline.Format(time.RFC3339Nano) + `"`
	}
	return fmt.Sprintf(`{"requestId":%q,"type":"shell","payload":%s,"metadata":{},"attempt":1,"leaseId":"lease-%s","leaseExpiresAt":"2030-01-01T00:00:00Z","deadline":%s}`,
		id, payload, id, d)
}

// sse is one event as the server writes it.
func sse(id int, name, data string) string {
	return fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", id, name, data)
}

// runCLI runs `boomerang args...` against f and returns its output and error.
func runCLI(t *testing.T, f *fakeAPI, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errOut testkit.SyncBuffer
	err = run(ctx, append([]string{"boomerang"}, args...), f.env(), &out, &errOut)
	return out.String(), errOut.String(), err
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/handlers"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/boomerang-dev/boomerang/workers"
)

// workEnv is an env whose jobs, workers and deliveries are real, on this
// test's own Redis database: "echo" is Boomerang's own, "transcode" and
// "thumbnail" are done by external workers, and "approve" is an async type
// whose upstream (a function here) hands each completion URL to approvals.
// The service's clock is clock: it moves a microsecond each time it is
// read (no two writes share a time, as in life) and as far as a test moves
// it.
type workEnv struct {
	*env
	svc       *jobs.Service
	store     *redisstore.Store
	clock     *testkit.Clock
	approvals chan string // completion URLs the "approve" upstream received
}

// newWorkEnv builds a workEnv and starts the service listening to the
// store's announcements (job events, types with work), subscribed before it
// returns, as cmd/boomerang wires an API process.
func newWorkEnv(t testing.TB) *workEnv {
	t.Helper()
	e := newEnv()
	w := &workEnv{env: e, store: newStore(t), clock: testkit.NewClock(time.Now().UTC().Truncate(time.Millisecond)),
		approvals: make(chan string, 4)}
	reg := jobs.NewRegistry()
	reg.Register("echo", jobs.Echo, time.Minute)
	reg.RegisterExternal("transcode")
	reg.RegisterExternal("thumbnail")
	reg.RegisterAsync("approve", jobs.ProcessorFunc(func(_ context.Context, in jobs.Input) (json.RawMessage, error) {
		w.approvals <- in.CompletionURL
		return nil, nil
	}), time.Minute)
	now := func() time.Time { w.clock.Advance(time.Microsecond); return w.clock.Now() }
	w.svc = jobs.NewService(jobs.ServiceOptions{Store: w.store, Registry: reg, URLs: egress.Policy{}, Enqueuer: &fakeEnqueuer{},
		MaxAttempts: 3, Now: now, Logger: e.deps.Logger})
	e.real = w.svc
	e.deps.Jobs, e.deps.Work, e.deps.Deliveries = w.svc, w.svc, w.store
	e.deps.Workers = workers.NewRegistry(w.store, reg.External, now)
	e.deps.MaxBody = 64 << 10

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	events, available := w.store.Events(ctx), w.store.Available(ctx)
	for what, first := range map[string]func() bool{
		"events":    func() bool { _, ok := <-events; return ok },
		"available": func() bool { _, ok := <-available; return ok },
	} {
		if !first() { // the subscription's start is announced first
			t.Fatalf("the %s subscription closed before it started", what)
		}
	}
	w.svc.Listen(events, available, nil)
	return w
}

// createWorker makes a worker key for types through the admin API.
func (w *workEnv) createWorker(t testing.TB, name string, types ...string) (id, key string) {
	t.Helper()
	list, _ := json.Marshal(types)
	m := object(t, w.do(t, post("/admin/v1/workers", `{"name":"`+name+`","types":`+string(list)+`}`)), http.StatusCreated)
	id, _ = m["id"].(string)
	key, _ = m["workerKey"].(string)
	if !strings.HasPrefix(id, "wrk_") || !strings.HasPrefix(key, workers.KeyPrefix) {
		t.Fatalf("POST /admin/v1/workers = %v; want a wrk_ id and a bmw_ key", m)
	}
	return id, key
}

// submit submits a job of client A through the API and returns its id;
// extra are more members of the body.
func (w *workEnv) submit(t testing.TB, typ string, extra ...string) string {
	t.Helper()
	m := object(t, w.do(t, post("/v1/jobs", job(append([]string{`"type":"` + typ + `"`}, extra...)...))), http.StatusAccepted)
	id, _ := m["requestId"].(string)
	return id
}

// claimed is a claim's answer.
type claimed struct {
	RequestID      string            `json:"requestId"`
	Type           string            `json:"type"`
	Payload        json.RawMessage   `json:"payload"`
	Metadata       map[string]string `json:"metadata"`
	Attempt        int               `json:"attempt"`
	LeaseID        string            `json:"leaseId"`
	LeaseExpiresAt time.Time         `json:"leaseExpiresAt"`
	Deadline       *time.Time        `json:"deadline"`
}

// claim claims a job with a worker key and fails the test unless one came.
func (w *workEnv) claim(t testing.TB, key, body string) claimed {
	t.Helper()
	rec := w.do(t, withAuth(post("/v1/worker/claim", body), "Bearer "+key))
	if rec.Code != http.StatusOK {
		t.Fatalf("claim %s: status %d, want 200; body %s", body, rec.Code, rec.Body)
	}
	var c claimed
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("claim answer %s: %v", rec.Body, err)
	}
	return c
}

// workerCall posts body to a worker route of job id with a worker key.
func (w *workEnv) workerCall(t testing.TB, key, id, action, body string) *httptest.ResponseRecorder {
	t.Helper()
	return w.do(t, withAuth(post("/v1/worker/jobs/"+id+"/"+action, body), "Bearer "+key))
}

// mustDo fails the test unless the exchange answers want.
func (w *workEnv) mustDo(t testing.TB, rq request, want int) {
	t.Helper()
	if rec := w.do(t, rq); rec.Code != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", rq.method, rq.path, rec.Code, want, rec.Body)
	}
}

// approval runs an "approve" job (its upstream accepts it) and returns the
// path of its completion URL.
func (w *workEnv) approval(t testing.TB) (id, path string) {
	t.Helper()
	id = w.submit(t, "approve")
	if err := w.svc.Run(context.Background(), id); err != nil {
		t.Fatalf("Run %s: %v", id, err)
	}
	select {
	case u := <-w.approvals:
		if !strings.HasPrefix(u, "/v1/completions/") {
			t.Fatalf("completion URL %q", u)
		}
		return id, u
	case <-time.After(time.Second):
		t.Fatal("the upstream got no completion URL")
	}
	return "", ""
}

// wantProblem checks that rec is the problem slug with status.
func wantProblem(t testing.TB, what string, rec *httptest.ResponseRecorder, status int, slug string) handlers.Problem {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, rec.Code, status, rec.Body)
	}
	p := problem(t, rec)
	if want := handlers.ProblemBase + slug; p.Type != want {
		t.Errorf("%s: problem type %q, want %q (detail %q)", what, p.Type, want, p.Detail)
	}
	if status == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("%s: 401 without WWW-Authenticate", what)
	}
	return p
}

// within reports whether from ≤ t ≤ to.
func within(t, from, to time.Time) bool { return !t.Before(from) && !t.After(to) }

const transcodeClaim = `{"types":["transcode"],"waitSeconds":0,"leaseSeconds":60}`

// TestWorkHostile sends what a careless or hostile caller would to the
// worker, completion, cancel and live routes, each on a fresh real stack,
// and checks that each gets its own problem type and status.
func TestWorkHostile(t *testing.T) {
	past := `"deadline":"2020-01-01T00:00:00Z"`
	tooFar := func(w *workEnv) string {
		return `"deadline":"` + w.clock.Now().Add(31*24*time.Hour).Format(time.RFC3339) + `"`
	}
	// claimedJob submits a transcode job and claims it with a new worker key.
	claimedJob := func(t *testing.T, w *workEnv) (key string, c claimed) {
		_, key = w.createWorker(t, "transcoder", "transcode")
		w.submit(t, "transcode", `"payload":{"n":1}`)
		return key, w.claim(t, key, transcodeClaim)
	}
	heartbeat := func(progress string) func(t *testing.T, w *workEnv) request {
		return func(t *testing.T, w *workEnv) request {
			key, c := claimedJob(t, w)
			return withAuth(post("/v1/worker/jobs/"+c.RequestID+"/heartbeat", `{"leaseId":"`+c.LeaseID+`","progress":`+progress+`}`), "Bearer "+key)
		}
	}
	claimWith := func(body string) func(t *testing.T, w *workEnv) request {
		return func(t *testing.T, w *workEnv) request {
			_, key := w.createWorker(t, "transcoder", "transcode")
			return withAuth(post("/v1/worker/claim", body), "Bearer "+key)
		}
	}
	fixed := func(rq request) func(*testing.T, *workEnv) request {
		return func(*testing.T, *workEnv) request { return rq }
	}

	rows := []struct {
		name   string
		prep   func(t *testing.T, w *workEnv) request
		status int
		slug   string
		field  string // must be named in errors[].field when set
		detail string // must be in the detail when set
	}{
		// --- completion tokens ---
		{name: "forged completion token for a waiting job", status: 404, slug: "token-invalid",
			prep: func(t *testing.T, w *workEnv) request {
				_, path := w.approval(t)
				body, _, _ := strings.Cut(strings.TrimPrefix(path, "/v1/completions/"), ".")
				return post("/v1/completions/"+body+"."+strings.Repeat("0", 64), `{"result":{"ok":true}}`)
			}},
		{name: "completion token of no job", status: 404, slug: "token-invalid",
			prep: fixed(post("/v1/completions/not-a-token", `{"result":1}`))},
		{name: "completion token reused after its success", status: 409, slug: "token-used",
			prep: func(t *testing.T, w *workEnv) request {
				_, path := w.approval(t)
				w.mustDo(t, post(path, `{"result":{"approved":true}}`), http.StatusOK)
				return post(path, `{"result":{"approved":false}}`)
			}},
		{name: "completion token of a canceled job", status: 409, slug: "job-canceled",
			prep: func(t *testing.T, w *workEnv) request {
				id, path := w.approval(t)
				w.mustDo(t, post("/v1/jobs/"+id+"/cancel", ""), http.StatusOK)
				return post(path, `{"result":{"approved":true}}`)
			}},
		{name: "completion with both result and error", status: 422, slug: "validation-error", field: "result",
			prep: func(t *testing.T, w *workEnv) request {
				_, path := w.approval(t)
				return post(path, `{"result":1,"error":{"code":"x","message":"y"}}`)
			}},

		// --- credentials ---
		{name: "client API key on /v1/worker/claim", status: 401, slug: "unauthorized", detail: "client API key",
			prep: fixed(withAuth(post("/v1/worker/claim", transcodeClaim), "Bearer "+keyA))},
		{name: "no credentials on /v1/worker/claim", status: 401, slug: "unauthorized",
			prep: fixed(withAuth(post("/v1/worker/claim", transcodeClaim), "-"))},
		{name: "admin token on /v1/worker/claim", status: 401, slug: "unauthorized",
			prep: fixed(withAuth(post("/v1/worker/claim", transcodeClaim), "Bearer "+adminToken))},
		{name: "admin token on a worker's heartbeat", status: 401, slug: "unauthorized",
			prep: func(t *testing.T, w *workEnv) request {
				_, c := claimedJob(t, w)
				return withAuth(post("/v1/worker/jobs/"+c.RequestID+"/heartbeat", `{"leaseId":"`+c.LeaseID+`"}`), "Bearer "+adminToken)
			}},
		{name: "worker key on POST /v1/jobs", status: 401, slug: "unauthorized", detail: "worker key",
			prep: func(t *testing.T, w *workEnv) request {
				_, key := w.createWorker(t, "transcoder", "transcode")
				return withAuth(post("/v1/jobs", job(`"type":"transcode"`)), "Bearer "+key)
			}},
		{name: "worker key on GET /v1/jobs/{id}", status: 401, slug: "unauthorized",
			prep: func(t *testing.T, w *workEnv) request {
				key, c := claimedJob(t, w)
				return withAuth(get("/v1/jobs/"+c.RequestID), "Bearer "+key)
			}},
		{name: "worker key on /admin/v1/clients", status: 401, slug: "unauthorized", detail: "worker key",
			prep: func(t *testing.T, w *workEnv) request {
				_, key := w.createWorker(t, "transcoder", "transcode")
				return withAuth(get("/admin/v1/clients"), "Bearer "+key)
			}},
		{name: "worker key on /admin/v1/workers", status: 401, slug: "unauthorized",
			prep: func(t *testing.T, w *workEnv) request {
				_, key := w.createWorker(t, "transcoder", "transcode")
				return withAuth(post("/admin/v1/workers", `{"name":"me too","types":["transcode"]}`), "Bearer "+key)
			}},
		{name: "revoked worker key", status: 401, slug: "unauthorized",
			prep: func(t *testing.T, w *workEnv) request {
				id, key := w.createWorker(t, "transcoder", "transcode")
				w.mustDo(t, request{method: http.MethodDelete, path: "/admin/v1/workers/" + id}, http.StatusNoContent)
				return withAuth(post("/v1/worker/claim", transcodeClaim), "Bearer "+key)
			}},

		// --- types ---
		{name: "worker of type A claims type B", status: 403, slug: "worker-type-forbidden", field: "types",
			prep: func(t *testing.T, w *workEnv) request {
				_, key := w.createWorker(t, "thumbnailer", "thumbnail")
				return withAuth(post("/v1/worker/claim", transcodeClaim), "Bearer "+key)
			}},
		{name: "worker completes another type's job", status: 403, slug: "worker-type-forbidden",
			prep: func(t *testing.T, w *workEnv) request {
				_, c := claimedJob(t, w)
				_, other := w.createWorker(t, "thumbnailer", "thumbnail")
				return withAuth(post("/v1/worker/jobs/"+c.RequestID+"/complete", `{"leaseId":"`+c.LeaseID+`","result":1}`), "Bearer "+other)
			}},
		{name: "worker fails another type's job", status: 403, slug: "worker-type-forbidden",
			prep: func(t *testing.T, w *workEnv) request {
				_, c := claimedJob(t, w)
				_, other := w.createWorker(t, "thumbnailer", "thumbnail")
				return withAuth(post("/v1/worker/jobs/"+c.RequestID+"/fail", `{"leaseId":"`+c.LeaseID+`","error":{"code":"x","message":"y"}}`), "Bearer "+other)
			}},
		{name: "worker completes a job Boomerang runs itself", status: 404, slug: "not-found",
			prep: func(t *testing.T, w *workEnv) request {
				_, key := w.createWorker(t, "transcoder", "transcode")
				id := w.submit(t, "echo")
				return withAuth(post("/v1/worker/jobs/"+id+"/complete", `{"leaseId":"1.60.abcdef","result":1}`), "Bearer "+key)
			}},

		// --- bounds ---
		{name: "progress message over 1024 bytes", status: 422, slug: "invalid-progress", field: "progress.message",
			prep: heartbeat(`{"percent":50,"message":"` + strings.Repeat("m", 1025) + `"}`)},
		{name: "progress percent 101", status: 422, slug: "invalid-progress", field: "progress.percent",
			prep: heartbeat(`{"percent":101}`)},
		{name: "progress percent -1", status: 422, slug: "invalid-progress", field: "progress.percent",
			prep: heartbeat(`{"percent":-1}`)},
		{name: "progress without percent", status: 422, slug: "invalid-progress", field: "progress.percent",
			prep: heartbeat(`{"message":"half way"}`)},
		{name: "leaseSeconds 0", status: 422, slug: "invalid-lease", field: "leaseSeconds",
			prep: claimWith(`{"types":["transcode"],"waitSeconds":0,"leaseSeconds":0}`)},
		{name: "leaseSeconds of 10 days", status: 422, slug: "invalid-lease", field: "leaseSeconds",
			prep: claimWith(`{"types":["transcode"],"waitSeconds":0,"leaseSeconds":864000}`)},
		{name: "waitSeconds 61", status: 422, slug: "invalid-wait", field: "waitSeconds",
			prep: claimWith(`{"types":["transcode"],"waitSeconds":61}`)},
		{name: "waitSeconds -1", status: 422, slug: "invalid-wait", field: "waitSeconds",
			prep: claimWith(`{"types":["transcode"],"waitSeconds":-1}`)},
		{name: "claim of no type", status: 422, slug: "validation-error", field: "types",
			prep: claimWith(`{"types":[]}`)},
		{name: "claim with an unknown field", status: 422, slug: "validation-error", field: "lease",
			prep: claimWith(`{"types":["transcode"],"lease":60}`)},
		{name: "deadline in the past", status: 422, slug: "invalid-deadline", field: "deadline",
			prep: fixed(post("/v1/jobs", job(`"type":"transcode"`, past)))},
		{name: "deadline beyond BOOMERANG_JOB_MAX_DEADLINE", status: 422, slug: "invalid-deadline", field: "deadline",
			prep: func(t *testing.T, w *workEnv) request { return post("/v1/jobs", job(`"type":"transcode"`, tooFar(w))) }},
		{name: "deadline not RFC 3339", status: 422, slug: "invalid-deadline", field: "deadline",
			prep: fixed(post("/v1/jobs", job(`"type":"transcode"`, `"deadline":"tomorrow"`)))},
		{name: "heartbeat without leaseId", status: 422, slug: "validation-error", field: "leaseId",
			prep: func(t *testing.T, w *workEnv) request {
				key, c := claimedJob(t, w)
				return withAuth(post("/v1/worker/jobs/"+c.RequestID+"/heartbeat", `{}`), "Bearer "+key)
			}},
		{name: "fail without error", status: 422, slug: "validation-error", field: "error",
			prep: func(t *testing.T, w *workEnv) request {
				key, c := claimedJob(t, w)
				return withAuth(post("/v1/worker/jobs/"+c.RequestID+"/fail", `{"leaseId":"`+c.LeaseID+`"}`), "Bearer "+key)
			}},

		// --- leases and ends ---
		{name: "complete with a stale leaseId after the lease was lost", status: 409, slug: "lease-lost",
			prep: func(t *testing.T, w *workEnv) request {
				key, c := claimedJob(t, w)
				// The lease lapses; recovery hands the job over and another claim takes it.
				w.clock.Advance(61 * time.Second)
				if ok, err := w.store.RequeueExternal(context.Background(), c.RequestID, "transcode", w.clock.Now()); !ok || err != nil {
					t.Fatalf("RequeueExternal = %v, %v; want the lapsed job handed over", ok, err)
				}
				if again := w.claim(t, key, transcodeClaim); again.RequestID != c.RequestID || again.Attempt != 2 {
					t.Fatalf("second claim = %+v, want %s attempt 2", again, c.RequestID)
				}
				return withAuth(post("/v1/worker/jobs/"+c.RequestID+"/complete", `{"leaseId":"`+c.LeaseID+`","result":"late"}`), "Bearer "+key)
			}},
		{name: "heartbeat with a leaseId never given", status: 409, slug: "lease-lost",
			prep: func(t *testing.T, w *workEnv) request {
				key, c := claimedJob(t, w)
				return withAuth(post("/v1/worker/jobs/"+c.RequestID+"/heartbeat", `{"leaseId":"1.60.0123456789abcdef"}`), "Bearer "+key)
			}},
		{name: "heartbeat after cancel", status: 409, slug: "job-canceled",
			prep: func(t *testing.T, w *workEnv) request {
				key, c := claimedJob(t, w)
				w.mustDo(t, withAuth(post("/v1/worker/jobs/"+c.RequestID+"/heartbeat", `{"leaseId":"`+c.LeaseID+`"}`), "Bearer "+key), http.StatusOK)
				w.mustDo(t, post("/v1/jobs/"+c.RequestID+"/cancel", ""), http.StatusOK)
				w.clock.Advance(2 * time.Second) // past the heartbeat coalescing window
				return withAuth(post("/v1/worker/jobs/"+c.RequestID+"/heartbeat", `{"leaseId":"`+c.LeaseID+`"}`), "Bearer "+key)
			}},
		{name: "complete after an admin cancel", status: 409, slug: "job-canceled",
			prep: func(t *testing.T, w *workEnv) request {
				key, c := claimedJob(t, w)
				w.mustDo(t, post("/admin/v1/jobs/"+c.RequestID+"/cancel", ""), http.StatusOK)
				return withAuth(post("/v1/worker/jobs/"+c.RequestID+"/complete", `{"leaseId":"`+c.LeaseID+`","result":1}`), "Bearer "+key)
			}},
		{name: "heartbeat after the deadline passed", status: 409, slug: "job-expired",
			prep: func(t *testing.T, w *workEnv) request {
				_, key := w.createWorker(t, "transcoder", "transcode")
				id := w.submit(t, "transcode", `"deadline":"`+w.clock.Now().Add(10*time.Second).Format(time.RFC3339Nano)+`"`)
				c := w.claim(t, key, transcodeClaim)
				w.clock.Advance(11 * time.Second)
				if err := w.svc.Expire(context.Background(), id); err != nil {
					t.Fatalf("Expire: %v", err)
				}
				return withAuth(post("/v1/worker/jobs/"+id+"/heartbeat", `{"leaseId":"`+c.LeaseID+`"}`), "Bearer "+key)
			}},
		{name: "cancel of a completed job", status: 409, slug: "job-final",
			prep: func(t *testing.T, w *workEnv) request {
				key, c := claimedJob(t, w)
				w.mustDo(t, withAuth(post("/v1/worker/jobs/"+c.RequestID+"/complete", `{"leaseId":"`+c.LeaseID+`","result":1}`), "Bearer "+key), http.StatusOK)
				return post("/v1/jobs/"+c.RequestID+"/cancel", "")
			}},
		{name: "cancel of a canceled job by the operator", status: 409, slug: "job-final",
			prep: func(t *testing.T, w *workEnv) request {
				id := w.submit(t, "transcode")
				w.mustDo(t, post("/v1/jobs/"+id+"/cancel", ""), http.StatusOK)
				return post("/admin/v1/jobs/"+id+"/cancel", "")
			}},
		{name: "cancel of another client's job", status: 404, slug: "not-found",
			prep: func(t *testing.T, w *workEnv) request {
				return withAuth(post("/v1/jobs/"+w.submit(t, "transcode")+"/cancel", ""), "Bearer "+keyB)
			}},

		// --- following a job ---
		{name: "malformed Last-Event-ID", status: 400, slug: "invalid-parameter", field: "Last-Event-ID",
			prep: func(t *testing.T, w *workEnv) request {
				return withHeader(get("/v1/jobs/"+w.submit(t, "transcode")+"/events"), "Last-Event-ID", "abc")
			}},
		{name: "negative Last-Event-ID", status: 400, slug: "invalid-parameter", field: "Last-Event-ID",
			prep: func(t *testing.T, w *workEnv) request {
				return withHeader(get("/v1/jobs/"+w.submit(t, "transcode")+"/events"), "Last-Event-ID", "-1")
			}},
		{name: "events of another client's job", status: 404, slug: "not-found",
			prep: func(t *testing.T, w *workEnv) request {
				return withAuth(get("/v1/jobs/"+w.submit(t, "transcode")+"/events"), "Bearer "+keyB)
			}},
		{name: "wait of two minutes", status: 400, slug: "invalid-parameter", field: "wait",
			prep: func(t *testing.T, w *workEnv) request {
				return get("/v1/jobs/" + w.submit(t, "transcode") + "?wait=2m")
			}},
		{name: "wait that is no duration", status: 400, slug: "invalid-parameter", field: "wait",
			prep: func(t *testing.T, w *workEnv) request {
				return get("/v1/jobs/" + w.submit(t, "transcode") + "?wait=soon")
			}},
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorkEnv(t)
			rq := tc.prep(t, w)
			rec := w.do(t, rq)
			p := wantProblem(t, rq.method+" "+rq.path, rec, tc.status, tc.slug)
			if tc.field != "" && !slices.ContainsFunc(p.Errors, func(f handlers.FieldError) bool { return f.Field == tc.field }) {
				t.Errorf("errors %+v do not name %q", p.Errors, tc.field)
			}
			if tc.detail != "" && !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q does not say %q", p.Detail, tc.detail)
			}
			path, _, _ := strings.Cut(rq.path, "?")
			if strings.HasPrefix(path, "/v1/completions/") {
				path = "/v1/completions/{token}"
			}
			if p.Instance != path {
				t.Errorf("instance %q, want %q", p.Instance, path)
			}
		})
	}
}

// TestExternalWorkerFlow follows one job through an external worker:
// claim, heartbeat with progress, GET, complete, GET; the result comes
// back value for value.
func TestExternalWorkerFlow(t *testing.T) {
	w := newWorkEnv(t)
	_, key := w.createWorker(t, "transcoder", "transcode")
	const payload = `{"src":"s3://in/a.mov","n":12345678901234567890}`
	id := w.submit(t, "transcode", `"payload":`+payload, `"metadata":{"order":"42"}`)

	before := w.clock.Now()
	c := w.claim(t, key, `{"types":["transcode"],"waitSeconds":0,"leaseSeconds":90}`)
	switch {
	case c.RequestID != id || c.Type != "transcode" || c.Attempt != 1:
		t.Errorf("claim = %+v; want %s, transcode, attempt 1", c, id)
	case string(c.Payload) != payload:
		t.Errorf("claimed payload %s, want %s byte for byte", c.Payload, payload)
	case c.Metadata["order"] != "42" || c.Deadline != nil:
		t.Errorf("claimed metadata %v and deadline %v; want order 42 and no deadline", c.Metadata, c.Deadline)
	case !strings.HasPrefix(c.LeaseID, "1.90."):
		t.Errorf("leaseId %q, want attempt 1 and 90 s first", c.LeaseID)
	case !within(c.LeaseExpiresAt, before.Add(90*time.Second), w.clock.Now().Add(90*time.Second)):
		t.Errorf("leaseExpiresAt %v, want the claim's time + 90 s, %v", c.LeaseExpiresAt, before.Add(90*time.Second))
	}

	w.clock.Advance(5 * time.Second)
	before = w.clock.Now()
	rec := w.workerCall(t, key, id, "heartbeat", `{"leaseId":"`+c.LeaseID+`","progress":{"percent":42.5,"message":"encoding <1080p>"}}`)
	hb := object(t, rec, http.StatusOK)
	wantKeys(t, "heartbeat", hb, "leaseExpiresAt")
	if got := wantTime(t, "leaseExpiresAt", hb["leaseExpiresAt"]); !within(got, before.Add(90*time.Second), w.clock.Now().Add(90*time.Second)) {
		t.Errorf("heartbeat leaseExpiresAt %v, want the heartbeat's time + 90 s, %v", got, before.Add(90*time.Second))
	}

	g := object(t, w.do(t, get("/v1/jobs/"+id)), http.StatusOK)
	progress, _ := g["progress"].(map[string]any)
	if g["status"] != "PROCESSING" || g["attempt"] != 1.0 || progress["percent"] != 42.5 || progress["message"] != "encoding <1080p>" {
		t.Errorf("GET while processing = %v; want PROCESSING, attempt 1, progress 42.5 %q", g, "encoding <1080p>")
	}
	if progress["updatedAt"] == nil {
		t.Errorf("progress %v has no updatedAt", progress)
	}

	const result = `{"out":"s3://out/a.mp4","frames":12345678901234567890,"ratio":1e400,"html":"<b>&</b>"}`
	done := object(t, w.workerCall(t, key, id, "complete", `{"leaseId":"`+c.LeaseID+`","result":`+result+`}`), http.StatusOK)
	if done["requestId"] != id || done["status"] != "COMPLETED" || len(done) != 2 {
		t.Errorf("complete = %v; want {requestId: %s, status: COMPLETED}", done, id)
	}
	// The same call again (its answer was lost) succeeds again, changing nothing.
	if again := w.workerCall(t, key, id, "complete", `{"leaseId":"`+c.LeaseID+`","result":`+result+`}`); again.Code != http.StatusOK {
		t.Errorf("repeated complete: %d %s; want 200", again.Code, again.Body)
	}

	rec = w.do(t, get("/v1/jobs/"+id))
	var view struct {
		Status   string          `json:"status"`
		Result   json.RawMessage `json:"result"`
		Progress json.RawMessage `json:"progress"`
		Delivery struct {
			ID string `json:"id"`
		} `json:"delivery"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &view); err != nil {
		t.Fatalf("GET after complete: %v; body %s", err, rec.Body)
	}
	if view.Status != "COMPLETED" || string(view.Result) != result {
		t.Errorf("GET after complete: status %s, result %s; want COMPLETED and %s byte for byte", view.Status, view.Result, result)
	}
	if view.Delivery.ID != jobs.DeliveryID(id) {
		t.Errorf("delivery %q, want %s", view.Delivery.ID, jobs.DeliveryID(id))
	}
	d, err := w.store.GetDelivery(context.Background(), jobs.DeliveryID(id), false)
	if err != nil || !bytes.Contains(d.Payload, []byte(`"result":`+result)) || d.EventType != jobs.EventCompleted {
		t.Errorf("webhook %s (%v), event %s; want job.completed carrying %s", d.Payload, err, d.EventType, result)
	}
}

// TestExternalWorkerFail: a retryable failure shows as attempt and
// lastError while the job waits for its next claim; a final one FAILS it.
func TestExternalWorkerFail(t *testing.T) {
	w := newWorkEnv(t)
	_, key := w.createWorker(t, "transcoder", "transcode")
	id := w.submit(t, "transcode")
	c := w.claim(t, key, transcodeClaim)

	r := object(t, w.workerCall(t, key, id, "fail", `{"leaseId":"`+c.LeaseID+`","error":{"code":"disk_full","message":"no space left"},"retryable":true}`), http.StatusOK)
	if r["status"] != "PROCESSING" {
		t.Errorf("retryable fail = %v; want PROCESSING (retried later)", r)
	}
	g := object(t, w.do(t, get("/v1/jobs/"+id)), http.StatusOK)
	if le, _ := g["lastError"].(map[string]any); g["attempt"] != 1.0 || le["code"] != "disk_full" || le["message"] != "no space left" {
		t.Errorf("GET after a retryable failure = %v; want attempt 1 and lastError disk_full", g)
	}

	w.clock.Advance(time.Minute) // past the retry delay; recovery hands it over
	if ok, err := w.store.RequeueExternal(context.Background(), id, "transcode", w.clock.Now()); !ok || err != nil {
		t.Fatalf("RequeueExternal = %v, %v", ok, err)
	}
	c2 := w.claim(t, key, transcodeClaim)
	if c2.Attempt != 2 {
		t.Fatalf("second claim attempt %d, want 2", c2.Attempt)
	}
	r = object(t, w.workerCall(t, key, id, "fail", `{"leaseId":"`+c2.LeaseID+`","error":{"code":"bad_input","message":"not a video"},"retryable":false}`), http.StatusOK)
	if r["status"] != "FAILED" {
		t.Errorf("final fail = %v; want FAILED", r)
	}
	g = object(t, w.do(t, get("/v1/jobs/"+id)), http.StatusOK)
	if e, _ := g["error"].(map[string]any); g["status"] != "FAILED" || e["code"] != "bad_input" || g["lastError"] != nil {
		t.Errorf("GET after the final failure = %v; want FAILED with error bad_input and no lastError", g)
	}
}

// TestClaimWaits: an empty claim answers 204 at once with waitSeconds 0,
// and a waiting claim is answered as soon as a job of its type comes.
func TestClaimWaits(t *testing.T) {
	w := newWorkEnv(t)
	_, key := w.createWorker(t, "both", "thumbnail", "transcode")

	start := time.Now()
	rec := w.do(t, withAuth(post("/v1/worker/claim", `{"types":["transcode","thumbnail"],"waitSeconds":0}`), "Bearer "+key))
	if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 || time.Since(start) > time.Second {
		t.Errorf("empty claim: %d %q after %v; want 204, no body, at once", rec.Code, rec.Body, time.Since(start))
	}

	got := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		got <- w.do(t, withAuth(post("/v1/worker/claim", `{"types":["thumbnail"],"waitSeconds":10}`), "Bearer "+key))
	}()
	time.Sleep(100 * time.Millisecond) // let the claim look once and wait
	id := w.submit(t, "thumbnail")
	select {
	case rec := <-got:
		m := object(t, rec, http.StatusOK)
		if m["requestId"] != id || rec.Header().Get("X-Request-Id") != id {
			t.Errorf("woken claim = %v (X-Request-Id %q); want %s", m, rec.Header().Get("X-Request-Id"), id)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the waiting claim was not answered within 3 s of a submission")
	}
}

// TestWorkerKeys: the operator creates, lists and revokes worker keys; a
// revoked key is refused at once.
func TestWorkerKeys(t *testing.T) {
	w := newWorkEnv(t)
	rec := w.do(t, post("/admin/v1/workers", `{"name":"transcoder","types":["transcode","transcode"]}`))
	m := object(t, rec, http.StatusCreated)
	wantKeys(t, "created worker", m, "id", "name", "types", "workerKey", "createdAt")
	id, _ := m["id"].(string)
	key, _ := m["workerKey"].(string)
	if rec.Header().Get("Location") != "/admin/v1/workers/"+id {
		t.Errorf("Location %q, want /admin/v1/workers/%s", rec.Header().Get("Location"), id)
	}
	if types, _ := m["types"].([]any); len(types) != 1 || types[0] != "transcode" {
		t.Errorf("types %v, want [transcode] (deduplicated)", m["types"])
	}

	list := object(t, w.do(t, get("/admin/v1/workers")), http.StatusOK)
	data, _ := list["data"].([]any)
	if len(data) != 1 || strings.Contains(fmt.Sprint(list), key) {
		t.Fatalf("GET /admin/v1/workers = %v; want one worker, without its key", list)
	}
	first, _ := data[0].(map[string]any)
	wantKeys(t, "listed worker", first, "id", "name", "types", "createdAt")

	for _, bad := range []struct{ body, field string }{
		{`{"name":"","types":["transcode"]}`, "name"},
		{`{"name":"x","types":[]}`, "types"},
		{`{"name":"x","types":["echo"]}`, "types"}, // Boomerang's own type
	} {
		p := wantProblem(t, "POST /admin/v1/workers "+bad.body, w.do(t, post("/admin/v1/workers", bad.body)), 422, "validation-error")
		if len(p.Errors) == 0 || p.Errors[0].Field != bad.field {
			t.Errorf("POST /admin/v1/workers %s: errors %+v, want field %s", bad.body, p.Errors, bad.field)
		}
	}

	claim := withAuth(post("/v1/worker/claim", transcodeClaim), "Bearer "+key)
	if rec := w.do(t, claim); rec.Code != http.StatusNoContent {
		t.Fatalf("claim with a new key: %d %s; want 204", rec.Code, rec.Body)
	}
	w.mustDo(t, request{method: http.MethodDelete, path: "/admin/v1/workers/" + id}, http.StatusNoContent)
	wantProblem(t, "claim with a revoked key", w.do(t, claim), http.StatusUnauthorized, "unauthorized")
	wantProblem(t, "DELETE again", w.do(t, request{method: http.MethodDelete, path: "/admin/v1/workers/" + id}), http.StatusNotFound, "not-found")
	wantProblem(t, "DELETE a malformed id", w.do(t, request{method: http.MethodDelete, path: "/admin/v1/workers/nope"}), http.StatusNotFound, "not-found")
}

// TestCompletionByToken: the upstream completes a job through its
// completion URL; the token never reaches a log.
func TestCompletionByToken(t *testing.T) {
	w := newWorkEnv(t)
	id, path := w.approval(t)
	token := strings.TrimPrefix(path, "/v1/completions/")
	if body, secret, _ := strings.Cut(token, "."); body == "" || len(secret) < 32 {
		t.Fatalf("token %q: want <job>.<at least 128 bits in hex>", token)
	}
	g := object(t, w.do(t, get("/v1/jobs/"+id)), http.StatusOK)
	if g["status"] != "PROCESSING" {
		t.Fatalf("job handed to its upstream = %v; want PROCESSING", g)
	}

	const result = `{"approved":true,"by":"ana","ticket":12345678901234567890}`
	r := object(t, w.do(t, withAuth(post(path, `{"result":`+result+`}`), "-")), http.StatusOK)
	if r["requestId"] != id || r["status"] != "COMPLETED" {
		t.Errorf("POST %s = %v; want %s COMPLETED", path, r, id)
	}
	var view struct{ Result json.RawMessage }
	_ = json.Unmarshal(w.do(t, get("/v1/jobs/"+id)).Body.Bytes(), &view)
	if string(view.Result) != result {
		t.Errorf("result %s, want %s byte for byte", view.Result, result)
	}

	// A failure through a token of another job.
	id2, path2 := w.approval(t)
	r = object(t, w.do(t, post(path2, `{"error":{"code":"rejected","message":"not approved"}}`)), http.StatusOK)
	if r["requestId"] != id2 || r["status"] != "FAILED" {
		t.Errorf("POST an error to %s = %v; want %s FAILED", path2, r, id2)
	}

	logs := w.logs.String()
	if strings.Contains(logs, token) || strings.Contains(logs, strings.TrimPrefix(path2, "/v1/completions/")) {
		t.Errorf("a completion token is in the logs:\n%s", logs)
	}
	var lines int
	for line := range strings.SplitSeq(logs, "\n") {
		if strings.Contains(line, "msg=\"http request\"") && strings.Contains(line, "/v1/completions/") {
			lines++
			if !strings.Contains(line, "path=/v1/completions/{token}") {
				t.Errorf("request log line %q does not show the path as /v1/completions/{token}", line)
			}
		}
	}
	if lines != 2 {
		t.Errorf("%d request log lines for POST /v1/completions/…, want 2:\n%s", lines, logs)
	}
}

// TestCancel: a client cancels its job, the operator any job; the view
// says CANCELED and the webhook is job.canceled.
func TestCancel(t *testing.T) {
	w := newWorkEnv(t)
	id := w.submit(t, "transcode")
	v := object(t, w.do(t, post("/v1/jobs/"+id+"/cancel", "")), http.StatusOK)
	if v["requestId"] != id || v["status"] != "CANCELED" || v["clientId"] != nil || v["completedAt"] == nil {
		t.Errorf("client cancel = %v; want %s CANCELED with completedAt, no clientId", v, id)
	}
	if e, _ := v["error"].(map[string]any); e["code"] != "canceled" {
		t.Errorf("client cancel error %v, want code canceled", v["error"])
	}
	d, err := w.store.GetDelivery(context.Background(), jobs.DeliveryID(id), false)
	if err != nil || d.EventType != jobs.EventCanceled {
		t.Errorf("delivery of a canceled job: %+v, %v; want job.canceled", d, err)
	}

	id2 := w.submit(t, "transcode")
	v = object(t, w.do(t, post("/admin/v1/jobs/"+id2+"/cancel", "")), http.StatusOK)
	if v["requestId"] != id2 || v["status"] != "CANCELED" || v["clientId"] != clientA {
		t.Errorf("admin cancel = %v; want %s CANCELED of %s", v, id2, clientA)
	}
	wantProblem(t, "cancel of no job", w.do(t, post("/v1/jobs/req_01JD4X5Y6Z7A8B9C0D1E2F3G4H/cancel", "")), 404, "not-found")
	wantProblem(t, "admin cancel of a malformed id", w.do(t, post("/admin/v1/jobs/nope/cancel", "")), 404, "not-found")

	// Nothing claims a canceled job.
	_, key := w.createWorker(t, "transcoder", "transcode")
	if rec := w.do(t, withAuth(post("/v1/worker/claim", transcodeClaim), "Bearer "+key)); rec.Code != http.StatusNoContent {
		t.Errorf("claim after both jobs were canceled: %d %s; want 204", rec.Code, rec.Body)
	}
}

// checkWorkConformance exchanges requests with the routes of work done
// outside Boomerang (workers, completion URLs, cancel, live status) on the
// real stack, happy and not, and checks each answer against the spec
// (TestOpenAPIConformance).
func checkWorkConformance(t *testing.T, c *conformance) {
	w := newWorkEnv(t)
	check := func(name string, rq request, want int) *httptest.ResponseRecorder {
		t.Helper()
		rec := w.do(t, rq)
		if rec.Code != want {
			t.Errorf("%s: %s %s answered %d, want %d; body %s", name, rq.method, rq.path, rec.Code, want, rec.Body)
		}
		c.check(name, rq, rec)
		return rec
	}
	as := func(key string, rq request) request { return withAuth(rq, "Bearer "+key) }
	var created struct{ ID, WorkerKey string }
	_ = json.Unmarshal(check("create worker", post("/admin/v1/workers", `{"name":"gpu-1","types":["transcode"]}`), 201).Body.Bytes(), &created)
	key := created.WorkerKey
	_, thumbs := w.createWorker(t, "thumbnailer", "thumbnail")
	check("list workers", get("/admin/v1/workers"), 200)

	deadline := w.clock.Now().Add(time.Hour).Format(time.RFC3339)
	id := w.submit(t, "transcode", `"payload":{"n":1}`, `"metadata":{"k":"v"}`, `"deadline":"`+deadline+`"`)
	check("short wait", get("/v1/jobs/"+id+"?wait=50ms"), 200)
	check("claim of another type", as(thumbs, post("/v1/worker/claim", transcodeClaim)), 403)
	check("claim with a lease of 0 s", as(key, post("/v1/worker/claim", `{"types":["transcode"],"leaseSeconds":0}`)), 422)
	var cl claimed
	_ = json.Unmarshal(check("claim", as(key, post("/v1/worker/claim", transcodeClaim)), 200).Body.Bytes(), &cl)
	check("empty claim", as(key, post("/v1/worker/claim", transcodeClaim)), 204)
	hb := func(body string) request { return as(key, post("/v1/worker/jobs/"+id+"/heartbeat", body)) }
	check("heartbeat", hb(`{"leaseId":"`+cl.LeaseID+`","progress":{"percent":42,"message":"encoding"}}`), 200)
	check("heartbeat with percent 101", hb(`{"leaseId":"`+cl.LeaseID+`","progress":{"percent":101}}`), 422)
	check("heartbeat with a foreign lease", hb(`{"leaseId":"1.60.0123456789abcdef"}`), 409)
	check("heartbeat of no job", as(key, post("/v1/worker/jobs/req_01JD4X5Y6Z7A8B9C0D1E2F3G4H/heartbeat", `{"leaseId":"1.60.0123456789abcdef"}`)), 404)
	check("job with progress", get("/v1/jobs/"+id), 200)
	check("fail of another type", as(thumbs, post("/v1/worker/jobs/"+id+"/fail", `{"leaseId":"`+cl.LeaseID+`","error":{"code":"x","message":"y"}}`)), 403)
	check("retryable fail", as(key, post("/v1/worker/jobs/"+id+"/fail", `{"leaseId":"`+cl.LeaseID+`","error":{"code":"x","message":"y"},"retryable":true}`)), 200)
	check("job with lastError", get("/v1/jobs/"+id), 200)
	w.clock.Advance(time.Minute)
	if _, err := w.store.RequeueExternal(context.Background(), id, "transcode", w.clock.Now()); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(check("claim again", as(key, post("/v1/worker/claim", transcodeClaim)), 200).Body.Bytes(), &cl)
	check("complete with no lease", as(key, post("/v1/worker/jobs/"+id+"/complete", `{"result":1}`)), 422)
	check("complete", as(key, post("/v1/worker/jobs/"+id+"/complete", `{"leaseId":"`+cl.LeaseID+`","result":{"out":[1,2]}}`)), 200)
	check("complete of another type", as(thumbs, post("/v1/worker/jobs/"+id+"/complete", `{"leaseId":"`+cl.LeaseID+`","result":1}`)), 403)
	check("completed job", get("/v1/jobs/"+id), 200)
	check("events of an ended job", get("/v1/jobs/"+id+"/events"), 200)
	check("events with a bad Last-Event-ID", withHeader(get("/v1/jobs/"+id+"/events"), "Last-Event-ID", "x"), 400)
	check("wait of 2 minutes", get("/v1/jobs/"+id+"?wait=2m"), 400)
	check("cancel of an ended job", post("/v1/jobs/"+id+"/cancel", ""), 409)
	check("admin cancel of an ended job", post("/admin/v1/jobs/"+id+"/cancel", ""), 409)
	check("cancel", post("/v1/jobs/"+w.submit(t, "transcode")+"/cancel", ""), 200)
	check("admin cancel", post("/admin/v1/jobs/"+w.submit(t, "thumbnail")+"/cancel", ""), 200)
	check("cancel of no job", post("/v1/jobs/req_01JD4X5Y6Z7A8B9C0D1E2F3G4H/cancel", ""), 404)
	w.submit(t, "transcode") // no deadline: the claim says null
	check("claim of a job without a deadline", as(key, post("/v1/worker/claim", transcodeClaim)), 200)

	_, path := w.approval(t)
	check("completion", withAuth(post(path, `{"result":{"approved":true}}`), "-"), 200)
	w.clock.Advance(time.Millisecond)
	check("completion again", withAuth(post(path, `{"result":{"approved":true}}`), "-"), 409)
	check("forged completion", withAuth(post("/v1/completions/forged", `{"result":1}`), "-"), 404)
	_, path = w.approval(t)
	check("completion with result and error", withAuth(post(path, `{"result":1,"error":{"code":"x","message":"y"}}`), "-"), 422)
	check("failure through a completion", withAuth(post(path, `{"error":{"code":"rejected","message":"no"}}`), "-"), 200)

	check("delete worker", request{method: http.MethodDelete, path: "/admin/v1/workers/" + created.ID}, 204)
	check("delete it again", request{method: http.MethodDelete, path: "/admin/v1/workers/" + created.ID}, 404)
	check("claim with a revoked key", as(key, post("/v1/worker/claim", transcodeClaim)), 401)
	check("client key on a worker route", as(keyA, post("/v1/worker/claim", transcodeClaim)), 401)
}

package handlers_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/handlers"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/webhooks"
)

func wantKeys(t *testing.T, what string, m map[string]any, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := keysOf(m); !slices.Equal(got, want) {
		t.Errorf("%s keys = %v, want %v", what, got, want)
	}
}

func wantTime(t *testing.T, what string, v any) time.Time {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%s = %v, want an RFC 3339 string", what, v)
	}
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("%s = %q: %v", what, s, err)
	}
	return tm
}

func TestSubmit(t *testing.T) {
	for _, real := range []bool{false, true} {
		name := "fake"
		if real {
			name = "real"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv()
			if real {
				e.useRealJobs(t)
			}
			body := job(`"payload":{"n":1e400,"s":"é"}`, `"metadata":{"order":"42"}`)
			w := e.do(t, post("/v1/jobs", body))
			m := object(t, w, http.StatusAccepted)
			wantKeys(t, "submit", m, "requestId", "status", "statusUrl")
			id, _ := m["requestId"].(string)
			if !strings.HasPrefix(id, "req_") || m["status"] != "ACCEPTED" || m["statusUrl"] != "/v1/jobs/"+id {
				t.Errorf("body %v", m)
			}
			if loc := w.Header().Get("Location"); loc != "/v1/jobs/"+id {
				t.Errorf("Location %q", loc)
			}
			if w.Header().Get("X-Request-Id") != id || w.Header().Get("Idempotent-Replayed") != "" {
				t.Errorf("headers %v", w.Header())
			}

			// The job can be read back by its owner.
			g := object(t, e.do(t, get("/v1/jobs/"+id)), http.StatusOK)
			if g["requestId"] != id || g["type"] != "echo" || g["status"] != "ACCEPTED" || (g["callbackUrl"] != okCallback && g["callbackUrl"] != "https://example.com:443/hook") {
				t.Errorf("job %v", g)
			}
			if md, _ := g["metadata"].(map[string]any); md["order"] != "42" {
				t.Errorf("metadata %v", g["metadata"])
			}
			if _, ok := g["payload"]; ok {
				t.Error("the job view shows the payload")
			}
			// ... and by nobody else.
			if w := e.do(t, withAuth(get("/v1/jobs/"+id), "Bearer "+keyB)); w.Code != http.StatusNotFound {
				t.Errorf("client B reads A's job: %d", w.Code)
			}
		})
	}
}

func TestIdempotentReplay(t *testing.T) {
	for _, real := range []bool{false, true} {
		t.Run(map[bool]string{false: "fake", true: "real"}[real], func(t *testing.T) {
			e := newEnv()
			if real {
				e.useRealJobs(t)
			}
			rq := withHeader(post("/v1/jobs", job(`"payload":[1,2]`)), "Idempotency-Key", "order-7")
			w1 := e.do(t, rq)
			first := object(t, w1, http.StatusAccepted)
			w2 := e.do(t, rq)
			second := object(t, w2, http.StatusAccepted)
			if first["requestId"] != second["requestId"] {
				t.Errorf("replay made a new job: %v then %v", first, second)
			}
			if w1.Header().Get("Idempotent-Replayed") != "" || w2.Header().Get("Idempotent-Replayed") != "true" {
				t.Errorf("Idempotent-Replayed: first %q, second %q", w1.Header().Get("Idempotent-Replayed"), w2.Header().Get("Idempotent-Replayed"))
			}
			if w2.Header().Get("Location") != w1.Header().Get("Location") {
				t.Error("Location differs on replay")
			}
			// Another client may use the same key for its own job.
			w3 := e.do(t, withAuth(rq, "Bearer "+keyB))
			if third := object(t, w3, http.StatusAccepted); third["requestId"] == first["requestId"] {
				t.Error("the key is shared across clients")
			}
			// The same key with another body conflicts.
			w4 := e.do(t, withHeader(post("/v1/jobs", job(`"payload":[1,3]`)), "Idempotency-Key", "order-7"))
			if w4.Code != http.StatusConflict {
				t.Errorf("different body, same key: %d %s", w4.Code, w4.Body)
			}
		})
	}
}

func TestGetJob(t *testing.T) {
	e := newEnv()
	e.jobs.put(jobs.Job{ID: "req_0D0NE000000000000000000000", ClientID: clientA, Type: "echo", Status: jobs.StatusCompleted,
		Payload: json.RawMessage(`{"in":1}`), Result: json.RawMessage(`{"out":2}`), CallbackURL: okCallback,
		Metadata: map[string]string{"order": "42"}, CreatedAt: t0, UpdatedAt: *at(2), CompletedAt: at(1),
		Attempts: 1, DeliveryID: "msg_0D0NE000000000000000000000"})
	e.jobs.put(jobs.Job{ID: "req_0FA11ED0000000000000000000", ClientID: clientA, Type: "echo", Status: jobs.StatusFailed,
		Error: &jobs.Error{Code: "upstream_4xx", Message: "upstream answered 400"}, CallbackURL: okCallback,
		CreatedAt: t0, UpdatedAt: *at(1), CompletedAt: at(1), DeliveryID: "msg_0PEND1NG000000000000000000"})
	e.jobs.put(jobs.Job{ID: "req_0G0NE000000000000000000000", ClientID: clientA, Type: "echo", Status: jobs.StatusCompleted,
		Result: json.RawMessage(`"x"`), CallbackURL: okCallback, CreatedAt: t0, UpdatedAt: t0, CompletedAt: at(0), DeliveryID: "msg_0EXP1RED000000000000000000"})

	m := object(t, e.do(t, get("/v1/jobs/req_0D0NE000000000000000000000")), http.StatusOK)
	wantKeys(t, "job", m, "requestId", "type", "status", "attempt", "result", "callbackUrl", "metadata", "createdAt", "updatedAt", "completedAt", "delivery")
	if got := wantTime(t, "createdAt", m["createdAt"]); !got.Equal(t0) {
		t.Errorf("createdAt %v", got)
	}
	wantTime(t, "updatedAt", m["updatedAt"])
	wantTime(t, "completedAt", m["completedAt"])
	if !reflect.DeepEqual(m["result"], map[string]any{"out": 2.0}) {
		t.Errorf("result %v", m["result"])
	}
	d, _ := m["delivery"].(map[string]any)
	wantKeys(t, "delivery summary", d, "id", "status", "attempts", "lastAttemptAt", "lastStatusCode")
	if d["id"] != "msg_0D0NE000000000000000000000" || d["status"] != "DELIVERED" || d["attempts"] != 2.0 || d["lastStatusCode"] != 200.0 {
		t.Errorf("delivery %v", d)
	}
	wantTime(t, "delivery.lastAttemptAt", d["lastAttemptAt"])

	m = object(t, e.do(t, get("/v1/jobs/req_0FA11ED0000000000000000000")), http.StatusOK)
	wantKeys(t, "failed job", m, "requestId", "type", "status", "error", "callbackUrl", "createdAt", "updatedAt", "completedAt", "delivery")
	if !reflect.DeepEqual(m["error"], map[string]any{"code": "upstream_4xx", "message": "upstream answered 400"}) {
		t.Errorf("error %v", m["error"])
	}
	d, _ = m["delivery"].(map[string]any)
	wantKeys(t, "pending delivery summary", d, "id", "status", "attempts", "nextAttemptAt")

	// A delivery that cannot be read leaves the summary out, not the job.
	m = object(t, e.do(t, get("/v1/jobs/req_0G0NE000000000000000000000")), http.StatusOK)
	if _, ok := m["delivery"]; ok {
		t.Errorf("summary of a missing delivery: %v", m["delivery"])
	}
}

func TestNotFoundLooksTheSame(t *testing.T) {
	e := newEnv()
	e.jobs.put(jobs.Job{ID: "req_00000000000B00000000000000", ClientID: clientB, Type: "echo", Status: jobs.StatusAccepted, CreatedAt: t0, UpdatedAt: t0})
	other := e.do(t, get("/v1/jobs/req_00000000000B00000000000000"))
	missing := e.do(t, get("/v1/jobs/req_00000000000X00000000000000"))
	if other.Code != http.StatusNotFound || missing.Code != http.StatusNotFound {
		t.Fatalf("status %d and %d", other.Code, missing.Code)
	}
	norm := func(s string) string {
		return strings.ReplaceAll(s, "req_00000000000B00000000000000", "req_00000000000X00000000000000")
	}
	if norm(other.Body.String()) != missing.Body.String() {
		t.Errorf("another client's job:\n%s\na missing job:\n%s", other.Body, missing.Body)
	}
	if !reflect.DeepEqual(other.Header(), missing.Header()) {
		t.Errorf("headers differ: %v vs %v", other.Header(), missing.Header())
	}
}

func TestClientsAdmin(t *testing.T) {
	e := newEnv()
	w := e.do(t, post("/admin/v1/clients", `{"name":"  Acme Corp  "}`))
	m := object(t, w, http.StatusCreated)
	wantKeys(t, "created client", m, "id", "name", "createdAt", "keys", "apiKey", "signingSecret")
	id, _ := m["id"].(string)
	apiKey, _ := m["apiKey"].(string)
	secret, _ := m["signingSecret"].(string)
	if id == "" || apiKey == "" || secret == "" || m["name"] != "Acme Corp" {
		t.Fatalf("created %v", m)
	}
	if w.Header().Get("Location") != "/admin/v1/clients/"+id {
		t.Errorf("Location %q", w.Header().Get("Location"))
	}

	// The new key works on the client API.
	if w := e.do(t, withAuth(get("/v1/jobs/req_0N0NE000000000000000000000"), "Bearer "+apiKey)); w.Code != http.StatusNotFound {
		t.Errorf("new key: %d %s", w.Code, w.Body)
	}

	// A GET shows neither secret.
	g := e.do(t, get("/admin/v1/clients/"+id))
	c := object(t, g, http.StatusOK)
	wantKeys(t, "client", c, "id", "name", "createdAt", "keys")
	if strings.Contains(g.Body.String(), apiKey) || strings.Contains(g.Body.String(), secret) {
		t.Errorf("GET client reveals a secret: %s", g.Body)
	}
	keys, _ := c["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("keys %v", c["keys"])
	}
	wantKeys(t, "key", keys[0].(map[string]any), "id", "hint", "createdAt")

	// Add a key, then revoke the first.
	ak := object(t, e.do(t, post("/admin/v1/clients/"+id+"/keys", "")), http.StatusCreated)
	wantKeys(t, "added key", ak, "id", "hint", "createdAt", "apiKey")
	if w := e.do(t, withAuth(get("/v1/jobs/req_0N0NE000000000000000000000"), "Bearer "+ak["apiKey"].(string))); w.Code != http.StatusNotFound {
		t.Errorf("added key: %d", w.Code)
	}
	firstKey := keys[0].(map[string]any)["id"].(string)
	if w := e.do(t, request{method: http.MethodDelete, path: "/admin/v1/clients/" + id + "/keys/" + firstKey}); w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Errorf("revoke: %d %q", w.Code, w.Body)
	}

	// Rotate the signing secret.
	before := time.Now().UTC().Truncate(time.Second)
	rs := object(t, e.do(t, post("/admin/v1/clients/"+id+"/secret/rotate", "")), http.StatusOK)
	wantKeys(t, "rotation", rs, "signingSecret", "previousSecretValidUntil")
	if rs["signingSecret"] != "whsec_rotated_xyzzy" {
		t.Errorf("rotation %v", rs)
	}
	if until := wantTime(t, "previousSecretValidUntil", rs["previousSecretValidUntil"]); until.Before(before.Add(e.deps.Grace)) {
		t.Errorf("previousSecretValidUntil %v is before now + grace", until)
	}

	// List with paging.
	p1 := object(t, e.do(t, get("/admin/v1/clients?limit=2")), http.StatusOK)
	wantKeys(t, "page", p1, "data", "nextCursor")
	if data, _ := p1["data"].([]any); len(data) != 2 {
		t.Errorf("page 1 %v", p1)
	}
	p2 := object(t, e.do(t, get("/admin/v1/clients?limit=2&cursor="+p1["nextCursor"].(string))), http.StatusOK)
	wantKeys(t, "last page", p2, "data")
	if data, _ := p2["data"].([]any); len(data) != 1 || data[0].(map[string]any)["id"] != id {
		t.Errorf("page 2 %v", p2)
	}

	// Disable: 204, then its keys are refused.
	if w := e.do(t, request{method: http.MethodDelete, path: "/admin/v1/clients/" + id}); w.Code != http.StatusNoContent {
		t.Errorf("disable: %d %s", w.Code, w.Body)
	}
	if w := e.do(t, withAuth(get("/v1/jobs/req_0N0NE000000000000000000000"), "Bearer "+ak["apiKey"].(string))); w.Code != http.StatusUnauthorized {
		t.Errorf("disabled client's key: %d", w.Code)
	}
}

func TestListJobs(t *testing.T) {
	e := newEnv()
	for i, st := range []jobs.Status{jobs.StatusCompleted, jobs.StatusAccepted, jobs.StatusCompleted, jobs.StatusCompleted} {
		e.jobs.put(jobs.Job{ID: fmt.Sprintf("req_0M%d%024d", i, 0), ClientID: clientA, Type: "echo", Status: st,
			CallbackURL: okCallback, CreatedAt: t0, UpdatedAt: t0})
	}
	m := object(t, e.do(t, get("/admin/v1/jobs?status=COMPLETED&clientId=cli_0A000000000000000000000000&limit=2")), http.StatusOK)
	if e.jobs.gotFilter != (jobs.Filter{Status: jobs.StatusCompleted, ClientID: clientA}) {
		t.Errorf("filter %+v", e.jobs.gotFilter)
	}
	data, _ := m["data"].([]any)
	if len(data) != 2 || m["nextCursor"] == nil {
		t.Fatalf("page %v", m)
	}
	// The admin view names the client.
	wantKeys(t, "admin job", data[0].(map[string]any), "requestId", "clientId", "type", "status", "callbackUrl", "createdAt", "updatedAt")
	m = object(t, e.do(t, get("/admin/v1/jobs?status=COMPLETED&cursor="+m["nextCursor"].(string))), http.StatusOK)
	if data, _ := m["data"].([]any); len(data) != 1 {
		t.Errorf("page 2 %v", m)
	}
	// An empty list is [], not null.
	if w := e.do(t, get("/admin/v1/jobs?status=FAILED")); !strings.Contains(w.Body.String(), `"data":[]`) {
		t.Errorf("empty page %s", w.Body)
	}
}

func TestDeliveriesAdmin(t *testing.T) {
	e := newEnv()
	m := object(t, e.do(t, get("/admin/v1/deliveries?limit=2&clientId=cli_0A000000000000000000000000&since=2026-11-26T00:00:00Z&until=2026-11-27T00:00:00.5Z")), http.StatusOK)
	f := e.deliveries.gotFilter
	if f.ClientID != clientA || !f.Since.Equal(time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)) ||
		!f.Until.Equal(time.Date(2026, 11, 27, 0, 0, 0, 5e8, time.UTC)) {
		t.Errorf("filter %+v", f)
	}
	data, _ := m["data"].([]any)
	if len(data) != 2 || m["nextCursor"] != nil {
		t.Errorf("page %v", m)
	}
	m = object(t, e.do(t, get("/admin/v1/deliveries?limit=1")), http.StatusOK)
	if m["nextCursor"] == nil {
		t.Errorf("no nextCursor: %v", m)
	}
	first, _ := m["data"].([]any)[0].(map[string]any)
	if _, ok := first["attempts"].(float64); !ok {
		t.Errorf("list shows attempts as %T, want the count", first["attempts"])
	}

	// One delivery with its attempt log.
	d := object(t, e.do(t, get("/admin/v1/deliveries/msg_0D0NE000000000000000000000")), http.StatusOK)
	attempts, ok := d["attempts"].([]any)
	if !ok || len(attempts) != 2 || d["attemptCount"] != 2.0 {
		t.Fatalf("attempts %v, attemptCount %v", d["attempts"], d["attemptCount"])
	}
	if _, ok := d["attemptLog"]; ok {
		t.Error("attemptLog is shown besides attempts")
	}
	a0 := attempts[0].(map[string]any)
	wantKeys(t, "attempt", a0, "number", "startedAt", "durationMs", "url", "requestHeaders", "statusCode",
		"responseHeaders", "responseBody", "errorClass", "error", "outcome", "nextAttemptAt")
	wantTime(t, "startedAt", a0["startedAt"])
	// No attempts yet: an empty array.
	d = object(t, e.do(t, get("/admin/v1/deliveries/msg_0PEND1NG000000000000000000")), http.StatusOK)
	if a, ok := d["attempts"].([]any); !ok || len(a) != 0 || d["attemptCount"] != 0.0 {
		t.Errorf("pending: attempts %v, attemptCount %v", d["attempts"], d["attemptCount"])
	}

	// Replay one.
	r := object(t, e.do(t, post("/admin/v1/deliveries/msg_0D0NE000000000000000000000/replay", "")), http.StatusAccepted)
	if r["id"] != "msg_0D0NE000000000000000000000" || r["status"] != "PENDING" || r["replays"] != 1.0 {
		t.Errorf("replay %v", r)
	}
	// Now it is pending, so again is a conflict.
	if w := e.do(t, post("/admin/v1/deliveries/msg_0D0NE000000000000000000000/replay", "")); w.Code != http.StatusConflict {
		t.Errorf("second replay %d", w.Code)
	}
}

func TestBulkReplay(t *testing.T) {
	e := newEnv()
	w := e.do(t, post("/admin/v1/deliveries/replay", `{}`))
	m := object(t, w, http.StatusAccepted)
	wantKeys(t, "bulk replay", m, "replayId", "dryRun", "state", "matched", "replayed", "skipped", "createdAt", "updatedAt", "filter")
	id, _ := m["replayId"].(string)
	if id == "" || m["matched"] != 1.0 || m["state"] != "running" || m["dryRun"] != false {
		t.Errorf("replay %v", m)
	}
	if !reflect.DeepEqual(m["filter"], map[string]any{"status": "FAILED"}) {
		t.Errorf("default filter %v", m["filter"])
	}
	if w.Header().Get("Location") != "/admin/v1/replays/"+id {
		t.Errorf("Location %q", w.Header().Get("Location"))
	}
	g := object(t, e.do(t, get("/admin/v1/replays/"+id)), http.StatusOK)
	if g["replayId"] != id || g["matched"] != 1.0 {
		t.Errorf("get replay %v", g)
	}

	m = object(t, e.do(t, post("/admin/v1/deliveries/replay",
		`{"status":"DELIVERED","clientId":"cli_0A000000000000000000000000","since":"2026-11-01T00:00:00Z","until":"2026-12-01T00:00:00Z","dryRun":true}`)), http.StatusAccepted)
	if !e.deliveries.gotDryRun || m["state"] != "done" || m["finishedAt"] == nil || m["matched"] != 1.0 {
		t.Errorf("dry run %v", m)
	}
	if f, _ := m["filter"].(map[string]any); len(f) != 4 || f["clientId"] != "cli_0A000000000000000000000000" {
		t.Errorf("filter %v", m["filter"])
	}
	// An empty body is not a request for everything.
	if w := e.do(t, request{method: http.MethodPost, path: "/admin/v1/deliveries/replay"}); w.Code != http.StatusBadRequest {
		t.Errorf("empty body: %d", w.Code)
	}
}

func TestHealth(t *testing.T) {
	e := newEnv()
	for _, serve := range []int{handlers.ServePublic, handlers.ServeAdmin} {
		e.serve = serve
		m := object(t, e.do(t, get("/healthz")), http.StatusOK)
		if m["status"] != "ok" {
			t.Errorf("healthz %v", m)
		}
		m = object(t, e.do(t, get("/readyz")), http.StatusOK)
		if m["status"] != "ready" {
			t.Errorf("readyz %v", m)
		}
	}
	e.readyErr = errors.New("dial tcp 10.1.2.3:6379: connect: connection refused")
	w := e.do(t, get("/readyz"))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d", w.Code)
	}
	p := problem(t, w)
	if p.Type != handlers.ProblemBase+"service-unavailable" || w.Header().Get("Retry-After") == "" {
		t.Errorf("readyz problem %+v, headers %v", p, w.Header())
	}
	if strings.Contains(w.Body.String(), "10.1.2.3") {
		t.Errorf("readyz reveals the internal error: %s", w.Body)
	}
	if !strings.Contains(e.logs.String(), "10.1.2.3") {
		t.Error("the reason is not logged")
	}
	// Probes are not logged as requests.
	if strings.Contains(e.logs.String(), "http request") {
		t.Errorf("probe logged: %s", e.logs)
	}
}

func TestServeSplit(t *testing.T) {
	admin := []request{
		get("/admin/v1/clients"), post("/admin/v1/clients", `{"name":"x"}`), get("/admin/v1/clients/cli_0A000000000000000000000000"),
		{method: http.MethodDelete, path: "/admin/v1/clients/cli_0A000000000000000000000000"}, post("/admin/v1/clients/cli_0A000000000000000000000000/keys", ""),
		{method: http.MethodDelete, path: "/admin/v1/clients/cli_0A000000000000000000000000/keys/key_0A000000000000000000000000"}, post("/admin/v1/clients/cli_0A000000000000000000000000/secret/rotate", ""),
		get("/admin/v1/jobs"), get("/admin/v1/deliveries"), post("/admin/v1/deliveries/replay", `{}`),
		get("/admin/v1/deliveries/msg_0D0NE000000000000000000000"), post("/admin/v1/deliveries/msg_0D0NE000000000000000000000/replay", ""), get("/admin/v1/replays/rpl_01000000000000000000000000"),
	}
	public := []request{post("/v1/jobs", job()), get("/v1/jobs/req_0X000000000000000000000000"), {method: http.MethodPut, path: "/v1/jobs"}}

	check := func(t *testing.T, serve int, reqs []request) {
		for _, rq := range reqs {
			e := newEnv()
			e.serve = serve
			w := e.do(t, rq)
			if w.Code != http.StatusNotFound {
				t.Errorf("%s %s: %d, want 404", rq.method, rq.path, w.Code)
				continue
			}
			if p := problem(t, w); p.Type != handlers.ProblemBase+"not-found" {
				t.Errorf("%s %s: %s", rq.method, rq.path, p.Type)
			}
			if w.Header().Get("WWW-Authenticate") != "" || w.Header().Get("Allow") != "" {
				t.Errorf("%s %s: the hidden part shows through: %v", rq.method, rq.path, w.Header())
			}
		}
	}
	t.Run("public only", func(t *testing.T) { check(t, handlers.ServePublic, admin) })
	t.Run("admin only", func(t *testing.T) { check(t, handlers.ServeAdmin, public) })

	// And each part still answers where it is served.
	e := newEnv()
	e.serve = handlers.ServeAdmin
	object(t, e.do(t, get("/admin/v1/clients")), http.StatusOK)
	e.serve = handlers.ServePublic
	object(t, e.do(t, post("/v1/jobs", job())), http.StatusAccepted)
}

// TestSecretsNeverEchoed sends recognisable secrets as bearer tokens and in
// other headers to every route, well-formed or not, and looks for them in
// every answer and in the log.
func TestSecretsNeverEchoed(t *testing.T) {
	const canary = "bmr_CANARY_s3cr3t_9f8e7d6c5b4a"
	e := newEnv()
	e.useRealJobs(t)
	var reqs []request
	for _, rq := range badInputs {
		reqs = append(reqs, rq.req)
	}
	reqs = append(reqs, get("/healthz"), get("/readyz"), get("/admin/v1/jobs"), post("/admin/v1/clients", `{"name":"n"}`))
	auths := []string{"Bearer " + canary, "bearer " + canary, canary, "Basic " + canary, "Bearer " + canary + strings.Repeat("x", 200)}
	n := 0
	for _, rq := range reqs {
		for _, auth := range auths {
			rq := rq
			rq.auth = auth
			rq.header = map[string]string{"Idempotency-Key": canary, "Cookie": "session=" + canary}
			w := e.do(t, rq)
			n++
			if strings.Contains(w.Body.String(), "CANARY") {
				t.Errorf("%s %s with %q: body %s", rq.method, rq.path, auth, w.Body)
			}
			for k, vs := range w.Header() {
				if strings.Contains(strings.Join(vs, " "), "CANARY") {
					t.Errorf("%s %s: header %s: %v", rq.method, rq.path, k, vs)
				}
			}
		}
	}
	// A valid admin token must not appear either, even when a request fails.
	for _, rq := range []request{post("/admin/v1/clients", `{"name":`), get("/admin/v1/jobs?limit=0"), get("/admin/v1/nope")} {
		if w := e.do(t, rq); strings.Contains(w.Body.String(), adminToken) {
			t.Errorf("admin token echoed: %s", w.Body)
		}
	}
	if strings.Contains(e.logs.String(), "CANARY") || strings.Contains(e.logs.String(), adminToken) {
		t.Errorf("secret in the log:\n%s", e.logs)
	}
	t.Logf("%d requests, no secret echoed", n)
}

func TestRequestLog(t *testing.T) {
	e := newEnv()
	w := e.do(t, post("/v1/jobs", job()))
	id := w.Header().Get("X-Request-Id")
	e.do(t, get("/v1/jobs/"+id))
	e.do(t, get("/nope"))
	log := e.logs.String()
	lines := strings.Split(strings.TrimSpace(log), "\n")
	if len(lines) != 3 {
		t.Fatalf("want one line per request, got:\n%s", log)
	}
	for i, want := range []string{"method=POST path=/v1/jobs status=202", "method=GET path=/v1/jobs/" + id + " status=200", "status=404"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d %q lacks %q", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[0], "requestId="+id) {
		t.Errorf("submit line lacks the request id: %s", lines[0])
	}
	if strings.Contains(log, keyA) {
		t.Error("the API key is logged")
	}
	// A nil logger is allowed.
	e.deps.Logger = nil
	object(t, e.do(t, get("/admin/v1/clients")), http.StatusOK)
}

func TestBodyLimitWording(t *testing.T) {
	for _, tc := range []struct {
		max  int64
		want string
	}{{1000, "1000 bytes"}, {2 << 10, "2 KiB"}, {1 << 20, "1 MiB"}, {1<<20 + 1, "1048577 bytes"}} {
		e := newEnv()
		e.deps.MaxBody = tc.max
		w := e.do(t, post("/v1/jobs", job(`"payload":"`+strings.Repeat("x", int(tc.max))+`"`)))
		if w.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("max %d: %d", tc.max, w.Code)
		}
		if p := problem(t, w); !strings.HasSuffix(p.Detail, tc.want) {
			t.Errorf("max %d: detail %q, want it to end in %q", tc.max, p.Detail, tc.want)
		}
	}
}

func TestDetails(t *testing.T) {
	e := newEnv()
	long := strings.Repeat("k", 100)
	p := problem(t, e.do(t, post("/v1/jobs", `{"`+long+`":1,"`+long+`":2}`)))
	if !strings.Contains(p.Detail, "…") || strings.Contains(p.Detail, long) {
		t.Errorf("a long key is not shortened: %q", p.Detail)
	}
	// Several unknown fields are all named, in order.
	p = problem(t, e.do(t, post("/v1/jobs", job(`"zeta":1`, `"Type":"x"`, `"alpha":2`))))
	var names []string
	for _, f := range p.Errors {
		names = append(names, f.Field)
	}
	if !slices.Equal(names, []string{"Type", "alpha", "zeta"}) {
		t.Errorf("fields %v", names)
	}
	// Content-Type variants that are JSON.
	for _, ct := range []string{"application/json; charset=utf-8", "application/merge-patch+json", "APPLICATION/JSON"} {
		if w := e.do(t, withHeader(post("/v1/jobs", job()), "Content-Type", ct)); w.Code != http.StatusAccepted {
			t.Errorf("Content-Type %q: %d %s", ct, w.Code, w.Body)
		}
	}
	// No Content-Type at all is taken as JSON.
	if w := e.do(t, withHeader(post("/v1/jobs", job()), "Content-Type", "")); w.Code != http.StatusAccepted {
		t.Errorf("no Content-Type: %d", w.Code)
	}
}

// Status filters take any case: failed, Failed and FAILED are one filter.
func TestStatusFiltersIgnoreCase(t *testing.T) {
	for _, st := range []string{"failed", "Failed", "FAILED"} {
		e := newEnv()
		object(t, e.do(t, get("/admin/v1/jobs?status="+st)), http.StatusOK)
		if e.jobs.gotFilter.Status != jobs.StatusFailed {
			t.Errorf("jobs ?status=%s: filter %q, want FAILED", st, e.jobs.gotFilter.Status)
		}
		object(t, e.do(t, get("/admin/v1/deliveries?status="+st)), http.StatusOK)
		if e.deliveries.gotFilter.Status != webhooks.StatusFailed {
			t.Errorf("deliveries ?status=%s: filter %q, want FAILED", st, e.deliveries.gotFilter.Status)
		}
	}
}

package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/handlers"
	"github.com/boomerang-dev/boomerang/jobs"
)

const okCallback = "https://example.com/hook"

// job is a submission body: the fields given, as raw JSON members, or a
// good default for type and callbackUrl when not given.
func job(members ...string) string {
	has := func(k string) bool {
		for _, m := range members {
			if strings.HasPrefix(m, `"`+k+`"`) {
				return true
			}
		}
		return false
	}
	all := slices.Clone(members)
	if !has("type") && !has("-type") {
		all = append([]string{`"type":"echo"`}, all...)
	}
	if !has("callbackUrl") && !has("-callbackUrl") {
		all = append(all, `"callbackUrl":"`+okCallback+`"`)
	}
	all = slices.DeleteFunc(all, func(m string) bool { return strings.HasPrefix(m, `"-`) })
	return "{" + strings.Join(all, ",") + "}"
}

func cb(url string) string { return `"callbackUrl":"` + url + `"` }

func manyKeys(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%02d":"v"`, i)
	}
	return `"metadata":{` + strings.Join(parts, ",") + "}"
}

// internalText is the text of an unexpected error; it must never reach a client.
const internalText = "pq: relation jobs_secret_shard_7 exploded"

type badInput struct {
	name   string
	req    request
	real   bool // through a real jobs.Service on Redis
	setup  func(t *testing.T, e *env)
	status int
	slug   string
	field  string // must appear in errors[].field
	check  func(t *testing.T, w *httptest.ResponseRecorder, p handlers.Problem)
}

func post(path, body string) request { return request{method: http.MethodPost, path: path, body: body} }
func get(path string) request        { return request{method: http.MethodGet, path: path} }

func withHeader(r request, k, v string) request {
	r.header = map[string]string{k: v}
	return r
}

func withAuth(r request, auth string) request {
	r.auth = auth
	return r
}

func header(name, want string) func(t *testing.T, w *httptest.ResponseRecorder, _ handlers.Problem) {
	return func(t *testing.T, w *httptest.ResponseRecorder, _ handlers.Problem) {
		t.Helper()
		if got := w.Header().Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func detailHas(s string) func(t *testing.T, w *httptest.ResponseRecorder, p handlers.Problem) {
	return func(t *testing.T, _ *httptest.ResponseRecorder, p handlers.Problem) {
		t.Helper()
		if !strings.Contains(p.Detail, s) {
			t.Errorf("detail %q lacks %q", p.Detail, s)
		}
	}
}

func all(checks ...func(t *testing.T, w *httptest.ResponseRecorder, p handlers.Problem)) func(t *testing.T, w *httptest.ResponseRecorder, p handlers.Problem) {
	return func(t *testing.T, w *httptest.ResponseRecorder, p handlers.Problem) {
		t.Helper()
		for _, c := range checks {
			c(t, w, p)
		}
	}
}

// usableTypes checks the list of types an unknown-type error offers.
func usableTypes(want string) func(t *testing.T, w *httptest.ResponseRecorder, p handlers.Problem) {
	return func(t *testing.T, _ *httptest.ResponseRecorder, p handlers.Problem) {
		t.Helper()
		_, list, ok := strings.Cut(p.Detail, "this client may use: ")
		if !ok || list != want {
			t.Errorf("detail %q offers %q, want exactly %q", p.Detail, list, want)
		}
	}
}

// allowTypes restricts a client to the given job types.
func allowTypes(clientID string, types ...string) func(t *testing.T, e *env) {
	return func(t *testing.T, e *env) {
		if _, err := e.clients.Update(context.Background(), clientID, clients.Update{JobTypes: &types}); err != nil {
			t.Fatal(err)
		}
	}
}

func failWith(err error) func(t *testing.T, e *env) {
	return func(_ *testing.T, e *env) { e.jobs.err, e.clients.err, e.deliveries.err = err, err, err }
}

const bearerWWW = `Bearer realm="boomerang"`

var badInputs = []badInput{
	// --- the body of POST /v1/jobs ---
	{name: "malformed JSON", req: post("/v1/jobs", `{"type":`), status: 400, slug: "malformed-json"},
	{name: "trailing garbage", req: post("/v1/jobs", job()+` {}`), status: 400, slug: "malformed-json"},
	{name: "JSON array", req: post("/v1/jobs", `[{"type":"echo"}]`), status: 400, slug: "malformed-json", check: detailHas("JSON object")},
	{name: "JSON string", req: post("/v1/jobs", `"echo"`), status: 400, slug: "malformed-json", check: detailHas("JSON object")},
	{name: "empty body", req: post("/v1/jobs", ""), status: 400, slug: "malformed-json"},
	{name: "unreadable body", req: request{method: "POST", path: "/v1/jobs", bodyReader: errReader{}}, status: 400, slug: "malformed-json", check: detailHas("could not be read")},
	{name: "bad UTF-8", req: post("/v1/jobs", "{\"type\":\"ech\xff\",\"callbackUrl\":\"https://example.com/\"}"), status: 400, slug: "invalid-utf8"},
	{name: "overlong UTF-8 in metadata", req: post("/v1/jobs", job("\"metadata\":{\"a\":\"\xc0\xaf\"}")), status: 400, slug: "invalid-utf8"},
	{name: "duplicate top-level key", req: post("/v1/jobs", `{"type":"echo","type":"other","callbackUrl":"https://example.com/"}`), status: 400, slug: "duplicate-key", field: "type"},
	{name: "duplicate key spelled with an escape", req: post("/v1/jobs", `{"type":"echo","typ\u0065":"x","callbackUrl":"https://example.com/"}`), status: 400, slug: "duplicate-key", field: "type"},
	{name: "duplicate nested key in metadata", req: post("/v1/jobs", job(`"metadata":{"a":"1","b":"2","a":"3"}`)), status: 400, slug: "duplicate-key", field: "a"},
	{name: "duplicate key deep in payload", req: post("/v1/jobs", job(`"payload":{"list":[{"x":1},{"y":[1,{"z":1,"z":2}]}]}`)), status: 400, slug: "duplicate-key", field: "z"},
	{name: "case variant of a key", req: post("/v1/jobs", job(`"TYPE":"echo"`)), status: 422, slug: "validation-error", field: "TYPE"},
	{name: "body over the limit", req: post("/v1/jobs", job(`"payload":"`+strings.Repeat("x", 1100)+`"`)), status: 413, slug: "body-too-large", check: detailHas("1 KiB")},
	{name: "Content-Type text/plain", req: withHeader(post("/v1/jobs", job()), "Content-Type", "text/plain"), status: 415, slug: "unsupported-media-type"},
	{name: "Content-Type unparsable", req: withHeader(post("/v1/jobs", job()), "Content-Type", "application/json; ;="), status: 415, slug: "unsupported-media-type"},
	{name: "Content-Type form", req: withHeader(post("/v1/jobs", "type=echo"), "Content-Type", "application/x-www-form-urlencoded"), status: 415, slug: "unsupported-media-type"},
	{name: "unknown field callbackURL", req: post("/v1/jobs", job(`"-callbackUrl"`, `"callbackURL":"https://example.com/"`)), status: 422, slug: "validation-error", field: "callbackURL"},
	{name: "unknown field", req: post("/v1/jobs", job(`"priority":5`)), status: 422, slug: "validation-error", field: "priority"},
	{name: "type is a number", req: post("/v1/jobs", job(`"type":7`)), status: 422, slug: "validation-error", field: "type", check: detailHas("must be a string")},
	{name: "metadata is a string", req: post("/v1/jobs", job(`"metadata":"a=b"`)), status: 422, slug: "validation-error", field: "metadata", check: detailHas("must be an object")},
	{name: "metadata value is a number", req: post("/v1/jobs", job(`"metadata":{"a":1}`)), status: 422, slug: "validation-error", field: "metadata"},
	{name: "metadata is an array", req: post("/v1/jobs", job(`"metadata":["a"]`)), status: 422, slug: "validation-error", field: "metadata"},

	// --- validation by the real jobs.Service ---
	{name: "missing type", real: true, req: post("/v1/jobs", job(`"-type"`)), status: 422, slug: "invalid-job-type", field: "type"},
	{name: "unknown type", real: true, req: post("/v1/jobs", job(`"type":"video.transcode"`)), status: 422, slug: "unknown-job-type", field: "type", check: detailHas("echo")},
	{name: "type with bad characters", real: true, req: post("/v1/jobs", job(`"type":"Echo; DROP"`)), status: 422, slug: "invalid-job-type", field: "type"},
	{name: "missing callbackUrl", real: true, req: post("/v1/jobs", job(`"-callbackUrl"`)), status: 422, slug: "invalid-callback-url", field: "callbackUrl"},
	{name: "ftp callbackUrl", real: true, req: post("/v1/jobs", job(cb("ftp://example.com/hook"))), status: 422, slug: "invalid-callback-url", field: "callbackUrl"},
	{name: "callbackUrl with user-info", real: true, req: post("/v1/jobs", job(cb("https://user:pw@example.com/hook"))), status: 422, slug: "invalid-callback-url", field: "callbackUrl"},
	{name: "callbackUrl to 127.0.0.1", real: true, req: post("/v1/jobs", job(cb("http://127.0.0.1:8080/hook"))), status: 422, slug: "invalid-callback-url", field: "callbackUrl"},
	{name: "callbackUrl to cloud metadata", real: true, req: post("/v1/jobs", job(cb("http://169.254.169.254/latest/meta-data/"))), status: 422, slug: "invalid-callback-url", field: "callbackUrl"},
	{name: "callbackUrl to [::1]", real: true, req: post("/v1/jobs", job(cb("http://[::1]/hook"))), status: 422, slug: "invalid-callback-url", field: "callbackUrl"},
	{name: "callbackUrl to 2130706433", real: true, req: post("/v1/jobs", job(cb("http://2130706433/hook"))), status: 422, slug: "invalid-callback-url", field: "callbackUrl"},
	{name: "callbackUrl to 0x7f.1", real: true, req: post("/v1/jobs", job(cb("http://0x7f.1/hook"))), status: 422, slug: "invalid-callback-url", field: "callbackUrl"},
	{name: "callbackUrl to localhost", real: true, req: post("/v1/jobs", job(cb("http://localhost/hook"))), status: 422, slug: "invalid-callback-url", field: "callbackUrl"},
	{name: "callbackUrl over 2048 bytes", real: true, setup: func(_ *testing.T, e *env) { e.deps.MaxBody = 64 << 10 },
		req: post("/v1/jobs", job(cb("https://example.com/"+strings.Repeat("a", 2040)))), status: 422, slug: "invalid-callback-url", field: "callbackUrl"},
	{name: "metadata with 33 keys", real: true, req: post("/v1/jobs", job(manyKeys(33))), status: 422, slug: "metadata-too-large", field: "metadata"},
	{name: "metadata with an empty key", real: true, req: post("/v1/jobs", job(`"metadata":{"":"v"}`)), status: 422, slug: "invalid-metadata", field: "metadata"},
	{name: "Idempotency-Key of 300 bytes", real: true, req: withHeader(post("/v1/jobs", job()), "Idempotency-Key", strings.Repeat("k", 300)), status: 422, slug: "invalid-idempotency-key", field: "Idempotency-Key"},
	{name: "idempotency conflict (real store)", real: true,
		setup: func(t *testing.T, e *env) {
			if _, _, err := e.real.Submit(context.Background(), clientA, jobs.Submission{Type: "echo", CallbackURL: okCallback, IdempotencyKey: "order-1"}); err != nil {
				t.Fatal(err)
			}
		},
		req: withHeader(post("/v1/jobs", job(`"payload":{"different":true}`)), "Idempotency-Key", "order-1"), status: 409, slug: "idempotency-conflict"},
	{name: "bad cursor (real store)", real: true, req: get("/admin/v1/jobs?cursor=" + badCursor), status: 400, slug: "invalid-parameter", field: "cursor"},

	// --- authentication ---
	{name: "missing Authorization", req: withAuth(post("/v1/jobs", job()), "-"), status: 401, slug: "unauthorized",
		check: all(header("WWW-Authenticate", bearerWWW), detailHas("no Authorization header: send Authorization: Bearer <API key> (bmr_…)"))},
	{name: "wrong API key", req: withAuth(get("/v1/jobs/req_0X000000000000000000000000"), "Bearer bmr_wrong"), status: 401, slug: "unauthorized",
		check: all(header("WWW-Authenticate", bearerWWW), detailHas("unknown or revoked"), detailHas("Bearer <API key> (bmr_…)"))},
	{name: "Basic instead of Bearer", req: withAuth(get("/v1/jobs/req_0X000000000000000000000000"), "Basic "+keyA), status: 401, slug: "unauthorized",
		check: detailHas("scheme must be Bearer")},
	{name: "API key without its prefix", req: withAuth(get("/v1/jobs/req_0X000000000000000000000000"), "Bearer client_a_key"), status: 401, slug: "unauthorized",
		check: detailHas("API keys start with bmr_")},
	{name: "disabled client", setup: func(t *testing.T, e *env) { _ = e.clients.Disable(context.Background(), clientA) }, req: get("/v1/jobs/req_0X000000000000000000000000"), status: 401, slug: "unauthorized",
		check: detailHas("client is disabled")},
	{name: "admin route with a client key", req: withAuth(get("/admin/v1/clients"), "Bearer "+keyA), status: 401, slug: "unauthorized",
		check: all(header("WWW-Authenticate", bearerWWW), detailHas("this is a client API key"), detailHas("BOOMERANG_ADMIN_TOKEN"))},
	{name: "admin route with a worker key", req: withAuth(get("/admin/v1/clients"), "Bearer bmw_some_worker_key"), status: 401, slug: "unauthorized",
		check: detailHas("this is a worker key")},
	{name: "admin with wrong token", req: withAuth(get("/admin/v1/jobs"), "Bearer "+adminToken+"x"), status: 401, slug: "unauthorized", check: header("WWW-Authenticate", bearerWWW)},
	{name: "admin without token", req: withAuth(post("/admin/v1/clients", `{"name":"x"}`), "-"), status: 401, slug: "unauthorized",
		check: detailHas("send Authorization: Bearer <admin token>")},
	{name: "admin token on client API", req: withAuth(get("/v1/jobs/req_0X000000000000000000000000"), "Bearer "+adminToken), status: 401, slug: "unauthorized",
		check: all(detailHas("this is the admin token"), detailHas("Bearer <API key> (bmr_…)"))},
	{name: "worker key on client API", req: withAuth(post("/v1/jobs", job()), "Bearer bmw_some_worker_key"), status: 401, slug: "unauthorized",
		check: detailHas("this is a worker key, which works only on /v1/worker routes")},

	// --- lone UTF-16 surrogates: valid JSON syntax, not Unicode ---
	{name: "lone high surrogate in the payload", req: post("/v1/jobs", job(`"payload":{"name":"\ud800"}`)), status: 422, slug: "invalid-unicode", field: "payload",
		check: detailHas("/payload/name")},
	{name: "lone low surrogate in the payload", req: post("/v1/jobs", job(`"payload":["ok","\udfff"]`)), status: 422, slug: "invalid-unicode", field: "payload"},
	{name: "high surrogate followed by a letter", req: post("/v1/jobs", job(`"payload":"\ud83d\u0041"`)), status: 422, slug: "invalid-unicode", field: "payload"},
	{name: "lone surrogate in metadata", req: post("/v1/jobs", job(`"metadata":{"k":"\ud800"}`)), status: 422, slug: "invalid-unicode", field: "metadata"},
	{name: "lone surrogate in a key", req: post("/v1/jobs", job(`"payload":{"\udc00":1}`)), status: 422, slug: "invalid-unicode", field: "payload"},
	{name: "nesting deeper than 10 000 levels", setup: func(_ *testing.T, e *env) { e.deps.MaxBody = 1 << 20 }, req: post("/v1/jobs", job(`"payload":`+strings.Repeat("[", 10001)+strings.Repeat("]", 10001))), status: 400, slug: "malformed-json",
		check: detailHas("10000 levels")},

	// --- ids in paths: a malformed id is not found, and never looked up ---
	{name: "a Redis key as job id", setup: failWith(errors.New(internalText)), req: get("/v1/jobs/idx:c:cli_0A000000000000000000000000"), status: 404, slug: "not-found"},
	{name: "job id with a suffix", setup: failWith(errors.New(internalText)), req: get("/v1/jobs/req_0D0NE000000000000000000000:attempts"), status: 404, slug: "not-found"},
	{name: "job id in lower case", setup: failWith(errors.New(internalText)), req: get("/v1/jobs/req_0d0ne000000000000000000000"), status: 404, slug: "not-found"},
	{name: "delivery id of another kind", setup: failWith(errors.New(internalText)), req: get("/admin/v1/deliveries/req_0D0NE000000000000000000000"), status: 404, slug: "not-found"},
	{name: "replay of a malformed delivery id", setup: failWith(errors.New(internalText)), req: post("/admin/v1/deliveries/bmr:dlv:idx/replay", ""), status: 404, slug: "not-found"},
	{name: "malformed replay id", setup: failWith(errors.New(internalText)), req: get("/admin/v1/replays/running"), status: 404, slug: "not-found"},
	{name: "malformed client id", setup: failWith(errors.New(internalText)), req: get("/admin/v1/clients/bmr:clients"), status: 404, slug: "not-found"},
	{name: "malformed key id", setup: failWith(errors.New(internalText)), req: request{method: http.MethodDelete, path: "/admin/v1/clients/cli_0A000000000000000000000000/keys/1"}, status: 404, slug: "not-found"},
	{name: "malformed client id filter", req: get("/admin/v1/jobs?clientId=x:s:FAILED"), status: 400, slug: "invalid-parameter", field: "clientId"},

	// --- errors that say what to do ---
	{name: "callback without a scheme", real: true, req: post("/v1/jobs", job(cb("127.0.0.1:9000/hook"))), status: 422, slug: "invalid-callback-url", field: "callbackUrl",
		check: detailHas("callbackUrl must start with http:// or https://")},
	{name: "private callback names the settings", real: true, req: post("/v1/jobs", job(cb("http://127.0.0.1:9000/hook"))), status: 422, slug: "invalid-callback-url", field: "callbackUrl",
		check: all(detailHas("BOOMERANG_ALLOW_PRIVATE_CALLBACKS"), detailHas("BOOMERANG_ALLOW_CALLBACK_CIDRS"))},
	{name: "bad status filter lists the valid ones", req: get("/admin/v1/deliveries?status=done"), status: 400, slug: "invalid-parameter", field: "status",
		check: detailHas("one of PENDING, DELIVERED, FAILED")},
	{name: "bad job status filter lists the valid ones", req: get("/admin/v1/jobs?status=running"), status: 400, slug: "invalid-parameter", field: "status",
		check: detailHas("one of ACCEPTED, PROCESSING, COMPLETED, FAILED")},
	{name: "a type the client may not use", real: true, setup: allowTypes(clientA, "echo"), req: post("/v1/jobs", job(`"type":"report.render"`)),
		status: 422, slug: "unknown-job-type", field: "type", check: usableTypes("echo")},
	{name: "unknown type lists only the client's types", real: true, setup: allowTypes(clientA, "echo"), req: post("/v1/jobs", job(`"type":"video"`)),
		status: 422, slug: "unknown-job-type", field: "type", check: usableTypes("echo")},
	{name: "unknown type lists every type of an unrestricted client", real: true, req: post("/v1/jobs", job(`"type":"video"`)),
		status: 422, slug: "unknown-job-type", field: "type", check: usableTypes("echo, report.render")},
	{name: "PATCH a client without a body", req: request{method: http.MethodPatch, path: "/admin/v1/clients/cli_0A000000000000000000000000"}, status: 400, slug: "malformed-json",
		check: detailHas("the body is empty")},
	{name: "PATCH a client with bad job types", req: request{method: http.MethodPatch, path: "/admin/v1/clients/cli_0A000000000000000000000000", body: `{"jobTypes":["echo","a,b"]}`},
		status: 422, slug: "validation-error", field: "jobTypes"},
	{name: "PATCH a client with repeated job types", req: request{method: http.MethodPatch, path: "/admin/v1/clients/cli_0A000000000000000000000000", body: `{"jobTypes":["echo","echo"]}`},
		status: 422, slug: "validation-error", field: "jobTypes"},
	{name: "PATCH a client with an empty name", req: request{method: http.MethodPatch, path: "/admin/v1/clients/cli_0A000000000000000000000000", body: `{"name":"  "}`},
		status: 422, slug: "validation-error", field: "name"},

	// --- routing ---
	{name: "unknown job", req: get("/v1/jobs/req_0M1SS1NG000000000000000000"), status: 404, slug: "not-found"},
	{name: "another client's job", setup: func(t *testing.T, e *env) {
		e.jobs.put(jobs.Job{ID: "req_00FB0000000000000000000000", ClientID: clientB})
	}, req: get("/v1/jobs/req_00FB0000000000000000000000"), status: 404, slug: "not-found"},
	{name: "PUT /v1/jobs", req: request{method: http.MethodPut, path: "/v1/jobs", body: job()}, status: 405, slug: "method-not-allowed", check: header("Allow", "POST")},
	{name: "DELETE a job", req: request{method: http.MethodDelete, path: "/v1/jobs/req_0X000000000000000000000000"}, status: 405, slug: "method-not-allowed", check: header("Allow", "GET")},
	{name: "PUT a client", req: request{method: http.MethodPut, path: "/admin/v1/clients/cli_0A000000000000000000000000"}, status: 405, slug: "method-not-allowed", check: header("Allow", "GET, PATCH, DELETE")},
	{name: "POST /healthz", req: request{method: http.MethodPost, path: "/healthz"}, status: 405, slug: "method-not-allowed", check: header("Allow", "GET")},
	{name: "unknown path", req: get("/v2/jobs"), status: 404, slug: "not-found"},
	{name: "unknown admin path", req: get("/admin/v1/secrets"), status: 404, slug: "not-found"},

	// --- admin query parameters ---
	{name: "limit=0", req: get("/admin/v1/jobs?limit=0"), status: 400, slug: "invalid-parameter", field: "limit"},
	{name: "limit=abc", req: get("/admin/v1/clients?limit=abc"), status: 400, slug: "invalid-parameter", field: "limit"},
	{name: "limit=501", req: get("/admin/v1/deliveries?limit=501"), status: 400, slug: "invalid-parameter", field: "limit"},
	{name: "job status=BOGUS", req: get("/admin/v1/jobs?status=BOGUS"), status: 400, slug: "invalid-parameter", field: "status"},
	{name: "delivery status of a job", req: get("/admin/v1/deliveries?status=ACCEPTED"), status: 400, slug: "invalid-parameter", field: "status"},
	{name: "since=yesterday", req: get("/admin/v1/deliveries?since=yesterday"), status: 400, slug: "invalid-parameter", field: "since"},
	{name: "until not a time", req: get("/admin/v1/deliveries?until=2026-13-01"), status: 400, slug: "invalid-parameter", field: "until"},
	{name: "until before since", req: get("/admin/v1/deliveries?since=2026-11-26T12:00:00Z&until=2026-11-25T12:00:00Z"), status: 400, slug: "invalid-parameter", field: "until"},
	{name: "until equal to since", req: get("/admin/v1/deliveries?since=2026-11-26T12:00:00Z&until=2026-11-26T12:00:00Z"), status: 400, slug: "invalid-parameter", field: "until"},
	{name: "bad cursor for jobs", req: get("/admin/v1/jobs?cursor=" + badCursor), status: 400, slug: "invalid-parameter", field: "cursor"},
	{name: "bad cursor for clients", req: get("/admin/v1/clients?cursor=" + badCursor), status: 400, slug: "invalid-parameter", field: "cursor"},
	{name: "bad cursor for deliveries", req: get("/admin/v1/deliveries?cursor=" + badCursor), status: 400, slug: "invalid-parameter", field: "cursor"},

	// --- admin bodies and resources ---
	{name: "create client without name", req: post("/admin/v1/clients", `{"name":"   "}`), status: 422, slug: "validation-error", field: "name"},
	{name: "create client name too long", req: post("/admin/v1/clients", `{"name":"`+strings.Repeat("n", 201)+`"}`), status: 422, slug: "validation-error", field: "name"},
	{name: "create client name not a string", req: post("/admin/v1/clients", `{"name":["a"]}`), status: 422, slug: "validation-error", field: "name"},
	{name: "create client unknown field", req: post("/admin/v1/clients", `{"name":"a","apiKey":"mine"}`), status: 422, slug: "validation-error", field: "apiKey"},
	{name: "create client duplicate key", req: post("/admin/v1/clients", `{"name":"a","name":"b"}`), status: 400, slug: "duplicate-key", field: "name"},
	{name: "get unknown client", req: get("/admin/v1/clients/cli_0N0B0DY0000000000000000000"), status: 404, slug: "not-found"},
	{name: "disable unknown client", req: request{method: http.MethodDelete, path: "/admin/v1/clients/cli_0N0B0DY0000000000000000000"}, status: 404, slug: "not-found"},
	{name: "add key to unknown client", req: post("/admin/v1/clients/cli_0N0B0DY0000000000000000000/keys", ""), status: 404, slug: "not-found"},
	{name: "revoke unknown key", req: request{method: http.MethodDelete, path: "/admin/v1/clients/cli_0A000000000000000000000000/keys/key_0N0PE000000000000000000000"}, status: 404, slug: "not-found"},
	{name: "rotate secret of unknown client", req: post("/admin/v1/clients/cli_0N0B0DY0000000000000000000/secret/rotate", ""), status: 404, slug: "not-found"},
	{name: "get unknown delivery", req: get("/admin/v1/deliveries/msg_0N0PE000000000000000000000"), status: 404, slug: "not-found"},
	{name: "replay a PENDING delivery", req: post("/admin/v1/deliveries/msg_0PEND1NG000000000000000000/replay", ""), status: 409, slug: "delivery-pending"},
	{name: "replay an unknown delivery", req: post("/admin/v1/deliveries/msg_0N0PE000000000000000000000/replay", ""), status: 404, slug: "not-found"},
	{name: "bulk replay bad status", req: post("/admin/v1/deliveries/replay", `{"status":"LOST"}`), status: 422, slug: "validation-error", field: "status"},
	{name: "bulk replay bad since", req: post("/admin/v1/deliveries/replay", `{"since":"last week"}`), status: 422, slug: "validation-error", field: "since"},
	{name: "bulk replay until before since", req: post("/admin/v1/deliveries/replay", `{"since":"2026-11-26T00:00:00Z","until":"2026-11-01T00:00:00Z"}`), status: 422, slug: "validation-error", field: "until"},
	{name: "bulk replay dryRun not a boolean", req: post("/admin/v1/deliveries/replay", `{"dryRun":"yes"}`), status: 422, slug: "validation-error", field: "dryRun", check: detailHas("boolean")},
	{name: "bulk replay unknown field", req: post("/admin/v1/deliveries/replay", `{"state":"FAILED"}`), status: 422, slug: "validation-error", field: "state"},
	{name: "bulk replay malformed", req: post("/admin/v1/deliveries/replay", `{"status":}`), status: 400, slug: "malformed-json"},
	{name: "bulk replay text/plain", req: withHeader(post("/admin/v1/deliveries/replay", `{}`), "Content-Type", "text/plain"), status: 415, slug: "unsupported-media-type"},
	{name: "retry now a DELIVERED delivery", req: post("/admin/v1/deliveries/msg_0D0NE000000000000000000000/retry-now", ""), status: 409, slug: "delivery-not-pending", check: detailHas("DELIVERED")},
	{name: "retry now a FAILED delivery", req: post("/admin/v1/deliveries/msg_0FA11ED0000000000000000000/retry-now", ""), status: 409, slug: "delivery-not-pending", check: detailHas("FAILED")},
	{name: "retry now an unknown delivery", req: post("/admin/v1/deliveries/msg_0N0PE000000000000000000000/retry-now", ""), status: 404, slug: "not-found"},
	{name: "retry now a malformed id", req: post("/admin/v1/deliveries/req_0PEND1NG000000000000000000/retry-now", ""), status: 404, slug: "not-found"},
	{name: "bulk retry now bad clientId", req: post("/admin/v1/deliveries/retry-now", `{"clientId":"acme"}`), status: 422, slug: "validation-error", field: "clientId"},
	{name: "bulk retry now bad since", req: post("/admin/v1/deliveries/retry-now", `{"since":"yesterday"}`), status: 422, slug: "validation-error", field: "since"},
	{name: "bulk retry now bad until", req: post("/admin/v1/deliveries/retry-now", `{"until":1700000000}`), status: 422, slug: "validation-error", field: "until"},
	{name: "bulk retry now until before since", req: post("/admin/v1/deliveries/retry-now", `{"since":"2026-11-26T00:00:00Z","until":"2026-11-01T00:00:00Z"}`), status: 422, slug: "validation-error", field: "until"},
	{name: "bulk retry now dryRun not a boolean", req: post("/admin/v1/deliveries/retry-now", `{"dryRun":"yes"}`), status: 422, slug: "validation-error", field: "dryRun", check: detailHas("boolean")},
	{name: "bulk retry now with a status", req: post("/admin/v1/deliveries/retry-now", `{"status":"FAILED"}`), status: 422, slug: "validation-error", field: "status"},
	{name: "bulk retry now malformed", req: post("/admin/v1/deliveries/retry-now", `{"clientId":`), status: 400, slug: "malformed-json"},
	{name: "get unknown replay", req: get("/admin/v1/replays/rpl_0N0PE000000000000000000000"), status: 404, slug: "not-found"},

	// --- failures of the layers below ---
	{name: "idempotency conflict", setup: failWith(jobs.ErrIdempotencyConflict), req: post("/v1/jobs", job()), status: 409, slug: "idempotency-conflict"},
	{name: "storage unavailable on submit", setup: failWith(fmt.Errorf("%w: dial: boom", jobs.ErrUnavailable)), req: post("/v1/jobs", job()),
		status: 503, slug: "service-unavailable", check: header("Retry-After", "5")},
	{name: "connection refused on get", setup: failWith(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), req: get("/v1/jobs/req_0X000000000000000000000000"),
		status: 503, slug: "service-unavailable", check: header("Retry-After", "5")},
	{name: "EOF from Redis while authenticating", setup: func(_ *testing.T, e *env) { e.clients.authErr = fmt.Errorf("authenticate: %w", io.EOF) },
		req: get("/v1/jobs/req_0X000000000000000000000000"), status: 503, slug: "service-unavailable"},
	{name: "timeout listing deliveries", setup: failWith(context.DeadlineExceeded), req: get("/admin/v1/deliveries"), status: 503, slug: "service-unavailable"},
	{name: "unexpected error on submit", setup: failWith(errors.New(internalText)), req: post("/v1/jobs", job()), status: 500, slug: "internal-error"},
	{name: "unexpected error on admin", setup: failWith(errors.New(internalText)), req: post("/admin/v1/clients/cli_0A000000000000000000000000/secret/rotate", ""), status: 500, slug: "internal-error"},
	{name: "storage unavailable creating a client", setup: failWith(&net.OpError{Op: "read", Net: "tcp", Err: errors.New("i/o timeout")}),
		req: post("/admin/v1/clients", `{"name":"a"}`), status: 503, slug: "service-unavailable"},
	{name: "unexpected error starting a bulk replay", setup: failWith(errors.New(internalText)), req: post("/admin/v1/deliveries/replay", `{}`), status: 500, slug: "internal-error"},
	{name: "unexpected error in a bulk retry now", setup: failWith(errors.New(internalText)), req: post("/admin/v1/deliveries/retry-now", `{}`), status: 500, slug: "internal-error"},
	{name: "storage unavailable in a retry now", setup: failWith(context.DeadlineExceeded), req: post("/admin/v1/deliveries/msg_0PEND1NG000000000000000000/retry-now", ""), status: 503, slug: "service-unavailable"},
	{name: "unexpected error in authentication", setup: func(_ *testing.T, e *env) { e.clients.authErr = errors.New(internalText) },
		req: get("/v1/jobs/req_0X000000000000000000000000"), status: 500, slug: "internal-error"},
}

func TestBadInputs(t *testing.T) {
	if len(badInputs) < 40 {
		t.Fatalf("only %d rows", len(badInputs))
	}
	t.Logf("%d bad-input rows", len(badInputs))
	for _, tc := range badInputs {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv()
			if tc.real {
				e.useRealJobs(t)
			}
			if tc.setup != nil {
				tc.setup(t, e)
			}
			w := e.do(t, tc.req)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			p := problem(t, w)
			if want := handlers.ProblemBase + tc.slug; p.Type != want {
				t.Errorf("type %q, want %q", p.Type, want)
			}
			if path, _, _ := strings.Cut(tc.req.path, "?"); p.Instance != path {
				t.Errorf("instance %q, want %q", p.Instance, path)
			}
			if tc.field != "" && !slices.ContainsFunc(p.Errors, func(f handlers.FieldError) bool { return f.Field == tc.field }) {
				t.Errorf("errors %+v do not name field %q", p.Errors, tc.field)
			}
			for _, f := range p.Errors {
				if f.Field == "" || f.Code == "" || f.Message == "" {
					t.Errorf("incomplete field error %+v", f)
				}
			}
			switch w.Code {
			case http.StatusUnauthorized:
				if w.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			case http.StatusServiceUnavailable:
				if w.Header().Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
			case http.StatusMethodNotAllowed:
				if w.Header().Get("Allow") == "" {
					t.Error("405 without Allow")
				}
			case http.StatusInternalServerError:
				if strings.Contains(w.Body.String(), "exploded") || p.Detail != "" {
					t.Errorf("500 body reveals the error: %s", w.Body)
				}
				if !strings.Contains(e.logs.String(), "exploded") {
					t.Error("the internal error was not logged")
				}
			}
			if tc.check != nil {
				tc.check(t, w, p)
			}
		})
	}
}

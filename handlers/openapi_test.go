package handlers_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/handlers"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/gorilla/mux"
	"gopkg.in/yaml.v3"
)

const specPath = "../api/openapi.yaml"

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// spec is the parsed OpenAPI document.
type spec struct{ doc map[string]any }

func loadSpec(t *testing.T) spec {
	t.Helper()
	raw, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", specPath, err)
	}
	m, ok := normalize(doc).(map[string]any)
	if !ok {
		t.Fatalf("%s is not a mapping", specPath)
	}
	return spec{m}
}

// normalize turns YAML's maps into map[string]any, whatever their keys.
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = normalize(e)
		}
		return v
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = normalize(e)
		}
		return out
	case []any:
		for i, e := range v {
			v[i] = normalize(e)
		}
	}
	return v
}

func mapAt(v any, keys ...string) map[string]any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	m, _ := v.(map[string]any)
	return m
}

// resolve follows $ref (local references only) until it reaches an object.
func (s spec) resolve(node map[string]any) (map[string]any, error) {
	for range 20 {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node, nil
		}
		if !strings.HasPrefix(ref, "#/") {
			return nil, fmt.Errorf("non-local $ref %q", ref)
		}
		var cur any = s.doc
		for _, part := range strings.Split(ref[2:], "/") {
			part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
			m, _ := cur.(map[string]any)
			if cur = m[part]; cur == nil {
				return nil, fmt.Errorf("$ref %q does not resolve", ref)
			}
		}
		if node, ok = cur.(map[string]any); !ok {
			return nil, fmt.Errorf("$ref %q is not an object", ref)
		}
	}
	return nil, fmt.Errorf("$ref loop at %v", node["$ref"])
}

// operations lists "METHOD /path" of the paths section.
func (s spec) operations() map[string]map[string]any {
	out := map[string]map[string]any{}
	for path, item := range mapAt(s.doc, "paths") {
		for _, m := range httpMethods {
			if op := mapAt(item, m); op != nil {
				out[strings.ToUpper(m)+" "+path] = op
			}
		}
	}
	return out
}

// routes walks the router for "METHOD /template" of every route.
func routes(t *testing.T, serve int) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := handlers.Router(newEnv().deps, serve).Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, err := route.GetMethods()
		if err != nil {
			return nil // a PathPrefix holding a subrouter
		}
		for _, m := range methods {
			out[m+" "+tpl] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOpenAPIMatchesRouter(t *testing.T) {
	s := loadSpec(t)
	if v, _ := s.doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi: %q, want 3.1.x", v)
	}
	router := routes(t, handlers.ServePublic|handlers.ServeAdmin)
	ops := s.operations()
	var missing, extra []string
	for r := range router {
		if ops[r] == nil {
			missing = append(missing, r)
		}
	}
	for op := range ops {
		if !router[op] {
			extra = append(extra, op)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, r := range missing {
		t.Errorf("route not in %s: %s", specPath, r)
	}
	for _, op := range extra {
		t.Errorf("operation in %s that the router does not serve: %s", specPath, op)
	}
	if len(router) < 17 {
		t.Errorf("walked only %d routes: %v", len(router), router)
	}

	// The split listeners serve disjoint halves, health on both.
	pub, adm := routes(t, handlers.ServePublic), routes(t, handlers.ServeAdmin)
	for r := range router {
		health := strings.HasSuffix(r, "/healthz") || strings.HasSuffix(r, "/readyz")
		if strings.Contains(r, " /admin/") != (adm[r] && !pub[r]) && !health || health && !(pub[r] && adm[r]) {
			t.Errorf("%s: public %v, admin %v", r, pub[r], adm[r])
		}
	}
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

func TestOpenAPIOperations(t *testing.T) {
	s := loadSpec(t)
	schemes := mapAt(s.doc, "components", "securitySchemes")
	for _, name := range []string{"clientApiKey", "adminToken", "workerKey"} {
		if sc := mapAt(schemes, name); sc["type"] != "http" || sc["scheme"] != "bearer" {
			t.Errorf("security scheme %s = %v, want http bearer", name, sc)
		}
	}
	for key, op := range s.operations() {
		path := strings.SplitN(key, " ", 2)[1]
		var two bool
		codes := mapAt(op, "responses")
		for code, r := range codes {
			resp, err := s.resolve(r.(map[string]any))
			if err != nil {
				t.Errorf("%s %s: %v", key, code, err)
				continue
			}
			switch code[0] {
			case '2':
				two = true
			case '4', '5':
				schema := mapAt(resp, "content", "application/problem+json", "schema")
				if schema["$ref"] != "#/components/schemas/Problem" {
					t.Errorf("%s %s: not an application/problem+json Problem: %v", key, code, resp["content"])
				}
				if len(mapAt(resp, "content")) != 1 {
					t.Errorf("%s %s: media types besides application/problem+json", key, code)
				}
			default:
				t.Errorf("%s: response %q", key, code)
			}
			if resp["description"] == nil {
				t.Errorf("%s %s: no description", key, code)
			}
		}
		if !two {
			t.Errorf("%s: no 2xx response", key)
		}
		if codes["500"] == nil && strings.Contains(path, "/v1/") {
			t.Errorf("%s: no 500 response", key)
		}

		// Security: the worker key under /v1/worker, none for completion
		// URLs (the token is the credential), the client key elsewhere under
		// /v1, the admin token under /admin/v1, none for health.
		sec, ok := op["security"].([]any)
		want := ""
		switch {
		case strings.HasPrefix(path, "/v1/worker/"):
			want = "workerKey"
		case strings.HasPrefix(path, "/v1/completions/"):
		case strings.HasPrefix(path, "/v1/"):
			want = "clientApiKey"
		case strings.HasPrefix(path, "/admin/v1/"):
			want = "adminToken"
		}
		switch {
		case !ok:
			t.Errorf("%s: no security (say [] for none)", key)
		case want == "" && len(sec) != 0:
			t.Errorf("%s: security %v, want none", key, sec)
		case want != "":
			if len(sec) != 1 || mapAt(sec[0])[want] == nil || len(mapAt(sec[0])) != 1 {
				t.Errorf("%s: security %v, want %s", key, sec, want)
			} else {
				if codes["401"] == nil {
					t.Errorf("%s: authenticated but no 401", key)
				}
			}
		}

		// Every {param} of the path is declared, at path or operation level.
		declared := map[string]bool{}
		params, _ := mapAt(s.doc, "paths", path)["parameters"].([]any)
		own, _ := op["parameters"].([]any)
		for _, p := range append(params, own...) {
			p, err := s.resolve(p.(map[string]any))
			if err != nil {
				t.Errorf("%s: %v", key, err)
				continue
			}
			if p["in"] == "path" {
				if p["required"] != true {
					t.Errorf("%s: path parameter %v not required", key, p["name"])
				}
				declared[p["name"].(string)] = true
			}
		}
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter {%s} not declared", key, m[1])
			}
			delete(declared, m[1])
		}
		for name := range declared {
			t.Errorf("%s: declares path parameter %s not in the path", key, name)
		}

		// Operations that read a body declare it.
		if rb := op["requestBody"]; rb != nil {
			if mapAt(rb, "content", "application/json", "schema") == nil {
				t.Errorf("%s: requestBody without an application/json schema", key)
			}
		}
	}

	// Query parameters of the admin lists.
	for key, want := range map[string][]string{
		"GET /admin/v1/jobs":       {"status", "clientId", "limit", "cursor"},
		"GET /admin/v1/deliveries": {"status", "clientId", "since", "until", "limit", "cursor"},
		"GET /admin/v1/clients":    {"limit", "cursor"},
	} {
		var got []string
		ps, _ := s.operations()[key]["parameters"].([]any)
		for _, p := range ps {
			if p, err := s.resolve(p.(map[string]any)); err == nil && p["in"] == "query" {
				got = append(got, p["name"].(string))
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: query parameters %v, want %v", key, got, want)
		}
	}
	var idem bool
	ps, _ := s.operations()["POST /v1/jobs"]["parameters"].([]any)
	for _, p := range ps {
		if p, err := s.resolve(p.(map[string]any)); err == nil && p["in"] == "header" && p["name"] == "Idempotency-Key" {
			idem = true
		}
	}
	if !idem {
		t.Error("POST /v1/jobs: no Idempotency-Key header parameter")
	}
}

// TestOpenAPIRefs checks that every $ref in the document resolves.
func TestOpenAPIRefs(t *testing.T) {
	s := loadSpec(t)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if _, ok := v["$ref"]; ok {
				if _, err := s.resolve(v); err != nil {
					t.Errorf("%s: %v", path, err)
				}
			}
			for k, e := range v {
				walk(path+"/"+k, e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s/%d", path, i), e)
			}
		}
	}
	walk("#", s.doc)
}

func TestOpenAPIWebhook(t *testing.T) {
	s := loadSpec(t)
	op := mapAt(s.doc, "webhooks", "jobFinished", "post")
	if op == nil {
		t.Fatal("no webhooks.jobFinished.post")
	}
	headers := map[string]bool{}
	ps, _ := op["parameters"].([]any)
	for _, p := range ps {
		if p := mapAt(p); p["in"] == "header" && p["required"] == true {
			headers[p["name"].(string)] = true
		}
	}
	for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		if !headers[h] {
			t.Errorf("webhook header %s not declared as required", h)
		}
	}
	desc, _ := op["description"].(string)
	for _, want := range []string{"2xx", "3xx", "410", "Retry-After", "429", "503", "timeout"} {
		if !strings.Contains(desc, want) {
			t.Errorf("webhook description does not mention %s", want)
		}
	}
	schema := mapAt(op, "requestBody", "content", "application/json", "schema")
	if schema == nil {
		t.Fatal("webhook without an application/json body schema")
	}
	// The bodies jobs.WebhookBody really builds conform to it.
	done := t0.Add(time.Second)
	for _, j := range []jobs.Job{
		{ID: "req_01000000000000000000000000", Type: "echo", Status: jobs.StatusCompleted, Result: json.RawMessage(`{"a":[1,2]}`),
			Metadata: map[string]string{"order": "42"}, CreatedAt: t0, UpdatedAt: done, CompletedAt: &done},
		{ID: "req_02000000000000000000000000", Type: "echo", Status: jobs.StatusFailed, Error: &jobs.Error{Code: "boom", Message: "it broke"},
			CreatedAt: t0, UpdatedAt: done, CompletedAt: &done},
	} {
		body, err := jobs.WebhookBody(j)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		_ = json.Unmarshal(body, &v)
		for _, e := range s.validate("webhook", schema, v) {
			t.Errorf("webhook body %s: %s", body, e)
		}
	}
	// The examples conform too.
	for name, ex := range mapAt(op, "requestBody", "content", "application/json", "examples") {
		for _, e := range s.validate("example "+name, schema, mapAt(ex)["value"]) {
			t.Error(e)
		}
	}
}

// validate checks v against a JSON Schema subset: $ref, allOf, type, enum,
// properties, required, additionalProperties, items, format date-time,
// minimum/maximum. Unlike JSON Schema, an object schema with properties and
// no additionalProperties is closed here, so the spec must list every field
// the handlers encode.
func (s spec) validate(at string, schema map[string]any, v any) []string {
	schema, err := s.resolve(schema)
	if err != nil {
		return []string{at + ": " + err.Error()}
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }

	// allOf: merge the object parts, validate the rest one by one.
	props, required, additional, isObject := map[string]any{}, []string{}, any(nil), false
	var collect func(sc map[string]any)
	collect = func(sc map[string]any) {
		sc, err := s.resolve(sc)
		if err != nil {
			fail("%v", err)
			return
		}
		for _, sub := range asSlice(sc["allOf"]) {
			collect(mapAt(sub))
		}
		if p := mapAt(sc, "properties"); p != nil || sc["type"] == "object" {
			isObject = true
			for k, e := range p {
				props[k] = e
			}
		}
		for _, r := range asSlice(sc["required"]) {
			required = append(required, r.(string))
		}
		if a, ok := sc["additionalProperties"]; ok {
			additional = a
		}
	}
	collect(schema)

	if types := asSlice(schema["type"]); len(types) > 0 {
		if !slices.ContainsFunc(types, func(ty any) bool { return isType(ty.(string), v) }) {
			fail("%v is not %v", v, types)
			return errs
		}
	} else if s, ok := schema["type"].(string); ok && !isType(s, v) {
		fail("%v is not %s", v, s)
		return errs
	}
	if enum := asSlice(schema["enum"]); enum != nil && !slices.Contains(enum, v) {
		fail("%v is not one of %v", v, enum)
	}
	if str, ok := v.(string); ok && schema["format"] == "date-time" {
		if _, err := time.Parse(time.RFC3339, str); err != nil {
			fail("%q is not RFC 3339", str)
		}
	}
	if n, ok := v.(float64); ok {
		if min, ok := schema["minimum"].(int); ok && n < float64(min) {
			fail("%v < %d", n, min)
		}
		if max, ok := schema["maximum"].(int); ok && n > float64(max) {
			fail("%v > %d", n, max)
		}
	}
	if arr, ok := v.([]any); ok {
		if items := mapAt(schema, "items"); items != nil {
			for i, e := range arr {
				errs = append(errs, s.validate(fmt.Sprintf("%s[%d]", at, i), items, e)...)
			}
		}
	}
	if obj, ok := v.(map[string]any); ok && isObject {
		for _, r := range required {
			if _, ok := obj[r]; !ok {
				fail("required %q missing", r)
			}
		}
		for k, e := range obj {
			switch sub := props[k]; {
			case sub != nil:
				errs = append(errs, s.validate(at+"."+k, mapAt(sub), e)...)
			case mapAt(additional) != nil:
				errs = append(errs, s.validate(at+"."+k, mapAt(additional), e)...)
			case len(props) > 0 && additional != true:
				fail("field %q is not in the schema", k)
			}
		}
	}
	return errs
}

func asSlice(v any) []any {
	if s, ok := v.([]any); ok {
		return s
	}
	return nil
}

func isType(ty string, v any) bool {
	switch ty {
	case "string":
		_, ok := v.(string)
		return ok
	case "integer":
		n, ok := v.(float64)
		return ok && n == math.Trunc(n)
	case "number":
		_, ok := v.(float64)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "null":
		return v == nil
	}
	return false
}

// conformance exchanges requests with the handler and checks each answer
// against the operation the spec gives for its route: the status is
// declared, the media type is, and the body matches the schema.
type conformance struct {
	t      *testing.T
	s      spec
	router *mux.Router
	seen   map[string]bool // "METHOD /template STATUS"
}

func (c *conformance) check(name string, rq request, w *httptest.ResponseRecorder) {
	t := c.t
	t.Helper()
	path, _, _ := strings.Cut(rq.path, "?")
	probe := httptest.NewRequest(rq.method, rq.path, nil)
	var m mux.RouteMatch
	if !c.router.Match(probe, &m) || m.MatchErr != nil {
		return // 404 and 405 have no operation
	}
	tpl, _ := m.Route.GetPathTemplate()
	key := rq.method + " " + tpl
	op := c.s.operations()[key]
	if op == nil {
		t.Errorf("%s: %s is not in the spec", name, key)
		return
	}
	code := fmt.Sprint(w.Code)
	r := mapAt(op, "responses", code)
	if r == nil {
		t.Errorf("%s: %s %s answered %s, which the spec does not declare", name, rq.method, path, code)
		return
	}
	c.seen[key+" "+code] = true
	resp, err := c.s.resolve(r)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	for h := range mapAt(resp, "headers") {
		if w.Header().Get(h) == "" && h != "Idempotent-Replayed" {
			t.Errorf("%s: %s %s: declared header %s missing", name, key, code, h)
		}
	}
	content := mapAt(resp, "content")
	if len(content) == 0 {
		if w.Body.Len() != 0 {
			t.Errorf("%s: %s %s has a body the spec does not declare: %s", name, key, code, w.Body)
		}
		return
	}
	ct := w.Header().Get("Content-Type")
	media := mapAt(content, ct)
	if media == nil {
		t.Errorf("%s: %s %s: Content-Type %q is not declared (%v)", name, key, code, ct, keysOf(content))
		return
	}
	if ct == "text/event-stream" {
		return // not JSON; live_test.go checks the events
	}
	var body any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Errorf("%s: body %q: %v", name, w.Body, err)
		return
	}
	for _, e := range c.s.validate(key+" "+code, mapAt(media, "schema"), body) {
		t.Errorf("%s: %s", name, e)
	}
}

// TestOpenAPIConformance checks real answers, happy and not, against the spec.
func TestOpenAPIConformance(t *testing.T) {
	s := loadSpec(t)
	c := &conformance{t: t, s: s, seen: map[string]bool{}}
	c.router = handlers.Router(newEnv().deps, handlers.ServePublic|handlers.ServeAdmin)

	// Every bad input.
	for _, tc := range badInputs {
		e := newEnv()
		if tc.real {
			e.useRealJobs(t)
		}
		if tc.setup != nil {
			tc.setup(t, e)
		}
		c.check(tc.name, tc.req, e.do(t, tc.req))
	}

	// The happy paths, in order, on one environment.
	e := newEnv()
	e.jobs.put(jobs.Job{ID: "req_0D0NE000000000000000000000", ClientID: clientA, Type: "echo", Status: jobs.StatusCompleted,
		Result: json.RawMessage(`{"out":2}`), CallbackURL: okCallback, Metadata: map[string]string{"k": "v"},
		CreatedAt: t0, UpdatedAt: *at(2), CompletedAt: at(1), DeliveryID: "msg_0D0NE000000000000000000000"})
	e.jobs.put(jobs.Job{ID: "req_0FA11ED0000000000000000000", ClientID: clientA, Type: "echo", Status: jobs.StatusFailed,
		Error: &jobs.Error{Code: "x", Message: "y"}, CallbackURL: okCallback, CreatedAt: t0, UpdatedAt: t0, CompletedAt: at(0), DeliveryID: "msg_0PEND1NG000000000000000000"})
	happy := []request{
		get("/healthz"), get("/readyz"),
		post("/v1/jobs", job(`"payload":{"a":1}`, `"metadata":{"k":"v"}`)),
		withHeader(post("/v1/jobs", job()), "Idempotency-Key", "k1"),
		withHeader(post("/v1/jobs", job()), "Idempotency-Key", "k1"),
		get("/v1/jobs/req_0D0NE000000000000000000000"), get("/v1/jobs/req_0FA11ED0000000000000000000"), get("/v1/jobs/req_0FAKE000100000000000000000"),
		post("/admin/v1/clients", `{"name":"Acme"}`),
		post("/admin/v1/clients", `{"name":"Reports only","jobTypes":["report","echo"]}`),
		{method: http.MethodPatch, path: "/admin/v1/clients/cli_0A000000000000000000000000", body: `{"jobTypes":["echo"]}`},
		get("/admin/v1/clients"), get("/admin/v1/clients?limit=1"), get("/admin/v1/clients/cli_0A000000000000000000000000"),
		post("/admin/v1/clients/cli_0A000000000000000000000000/keys", ""),
		{method: http.MethodDelete, path: "/admin/v1/clients/cli_0A000000000000000000000000/keys/key_0A000000000000000000000000"},
		post("/admin/v1/clients/cli_0A000000000000000000000000/secret/rotate", ""),
		{method: http.MethodDelete, path: "/admin/v1/clients/cli_0B000000000000000000000000"},
		get("/admin/v1/jobs"), get("/admin/v1/jobs?limit=1&status=COMPLETED&clientId=cli_0A000000000000000000000000"),
		get("/admin/v1/deliveries"), get("/admin/v1/deliveries?limit=1&status=DELIVERED"),
		get("/admin/v1/deliveries/msg_0D0NE000000000000000000000"), get("/admin/v1/deliveries/msg_0PEND1NG000000000000000000"),
		post("/admin/v1/deliveries/msg_0D0NE000000000000000000000/replay", ""),
		post("/admin/v1/deliveries/replay", `{}`),
		post("/admin/v1/deliveries/replay", `{"status":"DELIVERED","clientId":"cli_0A000000000000000000000000","since":"2026-01-01T00:00:00Z","until":"2027-01-01T00:00:00Z","dryRun":true}`),
		post("/admin/v1/deliveries/retry-now", `{"clientId":"cli_0A000000000000000000000000","since":"2026-01-01T00:00:00Z","until":"2027-01-01T00:00:00Z","dryRun":true}`),
		post("/admin/v1/deliveries/retry-now", `{}`),
		post("/admin/v1/deliveries/msg_0PEND1NG000000000000000000/retry-now", ""),
		get("/admin/v1/replays/rpl_0FAKE100000000000000000000"), get("/admin/v1/replays/rpl_0FAKE200000000000000000000"),
	}
	for _, rq := range happy {
		w := e.do(t, rq)
		if w.Code >= 300 {
			t.Errorf("happy %s %s: %d %s", rq.method, rq.path, w.Code, w.Body)
		}
		c.check("happy "+rq.method+" "+rq.path, rq, w)
	}
	e.readyErr = fmt.Errorf("down")
	c.check("readyz down", get("/readyz"), e.do(t, get("/readyz")))

	// The routes of work done elsewhere, on the real stack.
	checkWorkConformance(t, c)

	// Every operation was seen answering 2xx.
	for key := range s.operations() {
		ok := false
		for seen := range c.seen {
			if strings.HasPrefix(seen, key+" 2") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("no 2xx answer of %s was checked", key)
		}
	}
	t.Logf("checked %d (operation, status) pairs", len(c.seen))
}

// TestProblemsDocumented checks that docs/problems.md has a section, with
// the slug as its anchor, for every problem type in problems.go.
func TestProblemsDocumented(t *testing.T) {
	src, err := os.ReadFile("problems.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/problems.md")
	if err != nil {
		t.Fatal(err)
	}
	kinds := regexp.MustCompile(`problemKind\{"([a-z0-9-]+)", "[^"]*", http\.Status(\w+)\}`).FindAllStringSubmatch(string(src), -1)
	if len(kinds) < 14 {
		t.Fatalf("found only %d problem kinds in problems.go", len(kinds))
	}
	for _, k := range kinds {
		slug, status := k[1], k[2]
		heading := regexp.MustCompile(`(?m)^## ` + regexp.QuoteMeta(slug) + `\s*$`)
		anchor := `<a id="` + slug + `"></a>`
		if !heading.Match(doc) && !strings.Contains(string(doc), anchor) {
			t.Errorf("docs/problems.md has no section for %s", slug)
			continue
		}
		code := map[string]string{"UnprocessableEntity": "422", "BadRequest": "400", "RequestEntityTooLarge": "413", "Forbidden": "403",
			"UnsupportedMediaType": "415", "Unauthorized": "401", "NotFound": "404", "MethodNotAllowed": "405",
			"Conflict": "409", "TooManyRequests": "429", "ServiceUnavailable": "503", "InternalServerError": "500"}[status]
		section := string(doc)[strings.Index(string(doc), "## "+slug):]
		if i := strings.Index(section[3:], "\n## "); i >= 0 {
			section = section[:i+3]
		}
		if code == "" || !strings.Contains(section, code) {
			t.Errorf("the section for %s does not give its status %s", slug, status)
		}
	}
}

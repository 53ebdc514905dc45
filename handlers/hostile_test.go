package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/handlers"
	"github.com/boomerang-dev/boomerang/jobs"
)

// hostileResolver answers for a few names; everything else does not exist.
type hostileResolver map[string]string

func (r hostileResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	ip, ok := r[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	return []netip.Addr{netip.MustParseAddr(ip)}, nil
}

// TestHostileInputs sends hostile requests through the real stack (real
// client store, real jobs service with the default SSRF policy and an
// injected resolver, real Redis) and checks each answer's status and
// problem type.
func TestHostileInputs(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	cl := clients.NewService(store, clients.Options{})
	a, keyOfA, _, err := cl.Create(ctx, "tenant a")
	if err != nil {
		t.Fatal(err)
	}
	b, keyOfB, _, _ := cl.Create(ctx, "tenant b")
	_, revokedKey, _ := func() (clients.Key, string, error) {
		k, key, err := cl.AddKey(ctx, a.ID)
		if err == nil {
			err = cl.RevokeKey(ctx, a.ID, k.ID)
		}
		return k, key, err
	}()
	disabled, keyOfDisabled, _, _ := cl.Create(ctx, "disabled tenant")
	_ = cl.Disable(ctx, disabled.ID)

	reg := jobs.NewRegistry()
	reg.Register("echo", jobs.Echo, time.Minute)
	svc := jobs.NewService(jobs.ServiceOptions{
		Store: store, Registry: reg, Enqueuer: &fakeEnqueuer{},
		URLs: egress.Checker{Resolver: hostileResolver{
			"rebind.example": "127.0.0.1", "meta.example": "169.254.169.254", "intranet.example": "10.1.2.3",
			"v6loop.example": "::1", "public.example": "93.184.215.14",
		}},
		Limits: jobs.Limits{MaxPayloadBytes: 2048},
	})
	deps := handlers.Deps{Jobs: svc, Clients: cl, Deliveries: store, Replays: newFakeDeliveries(),
		Ready: func(context.Context) error { return nil }, AdminToken: adminToken, MaxBody: 4096}
	h := handlers.New(deps, handlers.ServePublic|handlers.ServeAdmin)

	// A job of tenant B, for the cross-tenant rows.
	jobOfB, _, err := svc.Submit(ctx, b.ID, jobs.Submission{Type: "echo", CallbackURL: "https://public.example/h", IdempotencyKey: "shared-key"})
	if err != nil {
		t.Fatal(err)
	}

	job := func(callback string) string {
		return fmt.Sprintf(`{"type":"echo","payload":{"x":1},"callbackUrl":%q}`, callback)
	}
	type row struct {
		name   string
		method string
		path   string
		body   string
		auth   string // full Authorization header; "" none
		header map[string]string
		status int
		slug   string // "" for a success
		field  string
	}
	bearerA := "Bearer " + keyOfA
	rows := []row{}
	blocked := map[string]string{
		"this network 0.0.0.0/8":             "http://0.1.2.3/h",
		"unspecified 0.0.0.0":                "http://0.0.0.0/h",
		"loopback 127.0.0.1":                 "http://127.0.0.1/h",
		"loopback 127.255.255.254":           "http://127.255.255.254/h",
		"RFC 1918 10/8":                      "http://10.0.0.1/h",
		"RFC 1918 172.16/12":                 "http://172.16.5.4/h",
		"RFC 1918 192.168/16":                "http://192.168.1.1/h",
		"CGNAT 100.64/10":                    "http://100.64.0.1/h",
		"link-local 169.254/16":              "http://169.254.1.1/h",
		"cloud metadata":                     "http://169.254.169.254/latest/meta-data/",
		"IETF 192.0.0/24":                    "http://192.0.0.8/h",
		"documentation 192.0.2/24":           "http://192.0.2.1/h",
		"benchmarking 198.18/15":             "http://198.18.0.1/h",
		"multicast 224/4":                    "http://224.0.0.1/h",
		"reserved 240/4":                     "http://240.0.0.1/h",
		"broadcast":                          "http://255.255.255.255/h",
		"IPv6 loopback":                      "http://[::1]/h",
		"IPv6 unspecified":                   "http://[::]/h",
		"IPv6 link-local":                    "http://[fe80::1]/h",
		"IPv6 link-local with zone":          "http://[fe80::1%25eth0]/h",
		"IPv6 unique-local fc00::/7":         "http://[fd12:3456::1]/h",
		"IPv6 multicast":                     "http://[ff02::1]/h",
		"IPv6 documentation":                 "http://[2001:db8::1]/h",
		"IPv4-mapped loopback":               "http://[::ffff:127.0.0.1]/h",
		"IPv4-mapped loopback, hex":          "http://[::ffff:7f00:1]/h",
		"IPv4-mapped RFC 1918":               "http://[::ffff:10.0.0.1]/h",
		"IPv4-mapped metadata":               "http://[::ffff:169.254.169.254]/h",
		"NAT64 of loopback":                  "http://[64:ff9b::7f00:1]/h",
		"NAT64 of RFC 1918":                  "http://[64:ff9b::10.0.0.1]/h",
		"6to4 of loopback":                   "http://[2002:7f00:1::]/h",
		"IPv4-compatible loopback":           "http://[::127.0.0.1]/h",
		"decimal 2130706433":                 "http://2130706433/h",
		"octal 0177.0.0.1":                   "http://0177.0.0.1/h",
		"octal 017700000001":                 "http://017700000001/h",
		"hex 0x7f000001":                     "http://0x7f000001/h",
		"hex dotted 0x7f.0.0.1":              "http://0x7f.0.0.1/h",
		"short 127.1":                        "http://127.1/h",
		"short 0":                            "http://0/h",
		"mixed 0x7f.0.1":                     "http://0x7f.0.1/h",
		"octal metadata 0251.0376.0251.0376": "http://0251.0376.0251.0376/h",
		"localhost":                          "http://localhost:8080/h",
		"sub.localhost":                      "http://api.localhost/h",
		"name resolving to 127.0.0.1":        "https://rebind.example/h",
		"name resolving to metadata":         "https://meta.example/h",
		"name resolving to RFC 1918":         "https://intranet.example/h",
		"name resolving to ::1":              "https://v6loop.example/h",
		"user-info":                          "https://user:pass@public.example/h",
		"user-info hiding a host":            "http://public.example@127.0.0.1/h",
		"ftp scheme":                         "ftp://public.example/h",
		"file scheme":                        "file:///etc/passwd",
		"gopher scheme":                      "gopher://public.example:70/_x",
		"javascript scheme":                  "javascript:alert(1)",
		"relative URL":                       "/just/a/path",
		"URL over 2048 bytes":                "https://public.example/" + strings.Repeat("a", 2048),
	}
	for name, url := range blocked {
		rows = append(rows, row{name: "callbackUrl: " + name, method: "POST", path: "/v1/jobs", body: job(url), auth: bearerA,
			status: 422, slug: "invalid-callback-url", field: "callbackUrl"})
	}
	rows = append(rows,
		row{name: "a public callback is accepted", method: "POST", path: "/v1/jobs", body: job("https://public.example/h"), auth: bearerA, status: 202},
		row{name: "body over the limit", method: "POST", path: "/v1/jobs", body: job("https://public.example/" + strings.Repeat("a", 5000)), auth: bearerA, status: 413, slug: "body-too-large"},
		row{name: "payload over its limit", method: "POST", path: "/v1/jobs", body: `{"type":"echo","callbackUrl":"https://public.example/h","payload":"` + strings.Repeat("p", 3000) + `"}`, auth: bearerA, status: 413, slug: "payload-too-large", field: "payload"},
		row{name: "metadata with too many keys", method: "POST", path: "/v1/jobs", body: `{"type":"echo","callbackUrl":"https://public.example/h","metadata":{` + manyPairs(33) + `}}`, auth: bearerA, status: 422, slug: "metadata-too-large", field: "metadata"},
		row{name: "type too long", method: "POST", path: "/v1/jobs", body: `{"type":"` + strings.Repeat("e", 65) + `","callbackUrl":"https://public.example/h"}`, auth: bearerA, status: 422, slug: "invalid-job-type", field: "type"},
		row{name: "type with shell characters", method: "POST", path: "/v1/jobs", body: `{"type":"echo;rm -rf /","callbackUrl":"https://public.example/h"}`, auth: bearerA, status: 422, slug: "invalid-job-type", field: "type"},
		row{name: "Idempotency-Key too long", method: "POST", path: "/v1/jobs", body: job("https://public.example/h"), auth: bearerA, header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, status: 422, slug: "invalid-idempotency-key", field: "Idempotency-Key"},
		row{name: "bad UTF-8 in the body", method: "POST", path: "/v1/jobs", body: "{\"type\":\"ech\xff\",\"callbackUrl\":\"https://public.example/h\"}", auth: bearerA, status: 400, slug: "invalid-utf8"},
		row{name: "overlong UTF-8 encoding of '/'", method: "POST", path: "/v1/jobs", body: "{\"type\":\"echo\",\"callbackUrl\":\"https://public.example/\xc0\xaf\"}", auth: bearerA, status: 400, slug: "invalid-utf8"},
		row{name: "duplicate top-level key", method: "POST", path: "/v1/jobs", body: `{"type":"echo","callbackUrl":"https://public.example/h","callbackUrl":"http://127.0.0.1/"}`, auth: bearerA, status: 400, slug: "duplicate-key"},
		row{name: "duplicate nested key", method: "POST", path: "/v1/jobs", body: `{"type":"echo","callbackUrl":"https://public.example/h","payload":{"a":1,"a":2}}`, auth: bearerA, status: 400, slug: "duplicate-key"},
		row{name: "case-variant key smuggling", method: "POST", path: "/v1/jobs", body: `{"type":"echo","callbackUrl":"https://public.example/h","CallbackUrl":"http://127.0.0.1/"}`, auth: bearerA, status: 422, slug: "validation-error", field: "CallbackUrl"},
		row{name: "missing API key", method: "GET", path: "/v1/jobs/" + jobOfB.ID, status: 401, slug: "unauthorized"},
		row{name: "wrong API key", method: "GET", path: "/v1/jobs/" + jobOfB.ID, auth: "Bearer bmr_" + strings.Repeat("x", 43), status: 401, slug: "unauthorized"},
		row{name: "API key without its prefix", method: "GET", path: "/v1/jobs/" + jobOfB.ID, auth: "Bearer " + strings.TrimPrefix(keyOfA, "bmr_"), status: 401, slug: "unauthorized"},
		row{name: "Basic instead of Bearer", method: "GET", path: "/v1/jobs/" + jobOfB.ID, auth: "Basic " + keyOfA, status: 401, slug: "unauthorized"},
		row{name: "revoked key", method: "GET", path: "/v1/jobs/" + jobOfB.ID, auth: "Bearer " + revokedKey, status: 401, slug: "unauthorized"},
		row{name: "disabled client's key", method: "POST", path: "/v1/jobs", body: job("https://public.example/h"), auth: "Bearer " + keyOfDisabled, status: 401, slug: "unauthorized"},
		row{name: "admin route with a client key", method: "GET", path: "/admin/v1/jobs", auth: bearerA, status: 401, slug: "unauthorized"},
		row{name: "admin token with one character changed", method: "GET", path: "/admin/v1/jobs", auth: "Bearer " + adminToken[:len(adminToken)-1] + "X", status: 401, slug: "unauthorized"},
		row{name: "cross-tenant read is a 404", method: "GET", path: "/v1/jobs/" + jobOfB.ID, auth: bearerA, status: 404, slug: "not-found"},
		row{name: "the owner reads it", method: "GET", path: "/v1/jobs/" + jobOfB.ID, auth: "Bearer " + keyOfB, status: 200},
		row{name: "cross-tenant idempotency key is not shared", method: "POST", path: "/v1/jobs", body: job("https://public.example/h"), auth: bearerA, header: map[string]string{"Idempotency-Key": "shared-key"}, status: 202},
		row{name: "injection in the job id", method: "GET", path: "/v1/jobs/req_%27%20OR%201%3D1%20--", auth: bearerA, status: 404, slug: "not-found"},
	)
	if len(rows) < 50 {
		t.Fatalf("only %d hostile rows", len(rows))
	}
	t.Logf("%d hostile rows", len(rows))
	for _, rw := range rows {
		t.Run(rw.name, func(t *testing.T) {
			req := httptest.NewRequest(rw.method, rw.path, strings.NewReader(rw.body))
			if rw.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if rw.auth != "" {
				req.Header.Set("Authorization", rw.auth)
			}
			for k, v := range rw.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != rw.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, rw.status, rec.Body)
			}
			if rw.slug == "" {
				if rw.status == http.StatusAccepted && req.Header.Get("Idempotency-Key") == "shared-key" {
					var r struct{ RequestID string }
					_ = json.Unmarshal(rec.Body.Bytes(), &r)
					if r.RequestID == jobOfB.ID {
						t.Errorf("tenant A got tenant B's job through a shared Idempotency-Key")
					}
				}
				return
			}
			var p handlers.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("not a problem: %s (%v)", rec.Body, err)
			}
			if p.Type != handlers.ProblemBase+rw.slug {
				t.Errorf("type %q, want %q (detail %q)", p.Type, handlers.ProblemBase+rw.slug, p.Detail)
			}
			if rw.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != rw.field) {
				t.Errorf("errors %+v, want field %q", p.Errors, rw.field)
			}
			for _, secret := range []string{keyOfA, keyOfB, revokedKey, adminToken} {
				if strings.Contains(rec.Body.String(), secret) {
					t.Errorf("the answer contains a credential")
				}
			}
		})
	}
}

func manyPairs(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	return strings.Join(parts, ",")
}

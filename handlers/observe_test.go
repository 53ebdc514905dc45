package handlers_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/handlers"
)

type observed struct {
	route string
	code  int
}

// TestObserveRequest: each request is reported once, with the template of
// the route it matched (never its path), "" when none matched (unknown
// path, method not allowed), and the status code it got; /metrics is
// served with the admin API, behind its token.
func TestObserveRequest(t *testing.T) {
	e := newEnv()
	var mu sync.Mutex
	var got []observed
	e.deps.Observe = func(route string, code int, elapsed time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, observed{route, code})
		if elapsed < 0 {
			t.Errorf("%s: elapsed %v", route, elapsed)
		}
	}
	e.deps.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("# metrics\n")) })
	h := handlers.New(e.deps, handlers.ServePublic|handlers.ServeAdmin)
	for _, c := range []struct {
		method, path, token string
		want                observed
	}{
		{"GET", "/healthz", "", observed{"/healthz", 200}},
		{"GET", "/v1/jobs/req_01KJ00000000000000000000000", "", observed{"/v1/jobs/{requestId}", 401}},
		{"POST", "/v1/completions/tok.secret", "", observed{"/v1/completions/{token}", 400}},
		{"GET", "/admin/v1/clients/cli_01KJ0000000000000000000000", adminToken, observed{"/admin/v1/clients/{id}", 404}},
		{"GET", "/v1/nothing/req_01KJ00000000000000000000000", "", observed{"", 404}},
		{"PUT", "/v1/jobs", "", observed{"", 405}},
		{"GET", "/metrics", "", observed{"/metrics", 401}},
		{"GET", "/metrics", adminToken, observed{"/metrics", 200}},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		req := httptest.NewRequest(c.method, c.path, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		mu.Lock()
		if len(got) != 1 || got[0] != c.want || rec.Code != c.want.code {
			t.Errorf("%s %s: answered %d, observed %+v; want one observation %+v", c.method, c.path, rec.Code, got, c.want)
		}
		mu.Unlock()
	}

	// Without Metrics, /metrics does not exist.
	e.deps.Metrics = nil
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	handlers.New(e.deps, handlers.ServePublic|handlers.ServeAdmin).ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /metrics without Deps.Metrics: status %d, want 404", rec.Code)
	}
}

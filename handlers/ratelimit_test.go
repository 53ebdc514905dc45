package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/handlers"
	"github.com/boomerang-dev/boomerang/redistest"
)

// TestRateLimitPerClient drives the real Redis token bucket through the
// router: a client over its burst gets 429 with Retry-After, another client
// is unaffected, and time refills the bucket.
func TestRateLimitPerClient(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	e := newEnv()
	e.deps.Limiter = clients.NewRateLimiter(redistest.Client(t), 2, 3, func() time.Time { return now })
	h := handlers.New(e.deps, e.serve)
	get := func(key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/v1/jobs/req_0M1SS1NG000000000000000000", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for i := 0; i < 3; i++ {
		if rec := get(keyA); rec.Code != http.StatusNotFound {
			t.Fatalf("request %d within the burst: status %d, want 404 (passed the limiter)", i+1, rec.Code)
		}
	}
	rec := get(keyA)
	var p handlers.Problem
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	if rec.Code != http.StatusTooManyRequests || p.Type != handlers.ProblemBase+"rate-limited" {
		t.Fatalf("4th request: status %d type %q, want 429 rate-limited", rec.Code, p.Type)
	}
	if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After = %q, want whole seconds ≥ 1", rec.Header().Get("Retry-After"))
	}
	if rec := get(keyB); rec.Code != http.StatusNotFound {
		t.Errorf("another client is limited too: status %d", rec.Code)
	}
	now = now.Add(600 * time.Millisecond) // 2 tokens/s refills one token
	if rec := get(keyA); rec.Code != http.StatusNotFound {
		t.Errorf("after a refill: status %d, want 404", rec.Code)
	}
	if rec := get(keyA); rec.Code != http.StatusTooManyRequests {
		t.Errorf("the refill gave more than one token: status %d", rec.Code)
	}
}

package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/handlers"
	"github.com/boomerang-dev/boomerang/testkit"
)

// TestRateLimitPerClient drives the real token buckets of the real store,
// with real clients, through the router: a client over its burst gets 429
// with Retry-After, another client is unaffected, and time refills the
// bucket.
func TestRateLimitPerClient(t *testing.T) {
	ctx := context.Background()
	clk := testkit.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	store := newStore(t)
	cl := clients.NewService(store, clients.Options{Now: clk.Now})
	_, keyOfA, _, err := cl.Create(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	_, keyOfB, _, err := cl.Create(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv()
	e.deps.Clients = cl
	e.deps.Limiter = clients.NewRateLimiter(store, 2, 3, clk.Now) // 2 per second, bursts of 3
	h := handlers.New(e.deps, e.serve)
	get := func(key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/v1/jobs/req_0M1SS1NG000000000000000000", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	steps := []struct {
		name       string
		advance    time.Duration
		key        string
		wantStatus int
	}{
		{"a, 1st of its burst", 0, keyOfA, http.StatusNotFound}, // passed the limiter
		{"a, 2nd", 0, keyOfA, http.StatusNotFound},
		{"a, 3rd", 0, keyOfA, http.StatusNotFound},
		{"a, over its burst", 0, keyOfA, http.StatusTooManyRequests},
		{"b, its own bucket", 0, keyOfB, http.StatusNotFound},
		{"a, after a refill of one token", 600 * time.Millisecond, keyOfA, http.StatusNotFound},
		{"a, the refill spent", 0, keyOfA, http.StatusTooManyRequests},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		rec := get(s.key)
		if rec.Code != s.wantStatus {
			t.Fatalf("%s: status %d, want %d; body %s", s.name, rec.Code, s.wantStatus, rec.Body)
		}
		if rec.Code != http.StatusTooManyRequests {
			continue
		}
		var p handlers.Problem
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		if p.Type != handlers.ProblemBase+"rate-limited" {
			t.Errorf("%s: problem type %q, want rate-limited", s.name, p.Type)
		}
		if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("%s: Retry-After = %q, want whole seconds ≥ 1", s.name, rec.Header().Get("Retry-After"))
		}
	}
}

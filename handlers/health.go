package handlers

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
)

func healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// readyz answers 200 only while Redis answers and the workers run.
func readyz(ready func(ctx context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			// A problem like every other error; the reason is logged, never
			// shown on this unauthenticated endpoint.
			writeError(w, r, fmt.Errorf("%w: not ready: %w", jobs.ErrUnavailable, err))
			return
		}
		respond(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

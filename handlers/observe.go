package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"
)

// ObserveRequest hears of every answered request: the template of the
// route it matched (e.g. "/v1/jobs/{requestId}"; "" when none matched),
// never the raw path, so that ids and tokens stay out; its status code;
// and how long the answer took (metrics.Metrics.ObserveRequest). It is
// called on the request's goroutine and must not block.
type ObserveRequest func(route string, code int, elapsed time.Duration)

// routeKey holds, in a request's context, where noteRoute writes the
// template of the route matched.
type routeKey struct{}

// observeRequests times each request and reports it with its route.
func observeRequests(observe ObserveRequest, next http.Handler) http.Handler {
	if observe == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		route := new(string)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), routeKey{}, route)))
		observe(*route, rec.status, time.Since(start))
	})
}

// noteRoute is the router's own middleware: mux runs it only once a route
// has matched, and it tells observeRequests the route's template.
func noteRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if route, ok := r.Context().Value(routeKey{}).(*string); ok {
			if cur := mux.CurrentRoute(r); cur != nil {
				*route, _ = cur.GetPathTemplate()
			}
		}
		next.ServeHTTP(w, r)
	})
}

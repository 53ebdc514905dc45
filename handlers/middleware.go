package handlers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/tracing"
	"github.com/gorilla/mux"
)

type ctxKey int

const (
	clientKey ctxKey = iota
	loggerKey
)

// loggerFrom returns the request's logger (set by logRequests).
func loggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey).(*slog.Logger); ok {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// clientFrom returns the authenticated client of a request.
func clientFrom(ctx context.Context) clients.Client {
	c, _ := ctx.Value(clientKey).(clients.Client)
	return c
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Key prefixes, to tell a caller which credential it sent.
const (
	apiKeyPrefix    = "bmr_"
	workerKeyPrefix = "bmw_"
)

const sendAPIKey = "send Authorization: Bearer <API key> (bmr_…)"

// clientAuth admits requests with a valid, unrevoked client API key. A
// refusal says what was expected, and what was sent instead when it can
// tell (the admin token, a worker key).
func clientAuth(store ClientStore, adminToken string) mux.MiddlewareFunc {
	isAdmin := tokenMatcher(adminToken)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := bearer(r)
			c, err := store.Authenticate(r.Context(), key)
			if errors.Is(err, clients.ErrUnauthorized) {
				err = badRequest(probUnauthorized, clientAuthHint(r, key, isAdmin))
			}
			if err != nil {
				writeError(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey, c)))
		})
	}
}

func clientAuthHint(r *http.Request, key string, isAdmin func(string) bool) string {
	switch {
	case r.Header.Get("Authorization") == "":
		return "no Authorization header: " + sendAPIKey
	case key == "":
		return "the Authorization scheme must be Bearer: " + sendAPIKey
	case isAdmin(key):
		return "this is the admin token, which works only on /admin routes: " + sendAPIKey
	case strings.HasPrefix(key, workerKeyPrefix):
		return "this is a worker key, which works only on /v1/worker routes: " + sendAPIKey
	case !strings.HasPrefix(key, apiKeyPrefix):
		return "API keys start with bmr_: " + sendAPIKey
	}
	return "the API key is unknown or revoked, or its client is disabled: " + sendAPIKey
}

// tokenMatcher compares candidates with token in constant time (both sides
// hashed first, so not even the length leaks); an empty token matches
// nothing.
func tokenMatcher(token string) func(string) bool {
	want := sha256.Sum256([]byte(token))
	return func(got string) bool {
		sum := sha256.Sum256([]byte(got))
		return token != "" && subtle.ConstantTimeCompare(sum[:], want[:]) == 1
	}
}

// RateLimiter takes one request from a client's allowance.
type RateLimiter interface {
	Allow(ctx context.Context, clientID string) (bool, time.Duration, error)
}

// rateLimit answers 429 with Retry-After once a client is over its limit.
func rateLimit(l RateLimiter) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		if l == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ok, wait, err := l.Allow(r.Context(), clientFrom(r.Context()).ID)
			if err != nil {
				writeError(w, r, err)
				return
			}
			if !ok {
				w.Header().Set("Retry-After", strconv.Itoa(int(max(1, (wait+time.Second-1)/time.Second))))
				writeError(w, r, badRequest(probRateLimited, "this client is over its request rate limit"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// adminAuth admits requests with the admin token.
func adminAuth(token string) mux.MiddlewareFunc {
	isAdmin := tokenMatcher(token)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if key := bearer(r); !isAdmin(key) {
				writeError(w, r, badRequest(probUnauthorized, adminAuthHint(key)))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func adminAuthHint(key string) string {
	const send = "send Authorization: Bearer <admin token> (BOOMERANG_ADMIN_TOKEN)"
	switch {
	case strings.HasPrefix(key, apiKeyPrefix):
		return "this is a client API key, which works only on /v1 routes: " + send
	case strings.HasPrefix(key, workerKeyPrefix):
		return "this is a worker key, which works only on /v1/worker routes: " + send
	}
	return send
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach Flush and the deadlines.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logPath is a request's path as logs and problems may show it: a
// completion URL's token is a credential, so it is never shown.
func logPath(r *http.Request) string {
	if rest, ok := strings.CutPrefix(r.URL.Path, completionsPrefix); ok && rest != "" {
		return completionsPrefix + "{token}"
	}
	return r.URL.Path
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// logRequests logs one line per request: never headers, so never a key.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), loggerKey, log)))
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			return
		}
		attrs := []any{"method", r.Method, "path", logPath(r), "status", rec.status,
			"durationMs", time.Since(start).Milliseconds()}
		if id := rec.Header().Get("X-Request-Id"); id != "" {
			attrs = append(attrs, "requestId", id)
		}
		log.InfoContext(r.Context(), "http request", attrs...)
	})
}

// routeSpan names the request's trace span (tracing.Tracer.Handler) after
// its route template, never the raw path.
func routeSpan(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t, err := mux.CurrentRoute(r).GetPathTemplate(); err == nil {
			tracing.NameRoute(r, t)
		}
		next.ServeHTTP(w, r)
	})
}

// Package console is the operator's web console at /admin/: server-rendered
// pages over the same services as the admin API (deliveries and replays,
// jobs, clients, queue state), for a browser logged in with the admin
// token. Templates and assets are embedded; nothing is built with Node.
//
// A browser logs in by posting the admin token once; it then holds a
// signed session cookie (session.go), and every POST carries the
// session's CSRF token in a form field. The admin token never appears in a
// URL, a page or a log line.
package console

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// Deliveries reads deliveries (redisstore.Store).
type Deliveries interface {
	GetDelivery(ctx context.Context, id string, withAttempts bool) (webhooks.Delivery, error)
	ListDeliveries(ctx context.Context, f webhooks.Filter, limit int, cursor string) ([]webhooks.Delivery, string, error)
}

// Replays replays deliveries, one or in bulk (webhooks.Dispatcher).
type Replays interface {
	Replay(ctx context.Context, id string) (webhooks.Delivery, error)
	StartBulkReplay(ctx context.Context, f webhooks.Filter, dryRun bool) (webhooks.BulkReplay, error)
	GetReplay(ctx context.Context, id string) (webhooks.BulkReplay, error)
}

// Retrier makes the next attempt of PENDING deliveries now, one or every
// one a filter matches (webhooks.Dispatcher).
type Retrier interface {
	RetryNow(ctx context.Context, id string) (webhooks.Delivery, error)
	RetryNowAll(ctx context.Context, f webhooks.Filter, dryRun bool) (webhooks.RetryNowResult, error)
}

// Jobs lists jobs (jobs.Service).
type Jobs interface {
	List(ctx context.Context, f jobs.Filter, limit int, cursor string) ([]jobs.Job, string, error)
}

// Clients manages clients and their credentials (clients.Service).
type Clients interface {
	Create(ctx context.Context, name string, jobTypes ...string) (clients.Client, string, string, error)
	Get(ctx context.Context, id string) (clients.Client, error)
	List(ctx context.Context, limit int, cursor string) ([]clients.Client, string, error)
	AddKey(ctx context.Context, clientID string) (clients.Key, string, error)
	RevokeKey(ctx context.Context, clientID, keyID string) error
	RotateSecret(ctx context.Context, clientID string, grace time.Duration) (string, error)
}

// QueueStats reads the asynq queues' state, cached (tasks.Stats).
type QueueStats interface {
	Queues(ctx context.Context) ([]tasks.QueueState, time.Time, error)
}

// ReadyLists reads the depth of each partition's ready list (redisstore.Store).
type ReadyLists interface {
	ReadyLengths(ctx context.Context) ([]int64, error)
}

// Options are the console's services and settings.
type Options struct {
	AdminToken string
	Deliveries Deliveries
	Replays    Replays
	// Retrier, if set, gives PENDING deliveries a "Retry now" button, one
	// by one and in bulk.
	Retrier Retrier
	Jobs    Jobs
	Clients Clients
	Queues  QueueStats
	Ready   ReadyLists
	// Monitor, if set, is served read-only at /admin/queues/ to logged-in
	// browsers (asynqmon, from tasks.Monitor).
	Monitor http.Handler
	Grace   time.Duration // signing-secret rotation grace period
	Now     func() time.Time
	Logger  *slog.Logger
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console serves the pages; it is an http.Handler for /admin/.
type Console struct {
	o     Options
	keys  keys
	admin func(string) bool
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// pageSize is how many rows a list page shows.
const pageSize = 50

// New returns the console. With no admin token it serves nothing but a
// page saying so.
func New(o Options) *Console {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{o: o, keys: deriveKeys(o.AdminToken), admin: tokenMatcher(o.AdminToken), pages: parsePages()}
	c.routes()
	return c
}

func (c *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /admin/static/", http.StripPrefix("/admin/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /admin/login", c.loginForm)
	m.HandleFunc("POST /admin/login", c.login)
	m.Handle("POST /admin/logout", c.auth(c.logout))
	m.Handle("GET /admin/{$}", c.auth(func(w http.ResponseWriter, r *http.Request, _ session) {
		http.Redirect(w, r, "/admin/deliveries", http.StatusSeeOther)
	}))
	m.Handle("GET /admin/deliveries", c.auth(c.deliveries))
	m.Handle("GET /admin/deliveries/{id}", c.auth(c.delivery))
	m.Handle("POST /admin/deliveries/{id}/replay", c.auth(c.replay))
	m.Handle("POST /admin/replays", c.auth(c.bulkReplay))
	if c.o.Retrier != nil {
		m.Handle("POST /admin/deliveries/{id}/retry-now", c.auth(c.retryNow))
		m.Handle("POST /admin/deliveries/retry-now", c.auth(c.bulkRetryNow))
	}
	m.Handle("GET /admin/replays/{id}", c.auth(c.replayPage))
	m.Handle("GET /admin/replays/{id}/status", c.auth(c.replayStatus))
	m.Handle("GET /admin/jobs", c.auth(c.jobs))
	m.Handle("GET /admin/clients", c.auth(c.clients))
	m.Handle("POST /admin/clients", c.auth(c.createClient))
	m.Handle("GET /admin/clients/{id}", c.auth(c.client))
	m.Handle("POST /admin/clients/{id}/keys", c.auth(c.addKey))
	m.Handle("POST /admin/clients/{id}/keys/{keyId}/revoke", c.auth(c.revokeKey))
	m.Handle("POST /admin/clients/{id}/secret/rotate", c.auth(c.rotateSecret))
	m.Handle("GET /admin/state", c.auth(c.queueState))
	if c.o.Monitor != nil {
		mon := c.auth(func(w http.ResponseWriter, r *http.Request, _ session) { c.o.Monitor.ServeHTTP(w, r) })
		m.Handle("GET /admin/queues", mon)
		m.Handle("GET /admin/queues/", mon)
	}
	c.mux = m
}

// ServeHTTP serves /admin/ (not /admin/v1, which is the API's).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	if !strings.HasPrefix(r.URL.Path, "/admin/queues") {
		// asynqmon's page sets its own globals inline; ours need nothing inline.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	}
	if c.o.AdminToken == "" {
		http.Error(w, "the console needs BOOMERANG_ADMIN_TOKEN", http.StatusNotFound)
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	}
	c.mux.ServeHTTP(w, r)
}

// authed is a page for a logged-in browser.
type authed func(w http.ResponseWriter, r *http.Request, s session)

// auth admits a browser with a valid session; a POST must also carry the
// session's CSRF token in its form (403 otherwise). Without a session, a
// GET goes to the login page and anything else is refused.
func (c *Console) auth(next authed) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s session
		ck, err := r.Cookie(sessionCookie)
		if err == nil {
			s, err = c.keys.decode(ck.Value, c.o.Now())
		}
		if err != nil {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
				return
			}
			c.fail(w, r, http.StatusForbidden, "Your session has ended: log in again.")
			return
		}
		if r.Method == http.MethodPost && !tokensEqual(r.PostFormValue(csrfField), c.keys.csrfToken(s)) {
			c.fail(w, r, http.StatusForbidden, "This form is stale or did not come from the console (CSRF check failed): reload the page and try again.")
			return
		}
		next(w, r, s)
	})
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		if _, err := c.keys.decode(ck.Value, c.o.Now()); err == nil {
			http.Redirect(w, r, "/admin/deliveries", http.StatusSeeOther)
			return
		}
	}
	c.showLogin(w, r, http.StatusOK, "")
}

// showLogin renders the login form with a fresh nonce cookie for its CSRF
// token.
func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	n := make([]byte, 16)
	if _, err := randRead(n); err != nil {
		c.fail(w, r, http.StatusInternalServerError, "no randomness")
		return
	}
	nonce := b64.EncodeToString(n)
	setCookie(w, r, loginCookie, nonce, loginTTL)
	c.render(w, r, status, "login", session{}, map[string]any{"Error": msg, "LoginCSRF": c.keys.loginToken(nonce)})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(loginCookie)
	if err != nil || !tokensEqual(r.PostFormValue(csrfField), c.keys.loginToken(ck.Value)) {
		c.fail(w, r, http.StatusForbidden, "The login form is stale or did not come from the console (CSRF check failed): reload it and try again.")
		return
	}
	if !c.admin(r.PostFormValue("token")) {
		c.o.Logger.WarnContext(r.Context(), "console login refused", "remote", r.RemoteAddr, "forwardedFor", r.Header.Get("X-Forwarded-For"))
		c.showLogin(w, r, http.StatusUnauthorized, "That is not the admin token (BOOMERANG_ADMIN_TOKEN).")
		return
	}
	s, err := newSession(c.o.Now())
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "no randomness")
		return
	}
	setCookie(w, r, loginCookie, "", 0)
	setCookie(w, r, sessionCookie, c.keys.encode(s), sessionTTL)
	c.o.Logger.InfoContext(r.Context(), "console login", "remote", r.RemoteAddr, "forwardedFor", r.Header.Get("X-Forwarded-For"))
	http.Redirect(w, r, "/admin/deliveries", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ session) {
	setCookie(w, r, sessionCookie, "", 0)
	http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
}

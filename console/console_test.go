package console

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/page"
	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/boomerang-dev/boomerang/webhooks"
)

const testToken = "console-test-admin-token-5f2b9c0d1e"

// fakes: small, recording what was asked.

type fakeDeliveries struct {
	mu    sync.Mutex
	all   []webhooks.Delivery // newest first
	calls []listCall
}

type listCall struct {
	f      webhooks.Filter
	limit  int
	cursor string
}

func (f *fakeDeliveries) GetDelivery(_ context.Context, id string, _ bool) (webhooks.Delivery, error) {
	for _, d := range f.all {
		if d.ID == id {
			return d, nil
		}
	}
	return webhooks.Delivery{}, webhooks.ErrNotFound
}

// ListDeliveries pages by index, as an opaque cursor "i<n>".
func (f *fakeDeliveries) ListDeliveries(_ context.Context, flt webhooks.Filter, limit int, cursor string) ([]webhooks.Delivery, string, error) {
	f.mu.Lock()
	f.calls = append(f.calls, listCall{flt, limit, cursor})
	f.mu.Unlock()
	start := 0
	if cursor != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(cursor, "i"))
		if err != nil || !strings.HasPrefix(cursor, "i") {
			return nil, "", page.ErrBadCursor
		}
		start = n
	}
	var out []webhooks.Delivery
	i := start
	for ; i < len(f.all) && len(out) < limit; i++ {
		if flt.Status == "" || f.all[i].Status == flt.Status {
			out = append(out, f.all[i])
		}
	}
	if i >= len(f.all) {
		return out, "", nil
	}
	return out, "i" + strconv.Itoa(i), nil
}

type fakeReplays struct {
	mu      sync.Mutex
	dl      *fakeDeliveries // if set, a PENDING delivery of it is refused, as the dispatcher does
	replays []string
	bulk    []webhooks.Filter
}

func (f *fakeReplays) Replay(_ context.Context, id string) (webhooks.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dl != nil {
		if d, err := f.dl.GetDelivery(context.Background(), id, false); err == nil && d.Status == webhooks.StatusPending {
			return webhooks.Delivery{}, webhooks.ErrConflict
		}
	}
	f.replays = append(f.replays, id)
	return webhooks.Delivery{ID: id, Status: webhooks.StatusPending}, nil
}

func (f *fakeReplays) StartBulkReplay(_ context.Context, flt webhooks.Filter, dry bool) (webhooks.BulkReplay, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !dry {
		f.bulk = append(f.bulk, flt)
	}
	return webhooks.BulkReplay{ID: ids.New(ids.Replay, time.Now()), DryRun: dry, Matched: 7, State: webhooks.ReplayRunning}, nil
}

func (f *fakeReplays) GetReplay(_ context.Context, id string) (webhooks.BulkReplay, error) {
	return webhooks.BulkReplay{ID: id, Matched: 7, Replayed: 3, State: webhooks.ReplayRunning}, nil
}

// fakeRetrier "delivers" a PENDING delivery of its fakeDeliveries when
// retried now, and refuses any other as the dispatcher does.
type fakeRetrier struct {
	mu    sync.Mutex
	dl    *fakeDeliveries
	err   error // returned by every call, if set
	ones  []string
	bulk  []webhooks.Filter // real runs
	dries []webhooks.Filter
}

func (f *fakeRetrier) RetryNow(_ context.Context, id string) (webhooks.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return webhooks.Delivery{}, f.err
	}
	f.ones = append(f.ones, id)
	for i, d := range f.dl.all {
		if d.ID != id {
			continue
		}
		if d.Status != webhooks.StatusPending {
			return webhooks.Delivery{}, &webhooks.NotPendingError{Status: d.Status}
		}
		d.Status, d.Attempts, d.NextAttemptAt = webhooks.StatusDelivered, d.Attempts+1, nil
		f.dl.all[i] = d
		return d, nil
	}
	return webhooks.Delivery{}, webhooks.ErrNotFound
}

func (f *fakeRetrier) RetryNowAll(_ context.Context, flt webhooks.Filter, dry bool) (webhooks.RetryNowResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return webhooks.RetryNowResult{}, f.err
	}
	if dry {
		f.dries = append(f.dries, flt)
		return webhooks.RetryNowResult{DryRun: true, Matched: 5}, nil
	}
	f.bulk = append(f.bulk, flt)
	return webhooks.RetryNowResult{Matched: 5, Retried: 4, Skipped: 1}, nil
}

type fakeJobs struct{}

func (fakeJobs) List(context.Context, jobs.Filter, int, string) ([]jobs.Job, string, error) {
	return nil, "", nil
}

type fakeClients struct {
	mu      sync.Mutex
	created []string
	keys    int
	revoked []string
	rotated int
	id      string
}

func (f *fakeClients) Create(_ context.Context, name string, _ ...string) (clients.Client, string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, name)
	return clients.Client{ID: f.id, Name: name}, "bmr_live_NEWKEY", "whsec_NEWSECRET", nil
}
func (f *fakeClients) Get(_ context.Context, id string) (clients.Client, error) {
	return clients.Client{ID: id, Name: "acme"}, nil
}
func (f *fakeClients) List(context.Context, int, string) ([]clients.Client, string, error) {
	return []clients.Client{{ID: f.id, Name: "acme"}}, "", nil
}
func (f *fakeClients) AddKey(_ context.Context, id string) (clients.Key, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys++
	return clients.Key{ID: ids.New(ids.Key, time.Now())}, "bmr_live_ADDED", nil
}
func (f *fakeClients) RevokeKey(_ context.Context, _, keyID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = append(f.revoked, keyID)
	return nil
}
func (f *fakeClients) RotateSecret(context.Context, string, time.Duration) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rotated++
	return "whsec_ROTATED", nil
}

type fakeQueues struct{}

func (fakeQueues) Queues(context.Context) ([]tasks.QueueState, time.Time, error) {
	return []tasks.QueueState{{Queue: "p0", Pending: 4, Retry: 2, FailedTotal: 9, Latency: 1500 * time.Millisecond}}, time.Now(), nil
}
func (fakeQueues) ReadyLengths(context.Context) ([]int64, error) { return []int64{3, 0}, nil }

// fixture is a console over fakes, a clock and a log.
type fixture struct {
	t       *testing.T
	srv     *httptest.Server
	now     time.Time
	nowMu   sync.Mutex
	log     *bytes.Buffer
	dl      *fakeDeliveries
	rp      *fakeReplays
	cl      *fakeClients
	rt      *fakeRetrier
	visited []string // every URL requested and every Location answered
}

func newFixture(t *testing.T, deliveries int) *fixture {
	t.Helper()
	fx := &fixture{t: t, now: time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC), log: &bytes.Buffer{},
		dl: &fakeDeliveries{}, rp: &fakeReplays{}, cl: &fakeClients{id: ids.New(ids.Client, time.Now())}}
	fx.rt, fx.rp.dl = &fakeRetrier{dl: fx.dl}, fx.dl
	for i := range deliveries {
		st := webhooks.StatusFailed
		if i%2 == 1 {
			st = webhooks.StatusDelivered
		}
		fx.dl.all = append(fx.dl.all, webhooks.Delivery{ID: ids.New(ids.Delivery, fx.now.Add(-time.Duration(i)*time.Second)),
			Status: st, ClientID: fx.cl.id, URL: "https://example.test/hook", CreatedAt: fx.now.Add(-time.Duration(i) * time.Second)})
	}
	var logMu sync.Mutex
	c := New(Options{AdminToken: testToken, Deliveries: fx.dl, Replays: fx.rp, Retrier: fx.rt, Jobs: fakeJobs{}, Clients: fx.cl,
		Queues: fakeQueues{}, Ready: fakeQueues{}, Grace: time.Hour, Now: fx.clock,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, fx.log}, nil))})
	fx.srv = httptest.NewServer(c)
	t.Cleanup(fx.srv.Close)
	return fx
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (fx *fixture) clock() time.Time {
	fx.nowMu.Lock()
	defer fx.nowMu.Unlock()
	return fx.now
}

func (fx *fixture) advance(d time.Duration) {
	fx.nowMu.Lock()
	defer fx.nowMu.Unlock()
	fx.now = fx.now.Add(d)
}

// addPending adds a PENDING delivery, newest, whose next attempt is due
// in next, and returns its id.
func (fx *fixture) addPending(next time.Duration) string {
	at := fx.clock().Add(next)
	d := webhooks.Delivery{ID: ids.New(ids.Delivery, fx.clock()), Status: webhooks.StatusPending, ClientID: fx.cl.id,
		URL: "https://example.test/hook", Attempts: 1, NextAttemptAt: &at, CreatedAt: fx.clock()}
	fx.dl.mu.Lock()
	defer fx.dl.mu.Unlock()
	fx.dl.all = append([]webhooks.Delivery{d}, fx.dl.all...)
	return d.ID
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	fx *fixture
	c  *http.Client
}

func (fx *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{fx: fx, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	code int
	hdr  http.Header
	body string
}

func (b *browser) do(method, path string, form url.Values) answer {
	b.fx.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.fx.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.fx.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	b.fx.visited = append(b.fx.visited, req.URL.String(), resp.Header.Get("Location"))
	return answer{resp.StatusCode, resp.Header, string(raw)}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in page:\n%s", body)
	}
	return m[1]
}

// login logs the browser in and returns the session's CSRF token.
func (b *browser) login() string {
	b.fx.t.Helper()
	form := b.do("GET", "/admin/login", nil)
	a := b.do("POST", "/admin/login", url.Values{"token": {testToken}, "csrf": {csrfOf(b.fx.t, form.body)}})
	if a.code != http.StatusSeeOther || a.hdr.Get("Location") != "/admin/deliveries" {
		b.fx.t.Fatalf("login: got %d Location %q, want 303 to /admin/deliveries\n%s", a.code, a.hdr.Get("Location"), a.body)
	}
	page := b.do("GET", "/admin/deliveries", nil)
	if page.code != http.StatusOK {
		b.fx.t.Fatalf("deliveries after login: got %d, want 200\n%s", page.code, page.body)
	}
	return csrfOf(b.fx.t, page.body)
}

func TestLogin(t *testing.T) {
	fx := newFixture(t, 3)
	cases := []struct {
		name      string
		token     string
		csrf      func(form string) string
		wantCode  int
		wantLogin bool
	}{
		{"right token", testToken, func(f string) string { return csrfOf(t, f) }, http.StatusSeeOther, true},
		{"wrong token", testToken + "x", func(f string) string { return csrfOf(t, f) }, http.StatusUnauthorized, false},
		{"empty token", "", func(f string) string { return csrfOf(t, f) }, http.StatusUnauthorized, false},
		{"no csrf", testToken, func(string) string { return "" }, http.StatusForbidden, false},
		{"wrong csrf", testToken, func(string) string { return "AAAA" }, http.StatusForbidden, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := fx.browser()
			if a := b.do("GET", "/admin/deliveries", nil); a.code != http.StatusSeeOther || a.hdr.Get("Location") != "/admin/login" {
				t.Fatalf("before login GET /admin/deliveries: got %d %q, want 303 to /admin/login", a.code, a.hdr.Get("Location"))
			}
			form := b.do("GET", "/admin/login", nil)
			a := b.do("POST", "/admin/login", url.Values{"token": {tc.token}, "csrf": {tc.csrf(form.body)}})
			if a.code != tc.wantCode {
				t.Fatalf("POST /admin/login: got %d, want %d\n%s", a.code, tc.wantCode, a.body)
			}
			got := b.do("GET", "/admin/deliveries", nil).code == http.StatusOK
			if got != tc.wantLogin {
				t.Errorf("logged in after POST /admin/login: got %v, want %v", got, tc.wantLogin)
			}
		})
	}
}

func TestLogout(t *testing.T) {
	fx := newFixture(t, 1)
	b := fx.browser()
	csrf := b.login()
	if a := b.do("POST", "/admin/logout", url.Values{"csrf": {csrf}}); a.code != http.StatusSeeOther {
		t.Fatalf("logout: got %d, want 303", a.code)
	}
	if a := b.do("GET", "/admin/deliveries", nil); a.code != http.StatusSeeOther {
		t.Errorf("GET /admin/deliveries after logout: got %d, want 303 to the login", a.code)
	}
}

func TestSessionExpiresAndCannotBeForged(t *testing.T) {
	fx := newFixture(t, 1)
	b := fx.browser()
	b.login()
	u, _ := url.Parse(fx.srv.URL + "/admin/")
	good := b.c.Jar.Cookies(u)[0].Value
	for _, tc := range []struct{ name, value string }{
		{"tampered expiry", strings.Replace(good, good[20:22], "zz", 1)},
		{"tampered mac", good[:len(good)-2] + "AA"},
		{"no mac", strings.Split(good, ".")[0]},
		{"other token's key", deriveKeys("another-token").encode(session{id: make([]byte, 16), expires: fx.now.Add(time.Hour)})},
	} {
		jar, _ := cookiejar.New(nil)
		jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: tc.value, Path: "/admin/"}})
		forged := &browser{fx: fx, c: &http.Client{Jar: jar, CheckRedirect: b.c.CheckRedirect}}
		if a := forged.do("GET", "/admin/deliveries", nil); a.code != http.StatusSeeOther {
			t.Errorf("%s session cookie: GET /admin/deliveries got %d, want 303 to the login", tc.name, a.code)
		}
	}
	fx.advance(sessionTTL - time.Second)
	if a := b.do("GET", "/admin/deliveries", nil); a.code != http.StatusOK {
		t.Errorf("1 s before expiry: got %d, want 200", a.code)
	}
	fx.advance(time.Second)
	if a := b.do("GET", "/admin/deliveries", nil); a.code != http.StatusSeeOther {
		t.Errorf("at expiry: got %d, want 303 to the login", a.code)
	}
}

func TestCookieFlags(t *testing.T) {
	c := New(Options{AdminToken: testToken, Now: time.Now})
	cases := []struct {
		name       string
		tls        bool
		forwarded  string
		wantSecure bool
	}{
		{"plain http", false, "", false},
		{"tls", true, "", true},
		{"proxy terminated tls", false, "https", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			get := httptest.NewRequest("GET", "/admin/login", nil)
			rec := httptest.NewRecorder()
			c.ServeHTTP(rec, get)
			nonce := rec.Result().Cookies()[0]
			form := url.Values{"token": {testToken}, "csrf": {csrfOf(t, rec.Body.String())}}
			req := httptest.NewRequest("POST", "/admin/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(nonce)
			if tc.tls {
				req.TLS = &tls.ConnectionState{}
			}
			if tc.forwarded != "" {
				req.Header.Set("X-Forwarded-Proto", tc.forwarded)
			}
			rec = httptest.NewRecorder()
			c.ServeHTTP(rec, req)
			var s *http.Cookie
			for _, ck := range rec.Result().Cookies() {
				if ck.Name == sessionCookie {
					s = ck
				}
			}
			if s == nil {
				t.Fatalf("login answered %d without a session cookie: %v", rec.Code, rec.Header()["Set-Cookie"])
			}
			if !s.HttpOnly || s.SameSite != http.SameSiteStrictMode || s.Path != "/admin/" || s.Secure != tc.wantSecure || s.MaxAge != int(sessionTTL.Seconds()) {
				t.Errorf("session cookie %q: got HttpOnly=%v SameSite=%v Path=%q Secure=%v MaxAge=%d, want HttpOnly SameSite=Strict Path=/admin/ Secure=%v MaxAge=%d",
					rec.Header()["Set-Cookie"], s.HttpOnly, s.SameSite, s.Path, s.Secure, s.MaxAge, tc.wantSecure, int(sessionTTL.Seconds()))
			}
		})
	}
}

// TestCSRF: every POST of a logged-in browser without its CSRF token, or
// with a wrong one, is refused with 403 and changes nothing.
func TestCSRF(t *testing.T) {
	fx := newFixture(t, 2)
	b := fx.browser()
	csrf := b.login()
	other := fx.browser()
	otherCSRF := other.login() // another session's token is wrong here
	d := fx.dl.all[0].ID
	pending := fx.addPending(time.Hour)
	key := ids.New(ids.Key, time.Now())
	posts := []struct {
		path string
		form url.Values
	}{
		{"/admin/deliveries/" + d + "/replay", url.Values{}},
		{"/admin/replays", url.Values{"status": {"FAILED"}}},
		{"/admin/deliveries/" + pending + "/retry-now", url.Values{}},
		{"/admin/deliveries/retry-now", url.Values{"client": {fx.cl.id}}},
		{"/admin/clients", url.Values{"name": {"evil"}}},
		{"/admin/clients/" + fx.cl.id + "/keys", url.Values{}},
		{"/admin/clients/" + fx.cl.id + "/keys/" + key + "/revoke", url.Values{}},
		{"/admin/clients/" + fx.cl.id + "/secret/rotate", url.Values{}},
		{"/admin/logout", url.Values{}},
	}
	for _, p := range posts {
		for _, bad := range []struct{ name, token string }{{"without", ""}, {"wrong", wrongToken(csrf)}, {"another session's", otherCSRF}} {
			f := url.Values{}
			for k, v := range p.form {
				f[k] = v
			}
			if bad.token != "" {
				f.Set("csrf", bad.token)
			}
			if a := b.do("POST", p.path, f); a.code != http.StatusForbidden {
				t.Errorf("POST %s %s CSRF token: got %d, want 403", p.path, bad.name, a.code)
			}
		}
	}
	if len(fx.rp.replays)+len(fx.rp.bulk)+len(fx.cl.created)+fx.cl.keys+len(fx.cl.revoked)+fx.cl.rotated != 0 {
		t.Errorf("refused POSTs changed something: replays %v, bulk %v, created %v, keys %d, revoked %v, rotated %d",
			fx.rp.replays, fx.rp.bulk, fx.cl.created, fx.cl.keys, fx.cl.revoked, fx.cl.rotated)
	}
	if len(fx.rt.ones)+len(fx.rt.bulk)+len(fx.rt.dries) != 0 {
		t.Errorf("refused POSTs retried something now: one by one %v, in bulk %v, dry runs %v", fx.rt.ones, fx.rt.bulk, fx.rt.dries)
	}
	if a := b.do("GET", "/admin/deliveries", nil); a.code != http.StatusOK {
		t.Errorf("refused POST /admin/logout ended the session: got %d, want 200", a.code)
	}
	// The same POSTs with the token go through.
	for _, p := range posts {
		f := url.Values{"csrf": {csrf}}
		for k, v := range p.form {
			f[k] = v
		}
		if a := b.do("POST", p.path, f); a.code == http.StatusForbidden || a.code >= 500 {
			t.Errorf("POST %s with its CSRF token: got %d, want success\n%s", p.path, a.code, a.body)
		}
	}
	if len(fx.rp.replays) != 1 || len(fx.rp.bulk) != 1 || len(fx.cl.created) != 1 || fx.cl.keys != 1 || len(fx.cl.revoked) != 1 || fx.cl.rotated != 1 ||
		len(fx.rt.ones) != 1 || len(fx.rt.bulk) != 1 {
		t.Errorf("accepted POSTs: replays %v, bulk %v, created %v, keys %d, revoked %v, rotated %d, retried now %v, in bulk %v; want one of each",
			fx.rp.replays, fx.rp.bulk, fx.cl.created, fx.cl.keys, fx.cl.revoked, fx.cl.rotated, fx.rt.ones, fx.rt.bulk)
	}
	// Without a session, a POST is refused too.
	anon := fx.browser()
	if a := anon.do("POST", "/admin/clients", url.Values{"name": {"x"}, "csrf": {csrf}}); a.code != http.StatusForbidden {
		t.Errorf("POST /admin/clients without a session: got %d, want 403", a.code)
	}
}

// TestTokenNeverInURL walks every page and action: the admin token is in
// no URL, Location, page or log line, and the login form posts it.
func TestTokenNeverInURL(t *testing.T) {
	fx := newFixture(t, 60)
	b := fx.browser()
	form := b.do("GET", "/admin/login", nil)
	if !strings.Contains(form.body, `method="post" action="/admin/login"`) || !strings.Contains(form.body, `type="password" name="token"`) {
		t.Fatalf("login form does not POST a password field:\n%s", form.body)
	}
	csrf := b.login()
	d := fx.dl.all[0].ID
	var bodies []string
	for _, step := range []struct{ method, path string }{
		{"GET", "/admin/"}, {"GET", "/admin/deliveries?status=FAILED"}, {"GET", "/admin/deliveries/" + d},
		{"POST", "/admin/deliveries/" + d + "/replay"}, {"POST", "/admin/replays"}, {"GET", "/admin/jobs"},
		{"GET", "/admin/clients"}, {"GET", "/admin/clients/" + fx.cl.id}, {"POST", "/admin/clients/" + fx.cl.id + "/keys"},
		{"GET", "/admin/state"}, {"POST", "/admin/logout"}, {"GET", "/admin/login"},
	} {
		var f url.Values
		if step.method == "POST" {
			f = url.Values{"csrf": {csrf}}
		}
		a := b.do(step.method, step.path, f)
		if a.code >= 400 {
			t.Errorf("%s %s: got %d\n%s", step.method, step.path, a.code, a.body)
		}
		bodies = append(bodies, a.body)
	}
	for _, u := range fx.visited {
		for name, secret := range map[string]string{"admin token": testToken, "CSRF token": csrf} {
			if strings.Contains(u, secret) || strings.Contains(u, url.QueryEscape(secret)) {
				t.Errorf("%s in URL %q", name, u)
			}
		}
	}
	// The CSRF token is only ever in POST forms.
	for i, body := range bodies {
		for _, form := range regexp.MustCompile(`(?s)<form[^>]*>.*?</form>`).FindAllString(body, -1) {
			if strings.Contains(form, csrf) && !strings.Contains(form, `method="post"`) {
				t.Errorf("page %d: a form that is not a POST carries the CSRF token:\n%s", i, form)
			}
		}
	}
	for i, body := range bodies {
		if strings.Contains(body, testToken) {
			t.Errorf("admin token in page %d", i)
		}
	}
	if strings.Contains(fx.log.String(), testToken) {
		t.Errorf("admin token in the log:\n%s", fx.log)
	}
}

var rowRE = regexp.MustCompile(`href="/admin/deliveries/(msg_[0-9A-Z]+)"`)
var nextRE = regexp.MustCompile(`href="([^"]+)" id="next"`)

// TestPaging follows "Older" links: every page is one listing of
// pageSize, the filter travels with the cursor, and every matching
// delivery shows once, newest first.
func TestPaging(t *testing.T) {
	fx := newFixture(t, 230) // 115 FAILED
	b := fx.browser()
	b.login()
	fx.dl.calls = nil
	var seen []string
	next := "/admin/deliveries?status=FAILED&client=" + fx.cl.id
	pages := 0
	for next != "" {
		a := b.do("GET", strings.ReplaceAll(next, "&amp;", "&"), nil)
		if a.code != http.StatusOK {
			t.Fatalf("GET %s: got %d\n%s", next, a.code, a.body)
		}
		for _, m := range rowRE.FindAllStringSubmatch(a.body, -1) {
			seen = append(seen, m[1])
		}
		next = ""
		if m := nextRE.FindStringSubmatch(a.body); m != nil {
			next = m[1]
		}
		if pages++; pages > 10 {
			t.Fatal("more than 10 pages for 115 deliveries")
		}
	}
	var want []string
	for _, d := range fx.dl.all {
		if d.Status == webhooks.StatusFailed {
			want = append(want, d.ID)
		}
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("deliveries seen across pages (%d):\n%v\nwant (%d):\n%v", len(seen), seen, len(want), want)
	}
	if pages != 3 || len(fx.dl.calls) != 3 {
		t.Errorf("pages: got %d pages with %d listings, want 3 and 3", pages, len(fx.dl.calls))
	}
	for i, c := range fx.dl.calls {
		if c.limit != pageSize || c.f.Status != webhooks.StatusFailed || c.f.ClientID != fx.cl.id {
			t.Errorf("listing %d: got limit %d filter %+v, want limit %d status FAILED client %s", i, c.limit, c.f, pageSize, fx.cl.id)
		}
		if (i == 0) != (c.cursor == "") {
			t.Errorf("listing %d: cursor %q", i, c.cursor)
		}
	}
	// Bad input is a 400 page, never a 500.
	for _, q := range []string{"status=LOST", "client=nobody", "since=yesterday", "cursor=%00bad", "since=2026-12-02T00:00&until=2026-12-01T00:00"} {
		if a := b.do("GET", "/admin/deliveries?"+q, nil); a.code != http.StatusBadRequest {
			t.Errorf("GET /admin/deliveries?%s: got %d, want 400", q, a.code)
		}
	}
}

func TestSecretsShownOnceAndQueuePage(t *testing.T) {
	fx := newFixture(t, 1)
	b := fx.browser()
	csrf := b.login()
	a := b.do("POST", "/admin/clients", url.Values{"csrf": {csrf}, "name": {"acme"}})
	if a.code != http.StatusCreated || !strings.Contains(a.body, "bmr_live_NEWKEY") || !strings.Contains(a.body, "whsec_NEWSECRET") {
		t.Errorf("create client: got %d, want 201 showing the key and secret\n%s", a.code, a.body)
	}
	if cc := a.hdr.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("secret page Cache-Control: got %q, want no-store", cc)
	}
	if a := b.do("GET", "/admin/clients/"+fx.cl.id, nil); strings.Contains(a.body, "NEWKEY") || strings.Contains(a.body, "NEWSECRET") {
		t.Errorf("client page shows a secret again:\n%s", a.body)
	}
	a = b.do("GET", "/admin/state", nil)
	for _, want := range []string{"<td>p0</td>", `<td class="num">4</td>`, "1.5s", `<td class="num">9</td>`, `<td>1</td><td class="num">0</td>`} {
		if !strings.Contains(a.body, want) {
			t.Errorf("queue page lacks %q:\n%s", want, a.body)
		}
	}
}

// TestBulkReplay: the dry run counts and offers the real run for the same
// filter; the real run goes to a progress page whose status the page polls.
func TestBulkReplay(t *testing.T) {
	fx := newFixture(t, 2)
	b := fx.browser()
	csrf := b.login()
	a := b.do("POST", "/admin/replays", url.Values{"csrf": {csrf}, "dryRun": {"1"}, "client": {fx.cl.id}})
	if a.code != http.StatusOK || !strings.Contains(a.body, "<strong>7</strong> FAILED deliveries match") || !strings.Contains(a.body, `id="bulk-run"`) {
		t.Fatalf("dry run: got %d, want 200 with the count 7 and a button to run it\n%s", a.code, a.body)
	}
	if len(fx.rp.bulk) != 0 {
		t.Fatalf("the dry run started a replay: %v", fx.rp.bulk)
	}
	run := url.Values{"csrf": {csrfOf(t, a.body)}, "client": {fx.cl.id}}
	for _, m := range regexp.MustCompile(`name="(status|since|until)" value="([^"]*)"`).FindAllStringSubmatch(a.body, -1) {
		run.Set(m[1], m[2])
	}
	a = b.do("POST", "/admin/replays", run)
	loc := a.hdr.Get("Location")
	if a.code != http.StatusSeeOther || !strings.HasPrefix(loc, "/admin/replays/"+ids.Replay) {
		t.Fatalf("run: got %d Location %q, want 303 to /admin/replays/rpl_…", a.code, loc)
	}
	if len(fx.rp.bulk) != 1 || fx.rp.bulk[0].Status != webhooks.StatusFailed || fx.rp.bulk[0].ClientID != fx.cl.id {
		t.Errorf("bulk replays started: got %+v, want one of FAILED deliveries of %s", fx.rp.bulk, fx.cl.id)
	}
	if a := b.do("GET", loc, nil); a.code != http.StatusOK || !strings.Contains(a.body, `data-status-url="`+loc+`/status"`) {
		t.Errorf("progress page: got %d, want 200 polling %s/status\n%s", a.code, loc, a.body)
	}
	a = b.do("GET", loc+"/status", nil)
	if a.code != http.StatusOK || !strings.Contains(a.body, `"matched":7`) || !strings.Contains(a.body, `"replayed":3`) {
		t.Errorf("status: got %d %s, want 200 with matched 7, replayed 3", a.code, a.body)
	}
	if a := b.do("GET", "/admin/replays/rpl_bogus/status", nil); a.code != http.StatusNotFound {
		t.Errorf("status of a malformed replay id: got %d, want 404", a.code)
	}
}

func TestJobTypes(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"", "[]", false},
		{"echo", "[echo]", false},
		{" echo, resize.v2  thumb_1 ", "[echo resize.v2 thumb_1]", false},
		{"echo,echo", "", true},
		{"no/slash", "", true},
		{strings.Repeat("a,", 101), "", true},
	} {
		got, err := jobTypes(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && fmt.Sprint(got) != tc.want) {
			t.Errorf("jobTypes(%q): got %v, %v; want %s, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestMonitorBehindLogin: asynqmon is reached only by a logged-in browser,
// and only with GET: nothing can change a queue through it.
func TestMonitorBehindLogin(t *testing.T) {
	var reached []string
	mon := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = append(reached, r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusOK)
	})
	fx := &fixture{t: t, now: time.Now(), log: &bytes.Buffer{}}
	fx.srv = httptest.NewServer(New(Options{AdminToken: testToken, Deliveries: &fakeDeliveries{}, Replays: &fakeReplays{},
		Jobs: fakeJobs{}, Clients: &fakeClients{}, Monitor: mon, Now: fx.clock}))
	t.Cleanup(fx.srv.Close)
	anon := fx.browser()
	if a := anon.do("GET", "/admin/queues/api/queues", nil); a.code != http.StatusSeeOther {
		t.Errorf("GET /admin/queues/api/queues without a session: got %d, want 303 to the login", a.code)
	}
	b := fx.browser()
	csrf := b.login()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/admin/queues/", http.StatusOK},
		{"GET", "/admin/queues/api/queues", http.StatusOK},
		{"POST", "/admin/queues/api/queues/p0.0:pause", http.StatusMethodNotAllowed},
		{"DELETE", "/admin/queues/api/queues/p0.0", http.StatusMethodNotAllowed},
	} {
		var f url.Values
		if tc.method != "GET" {
			f = url.Values{"csrf": {csrf}}
		}
		if a := b.do(tc.method, tc.path, f); a.code != tc.want {
			t.Errorf("%s %s: got %d, want %d", tc.method, tc.path, a.code, tc.want)
		}
	}
	if fmt.Sprint(reached) != "[GET /admin/queues/ GET /admin/queues/api/queues]" {
		t.Errorf("asynqmon was asked %v, want only the two GETs", reached)
	}
}

// wrongToken is tok with its first character changed (never to itself).
func wrongToken(tok string) string {
	c := byte('x')
	if tok[0] == c {
		c = 'y'
	}
	return string(c) + tok[1:]
}

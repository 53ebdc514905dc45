package console

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/webhooks"
)

// TestRetryNowButton: only a PENDING delivery's page offers Retry now (and
// only when the console has a Retrier); a finished one offers replay. The
// button's POST makes the attempt and lands on the delivery's page, which
// says what came of it.
func TestRetryNowButton(t *testing.T) {
	fx := newFixture(t, 2) // [0] FAILED, [1] DELIVERED
	failed, delivered := fx.dl.all[0].ID, fx.dl.all[1].ID
	soon := fx.addPending(10 * time.Second)
	later := fx.addPending(time.Hour)
	b := fx.browser()
	csrf := b.login()
	for _, tc := range []struct {
		name, id               string
		wantRetry, wantRefresh bool
	}{
		{"PENDING, next attempt in an hour", later, true, false},
		{"PENDING, next attempt in 10 s", soon, true, true},
		{"FAILED", failed, false, false},
		{"DELIVERED", delivered, false, false},
	} {
		a := b.do("GET", "/admin/deliveries/"+tc.id, nil)
		if a.code != http.StatusOK {
			t.Fatalf("%s: GET its page: got %d\n%s", tc.name, a.code, a.body)
		}
		retry := strings.Contains(a.body, `action="/admin/deliveries/`+tc.id+`/retry-now"`) && strings.Contains(a.body, `id="retry-now"`)
		replay := strings.Contains(a.body, `id="replay"`)
		if retry != tc.wantRetry || replay == tc.wantRetry {
			t.Errorf("%s: Retry now button %v, replay button %v; want %v and %v", tc.name, retry, replay, tc.wantRetry, !tc.wantRetry)
		}
		if got := strings.Contains(a.body, "data-refresh"); got != tc.wantRefresh {
			t.Errorf("%s: page reloads itself %v, want %v", tc.name, got, tc.wantRefresh)
		}
	}

	a := b.do("POST", "/admin/deliveries/"+later+"/retry-now", url.Values{"csrf": {csrf}})
	if loc := a.hdr.Get("Location"); a.code != http.StatusSeeOther || loc != "/admin/deliveries/"+later+"?retried=1" {
		t.Fatalf("POST retry-now of a PENDING delivery: got %d Location %q, want 303 to its page", a.code, loc)
	}
	a = b.do("GET", a.hdr.Get("Location"), nil)
	if !strings.Contains(a.body, `id="delivery-status">DELIVERED<`) || !strings.Contains(a.body, "Retried now: delivered.") || strings.Contains(a.body, `id="retry-now"`) {
		t.Errorf("the delivery's page after Retry now: want DELIVERED, the outcome and no Retry now button\n%s", a.body)
	}
	if len(fx.rt.ones) != 1 || fx.rt.ones[0] != later {
		t.Errorf("retried now: got %v, want [%s]", fx.rt.ones, later)
	}

	// A delivery that finished meanwhile: 409, saying so, with a way back.
	a = b.do("POST", "/admin/deliveries/"+failed+"/retry-now", url.Values{"csrf": {csrf}})
	if a.code != http.StatusConflict || !strings.Contains(a.body, "is FAILED, not PENDING") || !strings.Contains(a.body, `href="/admin/deliveries/`+failed+`" id="back"`) {
		t.Errorf("retry-now of a FAILED delivery: got %d, want 409 naming FAILED with a link back to it\n%s", a.code, a.body)
	}
	// Replaying a PENDING delivery (a stale page): 409, pointing to Retry now.
	a = b.do("POST", "/admin/deliveries/"+soon+"/replay", url.Values{"csrf": {csrf}})
	if a.code != http.StatusConflict || !strings.Contains(a.body, "use Retry now") || !strings.Contains(a.body, `href="/admin/deliveries/`+soon+`" id="back"`) {
		t.Errorf("replay of a PENDING delivery: got %d, want 409 advising Retry now with a link back to it\n%s", a.code, a.body)
	}
	if a := b.do("POST", "/admin/deliveries/msg_nope/retry-now", url.Values{"csrf": {csrf}}); a.code != http.StatusNotFound {
		t.Errorf("retry-now of a malformed id: got %d, want 404", a.code)
	}

	// Without a Retrier there is no button and no route.
	bare := &fixture{t: t, now: fx.now, log: &bytes.Buffer{}, dl: fx.dl, cl: fx.cl}
	bare.srv = httptest.NewServer(New(Options{AdminToken: testToken, Deliveries: fx.dl, Replays: &fakeReplays{}, Jobs: fakeJobs{},
		Clients: fx.cl, Now: bare.clock}))
	t.Cleanup(bare.srv.Close)
	bb := bare.browser()
	bcsrf := bb.login()
	if a := bb.do("GET", "/admin/deliveries/"+soon, nil); strings.Contains(a.body, "retry-now") {
		t.Errorf("without a Retrier, a PENDING delivery's page offers Retry now:\n%s", a.body)
	}
	if a := bb.do("POST", "/admin/deliveries/"+soon+"/retry-now", url.Values{"csrf": {bcsrf}}); a.code < 400 {
		t.Errorf("without a Retrier, POST retry-now: got %d, want a refusal", a.code)
	}
}

var hiddenRE = regexp.MustCompile(`name="(status|client|since|until|dryRun)" value="([^"]*)"`)

// formOf reads the hidden fields of the form posting to action on a page.
func formOf(t *testing.T, body, action string) url.Values {
	t.Helper()
	m := regexp.MustCompile(`(?s)<form method="post" action="` + regexp.QuoteMeta(action) + `"[^>]*>.*?</form>`).FindString(body)
	if m == "" {
		t.Fatalf("no form posting to %s in the page:\n%s", action, body)
	}
	v := url.Values{"csrf": {csrfOf(t, m)}}
	for _, f := range hiddenRE.FindAllStringSubmatch(m, -1) {
		v.Set(f[1], f[2])
	}
	return v
}

// TestBulkRetryNow: the deliveries list filtered to PENDING offers a bulk
// Retry now instead of a bulk replay (which the API refuses for PENDING);
// its dry run counts and retries nothing, the confirmation runs it for the
// same filter, and the counts are shown.
func TestBulkRetryNow(t *testing.T) {
	fx := newFixture(t, 2)
	fx.addPending(time.Hour)
	b := fx.browser()
	b.login()
	for _, tc := range []struct {
		status           string
		wantRetry, wantR bool
	}{
		{"PENDING", true, false},
		{"FAILED", false, true},
		{"", false, true},
	} {
		a := b.do("GET", "/admin/deliveries?status="+tc.status, nil)
		retry := strings.Contains(a.body, `action="/admin/deliveries/retry-now"`)
		replay := strings.Contains(a.body, `action="/admin/replays"`)
		if retry != tc.wantRetry || replay != tc.wantR {
			t.Errorf("deliveries?status=%s: bulk Retry now %v, bulk replay %v; want %v and %v", tc.status, retry, replay, tc.wantRetry, tc.wantR)
		}
	}
	if a := b.do("GET", "/admin/deliveries?status=PENDING", nil); strings.Contains(a.body, "Bulk replay of every PENDING") {
		t.Errorf("the PENDING list still offers a bulk replay:\n%s", a.body)
	}

	since := "2026-11-30T00:00"
	list := b.do("GET", "/admin/deliveries?status=PENDING&client="+fx.cl.id+"&since="+since, nil)
	dry := formOf(t, list.body, "/admin/deliveries/retry-now")
	if dry.Get("dryRun") == "" || dry.Get("client") != fx.cl.id || dry.Get("since") != since {
		t.Fatalf("the list's bulk Retry now form: got %v, want a dry run for client %s since %s", dry, fx.cl.id, since)
	}
	a := b.do("POST", "/admin/deliveries/retry-now", dry)
	if a.code != http.StatusOK || !strings.Contains(a.body, "<strong>5</strong> PENDING deliveries match") || !strings.Contains(a.body, `id="retry-run"`) {
		t.Fatalf("dry run: got %d, want 200 with the count 5 and a button to confirm\n%s", a.code, a.body)
	}
	if len(fx.rt.dries) != 1 || len(fx.rt.bulk) != 0 {
		t.Fatalf("after the dry run: dry runs %v, real runs %v; want one dry run and no real one", fx.rt.dries, fx.rt.bulk)
	}
	run := formOf(t, a.body, "/admin/deliveries/retry-now")
	if run.Get("dryRun") != "" {
		t.Fatalf("the confirm form is another dry run: %v", run)
	}
	a = b.do("POST", "/admin/deliveries/retry-now", run)
	if a.code != http.StatusOK || !strings.Contains(a.body, `<span id="retried">4</span> retried now`) ||
		!strings.Contains(a.body, `<span id="skipped">1</span> skipped`) || !strings.Contains(a.body, `<span id="matched">5</span>`) {
		t.Fatalf("run: got %d, want 200 with 4 retried, 1 skipped of 5\n%s", a.code, a.body)
	}
	wantSince, _ := parseTime("since", since)
	for i, f := range append(fx.rt.dries, fx.rt.bulk...) {
		if f.Status != webhooks.StatusPending || f.ClientID != fx.cl.id || !f.Since.Equal(wantSince) || !f.Until.IsZero() {
			t.Errorf("call %d filter: got %+v, want PENDING of %s since %s", i, f, fx.cl.id, wantSince)
		}
	}
	if len(fx.rt.bulk) != 1 {
		t.Errorf("real runs: got %d, want 1", len(fx.rt.bulk))
	}

	// Bad input is a 400, and a bulk replay of PENDING a 409 pointing here.
	csrf := run.Get("csrf")
	if a := b.do("POST", "/admin/deliveries/retry-now", url.Values{"csrf": {csrf}, "client": {"acme"}, "dryRun": {"1"}}); a.code != http.StatusBadRequest {
		t.Errorf("bulk retry-now for client acme: got %d, want 400", a.code)
	}
	a = b.do("POST", "/admin/replays", url.Values{"csrf": {csrf}, "status": {"PENDING"}, "dryRun": {"1"}})
	if a.code != http.StatusConflict || !strings.Contains(a.body, "Retry now") || len(fx.rp.bulk) != 0 {
		t.Errorf("bulk replay of PENDING: got %d (replays started %v), want 409 advising Retry now\n%s", a.code, fx.rp.bulk, a.body)
	}
}

type ctxKey struct{}

// ctxLog records the context of every log record.
type ctxLog struct {
	mu   sync.Mutex
	seen []any
}

func (h *ctxLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *ctxLog) Handle(ctx context.Context, _ slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, ctx.Value(ctxKey{}))
	return nil
}
func (h *ctxLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *ctxLog) WithGroup(string) slog.Handler      { return h }

// TestErrorLogCarriesRequestContext: an unexpected error is logged with
// the request's context (which carries its trace), not a bare one.
func TestErrorLogCarriesRequestContext(t *testing.T) {
	fx := newFixture(t, 1)
	id := fx.addPending(time.Hour)
	h := &ctxLog{}
	c := New(Options{AdminToken: testToken, Deliveries: fx.dl, Replays: fx.rp, Retrier: &fakeRetrier{dl: fx.dl, err: errors.New("redis on fire")},
		Jobs: fakeJobs{}, Clients: fx.cl, Now: fx.clock, Logger: slog.New(h)})
	fx.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, "trace-of-"+r.URL.Path)))
	})
	b := fx.browser()
	csrf := b.login()
	path := "/admin/deliveries/" + id + "/retry-now"
	if a := b.do("POST", path, url.Values{"csrf": {csrf}}); a.code != http.StatusInternalServerError || strings.Contains(a.body, "redis on fire") {
		t.Fatalf("POST %s failing unexpectedly: got %d, want 500 without the error's text\n%s", path, a.code, a.body)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) == 0 || h.seen[len(h.seen)-1] != "trace-of-"+path {
		t.Errorf("log records' contexts: got %v, want the last from the request to %s", h.seen, path)
	}
}

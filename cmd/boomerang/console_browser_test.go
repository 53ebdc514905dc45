package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/chromedp/chromedp"
)

// browserEnv, when set, makes a missing Chromium a failure (CI sets it).
const browserEnv = "BOOMERANG_REQUIRE_BROWSER"

// chromium finds Debian's chromium, or skips (fails under browserEnv).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(browserEnv) != "" {
		t.Fatalf("no chromium on PATH, and %s is set: apt-get install -y chromium", browserEnv)
	}
	t.Skipf("no chromium on PATH (apt-get install -y chromium; %s=1 makes this a failure)", browserEnv)
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile and nothing
// that reaches out to the network by itself.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first run starts the browser, which lives as long as ctx: no
	// timeout on it (each step below has its own).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// TestConsoleInBrowser drives the admin console in a real Chromium against
// the service started through run() with a real Redis: a receiver that
// fails makes a FAILED delivery; once the receiver is fixed, the operator
// finds the delivery, replays it and sees it DELIVERED. It saves the
// screenshots the README shows (docs/img/console-*.png).
func TestConsoleInBrowser(t *testing.T) {
	testkit.Long(t) // about 5 s with Chromium's start
	browser := newBrowser(t)
	var broken atomic.Bool
	broken.Store(true)
	var hits atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if broken.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"database is down"}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	s := startService(t, map[string]string{"BOOMERANG_REDIS_URL": redistest.URL(t), "BOOMERANG_RETRY_MAX_ATTEMPTS": "1"})
	s.createClient("acme")
	// Three jobs, three FAILED deliveries: one replayed by its button, two
	// by a bulk replay.
	var jobIDs []string
	for _, order := range []string{"A-1042", "A-1043", "A-1044"} {
		jobIDs = append(jobIDs, s.submit("echo", recv.URL+"/hooks/boomerang", map[string]string{"order": order}))
	}
	id := jobIDs[0]
	var dlv string
	waitFor(t, "three FAILED deliveries", 20*time.Second, func() bool {
		for _, id := range jobIDs {
			if j := s.job(id); j.Delivery == nil || j.Delivery.Status != "FAILED" {
				return false
			}
		}
		return true
	})
	dlv = s.job(id).Delivery.ID

	dr := newDriver(t, browser)
	do, click, read, shot, step := dr.do, dr.click, dr.read, dr.shot, dr.step

	do("open the console", chromedp.Navigate(s.base+"/admin/deliveries"), // not logged in: to the login page
		chromedp.WaitVisible(chromedp.ID("token")))
	if u := read("location", chromedp.Location()); !strings.HasSuffix(u, "/admin/login") {
		t.Errorf("not logged in, /admin/deliveries went to %q, want /admin/login", u)
	}
	shot("login")
	do("type the token", chromedp.SendKeys(chromedp.ID("token"), s.admin))
	click("log in", "login")
	do("see the deliveries", chromedp.WaitVisible(chromedp.ID("deliveries")))

	link := chromedp.CSS(`a[href="/admin/deliveries/` + dlv + `"]`)
	do("choose FAILED", chromedp.SetValue(chromedp.ID("f-status"), "FAILED"))
	click("filter", "filter")
	do("find the delivery", chromedp.WaitVisible(link))
	shot("deliveries")
	if u := read("location", chromedp.Location()); !strings.Contains(u, "status=FAILED") || strings.Contains(u, s.admin) || strings.Contains(u, "csrf") {
		t.Errorf("deliveries URL after filtering: %q, want status=FAILED and no token", u)
	}
	ctx, cancel := step()
	if resp, err := chromedp.RunResponse(ctx, chromedp.Click(link)); err != nil || resp.Status != http.StatusOK {
		t.Fatalf("open the FAILED delivery: %v %v", resp, err)
	}
	cancel()
	if st := read("status", chromedp.Text(chromedp.ID("delivery-status"))); st != "FAILED" {
		t.Fatalf("delivery %s before the replay: got %q, want FAILED", dlv, st)
	}

	broken.Store(false) // the receiver is fixed
	click("replay it", "replay")
	deadline := time.Now().Add(20 * time.Second)
	for st := ""; st != "DELIVERED"; {
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s after the replay: still %q after 20 s (the receiver saw %d requests)", dlv, st, hits.Load())
		}
		time.Sleep(200 * time.Millisecond)
		do("reload the delivery", chromedp.Navigate(s.base+"/admin/deliveries/"+dlv), chromedp.WaitVisible(chromedp.ID("delivery-status")))
		st = read("status", chromedp.Text(chromedp.ID("delivery-status")))
	}
	shot("delivery")
	if j := s.job(id); j.Delivery == nil || j.Delivery.Status != "DELIVERED" || hits.Load() != 4 {
		t.Errorf("after the replay: the API says %+v, the receiver saw %d requests; want DELIVERED and 4", j.Delivery, hits.Load())
	}

	do("deliveries, FAILED", chromedp.Navigate(s.base+"/admin/deliveries?status=FAILED"))
	click("bulk replay: dry run", "bulk-count")
	if m := read("matched", chromedp.Text(chromedp.ID("matched"))); !strings.HasPrefix(m, "2 FAILED deliveries match") {
		t.Errorf("dry run: got %q, want 2 FAILED deliveries", m)
	}
	click("bulk replay", "bulk-run")
	deadline = time.Now().Add(20 * time.Second)
	for state := ""; state != "done"; state = read("replay state", chromedp.Text(chromedp.ID("state"))) {
		if time.Now().After(deadline) {
			t.Fatalf("bulk replay: still %q on its page after 20 s", state)
		}
		time.Sleep(100 * time.Millisecond) // the page polls; this test only reads it
	}
	if n := read("replayed", chromedp.Text(chromedp.ID("replayed"))); n != "2" {
		t.Errorf("bulk replay page: %s replayed, want 2", n)
	}
	shot("replay")
	waitFor(t, "every delivery DELIVERED", 20*time.Second, func() bool {
		for _, id := range jobIDs {
			if j := s.job(id); j.Delivery == nil || j.Delivery.Status != "DELIVERED" {
				return false
			}
		}
		return true
	})

	do("jobs", chromedp.Navigate(s.base+"/admin/jobs"), chromedp.WaitVisible(chromedp.ID("jobs")))
	if list := read("jobs", chromedp.Text(chromedp.ID("jobs"))); !strings.Contains(list, id) || !strings.Contains(list, "COMPLETED") {
		t.Errorf("the jobs page does not list job %s as COMPLETED:\n%s", id, list)
	}
	do("queue state", chromedp.Navigate(s.base+"/admin/state"), chromedp.WaitVisible(chromedp.ID("queues")))
	if q := read("queues", chromedp.Text(chromedp.ID("queues"))); !strings.Contains(q, "maintenance") {
		t.Errorf("the queue page lists no maintenance queue:\n%s", q)
	}
	shot("queues")

	do("asynqmon", chromedp.Navigate(s.base+"/admin/queues/"), chromedp.WaitVisible(chromedp.CSS("#root table")))
	shot("asynqmon")
}

// TestConsoleInBrowserRetryNow: deliveries to a broken receiver wait an
// hour for their retry (PENDING); once the receiver is fixed, the operator
// clicks Retry now on one and sees it DELIVERED at once, then retries the
// others from the PENDING list: a dry-run count, a confirmation, the
// counts. It saves docs/img/console-retry-now.png.
func TestConsoleInBrowserRetryNow(t *testing.T) {
	testkit.Long(t)
	browser := newBrowser(t)
	var broken atomic.Bool
	broken.Store(true)
	var hits atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if broken.Load() {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("upstream down"))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	s := startService(t, map[string]string{"BOOMERANG_REDIS_URL": redistest.URL(t), "BOOMERANG_RETRY_INITIAL": "1h"})
	s.createClient("acme")
	var jobIDs []string
	for _, order := range []string{"B-2001", "B-2002", "B-2003"} {
		jobIDs = append(jobIDs, s.submit("echo", recv.URL+"/hooks/boomerang", map[string]string{"order": order}))
	}
	waitFor(t, "three PENDING deliveries after one failed attempt each", 20*time.Second, func() bool {
		for _, id := range jobIDs {
			if j := s.job(id); j.Delivery == nil || j.Delivery.Status != "PENDING" || j.Delivery.Attempts != 1 {
				return false
			}
		}
		return true
	})
	dlv := s.job(jobIDs[0]).Delivery.ID

	dr := newDriver(t, browser)
	do, click, read, shot := dr.do, dr.click, dr.read, dr.shot
	do("open the console", chromedp.Navigate(s.base+"/admin/login"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), s.admin))
	click("log in", "login")
	do("the PENDING deliveries", chromedp.Navigate(s.base+"/admin/deliveries?status=PENDING"), chromedp.WaitVisible(chromedp.ID("deliveries")))
	if page := read("the list", chromedp.Text(chromedp.CSS("main"))); strings.Contains(page, "Bulk replay") || !strings.Contains(page, "Retry now") {
		t.Errorf("the PENDING list offers a bulk replay, or no Retry now:\n%s", page)
	}
	do("open the PENDING delivery", chromedp.Navigate(s.base+"/admin/deliveries/"+dlv), chromedp.WaitVisible(chromedp.ID("retry-now")))
	if st := read("status", chromedp.Text(chromedp.ID("delivery-status"))); st != "PENDING" {
		t.Fatalf("delivery %s before Retry now: got %q, want PENDING", dlv, st)
	}

	broken.Store(false) // the receiver is fixed
	click("retry now", "retry-now")
	deadline := time.Now().Add(20 * time.Second)
	for st := read("status", chromedp.Text(chromedp.ID("delivery-status"))); st != "DELIVERED"; st = read("status", chromedp.Text(chromedp.ID("delivery-status"))) {
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s after Retry now: still %q after 20 s (the receiver saw %d requests)", dlv, st, hits.Load())
		}
		time.Sleep(200 * time.Millisecond) // deferred by the gate: the workers make it
		do("reload the delivery", chromedp.Navigate(s.base+"/admin/deliveries/"+dlv+"?retried=1"), chromedp.WaitVisible(chromedp.ID("delivery-status")))
	}
	if n := read("outcome", chromedp.Text(chromedp.ID("retried"))); !strings.Contains(n, "Retried now") {
		t.Errorf("the delivery's page after Retry now says %q, want the outcome", n)
	}
	shot("retry-now")
	if j := s.job(jobIDs[0]); j.Delivery == nil || j.Delivery.Status != "DELIVERED" || j.Delivery.Attempts != 2 {
		t.Errorf("after Retry now the API says %+v; want DELIVERED after 2 attempts", j.Delivery)
	}

	do("the PENDING deliveries again", chromedp.Navigate(s.base+"/admin/deliveries?status=PENDING"), chromedp.WaitVisible(chromedp.ID("deliveries")))
	click("bulk retry now: dry run", "retry-count")
	if m := read("matched", chromedp.Text(chromedp.ID("matched"))); !strings.HasPrefix(m, "2 PENDING deliveries match") {
		t.Errorf("dry run: got %q, want 2 PENDING deliveries", m)
	}
	click("bulk retry now", "retry-run")
	if n := read("retried", chromedp.Text(chromedp.ID("retried"))); n != "2" {
		t.Errorf("bulk Retry now: %s retried, want 2", n)
	}
	waitFor(t, "every delivery DELIVERED", 20*time.Second, func() bool {
		for _, id := range jobIDs {
			if j := s.job(id); j.Delivery == nil || j.Delivery.Status != "DELIVERED" {
				return false
			}
		}
		return true
	})
	for _, id := range jobIDs {
		if j := s.job(id); j.Delivery.Attempts != 2 {
			t.Errorf("job %s: delivered after %d attempts, want 2 (one failed, one retried now)", id, j.Delivery.Attempts)
		}
	}
}

// driver is a test's steps in the browser, each with its own timeout.
type driver struct {
	step  func() (context.Context, context.CancelFunc)
	do    func(what string, steps ...chromedp.Action[chromedp.Void])
	click func(what string, sel chromedp.ID) // clicks, and wants a 200 page
	read  func(what string, a chromedp.Action[string]) string
	shot  func(name string) // saves docs/img/console-<name>.png
}

func newDriver(t *testing.T, browser context.Context) driver {
	shots := filepath.Join("..", "..", "docs", "img")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(browser, 30*time.Second) }
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := step()
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// click clicks and waits for the page it loads, which must be a 200.
	click := func(what string, sel chromedp.ID) {
		t.Helper()
		ctx, cancel := step()
		defer cancel()
		resp, err := chromedp.RunResponse(ctx, chromedp.Click(sel))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if resp.Status != http.StatusOK {
			t.Fatalf("%s: %s answered %d", what, resp.URL, resp.Status)
		}
	}
	read := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		ctx, cancel := step()
		defer cancel()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		ctx, cancel := step()
		defer cancel()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err == nil {
			err = os.WriteFile(filepath.Join(shots, "console-"+name+".png"), png, 0o644)
		}
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
	}
	return driver{step: step, do: do, click: click, read: read, shot: shot}
}

package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/handlers"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/page"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// Fixed credentials of the fakes.
const (
	adminToken = "adm_0123456789abcdef"
	keyA       = "bmr_client_a_key"
	keyB       = "bmr_client_b_key"
	clientA    = "cli_0A000000000000000000000000"
	clientB    = "cli_0B000000000000000000000000"
	badCursor  = "not-a-cursor"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func at(min int) *time.Time { t := t0.Add(time.Duration(min) * time.Minute); return &t }

// ---- JobService ----

type fakeJobs struct {
	mu        sync.Mutex
	jobs      map[string]jobs.Job
	order     []string
	idem      map[string]string // clientID+key -> id + " " + fingerprint
	n         int
	err       error // returned by every method when set
	gotFilter jobs.Filter
}

func newFakeJobs() *fakeJobs {
	return &fakeJobs{jobs: map[string]jobs.Job{}, idem: map[string]string{}}
}

func (f *fakeJobs) put(j jobs.Job) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[j.ID] = j
	f.order = append(f.order, j.ID)
}

// Cancel cancels a job that has not ended, as jobs.Service does.
func (f *fakeJobs) Cancel(_ context.Context, clientID, id string) (jobs.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	switch {
	case f.err != nil:
		return jobs.Job{}, f.err
	case !ok || (clientID != "" && j.ClientID != clientID):
		return jobs.Job{}, jobs.ErrNotFound
	case j.Status.Final():
		return jobs.Job{}, jobs.ErrFinished
	}
	j.Status, j.Error = jobs.StatusCanceled, &jobs.Error{Code: "canceled", Message: "the job was canceled"}
	f.jobs[id] = j
	return j, nil
}

// Watch streams nothing here: event streams are tested with useRealJobs.
func (f *fakeJobs) Watch(ctx context.Context, clientID, id string, _ int, _ bool) (*jobs.Stream, error) {
	if _, err := f.Get(ctx, clientID, id); err != nil {
		return nil, err
	}
	return nil, jobs.ErrUnavailable
}

// WaitFinal answers at once, as if the wait ran out.
func (f *fakeJobs) WaitFinal(ctx context.Context, clientID, id string, _ time.Duration) (jobs.Job, error) {
	return f.Get(ctx, clientID, id)
}

func (f *fakeJobs) Submit(_ context.Context, clientID string, sub jobs.Submission) (jobs.Job, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return jobs.Job{}, false, f.err
	}
	fp := fmt.Sprintf("%s|%s|%v|%s", sub.Type, sub.CallbackURL, sub.Metadata, sub.Payload)
	if sub.IdempotencyKey != "" {
		if prior, ok := f.idem[clientID+" "+sub.IdempotencyKey]; ok {
			id, p, _ := strings.Cut(prior, " ")
			if p != fp {
				return jobs.Job{}, false, jobs.ErrIdempotencyConflict
			}
			return f.jobs[id], false, nil
		}
	}
	f.n++
	j := jobs.Job{ID: fmt.Sprintf("req_0FAKE%04d%017d", f.n, 0), ClientID: clientID, Type: sub.Type, Status: jobs.StatusAccepted,
		Payload: sub.Payload, CallbackURL: sub.CallbackURL, Metadata: sub.Metadata, CreatedAt: t0, UpdatedAt: t0}
	f.jobs[j.ID] = j
	f.order = append(f.order, j.ID)
	if sub.IdempotencyKey != "" {
		f.idem[clientID+" "+sub.IdempotencyKey] = j.ID + " " + fp
	}
	return j, true, nil
}

func (f *fakeJobs) Get(_ context.Context, clientID, id string) (jobs.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return jobs.Job{}, f.err
	}
	j, ok := f.jobs[id]
	if !ok || j.ClientID != clientID {
		return jobs.Job{}, jobs.ErrNotFound
	}
	return j, nil
}

func (f *fakeJobs) List(_ context.Context, flt jobs.Filter, limit int, cursor string) ([]jobs.Job, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gotFilter = flt
	if f.err != nil {
		return nil, "", f.err
	}
	var all []jobs.Job
	for _, id := range f.order {
		j := f.jobs[id]
		if (flt.Status == "" || j.Status == flt.Status) && (flt.ClientID == "" || j.ClientID == flt.ClientID) {
			j.Payload = nil
			all = append(all, j)
		}
	}
	return pageOf(all, limit, cursor)
}

// pageOf pages a slice with cursors "c<offset>"; anything else is a bad cursor.
func pageOf[T any](all []T, limit int, cursor string) ([]T, string, error) {
	start := 0
	if cursor != "" {
		if _, err := fmt.Sscanf(cursor, "c%d", &start); err != nil || start > len(all) {
			return nil, "", page.ErrBadCursor
		}
	}
	end, next := start+limit, ""
	if end < len(all) {
		next = fmt.Sprintf("c%d", end)
	} else {
		end = len(all)
	}
	return all[start:end], next, nil
}

// ---- ClientStore ----

type fakeClients struct {
	mu      sync.Mutex
	clients map[string]clients.Client
	order   []string
	keys    map[string]string // api key -> client id
	n       int
	err     error // returned by every method but Authenticate when set
	authErr error // returned by Authenticate when set
}

func newFakeClients() *fakeClients {
	f := &fakeClients{clients: map[string]clients.Client{}, keys: map[string]string{}}
	for _, c := range []struct{ id, name, key string }{{clientA, "Client A", keyA}, {clientB, "Client B", keyB}} {
		f.clients[c.id] = clients.Client{ID: c.id, Name: c.name, CreatedAt: t0,
			Keys: []clients.Key{{ID: "key_" + c.id[len("cli_"):], Hint: c.key[:8], CreatedAt: t0}}}
		f.order = append(f.order, c.id)
		f.keys[c.key] = c.id
	}
	return f
}

func (f *fakeClients) Authenticate(_ context.Context, apiKey string) (clients.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.authErr != nil {
		return clients.Client{}, f.authErr
	}
	id, ok := f.keys[apiKey]
	if !ok || f.clients[id].Disabled {
		return clients.Client{}, clients.ErrUnauthorized
	}
	return f.clients[id], nil
}

func (f *fakeClients) Create(_ context.Context, name string, jobTypes ...string) (clients.Client, string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return clients.Client{}, "", "", f.err
	}
	f.n++
	id, key := fmt.Sprintf("cli_0NEW%03d%019d", f.n, 0), fmt.Sprintf("bmr_newkey_%d_xyzzy", f.n)
	c := clients.Client{ID: id, Name: name, CreatedAt: t0, JobTypes: jobTypes,
		Keys: []clients.Key{{ID: "key_" + id[len("cli_"):], Hint: key[:8], CreatedAt: t0}}}
	f.clients[id], f.keys[key] = c, id
	f.order = append(f.order, id)
	return c, key, fmt.Sprintf("whsec_newsecret_%d_plugh", f.n), nil
}

func (f *fakeClients) Update(_ context.Context, id string, u clients.Update) (clients.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return clients.Client{}, f.err
	}
	c, ok := f.clients[id]
	if !ok {
		return clients.Client{}, clients.ErrNotFound
	}
	if u.Name != nil {
		c.Name = *u.Name
	}
	if u.JobTypes != nil {
		c.JobTypes = *u.JobTypes
	}
	f.clients[id] = c
	return c, nil
}

func (f *fakeClients) Get(_ context.Context, id string) (clients.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return clients.Client{}, f.err
	}
	c, ok := f.clients[id]
	if !ok {
		return clients.Client{}, clients.ErrNotFound
	}
	return c, nil
}

func (f *fakeClients) List(_ context.Context, limit int, cursor string) ([]clients.Client, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, "", f.err
	}
	all := make([]clients.Client, 0, len(f.order))
	for _, id := range f.order {
		c := f.clients[id]
		c.Keys = nil
		all = append(all, c)
	}
	return pageOf(all, limit, cursor)
}

func (f *fakeClients) AddKey(_ context.Context, clientID string) (clients.Key, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return clients.Key{}, "", f.err
	}
	c, ok := f.clients[clientID]
	if !ok {
		return clients.Key{}, "", clients.ErrNotFound
	}
	f.n++
	key := fmt.Sprintf("bmr_added_%d_frotz", f.n)
	k := clients.Key{ID: fmt.Sprintf("key_0ADDED%03d%017d", f.n, 0), Hint: key[:8], CreatedAt: t0}
	c.Keys = append(c.Keys, k)
	f.clients[clientID], f.keys[key] = c, clientID
	return k, key, nil
}

func (f *fakeClients) RevokeKey(_ context.Context, clientID, keyID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	c, ok := f.clients[clientID]
	if !ok {
		return clients.ErrKeyNotFound
	}
	for i, k := range c.Keys {
		if k.ID == keyID {
			c.Keys = append(c.Keys[:i:i], c.Keys[i+1:]...)
			f.clients[clientID] = c
			return nil
		}
	}
	return clients.ErrKeyNotFound
}

func (f *fakeClients) Disable(_ context.Context, clientID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	c, ok := f.clients[clientID]
	if !ok {
		return clients.ErrNotFound
	}
	c.Disabled = true
	f.clients[clientID] = c
	return nil
}

func (f *fakeClients) RotateSecret(_ context.Context, clientID string, _ time.Duration) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	if _, ok := f.clients[clientID]; !ok {
		return "", clients.ErrNotFound
	}
	return "whsec_rotated_xyzzy", nil
}

// ---- DeliveryReader and Replayer ----

type fakeDeliveries struct {
	mu        sync.Mutex
	byID      map[string]webhooks.Delivery
	order     []string
	replays   map[string]webhooks.BulkReplay
	err       error
	gotFilter webhooks.Filter
	gotDryRun bool
}

func newFakeDeliveries() *fakeDeliveries {
	f := &fakeDeliveries{byID: map[string]webhooks.Delivery{}, replays: map[string]webhooks.BulkReplay{}}
	f.put(webhooks.Delivery{ID: "msg_0D0NE000000000000000000000", RequestID: "req_0D0NE000000000000000000000", ClientID: clientA, EventType: jobs.EventCompleted,
		URL: "https://example.com/hook", Status: webhooks.StatusDelivered, Attempts: 2, LastAttemptAt: at(2),
		LastStatusCode: 200, CreatedAt: t0, UpdatedAt: *at(2), DeliveredAt: at(2), Payload: json.RawMessage(`{"type":"job.completed"}`),
		AttemptLog: []webhooks.Attempt{
			{Number: 1, StartedAt: *at(1), DurationMs: 30, URL: "https://example.com/hook", RequestHeaders: map[string]string{"webhook-id": "msg_0D0NE000000000000000000000"},
				StatusCode: 503, ResponseHeaders: map[string]string{"Retry-After": "60"}, ResponseBody: "busy", ErrorClass: webhooks.ClassStatus,
				Error: "receiver answered 503", Outcome: webhooks.OutcomeRetry, NextAttemptAt: at(2)},
			{Number: 2, StartedAt: *at(2), DurationMs: 12, URL: "https://example.com/hook", RequestHeaders: map[string]string{"webhook-id": "msg_0D0NE000000000000000000000"},
				StatusCode: 200, Outcome: webhooks.OutcomeDelivered},
		}})
	f.put(webhooks.Delivery{ID: "msg_0PEND1NG000000000000000000", RequestID: "req_0PEND1NG000000000000000000", ClientID: clientA, EventType: jobs.EventFailed,
		URL: "https://example.com/hook", Status: webhooks.StatusPending, NextAttemptAt: at(5), CreatedAt: t0, UpdatedAt: t0})
	f.put(webhooks.Delivery{ID: "msg_0FA11ED0000000000000000000", RequestID: "req_0FA11ED0000000000000000000", ClientID: clientB, EventType: jobs.EventCompleted,
		URL: "https://example.org/hook", Status: webhooks.StatusFailed, Attempts: 1, LastAttemptAt: at(1), LastStatusCode: 410,
		LastError: "receiver answered 410", CreatedAt: t0, UpdatedAt: *at(1)})
	return f
}

func (f *fakeDeliveries) put(d webhooks.Delivery) {
	f.byID[d.ID] = d
	f.order = append(f.order, d.ID)
}

func (f *fakeDeliveries) GetDelivery(_ context.Context, id string, withAttempts bool) (webhooks.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return webhooks.Delivery{}, f.err
	}
	d, ok := f.byID[id]
	if !ok {
		return webhooks.Delivery{}, webhooks.ErrNotFound
	}
	if !withAttempts {
		d.AttemptLog = nil
	}
	return d, nil
}

func (f *fakeDeliveries) ListDeliveries(_ context.Context, flt webhooks.Filter, limit int, cursor string) ([]webhooks.Delivery, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gotFilter = flt
	if f.err != nil {
		return nil, "", f.err
	}
	var all []webhooks.Delivery
	for _, id := range f.order {
		d := f.byID[id]
		if (flt.Status == "" || d.Status == flt.Status) && (flt.ClientID == "" || d.ClientID == flt.ClientID) {
			d.AttemptLog, d.Payload = nil, nil
			all = append(all, d)
		}
	}
	return pageOf(all, limit, cursor)
}

func (f *fakeDeliveries) Replay(_ context.Context, id string) (webhooks.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return webhooks.Delivery{}, f.err
	}
	d, ok := f.byID[id]
	switch {
	case !ok:
		return webhooks.Delivery{}, webhooks.ErrNotFound
	case d.Status == webhooks.StatusPending:
		return webhooks.Delivery{}, webhooks.ErrConflict
	}
	d.Status, d.NextAttemptAt, d.Replays, d.DeliveredAt = webhooks.StatusPending, at(10), d.Replays+1, nil
	d.AttemptLog, d.Payload = nil, nil
	f.byID[id] = d
	return d, nil
}

func (f *fakeDeliveries) StartBulkReplay(_ context.Context, flt webhooks.Filter, dryRun bool) (webhooks.BulkReplay, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gotFilter, f.gotDryRun = flt, dryRun
	if f.err != nil {
		return webhooks.BulkReplay{}, f.err
	}
	var n int64
	for _, d := range f.byID {
		if d.Status == flt.Status && (flt.ClientID == "" || d.ClientID == flt.ClientID) {
			n++
		}
	}
	r := webhooks.BulkReplay{ID: fmt.Sprintf("rpl_0FAKE%d%020d", len(f.replays)+1, 0), Filter: flt, DryRun: dryRun,
		State: webhooks.ReplayRunning, Matched: n, CreatedAt: t0, UpdatedAt: t0}
	if dryRun {
		r.State, r.FinishedAt = webhooks.ReplayDone, at(0)
	}
	f.replays[r.ID] = r
	return r, nil
}

// RetryNow "delivers" a PENDING delivery at its next attempt.
func (f *fakeDeliveries) RetryNow(_ context.Context, id string) (webhooks.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return webhooks.Delivery{}, f.err
	}
	d, ok := f.byID[id]
	switch {
	case !ok:
		return webhooks.Delivery{}, webhooks.ErrNotFound
	case d.Status != webhooks.StatusPending:
		return webhooks.Delivery{}, &webhooks.NotPendingError{Status: d.Status}
	}
	d.Attempts++
	d.Status, d.LastAttemptAt, d.DeliveredAt, d.NextAttemptAt, d.LastStatusCode = webhooks.StatusDelivered, at(10), at(10), nil, 200
	d.AttemptLog = append(d.AttemptLog, webhooks.Attempt{Number: d.Attempts, StartedAt: *at(10), DurationMs: 3, URL: d.URL,
		StatusCode: 200, Outcome: webhooks.OutcomeDelivered})
	f.byID[id] = d
	return d, nil
}

func (f *fakeDeliveries) RetryNowAll(_ context.Context, flt webhooks.Filter, dryRun bool) (webhooks.RetryNowResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gotFilter, f.gotDryRun = flt, dryRun
	if f.err != nil {
		return webhooks.RetryNowResult{}, f.err
	}
	r := webhooks.RetryNowResult{DryRun: dryRun}
	for _, d := range f.byID {
		if d.Status == webhooks.StatusPending && (flt.ClientID == "" || d.ClientID == flt.ClientID) {
			r.Matched++
		}
	}
	if !dryRun {
		r.Retried = r.Matched
	}
	return r, nil
}

func (f *fakeDeliveries) GetReplay(_ context.Context, id string) (webhooks.BulkReplay, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return webhooks.BulkReplay{}, f.err
	}
	r, ok := f.replays[id]
	if !ok {
		return webhooks.BulkReplay{}, webhooks.ErrReplayNotFound
	}
	return r, nil
}

// ---- the test environment ----

type env struct {
	jobs       *fakeJobs
	clients    *fakeClients
	deliveries *fakeDeliveries
	real       *jobs.Service // set by useRealJobs
	readyErr   error
	logs       *testkit.SyncBuffer
	deps       handlers.Deps
	serve      int
}

func newEnv() *env {
	e := &env{jobs: newFakeJobs(), clients: newFakeClients(), deliveries: newFakeDeliveries(), logs: &testkit.SyncBuffer{},
		serve: handlers.ServePublic | handlers.ServeAdmin}
	e.deps = handlers.Deps{Jobs: e.jobs, Clients: e.clients, Deliveries: e.deliveries, Replays: e.deliveries, Retries: e.deliveries,
		Ready:      func(context.Context) error { return e.readyErr },
		AdminToken: adminToken, MaxBody: 1024, Grace: 24 * time.Hour,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	return e
}

type fakeEnqueuer struct {
	mu  sync.Mutex
	ids []string
	err error
}

func (q *fakeEnqueuer) EnqueueExpiry(context.Context, string, time.Time) error { return nil }
func (q *fakeEnqueuer) ScheduleAttempt(context.Context, string, int, time.Time) error {
	return nil
}

func (q *fakeEnqueuer) EnqueueJob(_ context.Context, id string, _ int, _ time.Time, _ time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ids = append(q.ids, id)
	return q.err
}

// newStore is a real redisstore.Store on this test's own Redis database.
func newStore(t testing.TB) *redisstore.Store {
	t.Helper()
	st, err := redisstore.New(context.Background(), redistest.Client(t), redisstore.Options{Retention: time.Hour})
	if err != nil {
		t.Fatalf("redisstore.New: %v", err)
	}
	return st
}

// useRealJobs swaps the JobService for a real jobs.Service over a real
// redisstore.Store on this test's own Redis database, with the zero egress
// policy.
func (e *env) useRealJobs(t testing.TB) {
	t.Helper()
	reg := jobs.NewRegistry()
	reg.Register("echo", jobs.Echo, time.Minute)
	reg.Register("report.render", jobs.Echo, time.Minute)
	st := newStore(t)
	e.real = jobs.NewService(jobs.ServiceOptions{Store: st, Registry: reg, URLs: egress.Policy{}, Enqueuer: &fakeEnqueuer{}})
	e.deps.Jobs = e.real
}

func (e *env) handler() http.Handler { return handlers.New(e.deps, e.serve) }

// request is one HTTP exchange with the handler under test.
type request struct {
	method, path string
	body         string
	auth         string // "" picks the route's usual credential; "-" sends none
	header       map[string]string
	bodyReader   io.Reader
}

func (e *env) do(t testing.TB, rq request) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader = strings.NewReader(rq.body)
	if rq.bodyReader != nil {
		body = rq.bodyReader
	}
	r := httptest.NewRequest(rq.method, rq.path, body)
	if rq.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	switch {
	case rq.auth == "-":
	case rq.auth != "":
		r.Header.Set("Authorization", rq.auth)
	case strings.HasPrefix(rq.path, "/admin/"):
		r.Header.Set("Authorization", "Bearer "+adminToken)
	case strings.HasPrefix(rq.path, "/v1/"):
		r.Header.Set("Authorization", "Bearer "+keyA)
	}
	for k, v := range rq.header {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	e.handler().ServeHTTP(w, r)
	return w
}

// problem decodes a problem+json answer, failing on anything else.
func problem(t testing.TB, w *httptest.ResponseRecorder) handlers.Problem {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", ct, w.Body)
	}
	var p handlers.Problem
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem body %q: %v", w.Body, err)
	}
	if p.Status != w.Code {
		t.Errorf("problem status %d, HTTP status %d", p.Status, w.Code)
	}
	if p.Title == "" || !strings.HasPrefix(p.Type, handlers.ProblemBase) {
		t.Errorf("problem lacks title or has a foreign type: %+v", p)
	}
	return p
}

// object decodes a JSON object answer.
func object(t testing.TB, w *httptest.ResponseRecorder, wantStatus int) map[string]any {
	t.Helper()
	if w.Code != wantStatus {
		t.Fatalf("status %d, want %d; body %s", w.Code, wantStatus, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	return m
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// errReader fails every read.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

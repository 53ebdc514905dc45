package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/handlers"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// noTasks stands in for the task queue: nothing here needs a task to run.
type noTasks struct{}

func (noTasks) ScheduleAttempt(context.Context, string, int, time.Time) error { return nil }
func (noTasks) StartReplay(context.Context, string) error                     { return nil }

// TestOverTheRealStore wires the handlers as cmd/boomerang does (clients,
// jobs, deliveries and replays over one redisstore.Store) and follows a
// job from its submission to its delivery's replay through the API.
func TestOverTheRealStore(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	cl := clients.NewService(store, clients.Options{})
	tenant, key, _, err := cl.Create(ctx, "tenant")
	if err != nil {
		t.Fatal(err)
	}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer receiver.Close()
	policy := egress.Policy{AllowPrivate: true}
	dispatcher := webhooks.NewDispatcher(webhooks.DispatcherOptions{Store: store, Transport: policy.Transport(), Secrets: cl,
		Scheduler: noTasks{}, Replays: noTasks{}, Policy: webhooks.DefaultRetryPolicy()})
	reg := jobs.NewRegistry()
	reg.Register("echo", jobs.Echo, time.Minute)
	svc := jobs.NewService(jobs.ServiceOptions{Store: store, Registry: reg, URLs: egress.Checker{Policy: policy},
		Enqueuer: &fakeEnqueuer{}, Deliverer: dispatcher})
	e := newEnv()
	e.deps.Jobs, e.deps.Clients, e.deps.Deliveries, e.deps.Replays = svc, cl, store, dispatcher
	bearer := "Bearer " + key

	sub := object(t, e.do(t, request{method: "POST", path: "/v1/jobs", auth: bearer,
		body: `{"type":"echo","payload":{"n":1},"callbackUrl":"` + receiver.URL + `/hook"}`}), http.StatusAccepted)
	id, _ := sub["requestId"].(string)
	msg := jobs.DeliveryID(id)
	if j := object(t, e.do(t, request{method: "GET", path: "/v1/jobs/" + id, auth: bearer}), http.StatusOK); j["status"] != "ACCEPTED" || j["delivery"] != nil {
		t.Errorf("GET a new job = %v; want ACCEPTED without a delivery", j)
	}
	if err := svc.Run(ctx, id); err != nil {
		t.Fatalf("Run: %v", err)
	}

	j := object(t, e.do(t, request{method: "GET", path: "/v1/jobs/" + id, auth: bearer}), http.StatusOK)
	d, _ := j["delivery"].(map[string]any)
	if j["status"] != "COMPLETED" || d["id"] != msg || d["status"] != "DELIVERED" || d["attempts"] != 1.0 {
		t.Errorf("GET a delivered job = %v; want COMPLETED with delivery %s DELIVERED after 1 attempt", j, msg)
	}
	one := object(t, e.do(t, request{method: "GET", path: "/admin/v1/deliveries/" + msg}), http.StatusOK)
	attempts, _ := one["attempts"].([]any)
	if one["status"] != "DELIVERED" || one["attemptCount"] != 1.0 || len(attempts) != 1 || one["payload"] == nil {
		t.Errorf("GET the delivery = %v; want DELIVERED, attemptCount 1, its attempt log of 1 and its payload", one)
	}

	lists := []struct {
		path    string
		wantIDs []string
	}{
		{"/admin/v1/deliveries", []string{msg}},
		{"/admin/v1/deliveries?clientId=" + tenant.ID, []string{msg}},
		{"/admin/v1/deliveries?status=delivered", []string{msg}},
		{"/admin/v1/deliveries?status=FAILED", nil},
		{"/admin/v1/jobs?clientId=" + tenant.ID, []string{id}},
		{"/admin/v1/jobs?status=COMPLETED", []string{id}},
		{"/admin/v1/jobs?status=FAILED", nil},
		{"/admin/v1/clients?limit=1", []string{tenant.ID}},
	}
	for _, l := range lists {
		page := object(t, e.do(t, request{method: "GET", path: l.path}), http.StatusOK)
		data, _ := page["data"].([]any)
		var got []string
		for _, item := range data {
			m, _ := item.(map[string]any)
			for _, k := range []string{"id", "requestId"} {
				if v, ok := m[k].(string); ok {
					got = append(got, v)
					break
				}
			}
			if m["attempts"] != nil && strings.Contains(l.path, "deliveries") {
				if _, isList := m["attempts"].([]any); isList {
					t.Errorf("GET %s lists attempt logs", l.path)
				}
			}
		}
		if strings.Join(got, ",") != strings.Join(l.wantIDs, ",") {
			t.Errorf("GET %s = %v, want %v", l.path, got, l.wantIDs)
		}
	}
	for _, path := range []string{"/admin/v1/deliveries", "/admin/v1/jobs", "/admin/v1/clients"} {
		w := e.do(t, request{method: "GET", path: path + "?cursor=not-a-cursor"})
		if p := problem(t, w); w.Code != http.StatusBadRequest || p.Type != handlers.ProblemBase+"invalid-parameter" || len(p.Errors) != 1 || p.Errors[0].Field != "cursor" {
			t.Errorf("GET %s with a bad cursor = %d %+v; want 400 invalid-parameter on cursor", path, w.Code, p)
		}
	}

	replayed := object(t, e.do(t, request{method: "POST", path: "/admin/v1/deliveries/" + msg + "/replay"}), http.StatusAccepted)
	if replayed["status"] != "PENDING" || replayed["replays"] != 1.0 {
		t.Errorf("POST replay = %v; want PENDING after 1 replay", replayed)
	}
	w := e.do(t, request{method: "POST", path: "/admin/v1/deliveries/" + msg + "/replay"})
	if p := problem(t, w); w.Code != http.StatusConflict || p.Type != handlers.ProblemBase+"delivery-pending" {
		t.Errorf("POST replay of a PENDING delivery = %d %s; want 409 delivery-pending", w.Code, p.Type)
	}
	for _, path := range []string{"/admin/v1/deliveries/msg_01JD3M4X2Z8QK3V9W7T5N6P4R2", "/admin/v1/deliveries/msg_01JD3M4X2Z8QK3V9W7T5N6P4R2/replay"} {
		method := "GET"
		if strings.HasSuffix(path, "/replay") {
			method = "POST"
		}
		if w := e.do(t, request{method: method, path: path}); w.Code != http.StatusNotFound {
			t.Errorf("%s %s (no such delivery) = %d, want 404", method, path, w.Code)
		}
	}
}

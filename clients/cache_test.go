package clients_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
)

const cacheTTL = 10 * time.Second // the Service's default

// TestAuthenticateIsCached: a key's client is read from the store once per
// cache TTL, and its signing secrets with it.
func TestAuthenticateIsCached(t *testing.T) {
	ctx := context.Background()
	clk := testkit.NewClock(t0)
	p := newProcess(t, redistest.URL(t), clk)
	c, key, secret := create(t, p.svc, "Acme")
	steps := []struct {
		at                                time.Duration
		call                              string // "auth" or "secrets"
		wantClientOfKey, wantGetClientSum int64
	}{
		{0, "auth", 1, 1},
		{0, "auth", 1, 1},
		{0, "secrets", 1, 1}, // cached by Authenticate's read
		{cacheTTL - time.Nanosecond, "auth", 1, 1},
		{cacheTTL - time.Nanosecond, "secrets", 1, 1},
		{cacheTTL, "auth", 2, 2}, // expired: both read again
		{cacheTTL, "secrets", 2, 2},
		{2*cacheTTL + time.Second, "secrets", 2, 3},
		{2*cacheTTL + time.Second, "auth", 3, 3},
	}
	for i, s := range steps {
		clk.Set(t0.Add(s.at))
		switch s.call {
		case "auth":
			got, err := p.svc.Authenticate(ctx, key)
			if err != nil || got.ID != c.ID || got.Secrets != (clients.Secrets{}) {
				t.Errorf("step %d: Authenticate at t0+%v = %s (secrets set: %v), %v; want %s without secrets",
					i+1, s.at, got.ID, got.Secrets != (clients.Secrets{}), err, c.ID)
			}
		case "secrets":
			got, err := p.svc.SigningSecrets(ctx, c.ID)
			if err != nil || !reflect.DeepEqual(got, []string{secret}) {
				t.Errorf("step %d: SigningSecrets at t0+%v = %v, %v; want the secret", i+1, s.at, short(got), err)
			}
		}
		cok, gc := p.store.reads()
		if cok != s.wantClientOfKey || gc != s.wantGetClientSum {
			t.Errorf("step %d: %s at t0+%v: the store was read ClientOfKey ×%d, GetClient ×%d; want ×%d, ×%d",
				i+1, s.call, s.at, cok, gc, s.wantClientOfKey, s.wantGetClientSum)
		}
	}
}

// A change is announced by one process (admin) and must reach another
// (api) that cached the client.
type change struct {
	name string
	// do makes the change through admin and returns what api must see.
	do func(t *testing.T, admin *clients.Service, c clients.Client, key string) (check func(api *clients.Service) error)
}

func changes() []change {
	ctx := context.Background()
	return []change{
		{"RevokeKey", func(t *testing.T, admin *clients.Service, c clients.Client, key string) func(*clients.Service) error {
			if err := admin.RevokeKey(ctx, c.ID, c.Keys[0].ID); err != nil {
				t.Fatal(err)
			}
			return refused(key)
		}},
		{"Disable", func(t *testing.T, admin *clients.Service, c clients.Client, key string) func(*clients.Service) error {
			if err := admin.Disable(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			return refused(key)
		}},
		{"RotateSecret", func(t *testing.T, admin *clients.Service, c clients.Client, key string) func(*clients.Service) error {
			next, err := admin.RotateSecret(ctx, c.ID, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			return func(api *clients.Service) error {
				got, err := api.SigningSecrets(ctx, c.ID)
				if err != nil || len(got) != 2 || got[0] != next {
					return fmt.Errorf("SigningSecrets = %v, %v; want the new secret, then the old", short(got), err)
				}
				return nil
			}
		}},
		{"Update jobTypes", func(t *testing.T, admin *clients.Service, c clients.Client, key string) func(*clients.Service) error {
			types := []string{"report.render"}
			if _, err := admin.Update(ctx, c.ID, clients.Update{JobTypes: &types}); err != nil {
				t.Fatal(err)
			}
			return func(api *clients.Service) error {
				got, err := api.Authenticate(ctx, key)
				if err != nil || !reflect.DeepEqual(got.JobTypes, types) {
					return fmt.Errorf("Authenticate gives jobTypes %q, %v; want %q", got.JobTypes, err, types)
				}
				return nil
			}
		}},
	}
}

// refused is the check of a change that must lock key out.
func refused(key string) func(*clients.Service) error {
	return func(api *clients.Service) error {
		if _, err := api.Authenticate(context.Background(), key); !errors.Is(err, clients.ErrUnauthorized) {
			return fmt.Errorf("Authenticate = %v, want ErrUnauthorized", err)
		}
		return nil
	}
}

// cachedIn creates a client through admin and has api cache it (its key
// and its secrets), checking that api now serves it from its cache.
func cachedIn(t *testing.T, admin, api *process) (clients.Client, string) {
	t.Helper()
	ctx := context.Background()
	c, key, _ := create(t, admin.svc, "Acme")
	for i := 0; i < 2; i++ {
		if _, err := api.svc.Authenticate(ctx, key); err != nil {
			t.Fatalf("Authenticate in the other process: %v", err)
		}
		if _, err := api.svc.SigningSecrets(ctx, c.ID); err != nil {
			t.Fatalf("SigningSecrets in the other process: %v", err)
		}
	}
	if cok, gc := api.store.reads(); cok != 1 || gc != 1 {
		t.Fatalf("the other process read the store ClientOfKey ×%d, GetClient ×%d; want once each (cached)", cok, gc)
	}
	return c, key
}

// TestWatchSpreadsChanges: a change made by another process takes effect
// in a watching process at once, long before its cache would expire (the
// clock does not move at all).
func TestWatchSpreadsChanges(t *testing.T) {
	for _, ch := range changes() {
		t.Run(ch.name, func(t *testing.T) {
			url, clk := redistest.URL(t), testkit.NewClock(t0)
			admin, api := newProcess(t, url, clk), newProcess(t, url, clk)
			api.watch(t)
			c, key := cachedIn(t, admin, api)
			check := ch.do(t, admin.svc, c, key)
			eventually(t, ch.name+" to reach the watching process", func() bool { return check(api.svc) == nil })
		})
	}
}

// TestCacheTTLBoundsStaleness: a process that does not watch (or missed
// the announcement) serves what it cached until the TTL ends, not longer.
func TestCacheTTLBoundsStaleness(t *testing.T) {
	for _, ch := range changes() {
		t.Run(ch.name, func(t *testing.T) {
			url, clk := redistest.URL(t), testkit.NewClock(t0)
			admin, api := newProcess(t, url, clk), newProcess(t, url, clk)
			c, key := cachedIn(t, admin, api)
			check := ch.do(t, admin.svc, c, key)
			clk.Advance(cacheTTL - time.Nanosecond)
			if err := check(api.svc); err == nil {
				t.Fatalf("the change reached a process that does not watch before its TTL: its cache is not used")
			}
			clk.Advance(time.Nanosecond)
			if err := check(api.svc); err != nil {
				t.Errorf("after the cache TTL (%v): %v", cacheTTL, err)
			}
		})
	}
}

// TestChangesTakeEffectInTheSameProcess: the process that makes a change
// drops its own cache first, with or without Watch.
func TestChangesTakeEffectInTheSameProcess(t *testing.T) {
	for _, ch := range changes() {
		t.Run(ch.name, func(t *testing.T) {
			p := newProcess(t, redistest.URL(t), testkit.NewClock(t0))
			c, key := cachedIn(t, p, p)
			check := ch.do(t, p.svc, c, key)
			if err := check(p.svc); err != nil {
				t.Errorf("in the process that made it: %v", err)
			}
		})
	}
}

func TestWatchEndsWithItsContext(t *testing.T) {
	p := newProcess(t, redistest.URL(t), testkit.NewClock(t0))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.svc.Watch(ctx) }()
	<-p.store.subscribed
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // bounds a hang only
		t.Fatal("Watch did not return after its context ended")
	}
}

func TestUpdate(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	c, _, _ := create(t, s, "Acme", "echo", "report.render")
	name := func(s string) *string { return &s }
	types := func(t ...string) *[]string { return &t }
	tests := []struct {
		name      string
		u         clients.Update
		wantName  string
		wantTypes []string
	}{
		{"nothing", clients.Update{}, "Acme", []string{"echo", "report.render"}},
		{"name", clients.Update{Name: name("Acme Corp")}, "Acme Corp", []string{"echo", "report.render"}},
		{"job types", clients.Update{JobTypes: types("echo")}, "Acme Corp", []string{"echo"}},
		{"both", clients.Update{Name: name("Acme 2"), JobTypes: types("a", "b.c", "d-e_f")}, "Acme 2", []string{"a", "b.c", "d-e_f"}},
		{"empty job types: every type", clients.Update{JobTypes: types()}, "Acme 2", nil},
	}
	for _, tc := range tests {
		got, err := s.Update(ctx, c.ID, tc.u)
		if err != nil {
			t.Fatalf("Update(%s): %v", tc.name, err)
		}
		stored, _ := s.Get(ctx, c.ID)
		for _, g := range []clients.Client{got, stored} {
			if g.ID != c.ID || g.Name != tc.wantName || !reflect.DeepEqual(g.JobTypes, tc.wantTypes) || len(g.Keys) != 1 {
				t.Errorf("Update(%s) = name %q, jobTypes %q, %d keys; want %q, %q, 1 key", tc.name, g.Name, g.JobTypes, len(g.Keys), tc.wantName, tc.wantTypes)
			}
		}
	}
	for _, id := range []string{"cli_unknown", "", "cli_01JD3M4X2Z8QK3V9W7T5N6P4R2"} {
		if _, err := s.Update(ctx, id, clients.Update{Name: name("x")}); !errors.Is(err, clients.ErrNotFound) {
			t.Errorf("Update(%q) = %v, want ErrNotFound", id, err)
		}
	}
	list, _, _ := s.List(ctx, 10, "")
	if len(list) != 1 {
		t.Errorf("Update of unknown clients created some: List = %+v", list)
	}
}

// TestChangeDuringARead: a change announced while a read of the client is
// in flight must not let that read's older answer into the cache.
func TestChangeDuringARead(t *testing.T) {
	tests := []struct {
		name  string
		read  func(p *process, c clients.Client, key string) error
		check func(p *process, c clients.Client, key string) error
	}{
		{"Authenticate", func(p *process, _ clients.Client, key string) error {
			_, err := p.svc.Authenticate(context.Background(), key)
			return err
		}, func(p *process, c clients.Client, key string) error { return refused(key)(p.svc) }},
		{"SigningSecrets", func(p *process, c clients.Client, _ string) error {
			_, err := p.svc.SigningSecrets(context.Background(), c.ID)
			return err
		}, func(p *process, c clients.Client, _ string) error {
			got, err := p.svc.SigningSecrets(context.Background(), c.ID)
			if err != nil || len(got) != 2 {
				return fmt.Errorf("SigningSecrets = %v, %v; want the rotated pair", short(got), err)
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			p := newProcess(t, redistest.URL(t), testkit.NewClock(t0))
			c, key, _ := create(t, p.svc, "Acme")
			p.store.afterGet = func() {
				p.store.afterGet = nil
				// The change lands between the read and the caching of its answer.
				if err := p.svc.Disable(ctx, c.ID); err != nil {
					t.Error(err)
				}
				if _, err := p.svc.RotateSecret(ctx, c.ID, time.Hour); err != nil {
					t.Error(err)
				}
			}
			if err := tc.read(p, c, key); err != nil {
				t.Fatalf("the read during the change: %v", err)
			}
			if err := tc.check(p, c, key); err != nil {
				t.Errorf("after a change made during a read (the clock has not moved): %v", err)
			}
		})
	}
}

package redisstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/webhooks"
)

func newClient(at time.Time, name string) (clients.Client, clients.Key) {
	k := clients.Key{ID: ids.New(ids.Key, at), Hint: "bmr_ab12", CreatedAt: at.Add(time.Nanosecond), Hash: "hash-" + name}
	return clients.Client{ID: ids.New(ids.Client, at), Name: name, CreatedAt: at, JobTypes: []string{"echo", "http.forward"},
		Secrets: clients.Secrets{Current: "whsec_" + name}}, k
}

func getClient(t *testing.T, s *redisstore.Store, id string) clients.Client {
	t.Helper()
	c, err := s.GetClient(context.Background(), id, true)
	if err != nil {
		t.Fatalf("GetClient(%s) = %v", id, err)
	}
	return c
}

func sameClient(got, want clients.Client) bool {
	return asJSON(got) == asJSON(want) && got.Secrets.Current == want.Secrets.Current && got.Secrets.Previous == want.Secrets.Previous &&
		got.Secrets.PreviousUntil.Equal(want.Secrets.PreviousUntil) && got.CreatedAt.Equal(want.CreatedAt) &&
		slices.EqualFunc(got.Keys, want.Keys, func(a, b clients.Key) bool {
			return a.ID == b.ID && a.Hint == b.Hint && a.Hash == b.Hash && a.CreatedAt.Equal(b.CreatedAt)
		})
}

func TestClientKeysAndUpdates(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	c, k1 := newClient(t0, "acme")
	if err := s.CreateClient(ctx, c, k1); err != nil {
		t.Fatalf("CreateClient = %v", err)
	}
	want := c
	want.Keys = []clients.Key{k1}
	if got := getClient(t, s, c.ID); !sameClient(got, want) {
		t.Errorf("GetClient after CreateClient:\n got %s %+v\nwant %s %+v", asJSON(got), got.Secrets, asJSON(want), want.Secrets)
	}
	if got, err := s.GetClient(ctx, c.ID, false); err != nil || got.Keys != nil || got.Secrets.Current != c.Secrets.Current {
		t.Errorf("GetClient(without keys) = %s %+v, %v; want the client with its secrets and no keys", asJSON(got), got.Secrets, err)
	}
	if id, err := s.ClientOfKey(ctx, k1.Hash); id != c.ID || err != nil {
		t.Errorf("ClientOfKey(first key) = %q, %v; want %s", id, err, c.ID)
	}

	k2 := clients.Key{ID: ids.New(ids.Key, t0.Add(time.Hour)), Hint: "bmr_cd34", CreatedAt: t0.Add(time.Hour), Hash: "hash-2"}
	if err := s.AddKey(ctx, c.ID, k2); err != nil {
		t.Fatalf("AddKey = %v", err)
	}
	want.Keys = []clients.Key{k1, k2}
	if got := getClient(t, s, c.ID); !sameClient(got, want) {
		t.Errorf("after AddKey: keys %+v, want %+v", got.Keys, want.Keys)
	}
	if id, err := s.ClientOfKey(ctx, k2.Hash); id != c.ID || err != nil {
		t.Errorf("ClientOfKey(second key) = %q, %v; want %s", id, err, c.ID)
	}

	// Revoked, a key stops authenticating at once.
	if err := s.RevokeKey(ctx, c.ID, k1.ID); err != nil {
		t.Fatalf("RevokeKey = %v", err)
	}
	if id, err := s.ClientOfKey(ctx, k1.Hash); !errors.Is(err, clients.ErrUnauthorized) {
		t.Errorf("ClientOfKey(revoked key) = %q, %v; want ErrUnauthorized", id, err)
	}
	if id, err := s.ClientOfKey(ctx, k2.Hash); id != c.ID || err != nil {
		t.Errorf("ClientOfKey(the other key) = %q, %v; want %s", id, err, c.ID)
	}
	want.Keys = []clients.Key{k2}
	if got := getClient(t, s, c.ID); !sameClient(got, want) {
		t.Errorf("after RevokeKey: keys %+v, want %+v", got.Keys, want.Keys)
	}
	for _, tc := range []struct{ client, key string }{{c.ID, k1.ID}, {c.ID, "key_x"}, {"cli_x", k2.ID}, {ids.New(ids.Client, t0), k2.ID}} {
		if err := s.RevokeKey(ctx, tc.client, tc.key); !errors.Is(err, clients.ErrKeyNotFound) {
			t.Errorf("RevokeKey(%s, %s) = %v, want ErrKeyNotFound", tc.client, tc.key, err)
		}
	}

	// Updates.
	name, types, none := "Acme Corp", []string{"echo"}, []string{}
	secrets := clients.Secrets{Current: "whsec_new", Previous: "whsec_acme", PreviousUntil: t0.Add(24*time.Hour + 5)}
	steps := []struct {
		name    string
		u       clients.Update
		disable bool
		secrets *clients.Secrets
		edit    func(*clients.Client)
	}{
		{"nothing", clients.Update{}, false, nil, func(*clients.Client) {}},
		{"name", clients.Update{Name: &name}, false, nil, func(c *clients.Client) { c.Name = name }},
		{"job types", clients.Update{JobTypes: &types}, false, nil, func(c *clients.Client) { c.JobTypes = types }},
		{"every job type", clients.Update{JobTypes: &none}, false, nil, func(c *clients.Client) { c.JobTypes = nil }},
		{"secrets", clients.Update{}, false, &secrets, func(c *clients.Client) { c.Secrets = secrets }},
		{"disable", clients.Update{}, true, nil, func(c *clients.Client) { c.Disabled = true }},
	}
	for _, st := range steps {
		if err := s.UpdateClient(ctx, c.ID, st.u, st.disable, st.secrets); err != nil {
			t.Fatalf("UpdateClient(%s) = %v", st.name, err)
		}
		st.edit(&want)
		if got := getClient(t, s, c.ID); !sameClient(got, want) {
			t.Errorf("after UpdateClient(%s):\n got %s %+v\nwant %s %+v", st.name, asJSON(got), got.Secrets, asJSON(want), want.Secrets)
		}
	}

	// A missing client is not found, and not created half.
	ghost := ids.New(ids.Client, t0)
	before := snapshot(t, rdb)
	for _, id := range []string{ghost, "cli_x", "", "cli_" + ids.Body(ghost) + "}"} {
		if err := s.UpdateClient(ctx, id, clients.Update{Name: &name}, true, &secrets); !errors.Is(err, clients.ErrNotFound) {
			t.Errorf("UpdateClient(%q) = %v, want ErrNotFound", id, err)
		}
		if _, err := s.GetClient(ctx, id, true); !errors.Is(err, clients.ErrNotFound) {
			t.Errorf("GetClient(%q) = %v, want ErrNotFound", id, err)
		}
	}
	unchanged(t, rdb, before, "UpdateClient of a missing client")
}

func TestListClientsPages(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, redisstore.Options{})
	ctx := context.Background()
	var want []string
	for i := range 11 {
		c, k := newClient(t0.Add(time.Duration(i)*time.Minute), "c"+string(rune('a'+i)))
		k.Hash = c.ID
		if err := s.CreateClient(ctx, c, k); err != nil {
			t.Fatal(err)
		}
		want = append([]string{c.ID}, want...) // newest first
	}
	for _, limit := range []int{1, 3, 11, 50} {
		got := collect(t, "ListClients", limit, func(limit int, cursor string) ([]clients.Client, string, error) {
			return s.ListClients(ctx, limit, cursor)
		})
		var gotIDs []string
		for _, c := range got {
			gotIDs = append(gotIDs, c.ID)
			if c.Secrets != (clients.Secrets{}) || c.Keys != nil || c.Name == "" {
				t.Errorf("ListClients(limit %d) shows %s with secrets %+v, keys %v, name %q; want its name and no secrets or keys", limit, c.ID, c.Secrets, c.Keys, c.Name)
			}
		}
		if !slices.Equal(gotIDs, want) {
			t.Errorf("ListClients(limit %d) = %v\nwant %v", limit, gotIDs, want)
		}
	}
}

func TestChangesAnnounced(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, redisstore.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := s.Changes(ctx)
	next := func() (string, bool) {
		t.Helper()
		select {
		case id, ok := <-ch:
			return id, ok
		case <-time.After(5 * time.Second):
			t.Fatalf("nothing on Changes within 5 s")
			return "", false
		}
	}
	// Subscribed: anything may have changed before, so "" first.
	if id, ok := next(); id != "" || !ok {
		t.Fatalf("first value of Changes = %q (open %v), want \"\"", id, ok)
	}
	a, b := ids.New(ids.Client, t0), ids.New(ids.Client, t0.Add(time.Second))
	for _, id := range []string{a, b, a} {
		if err := s.Announce(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []string{a, b, a} {
		if id, ok := next(); id != want || !ok {
			t.Errorf("announcement %d = %q (open %v), want %s", i, id, ok, want)
		}
	}
	cancel()
	for {
		if _, ok := next(); !ok {
			break // closed once its context ended
		}
	}
}

func TestTakeTokens(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, redisstore.Options{})
	ctx := context.Background()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	steps := []struct {
		client   string
		rate     float64
		burst    int
		want     int
		now      time.Time
		got      int
		wait     time.Duration
		scenario string
	}{
		{"cli_a", 10, 5, 3, at(0), 3, 0, "a full bucket of 5"},
		{"cli_a", 10, 5, 3, at(0), 2, 0, "what is left"},
		{"cli_a", 10, 5, 3, at(0), 0, 100 * time.Millisecond, "empty: one token in 100 ms at 10/s"},
		{"cli_a", 10, 5, 3, at(50 * time.Millisecond), 0, 50 * time.Millisecond, "half a token"},
		{"cli_a", 10, 5, 3, at(100 * time.Millisecond), 1, 0, "one token refilled"},
		{"cli_a", 10, 5, 9, at(time.Hour), 5, 0, "refilled up to the burst only"},
		{"cli_a", 10, 5, 1, at(time.Hour - 10*time.Second), 0, 100 * time.Millisecond, "a process whose clock is behind: no refill"},
		{"cli_a", 10, 5, 1, at(time.Hour), 0, 100 * time.Millisecond, "and the time it missed is not refilled again"},
		{"cli_a", 10, 5, 1, at(time.Hour + 200*time.Millisecond), 1, 0, "time after the latest is"},
		{"cli_b", 0.5, 1, 1, at(0), 1, 0, "another client has its own bucket"},
		{"cli_b", 0.5, 1, 1, at(time.Second), 0, time.Second, "half a token at 0.5/s"},
		{"cli_b", 0.5, 1, 1, at(2 * time.Second), 1, 0, "a token after 2 s"},
	}
	for i, st := range steps {
		got, wait, err := s.TakeTokens(ctx, st.client, st.rate, st.burst, st.want, st.now)
		if got != st.got || wait != st.wait || err != nil {
			t.Errorf("step %d (%s): TakeTokens(%s, rate %v, burst %d, want %d, %v) = %d, %v, %v; want %d, %v",
				i, st.scenario, st.client, st.rate, st.burst, st.want, st.now.Sub(t0), got, wait, err, st.got, st.wait)
		}
	}
}

func TestBulkReplays(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{})
	ctx := context.Background()
	finished := t0.Add(time.Hour + 7)
	full := webhooks.BulkReplay{ID: ids.New(ids.Replay, t0), DryRun: true, State: webhooks.ReplayDone, Matched: 1 << 40, Replayed: 12, Skipped: 3,
		Error: "page 3: <boom>", CreatedAt: t0, UpdatedAt: t0.Add(time.Minute + 1), FinishedAt: &finished, Cursor: "MDFKQ0Q",
		Filter: webhooks.Filter{Status: webhooks.StatusFailed, ClientID: "cli_a", Since: t0.Add(-time.Hour + 3), Until: t0.Add(5)}}
	bare := webhooks.BulkReplay{ID: ids.New(ids.Replay, t0.Add(time.Second)), State: webhooks.ReplayRunning, CreatedAt: t0, UpdatedAt: t0}
	for _, r := range []webhooks.BulkReplay{full, bare} {
		if err := s.SaveReplay(ctx, r); err != nil {
			t.Fatalf("SaveReplay(%s) = %v", r.ID, err)
		}
		got, err := s.GetReplay(ctx, r.ID)
		if err != nil {
			t.Fatalf("GetReplay(%s) = %v", r.ID, err)
		}
		if asJSON(got) != asJSON(r) || got.Cursor != r.Cursor || got.Filter.Status != r.Filter.Status || got.Filter.ClientID != r.Filter.ClientID ||
			!got.Filter.Since.Equal(r.Filter.Since) || !got.Filter.Until.Equal(r.Filter.Until) || !got.CreatedAt.Equal(r.CreatedAt) || !sameTime(got.FinishedAt, r.FinishedAt) {
			t.Errorf("GetReplay after SaveReplay:\n got %s %+v cursor %q\nwant %s %+v cursor %q", asJSON(got), got.Filter, got.Cursor, asJSON(r), r.Filter, r.Cursor)
		}
	}
	for _, id := range []string{ids.New(ids.Replay, t0), "rpl_x", ""} {
		if _, err := s.GetReplay(ctx, id); !errors.Is(err, webhooks.ErrReplayNotFound) {
			t.Errorf("GetReplay(%q) = %v, want ErrReplayNotFound", id, err)
		}
	}

	running := func() []string {
		t.Helper()
		rs, err := s.RunningReplays(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		slices.Sort(out)
		return out
	}
	other := bare
	other.ID = ids.New(ids.Replay, t0.Add(2*time.Second))
	if err := s.SaveReplay(ctx, other); err != nil {
		t.Fatal(err)
	}
	if got := running(); !slices.Equal(got, []string{bare.ID, other.ID}) {
		t.Errorf("RunningReplays = %v, want %v", got, []string{bare.ID, other.ID})
	}
	// Expired: dropped from the running set.
	if err := rdb.Del(ctx, "bmr:{replays}:r:"+other.ID).Err(); err != nil {
		t.Fatal(err)
	}
	if got := running(); !slices.Equal(got, []string{bare.ID}) {
		t.Errorf("RunningReplays after one expired = %v, want %v", got, []string{bare.ID})
	}
	if ok, _ := rdb.SIsMember(ctx, "bmr:{replays}:running", other.ID).Result(); ok {
		t.Errorf("the expired replay %s is still in the running set", other.ID)
	}
	// Finished: no longer running.
	bare.State, bare.FinishedAt = webhooks.ReplayFailed, &finished
	if err := s.SaveReplay(ctx, bare); err != nil {
		t.Fatal(err)
	}
	if got := running(); len(got) != 0 {
		t.Errorf("RunningReplays after the last finished = %v, want none", got)
	}
	if ttl, err := rdb.TTL(ctx, "bmr:{replays}:r:"+bare.ID).Result(); err != nil || ttl <= 0 {
		t.Errorf("a replay's TTL = %v, %v; want the retention", ttl, err)
	}
}

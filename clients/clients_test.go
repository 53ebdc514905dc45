package clients_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/page"
	"github.com/boomerang-dev/boomerang/signing"
)

func TestCreate(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	c, key, secret := create(t, s, "Acme")
	if !strings.HasPrefix(key, clients.APIKeyPrefix) || len(key) < len(clients.APIKeyPrefix)+40 {
		t.Errorf("API key %q: want prefix %s and at least 40 random characters", key, clients.APIKeyPrefix)
	}
	if !strings.HasPrefix(secret, "whsec_") {
		t.Errorf("secret %q: want prefix whsec_", secret)
	}
	if _, err := signing.ParseSecret(secret); err != nil {
		t.Errorf("signing.ParseSecret(secret from Create): %v", err)
	}
	if !strings.HasPrefix(c.ID, "cli_") || c.Name != "Acme" || !c.CreatedAt.Equal(t0) || c.Disabled {
		t.Errorf("Create = %+v; want a cli_ id, name Acme, createdAt %v, enabled", c, t0)
	}
	if len(c.Keys) != 1 || !strings.HasPrefix(key, c.Keys[0].Hint) || !strings.HasPrefix(c.Keys[0].ID, "key_") || len(c.Keys[0].Hint) >= len(key)/2 {
		t.Errorf("Create keys = %+v; want one key_ whose hint is a short prefix of %q", c.Keys, key[:8])
	}
	got, err := s.Get(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != c.ID || got.Name != c.Name || !got.CreatedAt.Equal(c.CreatedAt) || !reflect.DeepEqual(hints(got.Keys), hints(c.Keys)) {
		t.Errorf("Get = %+v, want %+v", got, c)
	}
	secrets, err := s.SigningSecrets(ctx, c.ID)
	if err != nil || !reflect.DeepEqual(secrets, []string{secret}) {
		t.Errorf("SigningSecrets = %v, %v; want [the secret from Create]", secrets, err)
	}
	// Two clients never share keys or secrets.
	c2, key2, secret2 := create(t, s, "Acme")
	if c2.ID == c.ID || key2 == key || secret2 == secret {
		t.Error("two Create calls returned the same id, key or secret")
	}
}

func TestRedisHoldsNoPlaintextKey(t *testing.T) {
	ctx := context.Background()
	s, rdb, _ := newService(t)
	c, key1, _ := create(t, s, "Acme")
	_, key2, err := s.AddKey(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var dump strings.Builder
	iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
	n := 0
	for iter.Next(ctx) {
		k := iter.Val()
		n++
		dump.WriteString(k + "\n")
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "string":
			dump.WriteString(rdb.Get(ctx, k).Val())
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				dump.WriteString(f + "=" + v + "\n")
			}
		case "zset":
			dump.WriteString(strings.Join(rdb.ZRange(ctx, k, 0, -1).Val(), "\n"))
		case "set":
			dump.WriteString(strings.Join(rdb.SMembers(ctx, k).Val(), "\n"))
		case "list":
			dump.WriteString(strings.Join(rdb.LRange(ctx, k, 0, -1).Val(), "\n"))
		default:
			t.Errorf("key %s has unexpected type %s", k, typ)
		}
		dump.WriteString("\n")
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("Redis holds no keys at all; the scan is broken")
	}
	for _, key := range []string{key1, key2} {
		random := strings.TrimPrefix(key, clients.APIKeyPrefix)
		if strings.Contains(dump.String(), random[4:]) {
			t.Errorf("Redis holds (part of) the API key %s...", key[:8])
		}
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	c, key, _ := create(t, s, "Acme")
	other, otherKey, _ := create(t, s, "Other")
	// A key of the right form that was never issued.
	unknown := clients.APIKeyPrefix + strings.Repeat("A", 43)
	tests := []struct {
		name   string
		key    string
		wantID string // "" means ErrUnauthorized
	}{
		{"valid", key, c.ID},
		{"another client's key", otherKey, other.ID},
		{"wrong key", unknown, ""},
		{"without prefix", strings.TrimPrefix(key, clients.APIKeyPrefix), ""},
		{"other prefix", "bmx_" + strings.TrimPrefix(key, clients.APIKeyPrefix), ""},
		{"upper-case prefix", "BMR_" + strings.TrimPrefix(key, clients.APIKeyPrefix), ""},
		{"key with a suffix", key + "x", ""},
		{"truncated key", key[:len(key)-1], ""},
		{"overlong", key + strings.Repeat("a", 200), ""},
		{"empty", "", ""},
		{"prefix only", clients.APIKeyPrefix, ""},
	}
	for _, tc := range tests {
		got, err := s.Authenticate(ctx, tc.key)
		if tc.wantID == "" {
			if !errors.Is(err, clients.ErrUnauthorized) || got.ID != "" {
				t.Errorf("Authenticate(%s) = %q, %v; want ErrUnauthorized", tc.name, got.ID, err)
			}
			continue
		}
		if err != nil || got.ID != tc.wantID {
			t.Errorf("Authenticate(%s) = %q, %v; want %s", tc.name, got.ID, err, tc.wantID)
		}
	}
}

func TestRevokeAndAddKey(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	c, key1, _ := create(t, s, "Acme")
	other, _, _ := create(t, s, "Other")
	k2, key2, err := s.AddKey(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if key2 == key1 || k2.ID == c.Keys[0].ID {
		t.Fatal("AddKey returned the first key again")
	}
	for _, k := range []string{key1, key2} {
		if got, err := s.Authenticate(ctx, k); err != nil || got.ID != c.ID {
			t.Errorf("Authenticate(%s...) = %q, %v; want %s", k[:8], got.ID, err, c.ID)
		}
	}
	got, _ := s.Get(ctx, c.ID)
	if len(got.Keys) != 2 {
		t.Fatalf("Get lists %d keys after AddKey, want 2", len(got.Keys))
	}

	// Revoking with another client's id, or an unknown key id, does nothing.
	for _, tc := range []struct{ clientID, keyID string }{{other.ID, k2.ID}, {c.ID, "key_unknown"}, {"cli_unknown", k2.ID}} {
		if err := s.RevokeKey(ctx, tc.clientID, tc.keyID); !errors.Is(err, clients.ErrKeyNotFound) {
			t.Errorf("RevokeKey(%s, %s) = %v, want ErrKeyNotFound", tc.clientID, tc.keyID, err)
		}
	}
	if _, err := s.Authenticate(ctx, key2); err != nil {
		t.Fatalf("a failed RevokeKey revoked the key: %v", err)
	}

	if err := s.RevokeKey(ctx, c.ID, k2.ID); err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	if _, err := s.Authenticate(ctx, key2); !errors.Is(err, clients.ErrUnauthorized) {
		t.Errorf("Authenticate(revoked key) = %v, want ErrUnauthorized", err)
	}
	if got, err := s.Authenticate(ctx, key1); err != nil || got.ID != c.ID {
		t.Errorf("Authenticate(the other key) after revoking one = %q, %v; want %s", got.ID, err, c.ID)
	}
	got, _ = s.Get(ctx, c.ID)
	if len(got.Keys) != 1 || got.Keys[0].ID != c.Keys[0].ID {
		t.Errorf("keys after revoking %s = %+v, want only %s", k2.ID, got.Keys, c.Keys[0].ID)
	}
	if err := s.RevokeKey(ctx, c.ID, k2.ID); !errors.Is(err, clients.ErrKeyNotFound) {
		t.Errorf("RevokeKey twice = %v, want ErrKeyNotFound", err)
	}
	if _, _, err := s.AddKey(ctx, "cli_unknown"); !errors.Is(err, clients.ErrNotFound) {
		t.Errorf("AddKey(unknown client) = %v, want ErrNotFound", err)
	}
}

func TestDisable(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	c, key, _ := create(t, s, "Acme")
	other, otherKey, _ := create(t, s, "Other")
	if err := s.Disable(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, key); !errors.Is(err, clients.ErrUnauthorized) {
		t.Errorf("Authenticate(key of a disabled client) = %v, want ErrUnauthorized", err)
	}
	if got, err := s.Authenticate(ctx, otherKey); err != nil || got.ID != other.ID {
		t.Errorf("Disable of one client refused another: %q, %v", got.ID, err)
	}
	got, err := s.Get(ctx, c.ID)
	if err != nil || !got.Disabled {
		t.Errorf("Get(disabled client) = %+v, %v; want it, disabled", got, err)
	}
	b, _ := json.Marshal(got)
	if !strings.Contains(string(b), `"disabled":true`) {
		t.Errorf("JSON of a disabled client %s lacks \"disabled\":true", b)
	}
	if err := s.Disable(ctx, "cli_unknown"); !errors.Is(err, clients.ErrNotFound) {
		t.Errorf("Disable(unknown) = %v, want ErrNotFound", err)
	}
}

func TestClientJSONHasHintsButNoSecrets(t *testing.T) {
	ctx := context.Background()
	s, rdb, _ := newService(t)
	c, key1, secret := create(t, s, "Acme")
	_, key2, err := s.AddKey(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateSecret(ctx, c.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		ID   string `json:"id"`
		Keys []struct {
			ID, Hint  string
			CreatedAt time.Time
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &decoded); err != nil || decoded.ID != c.ID || len(decoded.Keys) != 2 {
		t.Fatalf("JSON %s: want the id and two keys (%v)", b, err)
	}
	for i, k := range decoded.Keys {
		if !strings.HasPrefix(k.ID, "key_") || !strings.HasPrefix(k.Hint, clients.APIKeyPrefix) || k.CreatedAt.IsZero() {
			t.Errorf("key %d in JSON = %+v; want id, hint and createdAt", i, k)
		}
	}
	if !strings.HasPrefix(key1, decoded.Keys[0].Hint) && !strings.HasPrefix(key1, decoded.Keys[1].Hint) {
		t.Errorf("no hint in %s starts key %s...", b, key1[:8])
	}
	// Neither keys, their hashes nor any secret appear.
	forbidden := []string{strings.TrimPrefix(key1, clients.APIKeyPrefix)[4:], strings.TrimPrefix(key2, clients.APIKeyPrefix)[4:],
		secret, "whsec_", "hash", "secret", "prevUntil"}
	hashes, _ := rdb.Keys(ctx, "bmr:apikey:*").Result()
	if len(hashes) != 2 {
		t.Fatalf("bmr:apikey:* keys = %v, want two", hashes)
	}
	for _, h := range hashes {
		forbidden = append(forbidden, strings.TrimPrefix(h, "bmr:apikey:"))
	}
	secrets, _ := s.SigningSecrets(ctx, c.ID)
	forbidden = append(forbidden, secrets...)
	for _, f := range forbidden {
		if strings.Contains(string(b), f) {
			t.Errorf("client JSON %s contains %q", b, f)
		}
	}
}

func TestRotateSecret(t *testing.T) {
	ctx := context.Background()
	s, _, clk := newService(t)
	c, _, first := create(t, s, "Acme")
	const grace = time.Hour
	second, err := s.RotateSecret(ctx, c.ID, grace)
	if err != nil {
		t.Fatal(err)
	}
	if second == first {
		t.Fatal("RotateSecret returned the old secret")
	}
	if _, err := signing.ParseSecret(second); err != nil {
		t.Errorf("ParseSecret(rotated secret): %v", err)
	}
	tests := []struct {
		at   time.Time
		want []string
	}{
		{t0, []string{second, first}},
		{t0.Add(grace - time.Nanosecond), []string{second, first}},
		{t0.Add(grace), []string{second}},
		{t0.Add(48 * time.Hour), []string{second}},
	}
	for _, tc := range tests {
		clk.Set(tc.at)
		got, err := s.SigningSecrets(ctx, c.ID)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SigningSecrets at rotation+%v = %v, %v; want %v", tc.at.Sub(t0), short(got), err, short(tc.want))
		}
		// The same answer from the stored secrets.
		cl, _ := s.Get(ctx, c.ID)
		if got := cl.Secrets.At(tc.at); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Client.Secrets.At(rotation+%v) = %v, want %v", tc.at.Sub(t0), short(got), short(tc.want))
		}
	}

	// A second rotation: the previous secret is the second one.
	clk.Set(t0.Add(72 * time.Hour))
	third, err := s.RotateSecret(ctx, c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.SigningSecrets(ctx, c.ID); !reflect.DeepEqual(got, []string{third}) {
		t.Errorf("SigningSecrets after a rotation without grace = %v, want only the new secret", short(got))
	}
	clk.Set(t0.Add(73 * time.Hour))
	fourth, err := s.RotateSecret(ctx, c.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.SigningSecrets(ctx, c.ID); !reflect.DeepEqual(got, []string{fourth, third}) {
		t.Errorf("SigningSecrets after the third rotation = %v, want [fourth third]", short(got))
	}

	if _, err := s.RotateSecret(ctx, "cli_unknown", grace); !errors.Is(err, clients.ErrNotFound) {
		t.Errorf("RotateSecret(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.SigningSecrets(ctx, "cli_unknown"); !errors.Is(err, clients.ErrNotFound) {
		t.Errorf("SigningSecrets(unknown) = %v, want ErrNotFound", err)
	}
}

func TestGetUnknown(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	create(t, s, "Acme")
	for _, id := range []string{"cli_unknown", "", strings.Repeat("c", 65), "cli_01JD3M4X2Z8QK3V9W7T5N6P4R2", "key_01JD3M4X2Z8QK3V9W7T5N6P4R2"} {
		if _, err := s.Get(ctx, id); !errors.Is(err, clients.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
		if _, err := s.SigningSecrets(ctx, id); !errors.Is(err, clients.ErrNotFound) {
			t.Errorf("SigningSecrets(%q) = %v, want ErrNotFound", id, err)
		}
		if _, _, err := s.AddKey(ctx, id); !errors.Is(err, clients.ErrNotFound) {
			t.Errorf("AddKey(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

func TestGetListsKeysSorted(t *testing.T) {
	ctx := context.Background()
	s, _, clk := newService(t)
	c, _, _ := create(t, s, "Acme")
	want := []string{c.Keys[0].ID}
	for i := 1; i < 5; i++ {
		clk.Set(t0.Add(time.Duration(i) * time.Second))
		k, _, err := s.AddKey(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !k.CreatedAt.Equal(clk.Now()) {
			t.Errorf("key createdAt = %v, want %v", k.CreatedAt, clk.Now())
		}
		want = append(want, k.ID)
	}
	got, err := s.Get(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []string
	for _, k := range got.Keys {
		gotIDs = append(gotIDs, k.ID)
	}
	if !reflect.DeepEqual(gotIDs, want) {
		t.Errorf("Get keys = %v, want in creation order %v", gotIDs, want)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	s, _, clk := newService(t)
	for i := 0; i < 5; i++ {
		clk.Set(t0.Add(time.Duration(i) * time.Minute))
		create(t, s, fmt.Sprintf("client-%d", i))
	}
	newestFirst := []string{"client-4", "client-3", "client-2", "client-1", "client-0"}
	tests := []struct {
		limit int
		want  []string // names, over all pages
		pages int
	}{
		{100, newestFirst, 1},
		{5, newestFirst, 1},
		{2, newestFirst, 3},
		{1, newestFirst, 5},
		{0, newestFirst, 1}, // the store's default page
	}
	for _, tc := range tests {
		var got []string
		cursor, pages := "", 0
		for {
			page, next, err := s.List(ctx, tc.limit, cursor)
			if err != nil {
				t.Fatalf("List(limit %d, cursor %q): %v", tc.limit, cursor, err)
			}
			pages++
			for _, c := range page {
				got = append(got, c.Name)
				if c.Keys != nil || c.Secrets != (clients.Secrets{}) {
					t.Errorf("List(limit %d) loaded the keys or secrets of %s", tc.limit, c.Name)
				}
			}
			if next == "" {
				break
			}
			if pages > 10 {
				t.Fatalf("List(limit %d) does not stop paging", tc.limit)
			}
			cursor = next
		}
		if !reflect.DeepEqual(got, tc.want) || pages != tc.pages {
			t.Errorf("List(limit %d) = %v in %d pages, want %v in %d", tc.limit, got, pages, tc.want, tc.pages)
		}
	}
	for _, bad := range []string{"garbage!", "c2", "AAAA"} {
		if _, _, err := s.List(ctx, 10, bad); !errors.Is(err, page.ErrBadCursor) {
			t.Errorf("List(cursor %q) = %v, want page.ErrBadCursor", bad, err)
		}
	}
}

func TestListSkipsVanishedClients(t *testing.T) {
	ctx := context.Background()
	s, rdb, _ := newService(t)
	c, _, _ := create(t, s, "gone")
	kept, _, _ := create(t, s, "kept")
	if n := rdb.Del(ctx, "bmr:client:{"+c.ID+"}").Val(); n != 1 {
		t.Fatalf("deleted %d keys for client %s, want its record (the key layout changed?)", n, c.ID)
	}
	list, _, err := s.List(ctx, 10, "")
	if err != nil || len(list) != 1 || list[0].ID != kept.ID {
		t.Errorf("List with a vanished client = %+v, %v; want only %s", list, err, kept.ID)
	}
}

// TestIDs pages through more clients than one page of IDs holds (500).
func TestIDs(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	const n = 510
	want := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/10; i++ {
				c, _, _, err := s.Create(ctx, "c")
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				want[c.ID] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := map[string]bool{}
	err := s.IDs(ctx, func(id string) error {
		if got[id] {
			t.Errorf("IDs gave %s twice", id)
		}
		got[id] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || !reflect.DeepEqual(got, want) {
		t.Errorf("IDs gave %d ids, want all %d created", len(got), n)
	}

	stop := errors.New("stop")
	calls := 0
	if err := s.IDs(ctx, func(string) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("IDs with a failing fn = %v after %d calls, want %v after 1", err, calls, stop)
	}
}

func TestClosedRedis(t *testing.T) {
	ctx := context.Background()
	s, rdb, _ := newService(t)
	c, key, _ := create(t, s, "Acme")
	rdb.Close()
	if _, err := s.Authenticate(ctx, key); err == nil || errors.Is(err, clients.ErrUnauthorized) {
		t.Errorf("Authenticate over a closed Redis = %v; want a store error, not ErrUnauthorized", err)
	}
	if _, err := s.Get(ctx, c.ID); err == nil || errors.Is(err, clients.ErrNotFound) {
		t.Errorf("Get over a closed Redis = %v; want a store error, not ErrNotFound", err)
	}
	if _, err := s.SigningSecrets(ctx, c.ID); err == nil || errors.Is(err, clients.ErrNotFound) {
		t.Errorf("SigningSecrets over a closed Redis = %v; want a store error, not ErrNotFound", err)
	}
	if _, _, _, err := s.Create(ctx, "x"); err == nil {
		t.Error("Create over a closed Redis succeeded")
	}
	if err := s.RevokeKey(ctx, c.ID, c.Keys[0].ID); err == nil || errors.Is(err, clients.ErrKeyNotFound) {
		t.Errorf("RevokeKey over a closed Redis = %v; want a store error", err)
	}
	if err := s.Disable(ctx, c.ID); err == nil || errors.Is(err, clients.ErrNotFound) {
		t.Errorf("Disable over a closed Redis = %v; want a store error", err)
	}
	if _, err := s.RotateSecret(ctx, c.ID, time.Hour); err == nil || errors.Is(err, clients.ErrNotFound) {
		t.Errorf("RotateSecret over a closed Redis = %v; want a store error", err)
	}
	if _, _, err := s.List(ctx, 10, ""); err == nil {
		t.Error("List over a closed Redis succeeded")
	}
	if err := s.IDs(ctx, func(string) error { return nil }); err == nil {
		t.Error("IDs over a closed Redis succeeded")
	}
}

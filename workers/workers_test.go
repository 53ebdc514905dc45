package workers_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/boomerang-dev/boomerang/workers"
	"github.com/redis/go-redis/v9"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

// registry is a Registry over the real store on a database of the test's
// own, with the external types transcode and thumbnail.
func registry(t *testing.T) (*workers.Registry, *redis.Client, *testkit.Clock) {
	t.Helper()
	rdb := redistest.Client(t)
	store, err := redisstore.New(context.Background(), rdb, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clock := testkit.NewClock(t0)
	return workers.NewRegistry(store, func() []string { return []string{"thumbnail", "transcode"} }, clock.Now), rdb, clock
}

func TestCreateValidates(t *testing.T) {
	tests := []struct {
		name, wname string
		types       []string
		want        []workers.FieldError // Message checked for the words in it
	}{
		{"no name", " ", []string{"transcode"}, []workers.FieldError{{"name", "required", "required"}}},
		{"name too long", strings.Repeat("x", 201), []string{"transcode"}, []workers.FieldError{{"name", "invalid", "200 bytes"}}},
		{"name not UTF-8", "bad \xff", []string{"transcode"}, []workers.FieldError{{"name", "invalid", "UTF-8"}}},
		{"no types", "w", nil, []workers.FieldError{{"types", "required", "thumbnail, transcode"}}},
		{"an unknown type", "w", []string{"transcode", "echo"}, []workers.FieldError{{"types", "unknown", `"echo" is not an external job type; there are: thumbnail, transcode`}}},
		{"both", "", []string{"echo"}, []workers.FieldError{{"name", "required", "required"}, {"types", "unknown", `"echo"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, rdb, _ := registry(t)
			_, key, err := r.Create(context.Background(), tt.wname, tt.types)
			var ve *workers.ValidationError
			if !errors.As(err, &ve) || key != "" {
				t.Fatalf("Create(%q, %v) = key %q, %v; want a ValidationError", tt.wname, tt.types, key, err)
			}
			if len(ve.Fields) != len(tt.want) {
				t.Fatalf("fields %+v, want %+v", ve.Fields, tt.want)
			}
			for i, f := range ve.Fields {
				w := tt.want[i]
				if f.Field != w.Field || f.Code != w.Code || !strings.Contains(f.Message, w.Message) {
					t.Errorf("field %d = %+v, want %s %s with %q", i, f, w.Field, w.Code, w.Message)
				}
			}
			if n := rdb.DBSize(context.Background()).Val(); n != 1 { // the partition count only
				t.Errorf("a refused worker left %d keys", n)
			}
		})
	}
	t.Run("no external type at all", func(t *testing.T) {
		rdb := redistest.Client(t)
		store, _ := redisstore.New(context.Background(), rdb, redisstore.Options{})
		r := workers.NewRegistry(store, func() []string { return nil }, nil)
		_, _, err := r.Create(context.Background(), "w", []string{"transcode"})
		var ve *workers.ValidationError
		if !errors.As(err, &ve) || !strings.Contains(ve.Fields[0].Message, "BOOMERANG_JOB_EXTERNAL") {
			t.Errorf("Create without external types = %v, want a message naming BOOMERANG_JOB_EXTERNAL", err)
		}
	})
}

// TestKeyShownOnceAndStoredHashed: the key comes back from Create only;
// Redis holds its SHA-256, never the key, and the key admits its worker.
func TestKeyShownOnceAndStoredHashed(t *testing.T) {
	r, rdb, _ := registry(t)
	ctx := context.Background()
	w, key, err := r.Create(ctx, "gpu box", []string{"transcode", "thumbnail", "transcode"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, workers.KeyPrefix) || len(key) != len(workers.KeyPrefix)+43 { // 256 bits, base64url
		t.Errorf("key %q, want bmw_ and 43 characters of base64url", key)
	}
	if !ids.Valid(ids.Worker, w.ID) || w.Name != "gpu box" || !slices.Equal(w.Types, []string{"thumbnail", "transcode"}) ||
		!w.CreatedAt.Equal(t0.Truncate(time.Millisecond)) {
		t.Errorf("worker = %+v; want a wrk_ id, its name, types sorted without repeats, created at %v", w, t0.Truncate(time.Millisecond))
	}
	var dump strings.Builder
	for _, k := range rdb.Keys(ctx, "*").Val() {
		dump.WriteString(k + " ")
		switch rdb.Type(ctx, k).Val() {
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				dump.WriteString(f + "=" + v + " ")
			}
		case "string":
			dump.WriteString(rdb.Get(ctx, k).Val())
		}
		dump.WriteString("\n")
	}
	secret := strings.TrimPrefix(key, workers.KeyPrefix)
	if strings.Contains(dump.String(), secret) {
		t.Errorf("the key is in Redis:\n%s", dump.String())
	}
	if !strings.Contains(dump.String(), workers.HashKey(key)) {
		t.Errorf("the key's hash %s is not in Redis:\n%s", workers.HashKey(key), dump.String())
	}

	got, err := r.Authenticate(ctx, key)
	if err != nil || got.ID != w.ID || !slices.Equal(got.Types, w.Types) || !got.May("transcode") || got.May("echo") {
		t.Errorf("Authenticate(key) = %+v, %v; want %s, which may do transcode and not echo", got, err, w.ID)
	}
	list, err := r.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != w.ID || list[0].Name != w.Name {
		t.Errorf("List = %+v, %v; want the worker", list, err)
	}
	if b, _ := json.Marshal(list); strings.Contains(string(b), secret) || strings.Contains(string(b), workers.HashKey(key)) {
		t.Errorf("List shows the key or its hash: %s", b)
	}
}

func TestAuthenticateRefuses(t *testing.T) {
	r, _, _ := registry(t)
	ctx := context.Background()
	_, key, err := r.Create(ctx, "w", []string{"transcode"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"", "bmw_", key + "x", strings.TrimPrefix(key, workers.KeyPrefix), "bmr_" + strings.TrimPrefix(key, workers.KeyPrefix),
		workers.KeyPrefix + strings.Repeat("a", 300)} {
		if _, err := r.Authenticate(ctx, k); !errors.Is(err, workers.ErrUnauthorized) {
			t.Errorf("Authenticate(%.20q…) = %v, want ErrUnauthorized", k, err)
		}
	}
}

// TestDeleteRevokesAtOnce: after Delete the key admits no one, and the
// other workers are untouched.
func TestDeleteRevokesAtOnce(t *testing.T) {
	r, _, clock := registry(t)
	ctx := context.Background()
	a, keyA, err := r.Create(ctx, "a", []string{"transcode"})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Millisecond)
	b, keyB, err := r.Create(ctx, "b", []string{"thumbnail"})
	if err != nil {
		t.Fatal(err)
	}
	if list, _ := r.List(ctx); len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
		t.Fatalf("List = %+v, want a then b (oldest first)", list)
	}
	if _, err := r.Authenticate(ctx, keyA); err != nil {
		t.Fatalf("Authenticate(a) before the delete: %v", err)
	}
	if err := r.Delete(ctx, a.ID); err != nil {
		t.Fatalf("Delete(a): %v", err)
	}
	if _, err := r.Authenticate(ctx, keyA); !errors.Is(err, workers.ErrUnauthorized) {
		t.Errorf("Authenticate(a) after the delete = %v, want ErrUnauthorized", err)
	}
	if got, err := r.Authenticate(ctx, keyB); err != nil || got.ID != b.ID {
		t.Errorf("Authenticate(b) after a's delete = %s, %v; want b", got.ID, err)
	}
	if list, _ := r.List(ctx); len(list) != 1 || list[0].ID != b.ID {
		t.Errorf("List after the delete = %+v, want b alone", list)
	}
	for _, id := range []string{a.ID, ids.New(ids.Worker, t0), "garbage", ""} {
		if err := r.Delete(ctx, id); !errors.Is(err, workers.ErrNotFound) {
			t.Errorf("Delete(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

// getCounter counts the GETs a client sends: worker keys are read with GET.
type getCounter struct{ n atomic.Int64 }

func (g *getCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (g *getCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "get" {
			g.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (g *getCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestAuthenticateCachesAndRevocationsReachEveryProcess: a key is read from
// Redis once, then served from the cache until cacheTTL (10 s); a revocation
// in one process reaches another's cache through the announcement, long
// before the TTL (the second process's clock does not move at all).
func TestAuthenticateCachesAndRevocationsReachEveryProcess(t *testing.T) {
	ctx := context.Background()
	a, rdb, clock := registry(t)
	gets := &getCounter{}
	rdbB := redis.NewClient(rdb.Options()) // the same database, as another process sees it
	t.Cleanup(func() { rdbB.Close() })
	storeB, err := redisstore.New(ctx, rdbB, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rdbB.AddHook(gets) // after New, which reads the partition count
	clockB := testkit.NewClock(t0)
	b := workers.NewRegistry(storeB, func() []string { return []string{"thumbnail", "transcode"} }, clockB.Now)

	w, key, err := a.Create(ctx, "w", []string{"transcode"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if got, err := b.Authenticate(ctx, key); err != nil || got.ID != w.ID {
			t.Fatalf("Authenticate #%d = %s, %v; want %s", i+1, got.ID, err, w.ID)
		}
	}
	if n := gets.n.Load(); n != 1 {
		t.Errorf("3 authentications read the key %d times, want once (then the cache)", n)
	}
	clockB.Advance(11 * time.Second)
	if _, err := b.Authenticate(ctx, key); err != nil {
		t.Fatal(err)
	}
	if n := gets.n.Load(); n != 2 {
		t.Errorf("after the cache's 10 s: %d reads in all, want 2", n)
	}
	if _, err := b.Authenticate(ctx, "bmw_unknown"); !errors.Is(err, workers.ErrUnauthorized) {
		t.Errorf("an unknown key = %v, want ErrUnauthorized", err)
	}

	watchCtx, stop := context.WithCancel(ctx)
	defer stop()
	go b.Watch(watchCtx)
	// The subscription announces its start with "" (forget everything):
	// once b reads the key again, it is up, and what follows shows that the
	// revocation itself, by id, empties b's cache.
	reads := gets.n.Load()
	for deadline := time.Now().Add(5 * time.Second); gets.n.Load() == reads; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the revocation subscription did not start within 5 s")
		}
		if _, err := b.Authenticate(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Second)
	if err := a.Delete(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := b.Authenticate(ctx, key)
		if errors.Is(err, workers.ErrUnauthorized) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the revocation, the other process still admits the key (%v)", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Package workers manages the credentials of external workers: programs
// outside Boomerang, in any language, that claim jobs of given types over
// HTTP. Each worker key is shown once, stored as its SHA-256 only, and
// admits its holder to the worker routes for its types and nothing else.
package workers

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/boomerang-dev/boomerang/ids"
)

// KeyPrefix starts every worker key.
const KeyPrefix = "bmw_"

// Errors, decided with errors.Is.
var (
	ErrNotFound     = errors.New("worker not found")
	ErrUnauthorized = errors.New("invalid or revoked worker key")
)

// Worker is one worker credential and the job types it may claim.
type Worker struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Types     []string  `json:"types"`
	CreatedAt time.Time `json:"createdAt"`
}

// May reports whether the worker may work on jobs of type typ.
func (w Worker) May(typ string) bool { return slices.Contains(w.Types, typ) }

// Store keeps workers (redisstore.Store).
type Store interface {
	SaveWorker(ctx context.Context, w Worker, keyHash string) error
	ListWorkers(ctx context.Context) ([]Worker, error)
	// DeleteWorker removes a worker and its key at once.
	DeleteWorker(ctx context.Context, id string) error
	// WorkerOfKey returns the worker a key hash admits, or ErrUnauthorized.
	WorkerOfKey(ctx context.Context, keyHash string) (Worker, error)
	// AnnounceWorkerRevoked tells every process that a worker's key is
	// revoked; WorkerRevocations delivers those announcements (and "" when
	// some may have been missed).
	AnnounceWorkerRevoked(ctx context.Context, id string) error
	WorkerRevocations(ctx context.Context) <-chan string
}

// Registry creates, lists, revokes and authenticates workers. It caches
// the workers that keys admit, as the clients' service caches API keys:
// a worker's every claim, heartbeat and report would otherwise cost a
// Redis read. A revocation reaches every process's cache through an
// announcement (Watch), and cacheTTL bounds what a process trusts when no
// announcement can reach it.
type Registry struct {
	// Logger, if set, hears of revocations that could not be announced.
	Logger *slog.Logger

	store Store
	types func() []string // the external job types there are
	now   func() time.Time

	mu    sync.Mutex
	byKey map[string]cachedWorker // key hash → worker
	// gen counts revocations heard; a worker read from the store is cached
	// only if none came while it was read, since it may predate it.
	gen uint64
}

type cachedWorker struct {
	w       Worker
	expires time.Time
}

// cacheTTL bounds how long a process trusts a cached worker key when no
// revocation announcement reaches it (Redis unreachable).
const cacheTTL = 10 * time.Second

// maxCached bounds the cache; beyond it the cache starts afresh.
const maxCached = 10_000

// NewRegistry returns a Registry; types lists the job types workers may be
// given (those done by external workers).
func NewRegistry(store Store, types func() []string, now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	return &Registry{store: store, types: types, now: now, byKey: map[string]cachedWorker{}}
}

// Watch drops cached workers as their revocations are announced, until ctx
// ends. Run it in every process that serves the worker routes.
func (r *Registry) Watch(ctx context.Context) {
	revoked := r.store.WorkerRevocations(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case id, ok := <-revoked:
			if !ok {
				return
			}
			r.forget(id)
		}
	}
}

// forget drops a worker from the cache, or every worker for "".
func (r *Registry) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	for k, c := range r.byKey {
		if id == "" || c.w.ID == id {
			delete(r.byKey, k)
		}
	}
}

// FieldError names one field at fault in a new worker.
type FieldError struct {
	Field, Code, Message string
}

// ValidationError lists the fields at fault.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	return "invalid worker: " + e.Fields[0].Field + ": " + e.Fields[0].Message
}

// Create makes a worker allowed the given types and returns it with its
// key, which is not stored and cannot be shown again.
func (r *Registry) Create(ctx context.Context, name string, types []string) (Worker, string, error) {
	var fe []FieldError
	switch {
	case strings.TrimSpace(name) == "":
		fe = append(fe, FieldError{"name", "required", "name is required"})
	case len(name) > 200 || !utf8.ValidString(name):
		fe = append(fe, FieldError{"name", "invalid", "name must be valid UTF-8 of at most 200 bytes"})
	}
	known := r.types()
	switch {
	case len(types) == 0:
		fe = append(fe, FieldError{"types", "required", "types must name at least one external job type: " + listOrNone(known)})
	default:
		for _, t := range types {
			if !slices.Contains(known, t) {
				fe = append(fe, FieldError{"types", "unknown", fmt.Sprintf("%q is not an external job type; there are: %s", t, listOrNone(known))})
				break
			}
		}
	}
	if len(fe) > 0 {
		return Worker{}, "", &ValidationError{Fields: fe}
	}
	types = slices.Compact(slices.Sorted(slices.Values(types)))
	w := Worker{ID: ids.New(ids.Worker, r.now()), Name: name, Types: types, CreatedAt: r.now().UTC().Truncate(time.Millisecond)}
	key := newKey()
	if err := r.store.SaveWorker(ctx, w, HashKey(key)); err != nil {
		return Worker{}, "", err
	}
	return w, key, nil
}

func listOrNone(types []string) string {
	if len(types) == 0 {
		return "none (set BOOMERANG_JOB_EXTERNAL)"
	}
	return strings.Join(types, ", ")
}

// List returns every worker, oldest first.
func (r *Registry) List(ctx context.Context) ([]Worker, error) { return r.store.ListWorkers(ctx) }

// Delete revokes a worker's key at once: in this process now, in the
// others when the announcement reaches them (within cacheTTL at worst).
func (r *Registry) Delete(ctx context.Context, id string) error {
	if !ids.Valid(ids.Worker, id) {
		return ErrNotFound
	}
	if err := r.store.DeleteWorker(ctx, id); err != nil {
		return err
	}
	r.forget(id)
	// The key is gone: the revocation stands even if the announcement
	// fails (a retried DELETE would find nothing to announce), and the
	// other processes' caches then drop it within cacheTTL.
	if err := r.store.AnnounceWorkerRevoked(context.WithoutCancel(ctx), id); err != nil && r.Logger != nil {
		r.Logger.WarnContext(ctx, "worker revoked, but the announcement failed: other processes may admit its key a little longer",
			"workerId", id, "upTo", cacheTTL.String(), "error", err)
	}
	return nil
}

// Authenticate returns the worker a key admits. Only keys that admit a
// worker are cached: unknown keys cannot fill the cache.
func (r *Registry) Authenticate(ctx context.Context, key string) (Worker, error) {
	if !strings.HasPrefix(key, KeyPrefix) || len(key) > 200 {
		return Worker{}, ErrUnauthorized
	}
	hash := HashKey(key)
	r.mu.Lock()
	c, ok := r.byKey[hash]
	gen := r.gen
	r.mu.Unlock()
	if ok && r.now().Before(c.expires) {
		return c.w, nil
	}
	w, err := r.store.WorkerOfKey(ctx, hash)
	if err != nil {
		return Worker{}, err
	}
	r.mu.Lock()
	if r.gen == gen {
		if len(r.byKey) >= maxCached {
			clear(r.byKey)
		}
		r.byKey[hash] = cachedWorker{w: w, expires: r.now().Add(cacheTTL)}
	}
	r.mu.Unlock()
	return w, nil
}

// HashKey is how a worker key is stored.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// newKey is a worker key: the prefix and 256 random bits.
func newKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
}

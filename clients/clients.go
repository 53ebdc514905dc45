// Package clients holds the tenants of Boomerang: each client has API keys
// (stored only as SHA-256 hashes) and a Standard Webhooks signing secret that
// can be rotated with a grace period during which both secrets sign.
//
// Service is the domain: it makes ids, keys and secrets and keeps them in a
// Store (redisstore.Store). API keys and signing secrets are read on every
// request and every delivery attempt, so the Service caches both in memory
// for a few seconds, and every change that must take effect at once
// (revoking a key, disabling a client, rotating its secret) is announced to
// all processes (Store.Announce), which drop what they cached.
package clients

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/signing"
)

// Errors callers decide on with errors.Is.
var (
	ErrNotFound     = errors.New("client not found")
	ErrUnauthorized = errors.New("invalid or revoked API key")
	ErrKeyNotFound  = errors.New("API key not found")
)

// APIKeyPrefix starts every client API key.
const APIKeyPrefix = "bmr_"

// Client is a tenant. Secrets are never part of its JSON form.
type Client struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
	Disabled  bool      `json:"disabled,omitempty"`
	// JobTypes, when set, are the only job types the client may submit;
	// empty means every type the service offers.
	JobTypes []string `json:"jobTypes,omitempty"`
	Keys     []Key    `json:"keys,omitempty"`
	// Secrets sign the client's webhooks; stored, never shown.
	Secrets Secrets `json:"-"`
}

// Secrets are a client's signing secrets: the current one and, during a
// rotation's grace period, the previous one.
type Secrets struct {
	Current, Previous string
	PreviousUntil     time.Time
}

// At returns the secrets that sign a webhook sent at now.
func (s Secrets) At(now time.Time) []string {
	if s.Previous != "" && now.Before(s.PreviousUntil) {
		return []string{s.Current, s.Previous}
	}
	return []string{s.Current}
}

// Key describes an API key without revealing it.
type Key struct {
	ID        string    `json:"id"`
	Hint      string    `json:"hint"` // the first characters, to tell keys apart
	CreatedAt time.Time `json:"createdAt"`
	Hash      string    `json:"-"` // SHA-256 of the key, hex: how it is looked up
}

// Update is a change of a client; nil fields stay as they are.
type Update struct {
	Name     *string
	JobTypes *[]string // an empty list allows every type again
}

// Store keeps clients and their keys (redisstore.Store).
type Store interface {
	// CreateClient stores c with its first key, in one step.
	CreateClient(ctx context.Context, c Client, first Key) error
	// GetClient returns a client (with its secrets), and its keys if asked.
	GetClient(ctx context.Context, id string, withKeys bool) (Client, error)
	// ListClients pages through clients, newest first.
	ListClients(ctx context.Context, limit int, cursor string) ([]Client, string, error)
	AddKey(ctx context.Context, clientID string, k Key) error
	// RevokeKey removes a key; ErrKeyNotFound if the client has no such key.
	RevokeKey(ctx context.Context, clientID, keyID string) error
	// ClientOfKey returns the client id a key hash belongs to (ErrUnauthorized if none).
	ClientOfKey(ctx context.Context, keyHash string) (string, error)
	UpdateClient(ctx context.Context, id string, u Update, disable bool, secrets *Secrets) error
	// Announce tells every process that a client changed; Changes delivers
	// such announcements (and "" when they may have been missed).
	Announce(ctx context.Context, clientID string) error
	Changes(ctx context.Context) <-chan string
}

// Service is the tenants' domain.
type Service struct {
	store Store
	now   func() time.Time
	ttl   time.Duration
	log   *slog.Logger

	mu    sync.Mutex
	byKey map[string]cached // key hash → client
	byID  map[string]cached // client id → client with secrets
	// gen counts the changes forgotten; an answer read from the store is
	// cached only if no change came while it was read, since it may
	// predate that change.
	gen uint64
}

type cached struct {
	c       Client
	expires time.Time
}

// Options configure a Service.
type Options struct {
	Now func() time.Time
	// CacheTTL bounds how long a process trusts what it cached when no
	// announcement reaches it (Redis unreachable); 0 means 10 s.
	CacheTTL time.Duration
	Logger   *slog.Logger
}

// maxCached bounds each cache; beyond it the cache starts afresh.
const maxCached = 100_000

// NewService returns the tenants' domain over store.
func NewService(store Store, o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, now: o.Now, ttl: o.CacheTTL, log: o.Logger,
		byKey: map[string]cached{}, byID: map[string]cached{}}
}

// Watch drops cached clients as their changes are announced, until ctx
// ends. Run it in every process that serves the API or delivers.
func (s *Service) Watch(ctx context.Context) {
	changes := s.store.Changes(ctx)
	for {
		// ctx is checked here too: a feed blocked in a read may notice its
		// end only with the next announcement.
		select {
		case <-ctx.Done():
			return
		case id, ok := <-changes:
			if !ok {
				return
			}
			s.forget(id)
		}
	}
}

// forget drops what is cached of a client, or everything for "".
func (s *Service) forget(clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if clientID == "" {
		clear(s.byKey)
		clear(s.byID)
		return
	}
	delete(s.byID, clientID)
	for k, c := range s.byKey {
		if c.c.ID == clientID {
			delete(s.byKey, k)
		}
	}
}

func hashKey(apiKey string) string {
	sum := sha256.Sum256([]byte(apiKey))
	return hex.EncodeToString(sum[:])
}

func newAPIKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func (s *Service) newKey() (Key, string, error) {
	apiKey, err := newAPIKey()
	if err != nil {
		return Key{}, "", err
	}
	now := s.now().UTC()
	return Key{ID: ids.New(ids.Key, now), Hint: apiKey[:len(APIKeyPrefix)+4], CreatedAt: now, Hash: hashKey(apiKey)}, apiKey, nil
}

// Create makes a client, allowed only jobTypes if any are given, and
// returns it with its first API key and its signing secret, the only time
// either is shown.
func (s *Service) Create(ctx context.Context, name string, jobTypes ...string) (c Client, apiKey, secret string, err error) {
	secret, err = signing.NewSecret()
	if err != nil {
		return Client{}, "", "", err
	}
	key, apiKey, err := s.newKey()
	if err != nil {
		return Client{}, "", "", err
	}
	now := s.now().UTC()
	c = Client{ID: ids.New(ids.Client, now), Name: name, CreatedAt: now, JobTypes: jobTypes, Secrets: Secrets{Current: secret}}
	if err := s.store.CreateClient(ctx, c, key); err != nil {
		return Client{}, "", "", fmt.Errorf("create client: %w", err)
	}
	c.Keys = []Key{key}
	return c, apiKey, secret, nil
}

// Get returns a client with its keys.
func (s *Service) Get(ctx context.Context, id string) (Client, error) {
	return s.store.GetClient(ctx, id, true)
}

// List pages through clients, newest first.
func (s *Service) List(ctx context.Context, limit int, cursor string) ([]Client, string, error) {
	return s.store.ListClients(ctx, limit, cursor)
}

// AddKey gives a client one more API key.
func (s *Service) AddKey(ctx context.Context, clientID string) (Key, string, error) {
	if _, err := s.store.GetClient(ctx, clientID, false); err != nil {
		return Key{}, "", err
	}
	k, apiKey, err := s.newKey()
	if err != nil {
		return Key{}, "", err
	}
	if err := s.store.AddKey(ctx, clientID, k); err != nil {
		return Key{}, "", fmt.Errorf("add API key: %w", err)
	}
	return k, apiKey, nil
}

// RevokeKey removes an API key; requests with it fail at once, in every
// process.
func (s *Service) RevokeKey(ctx context.Context, clientID, keyID string) error {
	if err := s.store.RevokeKey(ctx, clientID, keyID); err != nil {
		return err
	}
	return s.announce(ctx, clientID)
}

// Disable stops a client: its keys are refused, its data stays readable by
// the admin API.
func (s *Service) Disable(ctx context.Context, clientID string) error {
	if err := s.store.UpdateClient(ctx, clientID, Update{}, true, nil); err != nil {
		return err
	}
	return s.announce(ctx, clientID)
}

// Update changes a client's name or its allowed job types and returns it.
// A change of job types applies to the next submission.
func (s *Service) Update(ctx context.Context, clientID string, u Update) (Client, error) {
	if err := s.store.UpdateClient(ctx, clientID, u, false, nil); err != nil {
		return Client{}, err
	}
	if err := s.announce(ctx, clientID); err != nil {
		return Client{}, err
	}
	return s.Get(ctx, clientID)
}

// RotateSecret makes a new signing secret; the old one keeps signing, next to
// the new, for grace.
func (s *Service) RotateSecret(ctx context.Context, clientID string, grace time.Duration) (string, error) {
	c, err := s.store.GetClient(ctx, clientID, false)
	if err != nil {
		return "", err
	}
	secret, err := signing.NewSecret()
	if err != nil {
		return "", err
	}
	next := Secrets{Current: secret, Previous: c.Secrets.Current, PreviousUntil: s.now().Add(grace).UTC()}
	if err := s.store.UpdateClient(ctx, clientID, Update{}, false, &next); err != nil {
		return "", fmt.Errorf("rotate secret: %w", err)
	}
	return secret, s.announce(ctx, clientID)
}

// announce tells every process to drop what it cached of a client, this
// one first.
func (s *Service) announce(ctx context.Context, clientID string) error {
	s.forget(clientID)
	if err := s.store.Announce(ctx, clientID); err != nil {
		return fmt.Errorf("announce the change of %s: %w", clientID, err)
	}
	return nil
}

// Authenticate returns the enabled client that owns apiKey. The key is
// looked up by its SHA-256 hash, so timing reveals nothing about valid keys.
func (s *Service) Authenticate(ctx context.Context, apiKey string) (Client, error) {
	if !strings.HasPrefix(apiKey, APIKeyPrefix) || len(apiKey) > 128 {
		return Client{}, ErrUnauthorized
	}
	h := hashKey(apiKey)
	now := s.now()
	s.mu.Lock()
	c, ok := s.byKey[h]
	gen := s.gen
	s.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.c, nil
	}
	id, err := s.store.ClientOfKey(ctx, h)
	if err != nil {
		return Client{}, err
	}
	cl, err := s.client(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && cl.Disabled) {
		return Client{}, ErrUnauthorized
	}
	if err != nil {
		return Client{}, fmt.Errorf("authenticate: %w", err)
	}
	cl.Secrets = Secrets{} // requests never need them
	s.put(s.byKey, h, cl, now, gen)
	return cl, nil
}

// client returns a client with its secrets, cached.
func (s *Service) client(ctx context.Context, id string) (Client, error) {
	now := s.now()
	s.mu.Lock()
	c, ok := s.byID[id]
	gen := s.gen
	s.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.c, nil
	}
	cl, err := s.store.GetClient(ctx, id, false)
	if err != nil {
		return Client{}, err
	}
	s.put(s.byID, id, cl, now, gen)
	return cl, nil
}

// put caches c under k, unless a change was forgotten since gen, when c
// was read.
func (s *Service) put(m map[string]cached, k string, c Client, now time.Time, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	if len(m) >= maxCached {
		clear(m)
	}
	m[k] = cached{c: c, expires: now.Add(s.ttl)}
}

// SigningSecrets returns the secrets that sign a client's webhooks now.
func (s *Service) SigningSecrets(ctx context.Context, clientID string) ([]string, error) {
	c, err := s.client(ctx, clientID)
	if err != nil {
		return nil, err
	}
	return c.Secrets.At(s.now()), nil
}

// IDs calls fn with every client id; used by maintenance to trim per-client indexes.
func (s *Service) IDs(ctx context.Context, fn func(id string) error) error {
	cursor := ""
	for {
		list, next, err := s.store.ListClients(ctx, 500, cursor)
		if err != nil {
			return err
		}
		for _, c := range list {
			if err := fn(c.ID); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// Package clients holds the tenants of Boomerang: each client has API keys
// (stored only as SHA-256 hashes) and a Standard Webhooks signing secret that
// can be rotated with a grace period during which both secrets sign.
package clients

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/boomerang-dev/boomerang/ids"
	"sort"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/signing"
	"github.com/boomerang-dev/boomerang/timeindex"
	"github.com/redis/go-redis/v9"
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

	secret, prevSecret string
	prevUntil          time.Time
}

// Key describes an API key without revealing it.
type Key struct {
	ID        string    `json:"id"`
	Hint      string    `json:"hint"` // the first characters, to tell keys apart
	CreatedAt time.Time `json:"createdAt"`
	hash      string
}

// SigningSecrets returns the secrets that sign a webhook sent at now: the
// current one, and the previous one while its grace period lasts.
func (c Client) SigningSecrets(now time.Time) []string {
	if c.prevSecret != "" && now.Before(c.prevUntil) {
		return []string{c.secret, c.prevSecret}
	}
	return []string{c.secret}
}

// Store keeps clients in Redis.
type Store struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewStore returns a store; now is the clock (time.Now in production).
func NewStore(rdb redis.UniversalClient, now func() time.Time) *Store {
	return &Store{rdb: rdb, now: now}
}

func clientKey(id string) string { return "bmr:client:" + id }
func keysKey(id string) string   { return "bmr:client:" + id + ":keys" }
func apiKeyKey(hash string) string {
	return "bmr:apikey:" + hash
}

const indexKey = "bmr:clients"

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

// Create makes a client, allowed only jobTypes if any are given, and
// returns it with its first API key and its signing secret, the only time
// either is shown.
func (s *Store) Create(ctx context.Context, name string, jobTypes ...string) (c Client, apiKey, secret string, err error) {
	now := s.now().UTC()
	secret, err = signing.NewSecret()
	if err != nil {
		return Client{}, "", "", err
	}
	c = Client{ID: ids.New(ids.Client, now), Name: name, CreatedAt: now, JobTypes: jobTypes, secret: secret}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, clientKey(c.ID), "id", c.ID, "name", name, "createdAt", now.Format(time.RFC3339Nano), "secret", secret,
			"jobTypes", strings.Join(jobTypes, ","))
		p.ZAdd(ctx, indexKey, redis.Z{Member: timeindex.Member(now, c.ID)})
		return nil
	})
	if err != nil {
		return Client{}, "", "", fmt.Errorf("create client: %w", err)
	}
	key, apiKey, err := s.AddKey(ctx, c.ID)
	if err != nil {
		return Client{}, "", "", err
	}
	c.Keys = []Key{key}
	return c, apiKey, secret, nil
}

// AddKey gives a client one more API key.
func (s *Store) AddKey(ctx context.Context, clientID string) (Key, string, error) {
	if _, err := s.Get(ctx, clientID); err != nil {
		return Key{}, "", err
	}
	apiKey, err := newAPIKey()
	if err != nil {
		return Key{}, "", err
	}
	now := s.now().UTC()
	k := Key{ID: ids.New(ids.Key, now), Hint: apiKey[:len(APIKeyPrefix)+4], CreatedAt: now, hash: hashKey(apiKey)}
	rec, _ := json.Marshal(keyRecord{Hint: k.Hint, CreatedAt: now, Hash: k.hash})
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, apiKeyKey(k.hash), clientID+" "+k.ID, 0)
		p.HSet(ctx, keysKey(clientID), k.ID, rec)
		return nil
	})
	if err != nil {
		return Key{}, "", fmt.Errorf("add API key: %w", err)
	}
	return k, apiKey, nil
}

type keyRecord struct {
	Hint      string    `json:"hint"`
	CreatedAt time.Time `json:"createdAt"`
	Hash      string    `json:"hash"`
}

// RevokeKey removes an API key; requests with it fail at once.
func (s *Store) RevokeKey(ctx context.Context, clientID, keyID string) error {
	raw, err := s.rdb.HGet(ctx, keysKey(clientID), keyID).Result()
	if errors.Is(err, redis.Nil) {
		return ErrKeyNotFound
	}
	if err != nil {
		return fmt.Errorf("revoke API key: %w", err)
	}
	var rec keyRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return fmt.Errorf("revoke API key: %w", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, apiKeyKey(rec.Hash))
		p.HDel(ctx, keysKey(clientID), keyID)
		return nil
	})
	return err
}

func splitTypes(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// Update is a change of a client; nil fields stay as they are.
type Update struct {
	Name     *string
	JobTypes *[]string // an empty list allows every type again
}

// Update changes a client's name or its allowed job types and returns it.
// A change of job types applies to the next submission.
func (s *Store) Update(ctx context.Context, clientID string, u Update) (Client, error) {
	if _, err := s.get(ctx, clientID, false); err != nil {
		return Client{}, err
	}
	var fields []any
	if u.Name != nil {
		fields = append(fields, "name", *u.Name)
	}
	if u.JobTypes != nil {
		fields = append(fields, "jobTypes", strings.Join(*u.JobTypes, ","))
	}
	if len(fields) > 0 {
		if err := s.rdb.HSet(ctx, clientKey(clientID), fields...).Err(); err != nil {
			return Client{}, fmt.Errorf("update client: %w", err)
		}
	}
	return s.Get(ctx, clientID)
}

// Disable stops a client: its keys are refused, its data stays readable by
// the admin API.
func (s *Store) Disable(ctx context.Context, clientID string) error {
	if _, err := s.Get(ctx, clientID); err != nil {
		return err
	}
	return s.rdb.HSet(ctx, clientKey(clientID), "disabled", "1").Err()
}

// RotateSecret makes a new signing secret; the old one keeps signing, next to
// the new, for grace.
func (s *Store) RotateSecret(ctx context.Context, clientID string, grace time.Duration) (string, error) {
	c, err := s.Get(ctx, clientID)
	if err != nil {
		return "", err
	}
	secret, err := signing.NewSecret()
	if err != nil {
		return "", err
	}
	until := s.now().Add(grace).UTC()
	err = s.rdb.HSet(ctx, clientKey(clientID), "secret", secret, "prevSecret", c.secret,
		"prevUntil", until.Format(time.RFC3339Nano)).Err()
	if err != nil {
		return "", fmt.Errorf("rotate secret: %w", err)
	}
	return secret, nil
}

// Authenticate returns the enabled client that owns apiKey. The key is
// looked up by its SHA-256 hash, so timing reveals nothing about valid keys.
func (s *Store) Authenticate(ctx context.Context, apiKey string) (Client, error) {
	if !strings.HasPrefix(apiKey, APIKeyPrefix) || len(apiKey) > 128 {
		return Client{}, ErrUnauthorized
	}
	res, err := authScript.Run(ctx, s.rdb, []string{apiKeyKey(hashKey(apiKey))}, "bmr:client:").StringSlice()
	if errors.Is(err, redis.Nil) {
		return Client{}, ErrUnauthorized
	}
	if err != nil {
		return Client{}, fmt.Errorf("authenticate: %w", err)
	}
	c := Client{ID: res[0], Name: res[1], JobTypes: splitTypes(res[3])}
	c.CreatedAt, _ = time.Parse(time.RFC3339Nano, res[2])
	return c, nil
}

// authScript finds the enabled client of a key hash in one round trip: the
// key's owner, and the owner's name, creation time and disabled flag. It
// returns nil for an unknown key, a missing or a disabled client.
var authScript = redis.NewScript(`
local owner = redis.call('GET', KEYS[1])
if not owner then return nil end
local id = string.match(owner, '^(%S+)')
local f = redis.call('HMGET', ARGV[1] .. id, 'id', 'name', 'createdAt', 'disabled', 'jobTypes')
if not f[1] or f[4] == '1' then return nil end
return {f[1], f[2] or '', f[3] or '', f[5] or ''}
`)

// Get returns a client with its keys.
func (s *Store) Get(ctx context.Context, id string) (Client, error) { return s.get(ctx, id, true) }

func (s *Store) get(ctx context.Context, id string, withKeys bool) (Client, error) {
	if id == "" || len(id) > 64 {
		return Client{}, ErrNotFound
	}
	var fields *redis.MapStringStringCmd
	var keys *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		fields = p.HGetAll(ctx, clientKey(id))
		if withKeys {
			keys = p.HGetAll(ctx, keysKey(id))
		}
		return nil
	})
	if err != nil {
		return Client{}, fmt.Errorf("get client: %w", err)
	}
	f := fields.Val()
	if len(f) == 0 {
		return Client{}, ErrNotFound
	}
	c := Client{ID: f["id"], Name: f["name"], Disabled: f["disabled"] == "1", JobTypes: splitTypes(f["jobTypes"]),
		secret: f["secret"], prevSecret: f["prevSecret"]}
	c.CreatedAt, _ = time.Parse(time.RFC3339Nano, f["createdAt"])
	c.prevUntil, _ = time.Parse(time.RFC3339Nano, f["prevUntil"])
	if keys != nil {
		for kid, raw := range keys.Val() {
			var rec keyRecord
			if json.Unmarshal([]byte(raw), &rec) == nil {
				c.Keys = append(c.Keys, Key{ID: kid, Hint: rec.Hint, CreatedAt: rec.CreatedAt, hash: rec.Hash})
			}
		}
		sortKeys(c.Keys)
	}
	return c, nil
}

func sortKeys(k []Key) { sort.Slice(k, func(i, j int) bool { return k[i].ID < k[j].ID }) }

// SigningSecrets returns the secrets that sign a client's webhooks now.
func (s *Store) SigningSecrets(ctx context.Context, clientID string) ([]string, error) {
	c, err := s.get(ctx, clientID, false)
	if err != nil {
		return nil, err
	}
	return c.SigningSecrets(s.now()), nil
}

// List pages through clients, newest first.
func (s *Store) List(ctx context.Context, q timeindex.Query) ([]Client, string, error) {
	ids, next, err := timeindex.Page(ctx, s.rdb, indexKey, q)
	if err != nil {
		return nil, "", err
	}
	out := make([]Client, 0, len(ids))
	for _, id := range ids {
		c, err := s.get(ctx, id, false)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, c)
	}
	return out, next, nil
}

// IDs calls fn with every client id; used by maintenance to trim per-client indexes.
func (s *Store) IDs(ctx context.Context, fn func(id string) error) error {
	var cursor string
	for {
		ids, next, err := timeindex.Page(ctx, s.rdb, indexKey, timeindex.Query{Limit: 500, Cursor: cursor})
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := fn(id); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

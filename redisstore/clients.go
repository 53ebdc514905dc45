package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/redis/go-redis/v9"
)

func clientKey(id string) string     { return "bmr:client:{" + id + "}" }
func clientKeysKey(id string) string { return "bmr:client:{" + id + "}:keys" }
func apiKeyKey(hash string) string   { return "bmr:apikey:" + hash }

const (
	clientsIndex   = "bmr:clients"
	changedChannel = "bmr:clients:changed"
)

type keyRecord struct {
	Hint      string    `json:"hint"`
	CreatedAt time.Time `json:"createdAt"`
	Hash      string    `json:"hash"`
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// CreateClient stores a client with its first key. The client and its
// keys share a slot and are written together; its key is registered last,
// so it works only once the client is complete.
func (s *Store) CreateClient(ctx context.Context, c clients.Client, first clients.Key) error {
	rec, _ := json.Marshal(keyRecord{Hint: first.Hint, CreatedAt: first.CreatedAt, Hash: first.Hash})
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, clientKey(c.ID), "id", c.ID, "name", c.Name, "createdAt", fmtTime(c.CreatedAt),
			"jobTypes", strings.Join(c.JobTypes, ","), "secret", c.Secrets.Current)
		p.HSet(ctx, clientKeysKey(c.ID), first.ID, rec)
		return nil
	})
	if err == nil {
		err = s.rdb.ZAdd(ctx, clientsIndex, redis.Z{Member: ids.Body(c.ID)}).Err()
	}
	if err == nil {
		err = s.rdb.Set(ctx, apiKeyKey(first.Hash), c.ID+" "+first.ID, 0).Err()
	}
	return err
}

// GetClient returns a client with its secrets, and its keys if asked.
func (s *Store) GetClient(ctx context.Context, id string, withKeys bool) (clients.Client, error) {
	if !ids.Valid(ids.Client, id) {
		return clients.Client{}, clients.ErrNotFound
	}
	var fields, keys *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		fields = p.HGetAll(ctx, clientKey(id))
		if withKeys {
			keys = p.HGetAll(ctx, clientKeysKey(id))
		}
		return nil
	})
	if err != nil {
		return clients.Client{}, fmt.Errorf("get client: %w", err)
	}
	f := fields.Val()
	if len(f) == 0 {
		return clients.Client{}, clients.ErrNotFound
	}
	c := clients.Client{ID: f["id"], Name: f["name"], CreatedAt: parseTime(f["createdAt"]), Disabled: f["disabled"] == "1",
		Secrets: clients.Secrets{Current: f["secret"], Previous: f["prevSecret"], PreviousUntil: parseTime(f["prevUntil"])}}
	if t := f["jobTypes"]; t != "" {
		c.JobTypes = strings.Split(t, ",")
	}
	if keys != nil {
		for kid, raw := range keys.Val() {
			var rec keyRecord
			if json.Unmarshal([]byte(raw), &rec) == nil {
				c.Keys = append(c.Keys, clients.Key{ID: kid, Hint: rec.Hint, CreatedAt: rec.CreatedAt, Hash: rec.Hash})
			}
		}
		sortKeys(c.Keys)
	}
	return c, nil
}

func sortKeys(k []clients.Key) {
	for i := 1; i < len(k); i++ {
		for j := i; j > 0 && k[j].ID < k[j-1].ID; j-- {
			k[j], k[j-1] = k[j-1], k[j]
		}
	}
}

// ListClients pages through clients, newest first.
func (s *Store) ListClients(ctx context.Context, limit int, cursor string) ([]clients.Client, string, error) {
	var out []clients.Client
	next, err := s.scanClients(ctx, limit, cursor, func(c clients.Client) { out = append(out, c) })
	return out, next, err
}

func (s *Store) scanClients(ctx context.Context, limit int, cursor string, fn func(clients.Client)) (string, error) {
	if limit <= 0 {
		limit = 50
	}
	upper, err := decodeCursor(cursor)
	if err != nil {
		return "", err
	}
	hi := "+"
	if upper != "" {
		hi = "(" + upper
	}
	members, err := s.rdb.ZRevRangeByLex(ctx, clientsIndex, &redis.ZRangeBy{Max: hi, Min: "-", Count: int64(limit + 1)}).Result()
	if err != nil {
		return "", err
	}
	next := ""
	if len(members) > limit {
		members, next = members[:limit], encodeCursor(members[limit-1])
	}
	for _, m := range members {
		c, err := s.GetClient(ctx, ids.Client+m, false)
		if errors.Is(err, clients.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		c.Secrets = clients.Secrets{}
		fn(c)
	}
	return next, nil
}

// AddKey gives a client one more key.
func (s *Store) AddKey(ctx context.Context, clientID string, k clients.Key) error {
	rec, _ := json.Marshal(keyRecord{Hint: k.Hint, CreatedAt: k.CreatedAt, Hash: k.Hash})
	if err := s.rdb.HSet(ctx, clientKeysKey(clientID), k.ID, rec).Err(); err != nil {
		return err
	}
	return s.rdb.Set(ctx, apiKeyKey(k.Hash), clientID+" "+k.ID, 0).Err()
}

// RevokeKey removes a key: first what it authenticates, then its listing.
func (s *Store) RevokeKey(ctx context.Context, clientID, keyID string) error {
	if !ids.Valid(ids.Client, clientID) || !ids.Valid(ids.Key, keyID) {
		return clients.ErrKeyNotFound
	}
	raw, err := s.rdb.HGet(ctx, clientKeysKey(clientID), keyID).Result()
	if isNil(err) {
		return clients.ErrKeyNotFound
	}
	if err != nil {
		return fmt.Errorf("revoke API key: %w", err)
	}
	var rec keyRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return fmt.Errorf("revoke API key: %w", err)
	}
	if err := s.rdb.Del(ctx, apiKeyKey(rec.Hash)).Err(); err != nil {
		return err
	}
	return s.rdb.HDel(ctx, clientKeysKey(clientID), keyID).Err()
}

// ClientOfKey returns the client a key hash authenticates.
func (s *Store) ClientOfKey(ctx context.Context, keyHash string) (string, error) {
	owner, err := s.rdb.Get(ctx, apiKeyKey(keyHash)).Result()
	if isNil(err) {
		return "", clients.ErrUnauthorized
	}
	if err != nil {
		return "", fmt.Errorf("authenticate: %w", err)
	}
	id, _, _ := strings.Cut(owner, " ")
	return id, nil
}

// UpdateClient changes a client's name, job types, status or secrets.
func (s *Store) UpdateClient(ctx context.Context, id string, u clients.Update, disable bool, secrets *clients.Secrets) error {
	if !ids.Valid(ids.Client, id) {
		return clients.ErrNotFound
	}
	var fields []any
	if u.Name != nil {
		fields = append(fields, "name", *u.Name)
	}
	if u.JobTypes != nil {
		fields = append(fields, "jobTypes", strings.Join(*u.JobTypes, ","))
	}
	if disable {
		fields = append(fields, "disabled", "1")
	}
	if secrets != nil {
		fields = append(fields, "secret", secrets.Current, "prevSecret", secrets.Previous, "prevUntil", fmtTime(secrets.PreviousUntil))
	}
	// HSET only if the client exists: a script, so that a missing client is
	// not created half.
	n, err := updateClientScript.Run(ctx, s.rdb, []string{clientKey(id)}, fields...).Int()
	if err != nil {
		return fmt.Errorf("update client: %w", err)
	}
	if n == 0 {
		return clients.ErrNotFound
	}
	return nil
}

// updateClientScript sets fields of an existing client.
//
// KEYS[1] -> bmr:client:{<cli>}
// -------
// ARGV[1..] -> field, value pairs
//
// Returns 1 when set, 0 when there is no such client.
var updateClientScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return 1
`)

// Announce publishes that a client changed.
func (s *Store) Announce(ctx context.Context, clientID string) error {
	return s.rdb.Publish(ctx, changedChannel, clientID).Err()
}

// Changes delivers the ids of clients announced as changed, and "" each
// time the subscription (re)starts, when announcements may have been
// missed. The channel closes when ctx ends.
func (s *Store) Changes(ctx context.Context) <-chan string {
	return s.subscribe(ctx, changedChannel)
}

// TakeTokens takes up to want tokens from a client's bucket.
func (s *Store) TakeTokens(ctx context.Context, clientID string, rate float64, burst, want int, now time.Time) (int, time.Duration, error) {
	if rate <= 0 || burst < 1 {
		return 0, 0, fmt.Errorf("take tokens: a bucket needs a rate above 0 and a burst of 1 or more, not %v and %d", rate, burst)
	}
	res, err := takeTokensScript.Run(ctx, s.rdb, []string{"bmr:rl:{" + clientID + "}"}, rate, burst, now.UnixMilli(), want).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	return int(res[0]), time.Duration(res[1]) * time.Millisecond, nil
}

package apiclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The admin API (/admin/v1), called with the admin token as the key:
// clients, deliveries and bulk replays. Reads are retried; writes that are
// not safe to repeat (creating a client or a key, rotating a secret, a
// replay, a retry-now) are sent once.

// Key is one of a client's API keys, as the admin API shows it (never the
// key itself, only its first characters).
type Key struct {
	ID        string    `json:"id"`
	Hint      string    `json:"hint"`
	CreatedAt time.Time `json:"createdAt"`
}

// ClientInfo is a client of the API (a tenant), as the admin API shows it.
type ClientInfo struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
	Disabled  bool      `json:"disabled,omitempty"`
	JobTypes  []string  `json:"jobTypes,omitempty"`
	Keys      []Key     `json:"keys,omitempty"`
}

// NewClient is a client just created, with its only copy of its API key and
// signing secret.
type NewClient struct {
	ClientInfo
	APIKey        string `json:"apiKey"`
	SigningSecret string `json:"signingSecret"`
}

// NewKey is a key just added, with its only copy of the key.
type NewKey struct {
	Key
	APIKey string `json:"apiKey"`
}

// NewSecret is a rotated signing secret; the previous one still signs until
// PreviousValidUntil.
type NewSecret struct {
	SigningSecret      string    `json:"signingSecret"`
	PreviousValidUntil time.Time `json:"previousSecretValidUntil"`
}

// Page is one page of a list; NextCursor is empty on the last.
type Page[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"nextCursor,omitempty"`
}

// Delivery is one webhook and its progress. Attempts is the count; the log
// comes with GetDelivery.
type Delivery struct {
	ID             string     `json:"id"`
	RequestID      string     `json:"requestId"`
	ClientID       string     `json:"clientId"`
	EventType      string     `json:"eventType"`
	URL            string     `json:"url"`
	Status         string     `json:"status"` // PENDING, DELIVERED or FAILED
	Attempts       int        `json:"attempts"`
	LastAttemptAt  *time.Time `json:"lastAttemptAt,omitempty"`
	NextAttemptAt  *time.Time `json:"nextAttemptAt,omitempty"`
	LastStatusCode int        `json:"lastStatusCode,omitempty"`
	LastError      string     `json:"lastError,omitempty"`
	Replays        int        `json:"replays,omitempty"`
	CreatedAt      time.Time  `json:"createdAt"`
	UpdatedAt      time.Time  `json:"updatedAt"`
	DeliveredAt    *time.Time `json:"deliveredAt,omitempty"`
	DeferredUntil  *time.Time `json:"deferredUntil,omitempty"`
	DeferredReason string     `json:"deferredReason,omitempty"`
}

// Attempt is one try at sending a delivery.
type Attempt struct {
	Number          int               `json:"number"`
	StartedAt       time.Time         `json:"startedAt"`
	DurationMs      int64             `json:"durationMs"`
	URL             string            `json:"url"`
	RequestHeaders  map[string]string `json:"requestHeaders,omitempty"`
	StatusCode      int               `json:"statusCode,omitempty"`
	ResponseHeaders map[string]string `json:"responseHeaders,omitempty"`
	ResponseBody    string            `json:"responseBody,omitempty"`
	ErrorClass      string            `json:"errorClass,omitempty"`
	Error           string            `json:"error,omitempty"`
	Outcome         string            `json:"outcome"`
	NextAttemptAt   *time.Time        `json:"nextAttemptAt,omitempty"`
}

// DeliveryDetail is a delivery with its webhook body and attempt log.
type DeliveryDetail struct {
	Delivery
	Payload  json.RawMessage `json:"payload,omitempty"`
	Attempts []Attempt       `json:"attempts"`
	// Raw is the JSON the server sent.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON reads the detail view, where "attempts" is the log and
// "attemptCount" the count.
func (d *DeliveryDetail) UnmarshalJSON(b []byte) error {
	var v struct {
		Delivery
		AttemptCount int             `json:"attemptCount"`
		Payload      json.RawMessage `json:"payload,omitempty"`
		Log          []Attempt       `json:"attempts"`
	}
	// The embedded Delivery's "attempts" (a count) is shadowed by Log.
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	v.Delivery.Attempts = v.AttemptCount
	*d = DeliveryDetail{Delivery: v.Delivery, Payload: v.Payload, Attempts: v.Log, Raw: append(json.RawMessage(nil), b...)}
	return nil
}

// DeliveryFilter selects deliveries; zero fields select all.
type DeliveryFilter struct {
	Status       string
	ClientID     string
	Since, Until time.Time
}

func (f DeliveryFilter) body() map[string]any {
	b := map[string]any{}
	if f.Status != "" {
		b["status"] = f.Status
	}
	if f.ClientID != "" {
		b["clientId"] = f.ClientID
	}
	if !f.Since.IsZero() {
		b["since"] = f.Since.Format(time.RFC3339Nano)
	}
	if !f.Until.IsZero() {
		b["until"] = f.Until.Format(time.RFC3339Nano)
	}
	return b
}

// BulkReplay is a background replay of every delivery matching a filter.
type BulkReplay struct {
	ID         string         `json:"replayId"`
	DryRun     bool           `json:"dryRun"`
	State      string         `json:"state"` // running, done, failed
	Matched    int64          `json:"matched"`
	Replayed   int64          `json:"replayed"`
	Skipped    int64          `json:"skipped"`
	Error      string         `json:"error,omitempty"`
	CreatedAt  time.Time      `json:"createdAt"`
	UpdatedAt  time.Time      `json:"updatedAt"`
	FinishedAt *time.Time     `json:"finishedAt,omitempty"`
	Filter     map[string]any `json:"filter"`
}

// Done reports whether the replay has stopped (done or failed).
func (r BulkReplay) Done() bool { return r.State != "running" }

// RetryNowResult counts what a bulk retry-now matched and handed over.
type RetryNowResult struct {
	DryRun  bool  `json:"dryRun"`
	Matched int64 `json:"matched"`
	Retried int64 `json:"retried"`
	Skipped int64 `json:"skipped"`
}

const adminPrefix = "/admin/v1"

func clientPath(id string) string   { return adminPrefix + "/clients/" + url.PathEscape(id) }
func deliveryPath(id string) string { return adminPrefix + "/deliveries/" + url.PathEscape(id) }

// CreateClient creates a client; jobTypes, if any, are the only types it
// may submit.
func (c *Client) CreateClient(ctx context.Context, name string, jobTypes ...string) (NewClient, error) {
	body := map[string]any{"name": name}
	if len(jobTypes) > 0 {
		body["jobTypes"] = jobTypes
	}
	var out NewClient
	_, err := c.call(ctx, request{method: http.MethodPost, path: adminPrefix + "/clients", body: body}, &out)
	return out, err
}

// ListClients returns a page of clients (limit 0: the server's default).
func (c *Client) ListClients(ctx context.Context, limit int, cursor string) (Page[ClientInfo], error) {
	var out Page[ClientInfo]
	_, err := c.call(ctx, request{method: http.MethodGet, path: adminPrefix + "/clients", query: pageQuery(nil, limit, cursor), retry: true}, &out)
	return out, err
}

// GetClient returns a client with its keys.
func (c *Client) GetClient(ctx context.Context, id string) (ClientInfo, error) {
	var out ClientInfo
	_, err := c.call(ctx, request{method: http.MethodGet, path: clientPath(id), retry: true}, &out)
	return out, err
}

// RotateSecret gives a client a new signing secret.
func (c *Client) RotateSecret(ctx context.Context, id string) (NewSecret, error) {
	var out NewSecret
	_, err := c.call(ctx, request{method: http.MethodPost, path: clientPath(id) + "/secret/rotate"}, &out)
	return out, err
}

// AddKey gives a client another API key.
func (c *Client) AddKey(ctx context.Context, id string) (NewKey, error) {
	var out NewKey
	_, err := c.call(ctx, request{method: http.MethodPost, path: clientPath(id) + "/keys"}, &out)
	return out, err
}

// RevokeKey revokes one of a client's keys at once.
func (c *Client) RevokeKey(ctx context.Context, id, keyID string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: clientPath(id) + "/keys/" + url.PathEscape(keyID), retry: true}, nil)
	return err
}

// DisableClient disables a client: its keys stop working.
func (c *Client) DisableClient(ctx context.Context, id string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: clientPath(id), retry: true}, nil)
	return err
}

// ListDeliveries returns a page of deliveries, newest first.
func (c *Client) ListDeliveries(ctx context.Context, f DeliveryFilter, limit int, cursor string) (Page[Delivery], error) {
	q := url.Values{}
	for k, v := range f.body() {
		q.Set(k, v.(string))
	}
	var out Page[Delivery]
	_, err := c.call(ctx, request{method: http.MethodGet, path: adminPrefix + "/deliveries", query: pageQuery(q, limit, cursor), retry: true}, &out)
	return out, err
}

// GetDelivery returns a delivery with its payload and attempt log.
func (c *Client) GetDelivery(ctx context.Context, id string) (DeliveryDetail, error) {
	var out DeliveryDetail
	_, err := c.call(ctx, request{method: http.MethodGet, path: deliveryPath(id), retry: true}, &out)
	return out, err
}

// Replay sends a DELIVERED or FAILED delivery again (a PENDING one is a
// delivery-pending problem).
func (c *Client) Replay(ctx context.Context, id string) (Delivery, error) {
	var out Delivery
	_, err := c.call(ctx, request{method: http.MethodPost, path: deliveryPath(id) + "/replay"}, &out)
	return out, err
}

// StartBulkReplay replays every delivery matching f in the background (a
// dry run only counts); follow it with GetReplay. The server's default
// status is FAILED.
func (c *Client) StartBulkReplay(ctx context.Context, f DeliveryFilter, dryRun bool) (BulkReplay, error) {
	body := f.body()
	body["dryRun"] = dryRun
	var out BulkReplay
	_, err := c.call(ctx, request{method: http.MethodPost, path: adminPrefix + "/deliveries/replay", body: body}, &out)
	return out, err
}

// GetReplay returns a bulk replay's progress.
func (c *Client) GetReplay(ctx context.Context, id string) (BulkReplay, error) {
	var out BulkReplay
	_, err := c.call(ctx, request{method: http.MethodGet, path: adminPrefix + "/replays/" + url.PathEscape(id), retry: true}, &out)
	return out, err
}

// RetryNow makes a PENDING delivery's next attempt now and returns the
// delivery after it (a finished one is a delivery-not-pending problem).
func (c *Client) RetryNow(ctx context.Context, id string) (DeliveryDetail, error) {
	var out DeliveryDetail
	// The server answers after the attempt, which may take up to its
	// delivery timeout: allow it the time it allows itself.
	_, err := c.call(ctx, request{method: http.MethodPost, path: deliveryPath(id) + "/retry-now", wait: 10 * time.Minute}, &out)
	return out, err
}

// RetryNowAll does so for every PENDING delivery matching f (its Status is
// not sent: only PENDING ones qualify); a dry run only counts.
func (c *Client) RetryNowAll(ctx context.Context, f DeliveryFilter, dryRun bool) (RetryNowResult, error) {
	f.Status = ""
	body := f.body()
	body["dryRun"] = dryRun
	var out RetryNowResult
	// The server answers once every match is handed over: allow it the
	// time it allows itself.
	_, err := c.call(ctx, request{method: http.MethodPost, path: adminPrefix + "/deliveries/retry-now", body: body, wait: 10 * time.Minute}, &out)
	return out, err
}

func pageQuery(q url.Values, limit int, cursor string) url.Values {
	if q == nil {
		q = url.Values{}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	return q
}

// Package apiclient is a Go client of Boomerang's HTTP API.
//
// A client (API key bmr_…) submits jobs, reads them, follows their events
// and cancels them; an external worker (worker key bmw_…) claims jobs,
// heartbeats its lease and reports a result or a failure. Every answer that
// is not 2xx comes back as a *Problem (RFC 9457), so callers decide on its
// slug (ProblemSlug) or status, never on wording.
//
// Calls that are safe to repeat (reads, a submission with an Idempotency-Key,
// heartbeat, complete, fail) are retried with backoff on network errors, 429
// and 5xx answers; the policy is data (WithBackOff). Nothing is retried once
// ctx is done.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Client calls one Boomerang API with one key. It is safe for concurrent use.
type Client struct {
	base        string // scheme://host[/prefix], no trailing slash
	key         string
	hc          *http.Client
	userAgent   string
	newBackOff  func() backoff.BackOff
	timeout     time.Duration
	idleTimeout time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (transport, proxies, TLS). Its Timeout
// should be zero: long polls and event streams outlive any fixed timeout, and
// the Client bounds each call itself (WithTimeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithBackOff sets the retry policy of repeatable calls and of event-stream
// reconnections; newBackOff is called once per call.
func WithBackOff(newBackOff func() backoff.BackOff) Option {
	return func(c *Client) { c.newBackOff = newBackOff }
}

// WithTimeout bounds each request (a long poll gets its wait on top).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithEventIdleTimeout sets how long an event stream may stay silent before
// it is taken for dead and reconnected. The server sends a comment every 15 s.
func WithEventIdleTimeout(d time.Duration) Option { return func(c *Client) { c.idleTimeout = d } }

// DefaultBackOff is the retry policy unless WithBackOff says otherwise:
// exponential from 250 ms to 10 s with jitter, for at most 2 minutes.
func DefaultBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 250 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = 2 * time.Minute
	return b
}

// New returns a client of the API at baseURL (e.g. http://localhost:8080)
// that authenticates with key (sent as a bearer token; empty sends none).
func New(baseURL, key string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("apiclient: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("apiclient: base URL %q: want http(s)://host[:port][/path]", baseURL)
	}
	c := &Client{
		base:        strings.TrimRight(u.String(), "/"),
		key:         key,
		hc:          &http.Client{},
		userAgent:   "boomerang-apiclient",
		newBackOff:  DefaultBackOff,
		timeout:     30 * time.Second,
		idleTimeout: 45 * time.Second,
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// maxAnswer bounds a JSON answer read into memory (a job view with its result).
const maxAnswer = 32 << 20

// request is one API call.
type request struct {
	method string
	path   string // escaped, from the API root: /v1/jobs/...
	query  url.Values
	header http.Header
	body   any           // nil: no body
	wait   time.Duration // a long poll's wait, added to the timeout
	retry  bool          // safe to repeat
}

// answerError is a 2xx answer that could not be read as the operation's
// JSON: repeating the call would not help.
type answerError struct{ err error }

func (e *answerError) Error() string { return "unexpected answer: " + e.err.Error() }
func (e *answerError) Unwrap() error { return e.err }

// call sends r (again while it fails in a way worth retrying, if r.retry)
// and decodes a 2xx answer into out (unless nil). It returns the status code.
func (c *Client) call(ctx context.Context, r request, out any) (int, error) {
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
	}
	if !r.retry {
		return c.send(ctx, r, body, out)
	}
	var status int
	var last error // the last failure that was not the context's end
	op := func() error {
		s, err := c.send(ctx, r, body, out)
		status = s
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			last = err
		}
		if err != nil && !retryable(ctx, err) {
			return backoff.Permanent(err)
		}
		return err
	}
	err := backoff.Retry(op, backoff.WithContext(c.newBackOff(), ctx))
	if err != nil && ctx.Err() != nil && last != nil {
		// Retrying was cut short: say why the last answered attempt failed
		// too (an attempt cut off by the context's end says nothing more).
		err = fmt.Errorf("%w; last attempt: %w", err, last)
	}
	return status, err
}

// retryable reports whether an attempt that failed with err may succeed if
// repeated: a network error, 429 or a 5xx, while ctx is still alive.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var p *Problem
	if errors.As(err, &p) {
		return p.Status == http.StatusTooManyRequests || p.Status >= 500
	}
	var a *answerError
	return !errors.As(err, &a)
}

// send makes one attempt.
func (c *Client) send(ctx context.Context, r request, body []byte, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout+r.wait)
	defer cancel()
	resp, err := c.open(ctx, r, body)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, readProblem(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, nil
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read answer: %w", err)
	}
	if len(raw) > maxAnswer {
		return resp.StatusCode, &answerError{fmt.Errorf("answer larger than %d bytes", maxAnswer)}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return resp.StatusCode, &answerError{fmt.Errorf("%d answer is not the expected JSON: %w", resp.StatusCode, err)}
	}
	return resp.StatusCode, nil
}

// open sends the request and returns the response, whatever its status.
func (c *Client) open(ctx context.Context, r request, body []byte) (*http.Response, error) {
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if tp, ok := ctx.Value(traceParentKey{}).(string); ok {
		req.Header.Set("traceparent", tp)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	req.Header.Set("User-Agent", c.userAgent)
	return c.hc.Do(req)
}

// jobPath is the path of a job, with id escaped.
func jobPath(prefix, id string) string {
	return prefix + "/jobs/" + url.PathEscape(id)
}

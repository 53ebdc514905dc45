package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/boomerang-dev/boomerang/tracing"
)

// Input is what a processor gets of a job.
type Input struct {
	RequestID string
	Type      string
	Payload   json.RawMessage // exactly as submitted
	Metadata  map[string]string
	Attempt   int // 1 for the first processing attempt
	// Deadline, if not nil, is when the job expires if it has not ended.
	Deadline *time.Time
	// CompletionURL, for the types whose upstream finishes the work later
	// (Type.Async), is where it posts the outcome; it holds the job's
	// completion token, the only credential needed.
	CompletionURL string
}

// Processor runs jobs of one type: it gets the job and returns a JSON
// result, or an error. Errors are retried unless marked with Permanent.
type Processor interface {
	Process(ctx context.Context, in Input) (json.RawMessage, error)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, in Input) (json.RawMessage, error)

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, in Input) (json.RawMessage, error) {
	return f(ctx, in)
}

// Failure is a processing error with a code that clients see in the job's
// error; Permanent failures are not retried.
type Failure struct {
	Code      string
	Message   string
	Permanent bool
	Err       error
}

func (f *Failure) Error() string { return f.Code + ": " + f.Message }
func (f *Failure) Unwrap() error { return f.Err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	var f *Failure
	if errors.As(err, &f) {
		g := *f
		g.Permanent = true
		return &g
	}
	return &Failure{Code: "processing_failed", Message: err.Error(), Permanent: true, Err: err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var f *Failure
	return errors.As(err, &f) && f.Permanent
}

func asError(err error) *Error {
	var f *Failure
	if errors.As(err, &f) {
		return &Error{Code: f.Code, Message: f.Message}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: "timeout", Message: "processing did not finish within the job type's timeout"}
	}
	return &Error{Code: "processing_failed", Message: err.Error()}
}

// Type is a registered job type.
type Type struct {
	Name      string
	Processor Processor // nil for an External type
	Timeout   time.Duration
	// External types are done by workers outside Boomerang, which claim
	// their jobs over HTTP (Service.Claim).
	External bool
	// Async types' processors only hand the work over: a nil error means
	// accepted, and the outcome comes later through the job's completion
	// URL (Service.CompleteByToken).
	Async bool
}

// Registry maps job type names to processors. It is filled at start-up and
// read-only afterwards.
type Registry struct{ types map[string]Type }

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: map[string]Type{}} }

// Register adds a job type.
func (r *Registry) Register(name string, p Processor, timeout time.Duration) {
	r.types[name] = Type{Name: name, Processor: p, Timeout: timeout}
}

// RegisterExternal adds a job type done by external workers.
func (r *Registry) RegisterExternal(name string) {
	r.types[name] = Type{Name: name, External: true}
}

// RegisterAsync adds a job type whose processor hands the work to an
// upstream that finishes it later, through the completion URL.
func (r *Registry) RegisterAsync(name string, p Processor, timeout time.Duration) {
	r.types[name] = Type{Name: name, Processor: p, Timeout: timeout, Async: true}
}

// External lists the types done by external workers, sorted.
func (r *Registry) External() []string {
	var out []string
	for _, n := range r.Names() {
		if r.types[n].External {
			out = append(out, n)
		}
	}
	return out
}

// Lookup finds a job type.
func (r *Registry) Lookup(name string) (Type, bool) {
	t, ok := r.types[name]
	return t, ok
}

// Names lists the registered types, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.types))
	for n := range r.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Echo is the built-in "echo" type: the result is the payload, byte for byte.
var Echo = ProcessorFunc(func(_ context.Context, in Input) (json.RawMessage, error) {
	return in.Payload, nil
})

// HTTPForwarder is an operator-configured job type that POSTs the payload to
// an upstream and takes its JSON answer as the result. It turns a slow
// synchronous backend into an asynchronous API. Upstreams are configured by
// the operator and so trusted: they bypass the callback SSRF policy. Its
// Client must not follow redirects (see NewUpstreamClient): a redirect
// would send the client's payload wherever the upstream points.
type HTTPForwarder struct {
	URL       string
	Client    *http.Client
	UserAgent string // "Boomerang/<version>"
}

// NewUpstreamClient returns the HTTP client of HTTP-forwarding types: it
// never follows a redirect (a 3xx is the upstream's answer and fails the
// job), and bounds the answer's headers.
func NewUpstreamClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 32, IdleConnTimeout: 90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second, ForceAttemptHTTP2: true, MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// maxUpstreamResult bounds what an upstream may return as a result.
const maxUpstreamResult = 8 << 20

// Process forwards the payload with the request id as Idempotency-Key (the
// same on every retry, so the upstream can deduplicate); 5xx and network
// errors are retried, any other non-2xx fails the job with the upstream's
// status and a body excerpt, and a 2xx answer must be JSON.
func (h HTTPForwarder) Process(ctx context.Context, in Input) (json.RawMessage, error) {
	status, header, body, err := postUpstream(ctx, h.Client, h.URL, h.UserAgent, in.Payload, in.RequestID, in.RequestID, maxUpstreamResult+1)
	if err != nil {
		return nil, err
	}
	switch {
	case status >= 500:
		return nil, &Failure{Code: fmt.Sprintf("upstream_%d", status), Message: "upstream answered " + excerpt(status, body)}
	case status >= 300 && status < 400:
		return nil, &Failure{Code: fmt.Sprintf("upstream_%d", status),
			Message: "upstream answered " + excerpt(status, body) + " (redirects are not followed)", Permanent: true}
	case status >= 300 || status < 200:
		return nil, &Failure{Code: fmt.Sprintf("upstream_%d", status), Message: "upstream answered " + excerpt(status, body), Permanent: true}
	case len(body) > maxUpstreamResult:
		return nil, &Failure{Code: "result_too_large", Message: "upstream answer exceeds 8 MiB", Permanent: true}
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return json.RawMessage("null"), nil // 204 and friends: no result
	}
	// The body decides (many upstreams send JSON without saying so), but
	// an upstream that says HTML or XML never answers with a result.
	ct := header.Get("Content-Type")
	if err := CheckResult(body); err != nil || isMarkup(ct) {
		return nil, &Failure{Code: "upstream_not_json", Permanent: true,
			Message: fmt.Sprintf("upstream answered %d with Content-Type %q and a body that is not JSON; a result must be application/json", status, ct)}
	}
	return body, nil
}

// postUpstream POSTs a JSON body to an operator's upstream with
// Boomerang's headers (and Idempotency-Key idemKey), and reads at most
// limit bytes of the answer. A request that gets no answer is a retryable
// Failure.
func postUpstream(ctx context.Context, client *http.Client, url, userAgent string, body []byte, requestID, idemKey string, limit int64) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if userAgent != "" {
		req.Header.Set("User-Agent", userAgent)
	}
	tracing.Inject(ctx, req.Header) // the processing span's traceparent
	if requestID != "" {
		req.Header.Set("Boomerang-Request-Id", requestID)
		req.Header.Set("Idempotency-Key", idemKey)
	}
	if client == nil {
		client = NewUpstreamClient()
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, &Failure{Code: "upstream_unreachable", Message: "upstream request failed: " + stripURL(err), Err: err}
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return 0, nil, nil, &Failure{Code: "upstream_unreachable", Message: "reading the upstream answer failed: " + err.Error(), Err: err}
	}
	return resp.StatusCode, resp.Header, answer, nil
}

func isMarkup(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "text/html" || mt == "application/xhtml+xml" || mt == "text/xml" || mt == "application/xml"
}

func excerpt(status int, body []byte) string {
	const max = 512
	if len(body) > max {
		body = body[:max]
		// Drop a rune cut in half by the limit; other invalid bytes are
		// replaced below (trimming until the whole excerpt is valid UTF-8
		// dropped everything after the first invalid byte).
		for i := 1; i < utf8.UTFMax && i <= len(body); i++ {
			if utf8.RuneStart(body[len(body)-i]) {
				if !utf8.FullRune(body[len(body)-i:]) {
					body = body[:len(body)-i]
				}
				break
			}
		}
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(body), "\uFFFD"))
	if s == "" {
		return fmt.Sprintf("%d", status)
	}
	return fmt.Sprintf("%d: %s", status, s)
}

func stripURL(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		return ue.Unwrap().Error()
	}
	return err.Error()
}

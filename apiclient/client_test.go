package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// fastRetries retries up to 4 times, 1 ms apart.
func fastRetries() backoff.BackOff {
	return backoff.WithMaxRetries(backoff.NewConstantBackOff(time.Millisecond), 4)
}

// recorded is one request a test server saw.
type recorded struct {
	method, path, query string
	header              http.Header
	body                string
}

// scripted is a test server that answers each request with the next of its
// answers (the last one repeats) and records what it was sent.
type scripted struct {
	mu      sync.Mutex
	answers []answer
	seen    []recorded
}

type answer struct {
	status      int
	contentType string
	body        string
	hangup      bool // close the connection without answering
}

func problemAnswer(status int, slug, detail string) answer {
	b, _ := json.Marshal(Problem{Type: ProblemBase + slug, Title: "t", Status: status, Detail: detail})
	return answer{status: status, contentType: "application/problem+json", body: string(b)}
}

func jsonAnswer(status int, body string) answer {
	return answer{status: status, contentType: "application/json", body: body}
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.seen = append(s.seen, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body)})
	a := s.answers[min(len(s.seen), len(s.answers))-1]
	s.mu.Unlock()
	if a.hangup {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
		return
	}
	if a.contentType != "" {
		w.Header().Set("Content-Type", a.contentType)
	}
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (s *scripted) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.seen...)
}

// newScripted starts a server with the given answers and a client of it.
func newScripted(t *testing.T, answers ...answer) (*scripted, *Client) {
	t.Helper()
	s := &scripted{answers: answers}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL+"/", "bmw_secret", WithBackOff(fastRetries))
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestNewRejectsBadBaseURL(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://x", "http://", "http://h/?q=1", "://"} {
		if _, err := New(u, "k"); err == nil {
			t.Errorf("New(%q): no error, want one", u)
		}
	}
}

func TestProblemDecoding(t *testing.T) {
	tests := []struct {
		name      string
		answer    answer
		wantSlug  string
		wantError string
	}{
		{"problem", problemAnswer(409, "lease-lost", "the lease was given to another worker"),
			"lease-lost", "409 lease-lost: the lease was given to another worker"},
		{"problem with fields",
			answer{422, "application/problem+json", `{"type":"https://boomerang.dev/problems/validation-error","title":"The request has invalid fields","status":422,"errors":[{"field":"types","code":"required","message":"m"}]}`, false},
			"validation-error", "422 validation-error: The request has invalid fields"},
		{"status in body is not trusted", answer{503, "application/problem+json", `{"type":"https://boomerang.dev/problems/service-unavailable","title":"x","status":200}`, false},
			"service-unavailable", "503 service-unavailable: x"},
		{"html from a proxy", answer{502, "text/html", "<html>\n<b>Bad   gateway</b></html>", false},
			"", "502 Bad Gateway: <html> <b>Bad gateway</b></html>"},
		{"json that is not a problem", jsonAnswer(404, `{"message":"nope"}`), "", `404 Not Found: {"message":"nope"}`},
		{"empty body", answer{401, "", "", false}, "", "401 Unauthorized: Unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newScripted(t, tt.answer)
			_, err := c.Cancel(context.Background(), "req_1")
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("Cancel answered %d: err %v (%T), want a *Problem", tt.answer.status, err, err)
			}
			if p.Status != tt.answer.status || p.Slug() != tt.wantSlug || ProblemSlug(err) != tt.wantSlug {
				t.Errorf("problem status %d slug %q (ProblemSlug %q), want %d %q", p.Status, p.Slug(), ProblemSlug(err), tt.answer.status, tt.wantSlug)
			}
			if !strings.HasSuffix(err.Error(), tt.wantError) {
				t.Errorf("error %q, want it to end with %q", err, tt.wantError)
			}
		})
	}
}

func TestSubmitSendsTheContract(t *testing.T) {
	s, c := newScripted(t, jsonAnswer(202, `{"requestId":"req_1","status":"ACCEPTED","statusUrl":"/v1/jobs/req_1"}`))
	deadline := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	a, err := c.Submit(context.Background(), Submission{Type: "shell", Payload: json.RawMessage(`{"n":1}`),
		CallbackURL: "https://example.com/cb", Metadata: map[string]string{"k": "v"}, Deadline: &deadline, IdempotencyKey: "key-1"})
	if err != nil {
		t.Fatal(err)
	}
	if a != (Accepted{RequestID: "req_1", Status: StatusAccepted, StatusURL: "/v1/jobs/req_1"}) {
		t.Errorf("Submit returned %+v", a)
	}
	r := s.requests()[0]
	want := `{"type":"shell","payload":{"n":1},"callbackUrl":"https://example.com/cb","metadata":{"k":"v"},"deadline":"2030-01-02T03:04:05Z"}`
	if r.method != "POST" || r.path != "/v1/jobs" || r.body != want {
		t.Errorf("sent %s %s %s\nwant POST /v1/jobs %s", r.method, r.path, r.body, want)
	}
	for h, v := range map[string]string{"Authorization": "Bearer bmw_secret", "Idempotency-Key": "key-1", "Content-Type": "application/json"} {
		if got := r.header.Get(h); got != v {
			t.Errorf("header %s: %q, want %q", h, got, v)
		}
	}
}

func TestGetKeepsTheServersJSON(t *testing.T) {
	body := `{"requestId":"req_1","type":"shell","status":"PROCESSING","progress":{"percent":42,"message":"encoding","updatedAt":"2030-01-01T00:00:00Z"},"somethingNew":true}`
	s, c := newScripted(t, jsonAnswer(200, body))
	j, err := c.Wait(context.Background(), "req 1/x", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != StatusProcessing || j.Progress == nil || j.Progress.Percent != 42 || string(j.Raw) != body {
		t.Errorf("job %+v, raw %s; want PROCESSING at 42%% and raw %s", j, j.Raw, body)
	}
	r := s.requests()[0]
	if r.path != "/v1/jobs/req 1/x" || r.query != "wait=30s" {
		t.Errorf("sent path %q query %q, want the id escaped and wait=30s", r.path, r.query)
	}
}

func TestClaim(t *testing.T) {
	claimed := `{"requestId":"req_1","type":"shell","payload":{"a":1},"metadata":{},"attempt":2,"leaseId":"1.x8f","leaseExpiresAt":"2030-01-01T00:01:00Z","deadline":null}`
	tests := []struct {
		name   string
		answer answer
		wantOK bool
		wantID string
	}{
		{"a job", jsonAnswer(200, claimed), true, "req_1"},
		{"none within the wait", answer{status: 204}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := newScripted(t, tt.answer)
			cl, ok, err := c.Claim(context.Background(), ClaimRequest{Types: []string{"shell"}, Wait: 30 * time.Second, Lease: 1500 * time.Millisecond})
			if err != nil || ok != tt.wantOK || cl.RequestID != tt.wantID {
				t.Fatalf("Claim: %+v, %v, %v; want ok %v id %q", cl, ok, err, tt.wantOK, tt.wantID)
			}
			if ok && (cl.LeaseID != "1.x8f" || cl.Attempt != 2 || string(cl.Payload) != `{"a":1}` || cl.Deadline != nil) {
				t.Errorf("claim decoded as %+v", cl)
			}
			if got, want := s.requests()[0].body, `{"types":["shell"],"waitSeconds":30,"leaseSeconds":2}`; got != want {
				t.Errorf("claim body %s, want %s (lease rounded up to whole seconds)", got, want)
			}
		})
	}
}

func TestClaimIsNotRetried(t *testing.T) {
	s, c := newScripted(t, problemAnswer(503, "service-unavailable", ""), jsonAnswer(200, `{}`))
	if _, _, err := c.Claim(context.Background(), ClaimRequest{Types: []string{"t"}, Lease: time.Minute}); err == nil {
		t.Fatal("Claim succeeded, want the 503")
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("Claim made %d requests, want 1", n)
	}
}

func TestWorkerCallsRetry(t *testing.T) {
	ok := map[string]answer{
		"heartbeat": jsonAnswer(200, `{"leaseExpiresAt":"2030-01-01T00:00:00Z"}`),
		"complete":  jsonAnswer(200, `{"requestId":"req_1","status":"COMPLETED"}`),
		"fail":      jsonAnswer(200, `{"requestId":"req_1","status":"PROCESSING"}`),
	}
	calls := map[string]func(*Client) error{
		"heartbeat": func(c *Client) error {
			_, err := c.Heartbeat(context.Background(), "req_1", "L1", &Progress{Percent: 42, Message: "encoding"})
			return err
		},
		"complete": func(c *Client) error {
			return c.Complete(context.Background(), "req_1", "L1", json.RawMessage(`{"out":1}`))
		},
		"fail": func(c *Client) error {
			_, err := c.Fail(context.Background(), "req_1", "L1", JobError{Code: "exit_3", Message: "boom"}, false)
			return err
		},
	}
	wantBody := map[string]string{
		"heartbeat": `{"leaseId":"L1","progress":{"percent":42,"message":"encoding"}}`,
		"complete":  `{"leaseId":"L1","result":{"out":1}}`,
		"fail":      `{"leaseId":"L1","error":{"code":"exit_3","message":"boom"},"retryable":false}`,
	}
	tests := []struct {
		name      string
		before    []answer // answers before the op's own success answer
		wantCalls int
		wantSlug  string // "" and no error wanted, unless wantErr
		wantErr   bool
	}{
		{"first time", nil, 1, "", false},
		{"after 503 and 500", []answer{problemAnswer(503, "service-unavailable", ""), problemAnswer(500, "internal-error", "")}, 3, "", false},
		{"after a dropped connection", []answer{{hangup: true}}, 2, "", false},
		{"after 429", []answer{problemAnswer(429, "rate-limited", "")}, 2, "", false},
		{"409 lease-lost is not retried", []answer{problemAnswer(409, SlugLeaseLost, "")}, 1, SlugLeaseLost, true},
		{"409 job-canceled is not retried", []answer{problemAnswer(409, SlugJobCanceled, "")}, 1, SlugJobCanceled, true},
		{"401 is not retried", []answer{problemAnswer(401, SlugUnauthorized, "")}, 1, SlugUnauthorized, true},
		{"503 five times gives up", []answer{problemAnswer(503, "a", ""), problemAnswer(503, "b", ""), problemAnswer(503, "c", ""), problemAnswer(503, "d", ""), problemAnswer(503, "e", "")}, 5, "e", true},
	}
	for op := range calls {
		for _, tt := range tests {
			t.Run(op+"/"+tt.name, func(t *testing.T) {
				s, c := newScripted(t, append(append([]answer(nil), tt.before...), ok[op])...)
				err := calls[op](c)
				if (err != nil) != tt.wantErr || ProblemSlug(err) != tt.wantSlug {
					t.Errorf("%s: err %v (slug %q), want error %v slug %q", op, err, ProblemSlug(err), tt.wantErr, tt.wantSlug)
				}
				reqs := s.requests()
				if len(reqs) != tt.wantCalls {
					t.Errorf("%s made %d requests, want %d", op, len(reqs), tt.wantCalls)
				}
				for i, r := range reqs {
					if r.path != "/v1/worker/jobs/req_1/"+op || r.body != wantBody[op] {
						t.Errorf("request %d: %s %s, want /v1/worker/jobs/req_1/%s %s", i, r.path, r.body, op, wantBody[op])
					}
				}
			})
		}
	}
}

func TestRetriesStopWithTheContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c, _ := New(srv.URL, "k", WithBackOff(func() backoff.BackOff { return backoff.NewConstantBackOff(10 * time.Millisecond) }))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.Complete(ctx, "req_1", "L", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Complete: %v, want the context's deadline", err)
	}
	var p *Problem
	if !errors.As(err, &p) || p.Status != 503 {
		t.Errorf("Complete: %v, want the last attempt's 503 in the chain", err)
	}
}

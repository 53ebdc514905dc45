package jobs_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/testkit"
)

const publicURL = "https://api.example.com"

// upstream is an async type's upstream: it records what it is sent and
// answers status.
type upstream struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	got    []upstreamRequest
}

type upstreamRequest struct {
	header http.Header
	body   []byte
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{status: http.StatusAccepted}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.got = append(u.got, upstreamRequest{r.Header.Clone(), body})
		status := u.status
		u.mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"note":"from the upstream"}`))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) setStatus(s int) {
	u.mu.Lock()
	u.status = s
	u.mu.Unlock()
}

func (u *upstream) requests() []upstreamRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.got)
}

var tokenPattern = regexp.MustCompile(`^` + regexp.QuoteMeta(publicURL) + `/v1/completions/([0-9A-Za-z]+\.[0-9a-f]{64})$`)

// asyncEnv is an env whose "approve" type hands jobs to up, with logs
// captured.
func asyncEnv(t *testing.T, up *upstream, opts ...option) (*env, *testkit.SyncBuffer) {
	var logs testkit.SyncBuffer
	opts = append(opts, withPublicURL(publicURL+"/"), func(o *jobs.ServiceOptions) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	e := newEnv(t, func(r *jobs.Registry) {
		r.RegisterAsync("approve", jobs.HTTPAsync{URL: up.URL, UserAgent: "Boomerang/test"}, 5*time.Second)
	}, opts...)
	return e, &logs
}

// handOver runs an async job's attempt and returns the token its upstream
// got in the completion URL.
func handOver(t *testing.T, e *env, up *upstream, id string) string {
	t.Helper()
	n := len(up.requests())
	if err := e.svc.Run(context.Background(), id); err != nil {
		t.Fatalf("Run(%s): %v", id, err)
	}
	reqs := up.requests()
	if len(reqs) != n+1 {
		t.Fatalf("the upstream got %d requests, want %d", len(reqs), n+1)
	}
	var body struct {
		CompletionURL string `json:"completionUrl"`
	}
	if err := json.Unmarshal(reqs[n].body, &body); err != nil {
		t.Fatalf("upstream body %s: %v", reqs[n].body, err)
	}
	m := tokenPattern.FindStringSubmatch(body.CompletionURL)
	if m == nil {
		t.Fatalf("completionUrl = %q, want %s/v1/completions/<job>.<64 hex digits>", body.CompletionURL, publicURL)
	}
	return m[1]
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// everything is every key and value of the test's database, for the
// checks that a secret is nowhere in Redis.
func (e *env) everything(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	keys, err := e.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "\n")
		switch e.rdb.Type(ctx, k).Val() {
		case "string":
			b.WriteString(e.rdb.Get(ctx, k).Val())
		case "hash":
			for f, v := range e.rdb.HGetAll(ctx, k).Val() {
				b.WriteString(f + "=" + v + "\n")
			}
		case "list":
			b.WriteString(strings.Join(e.rdb.LRange(ctx, k, 0, -1).Val(), "\n"))
		case "zset":
			b.WriteString(strings.Join(e.rdb.ZRange(ctx, k, 0, -1).Val(), "\n"))
		case "set":
			b.WriteString(strings.Join(e.rdb.SMembers(ctx, k).Val(), "\n"))
		default:
			t.Fatalf("key %s of type %s: not read", k, e.rdb.Type(ctx, k).Val())
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestAsyncHandsTheJobToItsUpstream(t *testing.T) {
	up := newUpstream(t)
	e, logs := asyncEnv(t, up)
	ctx := context.Background()
	sub := echoSub(bigPayload)
	sub.Type, sub.Metadata = "approve", map[string]string{"order": "42"}
	j := e.submit(t, "cli_a", sub)
	// Without a deadline of its own, an async job (and its token) dies
	// after the longest deadline allowed (30 days by default).
	wantDeadline := t0.Add(30 * 24 * time.Hour)
	if j.Deadline == nil || !j.Deadline.Equal(wantDeadline) {
		t.Fatalf("submitted deadline = %v, want %v", j.Deadline, wantDeadline)
	}
	e.clock.Advance(time.Second)
	token := handOver(t, e, up, j.ID)

	req := up.requests()[0]
	if h := req.header; h.Get("Content-Type") != "application/json" || h.Get("Idempotency-Key") != j.ID+":1" ||
		h.Get("Boomerang-Request-Id") != j.ID || h.Get("User-Agent") != "Boomerang/test" {
		t.Errorf("upstream headers %v; want JSON, Idempotency-Key %s:1, Boomerang-Request-Id, User-Agent", h, j.ID)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(req.body, &body); err != nil {
		t.Fatalf("upstream body %s: %v", req.body, err)
	}
	if keys := slices.Sorted(maps.Keys(body)); !slices.Equal(keys, []string{"completionUrl", "deadline", "metadata", "payload", "requestId", "type"}) {
		t.Errorf("upstream body keys = %v, want completionUrl deadline metadata payload requestId type", keys)
	}
	if !strings.Contains(string(req.body), `"payload":`+bigPayload+`,`) {
		t.Errorf("upstream body %s does not carry the payload byte for byte: %s", req.body, bigPayload)
	}
	var fields struct {
		RequestID string            `json:"requestId"`
		Type      string            `json:"type"`
		Metadata  map[string]string `json:"metadata"`
		Deadline  time.Time         `json:"deadline"`
	}
	_ = json.Unmarshal(req.body, &fields)
	if fields.RequestID != j.ID || fields.Type != "approve" || !maps.Equal(fields.Metadata, sub.Metadata) || !fields.Deadline.Equal(wantDeadline) {
		t.Errorf("upstream body %s; want requestId %s, type approve, metadata %v, deadline %v", req.body, j.ID, sub.Metadata, wantDeadline)
	}
	if body, _, _ := strings.Cut(token, "."); ids.Request+body != j.ID {
		t.Errorf("token %q does not start with the job's id body", token)
	}

	// Accepted: the job waits for its token, held until its deadline.
	got := e.get(t, "cli_a", j.ID)
	if got.Status != jobs.StatusProcessing || got.Attempts != 1 || len(e.enq.Scheduled()) != 0 {
		t.Errorf("after the hand-over: %s attempt %d, %d deliveries; want PROCESSING attempt 1, none", got.Status, got.Attempts, len(e.enq.Scheduled()))
	}
	if nb := e.notBefore(t, j.ID); !nb.Equal(wantDeadline) {
		t.Errorf("held until %v, want the deadline %v", nb, wantDeadline)
	}
	err := e.svc.Run(ctx, j.ID) // a recovery task meanwhile
	var leased *jobs.LeasedError
	if !errors.As(err, &leased) || len(up.requests()) != 1 {
		t.Errorf("Run while the upstream holds the job = %v and %d hand-overs; want a LeasedError and 1", err, len(up.requests()))
	}

	// Only the token's hash is stored, and no log line holds the token.
	rec := e.record(t, j.ID)
	if rec["th"] != sha256Hex(token) {
		t.Errorf("record th = %q, want the token's SHA-256 %s", rec["th"], sha256Hex(token))
	}
	_, secret, _ := strings.Cut(token, ".")
	if all := e.everything(t); strings.Contains(all, secret) {
		t.Errorf("the token's secret %s is in Redis:\n%s", secret, all)
	}

	e.clock.Advance(time.Minute)
	done, err := e.svc.CompleteByToken(ctx, token, jobs.Completion{Result: json.RawMessage(bigPayload)})
	if err != nil || done.Status != jobs.StatusCompleted || done.ID != j.ID {
		t.Fatalf("CompleteByToken = %s %s, %v; want %s COMPLETED", done.ID, done.Status, err, j.ID)
	}
	stored := e.job(t, j.ID)
	if stored.Status != jobs.StatusCompleted || string(stored.Result) != bigPayload || !stored.CompletedAt.Equal(e.clock.Now()) {
		t.Errorf("stored: %s result %s completed %v; want COMPLETED with the result byte for byte at %v", stored.Status, stored.Result,
			stored.CompletedAt, e.clock.Now())
	}
	checkDelivery(t, e, j.ID, jobs.EventCompleted, `"result":`+bigPayload)

	// Single use: a second post, of either kind, changes nothing. (Later:
	// a write of the very state the record holds is taken for a repeat of
	// it, which only a frozen clock makes.)
	e.clock.Advance(time.Second)
	rec = e.record(t, j.ID)
	for _, c := range []jobs.Completion{{Result: json.RawMessage(`2`)}, {Error: &jobs.Error{Code: "no", Message: "rejected"}}} {
		if _, err := e.svc.CompleteByToken(ctx, token, c); !errors.Is(err, jobs.ErrTokenUsed) {
			t.Errorf("second use of the token (%+v) = %v, want ErrTokenUsed", c, err)
		}
	}
	if after := e.record(t, j.ID); !maps.Equal(rec, after) || len(e.enq.Scheduled()) != 1 {
		t.Errorf("a second use changed the record or scheduled %d deliveries", len(e.enq.Scheduled()))
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the token's secret is in the logs:\n%s", logs.String())
	}
}

func TestCompleteByToken(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		before    func(t *testing.T, e *env, id string) // after the hand-over
		token     func(token string) string
		c         jobs.Completion
		wantErr   error
		wantState jobs.Status // when accepted
	}{
		{name: "an error completion fails the job", c: jobs.Completion{Error: &jobs.Error{Code: "rejected", Message: "the approver said no"}},
			wantState: jobs.StatusFailed},
		{name: "no result is null", c: jobs.Completion{}, wantState: jobs.StatusCompleted},
		{name: "a forged secret", token: func(tok string) string {
			b, _, _ := strings.Cut(tok, ".")
			return b + "." + strings.Repeat("0", 64)
		}, wantErr: jobs.ErrTokenInvalid},
		{name: "no secret", token: func(tok string) string { b, _, _ := strings.Cut(tok, "."); return b }, wantErr: jobs.ErrTokenInvalid},
		{name: "a job that does not exist", token: func(tok string) string {
			_, s, _ := strings.Cut(tok, ".")
			return ids.Body(ids.New(ids.Request, t0)) + "." + s
		}, wantErr: jobs.ErrTokenInvalid},
		{name: "garbage", token: func(string) string { return "../../admin" }, wantErr: jobs.ErrTokenInvalid},
		{name: "after a cancel", before: func(t *testing.T, e *env, id string) {
			if _, err := e.svc.Cancel(ctx, "", id); err != nil {
				t.Fatal(err)
			}
		}, wantErr: jobs.ErrCanceled},
		{name: "after the deadline", before: func(t *testing.T, e *env, id string) {
			e.clock.Set(*e.job(t, id).Deadline)
			if err := e.svc.Expire(ctx, id); err != nil {
				t.Fatal(err)
			}
		}, wantErr: jobs.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t)
			e, _ := asyncEnv(t, up)
			j := e.submitType(t, "approve", `1`)
			token := handOver(t, e, up, j.ID)
			e.clock.Advance(time.Second)
			if tt.before != nil {
				tt.before(t, e, j.ID)
			}
			if tt.token != nil {
				token = tt.token(token)
			}
			rec, scheduled := e.record(t, j.ID), len(e.enq.Scheduled())
			got, err := e.svc.CompleteByToken(ctx, token, tt.c)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("CompleteByToken = %v, want %v", err, tt.wantErr)
				}
				if after := e.record(t, j.ID); !maps.Equal(rec, after) || len(e.enq.Scheduled()) != scheduled {
					t.Errorf("a refused completion changed the record or scheduled a delivery\nbefore %v\n after %v", rec, after)
				}
				return
			}
			if err != nil || got.Status != tt.wantState {
				t.Fatalf("CompleteByToken = %s, %v; want %s", got.Status, err, tt.wantState)
			}
			stored := e.job(t, j.ID)
			if tt.c.Error != nil {
				if stored.Error == nil || *stored.Error != *tt.c.Error {
					t.Errorf("stored error %+v, want %+v", stored.Error, tt.c.Error)
				}
				checkDelivery(t, e, j.ID, jobs.EventFailed, `"code":"rejected"`)
			} else {
				if string(stored.Result) != "null" {
					t.Errorf("stored result %s, want null", stored.Result)
				}
				checkDelivery(t, e, j.ID, jobs.EventCompleted, `"result":null`)
			}
		})
	}
}

// TestAsyncUpstreamRefusals: an upstream that fails to accept follows the
// HTTP-forwarding rules: a 5xx is retried (the attempt and its error
// shown, the next attempt with a new token, the old one dead), a 4xx fails
// the job.
func TestAsyncUpstreamRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("503 is retried", func(t *testing.T) {
		up := newUpstream(t)
		up.setStatus(http.StatusServiceUnavailable)
		e, _ := asyncEnv(t, up)
		j := e.submitType(t, "approve", `1`)
		first := handOver(t, e, up, j.ID)
		got := e.get(t, "cli_a", j.ID)
		if got.Status != jobs.StatusProcessing || got.Attempts != 1 || errorCode(got.LastError) != "upstream_503" {
			t.Errorf("after a 503: %s attempt %d lastError %+v; want PROCESSING attempt 1 upstream_503", got.Status, got.Attempts, got.LastError)
		}
		at := e.clock.Now().Add(retryDelay(1))
		if calls := e.enq.Calls(); len(calls) != 1 || calls[0].Attempt != 2 || !calls[0].At.Equal(at) {
			t.Errorf("enqueued %+v, want attempt 2 at %v", calls, at)
		}

		up.setStatus(http.StatusAccepted)
		e.clock.Set(at)
		second := handOver(t, e, up, j.ID)
		if second == first {
			t.Fatalf("the retry's upstream got the first attempt's token again")
		}
		if k := up.requests()[1].header.Get("Idempotency-Key"); k != j.ID+":2" {
			t.Errorf("retry's Idempotency-Key = %q, want %s:2", k, j.ID)
		}
		if _, err := e.svc.CompleteByToken(ctx, first, jobs.Completion{Result: json.RawMessage(`1`)}); !errors.Is(err, jobs.ErrTokenInvalid) {
			t.Errorf("the first attempt's token after the second's hand-over = %v, want ErrTokenInvalid", err)
		}
		if _, err := e.svc.CompleteByToken(ctx, second, jobs.Completion{Result: json.RawMessage(`1`)}); err != nil {
			t.Errorf("the second attempt's token = %v, want accepted", err)
		}
	})
	t.Run("400 fails the job", func(t *testing.T) {
		up := newUpstream(t)
		up.setStatus(http.StatusBadRequest)
		e, _ := asyncEnv(t, up)
		j := e.submitType(t, "approve", `1`)
		token := handOver(t, e, up, j.ID)
		got := e.job(t, j.ID)
		if got.Status != jobs.StatusFailed || errorCode(got.Error) != "upstream_400" || !strings.Contains(got.Error.Message, "from the upstream") {
			t.Errorf("after a 400: %s %+v; want FAILED upstream_400 with the upstream's answer", got.Status, got.Error)
		}
		if n := len(e.del.First()); n != 1 {
			t.Errorf("%d webhooks delivered, want 1 (job.failed)", n)
		}
		if _, err := e.svc.CompleteByToken(ctx, token, jobs.Completion{Result: json.RawMessage(`1`)}); !errors.Is(err, jobs.ErrTokenUsed) {
			t.Errorf("the token of a failed job = %v, want ErrTokenUsed", err)
		}
	})
}

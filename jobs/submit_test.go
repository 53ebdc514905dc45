package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/redis/go-redis/v9"
)

func TestSubmitStoresAcceptedAndEnqueues(t *testing.T) {
	e := newEnv(t, func(r *jobs.Registry) {
		r.Register("slow", jobs.Echo, 90*time.Second)
	})
	ctx := context.Background()
	for _, tc := range []struct {
		typ         string
		wantTimeout time.Duration
	}{
		{"echo", echoTimeout},
		{"slow", 90 * time.Second},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			before := len(e.enq.Calls())
			sub := jobs.Submission{Type: tc.typ, Payload: json.RawMessage(`{"x":1}`), CallbackURL: callback,
				Metadata: map[string]string{"order": "42"}}
			j, created, err := e.svc.Submit(ctx, "cli_a", sub)
			if err != nil || !created {
				t.Fatalf("Submit(%+v) = created %v, error %v; want created, nil", sub, created, err)
			}
			if !strings.HasPrefix(j.ID, "req_") || j.Status != jobs.StatusAccepted || j.ClientID != "cli_a" || j.Type != tc.typ {
				t.Errorf("Submit returned %+v; want a req_ id, ACCEPTED, client cli_a, type %s", j, tc.typ)
			}
			calls := e.enq.Calls()[before:]
			if want := []enqueueCall{{j.ID, tc.wantTimeout}}; !reflect.DeepEqual(calls, want) {
				t.Errorf("EnqueueJob calls = %+v, want %+v", calls, want)
			}
			got := e.get(t, "cli_a", j.ID)
			if got.Status != jobs.StatusAccepted || string(got.Payload) != `{"x":1}` || got.CallbackURL != callback ||
				got.Metadata["order"] != "42" || got.Attempts != 0 || !got.CreatedAt.Equal(j.CreatedAt) {
				t.Errorf("stored job = %+v; want ACCEPTED with the submitted payload, callback and metadata", got)
			}
			// The job is in the indexes the admin API lists.
			for _, f := range []jobs.Filter{{}, {Status: jobs.StatusAccepted}, {ClientID: "cli_a"}, {ClientID: "cli_a", Status: jobs.StatusAccepted}} {
				list, _, err := e.store.List(ctx, f, 100, "")
				if err != nil {
					t.Fatalf("List(%+v): %v", f, err)
				}
				if !containsJob(list, j.ID) {
					t.Errorf("List(%+v) = %v; want it to hold %s", f, ids(list), j.ID)
				}
			}
		})
	}
}

func TestSubmitWithoutPayloadStoresNull(t *testing.T) {
	e := newEnv(t, nil)
	j := e.submit(t, "cli_a", jobs.Submission{Type: "echo", CallbackURL: callback})
	if got := e.get(t, "cli_a", j.ID); string(got.Payload) != "null" {
		t.Errorf("payload of a job submitted without one = %q, want null", got.Payload)
	}
}

func TestSubmitValidation(t *testing.T) {
	valid := func() jobs.Submission {
		return jobs.Submission{Type: "echo", Payload: json.RawMessage(`{}`), CallbackURL: callback}
	}
	manyKeys := map[string]string{}
	for i := 0; i < 33; i++ {
		manyKeys[fmt.Sprintf("k%02d", i)] = "v"
	}
	// At the limits: 32 keys of 3 bytes, values of 125 bytes: 4096 bytes.
	atLimits := map[string]string{}
	for i := 0; i < 32; i++ {
		atLimits[fmt.Sprintf("k%02d", i)] = strings.Repeat("v", 125)
	}
	tests := []struct {
		name   string
		change func(*jobs.Submission)
		want   []jobs.FieldError // Field and Code only
	}{
		{"type missing", func(s *jobs.Submission) { s.Type = "" }, fe("type", "required")},
		{"type unknown", func(s *jobs.Submission) { s.Type = "resize" }, fe("type", "unknown")},
		{"type upper case", func(s *jobs.Submission) { s.Type = "Echo" }, fe("type", "invalid")},
		{"type bad chars", func(s *jobs.Submission) { s.Type = "echo!" }, fe("type", "invalid")},
		{"type too long", func(s *jobs.Submission) { s.Type = "e" + strings.Repeat("x", 64) }, fe("type", "too-long")},
		{"callbackUrl missing", func(s *jobs.Submission) { s.CallbackURL = "" }, fe("callbackUrl", "required")},
		{"callbackUrl ftp", func(s *jobs.Submission) { s.CallbackURL = "ftp://hooks.example.com/x" }, fe("callbackUrl", "invalid")},
		{"callbackUrl userinfo", func(s *jobs.Submission) { s.CallbackURL = "https://user:pw@hooks.example.com/x" }, fe("callbackUrl", "invalid")},
		{"callbackUrl loopback", func(s *jobs.Submission) { s.CallbackURL = "http://127.0.0.1:8080/hook" }, fe("callbackUrl", "invalid")},
		{"callbackUrl localhost", func(s *jobs.Submission) { s.CallbackURL = "http://localhost/hook" }, fe("callbackUrl", "invalid")},
		{"callbackUrl relative", func(s *jobs.Submission) { s.CallbackURL = "/hook" }, fe("callbackUrl", "invalid")},
		{"metadata too many keys", func(s *jobs.Submission) { s.Metadata = manyKeys }, fe("metadata", "too-many")},
		{"metadata too large", func(s *jobs.Submission) { s.Metadata = map[string]string{"k": strings.Repeat("v", 4096)} }, fe("metadata", "too-large")},
		{"metadata value bad UTF-8", func(s *jobs.Submission) { s.Metadata = map[string]string{"k": "caf\xe9"} }, fe("metadata", "invalid")},
		{"metadata key bad UTF-8", func(s *jobs.Submission) { s.Metadata = map[string]string{"\xff": "v"} }, fe("metadata", "invalid")},
		{"metadata empty key", func(s *jobs.Submission) { s.Metadata = map[string]string{"": "v"} }, fe("metadata", "invalid")},
		{"Idempotency-Key too long", func(s *jobs.Submission) { s.IdempotencyKey = strings.Repeat("k", 256) }, fe("Idempotency-Key", "too-long")},
		{"Idempotency-Key bad UTF-8", func(s *jobs.Submission) { s.IdempotencyKey = "key-\xff" }, fe("Idempotency-Key", "invalid")},
		{"every field at once", func(s *jobs.Submission) {
			s.Type, s.CallbackURL, s.Metadata, s.IdempotencyKey = "", "ftp://x.example.com/", manyKeys, strings.Repeat("k", 300)
		}, fe("type", "required", "callbackUrl", "invalid", "metadata", "too-many", "Idempotency-Key", "too-long")},
		{"at the limits", func(s *jobs.Submission) { s.Metadata, s.IdempotencyKey = atLimits, strings.Repeat("k", 255) }, nil},
		{"valid", func(*jobs.Submission) {}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			sub := valid()
			tc.change(&sub)
			_, created, err := e.svc.Submit(context.Background(), "cli_a", sub)
			if tc.want == nil {
				if err != nil || !created {
					t.Fatalf("Submit(%s) = created %v, error %v; want created, nil", tc.name, created, err)
				}
				return
			}
			var ve *jobs.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Submit(%s) error = %v (%T), want *jobs.ValidationError", tc.name, err, err)
			}
			var got []jobs.FieldError
			for _, f := range ve.Fields {
				if f.Message == "" {
					t.Errorf("field %s has no message", f.Field)
				}
				got = append(got, jobs.FieldError{Field: f.Field, Code: f.Code})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Submit(%s) fields = %+v, want %+v", tc.name, got, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want[0].Field) {
				t.Errorf("error text %q does not name the field %s", err, tc.want[0].Field)
			}
			if created || len(e.enq.Calls()) != 0 {
				t.Errorf("a rejected submission was created (%v) or enqueued (%v)", created, e.enq.Calls())
			}
			if n := e.rdb.DBSize(context.Background()).Val(); n != 0 {
				t.Errorf("a rejected submission left %d keys in Redis: %v", n, e.keys(t, "*"))
			}
		})
	}
}

func fe(pairs ...string) []jobs.FieldError {
	var out []jobs.FieldError
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, jobs.FieldError{Field: pairs[i], Code: pairs[i+1]})
	}
	return out
}

func TestSubmitUnknownTypeListsTheClientsTypes(t *testing.T) {
	e := newEnv(t, func(r *jobs.Registry) {
		r.Register("resize", jobs.Echo, time.Second)
		r.Register("billing.export", jobs.Echo, time.Second) // another tenant's integration
	})
	tests := []struct {
		typ     string
		allowed []string
		want    string // "" when the submission must pass
	}{
		{"nope", nil, "this client may use: billing.export, echo, resize"},
		{"nope", []string{"echo", "resize"}, "this client may use: echo, resize"},
		{"billing.export", []string{"echo", "resize"}, "this client may use: echo, resize"},
		{"resize", []string{"echo", "resize"}, ""},
		{"echo", []string{"gone"}, "this client may use no job type"},
	}
	for _, tc := range tests {
		_, _, err := e.svc.Submit(context.Background(), "cli_a", jobs.Submission{Type: tc.typ, CallbackURL: callback, AllowedTypes: tc.allowed})
		if tc.want == "" {
			if err != nil {
				t.Errorf("Submit(type %s, allowed %v) = %v, want it accepted", tc.typ, tc.allowed, err)
			}
			continue
		}
		var ve *jobs.ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Code != "unknown" || !strings.HasSuffix(ve.Fields[0].Message, tc.want) {
			t.Errorf("Submit(type %s, allowed %v) = %v; want an unknown-type error ending %q", tc.typ, tc.allowed, err, tc.want)
		}
	}
}

func TestSubmitCustomLimits(t *testing.T) {
	e := newEnv(t, nil, withLimits(jobs.Limits{MaxMetadataKeys: 1, MaxMetadataBytes: 4, MaxKeyLength: 3}))
	tests := []struct {
		meta map[string]string
		key  string
		want []jobs.FieldError
	}{
		{map[string]string{"a": "bcd"}, "abc", nil},
		{map[string]string{"a": "b", "c": "d"}, "", fe("metadata", "too-many")},
		{map[string]string{"a": "bcde"}, "", fe("metadata", "too-large")},
		{nil, "abcd", fe("Idempotency-Key", "too-long")},
	}
	for _, tc := range tests {
		sub := echoSub(`1`)
		sub.Metadata, sub.IdempotencyKey = tc.meta, tc.key
		_, _, err := e.svc.Submit(context.Background(), "cli_a", sub)
		var got []jobs.FieldError
		var ve *jobs.ValidationError
		if errors.As(err, &ve) {
			for _, f := range ve.Fields {
				got = append(got, jobs.FieldError{Field: f.Field, Code: f.Code})
			}
		} else if err != nil {
			t.Fatalf("Submit(metadata %v, key %q): %v", tc.meta, tc.key, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Submit(metadata %v, key %q) fields = %+v, want %+v", tc.meta, tc.key, got, tc.want)
		}
	}
}

func TestSubmitIdempotency(t *testing.T) {
	ctx := context.Background()
	base := func() jobs.Submission {
		return jobs.Submission{Type: "echo", Payload: json.RawMessage(`{"n":1}`), CallbackURL: callback,
			Metadata: map[string]string{"a": "1"}, IdempotencyKey: "key-1"}
	}
	tests := []struct {
		name     string
		clientID string
		change   func(*jobs.Submission)
		wantSame bool  // the first job comes back, created=false
		wantErr  error // ErrIdempotencyConflict
	}{
		{"same key, same body", "cli_a", func(*jobs.Submission) {}, true, nil},
		{"same key, same metadata in another map", "cli_a", func(s *jobs.Submission) { s.Metadata = map[string]string{"a": "1"} }, true, nil},
		{"same key, different payload", "cli_a", func(s *jobs.Submission) { s.Payload = json.RawMessage(`{"n":2}`) }, false, jobs.ErrIdempotencyConflict},
		{"same key, different callbackUrl", "cli_a", func(s *jobs.Submission) { s.CallbackURL = callback + "/other" }, false, jobs.ErrIdempotencyConflict},
		{"same key, different metadata", "cli_a", func(s *jobs.Submission) { s.Metadata = map[string]string{"a": "2"} }, false, jobs.ErrIdempotencyConflict},
		{"same key, extra metadata", "cli_a", func(s *jobs.Submission) { s.Metadata["b"] = "" }, false, jobs.ErrIdempotencyConflict},
		{"same key, no metadata", "cli_a", func(s *jobs.Submission) { s.Metadata = nil }, false, jobs.ErrIdempotencyConflict},
		{"same key, different type", "cli_a", func(s *jobs.Submission) { s.Type = "echo2" }, false, jobs.ErrIdempotencyConflict},
		{"same key, another client", "cli_b", func(*jobs.Submission) {}, false, nil},
		{"another key", "cli_a", func(s *jobs.Submission) { s.IdempotencyKey = "key-2" }, false, nil},
		{"no key", "cli_a", func(s *jobs.Submission) { s.IdempotencyKey = "" }, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(r *jobs.Registry) { r.Register("echo2", jobs.Echo, time.Second) })
			first := e.submit(t, "cli_a", base())
			sub := base()
			tc.change(&sub)
			got, created, err := e.svc.Submit(ctx, tc.clientID, sub)
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("second Submit(%s) error = %v, want %v", tc.name, err, tc.wantErr)
				}
				if len(e.enq.Calls()) != 1 {
					t.Errorf("a conflicting submission was enqueued: %v", e.enq.Calls())
				}
			case err != nil:
				t.Fatalf("second Submit(%s): %v", tc.name, err)
			case tc.wantSame:
				if created || got.ID != first.ID || got.Status != jobs.StatusAccepted {
					t.Errorf("second Submit(%s) = %s created %v; want the first job %s, created false", tc.name, got.ID, created, first.ID)
				}
				// The job is still ACCEPTED, so the replay makes sure its task
				// exists (an idempotent enqueue of the same request id).
				if calls := e.enq.Calls(); len(calls) != 2 || calls[1].RequestID != first.ID {
					t.Errorf("repeated submission of an ACCEPTED job: EnqueueJob calls %v, want a second one for %s", calls, first.ID)
				}
			default:
				if !created || got.ID == first.ID {
					t.Errorf("second Submit(%s) = %s created %v; want a new job, not %s", tc.name, got.ID, created, first.ID)
				}
				if got.ClientID != tc.clientID {
					t.Errorf("new job client = %q, want %q", got.ClientID, tc.clientID)
				}
			}
		})
	}
}

func TestSubmitEnqueueFailureLeavesNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	e.enq.SetErr(errors.New("queue down"))
	sub := echoSub(`{"n":1}`)
	sub.IdempotencyKey = "retry-me"
	sub.Metadata = map[string]string{"k": "v"}
	_, created, err := e.svc.Submit(ctx, "cli_a", sub)
	if !errors.Is(err, jobs.ErrUnavailable) || created {
		t.Fatalf("Submit with a failing enqueuer = created %v, error %v; want ErrUnavailable", created, err)
	}
	calls := e.enq.Calls()
	if len(calls) != 1 {
		t.Fatalf("EnqueueJob calls = %v, want 1", calls)
	}
	failedID := calls[0].RequestID
	if ks := e.keys(t, "*"); len(ks) != 0 {
		t.Errorf("after a failed enqueue Redis still holds %v; want no job record, index entry or idempotency key", ks)
	}
	for _, f := range []jobs.Filter{{}, {Status: jobs.StatusAccepted}, {ClientID: "cli_a"}, {ClientID: "cli_a", Status: jobs.StatusAccepted}} {
		if list, _, err := e.store.List(ctx, f, 10, ""); err != nil || len(list) != 0 {
			t.Errorf("List(%+v) = %v, %v; want empty", f, ids(list), err)
		}
	}
	if _, err := e.svc.Get(ctx, "cli_a", failedID); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("Get(failed job %s) error = %v, want ErrNotFound", failedID, err)
	}

	// A retry with the same key makes a fresh job.
	e.enq.SetErr(nil)
	j, created, err := e.svc.Submit(ctx, "cli_a", sub)
	if err != nil || !created || j.ID == failedID {
		t.Fatalf("retry after a failed enqueue = %s created %v, error %v; want a fresh job (not %s)", j.ID, created, err, failedID)
	}
	if got := e.get(t, "cli_a", j.ID); got.Status != jobs.StatusAccepted {
		t.Errorf("retried job status = %s, want ACCEPTED", got.Status)
	}
	if idem := e.keys(t, "bmr:idem:*"); len(idem) != 1 {
		t.Errorf("idempotency keys after the retry = %v, want exactly one", idem)
	}
	// And the key now points at the fresh job.
	again, created, err := e.svc.Submit(ctx, "cli_a", sub)
	if err != nil || created || again.ID != j.ID {
		t.Errorf("third Submit = %s created %v, error %v; want %s, created false", again.ID, created, err, j.ID)
	}
}

func TestSubmitClosedRedisIsUnavailable(t *testing.T) {
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	rdb.Close()
	reg := jobs.NewRegistry()
	reg.Register("echo", jobs.Echo, time.Second)
	enq := &fakeEnqueuer{}
	svc := jobs.NewService(jobs.ServiceOptions{Store: jobs.NewStore(rdb, time.Hour), Registry: reg, URLs: egress.Policy{},
		Enqueuer: enq, Deliverer: &fakeDeliverer{}})
	for _, key := range []string{"", "k"} {
		sub := echoSub(`1`)
		sub.IdempotencyKey = key
		_, _, err := svc.Submit(context.Background(), "cli_a", sub)
		if !errors.Is(err, jobs.ErrUnavailable) {
			t.Errorf("Submit(key %q) over a closed Redis client error = %v, want ErrUnavailable", key, err)
		}
	}
	if len(enq.Calls()) != 0 {
		t.Errorf("EnqueueJob called although the job was not stored: %v", enq.Calls())
	}
	if _, err := svc.Get(context.Background(), "cli_a", "req_x"); err == nil || errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("Get over a closed Redis client error = %v; want a store error, not ErrNotFound", err)
	}
}

func TestGet(t *testing.T) {
	e := newEnv(t, nil)
	j := e.submit(t, "cli_a", echoSub(`1`))
	tests := []struct {
		clientID, id string
		wantErr      error
	}{
		{"cli_a", j.ID, nil},
		{"cli_b", j.ID, jobs.ErrNotFound},
		{"", j.ID, jobs.ErrNotFound},
		{"cli_a", "req_unknown", jobs.ErrNotFound},
		{"cli_a", "", jobs.ErrNotFound},
		{"cli_a", strings.Repeat("x", 65), jobs.ErrNotFound},
	}
	for _, tc := range tests {
		got, err := e.svc.Get(context.Background(), tc.clientID, tc.id)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("Get(%q, %q) error = %v, want %v", tc.clientID, tc.id, err, tc.wantErr)
		}
		if err == nil && got.ID != tc.id {
			t.Errorf("Get(%q, %q) = job %q", tc.clientID, tc.id, got.ID)
		}
		if err != nil && got.ID != "" {
			t.Errorf("Get(%q, %q) leaked job %q with the error", tc.clientID, tc.id, got.ID)
		}
	}
}

func containsJob(list []jobs.Job, id string) bool {
	for _, j := range list {
		if j.ID == id {
			return true
		}
	}
	return false
}

func ids(list []jobs.Job) []string {
	out := make([]string, len(list))
	for i, j := range list {
		out[i] = j.ID
	}
	return out
}

// An idempotency key whose job has expired (the key lives 24 h, the job
// only for the retention) cannot return that job: the submission conflicts.
func TestSubmitIdempotencyKeyOfVanishedJob(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	sub := echoSub(`1`)
	sub.IdempotencyKey = "k"
	j := e.submit(t, "cli_a", sub)
	if err := e.rdb.Del(ctx, "bmr:job:"+j.ID).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Submit(ctx, "cli_a", sub); !errors.Is(err, jobs.ErrIdempotencyConflict) {
		t.Errorf("Submit with the key of a vanished job = %v, want ErrIdempotencyConflict", err)
	}
}

func TestSubmitPayloadAndTypeLimits(t *testing.T) {
	e := newEnv(t, nil, withLimits(jobs.Limits{MaxPayloadBytes: 10, MaxTypeLength: 4, TypePattern: regexp.MustCompile(`^[a-z]+$`)}))
	svc := e.svc
	tests := []struct {
		name    string
		typ     string
		payload string
		want    []jobs.FieldError
	}{
		{"payload over the limit", "echo", `"0123456789"`, fe("payload", "too-large")},
		{"payload at the limit", "echo", `"01234567"`, nil},
		{"type over the length", "echoo", `1`, fe("type", "too-long")},
		{"type outside the pattern", "ec.o", `1`, fe("type", "invalid")},
	}
	for _, tt := range tests {
		_, _, err := svc.Submit(context.Background(), "cli_a", jobs.Submission{Type: tt.typ, Payload: json.RawMessage(tt.payload), CallbackURL: "https://example.com/h"})
		var ve *jobs.ValidationError
		if tt.want == nil {
			if err != nil && !strings.Contains(err.Error(), "unknown") {
				t.Errorf("%s: %v, want accepted", tt.name, err)
			}
			continue
		}
		if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != tt.want[0].Field || ve.Fields[0].Code != tt.want[0].Code {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

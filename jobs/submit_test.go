package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/egress"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
)

// Submit writes one record and hands the job to the ready queue in the same
// step: no task, and nothing else to make durable.
func TestSubmitStoresOneRecordAndMakesItReady(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	e.clock.Set(t0.Add(1234567 * time.Nanosecond))
	sub := jobs.Submission{Type: "echo", Payload: json.RawMessage(`{"x":1}`), CallbackURL: "https://hooks.example.com/boomerang",
		Metadata: map[string]string{"order": "42"}}
	j, created, err := e.svc.Submit(ctx, "cli_a", sub)
	if err != nil || !created {
		t.Fatalf("Submit(%+v) = created %v, error %v; want created, nil", sub, created, err)
	}
	if !ids.Valid(ids.Request, j.ID) || j.Status != jobs.StatusAccepted || j.ClientID != "cli_a" || j.Type != "echo" ||
		j.CallbackURL != callback || j.Payload != nil {
		t.Errorf("Submit returned %+v; want a valid req_ id, ACCEPTED, client cli_a, type echo, callback %s, no payload", j, callback)
	}
	if want := t0.Add(time.Millisecond); !j.CreatedAt.Equal(want) || !j.UpdatedAt.Equal(e.clock.Now()) {
		t.Errorf("Submit returned createdAt %v, updatedAt %v; want %v (the id's millisecond) and %v", j.CreatedAt, j.UpdatedAt, want, e.clock.Now())
	}
	if created, _ := ids.Time(ids.Request, j.ID); !created.Equal(j.CreatedAt) {
		t.Errorf("id %s carries time %v, want createdAt %v", j.ID, created, j.CreatedAt)
	}

	got := e.get(t, "cli_a", j.ID)
	if got.Status != jobs.StatusAccepted || string(got.Payload) != `{"x":1}` || got.CallbackURL != callback ||
		!reflect.DeepEqual(got.Metadata, sub.Metadata) || got.Attempts != 0 || !got.CreatedAt.Equal(j.CreatedAt) ||
		!got.UpdatedAt.Equal(j.UpdatedAt) || got.CompletedAt != nil || got.DeliveryID != "" {
		t.Errorf("stored job = %+v; want ACCEPTED with the submitted payload, callback and metadata", got)
	}
	var records []string
	for _, k := range e.dataKeys(t) {
		if strings.Contains(k, "}:r:") {
			records = append(records, k)
		}
	}
	if want := []string{e.recordKey(j.ID)}; !reflect.DeepEqual(records, want) {
		t.Errorf("records after one Submit = %v, want %v", records, want)
	}
	if ready := e.allReady(t); !reflect.DeepEqual(ready, []string{j.ID}) {
		t.Errorf("ready queue after one Submit = %v, want [%s]", ready, j.ID)
	}
	if got := e.pop(t, ids.Partition(j.ID)); got != j.ID {
		t.Errorf("NextReady after one Submit = %q, want %s", got, j.ID)
	}
	if calls := e.enq.Calls(); len(calls) != 0 {
		t.Errorf("Submit enqueued tasks %+v; want none (the ready queue hands the job over)", calls)
	}
	for _, f := range []jobs.Filter{{}, {Status: jobs.StatusAccepted}, {ClientID: "cli_a"}, {ClientID: "cli_a", Status: jobs.StatusAccepted}} {
		list, _, err := e.svc.List(ctx, f, 100, "")
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		if got := jobIDs(list); !reflect.DeepEqual(got, []string{j.ID}) {
			t.Errorf("List(%+v) = %v, want [%s]", f, got, j.ID)
		}
	}
}

// Jobs without an Idempotency-Key spread over the partitions; each
// partition's ready list hands its jobs out in the order they came.
func TestSubmitSpreadsOverPartitions(t *testing.T) {
	const partitions, n = 4, 64
	e := newEnv(t, nil, withPartitions(partitions))
	want := make([][]string, partitions)
	for i := range n {
		j := e.submit(t, "cli_a", echoSub(fmt.Sprint(i)))
		p := ids.Partition(j.ID)
		if p < 0 || p >= partitions {
			t.Fatalf("job %s is in partition %d, want one of 0..%d", j.ID, p, partitions-1)
		}
		want[p] = append(want[p], j.ID)
	}
	for p := range partitions {
		if len(want[p]) == 0 {
			// 4·(3/4)^64 ≈ 4e-8: not chance but a submission that ignores the partitions.
			t.Errorf("no job of %d went to partition %d", n, p)
		}
		if got := e.ready(t, p); !slices.Equal(got, want[p]) {
			t.Errorf("ready list of partition %d = %v, want %v", p, got, want[p])
		}
		for i, id := range want[p] {
			if got := e.pop(t, p); got != id {
				t.Fatalf("NextReady #%d of partition %d = %q, want %s", i+1, p, got, id)
			}
		}
	}
}

// One Idempotency-Key of one client always lands in one partition, so that
// a retry finds the first claim, whatever partition a fresh job would get.
func TestSubmitIdempotencyKeyHasOnePartition(t *testing.T) {
	ctx := context.Background()
	const partitions = 4
	e := newEnv(t, nil, withPartitions(partitions))
	used := map[int]bool{}
	for i := range 32 {
		sub := echoSub(`{"n":1}`)
		sub.IdempotencyKey = fmt.Sprintf("key-%d", i)
		first := e.submit(t, "cli_a", sub)
		used[ids.Partition(first.ID)] = true
		for try := range 3 {
			again, created, err := e.svc.Submit(ctx, "cli_a", sub)
			if err != nil || created || again.ID != first.ID {
				t.Fatalf("retry %d of key %q = %s created %v, error %v; want the first job %s", try+1, sub.IdempotencyKey, again.ID, created, err, first.ID)
			}
		}
		other := sub
		other.Payload = json.RawMessage(`{"n":2}`)
		if _, _, err := e.svc.Submit(ctx, "cli_a", other); !errors.Is(err, jobs.ErrIdempotencyConflict) {
			t.Fatalf("key %q with another payload: error %v, want ErrIdempotencyConflict", sub.IdempotencyKey, err)
		}
		theirs, created, err := e.svc.Submit(ctx, "cli_b", sub)
		if err != nil || !created || theirs.ID == first.ID || theirs.ClientID != "cli_b" {
			t.Fatalf("key %q of another client = %+v created %v, error %v; want a new job of cli_b", sub.IdempotencyKey, theirs, created, err)
		}
	}
	if len(used) != partitions {
		t.Errorf("32 keys used partitions %v, want all %d", used, partitions)
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
	for i := range 33 {
		manyKeys[fmt.Sprintf("k%02d", i)] = "v"
	}
	// At the limits: 32 keys of 3 bytes, values of 125 bytes: 4096 bytes.
	atLimits := map[string]string{}
	for i := range 32 {
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
			if created {
				t.Errorf("Submit(%s) rejected the submission but says it created a job", tc.name)
			}
			if ks := e.dataKeys(t); len(ks) != 0 {
				t.Errorf("a rejected submission left keys in Redis: %v", ks)
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

func TestSubmitPayloadAndTypeLimits(t *testing.T) {
	e := newEnv(t, func(r *jobs.Registry) { r.Register("ec", jobs.Echo, time.Second) },
		withLimits(jobs.Limits{MaxPayloadBytes: 10, MaxTypeLength: 4, TypePattern: regexp.MustCompile(`^[a-z]+$`)}))
	tests := []struct {
		name    string
		typ     string
		payload string
		want    []jobs.FieldError
	}{
		{"payload over the limit", "echo", `"0123456789"`, fe("payload", "too-large")},
		{"payload at the limit", "echo", `"01234567"`, nil},
		{"type within the length and pattern", "ec", `1`, nil},
		{"type over the length", "echoo", `1`, fe("type", "too-long")},
		{"type outside the pattern", "ec.o", `1`, fe("type", "invalid")},
	}
	for _, tc := range tests {
		_, _, err := e.svc.Submit(context.Background(), "cli_a", jobs.Submission{Type: tc.typ, Payload: json.RawMessage(tc.payload), CallbackURL: callback})
		var got []jobs.FieldError
		var ve *jobs.ValidationError
		if errors.As(err, &ve) {
			for _, f := range ve.Fields {
				got = append(got, jobs.FieldError{Field: f.Field, Code: f.Code})
			}
		} else if err != nil {
			t.Fatalf("Submit(%s): %v", tc.name, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Submit(%s: type %q, payload %s) fields = %+v, want %+v", tc.name, tc.typ, tc.payload, got, tc.want)
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
		{"same key, callbackUrl in another spelling", "cli_a", func(s *jobs.Submission) { s.CallbackURL = "HTTPS://Hooks.Example.com/boomerang" }, true, nil},
		{"same key, different payload", "cli_a", func(s *jobs.Submission) { s.Payload = json.RawMessage(`{"n":2}`) }, false, jobs.ErrIdempotencyConflict},
		{"same key, payload re-spaced", "cli_a", func(s *jobs.Submission) { s.Payload = json.RawMessage(`{"n": 1}`) }, false, jobs.ErrIdempotencyConflict},
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
			e := newEnv(t, func(r *jobs.Registry) { r.Register("echo2", jobs.Echo, time.Second) }, withPartitions(4))
			first := e.submit(t, "cli_a", base())
			sub := base()
			tc.change(&sub)
			got, created, err := e.svc.Submit(ctx, tc.clientID, sub)
			wantReady := []string{first.ID}
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("second Submit(%s) error = %v, want %v", tc.name, err, tc.wantErr)
				}
			case err != nil:
				t.Fatalf("second Submit(%s): %v", tc.name, err)
			case tc.wantSame:
				if created || got.ID != first.ID || got.Status != jobs.StatusAccepted || got.ClientID != "cli_a" || got.Payload != nil {
					t.Errorf("second Submit(%s) = %+v created %v; want the first job %s without payload, created false", tc.name, got, created, first.ID)
				}
			default:
				if !created || got.ID == first.ID || got.ClientID != tc.clientID {
					t.Errorf("second Submit(%s) = %s of %q created %v; want a new job of %q, not %s", tc.name, got.ID, got.ClientID, created, tc.clientID, first.ID)
				}
				wantReady = append(wantReady, got.ID)
			}
			// Only a job created now is handed to the workers.
			if ready := e.allReady(t); !sameSet(ready, wantReady) {
				t.Errorf("ready jobs after Submit(%s) = %v, want %v", tc.name, ready, wantReady)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// An Idempotency-Key whose job has expired (the key lives 24 h, the job
// only for the retention) cannot return that job: the submission conflicts.
func TestSubmitIdempotencyKeyOfVanishedJob(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, withPartitions(4))
	sub := echoSub(`1`)
	sub.IdempotencyKey = "k"
	j := e.submit(t, "cli_a", sub)
	if n, err := e.rdb.Del(ctx, e.recordKey(j.ID)).Result(); err != nil || n != 1 {
		t.Fatalf("DEL %s = %d, %v; want the record deleted", e.recordKey(j.ID), n, err)
	}
	if _, _, err := e.svc.Submit(ctx, "cli_a", sub); !errors.Is(err, jobs.ErrIdempotencyConflict) {
		t.Errorf("Submit with the key of a vanished job = %v, want ErrIdempotencyConflict", err)
	}
}

func TestSubmitClosedRedisIsUnavailable(t *testing.T) {
	rdb := redistest.Client(t)
	store, err := redisstore.New(context.Background(), rdb, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rdb.Close()
	reg := jobs.NewRegistry()
	reg.Register("echo", jobs.Echo, time.Second)
	svc := jobs.NewService(jobs.ServiceOptions{Store: store, Registry: reg, URLs: egress.Policy{},
		Enqueuer: &fakeEnqueuer{}, Deliverer: &fakeDeliverer{}})
	for _, key := range []string{"", "k"} {
		sub := echoSub(`1`)
		sub.IdempotencyKey = key
		_, _, err := svc.Submit(context.Background(), "cli_a", sub)
		if !errors.Is(err, jobs.ErrUnavailable) {
			t.Errorf("Submit(key %q) over a closed Redis client error = %v, want ErrUnavailable", key, err)
		}
	}
	id := ids.New(ids.Request, t0)
	if _, err := svc.Get(context.Background(), "cli_a", id); err == nil || errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("Get(%s) over a closed Redis client error = %v; want a store error, not ErrNotFound", id, err)
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
		{"cli_a", ids.New(ids.Request, t0), jobs.ErrNotFound},
		{"cli_a", "req_unknown", jobs.ErrNotFound},
		{"cli_a", strings.ToLower(j.ID), jobs.ErrNotFound},
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

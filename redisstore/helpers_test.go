package redisstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/recovery"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/redis/go-redis/v9"
)

// Store implements every store interface the domain declares.
var (
	_ jobs.Store      = (*redisstore.Store)(nil)
	_ jobs.ReadyQueue = (*redisstore.Store)(nil)
	_ webhooks.Store  = (*redisstore.Store)(nil)
	_ clients.Store   = (*redisstore.Store)(nil)
	_ clients.Buckets = (*redisstore.Store)(nil)
	_ recovery.Store  = (*redisstore.Store)(nil)
)

// t0 is when the tests' jobs are created (their ids carry it), with
// nanoseconds, since updatedAt and completedAt keep them.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

const recoverAfter = 30 * time.Second

// newStore returns a Store over a database of this test's own.
func newStore(t testing.TB, o redisstore.Options) (*redisstore.Store, *redis.Client) {
	t.Helper()
	rdb := redistest.Client(t)
	if o.RecoverAfter == 0 {
		o.RecoverAfter = recoverAfter
	}
	s, err := redisstore.New(context.Background(), rdb, o)
	if err != nil {
		t.Fatalf("New(%+v) = %v", o, err)
	}
	return s, rdb
}

// newJob is a job as jobs.Service.Submit makes it: created at at, in
// partition p. Its payload has spacing and escapes a re-encoding would lose.
func newJob(clientID string, at time.Time, p int) jobs.Job {
	return jobs.Job{ID: ids.NewIn(ids.Request, at, p), ClientID: clientID, Type: "echo", Status: jobs.StatusAccepted,
		Payload:     json.RawMessage(`{ "n" : 1,  "html":"<b>&amp;</b>", "esc":"\u00e9\u2028", "big": 12345678901234567890 }`),
		CallbackURL: "https://hooks.example.com/in?a=1&b=<2>", Metadata: map[string]string{"order": "42", "note": "<b>&</b> é"},
		CreatedAt: at.Truncate(time.Millisecond), UpdatedAt: at}
}

// create stores a new job.
func create(t testing.TB, s *redisstore.Store, j jobs.Job) jobs.Job {
	t.Helper()
	prior, _, err := s.CreateJob(context.Background(), j, nil)
	if err != nil || prior != "" {
		t.Fatalf("CreateJob(%s) = %q, %v; want it created", j.ID, prior, err)
	}
	return j
}

const lease = 30 * time.Second

// claim claims a job at now under a lease, as jobs.Service.Run does.
func claim(t testing.TB, s *redisstore.Store, id string, now time.Time) jobs.Job {
	t.Helper()
	j, err := s.ClaimJob(context.Background(), id, now, now.Add(lease))
	if err != nil {
		t.Fatalf("ClaimJob(%s, %v) = %v", id, now, err)
	}
	return j
}

// completed is a claimed job as jobs.Service.Run ends it at done, with the
// message it hands FinishJob.
func completed(t testing.TB, j jobs.Job, result string, done time.Time) (jobs.Job, webhooks.Message) {
	t.Helper()
	j.Status, j.Result, j.UpdatedAt, j.CompletedAt, j.DeliveryID = jobs.StatusCompleted, json.RawMessage(result), done, &done, jobs.DeliveryID(j.ID)
	return j, message(t, j)
}

// failed is a claimed job as jobs.Service.fail ends it at done.
func failed(t testing.TB, j jobs.Job, code string, done time.Time) (jobs.Job, webhooks.Message) {
	t.Helper()
	j.Status, j.Error, j.LastError = jobs.StatusFailed, &jobs.Error{Code: code, Message: "it <broke> & stayed broken"}, nil
	j.UpdatedAt, j.CompletedAt, j.DeliveryID = done, &done, jobs.DeliveryID(j.ID)
	return j, message(t, j)
}

func message(t testing.TB, j jobs.Job) webhooks.Message {
	t.Helper()
	body, err := jobs.WebhookBody(j)
	if err != nil {
		t.Fatalf("WebhookBody(%s) = %v", j.ID, err)
	}
	event := jobs.EventCompleted
	if j.Status == jobs.StatusFailed {
		event = jobs.EventFailed
	}
	return webhooks.Message{ID: j.DeliveryID, RequestID: j.ID, ClientID: j.ClientID, EventType: event, URL: j.CallbackURL, Body: body}
}

// finish records a job's outcome and returns its new delivery.
func finish(t testing.TB, s *redisstore.Store, j jobs.Job, m webhooks.Message) webhooks.Delivery {
	t.Helper()
	d, err := s.FinishJob(context.Background(), j, m)
	if err != nil {
		t.Fatalf("FinishJob(%s, %s) = %v", j.ID, j.Status, err)
	}
	return d
}

// delivery creates a job at at in partition p, runs it and finishes it
// COMPLETED a second later: its delivery is PENDING with no attempt.
func delivery(t testing.TB, s *redisstore.Store, clientID string, at time.Time, p int) webhooks.Delivery {
	t.Helper()
	j := claim(t, s, create(t, s, newJob(clientID, at, p)).ID, at.Add(time.Millisecond))
	done, m := completed(t, j, `{"ok":true}`, at.Add(time.Second))
	return finish(t, s, done, m)
}

// attempt is attempt n of d as webhooks.Dispatcher.send describes it:
// started at start, answered 503 (PENDING, retried at next) or 204.
func attempt(d webhooks.Delivery, n int, start time.Time, ok bool) webhooks.Attempt {
	a := webhooks.Attempt{Number: n, StartedAt: start, DurationMs: 12, URL: d.URL, Signatures: 1,
		RequestHeaders: webhooks.RequestHeaders(d, start.Unix(), "Boomerang/test", 1)}
	if ok {
		a.StatusCode, a.Outcome = 204, webhooks.OutcomeDelivered
		a.ResponseHeaders = map[string]string{"Date": "Sun, 01 Mar 2026 12:00:00 GMT"}
		return a
	}
	next := start.Add(time.Minute)
	a.StatusCode, a.ErrorClass, a.Error, a.Outcome, a.NextAttemptAt = 503, webhooks.ClassStatus, "receiver answered 503", webhooks.OutcomeRetry, &next
	a.ResponseHeaders = map[string]string{"Retry-After": "60", "Content-Type": "text/plain; charset=utf-8"}
	a.ResponseBody = "busy <try later> é"
	return a
}

// getDelivery reads a delivery, failing the test if it cannot.
func getDelivery(t testing.TB, s *redisstore.Store, id string, withAttempts bool) webhooks.Delivery {
	t.Helper()
	d, err := s.GetDelivery(context.Background(), id, withAttempts)
	if err != nil {
		t.Fatalf("GetDelivery(%s) = %v", id, err)
	}
	return d
}

func getJob(t testing.TB, s *redisstore.Store, id string) jobs.Job {
	t.Helper()
	j, err := s.GetJob(context.Background(), id)
	if err != nil {
		t.Fatalf("GetJob(%s) = %v", id, err)
	}
	return j
}

// keyOf is the name of a key of id's partition, e.g. keyOf(s, id, "due").
func keyOf(s *redisstore.Store, id, suffix string) string {
	return "bmr:{" + s.Tags()[ids.Partition(id)] + "}:" + suffix
}

// recordKey is the key of the record of a job (or of its delivery).
func recordKey(s *redisstore.Store, id string) string { return keyOf(s, id, "r:"+ids.Body(id)) }

// score is a member's score in a sorted set; ok is false if it is not there.
func score(t testing.TB, rdb *redis.Client, key, member string) (int64, bool) {
	t.Helper()
	v, err := rdb.ZScore(context.Background(), key, member).Result()
	if errors.Is(err, redis.Nil) {
		return 0, false
	}
	if err != nil {
		t.Fatalf("ZSCORE %s %s: %v", key, member, err)
	}
	return int64(v), true
}

// dueAt is when recovery will look at a job: its score in the partition's
// due set.
func dueAt(t testing.TB, s *redisstore.Store, rdb *redis.Client, id string) (time.Time, bool) {
	t.Helper()
	ms, ok := score(t, rdb, keyOf(s, id, "due"), ids.Body(id))
	return time.UnixMilli(ms).UTC(), ok
}

// snapshot is every key of the database with its value and expiry time,
// to show that an operation wrote nothing.
func snapshot(t testing.TB, rdb *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		switch typ {
		case "string":
			v, err = rdb.Get(ctx, k).Result()
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "set":
			var m []string
			m, err = rdb.SMembers(ctx, k).Result()
			slices.Sort(m)
			v = m
		default:
			t.Fatalf("snapshot: key %s of type %s", k, typ)
		}
		if err != nil {
			t.Fatalf("snapshot: read %s: %v", k, err)
		}
		exp, err := rdb.PExpireTime(ctx, k).Result()
		if err != nil {
			t.Fatalf("PEXPIRETIME %s: %v", k, err)
		}
		out[k] = fmt.Sprintf("%s %v expires %v", typ, v, exp)
	}
	return out
}

// unchanged fails the test if the database differs from before.
func unchanged(t testing.TB, rdb *redis.Client, before map[string]string, what string) {
	t.Helper()
	after := snapshot(t, rdb)
	if maps.Equal(before, after) {
		return
	}
	var diff []string
	for k := range before {
		if after[k] != before[k] {
			diff = append(diff, k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diff = append(diff, k+" (new)")
		}
	}
	slices.Sort(diff)
	t.Errorf("%s wrote to Redis; changed keys: %s", what, strings.Join(diff, ", "))
}

// sameJob compares jobs field by field: payload and result byte for byte,
// times to the nanosecond.
func sameJob(got, want jobs.Job) string {
	var diffs []string
	if !bytes.Equal(got.Payload, want.Payload) {
		diffs = append(diffs, fmt.Sprintf("payload %q, want %q", got.Payload, want.Payload))
	}
	if !bytes.Equal(got.Result, want.Result) {
		diffs = append(diffs, fmt.Sprintf("result %q, want %q", got.Result, want.Result))
	}
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) || !sameTime(got.CompletedAt, want.CompletedAt) {
		diffs = append(diffs, fmt.Sprintf("times created %v updated %v completed %v, want %v %v %v",
			got.CreatedAt, got.UpdatedAt, fmtPtr(got.CompletedAt), want.CreatedAt, want.UpdatedAt, fmtPtr(want.CompletedAt)))
	}
	got.Payload, got.Result, got.CreatedAt, got.UpdatedAt, got.CompletedAt = nil, nil, time.Time{}, time.Time{}, nil
	want.Payload, want.Result, want.CreatedAt, want.UpdatedAt, want.CompletedAt = nil, nil, time.Time{}, time.Time{}, nil
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		diffs = append(diffs, fmt.Sprintf("got %s\nwant %s", g, w))
	}
	return strings.Join(diffs, "; ")
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func fmtPtr(t *time.Time) string {
	if t == nil {
		return "nil"
	}
	return t.Format(time.RFC3339Nano)
}

// asJSON is a value as JSON, for comparisons that say what differs.
func asJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

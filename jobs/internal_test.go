package jobs

import (
	"context"
	"errors"
	"github.com/boomerang-dev/boomerang/ids"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/timeindex"
)

func TestValidationErrorText(t *testing.T) {
	tests := []struct {
		err  *ValidationError
		want string
	}{
		{&ValidationError{}, "invalid submission"},
		{&ValidationError{Fields: []FieldError{{"type", "required", "type is required"}, {"metadata", "invalid", "x"}}},
			"invalid submission: type: type is required"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%+v.Error() = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestParseClaim(t *testing.T) {
	tests := []struct{ in, id, hash string }{
		{"req_1 abc", "req_1", "abc"},
		{"req_1", "req_1", ""},
		{"", "", ""},
	}
	for _, tc := range tests {
		if id, hash := parseClaim(tc.in); id != tc.id || hash != tc.hash {
			t.Errorf("parseClaim(%q) = %q, %q; want %q, %q", tc.in, id, hash, tc.id, tc.hash)
		}
	}
}

func TestExcerpt(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"empty", 404, "", "404"},
		{"blank", 404, " \n\t", "404"},
		{"short", 404, " not here \n", "404: not here"},
		{"long ASCII", 500, strings.Repeat("a", 600), "500: " + strings.Repeat("a", 512)},
		{"rune cut at the limit", 500, strings.Repeat("a", 511) + "é", "500: " + strings.Repeat("a", 511)},
		{"3-byte rune cut at the limit", 500, strings.Repeat("a", 510) + "€", "500: " + strings.Repeat("a", 510)},
		{"4-byte rune cut after 3 bytes", 500, strings.Repeat("a", 509) + "😀", "500: " + strings.Repeat("a", 509)},
		{"4-byte rune cut after 1 byte", 500, strings.Repeat("a", 511) + "😀", "500: " + strings.Repeat("a", 511)},
		{"whole rune at the limit", 500, strings.Repeat("a", 510) + "é" + "zz", "500: " + strings.Repeat("a", 510) + "é"},
		{"invalid byte early, long body", 404, "bad \xff byte " + strings.Repeat("b", 600), "404: bad \uFFFD byte " + strings.Repeat("b", 512-11)},
		{"invalid byte, short body", 404, "caf\xe9", "404: caf\uFFFD"},
		{"invalid byte at the limit", 404, strings.Repeat("a", 511) + "\xff" + "zz", "404: " + strings.Repeat("a", 511) + "\uFFFD"},
	}
	for _, tc := range tests {
		if got := excerpt(tc.status, []byte(tc.body)); got != tc.want {
			t.Errorf("excerpt(%s) = %q, want %q", tc.name, trunc(got), trunc(tc.want))
		}
	}
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:20] + "..." + s[len(s)-20:]
	}
	return s
}

func TestClaim(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	s := NewStore(rdb, time.Hour)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	j := Job{ID: ids.New(ids.Request, now), ClientID: "cli_a", Type: "echo", CreatedAt: now, CallbackURL: "https://x.example.com/"}
	if _, err := s.create(ctx, j, idem{}); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 2; want++ {
		got, err := s.claim(ctx, j.ID, now.Add(time.Minute))
		if err != nil || got.Status != StatusProcessing || got.Attempts != want || got.Type != "echo" || !got.UpdatedAt.Equal(now.Add(time.Minute)) {
			t.Fatalf("claim #%d = %+v, %v; want PROCESSING with attempts %d", want, got, err, want)
		}
	}
	for _, key := range []string{"bmr:job:idx:s:PROCESSING", "bmr:job:idx:c:cli_a:s:PROCESSING"} {
		if n := rdb.ZCard(ctx, key).Val(); n != 1 {
			t.Errorf("%s holds %d entries, want 1 (the client was read from the job)", key, n)
		}
	}
	if n := rdb.ZCard(ctx, "bmr:job:idx:s:ACCEPTED").Val(); n != 0 {
		t.Errorf("the ACCEPTED index still holds %d entries", n)
	}
	done := now.Add(2 * time.Minute)
	j.Status, j.Attempts, j.UpdatedAt, j.CompletedAt, j.Result = StatusCompleted, 2, done, &done, []byte(`1`)
	u := s.finishUpdate(j)
	if _, err := u.Family.Transition(ctx, rdb, u.Change); err != nil {
		t.Fatal(err)
	}
	got, err := s.claim(ctx, j.ID, done)
	if !errors.Is(err, timeindex.ErrWrongStatus) || got.Status != StatusCompleted || got.Attempts != 2 {
		t.Errorf("claim of a finished job = %+v, %v; want it unchanged with ErrWrongStatus", got, err)
	}
	for _, id := range []string{"req_unknown0000000000000000", "nope", ""} {
		if _, err := s.claim(ctx, id, now); !errors.Is(err, ErrNotFound) {
			t.Errorf("claim(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if isStale(nil) || isStale(errors.New("x")) || !isStale(timeindex.ErrGuard) {
		t.Error("isStale misjudges")
	}
}

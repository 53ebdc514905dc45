package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
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

func TestStartWithStaleAttemptsIsStale(t *testing.T) {
	ctx := context.Background()
	s := NewStore(redistest.Client(t), time.Hour)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	j := Job{ID: "req_stale", ClientID: "cli_a", Type: "echo", CreatedAt: now, CallbackURL: "https://x.example.com/"}
	if _, err := s.create(ctx, j, idem{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		attempts  int // what the runner believes
		wantStale bool
	}{
		{3, true},  // another runner counted differently
		{0, false}, // matches: starts
		{0, true},  // now attempts is 1
	}
	for i, tc := range tests {
		j.Attempts = tc.attempts
		err := s.start(ctx, j, now)
		if isStale(err) != tc.wantStale || (!tc.wantStale && err != nil) {
			t.Errorf("start #%d with attempts %d = %v; want stale %v", i+1, tc.attempts, err, tc.wantStale)
		}
	}
	if isStale(nil) || isStale(errors.New("x")) {
		t.Error("isStale accepted a non-stale error")
	}
}

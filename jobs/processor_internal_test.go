package jobs

import (
	"strings"
	"testing"
)

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
			t.Errorf("excerpt(%s) = %q, want %q", tc.name, shorten(got), shorten(tc.want))
		}
	}
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:20] + "..." + s[len(s)-20:]
	}
	return s
}

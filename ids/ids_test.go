package ids_test

import (
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
)

func TestNewIsValidAndCarriesItsTime(t *testing.T) {
	now := time.Date(2026, 12, 1, 2, 3, 4, 5_000_000, time.UTC)
	for _, p := range []string{ids.Request, ids.Delivery, ids.Client, ids.Key, ids.Replay} {
		id := ids.New(p, now)
		if !ids.Valid(p, id) {
			t.Errorf("New(%q) = %q, which Valid refuses", p, id)
		}
		if got, ok := ids.Time(p, id); !ok || !got.Equal(now.Truncate(time.Millisecond)) {
			t.Errorf("Time(%q) = %v, %v; want %v", id, got, ok, now)
		}
	}
	a, b := ids.New(ids.Request, now), ids.New(ids.Request, now.Add(time.Millisecond))
	if a >= b {
		t.Errorf("ids do not sort by time: %s >= %s", a, b)
	}
}

func TestValid(t *testing.T) {
	good := "req_01JD3M4X2Z8QK3V9W7T5N6P4R2"
	tests := []struct {
		prefix, id string
		want       bool
	}{
		{ids.Request, good, true},
		{ids.Delivery, "msg_01JD3M4X2Z8QK3V9W7T5N6P4R2", true},
		{ids.Delivery, good, false},                                     // wrong kind
		{ids.Request, "req_01jd3m4x2z8qk3v9w7t5n6p4r2", false},          // lower case
		{ids.Request, "req_01JD3M4X2Z8QK3V9W7T5N6P4R", false},           // short
		{ids.Request, "req_01JD3M4X2Z8QK3V9W7T5N6P4R22", false},         // long
		{ids.Request, "req_01JD3M4X2Z8QK3V9W7T5N6P4RU", false},          // U is not Crockford
		{ids.Request, "req_81JD3M4X2Z8QK3V9W7T5N6P4R2", false},          // time beyond 48 bits
		{ids.Request, "idx:c:cli_01JD3M4X2Z8QK3V9W7T5N6P4", false},      // a Redis key
		{ids.Request, "req_01JD3M4X2Z8QK3V9W7T5N6P4R2:attempts", false}, // a suffix
		{ids.Request, "", false},
		{ids.Request, "req_" + strings.Repeat("Z", 26), false},
	}
	for _, tc := range tests {
		if got := ids.Valid(tc.prefix, tc.id); got != tc.want {
			t.Errorf("Valid(%q, %q) = %v, want %v", tc.prefix, tc.id, got, tc.want)
		}
	}
}

func TestNewIDIsUniqueAndSorted(t *testing.T) {
	seen := map[string]bool{}
	now := time.Now()
	prev := ""
	for i := 0; i < 1000; i++ {
		id := ids.New(ids.Request, now.Add(time.Duration(i)*time.Millisecond))
		if !strings.HasPrefix(id, "req_") || len(id) != 4+ids.TimeLen+16 {
			t.Fatalf("NewID = %q, want req_ + 26 characters", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		if id <= prev {
			t.Fatalf("NewID %q does not sort after %q", id, prev)
		}
		seen[id], prev = true, id
	}
}

func TestPartition(t *testing.T) {
	now := time.Now()
	for _, p := range []int{0, 1, 7, 31, 32, 1023} {
		id := ids.NewIn(ids.Request, now, p)
		if !ids.Valid(ids.Request, id) || ids.Partition(id) != p {
			t.Errorf("NewIn(p=%d) = %s: valid %v, partition %d", p, id, ids.Valid(ids.Request, id), ids.Partition(id))
		}
		msg := ids.Delivery + ids.Body(id)
		if ids.Partition(msg) != p {
			t.Errorf("the delivery id %s of %s is in partition %d, want %d", msg, id, ids.Partition(msg), p)
		}
	}
}

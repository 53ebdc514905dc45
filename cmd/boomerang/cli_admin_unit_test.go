package main

import (
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/apiclient"
)

func TestProgressLine(t *testing.T) {
	tests := []struct {
		r    apiclient.BulkReplay
		bar  bool
		want string
	}{
		{apiclient.BulkReplay{ID: "rpl_1", State: "running", Matched: 10, Replayed: 5}, true, "[###############...............]  50% 5/10 replayed, 0 skipped (running)"},
		{apiclient.BulkReplay{ID: "rpl_1", State: "done", Matched: 4, Replayed: 3, Skipped: 1}, true, "[##############################] 100% 3/4 replayed, 1 skipped (done)"},
		{apiclient.BulkReplay{ID: "rpl_1", State: "done"}, true, "[##############################] 100% 0/0 replayed, 0 skipped (done)"},
		{apiclient.BulkReplay{ID: "rpl_1", State: "running", Matched: 10, Replayed: 5}, false, "replay rpl_1: 5/10 replayed, 0 skipped (running)"},
	}
	for _, tc := range tests {
		if got := progressLine(tc.r, tc.bar); got != tc.want {
			t.Errorf("progressLine(%+v, bar %v)\n got %q\nwant %q", tc.r, tc.bar, got, tc.want)
		}
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{"", time.Time{}, ""},
		{"2026-11-30T08:00:00Z", time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC), ""},
		{"2h", now.Add(-2 * time.Hour), ""},
		{"yesterday", time.Time{}, "--since: \"yesterday\" is neither"},
		{"-2h", time.Time{}, "neither"},
	}
	for _, tc := range tests {
		got, err := parseWhen("since", tc.in, now)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v, error %q", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

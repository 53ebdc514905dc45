package timeindex_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/timeindex"
)

func TestPrefixOrdersLikeTime(t *testing.T) {
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	times := []time.Time{base, base.Add(time.Millisecond), base.Add(time.Second), base.Add(1000 * time.Hour), time.UnixMilli(0), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, a := range times {
		for _, b := range times {
			pa, pb := timeindex.Prefix(a), timeindex.Prefix(b)
			if (pa < pb) != a.Before(b) {
				t.Errorf("Prefix(%v)=%q, Prefix(%v)=%q: order differs from time order", a, pa, b, pb)
			}
		}
		got, ok := timeindex.PrefixTime(timeindex.Prefix(a))
		if !ok || !got.Equal(a) {
			t.Errorf("PrefixTime(Prefix(%v)) = %v, %v", a, got, ok)
		}
	}
	if _, ok := timeindex.PrefixTime("short"); ok {
		t.Error("PrefixTime accepted a short string")
	}
	if _, ok := timeindex.PrefixTime("!!!!!!!!!!"); ok {
		t.Error("PrefixTime accepted characters outside the alphabet")
	}
}

func TestCursorRejectsGarbage(t *testing.T) {
	for _, c := range []string{"%%%", "YWJj", timeindex.EncodeCursor("!!!!!!!!!!x")} {
		if _, err := timeindex.DecodeCursor(c); err == nil {
			t.Errorf("DecodeCursor(%q) accepted garbage", c)
		}
	}
}

func TestPageWalksNewestFirstWithWindow(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const key = "test:idx"
	var all []string
	for i := 0; i < 25; i++ {
		id := fmt.Sprintf("id%02d", i)
		at := base.Add(time.Duration(i/2) * time.Second) // pairs share a timestamp
		if err := rdb.ZAdd(ctx, key, redisZ(timeindex.Member(at, id))).Err(); err != nil {
			t.Fatal(err)
		}
		all = append(all, id)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(all)))

	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		ids, next, err := timeindex.Page(ctx, rdb, key, timeindex.Query{Limit: 7, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids...)
		if next == "" {
			break
		}
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		cursor = next
	}
	if strings.Join(got, ",") != strings.Join(all, ",") {
		t.Fatalf("pages gave %v, want %v", got, all)
	}

	ids, _, err := timeindex.Page(ctx, rdb, key, timeindex.Query{Since: base.Add(2 * time.Second), Until: base.Add(4 * time.Second), Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if want := "id07,id06,id05,id04"; strings.Join(ids, ",") != want {
		t.Fatalf("window [2s,4s) gave %v, want %s", ids, want)
	}
	if _, _, err := timeindex.Page(ctx, rdb, key, timeindex.Query{Cursor: "!!"}); err == nil {
		t.Fatal("Page accepted a malformed cursor")
	}
}

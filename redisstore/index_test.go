package redisstore_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/page"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// listed is a job of the listing fixture and what became of it.
type listed struct {
	job        jobs.Job
	status     jobs.Status
	dlv        webhooks.Status // "" without a delivery
	dlvCreated time.Time
}

// listingFixture stores n jobs over three clients and four partitions,
// created a second apart, in every state a job and a delivery can be in.
// Deliveries are created in another order than their jobs.
func listingFixture(t *testing.T, s *redisstore.Store, n int) []listed {
	t.Helper()
	ctx := context.Background()
	clientIDs := []string{"cli_a", "cli_b", "cli_c"}
	var out []listed
	for i := range n {
		created := t0.Add(time.Duration(i)*time.Second + time.Duration(i%5)*time.Microsecond)
		j := create(t, s, newJob(clientIDs[(i/2+i/5)%3], created, (i+i/3)%s.Partitions()))
		l := listed{job: j, status: jobs.StatusAccepted}
		k := i % 8
		if k == 0 {
			out = append(out, l)
			continue
		}
		c := claim(t, s, j.ID, created.Add(time.Millisecond))
		l.status = jobs.StatusProcessing
		if k == 1 {
			out = append(out, l)
			continue
		}
		if k == 2 {
			c.LastError = &jobs.Error{Code: "x", Message: "retry"}
			if err := s.RetryJob(ctx, c, created.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			out = append(out, l)
			continue
		}
		// Deliveries are created an hour on, in a shuffled order (37 and
		// n share no factor, so the times are distinct).
		done := t0.Add(time.Hour + time.Duration((i*37)%n)*time.Second + time.Duration(i%3)*time.Millisecond + 400*time.Microsecond)
		var fin jobs.Job
		var m webhooks.Message
		if k == 5 || k == 6 {
			fin, m = failed(t, c, "boom", done)
			l.status = jobs.StatusFailed
		} else {
			fin, m = completed(t, c, `{"i":1}`, done)
			l.status = jobs.StatusCompleted
		}
		d := finish(t, s, fin, m)
		l.dlv, l.dlvCreated = webhooks.StatusPending, d.CreatedAt
		switch k {
		case 4:
			l.dlv = webhooks.StatusDelivered
			if err := s.RecordAttempt(ctx, d, attempt(d, 1, done, true), webhooks.StatusDelivered); err != nil {
				t.Fatal(err)
			}
		case 6, 7:
			l.dlv = webhooks.StatusFailed
			a := attempt(d, 1, done, false)
			a.NextAttemptAt = nil
			if err := s.RecordAttempt(ctx, d, a, webhooks.StatusFailed); err != nil {
				t.Fatal(err)
			}
			if k == 7 && i%16 == 7 { // and some are replayed: PENDING again
				l.dlv = webhooks.StatusPending
				if _, err := s.ReopenDelivery(ctx, d.ID, done.Add(time.Hour), ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		out = append(out, l)
	}
	return out
}

// collect pages through a listing to its end, checking that every page but
// the last is full.
func collect[T any](t *testing.T, what string, limit int, list func(limit int, cursor string) ([]T, string, error)) []T {
	t.Helper()
	var all []T
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("%s: more than 1000 pages of %d", what, limit)
		}
		items, next, err := list(limit, cursor)
		if err != nil {
			t.Fatalf("%s: page %d: %v", what, pages, err)
		}
		if len(items) > limit || (next != "" && len(items) != limit) {
			t.Errorf("%s: page %d has %d items with next cursor %q; want %d (a short page only at the end)", what, pages, len(items), next, limit)
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

func TestListJobsAcrossPartitions(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, redisstore.Options{Partitions: 4})
	ctx := context.Background()
	fix := listingFixture(t, s, 300)
	byID := map[string]listed{}
	for _, l := range fix {
		byID[l.job.ID] = l
	}
	for _, client := range []string{"", "cli_a", "cli_b", "cli_c", "cli_none"} {
		for _, status := range []jobs.Status{"", jobs.StatusAccepted, jobs.StatusProcessing, jobs.StatusCompleted, jobs.StatusFailed} {
			f := jobs.Filter{Status: status, ClientID: client}
			var want []string // newest first, computed from the fixture
			for i := len(fix) - 1; i >= 0; i-- {
				if (client == "" || fix[i].job.ClientID == client) && (status == "" || fix[i].status == status) {
					want = append(want, fix[i].job.ID)
				}
			}
			for _, limit := range []int{1, 7, 50} {
				what := fmt.Sprintf("ListJobs(%+v, limit %d)", f, limit)
				got := collect(t, what, limit, func(limit int, cursor string) ([]jobs.Job, string, error) {
					return s.ListJobs(ctx, f, limit, cursor)
				})
				var gotIDs []string
				for _, j := range got {
					gotIDs = append(gotIDs, j.ID)
					l := byID[j.ID]
					if j.Status != l.status || j.ClientID != l.job.ClientID || j.Payload != nil || j.Result != nil || !j.CreatedAt.Equal(l.job.CreatedAt) {
						t.Errorf("%s: %s listed as %s of %s created %v with payload %q result %q; want %s of %s created %v, no payload or result",
							what, j.ID, j.Status, j.ClientID, j.CreatedAt, j.Payload, j.Result, l.status, l.job.ClientID, l.job.CreatedAt)
					}
				}
				if !slices.Equal(gotIDs, want) {
					t.Errorf("%s: %d jobs\n%s\nwant %d\n%s", what, len(gotIDs), strings.Join(gotIDs, " "), len(want), strings.Join(want, " "))
				}
			}
		}
	}
}

func TestListDeliveriesAcrossPartitions(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, redisstore.Options{Partitions: 4})
	ctx := context.Background()
	fix := listingFixture(t, s, 300)
	var withDlv []listed
	for _, l := range fix {
		if l.dlv != "" {
			withDlv = append(withDlv, l)
		}
	}
	slices.SortFunc(withDlv, func(a, b listed) int { return b.dlvCreated.Compare(a.dlvCreated) }) // newest first
	// Windows with bounds between milliseconds: a delivery created at .123
	// is before 12:00:00.1235 and not at or after it.
	mid := withDlv[len(withDlv)/2].dlvCreated
	windows := []struct{ since, until time.Time }{
		{},
		{since: mid},
		{until: mid},
		{since: mid.Add(500 * time.Microsecond)},
		{until: mid.Add(500 * time.Microsecond)},
		{since: t0.Add(time.Hour + 50*time.Second), until: t0.Add(time.Hour + 120*time.Second + 1)},
		{since: t0.Add(2 * time.Hour), until: t0.Add(3 * time.Hour)}, // none
	}
	for _, w := range windows {
		for _, client := range []string{"", "cli_a", "cli_c"} {
			for _, status := range []webhooks.Status{"", webhooks.StatusPending, webhooks.StatusDelivered, webhooks.StatusFailed} {
				f := webhooks.Filter{Status: status, ClientID: client, Since: w.since, Until: w.until}
				var want []string
				for _, l := range withDlv {
					if (client == "" || l.job.ClientID == client) && (status == "" || l.dlv == status) &&
						(w.since.IsZero() || !l.dlvCreated.Before(w.since)) && (w.until.IsZero() || l.dlvCreated.Before(w.until)) {
						want = append(want, jobs.DeliveryID(l.job.ID))
					}
				}
				for _, limit := range []int{1, 7, 50} {
					what := fmt.Sprintf("ListDeliveries(%s %s %v–%v, limit %d)", status, client, w.since, w.until, limit)
					got := collect(t, what, limit, func(limit int, cursor string) ([]webhooks.Delivery, string, error) {
						return s.ListDeliveries(ctx, f, limit, cursor)
					})
					var gotIDs []string
					for _, d := range got {
						gotIDs = append(gotIDs, d.ID)
						if d.Payload != nil || d.AttemptLog != nil {
							t.Errorf("%s: %s listed with its body or log", what, d.ID)
						}
						if status != "" && d.Status != status {
							t.Errorf("%s: %s is %s", what, d.ID, d.Status)
						}
					}
					if !slices.Equal(gotIDs, want) {
						t.Errorf("%s: %d deliveries\n%s\nwant %d\n%s", what, len(gotIDs), strings.Join(gotIDs, " "), len(want), strings.Join(want, " "))
					}
				}
				if n, err := s.CountDeliveries(ctx, f); err != nil || n != int64(len(want)) {
					t.Errorf("CountDeliveries(%s %s %v–%v) = %d, %v; want %d", status, client, w.since, w.until, n, err, len(want))
				}
			}
		}
	}
}

func TestBadCursors(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, redisstore.Options{Partitions: 2})
	ctx := context.Background()
	listingFixture(t, s, 10)
	b64 := base64.RawURLEncoding.EncodeToString
	for _, c := range []string{
		"!!!", "a", b64([]byte("short")),
		b64([]byte(strings.Repeat("z", ids.Len))), // not Crockford
		b64([]byte("U" + strings.Repeat("0", ids.Len-1))),
		base64.StdEncoding.EncodeToString([]byte(strings.Repeat("0", ids.Len))) + "==",
	} {
		if _, _, err := s.ListJobs(ctx, jobs.Filter{}, 5, c); !errors.Is(err, page.ErrBadCursor) {
			t.Errorf("ListJobs(cursor %q) = %v, want page.ErrBadCursor", c, err)
		}
		if _, _, err := s.ListJobs(ctx, jobs.Filter{Status: jobs.StatusAccepted}, 5, c); !errors.Is(err, page.ErrBadCursor) {
			t.Errorf("ListJobs(ACCEPTED, cursor %q) = %v, want page.ErrBadCursor", c, err)
		}
		if _, _, err := s.ListDeliveries(ctx, webhooks.Filter{Status: webhooks.StatusFailed}, 5, c); !errors.Is(err, page.ErrBadCursor) {
			t.Errorf("ListDeliveries(cursor %q) = %v, want page.ErrBadCursor", c, err)
		}
		if _, _, err := s.ListClients(ctx, 5, c); !errors.Is(err, page.ErrBadCursor) {
			t.Errorf("ListClients(cursor %q) = %v, want page.ErrBadCursor", c, err)
		}
	}
	// A cursor of one listing works in another: it is a position in time.
	_, next, err := s.ListJobs(ctx, jobs.Filter{}, 3, "")
	if err != nil || next == "" {
		t.Fatalf("ListJobs = %q, %v", next, err)
	}
	if _, _, err := s.ListDeliveries(ctx, webhooks.Filter{}, 3, next); err != nil {
		t.Errorf("ListDeliveries with a job listing's cursor = %v, want a page", err)
	}
}

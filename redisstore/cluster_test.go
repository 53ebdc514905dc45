package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// TestClusterJobPath runs the whole job path on a 3-master Redis Cluster
// with 16 partitions: every script touches one slot (a CROSSSLOT error
// fails the test), listings merge partitions that live on different
// masters, and the keys spread evenly over the masters.
func TestClusterJobPath(t *testing.T) {
	testkit.Long(t)
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	rdb := c.Client(t)
	ctx := context.Background()
	const partitions, n = 16, 3000
	s, err := redisstore.New(ctx, rdb, redisstore.Options{Partitions: partitions, RecoverAfter: recoverAfter})
	if err != nil {
		t.Fatalf("New on a cluster = %v", err)
	}
	clientIDs := []string{"cli_a", "cli_b", "cli_c", "cli_d", "cli_e"}
	base := time.Now().UTC().Truncate(time.Second)

	// What each job i becomes.
	jobStatus := func(i int) jobs.Status {
		if i%7 == 0 {
			return jobs.StatusFailed
		}
		return jobs.StatusCompleted
	}
	dlvStatus := func(i int) webhooks.Status {
		switch {
		case i%5 == 0:
			return webhooks.StatusFailed
		case i%11 == 0:
			return webhooks.StatusPending // retried later
		}
		return webhooks.StatusDelivered
	}

	// One worker per partition creates its jobs, then runs them as the
	// runner and the dispatcher do.
	jobIDs := make([]string, n)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, partitions)
	for p := range partitions {
		wg.Go(func() {
			if err := runPartition(ctx, s, p, partitions, n, base, clientIDs, jobIDs, jobStatus, dlvStatus); err != nil {
				errs <- fmt.Errorf("partition %d: %w", p, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err) // a CROSSSLOT error would be here
	}
	t.Logf("%d jobs created, run and delivered over %d partitions in %v", n, partitions, time.Since(start))

	// Listings merge the 16 partitions, newest first.
	all := collect(t, "ListJobs", 500, func(limit int, cursor string) ([]jobs.Job, string, error) {
		return s.ListJobs(ctx, jobs.Filter{}, limit, cursor)
	})
	want := slices.Clone(jobIDs)
	slices.Sort(want)
	slices.Reverse(want)
	var got []string
	for _, j := range all {
		got = append(got, j.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("ListJobs over the cluster: %d jobs, want all %d newest first", len(got), len(want))
	}
	count := func(f func(i int) bool) (k int) {
		for i := range n {
			if f(i) {
				k++
			}
		}
		return k
	}
	for _, tc := range []struct {
		f    jobs.Filter
		want int
	}{
		{jobs.Filter{Status: jobs.StatusFailed}, count(func(i int) bool { return jobStatus(i) == jobs.StatusFailed })},
		{jobs.Filter{Status: jobs.StatusCompleted, ClientID: "cli_b"}, count(func(i int) bool { return i%5 == 1 && jobStatus(i) == jobs.StatusCompleted })},
	} {
		l := collect(t, "ListJobs", 100, func(limit int, cursor string) ([]jobs.Job, string, error) {
			return s.ListJobs(ctx, tc.f, limit, cursor)
		})
		if len(l) != tc.want {
			t.Errorf("ListJobs(%+v) over the cluster: %d jobs, want %d", tc.f, len(l), tc.want)
		}
	}
	for _, tc := range []struct {
		f    webhooks.Filter
		want int
	}{
		{webhooks.Filter{}, n},
		{webhooks.Filter{Status: webhooks.StatusFailed}, count(func(i int) bool { return dlvStatus(i) == webhooks.StatusFailed })},
		{webhooks.Filter{Status: webhooks.StatusPending, ClientID: "cli_b"}, count(func(i int) bool { return i%5 == 1 && dlvStatus(i) == webhooks.StatusPending })},
		{webhooks.Filter{Status: webhooks.StatusDelivered, Since: base.Add(time.Hour)}, 0},
	} {
		l := collect(t, "ListDeliveries", 200, func(limit int, cursor string) ([]webhooks.Delivery, string, error) {
			return s.ListDeliveries(ctx, tc.f, limit, cursor)
		})
		cnt, err := s.CountDeliveries(ctx, tc.f)
		if len(l) != tc.want || cnt != int64(tc.want) || err != nil {
			t.Errorf("ListDeliveries(%+v) over the cluster: %d, CountDeliveries %d, %v; want %d", tc.f, len(l), cnt, err, tc.want)
		}
	}

	// Recovery sees the retried deliveries of each partition.
	overdue := 0
	for p := range partitions {
		due, _, err := s.Overdue(ctx, p, time.Now().Add(time.Hour), 1000)
		if err != nil {
			t.Fatalf("Overdue(%d) = %v", p, err)
		}
		for _, d := range due {
			if d.Delivery != webhooks.StatusPending || ids.Partition(d.RequestID) != p {
				t.Errorf("Overdue(%d) has %+v", p, d)
			}
			if err := s.Reschedule(ctx, d.RequestID, time.Now().Add(2*time.Hour)); err != nil {
				t.Fatalf("Reschedule = %v", err)
			}
		}
		overdue += len(due)
	}
	if want := count(func(i int) bool { return dlvStatus(i) == webhooks.StatusPending }); overdue != want {
		t.Errorf("Overdue over all partitions: %d records, want the %d retried deliveries", overdue, want)
	}
	if _, err := s.Trim(ctx, clientIDs, time.Now()); err != nil {
		t.Errorf("Trim on a cluster = %v", err)
	}

	// The other operations, once each.
	d := getDelivery(t, s, jobs.DeliveryID(jobIDs[5]), true) // FAILED
	if _, err := s.ReopenDelivery(ctx, d.ID, time.Now(), ""); err != nil || len(d.AttemptLog) != 1 {
		t.Errorf("ReopenDelivery on a cluster = %v (log of %d)", err, len(d.AttemptLog))
	}
	if err := s.PostponeDelivery(ctx, getDelivery(t, s, d.ID, false), 2, time.Now().Add(time.Minute), webhooks.DeferHostBusy); err != nil {
		t.Errorf("PostponeDelivery on a cluster = %v", err)
	}
	j := newJob("cli_a", time.Now(), 0) // the key's partition, as jobs.Service picks it
	if prior, _, err := s.CreateJob(ctx, j, &jobs.Idempotency{KeyHash: "0", Fingerprint: "f"}); prior != jobIDs[0] || err != nil {
		t.Errorf("CreateJob with a taken Idempotency-Key on a cluster = %q, %v; want %s", prior, err, jobIDs[0])
	}
	cl, k := newClient(time.Now(), "acme")
	if err := s.CreateClient(ctx, cl, k); err != nil {
		t.Fatal(err)
	}
	k2 := clients.Key{ID: ids.New(ids.Key, time.Now()), Hint: "h", CreatedAt: time.Now(), Hash: "hash2"}
	name := "renamed"
	for what, err := range map[string]error{
		"AddKey":       s.AddKey(ctx, cl.ID, k2),
		"RevokeKey":    s.RevokeKey(ctx, cl.ID, k.ID),
		"UpdateClient": s.UpdateClient(ctx, cl.ID, clients.Update{Name: &name}, false, nil),
		"SaveReplay":   s.SaveReplay(ctx, webhooks.BulkReplay{ID: ids.New(ids.Replay, time.Now()), State: webhooks.ReplayRunning}),
		"Announce":     s.Announce(ctx, cl.ID),
	} {
		if err != nil {
			t.Errorf("%s on a cluster = %v", what, err)
		}
	}
	if got, err := s.GetClient(ctx, cl.ID, true); err != nil || got.Name != name || len(got.Keys) != 1 {
		t.Errorf("GetClient on a cluster = %+v, %v", got, err)
	}
	if l, _, err := s.ListClients(ctx, 10, ""); err != nil || len(l) != 1 {
		t.Errorf("ListClients on a cluster = %v, %v", l, err)
	}
	if r, err := s.RunningReplays(ctx); err != nil || len(r) != 1 {
		t.Errorf("RunningReplays on a cluster = %v, %v", r, err)
	}
	if got, _, err := s.TakeTokens(ctx, cl.ID, 10, 5, 3, time.Now()); got != 3 || err != nil {
		t.Errorf("TakeTokens on a cluster = %d, %v", got, err)
	}
	// WAIT goes to the master of the job's slot.
	waiting, err := redisstore.New(ctx, rdb, redisstore.Options{Partitions: partitions, WaitReplicas: 1, WaitTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := waiting.CreateJob(ctx, newJob("cli_a", time.Now(), 9), nil); !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Errorf("CreateJob with WaitReplicas on a cluster without replicas = %v, want ErrNotReplicated", err)
	}

	// The keys spread over the masters.
	keys, err := c.KeysPerMaster(ctx, "bmr:*")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, k := range keys {
		total += k
	}
	for addr, k := range keys {
		share := float64(k) / float64(total)
		t.Logf("master %s holds %d of %d bmr:* keys (%.1f %%)", addr, k, total, 100*share)
		if share < 0.20 || share > 0.47 {
			t.Errorf("master %s holds %.1f %% of the keys, want 20–47 %%", addr, 100*share)
		}
	}
}

// runPartition creates the jobs i ≡ p (mod step) in partition p, then
// takes them from the partition's ready list, claims, finishes and
// delivers them.
func runPartition(ctx context.Context, s *redisstore.Store, p, step, n int, base time.Time, clientIDs []string, jobIDs []string,
	jobStatus func(int) jobs.Status, dlvStatus func(int) webhooks.Status) error {
	index := map[string]int{}
	for i := p; i < n; i += step {
		j := newJob(clientIDs[i%len(clientIDs)], base.Add(time.Duration(i)*time.Millisecond), p)
		var idem *jobs.Idempotency
		if i%10 == 0 {
			idem = &jobs.Idempotency{KeyHash: strconv.Itoa(i), Fingerprint: "f"}
		}
		if prior, _, err := s.CreateJob(ctx, j, idem); err != nil || prior != "" {
			return fmt.Errorf("CreateJob = %q, %v", prior, err)
		}
		jobIDs[i], index[j.ID] = j.ID, i
	}
	for range len(index) {
		id, err := s.NextReady(ctx, p, 5*time.Second)
		if err != nil || id == "" {
			return fmt.Errorf("NextReady = %q, %v", id, err)
		}
		i, ok := index[id]
		if !ok {
			return fmt.Errorf("NextReady gave %s, not a job of this partition", id)
		}
		now := time.Now().UTC()
		j, err := s.ClaimJob(ctx, id, now, now.Add(lease))
		if err != nil {
			return fmt.Errorf("ClaimJob = %v", err)
		}
		if err := s.ExtendJobLease(ctx, j, now.Add(2*lease)); err != nil {
			return fmt.Errorf("ExtendJobLease = %v", err)
		}
		done := time.Now().UTC()
		j.Status, j.UpdatedAt, j.CompletedAt, j.DeliveryID = jobStatus(i), done, &done, jobs.DeliveryID(id)
		if j.Status == jobs.StatusFailed {
			j.Error = &jobs.Error{Code: "boom", Message: "no"}
		} else {
			j.Result = j.Payload
		}
		body, err := jobs.WebhookBody(j)
		if err != nil {
			return err
		}
		d, err := s.FinishJob(ctx, j, webhooks.Message{ID: j.DeliveryID, RequestID: id, ClientID: j.ClientID, URL: j.CallbackURL, Body: body})
		if err != nil {
			return fmt.Errorf("FinishJob = %v", err)
		}
		st := dlvStatus(i)
		a := attempt(d, 1, done, st == webhooks.StatusDelivered)
		if st == webhooks.StatusFailed {
			a.NextAttemptAt = nil
		}
		if err := s.RecordAttempt(ctx, d, a, st); err != nil {
			return fmt.Errorf("RecordAttempt = %v", err)
		}
	}
	return nil
}

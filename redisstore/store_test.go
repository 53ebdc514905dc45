package redisstore_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/redistest"
	"github.com/boomerang-dev/boomerang/testkit"
	"github.com/boomerang-dev/boomerang/webhooks"
)

func TestNewKeepsThePartitionCount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	s, err := redisstore.New(ctx, rdb, redisstore.Options{Partitions: 4})
	if err != nil || s.Partitions() != 4 || len(s.Tags()) != 4 {
		t.Fatalf("New(4 partitions) on an empty Redis = %v, %v", s, err)
	}
	if got, _ := rdb.Get(ctx, "bmr:partitions").Result(); got != "4" {
		t.Errorf("bmr:partitions = %q, want 4", got)
	}
	for _, tc := range []struct {
		partitions int
		ok         bool
	}{{4, true}, {8, false}, {1, false}, {0, false}, {3, false}} {
		_, err := redisstore.New(ctx, rdb, redisstore.Options{Partitions: tc.partitions})
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, redisstore.ErrPartitions) {
			t.Errorf("New(%d partitions) on a Redis set up with 4 = %v; want ok %v, else ErrPartitions", tc.partitions, err, tc.ok)
		}
	}
	if _, err := redisstore.New(ctx, redistest.Client(t), redisstore.Options{Partitions: ids.MaxPartitions + 1}); err == nil {
		t.Errorf("New(%d partitions) = nil, want an error", ids.MaxPartitions+1)
	}
	// 0 means 1, and is remembered as 1.
	one := redistest.Client(t)
	if s, err := redisstore.New(ctx, one, redisstore.Options{}); err != nil || s.Partitions() != 1 {
		t.Errorf("New(0 partitions) = %v, %v; want 1 partition", s, err)
	}
	if _, err := redisstore.New(ctx, one, redisstore.Options{Partitions: 2}); !errors.Is(err, redisstore.ErrPartitions) {
		t.Errorf("New(2) after New(0) = %v, want ErrPartitions", err)
	}
}

func TestKeysLandInTheirPartition(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t, redisstore.Options{Partitions: 4})
	ctx := context.Background()
	tags := s.Tags()
	if !slices.Equal(tags, redisstore.PartitionTags(4)) {
		t.Fatalf("Tags() = %v, want PartitionTags(4) = %v", tags, redisstore.PartitionTags(4))
	}
	want := []string{"bmr:partitions"}
	var jobIDs []string
	for p := range 4 {
		client := "cli_" + string(rune('a'+p))
		j := newJob(client, t0, p)
		jobIDs = append(jobIDs, j.ID)
		if prior, _, err := s.CreateJob(ctx, j, &jobs.Idempotency{KeyHash: "h", Fingerprint: "f"}); prior != "" || err != nil {
			t.Fatalf("CreateJob(partition %d) = %q, %v", p, prior, err)
		}
		if p == 3 { // left ACCEPTED: ready and due
			want = append(want, "bmr:{"+tags[p]+"}:ready", "bmr:{"+tags[p]+"}:due")
		} else { // FAILED with a FAILED delivery: in every index, off the schedule
			c := claim(t, s, j.ID, t0.Add(time.Second))
			f, m := failed(t, c, "boom", t0.Add(2*time.Second))
			d := finish(t, s, f, m)
			a := attempt(d, 1, d.CreatedAt, false)
			a.NextAttemptAt = nil
			if err := s.RecordAttempt(ctx, d, a, webhooks.StatusFailed); err != nil {
				t.Fatal(err)
			}
		}
		for _, sfx := range []string{"r:" + ids.Body(j.ID), "jobs", "jobs:c:" + client, "idem:" + client + ":h"} {
			want = append(want, "bmr:{"+tags[p]+"}:"+sfx)
		}
		if p != 3 {
			for _, sfx := range []string{"ready", "jobs:f", "jobs:f:" + client, "dlv", "dlv:c:" + client, "dlv:f", "dlv:f:" + client} {
				want = append(want, "bmr:{"+tags[p]+"}:"+sfx)
			}
		}
	}
	var got []string
	iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		got = append(got, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	want = slices.Compact(want)
	if !slices.Equal(got, want) {
		t.Errorf("keys:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, k := range got {
		if k == "bmr:partitions" {
			continue
		}
		p := slices.IndexFunc(tags, func(tag string) bool { return strings.HasPrefix(k, "bmr:{"+tag+"}:") })
		if p < 0 || redisstore.Slot(k) != redisstore.Slot(tags[p]) {
			t.Errorf("key %s is in slot %d, not in its partition's slot", k, redisstore.Slot(k))
		}
	}
	// Each partition's ready list has its own jobs only.
	if id, err := s.NextReady(ctx, 3, time.Second); id != jobIDs[3] || err != nil {
		t.Errorf("NextReady(3) = %q, %v; want %s", id, err, jobIDs[3])
	}
	for p := range 3 {
		if id, err := s.NextReady(ctx, p, time.Second); id != jobIDs[p] || ids.Partition(id) != p || err != nil {
			t.Errorf("NextReady(%d) = %q, %v; want %s", p, id, err, jobIDs[p])
		}
	}
}

func TestCreateJobWaitsForReplicas(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, redisstore.Options{WaitReplicas: 1, WaitTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	j := newJob("cli_a", t0, 0)
	start := time.Now()
	_, _, err := s.CreateJob(ctx, j, nil)
	if !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("CreateJob with no replica to acknowledge it = %v, want ErrNotReplicated", err)
	}
	t.Logf("CreateJob waited %v for a replica: %v", time.Since(start), err)
	// WAIT only tells: the job was written on the master, and may be lost
	// only if the master fails before a replica has it.
	if got := getJob(t, s, j.ID); got.Status != jobs.StatusAccepted {
		t.Errorf("the job written before WAIT is %s, want ACCEPTED", got.Status)
	}
	if id, err := s.NextReady(ctx, 0, time.Second); id != j.ID || err != nil {
		t.Errorf("NextReady = %q, %v; the job is ready too", id, err)
	}
}

// TestWritesTouchTheRecord: every write gives the record a full retention
// again, except within 1 % of the retention (at most a minute) of the
// job's creation, whose TTL the creation set already.
func TestWritesTouchTheRecord(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClock(t0)
	s, rdb := newStore(t, redisstore.Options{Retention: time.Hour, Now: clock.Now}) // slack: 36 s
	ctx := context.Background()
	const marker = 100 * time.Second // a TTL no write sets
	for _, tc := range []struct {
		age     time.Duration // of the job, at each write
		touched bool
	}{{0, false}, {35 * time.Second, false}, {36 * time.Second, true}, {time.Hour, true}, {-time.Second, true}} {
		j := create(t, s, newJob("cli_a", t0, 0))
		clock.Set(t0.Add(tc.age))
		now := t0.Add(tc.age)
		var running jobs.Job
		var d webhooks.Delivery
		steps := []struct {
			name string
			run  func() error
		}{
			{"ClaimJob", func() (err error) { running, err = s.ClaimJob(ctx, j.ID, now, now.Add(lease)); return err }},
			{"ExtendJobLease", func() error { return s.ExtendJobLease(ctx, running, now.Add(2*lease)) }},
			{"RetryJob", func() error {
				running.LastError = &jobs.Error{Code: "x"}
				return s.RetryJob(ctx, running, now)
			}},
			{"ClaimJob after a retry", func() (err error) { running, err = s.ClaimJob(ctx, j.ID, now, now.Add(lease)); return err }},
			{"FinishJob", func() (err error) {
				f, m := completed(t, running, "1", now)
				d, err = s.FinishJob(ctx, f, m)
				return err
			}},
			{"RecordAttempt", func() error { return s.RecordAttempt(ctx, d, attempt(d, 1, now, false), webhooks.StatusPending) }},
			{"PostponeDelivery", func() (err error) {
				d = getDelivery(t, s, d.ID, false)
				return s.PostponeDelivery(ctx, d, 2, now.Add(time.Minute), webhooks.DeferHostBusy)
			}},
			{"RecordAttempt DELIVERED", func() error { return s.RecordAttempt(ctx, d, attempt(d, 2, now, true), webhooks.StatusDelivered) }},
			{"ReopenDelivery", func() error { _, err := s.ReopenDelivery(ctx, d.ID, now, ""); return err }},
		}
		for _, st := range steps {
			if err := rdb.PExpire(ctx, recordKey(s, j.ID), marker).Err(); err != nil {
				t.Fatal(err)
			}
			if err := st.run(); err != nil {
				t.Fatalf("%s at age %v: %v", st.name, tc.age, err)
			}
			ttl, err := rdb.PTTL(ctx, recordKey(s, j.ID)).Result()
			if err != nil {
				t.Fatal(err)
			}
			if touched := ttl > marker; touched != tc.touched {
				t.Errorf("%s of a job aged %v: TTL %v, touched %v; want touched %v", st.name, tc.age, ttl, touched, tc.touched)
			}
		}
	}
}

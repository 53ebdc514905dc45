package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/redis/go-redis/v9"
)

// Store is Boomerang's state in Redis. It implements jobs.Store,
// jobs.ReadyQueue, webhooks.Store, clients.Store, clients.Buckets and
// recovery.Store.
type Store struct {
	rdb          redis.UniversalClient
	tags         []string
	retention    time.Duration
	touchSlack   time.Duration
	recoverAfter time.Duration
	waitReplicas int
	waitTimeout  time.Duration
	now          func() time.Time
	claimTurn    atomic.Uint32 // the partition an external claim starts from, in turn
	pipes        []*autoPipe   // the hot path's scripts share round trips through it, if any (send)
}

// Options configure a Store.
type Options struct {
	// Partitions spreads jobs over this many partitions (hash tags); 0
	// means 1. A Redis keeps the count it was first used with: starting
	// with another is an error, since ids carry their partition.
	Partitions int
	// Retention is how long records live after their last change (at
	// least 99 % of it: see touch); 0 means 7 days.
	Retention time.Duration
	// RecoverAfter is how long recovery lets a job or a delivery be late
	// before it steps in (a lost hint, a crashed worker, a lost task).
	RecoverAfter time.Duration
	// WaitReplicas, when above 0, makes every new job wait until that many
	// replicas acknowledged it (WAIT), for at most WaitTimeout.
	WaitReplicas int
	WaitTimeout  time.Duration
	// Now is the clock that decides whether a write renews a record's TTL
	// (touch); nil means time.Now.
	Now func() time.Time
}

// partitionsKey holds the partition count a Redis was set up with.
const partitionsKey = "bmr:partitions"

// New returns a Store over rdb. It records the partition count in Redis on
// first use and refuses another one later.
func New(ctx context.Context, rdb redis.UniversalClient, o Options) (*Store, error) {
	o.Partitions = max(1, o.Partitions)
	if o.Partitions > ids.MaxPartitions {
		return nil, fmt.Errorf("at most %d partitions, not %d", ids.MaxPartitions, o.Partitions)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Retention <= 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.RecoverAfter <= 0 {
		o.RecoverAfter = 30 * time.Second
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = time.Second
	}
	want := strconv.Itoa(o.Partitions)
	if err := rdb.SetNX(ctx, partitionsKey, want, 0).Err(); err != nil {
		return nil, fmt.Errorf("record the partition count: %w", err)
	}
	got, err := rdb.Get(ctx, partitionsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("read the partition count: %w", err)
	}
	if got != want {
		return nil, fmt.Errorf("%w: this Redis holds %s partitions, not %s", ErrPartitions, got, want)
	}
	return &Store{rdb: rdb, tags: PartitionTags(o.Partitions), retention: o.Retention, touchSlack: min(o.Retention/100, time.Minute),
		recoverAfter: o.RecoverAfter, waitReplicas: o.WaitReplicas, waitTimeout: o.WaitTimeout, now: o.Now, pipes: newAutoPipes(rdb)}, nil
}

// ErrPartitions is a partition count that differs from the one the Redis
// was set up with.
var ErrPartitions = errors.New("BOOMERANG_PARTITIONS cannot change")

// Partitions returns the partition count.
func (s *Store) Partitions() int { return len(s.tags) }

// Tags returns the partitions' hash tags, which also name their asynq queues.
func (s *Store) Tags() []string { return append([]string(nil), s.tags...) }

// tagOf is the hash tag of an id's partition.
func (s *Store) tagOf(id string) string {
	p := ids.Partition(id)
	if p >= len(s.tags) {
		p = 0 // an id from outside: its keys will not exist
	}
	return s.tags[p]
}

// key is a key of partition tag.
func key(tag, suffix string) string { return "bmr:{" + tag + "}:" + suffix }

func recordKey(tag, body string) string { return key(tag, "r:"+body) }

// touch is the TTL a write gives a record: the retention, or 0 (leave
// it) while the job is younger than touchSlack. CreateJob set the record
// to expire a retention after the job's creation, so a job that runs and
// is delivered within the slack (most of them) costs no PEXPIRE after its
// creation, and every record still lives at least Retention - touchSlack
// (99 % of it) after its last change.
func (s *Store) touch(id string) int64 {
	created, ok := ids.PrefixTime(ids.Body(id))
	if age := s.now().Sub(created); ok && age >= 0 && age < s.touchSlack {
		return 0
	}
	return s.retention.Milliseconds()
}

// ms is a time as Unix milliseconds, for scores and arguments.
func ms(t time.Time) int64 { return t.UnixMilli() }

// isNil reports a missing key.
func isNil(err error) bool { return errors.Is(err, redis.Nil) }

// isNoScript reports a script that the server has not loaded (EVALSHA of
// a pipeline cannot fall back to EVAL by itself).
func isNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

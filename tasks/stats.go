package tasks

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// QueueState is one queue's tasks by state, as asynq's Inspector reports
// them.
type QueueState struct {
	Queue       string
	Pending     int
	Active      int
	Scheduled   int
	Retry       int
	Archived    int
	Completed   int
	Aggregating int
	// Latency is how long the oldest pending task has waited.
	Latency time.Duration
	// ProcessedToday and FailedToday are asynq's daily counters (UTC day);
	// ProcessedTotal and FailedTotal never reset.
	ProcessedToday, FailedToday int
	ProcessedTotal, FailedTotal int
	Paused                      bool
}

// States is every task state of a QueueState with its count, for metrics
// and pages that list them.
func (q QueueState) States() []StateCount {
	return []StateCount{{"pending", q.Pending}, {"active", q.Active}, {"scheduled", q.Scheduled},
		{"retry", q.Retry}, {"archived", q.Archived}, {"completed", q.Completed}, {"aggregating", q.Aggregating}}
}

// StateCount is a task state and how many tasks are in it.
type StateCount struct {
	State string
	Count int
}

// Stats reads the state of Boomerang's queues through asynq's Inspector at
// most once per maxAge, however many callers ask: every metrics scrape and
// console page shares one reading, so scrapers cannot load Redis. The
// Inspector takes no context, so a reading runs on its own goroutine (ended
// by go-redis's timeouts at the latest) and a caller whose context ends
// first gets the last good reading.
type Stats struct {
	insp   *asynq.Inspector
	queues []string
	maxAge time.Duration
	now    func() time.Time

	mu      sync.Mutex
	tried   time.Time // the last reading, good or not
	at      time.Time // the last good reading
	last    []QueueState
	err     error
	reading chan struct{} // closed when the reading under way ends; nil if none
}

// NewStats reads the queues of partitions (their names, as given to
// NewQueue) and the maintenance queue; maxAge ≤ 0 means 10 s.
func NewStats(rdb redis.UniversalClient, partitions []string, maxAge time.Duration) *Stats {
	if maxAge <= 0 {
		maxAge = 10 * time.Second
	}
	queues := append(append([]string(nil), partitions...), QueueMaintenance)
	return &Stats{insp: asynq.NewInspectorFromRedisClient(rdb), queues: queues, maxAge: maxAge, now: time.Now}
}

// Queues returns every queue's state and when it was read. A queue that
// has never held a task reads as empty. A failed reading, or one that
// outlasts ctx, is returned as an error with the last good one, if any; a
// failed reading is not retried before maxAge, so a struggling Redis is not
// asked again on every scrape.
func (s *Stats) Queues(ctx context.Context) ([]QueueState, time.Time, error) {
	s.mu.Lock()
	if !s.tried.IsZero() && s.now().Sub(s.tried) < s.maxAge {
		defer s.mu.Unlock()
		return s.last, s.at, s.err
	}
	if err := ctx.Err(); err != nil { // nobody would wait for the reading
		defer s.mu.Unlock()
		return s.last, s.at, err
	}
	if s.reading == nil {
		s.reading = make(chan struct{})
		go s.read(s.reading)
	}
	done := s.reading
	s.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.last, s.at, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.at, s.err
}

// read makes one reading, stores it, and closes done.
func (s *Stats) read(done chan struct{}) {
	states, err := s.readAll()
	s.mu.Lock()
	s.tried, s.err, s.reading = s.now(), err, nil
	if err == nil {
		s.at, s.last = s.tried, states
	}
	s.mu.Unlock()
	close(done)
}

func (s *Stats) readAll() ([]QueueState, error) {
	known, err := s.insp.Queues()
	if err != nil {
		return nil, err
	}
	states := make([]QueueState, 0, len(s.queues))
	for _, q := range s.queues {
		if !slices.Contains(known, q) {
			states = append(states, QueueState{Queue: q}) // asynq creates a queue with its first task
			continue
		}
		info, err := s.insp.GetQueueInfo(q)
		if err != nil {
			return nil, err
		}
		states = append(states, QueueState{Queue: q, Pending: info.Pending, Active: info.Active,
			Scheduled: info.Scheduled, Retry: info.Retry, Archived: info.Archived, Completed: info.Completed,
			Aggregating: info.Aggregating, Latency: info.Latency, ProcessedToday: info.Processed,
			FailedToday: info.Failed, ProcessedTotal: info.ProcessedTotal, FailedTotal: info.FailedTotal,
			Paused: info.Paused})
	}
	return states, nil
}

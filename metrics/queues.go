package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/prometheus/client_golang/prometheus"
)

// QueueStats reads the asynq queues' state, caching it (tasks.Stats: at
// most once per 10 s, shared by every reader).
type QueueStats interface {
	Queues(ctx context.Context) ([]tasks.QueueState, time.Time, error)
}

// QueueOptions says where the queue figures come from.
type QueueOptions struct {
	Stats QueueStats
	// ReadyLengths gives the depth of each partition's ready list, where
	// new jobs wait for a runner (redisstore.Store.ReadyLengths); Tags
	// names the partitions, in the same order (redisstore.Store.Tags).
	ReadyLengths func(ctx context.Context) ([]int64, error)
	Tags         []string
	// MaxAge is how long a reading of the ready lists serves every scrape;
	// 0 means 10 s. Now is the clock (time.Now if nil).
	MaxAge time.Duration
	Now    func() time.Time
}

// WatchQueues adds boomerang_queue_tasks{queue,state} and
// boomerang_queue_latency_seconds{queue}, read when scraped: the asynq
// queues through o.Stats, and the ready lists as queue "ready:<tag>",
// state "pending", read at most once per o.MaxAge however many scrape.
func (m *Metrics) WatchQueues(o QueueOptions) error {
	if o.MaxAge <= 0 {
		o.MaxAge = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return m.reg.Register(&queueCollector{o: o})
}

var (
	queueTasksDesc = prometheus.NewDesc("boomerang_queue_tasks",
		"Tasks in each queue by state, as asynq's Inspector reports them (read at most every 10 s); the ready lists, where new jobs wait for a runner, are queue \"ready:<partition>\", state \"pending\".",
		[]string{"queue", "state"}, nil)
	queueLatencyDesc = prometheus.NewDesc("boomerang_queue_latency_seconds",
		"How long the oldest pending task of each asynq queue has waited (read at most every 10 s).",
		[]string{"queue"}, nil)
	queueAgeDesc = prometheus.NewDesc("boomerang_queue_stats_age_seconds",
		"How old the queue figures served are; it grows past 10 s while Redis cannot be read.",
		nil, nil)
)

// readTimeout bounds a scrape's reading of Redis.
const readTimeout = 5 * time.Second

type queueCollector struct {
	o QueueOptions

	mu        sync.Mutex // held during a reading of the ready lists: scrapers share it
	readyTry  time.Time  // the last reading, good or not
	readyAt   time.Time  // the last good reading
	readyLast []int64
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueTasksDesc
	ch <- queueLatencyDesc
	ch <- queueAgeDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	var oldest time.Time
	states, at, err := c.o.Stats.Queues(ctx)
	if len(states) > 0 {
		oldest = at
	}
	for _, q := range states {
		for _, s := range q.States() {
			ch <- prometheus.MustNewConstMetric(queueTasksDesc, prometheus.GaugeValue, float64(s.Count), q.Queue, s.State)
		}
		ch <- prometheus.MustNewConstMetric(queueLatencyDesc, prometheus.GaugeValue, q.Latency.Seconds(), q.Queue)
	}
	if err != nil && len(states) == 0 {
		ch <- prometheus.NewInvalidMetric(queueTasksDesc, err)
	}
	if lengths, at := c.ready(ctx); lengths != nil {
		for i, n := range lengths {
			if i < len(c.o.Tags) {
				ch <- prometheus.MustNewConstMetric(queueTasksDesc, prometheus.GaugeValue, float64(n), "ready:"+c.o.Tags[i], "pending")
			}
		}
		if oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
	}
	if !oldest.IsZero() {
		ch <- prometheus.MustNewConstMetric(queueAgeDesc, prometheus.GaugeValue, max(0, c.o.Now().Sub(oldest).Seconds()))
	}
}

// ready returns the ready lists' depth and when it was read, reading it
// again only once the last reading (good or not) is MaxAge old: a Redis in
// trouble is not asked again on every scrape. A failed reading serves the
// last good one.
func (c *queueCollector) ready(ctx context.Context) ([]int64, time.Time) {
	if c.o.ReadyLengths == nil {
		return nil, time.Time{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.o.Now()
	if !c.readyTry.IsZero() && now.Sub(c.readyTry) < c.o.MaxAge {
		return c.readyLast, c.readyAt
	}
	c.readyTry = now
	if n, err := c.o.ReadyLengths(ctx); err == nil {
		c.readyLast, c.readyAt = n, now
	}
	return c.readyLast, c.readyAt
}

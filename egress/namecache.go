package egress

import (
	"sync"
	"time"
)

// NameCache remembers for a while what Checker found when it resolved a
// callback host name at submission, so that a busy API does not send a DNS
// query with every job (Go's resolver caches nothing). It keeps three
// verdicts: allowed, blocked (with its reason), and "the lookup failed",
// which Checker does not hold against a job either, so that a DNS outage
// costs each name one timeout per FailureTTL rather than one per job.
//
// Reusing a verdict is safe because the check at submission only gives
// early feedback: the dial-time check of every delivery attempt decides
// (DNS rebinding). Checker keys verdicts by client and name, so a verdict
// serves only the client whose submission caused it: a cached name answers
// faster, and another client must not learn from that what names its
// neighbours use. The bound is shared: a client flooding new names evicts
// others' verdicts, which costs them a lookup, never a refusal. A NameCache
// is safe for concurrent use.
type NameCache struct {
	ttl, failureTTL time.Duration
	max             int
	now             func() time.Time

	mu      sync.Mutex
	entries map[string]nameVerdict
}

type nameVerdict struct {
	blocked *BlockedError // nil: allowed, or the lookup failed
	until   time.Time
}

// NameCacheOptions configure a NameCache; zero values take the defaults.
type NameCacheOptions struct {
	TTL        time.Duration    // how long a verdict lasts; 0 means 30 s
	FailureTTL time.Duration    // how long a failed lookup lasts; 0 means 5 s
	Max        int              // names kept at most; 0 means 10 000
	Now        func() time.Time // nil means time.Now
}

// NewNameCache returns an empty cache.
func NewNameCache(o NameCacheOptions) *NameCache {
	if o.TTL <= 0 {
		o.TTL = 30 * time.Second
	}
	if o.FailureTTL <= 0 {
		o.FailureTTL = 5 * time.Second
	}
	if o.Max <= 0 {
		o.Max = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &NameCache{ttl: o.TTL, failureTTL: o.FailureTTL, max: o.Max, now: o.Now, entries: map[string]nameVerdict{}}
}

// get returns name's verdict, if one is current; a nil cache has none.
func (c *NameCache) get(name string) (blocked *BlockedError, ok bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.entries[name]
	if !ok || !c.now().Before(v.until) {
		return nil, false
	}
	return v.blocked, true
}

// put records name's verdict: blocked, allowed (nil), or a failed lookup
// (failed), which lasts FailureTTL. A full cache first drops its expired
// verdicts, then arbitrary ones down to seven eighths of Max, so that a
// flood of new names costs a sweep per Max/8 names, not one per name.
func (c *NameCache) put(name string, blocked *BlockedError, failed bool) {
	if c == nil {
		return
	}
	now := c.now()
	ttl := c.ttl
	if failed {
		ttl = c.failureTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[name]; !ok && len(c.entries) >= c.max {
		for k, v := range c.entries {
			if !now.Before(v.until) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries { // map order: arbitrary ones
			if len(c.entries) <= c.max-max(1, c.max/8) {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[name] = nameVerdict{blocked: blocked, until: now.Add(ttl)}
}

// Len is how many verdicts the cache holds, current or not.
func (c *NameCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

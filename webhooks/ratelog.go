package webhooks

import (
	"sync"
	"time"
)

// rateLog lets one log line per key through per interval and counts the
// ones it holds back, so a flood of deferrals stays visible without
// flooding the log. It remembers at most maxRateLogKeys keys.
type rateLog struct {
	mu         sync.Mutex
	every      time.Duration
	last       map[string]time.Time
	suppressed map[string]int
}

const maxRateLogKeys = 10_000

func newRateLog(every time.Duration) *rateLog {
	return &rateLog{every: every, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// allow says whether a line for key may be logged now, and how many were
// held back since the last one.
func (l *rateLog) allow(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.last[key]; ok && now.Sub(last) < l.every {
		l.suppressed[key]++
		return false, 0
	}
	if len(l.last) >= maxRateLogKeys {
		clear(l.last)
		clear(l.suppressed)
	}
	n := l.suppressed[key]
	delete(l.suppressed, key)
	l.last[key] = now
	return true, n
}

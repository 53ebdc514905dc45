package webhooks

import (
	"fmt"
	"testing"
	"time"
)

func TestRateLog(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	l := newRateLog(10 * time.Second)
	steps := []struct {
		key            string
		at             time.Duration
		wantOK         bool
		wantSuppressed int
	}{
		{"a", 0, true, 0},
		{"a", time.Second, false, 0},
		{"b", time.Second, true, 0}, // keys are independent
		{"a", 5 * time.Second, false, 0},
		{"a", 9999 * time.Millisecond, false, 0},
		{"a", 10 * time.Second, true, 3}, // the held-back lines are counted
		{"a", 11 * time.Second, false, 0},
		{"a", 25 * time.Second, true, 1},
		{"a", 40 * time.Second, true, 0},
	}
	for i, s := range steps {
		ok, n := l.allow(s.key, t0.Add(s.at))
		if ok != s.wantOK || n != s.wantSuppressed {
			t.Errorf("step %d: allow(%q, +%v) = %v, %d, want %v, %d", i, s.key, s.at, ok, n, s.wantOK, s.wantSuppressed)
		}
	}
}

// The log remembers at most maxRateLogKeys keys: beyond that it starts
// afresh, which at worst lets a line through early.
func TestRateLogIsBounded(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	l := newRateLog(time.Minute)
	for i := 0; i < maxRateLogKeys+10; i++ {
		l.allow(fmt.Sprint(i), t0)
		l.allow(fmt.Sprint(i), t0) // one suppressed each
	}
	if n := len(l.last); n > maxRateLogKeys {
		t.Errorf("rate log keeps %d keys, want at most %d", n, maxRateLogKeys)
	}
	if n := len(l.suppressed); n > maxRateLogKeys {
		t.Errorf("rate log keeps %d suppressed counts, want at most %d", n, maxRateLogKeys)
	}
}

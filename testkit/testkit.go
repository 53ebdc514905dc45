// Package testkit holds what Boomerang's test suites share: the switch for
// the long suites, a goroutine-safe buffer for captured logs, and a
// controllable clock.
//
// The long suites (fault injection with real processes, scale, cluster,
// benchmarks run as tests) take minutes; `go test ./...` skips them, and
// `.ci/run` sets BOOMERANG_LONG_TESTS=1 so that CI runs them every time.
package testkit

import (
	"bytes"
	"os"
	"sync"
	"testing"
	"time"
)

// LongEnv is the switch that turns the long suites on.
const LongEnv = "BOOMERANG_LONG_TESTS"

// Long skips t unless BOOMERANG_LONG_TESTS=1, saying how to run it.
func Long(t testing.TB) {
	t.Helper()
	if !LongTests() {
		t.Skip("a long suite: set " + LongEnv + "=1 to run it (.ci/run does)")
	}
}

// LongTests reports whether the long suites are on.
func LongTests() bool { return os.Getenv(LongEnv) == "1" }

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers, for
// capturing the logs of a service under test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Clock is a settable clock for tests: Now returns the current setting,
// Advance moves it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set sets the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

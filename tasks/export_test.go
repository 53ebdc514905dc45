package tasks

import "time"

// SetStatsClock replaces a Stats' clock, for tests of its cache.
func SetStatsClock(s *Stats, now func() time.Time) { s.now = now }

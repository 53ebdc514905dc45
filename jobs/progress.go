package jobs

import (
	"context"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxProgressMessage bounds a progress message, in bytes.
const MaxProgressMessage = 1024

// ReportProgress tells the job's watchers how far a processor got: percent
// from 0 to 100 (clamped) and a short message (cut to MaxProgressMessage
// bytes). Reports are coalesced: at most one a second reaches the store,
// the latest. Outside a processor it does nothing.
func ReportProgress(ctx context.Context, percent float64, message string) {
	rep, ok := ctx.Value(reporterKey{}).(*reporter)
	if !ok {
		return
	}
	rep.set(&Progress{Percent: clampPercent(percent), Message: cutMessage(message), UpdatedAt: time.Now().UTC()})
}

func clampPercent(p float64) float64 {
	if math.IsNaN(p) {
		return 0
	}
	return math.Round(min(100, max(0, p))*100) / 100
}

// cutMessage keeps at most MaxProgressMessage bytes of valid UTF-8.
func cutMessage(m string) string {
	m = strings.ToValidUTF8(m, "\uFFFD")
	if len(m) <= MaxProgressMessage {
		return m
	}
	m = m[:MaxProgressMessage]
	for !utf8.ValidString(m) {
		m = m[:len(m)-1]
	}
	return m
}

type reporterKey struct{}

// reporter holds a run's latest progress until the run saves it.
type reporter struct {
	mu      sync.Mutex
	pending *Progress
}

func (r *reporter) set(p *Progress) {
	r.mu.Lock()
	r.pending = p
	r.mu.Unlock()
}

// take returns the progress not saved yet, if any.
func (r *reporter) take() *Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending
	r.pending = nil
	return p
}

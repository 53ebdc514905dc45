package webhooks

import (
	"testing"
	"time"
)

func fixedRand(v float64) func() float64 { return func() float64 { return v } }

// The schedule without jitter: 5 s, ×3 each time, capped at 10 h.
var wantSchedule = []time.Duration{
	5 * time.Second,
	15 * time.Second,
	45 * time.Second,
	135 * time.Second,
	405 * time.Second,
	1215 * time.Second,
	3645 * time.Second,
	10935 * time.Second,
	32805 * time.Second,
	10 * time.Hour,
	10 * time.Hour,
	10 * time.Hour, // beyond MaxAttempts, still capped
	10 * time.Hour,
}

func TestRetryPolicyDelayScheduleWithoutJitter(t *testing.T) {
	p := RetryPolicy{Initial: 5 * time.Second, MaxInterval: 10 * time.Hour, MaxAttempts: 12, Rand: fixedRand(0.5)}
	for i, want := range wantSchedule {
		if got := p.Delay(i + 1); got != want {
			t.Errorf("Delay(%d) with Rand 0.5 = %v, want %v", i+1, got, want)
		}
	}
}

func TestRetryPolicyDelayJitterBounds(t *testing.T) {
	tests := []struct {
		name   string
		rand   float64
		jitter float64
		lo, hi float64 // factor bounds on the unjittered wait
	}{
		{"rand 0, default jitter", 0, 0, 0.8, 0.8},
		{"rand 0.999, default jitter", 0.999, 0, 1.1996, 1.1996},
		{"rand 0, jitter 0.5", 0, 0.5, 0.5, 0.5},
		{"rand 0.999, jitter 0.5", 0.999, 0.5, 1.499, 1.499},
		{"rand 0, no jitter", 0, -1, 1, 1},
		{"rand 0.999, no jitter", 0.999, -1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := RetryPolicy{Initial: 5 * time.Second, MaxInterval: 10 * time.Hour, MaxAttempts: 12,
				Jitter: tt.jitter, Rand: fixedRand(tt.rand)}
			for i, base := range wantSchedule {
				got := p.Delay(i + 1)
				lo := min(time.Duration(float64(base)*tt.lo)-time.Microsecond, p.MaxInterval)
				hi := min(time.Duration(float64(base)*tt.hi)+time.Microsecond, p.MaxInterval)
				if got < lo || got > hi {
					t.Errorf("Delay(%d) with Rand %v, Jitter %v = %v, want within [%v, %v]", i+1, tt.rand, tt.jitter, got, lo, hi)
				}
				if got > p.MaxInterval {
					t.Errorf("Delay(%d) = %v, want at most MaxInterval %v", i+1, got, p.MaxInterval)
				}
			}
		})
	}
}

// With the smallest jitter the 11 waits between 12 attempts still add up to
// more than a day: the default policy's "tail of at least a day".
func TestRetryPolicyTailOfAtLeastADay(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999} {
		p := DefaultRetryPolicy()
		p.Rand = fixedRand(r)
		var sum time.Duration
		for n := 1; n < p.MaxAttempts; n++ {
			sum += p.Delay(n)
		}
		if sum < 24*time.Hour {
			t.Errorf("sum of Delay(1..%d) with Rand %v = %v, want ≥ 24h", p.MaxAttempts-1, r, sum)
		}
		t.Logf("Rand %v: last retry %v after the first attempt", r, sum)
	}
}

func TestRetryPolicyRandomJitterStaysInBounds(t *testing.T) {
	p := DefaultRetryPolicy() // Rand nil: math/rand/v2
	for i := 0; i < 200; i++ {
		n := i%12 + 1
		base := wantSchedule[n-1]
		got := p.Delay(n)
		lo := time.Duration(float64(base) * 0.8)
		hi := min(time.Duration(float64(base)*1.2), p.MaxInterval)
		if got < lo-time.Microsecond || got > hi+time.Microsecond {
			t.Fatalf("Delay(%d) with random jitter = %v, want within [%v, %v]", n, got, lo, hi)
		}
	}
}

func TestRetryPolicyMultiplier(t *testing.T) {
	p := RetryPolicy{Initial: time.Second, MaxInterval: time.Minute, Multiplier: 2, Jitter: -1}
	want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 32 * time.Second, time.Minute, time.Minute}
	for i, w := range want {
		if got := p.Delay(i + 1); got != w {
			t.Errorf("Delay(%d) with Multiplier 2 = %v, want %v", i+1, got, w)
		}
	}
}

func TestRetryPolicyCap(t *testing.T) {
	p := DefaultRetryPolicy()
	tests := []struct {
		in, want time.Duration
	}{
		{-time.Second, 0},
		{0, 0},
		{7 * time.Second, 7 * time.Second},
		{10 * time.Hour, 10 * time.Hour},
		{11 * time.Hour, 10 * time.Hour},
		{365 * 24 * time.Hour, 10 * time.Hour},
	}
	for _, tt := range tests {
		if got := p.Cap(tt.in); got != tt.want {
			t.Errorf("Cap(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDefaultRetryPolicy(t *testing.T) {
	p := DefaultRetryPolicy()
	if p.Initial != 5*time.Second || p.MaxInterval != 10*time.Hour || p.MaxAttempts != 12 {
		t.Errorf("DefaultRetryPolicy() = %+v, want Initial 5s, MaxInterval 10h, MaxAttempts 12", p)
	}
}

func TestValidStatus(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"PENDING", true}, {"DELIVERED", true}, {"FAILED", true},
		{"", false}, {"pending", false}, {"RUNNING", false},
	}
	for _, tt := range tests {
		if got := ValidStatus(tt.in); got != tt.want {
			t.Errorf("ValidStatus(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

package webhooks_test

import (
	"fmt"
	"time"

	"github.com/boomerang-dev/boomerang/webhooks"
)

// The default schedule: 5 s, then ×3 up to 10 h, 12 attempts in all. With
// Rand fixed at 0.5 the ±20 % jitter has no effect, so the output shows the
// waits after each failed attempt and when each retry comes.
func ExampleRetryPolicy_Delay() {
	p := webhooks.DefaultRetryPolicy()
	p.Rand = func() float64 { return 0.5 } // production leaves it nil (random jitter)
	var total time.Duration
	for n := 1; n < p.MaxAttempts; n++ {
		total += p.Delay(n)
		fmt.Printf("after attempt %2d wait %-9v (attempt %2d at +%v)\n", n, p.Delay(n), n+1, total)
	}
	// Output:
	// after attempt  1 wait 5s        (attempt  2 at +5s)
	// after attempt  2 wait 15s       (attempt  3 at +20s)
	// after attempt  3 wait 45s       (attempt  4 at +1m5s)
	// after attempt  4 wait 2m15s     (attempt  5 at +3m20s)
	// after attempt  5 wait 6m45s     (attempt  6 at +10m5s)
	// after attempt  6 wait 20m15s    (attempt  7 at +30m20s)
	// after attempt  7 wait 1h0m45s   (attempt  8 at +1h31m5s)
	// after attempt  8 wait 3h2m15s   (attempt  9 at +4h33m20s)
	// after attempt  9 wait 9h6m45s   (attempt 10 at +13h40m5s)
	// after attempt 10 wait 10h0m0s   (attempt 11 at +23h40m5s)
	// after attempt 11 wait 10h0m0s   (attempt 12 at +33h40m5s)
}

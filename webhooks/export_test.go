package webhooks

import "time"

// What the external tests (package webhooks_test, which may import
// redisstore and jobs) need of the package's internals.

// ClassifyForTest is classify, for classifying errors of real clients.
var ClassifyForTest = classify

// The bounds of what an attempt reads and keeps of an answer, and how long
// an attempt to a healthy host at its cap waits for a slot.
const (
	MaxResponseReadForTest  = maxResponseRead
	MaxResponseStoreForTest = maxResponseStore
	BusyWaitForTest         = busyWait
	BusyRetryForTest        = busyRetry
)

// SetBusyWaitForTest sets how long d's attempts to a healthy host at its
// cap wait for a slot (busyWait), so that a test of the wait does not
// depend on how fast the machine is.
func SetBusyWaitForTest(d *Dispatcher, wait time.Duration) { d.gate.wait = wait }

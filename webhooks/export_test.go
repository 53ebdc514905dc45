package webhooks

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

package metrics_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/metrics"
)

// Requests are counted by route template, as handlers reports them; a
// request that matched no route is "unmatched".
func ExampleMetrics_ObserveRequest() {
	m := metrics.New()
	m.ObserveRequest("/v1/jobs/{requestId}", 200, 3*time.Millisecond)
	m.ObserveRequest("/v1/jobs/{requestId}", 404, time.Millisecond)
	m.ObserveRequest("", 404, time.Millisecond)

	rec := httptest.NewRecorder()
	m.Handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "boomerang_http_requests_total") {
			fmt.Print(line)
		}
	}
	// Output:
	// boomerang_http_requests_total{code="200",route="/v1/jobs/{requestId}"} 1
	// boomerang_http_requests_total{code="404",route="/v1/jobs/{requestId}"} 1
	// boomerang_http_requests_total{code="404",route="unmatched"} 1
}

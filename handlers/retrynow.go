package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// Retrier makes PENDING deliveries' next attempts now (webhooks.Dispatcher).
type Retrier interface {
	RetryNow(ctx context.Context, id string) (webhooks.Delivery, error)
	RetryNowAll(ctx context.Context, f webhooks.Filter, dryRun bool) (webhooks.RetryNowResult, error)
}

// retryNow makes one PENDING delivery's next attempt now and answers with
// the delivery afterwards, attempts included.
func retryNow(rt Retrier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "id", ids.Delivery)
		if err != nil {
			writeError(w, r, err)
			return
		}
		// The attempt is made before the answer, and may take up to the
		// delivery timeout, which can exceed the server's write timeout.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(bulkRetryTimeout))
		d, err := rt.RetryNow(r.Context(), id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, deliveryView(d))
	})
}

// bulkRetryTimeout bounds a retry-now's answer.
const bulkRetryTimeout = 10 * time.Minute

// bulkRetryNow does the same for every PENDING delivery matching the
// body's filter, and answers with the counts.
func bulkRetryNow(rt Retrier, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ClientID string `json:"clientId"`
			Since    string `json:"since"`
			Until    string `json:"until"`
			DryRun   bool   `json:"dryRun"`
		}
		if err := decodeBody(w, r, maxBody, &req); err != nil {
			writeError(w, r, err)
			return
		}
		f, err := bodyFilter(string(webhooks.StatusPending), req.ClientID, req.Since, req.Until)
		if err != nil {
			writeError(w, r, err)
			return
		}
		// Every match is handed over before the answer: many thousands
		// take longer than the server's write timeout allows.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(bulkRetryTimeout))
		res, err := rt.RetryNowAll(r.Context(), f, req.DryRun)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, res)
	})
}

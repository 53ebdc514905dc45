package handlers

import (
	"cmp"
	"context"
	"errors"
	"net/http"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/tracing"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// DeliveryReader is what the handlers read of the deliveries (redisstore.Store).
type DeliveryReader interface {
	GetDelivery(ctx context.Context, id string, withAttempts bool) (webhooks.Delivery, error)
	ListDeliveries(ctx context.Context, f webhooks.Filter, limit int, cursor string) ([]webhooks.Delivery, string, error)
}

// Replayer is what the handlers need of webhooks.Dispatcher.
type Replayer interface {
	Replay(ctx context.Context, id string) (webhooks.Delivery, error)
	StartBulkReplay(ctx context.Context, f webhooks.Filter, dryRun bool) (webhooks.BulkReplay, error)
	GetReplay(ctx context.Context, id string) (webhooks.BulkReplay, error)
}

func listDeliveries(store DeliveryReader) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, cursor, err := pageParams(q)
		var f webhooks.Filter
		if err == nil {
			f, err = deliveryFilter(q.Get("status"), q.Get("clientId"), q.Get("since"), q.Get("until"))
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		list, next, err := store.ListDeliveries(r.Context(), f, limit, cursor)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, listPage[webhooks.Delivery]{Data: list, NextCursor: next})
	})
}

func getDelivery(store DeliveryReader) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "id", ids.Delivery)
		if err != nil {
			writeError(w, r, err)
			return
		}
		d, err := store.GetDelivery(r.Context(), id, true)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, deliveryView(d))
	})
}

// deliveryView puts the attempt log under "attempts", as the API promises;
// the count moves to "attemptCount".
func deliveryView(d webhooks.Delivery) any {
	log := d.AttemptLog
	if log == nil {
		log = []webhooks.Attempt{}
	}
	d.AttemptLog = nil
	return struct {
		webhooks.Delivery
		AttemptCount int                `json:"attemptCount"`
		TraceID      string             `json:"traceId,omitempty"`
		Attempts     []webhooks.Attempt `json:"attempts"`
	}{d, d.Attempts, tracing.TraceID(d.TraceParent), log}
}

func replayDelivery(rp Replayer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "id", ids.Delivery)
		if err != nil {
			writeError(w, r, err)
			return
		}
		d, err := rp.Replay(r.Context(), id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusAccepted, d)
	})
}

func bulkReplay(rp Replayer, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Status   string `json:"status"`
			ClientID string `json:"clientId"`
			Since    string `json:"since"`
			Until    string `json:"until"`
			DryRun   bool   `json:"dryRun"`
		}
		if err := decodeBody(w, r, maxBody, &req); err != nil {
			writeError(w, r, err)
			return
		}
		f, err := bodyFilter(cmp.Or(req.Status, string(webhooks.StatusFailed)), req.ClientID, req.Since, req.Until)
		if err != nil {
			writeError(w, r, err)
			return
		}
		rep, err := rp.StartBulkReplay(r.Context(), f, req.DryRun)
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/admin/v1/replays/"+rep.ID)
		respond(w, http.StatusAccepted, rep)
	})
}

// bodyFilter is deliveryFilter for the fields of a request body (a bulk
// replay's or retry-now's): a bad one is 422, like every body field.
func bodyFilter(status, clientID, since, until string) (webhooks.Filter, error) {
	f, err := deliveryFilter(status, clientID, since, until)
	var re *requestError
	if errors.As(err, &re) {
		err = invalid(re.fields...)
	}
	return f, err
}

func getReplay(rp Replayer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "replayId", ids.Replay)
		if err != nil {
			writeError(w, r, err)
			return
		}
		rep, err := rp.GetReplay(r.Context(), id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, rep)
	})
}

package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/boomerang-dev/boomerang/tracing"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// Cancel ends a job that has not ended: CANCELED, with the webhook
// job.canceled. A processor running it stops, an external worker's next
// call is refused (ErrCanceled) and its completion token stops working.
// clientID "" is the operator, who may cancel any client's job. A job that
// has ended already is ErrFinished.
func (s *Service) Cancel(ctx context.Context, clientID, id string) (Job, error) {
	j, err := s.store.GetJob(ctx, id)
	if err != nil {
		return Job{}, err
	}
	if clientID != "" && j.ClientID != clientID {
		return Job{}, ErrNotFound
	}
	by := "its client"
	if clientID == "" {
		by = "an operator"
	}
	return s.end(ctx, j, StatusCanceled, &Error{Code: "canceled", Message: "the job was canceled by " + by})
}

// Expire ends a job whose deadline has come, if it has not ended: EXPIRED,
// with the webhook job.expired. Its task may run a little early (tasks
// run on whole seconds): it waits for the deadline.
func (s *Service) Expire(ctx context.Context, id string) error {
	j, err := s.store.GetJob(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if j.Status.Final() || j.Deadline == nil {
		return nil
	}
	if wait := j.Deadline.Sub(s.now()); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return s.expire(ctx, j)
}

// expire ends j as EXPIRED; that another run ended it first is no error.
func (s *Service) expire(ctx context.Context, j Job) error {
	_, err := s.end(ctx, j, StatusExpired, &Error{Code: "deadline_exceeded",
		Message: "the job did not end by its deadline, " + j.Deadline.UTC().Format(time.RFC3339Nano)})
	if errors.Is(err, ErrFinished) || errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// end records a canceled or expired job and its delivery, whichever run
// holds it, stops that run wherever it is, and schedules the webhook.
func (s *Service) end(ctx context.Context, j Job, status Status, why *Error) (Job, error) {
	if j.Status.Final() {
		return j, ErrFinished
	}
	ctx = tracing.ForJob(ctx, j.TraceParent) // its log lines in the job's trace
	done := s.now().UTC()
	j.Status, j.Error, j.LastError, j.Result = status, why, nil, nil
	j.UpdatedAt, j.CompletedAt, j.DeliveryID = done, &done, DeliveryID(j.ID)
	j.LeaseID, j.TokenHash = "", "" // any run: no lease, no token to check
	d, err := s.record(ctx, j)
	if err != nil {
		return Job{}, err
	}
	wctx := context.WithoutCancel(ctx)
	s.Stop(j.ID)
	if err := s.store.AnnounceStop(wctx, j.ID); err != nil {
		// Its run stops at its next lease renewal, which is refused.
		s.log.WarnContext(ctx, "could not announce a job's end to the workers", "requestId", j.ID, "error", err)
	}
	s.deliverLater(wctx, d)
	s.log.InfoContext(ctx, "job ended", "requestId", j.ID, "status", status)
	j.Payload = nil
	return j, nil
}

// record stores j's outcome and creates its delivery (Store.FinishJob).
func (s *Service) record(ctx context.Context, j Job) (webhooks.Delivery, error) {
	body, err := WebhookBody(j)
	if err != nil {
		return webhooks.Delivery{}, err
	}
	m := webhooks.Message{ID: j.DeliveryID, RequestID: j.ID, ClientID: j.ClientID, EventType: EventType(j.Status), URL: j.CallbackURL, Body: body}
	// The delivery's attempts continue from the span that ends the job.
	j.TraceParent = tracing.Within(ctx, j.TraceParent)
	tracing.JobEnded(ctx, string(j.Status), errorCode(j.Error))
	return s.store.FinishJob(context.WithoutCancel(ctx), j, m)
}

// deliverLater hands the first attempt of a delivery recorded outside the
// workers (by the API: a cancel, an external worker's or an upstream's
// outcome) to them at once: the job goes back on its partition's ready
// list, whose blocking pop a worker answers within a moment, and a worker
// that finds the job ended makes its delivery's first attempt (Run). If
// that fails, recovery does, since the delivery's recovery time is set.
// (An asynq task would wait for the workers' next queue check: a second.)
func (s *Service) deliverLater(ctx context.Context, d webhooks.Delivery) {
	if err := s.store.ReturnReady(ctx, d.RequestID); err != nil {
		s.log.WarnContext(ctx, "could not hand a webhook to the workers; recovery will", "deliveryId", d.ID, "error", fmt.Sprint(err))
	}
}

func errorCode(e *Error) string {
	if e == nil {
		return ""
	}
	return e.Code
}

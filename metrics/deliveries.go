package metrics

import (
	"context"
	"slices"
	"time"

	"github.com/boomerang-dev/boomerang/webhooks"
)

// Label values of delivery attempts and deferrals; anything else (a class
// or reason added later and not listed here) is "other".
var (
	errorClasses = []string{webhooks.ClassDNS, webhooks.ClassConnect, webhooks.ClassTLS, webhooks.ClassTimeout,
		webhooks.ClassStatus, webhooks.ClassRedirect, webhooks.ClassBlocked, webhooks.ClassCircuit}
	deferReasons = []string{webhooks.DeferEndpointOpen, webhooks.DeferHostOpen, webhooks.DeferHostBusy, webhooks.DeferEndpointBusy}
	outcomes     = []string{webhooks.OutcomeDelivered, webhooks.OutcomeRetry, webhooks.OutcomeFailed}
)

// NoClass is the class label of an attempt that delivered.
const NoClass = "none"

func oneOf(v string, known []string) string {
	if slices.Contains(known, v) {
		return v
	}
	return "other"
}

// initDeliveries starts every attempt and deferral series that can occur
// at zero, so that rates exist before the first one.
func (m *Metrics) initDeliveries() {
	m.attempts.WithLabelValues(webhooks.OutcomeDelivered, NoClass)
	for _, o := range []string{webhooks.OutcomeRetry, webhooks.OutcomeFailed} {
		for _, c := range errorClasses {
			m.attempts.WithLabelValues(o, c)
		}
	}
	for _, r := range deferReasons {
		m.deferred.WithLabelValues(r)
	}
}

// DeliveryStore is a webhooks.Store that counts the attempts and deferrals
// it records: an attempt another run recorded first (ErrStale) is not
// counted twice.
type DeliveryStore struct {
	webhooks.Store
	m *Metrics
}

// Deliveries wraps the delivery store given to webhooks.Dispatcher.
func (m *Metrics) Deliveries(s webhooks.Store) *DeliveryStore {
	return &DeliveryStore{Store: s, m: m}
}

// RecordAttempt counts the attempt by outcome and class, its duration, and
// for a delivery's first success (not a replay's) the lag since its job
// ended, which is when the delivery was created.
func (s *DeliveryStore) RecordAttempt(ctx context.Context, d webhooks.Delivery, a webhooks.Attempt, status webhooks.Status) error {
	if err := s.Store.RecordAttempt(ctx, d, a, status); err != nil {
		return err
	}
	class := NoClass
	if a.ErrorClass != "" {
		class = oneOf(a.ErrorClass, errorClasses)
	}
	s.m.attempts.WithLabelValues(oneOf(a.Outcome, outcomes), class).Inc()
	if a.ErrorClass != webhooks.ClassCircuit { // not sent: nothing to time
		s.m.attemptDuration.Observe(float64(a.DurationMs) / 1000)
	}
	if status == webhooks.StatusDelivered && d.RoundStart == 0 && d.Replays == 0 && !d.CreatedAt.IsZero() {
		delivered := a.StartedAt.Add(time.Duration(a.DurationMs) * time.Millisecond)
		s.m.lag.Observe(max(0, delivered.Sub(d.CreatedAt).Seconds()))
	}
	return nil
}

// PostponeDelivery counts a deferral by reason.
func (s *DeliveryStore) PostponeDelivery(ctx context.Context, d webhooks.Delivery, n int, until time.Time, reason string) error {
	if err := s.Store.PostponeDelivery(ctx, d, n, until, reason); err != nil {
		return err
	}
	s.m.deferred.WithLabelValues(oneOf(reason, deferReasons)).Inc()
	return nil
}

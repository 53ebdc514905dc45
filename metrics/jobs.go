package metrics

import (
	"context"
	"slices"

	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// OtherType is the type label of a job whose type is not configured here
// (a job stored under an earlier configuration): labels stay bounded.
const OtherType = "other"

// finalStatuses are the statuses a job ends with.
var finalStatuses = []jobs.Status{jobs.StatusCompleted, jobs.StatusFailed, jobs.StatusCanceled, jobs.StatusExpired}

// JobStore is a jobs.Store that counts the jobs it creates and finishes:
// a job is counted once its write has succeeded.
type JobStore struct {
	jobs.Store
	m     *Metrics
	types map[string]bool
}

// Jobs wraps the job store given to jobs.Service. types are the configured
// job types (jobs.Registry.Names), the only type labels used; their
// counters start at zero.
func (m *Metrics) Jobs(s jobs.Store, types []string) *JobStore {
	js := &JobStore{Store: s, m: m, types: make(map[string]bool, len(types))}
	for _, t := range slices.Concat(types, []string{OtherType}) {
		js.types[t] = true
		m.jobsSubmitted.WithLabelValues(t)
		for _, st := range finalStatuses {
			m.jobsFinished.WithLabelValues(t, string(st))
		}
	}
	return js
}

func (s *JobStore) typeLabel(t string) string {
	if s.types[t] {
		return t
	}
	return OtherType
}

// CreateJob counts a job created now (not one an earlier request with the
// same Idempotency-Key created).
func (s *JobStore) CreateJob(ctx context.Context, j jobs.Job, idem *jobs.Idempotency) (string, string, error) {
	existing, fingerprint, err := s.Store.CreateJob(ctx, j, idem)
	if err == nil && existing == "" {
		s.m.jobsSubmitted.WithLabelValues(s.typeLabel(j.Type)).Inc()
	}
	return existing, fingerprint, err
}

// FinishJob counts a job's end, and its duration from submission, once
// recorded: another run that finished it first is refused, so a job ends
// once.
func (s *JobStore) FinishJob(ctx context.Context, j jobs.Job, m webhooks.Message) (webhooks.Delivery, error) {
	d, err := s.Store.FinishJob(ctx, j, m)
	if err != nil {
		return d, err
	}
	typ, status := s.typeLabel(j.Type), string(j.Status)
	if !j.Status.Final() {
		status = "other" // FinishJob refuses these; never a free-form label
	}
	s.m.jobsFinished.WithLabelValues(typ, status).Inc()
	end := j.UpdatedAt
	if j.CompletedAt != nil {
		end = *j.CompletedAt
	}
	if !j.CreatedAt.IsZero() && !end.Before(j.CreatedAt) {
		s.m.jobDuration.WithLabelValues(typ).Observe(end.Sub(j.CreatedAt).Seconds())
	}
	return d, nil
}

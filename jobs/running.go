package jobs

import (
	"context"
	"errors"
	"sync"
)

// errStopped: the job was canceled, expired or taken over while its
// processor ran; its run records nothing.
var errStopped = errors.New("processing stopped: the job ended or another run holds it")

// errEndedElsewhere is why a processor is stopped when another process
// canceled or expired its job.
var errEndedElsewhere = errors.New("job canceled or expired")

// runningSet holds the processors running in this process, so that a job
// canceled or expired anywhere stops here within the moment it takes the
// news to arrive (Service.Stop).
type runningSet struct {
	mu sync.Mutex
	m  map[string]*running
}

type running struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func newRunningSet() *runningSet { return &runningSet{m: map[string]*running{}} }

// add registers a run of job id; its ctx ends when stop is called.
func (r *runningSet) add(id string, parent context.Context) *running {
	ctx, cancel := context.WithCancelCause(parent)
	run := &running{ctx: ctx, cancel: cancel}
	r.mu.Lock()
	r.m[id] = run
	r.mu.Unlock()
	return run
}

func (r *runningSet) remove(id string, run *running) {
	r.mu.Lock()
	if r.m[id] == run {
		delete(r.m, id)
	}
	r.mu.Unlock()
	run.cancel(nil)
}

func (r *runningSet) get(id string) *running {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[id]
}

// stop ends the run's context with why.
func (r *running) stop(why error) { r.cancel(why) }

// cause is why the run was stopped, nil if it was not.
func (r *running) cause() error {
	c := context.Cause(r.ctx)
	if errors.Is(c, ErrFinished) || errors.Is(c, ErrNotFound) || errors.Is(c, errEndedElsewhere) {
		return c
	}
	return nil
}

// Stop stops the processor of job id if it runs in this process: its job
// was canceled or expired (the store's stop announcements call it).
func (s *Service) Stop(id string) {
	// A heartbeat within a second of the last one written is answered
	// from memory (beats): without this, an external worker's heartbeats
	// right after a cancel or an expiry were still told their lease holds.
	s.beats.forget(id)
	if run := s.running.get(id); run != nil {
		run.stop(errEndedElsewhere)
	}
}

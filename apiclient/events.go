package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Event is one event of a job's stream.
type Event struct {
	ID   string          // resume point: pass it as lastEventID to continue after this event
	Name string          // "status", "progress", or the final job.completed, job.failed, job.canceled, job.expired
	Data json.RawMessage // one JSON value
}

// Event names besides the final ones.
const (
	EventStatus   = "status"
	EventProgress = "progress"
)

// Final reports whether e is the last event of its job: the webhook's event.
func (e Event) Final() bool { return strings.HasPrefix(e.Name, "job.") }

// Decode decodes the event's data into v: a *StatusEvent, *ProgressEvent or *FinalEvent.
func (e Event) Decode(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("event %s %q: %w", e.ID, e.Name, err)
	}
	return nil
}

// StatusEvent is the data of a "status" event.
type StatusEvent struct {
	RequestID string    `json:"requestId"`
	Status    Status    `json:"status"`
	Attempt   int       `json:"attempt"`
	UpdatedAt time.Time `json:"updatedAt"`
	LastError *JobError `json:"lastError,omitempty"`
	Progress  *Progress `json:"progress,omitempty"`
}

// ProgressEvent is the data of a "progress" event.
type ProgressEvent struct {
	RequestID string    `json:"requestId"`
	Percent   float64   `json:"percent"`
	Message   string    `json:"message"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// FinalEvent is the data of a final event: the webhook's body exactly.
type FinalEvent struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      Job       `json:"data"`
}

// errStreamEnded is a stream that closed before its final event.
var errStreamEnded = errors.New("event stream ended before the job's final event")

// Events follows the event stream of job id, from after lastEventID (empty:
// from a snapshot of the job now). A dropped or silent connection is
// reconnected with Last-Event-ID, with backoff; the sequence ends after the
// final event, or with one error: a *Problem answer other than 429 or 5xx,
// ctx's end, or reconnections given up. Breaking out of the loop closes the
// connection.
func (c *Client) Events(ctx context.Context, id, lastEventID string) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		b := backoff.WithContext(c.newBackOff(), ctx)
		for {
			s := &eventStream{c: c, id: id, lastID: lastEventID, yield: yield}
			err := s.run(ctx)
			lastEventID = s.lastID
			if s.done {
				return
			}
			if s.got > 0 {
				b.Reset()
			}
			if !retryable(ctx, err) {
				yield(Event{}, fmt.Errorf("events of job %s: %w", id, err))
				return
			}
			wait := b.NextBackOff()
			if wait == backoff.Stop {
				yield(Event{}, fmt.Errorf("events of job %s: reconnecting given up: %w", id, err))
				return
			}
			wait = max(wait, s.retry)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				yield(Event{}, fmt.Errorf("events of job %s: %w (reconnecting after: %w)", id, ctx.Err(), err))
				return
			case <-t.C:
			}
		}
	}
}

// eventStream is one connection of an event stream.
type eventStream struct {
	c      *Client
	id     string
	lastID string
	yield  func(Event, error) bool
	done   bool          // the final event came, or the caller stopped
	got    int           // events yielded on this connection
	retry  time.Duration // the server's reconnection time
}

// run reads one connection until it ends; it yields each event.
func (s *eventStream) run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errIdle := fmt.Errorf("event stream silent for %s", s.c.idleTimeout)
	idle := time.AfterFunc(s.c.idleTimeout, func() { cancel(errIdle) })
	defer idle.Stop()

	r := request{method: http.MethodGet, path: jobPath("/v1", s.id) + "/events",
		header: http.Header{"Accept": {"text/event-stream"}, "Cache-Control": {"no-cache"}}}
	if s.lastID != "" {
		r.header.Set("Last-Event-ID", s.lastID)
	}
	resp, err := s.c.open(ctx, r, nil)
	if err != nil {
		return orCause(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readProblem(resp)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return &answerError{fmt.Errorf("content type %q, want text/event-stream", resp.Header.Get("Content-Type"))}
	}

	sr := newSSEReader(resp.Body, s.lastID)
	sr.onLine = func() { idle.Reset(s.c.idleTimeout) }
	for {
		ev, err := sr.next()
		s.lastID, s.retry = sr.lastID, sr.retry
		if errors.Is(err, io.EOF) {
			return errStreamEnded
		}
		if err != nil {
			return orCause(ctx, err)
		}
		s.got++
		if !s.yield(ev, nil) || ev.Final() {
			s.done = true
			return nil
		}
	}
}

// orCause adds the cause of ctx's end (the idle timer) to err.
func orCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%w: %w", cause, err)
	}
	return err
}

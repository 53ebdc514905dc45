package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"
)

// Event is one change of a watched job, as its watchers see it: ID counts
// the job's events from 1; Name is "status", "progress", or, last, the
// webhook's event type (job.completed, …), whose Data is the webhook body.
// The store keeps and publishes a job's events once someone watches it.
type Event struct {
	RequestID string
	ID        int
	Name      string
	Data      json.RawMessage
}

// finalEntry is the name of the store's entry that a job ended; watchers
// get the webhook event in its place.
const finalEntry = "final"

// Listen feeds the service what the store announces to every process:
// events of watched jobs (nil: this process serves no watchers), job types
// with work for external workers (nil: no claims here), and jobs that
// ended while they may run here (nil: no processors here). It returns at
// once; the feeding stops when the channels close.
func (s *Service) Listen(events <-chan Event, available, stops <-chan string) {
	if events != nil {
		go func() {
			for e := range events {
				s.hub.publish(e)
			}
		}()
	}
	if available != nil {
		go func() {
			for typ := range available {
				s.board.notify(typ)
			}
		}()
	}
	if stops != nil {
		go func() {
			for id := range stops {
				if id != "" {
					s.Stop(id)
				}
			}
		}()
	}
}

// Stream is a client's view of one job's events, from a Watch.
type Stream struct {
	// Events delivers the events in order, the last one the webhook
	// event; it closes after that, or when the watch's context ends.
	Events <-chan Event
	err    error
	done   chan struct{}
}

// Err is why Events closed early (nil when it closed after the last event
// or because the context ended).
func (st *Stream) Err() error {
	<-st.done
	return st.err
}

// ErrNoMoreEvents: a watcher resumed after the last event of a job that
// has ended; there is nothing more to send (HTTP answers 204, which tells
// a browser's EventSource to stop reconnecting).
var ErrNoMoreEvents = errors.New("the job has ended and its last event was sent")

// Watch follows a client's job (clientID "" for the operator). Without
// resume, the first event is a "status" event of the job as it stands,
// numbered as its last event; with resume, the events after lastEventID
// follow, or that status event if they are no longer kept. A job that has
// ended gets only its webhook event, at once.
func (s *Service) Watch(ctx context.Context, clientID, id string, lastEventID int, resume bool) (*Stream, error) {
	sub := s.hub.subscribe(id)
	j, last, err := s.store.WatchJob(ctx, id)
	if err == nil && clientID != "" && j.ClientID != clientID {
		err = ErrNotFound
	}
	if err == nil && resume && lastEventID >= last && j.Status.Final() {
		err = ErrNoMoreEvents // the watcher has the end already
	}
	if err != nil {
		s.hub.unsubscribe(id, sub)
		return nil, err
	}
	out := make(chan Event, 16)
	st := &Stream{Events: out, done: make(chan struct{})}
	go func() {
		defer close(st.done)
		defer close(out)
		defer s.hub.unsubscribe(id, sub)
		st.err = s.stream(ctx, j, last, lastEventID, resume, sub, out)
	}()
	return st, nil
}

func (s *Service) stream(ctx context.Context, j Job, last, after int, resume bool, sub *subscriber, out chan<- Event) error {
	send := func(e Event) bool {
		select {
		case out <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	sent := last
	if resume && after < last && after >= last-maxKeptEvents {
		// Replay what the watcher missed (the last may be the end).
		if ended, err := s.relay(ctx, j.ID, after, last, send); err != nil || ended {
			return err
		}
	} else if (!resume || after != last) && !j.Status.Final() {
		if !send(statusEvent(j, last)) {
			return nil
		}
	}
	if j.Status.Final() { // its end is all there is to say
		_, err := s.sendFinal(ctx, j.ID, last, send)
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.poke:
		}
		for _, e := range sub.drain() {
			switch {
			case e.ID == 0 || e.ID > sent+1:
				// Resubscribed, or events missed: read them back.
				_, upTo, err := s.store.WatchJob(ctx, j.ID)
				if err != nil {
					return err
				}
				if e.ID > upTo {
					upTo = e.ID
				}
				ended, err := s.relay(ctx, j.ID, sent, upTo, send)
				if err != nil || ended {
					return err
				}
				sent = max(sent, upTo)
			case e.ID == sent+1:
				sent = e.ID
				if e.Name == finalEntry {
					_, err := s.sendFinal(ctx, j.ID, e.ID, send)
					return err
				}
				if !send(e) {
					return nil
				}
			}
		}
	}
}

// relay sends the kept events after after, up to upTo; ended reports that
// the last was the end.
func (s *Service) relay(ctx context.Context, id string, after, upTo int, send func(Event) bool) (bool, error) {
	events, err := s.store.JobEvents(ctx, id, after, upTo)
	if err != nil {
		return false, err
	}
	for _, e := range events {
		if e.Name == finalEntry {
			return s.sendFinal(ctx, id, e.ID, send)
		}
		if !send(e) {
			return true, nil
		}
	}
	return false, nil
}

// sendFinal sends the webhook event of an ended job, numbered n.
func (s *Service) sendFinal(ctx context.Context, id string, n int, send func(Event) bool) (bool, error) {
	j, err := s.store.GetJob(ctx, id)
	if err != nil {
		return true, err
	}
	body, err := WebhookBody(j)
	if err != nil {
		return true, err
	}
	send(Event{RequestID: id, ID: n, Name: EventType(j.Status), Data: body})
	return true, nil
}

// maxKeptEvents is how many events the store keeps per watched job.
const maxKeptEvents = 50

// statusEvent is a "status" event of j as it stands, numbered n.
func statusEvent(j Job, n int) Event {
	type status struct {
		RequestID string     `json:"requestId"`
		Status    Status     `json:"status"`
		Attempt   int        `json:"attempt,omitempty"`
		UpdatedAt time.Time  `json:"updatedAt"`
		LastError *Error     `json:"lastError,omitempty"`
		Progress  *Progress  `json:"progress,omitempty"`
		Deadline  *time.Time `json:"deadline,omitempty"`
	}
	b, _ := json.Marshal(status{j.ID, j.Status, j.Attempts, j.UpdatedAt, j.LastError, j.Progress, j.Deadline})
	return Event{RequestID: j.ID, ID: n, Name: "status", Data: b}
}

// WaitFinal returns a client's job once it has ended, or as it stands
// when wait runs out.
func (s *Service) WaitFinal(ctx context.Context, clientID, id string, wait time.Duration) (Job, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	st, err := s.Watch(wctx, clientID, id, 0, false)
	if err != nil {
		return Job{}, err
	}
	for range st.Events { // the last is the end, if it comes in time
	}
	if err := st.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return Job{}, err
	}
	if ctx.Err() != nil {
		return Job{}, ctx.Err()
	}
	return s.Get(ctx, clientID, id)
}

// hub hands the events this process hears to its watchers.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[*subscriber]struct{}
}

// subscriber queues a watcher's events; poke says there are some.
type subscriber struct {
	mu     sync.Mutex
	queue  []Event
	poke   chan struct{}
	missed bool
}

func newHub() *hub { return &hub{subs: map[string]map[*subscriber]struct{}{}} }

func (h *hub) subscribe(id string) *subscriber {
	sub := &subscriber{poke: make(chan struct{}, 1)}
	h.mu.Lock()
	if h.subs[id] == nil {
		h.subs[id] = map[*subscriber]struct{}{}
	}
	h.subs[id][sub] = struct{}{}
	h.mu.Unlock()
	return sub
}

func (h *hub) unsubscribe(id string, sub *subscriber) {
	h.mu.Lock()
	delete(h.subs[id], sub)
	if len(h.subs[id]) == 0 {
		delete(h.subs, id)
	}
	h.mu.Unlock()
}

// publish hands e to the watchers of its job; a zero e (the subscription
// restarted) to every watcher, which then reads back what it missed.
func (h *hub) publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.RequestID == "" {
		for _, subs := range h.subs {
			for sub := range subs {
				sub.add(e)
			}
		}
		return
	}
	for sub := range h.subs[e.RequestID] {
		sub.add(e)
	}
}

// maxQueued bounds a slow watcher's queue; past it, events are dropped
// and read back from the store (a zero event stands for them).
const maxQueued = 256

func (sub *subscriber) add(e Event) {
	sub.mu.Lock()
	if len(sub.queue) < maxQueued {
		sub.queue = append(sub.queue, e)
	} else if !sub.missed {
		sub.missed = true
		sub.queue[len(sub.queue)-1] = Event{} // read back from the store
	}
	sub.mu.Unlock()
	select {
	case sub.poke <- struct{}{}:
	default:
	}
}

func (sub *subscriber) drain() []Event {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	q := sub.queue
	sub.queue, sub.missed = nil, false
	return q
}

package apiclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSSEParsing(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []Event
	}{
		{"one event", "id: 1\nevent: status\ndata: {\"a\":1}\n\n",
			[]Event{{"1", "status", []byte(`{"a":1}`)}}},
		{"comments and keepalives are skipped", ": keepalive\n\n: hi\nid: 2\n: in the middle\nevent: progress\ndata: {}\n\n",
			[]Event{{"2", "progress", []byte(`{}`)}}},
		{"CRLF and lone CR line ends", "id: 3\r\nevent: status\r\ndata: x\r\n\r\nid: 4\revent: progress\rdata: y\r\r",
			[]Event{{"3", "status", []byte("x")}, {"4", "progress", []byte("y")}}},
		{"no space after the colon; only one space removed", "id:5\nevent:status\ndata:  two\n\n",
			[]Event{{"5", "status", []byte(" two")}}},
		{"data lines join with LF", "data: a\ndata: b\ndata\n\n",
			[]Event{{"", "message", []byte("a\nb\n")}}},
		{"the id carries over to the next event", "id: 7\ndata: a\n\ndata: b\n\n",
			[]Event{{"7", "message", []byte("a")}, {"7", "message", []byte("b")}}},
		{"an event without data is not dispatched but sets the id", "id: 8\nevent: status\n\ndata: z\n\n",
			[]Event{{"8", "message", []byte("z")}}},
		{"unknown fields and an id with NUL are ignored", "id: 9\nfoo: bar\nid: a\x00b\ndata: q\n\n",
			[]Event{{"9", "message", []byte("q")}}},
		{"a byte order mark at the start", "\uFEFFdata: bom\n\n",
			[]Event{{"", "message", []byte("bom")}}},
		{"an unfinished event at the end is dropped", "data: done\n\ndata: half",
			[]Event{{"", "message", []byte("done")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newSSEReader(iotestOneByte(tt.stream), "")
			var got []Event
			for {
				ev, err := r.next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("next: %v", err)
				}
				got = append(got, ev)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("stream %q\ngot  %s\nwant %s", tt.stream, showEvents(got), showEvents(tt.want))
			}
		})
	}
}

// iotestOneByte reads s one byte at a time, as a slow network would deliver it.
func iotestOneByte(s string) io.Reader { return &oneByte{s: s} }

type oneByte struct{ s string }

func (o *oneByte) Read(p []byte) (int, error) {
	if o.s == "" {
		return 0, io.EOF
	}
	p[0] = o.s[0]
	o.s = o.s[1:]
	return 1, nil
}

func showEvents(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "[id=%q event=%q data=%q] ", e.ID, e.Name, e.Data)
	}
	return b.String()
}

// sseServer answers each connection with the next script: the lines to send,
// then whether to hold the connection open instead of closing it.
type sseServer struct {
	mu      sync.Mutex
	scripts []sseScript
	lastIDs []string // Last-Event-ID of each connection
}

type sseScript struct {
	status int // 0: 200 with an event stream
	body   string
	hold   bool
}

func (s *sseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.lastIDs = append(s.lastIDs, r.Header.Get("Last-Event-ID"))
	sc := s.scripts[min(len(s.lastIDs), len(s.scripts))-1]
	s.mu.Unlock()
	if r.URL.Path != "/v1/jobs/req_1/events" || r.Header.Get("Accept") != "text/event-stream" {
		http.Error(w, "bad request "+r.URL.Path, http.StatusBadRequest)
		return
	}
	if sc.status != 0 {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(sc.status)
		fmt.Fprintf(w, `{"type":"%snot-found","title":"Not found","status":%d}`, ProblemBase, sc.status)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, sc.body)
	w.(http.Flusher).Flush()
	if sc.hold {
		<-r.Context().Done()
	}
}

func (s *sseServer) seenLastIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lastIDs...)
}

const (
	evStatus   = "id: 1\nevent: status\ndata: {\"requestId\":\"req_1\",\"status\":\"PROCESSING\",\"attempt\":1}\n\n"
	evProgress = "id: 2\nevent: progress\ndata: {\"requestId\":\"req_1\",\"percent\":50,\"message\":\"half\"}\n\n"
	evFinal    = "id: 3\nevent: job.completed\ndata: {\"type\":\"job.completed\",\"timestamp\":\"2030-01-01T00:00:00Z\",\"data\":{\"requestId\":\"req_1\",\"status\":\"COMPLETED\",\"result\":{\"ok\":true}}}\n\n"
)

func TestEvents(t *testing.T) {
	tests := []struct {
		name        string
		scripts     []sseScript
		idle        time.Duration
		wantNames   []string
		wantLastIDs []string // Last-Event-ID sent on each connection
		wantErr     string   // the error ending the sequence, "" if it ends with the final event
	}{
		{"all at once", []sseScript{{body: evStatus + ": keepalive\n\n" + evProgress + evFinal}}, 0,
			[]string{"status", "progress", "job.completed"}, []string{""}, ""},
		{"stops after the final event though the server holds on", []sseScript{{body: evStatus + evFinal + evProgress, hold: true}}, 0,
			[]string{"status", "job.completed"}, []string{""}, ""},
		{"a dropped connection resumes with Last-Event-ID", []sseScript{{body: evStatus + evProgress + "id: 9\ndata: unfinished"}, {body: evFinal}}, 0,
			[]string{"status", "progress", "job.completed"}, []string{"", "2"}, ""},
		{"a 503 on reconnection is retried", []sseScript{{body: evStatus}, {status: 503}, {body: evFinal}}, 0,
			[]string{"status", "job.completed"}, []string{"", "1", "1"}, ""},
		{"a silent connection is reconnected", []sseScript{{body: evStatus + evProgress, hold: true}, {body: evFinal}}, 100 * time.Millisecond,
			[]string{"status", "progress", "job.completed"}, []string{"", "2"}, ""},
		{"404 ends it at once", []sseScript{{status: 404}}, 0,
			nil, []string{""}, "404 not-found"},
		{"reconnecting is given up", []sseScript{{body: evStatus}, {body: ""}}, 0,
			[]string{"status"}, []string{"", "1", "1", "1", "1"}, "reconnecting given up: event stream ended before the job's final event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &sseServer{scripts: tt.scripts}
			srv := httptest.NewServer(s)
			defer srv.Close()
			opts := []Option{WithBackOff(fastRetries)}
			if tt.idle > 0 {
				opts = append(opts, WithEventIdleTimeout(tt.idle))
			}
			c, _ := New(srv.URL, "bmr_k", opts...)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var names []string
			var gotErr error
			for ev, err := range c.Events(ctx, "req_1", "") {
				if err != nil {
					gotErr = err
					break
				}
				names = append(names, ev.Name)
			}
			if !reflect.DeepEqual(names, tt.wantNames) {
				t.Errorf("events %q, want %q", names, tt.wantNames)
			}
			if ids := s.seenLastIDs(); !reflect.DeepEqual(ids, tt.wantLastIDs) {
				t.Errorf("Last-Event-ID of each connection %q, want %q", ids, tt.wantLastIDs)
			}
			switch {
			case tt.wantErr == "" && gotErr != nil:
				t.Errorf("ended with %v, want the final event", gotErr)
			case tt.wantErr != "" && (gotErr == nil || !strings.Contains(gotErr.Error(), tt.wantErr)):
				t.Errorf("ended with %v, want an error with %q", gotErr, tt.wantErr)
			}
		})
	}
}

func TestEventsResumeFromAGivenID(t *testing.T) {
	s := &sseServer{scripts: []sseScript{{body: evFinal}}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _ := New(srv.URL, "bmr_k")
	for ev, err := range c.Events(context.Background(), "req_1", "2") {
		if err != nil {
			t.Fatal(err)
		}
		var f FinalEvent
		if err := ev.Decode(&f); err != nil || f.Data.Status != StatusCompleted || string(f.Data.Result) != `{"ok":true}` {
			t.Errorf("final event decoded as %+v, %v", f, err)
		}
	}
	if ids := s.seenLastIDs(); !reflect.DeepEqual(ids, []string{"2"}) {
		t.Errorf("Last-Event-ID %q, want [2]", ids)
	}
}

func TestEventsStopWhenTheLoopBreaks(t *testing.T) {
	s := &sseServer{scripts: []sseScript{{body: evStatus + evProgress, hold: true}}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _ := New(srv.URL, "bmr_k")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range c.Events(context.Background(), "req_1", "") {
			break
		}
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("breaking out of Events did not return while the server held the stream open")
	}
}

package handlers

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
)

// Following a job: its event stream, the long-poll, and cancel.

// keepAliveEvery is how often an idle event stream sends a comment, so
// that proxies do not cut it.
const keepAliveEvery = 15 * time.Second

// jobEvents streams a job's events as text/event-stream: a status event,
// then each change, then the webhook event, after which it closes. A
// Last-Event-ID header (or lastEventId parameter) resumes after that
// event.
func jobEvents(svc JobService, keepAlive time.Duration) http.Handler {
	if keepAlive <= 0 {
		keepAlive = keepAliveEvery
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "requestId", ids.Request)
		last, resume := 0, false
		if err == nil {
			last, resume, err = lastEventID(r)
		}
		var st *jobs.Stream
		if err == nil {
			st, err = svc.Watch(r.Context(), clientFrom(r.Context()).ID, id, last, resume)
		}
		if errors.Is(err, jobs.ErrNoMoreEvents) {
			w.WriteHeader(http.StatusNoContent) // EventSource: stop reconnecting
			return
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Time{}) // streams outlive the server's write timeout
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
		w.WriteHeader(http.StatusOK)
		_ = rc.Flush()
		tick := time.NewTicker(keepAlive)
		defer tick.Stop()
		for {
			select {
			case e, ok := <-st.Events:
				if !ok {
					return
				}
				if _, err := w.Write(formatEvent(e)); err != nil {
					return
				}
			case <-tick.C:
				if _, err := w.Write([]byte(": keepalive\n\n")); err != nil {
					return
				}
			}
			if rc.Flush() != nil {
				return
			}
		}
	})
}

// lastEventID reads where a reconnecting stream resumes.
func lastEventID(r *http.Request) (int, bool, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("lastEventId")
	}
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, false, fieldErr("Last-Event-ID", "must be the id of an event this stream sent (a whole number)")
	}
	return n, true, nil
}

// formatEvent writes one server-sent event; data of several lines (a
// pretty-printed result) goes in several data lines, which clients join
// with newlines.
func formatEvent(e jobs.Event) []byte {
	var b bytes.Buffer
	b.WriteString("id: ")
	b.WriteString(strconv.Itoa(e.ID))
	b.WriteString("\nevent: ")
	b.WriteString(e.Name)
	b.WriteByte('\n')
	data := bytes.ReplaceAll(bytes.ReplaceAll(e.Data, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		b.WriteString("data: ")
		b.Write(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// maxWait bounds the long-poll of GET /v1/jobs/{id}?wait=.
const maxWait = time.Minute

// waitParam reads ?wait=, a Go duration or whole seconds, 0 to 60 s.
func waitParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.Atoi(v)
		d, err = time.Duration(n)*time.Second, nerr
	}
	if err != nil || d < 0 || d > maxWait {
		return 0, fieldErr("wait", "must be a duration from 0s to 60s, such as 30s")
	}
	return d, nil
}

func cancelJob(svc JobService, admin bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "requestId", ids.Request)
		if err != nil {
			writeError(w, r, err)
			return
		}
		clientID := ""
		if !admin {
			clientID = clientFrom(r.Context()).ID
		}
		j, err := svc.Cancel(r.Context(), clientID, id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		v := viewJob(j)
		if admin {
			v.ClientID = j.ClientID
		}
		respond(w, http.StatusOK, v)
	})
}

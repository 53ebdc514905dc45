package apiclient

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
	"time"
)

// maxEventLine bounds one line of an event stream; a final event carries the
// job's result.
const maxEventLine = 16 << 20

// sseReader parses a text/event-stream as the HTML standard says
// (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
// lines end in LF, CRLF or CR; a line starting with ':' is a comment; a blank
// line dispatches the event; an event without data is not dispatched.
type sseReader struct {
	sc     *bufio.Scanner
	lastID string        // the last event ID: the id buffer as of the last dispatch
	idBuf  string        // the id buffer: kept from event to event
	retry  time.Duration // the server's reconnection time, 0 if not given
	onLine func()        // called after each line (idle timer)
	first  bool
}

func newSSEReader(r io.Reader, lastID string) *sseReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEventLine)
	sc.Split(scanSSELines)
	return &sseReader{sc: sc, lastID: lastID, idBuf: lastID, onLine: func() {}, first: true}
}

// next returns the next event. At the end of the stream it returns io.EOF
// (an event not ended by a blank line is dropped, as the standard says).
func (r *sseReader) next() (Event, error) {
	var name string
	var data strings.Builder
	hasData := false
	for r.sc.Scan() {
		r.onLine()
		line := r.sc.Text()
		if r.first {
			line = strings.TrimPrefix(line, "\uFEFF")
			r.first = false
		}
		if line == "" {
			r.lastID = r.idBuf
			if !hasData {
				name = ""
				continue
			}
			if name == "" {
				name = "message"
			}
			return Event{ID: r.lastID, Name: name, Data: []byte(data.String())}, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			name = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				r.idBuf = value
			}
		case "retry":
			if ms, err := strconv.ParseUint(value, 10, 32); err == nil {
				r.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	if err := r.sc.Err(); err != nil {
		return Event{}, err
	}
	return Event{}, io.EOF
}

// scanSSELines splits at LF, CRLF or a lone CR.
func scanSSELines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	i := bytes.IndexAny(data, "\r\n")
	switch {
	case i < 0 && atEOF && len(data) > 0:
		return len(data), data, nil
	case i < 0:
		return 0, nil, nil
	case data[i] == '\n':
		return i + 1, data[:i], nil
	case i+1 < len(data) && data[i+1] == '\n':
		return i + 2, data[:i], nil
	case i+1 < len(data) || atEOF:
		return i + 1, data[:i], nil
	}
	return 0, nil, nil // a CR last: wait to see whether an LF follows
}

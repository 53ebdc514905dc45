package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/boomerang-dev/boomerang/apiclient"
)

// watchCmd follows a job's events to its end: a live progress bar on a
// terminal, one line per change otherwise; then the result (or the error)
// as JSON. It fails unless the job completed.
func watchCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return withJob("watch", args, getenv, stderr, func(c *apiclient.Client, id string) error {
		return follow(ctx, c, id, stdout, isTerminal(stdout, getenv))
	})
}

// follow shows job id's events on out until its final event.
func follow(ctx context.Context, c *apiclient.Client, id string, out io.Writer, live bool) error {
	w := &watcher{out: out, live: live}
	for ev, err := range c.Events(ctx, id, "") {
		if err != nil {
			w.endLine()
			return err
		}
		if done, err := w.show(ev); done || err != nil {
			return err
		}
	}
	w.endLine()
	return fmt.Errorf("events of job %s ended without its final event", id)
}

// watcher draws a job's state as its events come.
type watcher struct {
	out     io.Writer
	live    bool // redraw one line (a terminal), else print a line per change
	status  apiclient.Status
	attempt int
	percent float64
	message string
	shown   string // the last state shown, to skip repeats (a reconnection's snapshot)
	drawn   bool   // a live line is on screen, without its newline
}

// show applies one event; done is true after the final one.
func (w *watcher) show(ev apiclient.Event) (done bool, err error) {
	switch {
	case ev.Name == apiclient.EventStatus:
		var s apiclient.StatusEvent
		if err := ev.Decode(&s); err != nil {
			return false, err
		}
		w.status, w.attempt = s.Status, s.Attempt
		if s.Progress != nil {
			w.percent, w.message = s.Progress.Percent, s.Progress.Message
		}
		w.draw(s.UpdatedAt)
	case ev.Name == apiclient.EventProgress:
		var p apiclient.ProgressEvent
		if err := ev.Decode(&p); err != nil {
			return false, err
		}
		w.percent, w.message = p.Percent, p.Message
		w.draw(p.UpdatedAt)
	case ev.Final():
		var f apiclient.FinalEvent
		if err := ev.Decode(&f); err != nil {
			return false, err
		}
		return true, w.final(f)
	}
	return false, nil // an event this version does not know
}

// final shows the end and prints the result or the error; it is an error
// unless the job completed.
func (w *watcher) final(f apiclient.FinalEvent) error {
	job := f.Data
	w.status = job.Status
	if job.Status == apiclient.StatusCompleted {
		w.percent = 100
	}
	if job.Error != nil {
		w.message = job.Error.Code + ": " + job.Error.Message
	}
	w.draw(f.Timestamp)
	w.endLine()
	if job.Status == apiclient.StatusCompleted {
		return printJSON(w.out, job.Result)
	}
	if job.Error != nil {
		if err := printJSON(w.out, mustJSON(job.Error)); err != nil {
			return err
		}
		return fmt.Errorf("job %s %s: %s: %s", job.RequestID, job.Status, job.Error.Code, job.Error.Message)
	}
	return fmt.Errorf("job %s %s", job.RequestID, job.Status)
}

// draw shows the current state, unless it is the one already shown.
func (w *watcher) draw(at time.Time) {
	msg := clip(oneLine(w.message), 120)
	if w.attempt > 1 {
		msg = strings.TrimSpace(fmt.Sprintf("%s (attempt %d)", msg, w.attempt))
	}
	pct := strconv.FormatFloat(w.percent, 'f', -1, 64)
	state := fmt.Sprintf("%s %s%% %s", w.status, pct, msg)
	if state == w.shown {
		return
	}
	w.shown = state
	if !w.live {
		if at.IsZero() {
			at = time.Now()
		}
		fmt.Fprintln(w.out, strings.TrimSpace(at.Format(time.RFC3339)+" "+state))
		return
	}
	// \r and "erase to the end of the line" redraw in place.
	fmt.Fprintf(w.out, "\r\x1b[K%-10s %s %3.0f%% %s", w.status, bar(w.percent, 30), math.Floor(w.percent), clip(msg, 50))
	w.drawn = true
}

// endLine ends a live line, so what follows starts on its own.
func (w *watcher) endLine() {
	if w.drawn {
		fmt.Fprintln(w.out)
		w.drawn = false
	}
}

// bar is a progress bar of width cells.
func bar(percent float64, width int) string {
	percent = min(max(percent, 0), 100)
	full := int(percent) * width / 100
	return "[" + strings.Repeat("█", full) + strings.Repeat("░", width-full) + "]"
}

// oneLine makes a message from a job safe to print on one line: control
// characters (a terminal's escape sequences among them) become spaces, and
// runs of spaces one.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// clip shortens s to n runes, so that a live line does not wrap.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

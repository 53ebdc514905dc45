package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// stderrTail is how much of COMMAND's stderr ends up in a failure's message.
const stderrTail = 4 << 10

// commandSpec is how work runs COMMAND for one job.
type commandSpec struct {
	argv      []string
	env       []string
	maxStdout int           // bytes of stdout kept; past it the result is too large
	killGrace time.Duration // between SIGTERM and SIGKILL; also how long a leftover process may hold the pipes
}

// outcome is how one run of COMMAND ended.
type outcome struct {
	stdout    []byte
	overflow  bool   // stdout passed maxStdout
	exitCode  int    // -1 if it did not exit by itself (a signal) or did not run
	signaled  string // "signal: killed", ...
	orphaned  bool   // it exited, but a process it started held stdout or stderr open
	tail      string // the end of stderr, at most stderrTail bytes
	startErr  error  // it could not be started
	duration  time.Duration
	cancelled bool // ctx ended while it ran
}

// runCommand runs COMMAND with stdin, in a process group of its own, until it
// exits or ctx ends; then the whole group gets SIGTERM, and SIGKILL after
// killGrace. Stderr lines "progress <percent> <message>" go to onProgress.
func runCommand(ctx context.Context, spec commandSpec, stdin []byte, onProgress func(percent float64, message string)) outcome {
	start := time.Now()
	cmd := exec.CommandContext(ctx, spec.argv[0], spec.argv[1:]...)
	cmd.Env = spec.env
	cmd.Stdin = bytes.NewReader(stdin)
	stdout := &cappedBuffer{max: spec.maxStdout}
	stderr := &stderrSink{onProgress: onProgress}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	ownProcessGroup(cmd) // and SIGTERM to the group when ctx ends
	cmd.WaitDelay = spec.killGrace

	err := cmd.Run()
	o := outcome{stdout: stdout.b.Bytes(), overflow: stdout.over, tail: stderr.tail(),
		cancelled: ctx.Err() != nil, duration: time.Since(start)}
	if o.cancelled || errors.Is(err, exec.ErrWaitDelay) {
		killGroup(cmd) // what is left of the tree
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		o.exitCode = 0
	case errors.Is(err, exec.ErrWaitDelay):
		o.exitCode, o.orphaned = 0, true
	case errors.As(err, &exit):
		o.exitCode = exit.ExitCode()
		if o.exitCode < 0 {
			o.signaled = exit.ProcessState.String()
		}
	case cmd.Process == nil:
		o.exitCode, o.startErr = -1, err
	default:
		o.exitCode, o.signaled = -1, err.Error()
	}
	return o
}

// cappedBuffer keeps the first max bytes written to it, and takes (and
// drops) the rest, so that COMMAND never blocks on a full pipe.
type cappedBuffer struct {
	b    bytes.Buffer
	max  int
	over bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := c.max - c.b.Len(); len(p) > room {
		c.over = true
		p = p[:max(room, 0)]
	}
	c.b.Write(p)
	return n, nil
}

// maxProgressLine bounds a line read for progress; longer lines are only kept in the tail.
const maxProgressLine = 2 << 10

// stderrSink keeps the end of COMMAND's stderr and reports its progress lines.
type stderrSink struct {
	ring       []byte // the end of stderr: at least the last stderrTail bytes
	line       []byte // the line being read
	long       bool   // the line being read passed maxProgressLine
	onProgress func(percent float64, message string)
}

func (s *stderrSink) Write(p []byte) (int, error) {
	s.ring = append(s.ring, p...)
	if len(s.ring) > 2*stderrTail {
		s.ring = append(s.ring[:0], s.ring[len(s.ring)-stderrTail:]...)
	}
	for rest := p; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			s.addToLine(rest)
			break
		}
		s.addToLine(rest[:i])
		s.endLine()
		rest = rest[i+1:]
	}
	return len(p), nil
}

func (s *stderrSink) addToLine(b []byte) {
	if s.long || len(s.line)+len(b) > maxProgressLine {
		s.long = true
		return
	}
	s.line = append(s.line, b...)
}

func (s *stderrSink) endLine() {
	if !s.long && s.onProgress != nil {
		if pct, msg, ok := parseProgress(string(bytes.TrimSuffix(s.line, []byte("\r")))); ok {
			s.onProgress(pct, msg)
		}
	}
	s.line, s.long = s.line[:0], false
}

// tail is the last stderrTail bytes of stderr, from a whole character on,
// as valid UTF-8 without surrounding space.
func (s *stderrSink) tail() string {
	b := s.ring
	if len(b) > stderrTail {
		b = b[len(b)-stderrTail:]
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.RuneStart(b[0]); i++ {
			b = b[1:]
		}
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
}

// maxProgressMessage bounds a progress message, in bytes, as the server
// does (jobs.MaxProgressMessage).
const maxProgressMessage = 1024

// parseProgress reads "progress <percent> [message]": percent a number from
// 0 to 100.
func parseProgress(line string) (percent float64, message string, ok bool) {
	rest, ok := strings.CutPrefix(line, "progress ")
	if !ok {
		return 0, "", false
	}
	num, message, _ := strings.Cut(strings.TrimLeft(rest, " "), " ")
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 100 {
		return 0, "", false
	}
	message = strings.TrimSpace(message)
	if len(message) > maxProgressMessage {
		message = message[:maxProgressMessage]
		for !utf8.ValidString(message) {
			message = message[:len(message)-1]
		}
	}
	return f, message, true
}

// describe says how COMMAND ended, for logs and messages.
func (o outcome) describe() string {
	switch {
	case o.startErr != nil:
		return "could not start: " + o.startErr.Error()
	case o.signaled != "":
		return o.signaled
	default:
		return fmt.Sprintf("exit status %d", o.exitCode)
	}
}

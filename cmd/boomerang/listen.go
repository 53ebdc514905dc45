package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/boomerang-dev/boomerang/signing"
)

const listenMaxBody = 10 << 20 // bytes

// listenShutdownTimeout bounds the graceful shutdown; a variable for tests.
var listenShutdownTimeout = 5 * time.Second

// secretsFlag collects --secret values; the flag may be repeated and each
// value may hold several comma-separated secrets.
type secretsFlag []string

func (s *secretsFlag) String() string {
	// Never show secrets, not even in usage messages.
	return fmt.Sprintf("%d secret(s)", len(*s))
}

func (s *secretsFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

// listen runs a local webhook receiver that verifies Standard Webhooks signatures and prints each webhook.
func listen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("boomerang listen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var secrets secretsFlag
	fs.Var(&secrets, "secret", "endpoint secret `whsec_...` to verify with (repeat the flag or separate with commas for several)")
	addr := fs.String("addr", ":9000", "`address` to listen on (host:port; port 0 picks a free one)")
	tolerance := fs.Duration("tolerance", signing.DefaultTolerance, "how far webhook timestamps may be from this machine's clock")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: boomerang listen --secret whsec_... [--addr :9000] [--tolerance 5m]")
		fmt.Fprintln(fs.Output(), "Receives webhooks on any path, verifies their signatures and prints them.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("listen: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("listen: unexpected argument %q", fs.Arg(0))
	}
	if len(secrets) == 0 {
		return errors.New("listen: --secret is required (the endpoint's whsec_... secret)")
	}
	if *tolerance <= 0 {
		return fmt.Errorf("listen: --tolerance must be positive, got %v", *tolerance)
	}
	verifier, err := signing.NewVerifier(secrets...)
	if err != nil {
		return fmt.Errorf("listen: --secret: %w", err)
	}
	verifier.Tolerance = *tolerance

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	out := &lockedWriter{w: stdout}
	srv := &http.Server{
		Handler:           &receiver{verifier: verifier, out: out},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          log.New(stderr, "boomerang listen: ", 0),
	}
	out.printf("listening on http://%s (verifying with %d secret(s))\n", ln.Addr(), len(secrets))

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("listen: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listenShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// A connection stayed busy (or was opened and never used, which
		// Shutdown waits 5 s for): drop whatever is left.
		fmt.Fprintf(stderr, "boomerang listen: closing connections still open after %v\n", listenShutdownTimeout)
		srv.Close()
	}
	<-serveErr // http.ErrServerClosed
	return nil
}

// lockedWriter serializes writes from concurrent handlers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) write(p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Write(p)
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.write(fmt.Appendf(nil, format, args...))
}

// receiver is the HTTP handler of boomerang listen.
type receiver struct {
	verifier *signing.Verifier
	out      *lockedWriter
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed: send webhooks with POST", http.StatusMethodNotAllowed)
		return
	}
	id := r.Header.Get(signing.HeaderID)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, listenMaxBody))
	if err != nil {
		status, reason := http.StatusBadRequest, "cannot read body"
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status, reason = http.StatusRequestEntityTooLarge, "body larger than 10 MiB"
		}
		rc.reject(w, id, status, reason)
		return
	}
	if err := rc.verifier.Verify(r.Header, body); err != nil {
		rc.reject(w, id, http.StatusUnauthorized, rejectReason(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)

	var b bytes.Buffer
	fmt.Fprintf(&b, "✔ webhook %s verified (timestamp %s, %d bytes) %s %s\n",
		printable(id), printable(r.Header.Get(signing.HeaderTimestamp)), len(body), r.Method, r.URL.RequestURI())
	var pretty bytes.Buffer
	switch {
	case len(body) == 0:
		b.WriteString("(empty body)")
	case json.Indent(&pretty, body, "", "  ") == nil:
		b.WriteString(printableText(pretty.Bytes()))
	default:
		b.WriteString(printableText(body))
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		b.WriteByte('\n')
	}
	rc.out.write(b.Bytes())
}

// reject answers with a short reason and prints it; it never shows the
// secret or the signature header.
func (rc *receiver) reject(w http.ResponseWriter, id string, status int, reason string) {
	http.Error(w, reason, status)
	if id == "" {
		id = "(no webhook-id)"
	}
	rc.out.printf("✘ rejected %s: %s\n", printable(id), reason)
}

// rejectReason turns a verification error into a short reason.
func rejectReason(err error) string {
	switch {
	case errors.Is(err, signing.ErrNoMatch):
		return "invalid signature"
	case errors.Is(err, signing.ErrMissingHeader), errors.Is(err, signing.ErrTimestamp):
		// e.g. "missing webhook header: webhook-id",
		// "invalid webhook timestamp: too old"
		return strings.TrimPrefix(err.Error(), "signing: ")
	}
	return "verification failed"
}

// printable makes a header value safe to print on one terminal line.
func printable(s string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
}

// printableText makes a non-JSON body safe to print: it keeps line breaks
// and tabs but replaces other control characters, so that a body cannot
// send escape sequences to the terminal.
func printableText(body []byte) string {
	if !utf8.Valid(body) {
		return fmt.Sprintf("(%d bytes, not UTF-8 text)", len(body))
	}
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			return r
		}
		return '?'
	}, strings.ReplaceAll(string(body), "\r\n", "\n"))
}

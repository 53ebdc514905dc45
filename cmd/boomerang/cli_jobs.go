package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/apiclient"
)

// submitCmd submits a job and prints the answer, or with --watch follows it
// to its end like watch.
func submitCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("submit", "submit --type T --payload JSON --callback URL [--idempotency-key K] [--deadline 10m|RFC3339] [--metadata k=v] [--watch]", stderr)
	typ := fs.String("type", "", "job `type`")
	payload := fs.String("payload", "", "the job's `JSON` payload, or @file to read it from a file")
	callback := fs.String("callback", "", "`URL` the signed webhook goes to when the job ends")
	idemKey := fs.String("idempotency-key", "", "`key` that makes a repeated submission answer as the first (and lets it be retried safely)")
	deadline := fs.String("deadline", "", "when the job expires: RFC 3339 time, or a duration from now such as 10m")
	meta := metadataFlag{}
	fs.Var(meta, "metadata", "`key=value` kept with the job and sent back in its webhook (repeatable)")
	watch := fs.Bool("watch", false, "follow the job to its end, as boomerang watch does")
	api := addAPIFlags(fs, "api-key", "BOOMERANG_API_KEY")
	positional, err := parseFlags(fs, args)
	if err != nil {
		return commandError("submit", err)
	}
	if len(positional) > 0 {
		return fmt.Errorf("submit: unexpected argument %q", positional[0])
	}
	sub := apiclient.Submission{Type: *typ, CallbackURL: *callback, IdempotencyKey: *idemKey}
	if len(meta) > 0 {
		sub.Metadata = meta
	}
	if sub.Payload, err = readPayload(*payload); err != nil {
		return fmt.Errorf("submit: --payload: %w", err)
	}
	if *deadline != "" {
		d, err := parseDeadline(*deadline, time.Now())
		if err != nil {
			return fmt.Errorf("submit: --deadline: %w", err)
		}
		sub.Deadline = &d
	}
	c, _, err := api.client(getenv)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	accepted, err := c.Submit(ctx, sub)
	if err != nil {
		return err
	}
	if !*watch {
		return printJSON(stdout, mustJSON(accepted))
	}
	fmt.Fprintf(stderr, "boomerang: submitted %s\n", accepted.RequestID)
	return follow(ctx, c, accepted.RequestID, stdout, isTerminal(stdout, getenv))
}

// readPayload returns the payload flag's JSON: inline, or @file. Empty sends none.
func readPayload(v string) (json.RawMessage, error) {
	if v == "" {
		return nil, nil
	}
	raw := []byte(v)
	if name, ok := strings.CutPrefix(v, "@"); ok {
		var err error
		if raw, err = os.ReadFile(name); err != nil {
			return nil, err
		}
	}
	if !json.Valid(raw) {
		return nil, errors.New("not valid JSON")
	}
	return raw, nil
}

// parseDeadline reads an RFC 3339 time, or a duration after now.
func parseDeadline(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2030-01-02T15:04:05Z) nor a duration (10m)", v)
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("%q: a duration must be positive", v)
	}
	return now.Add(d).UTC().Truncate(time.Second), nil
}

// metadataFlag collects --metadata key=value.
type metadataFlag map[string]string

func (m metadataFlag) String() string { return fmt.Sprintf("%d key(s)", len(m)) }

func (m metadataFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want key=value", v)
	}
	m[k] = val
	return nil
}

// statusCmd prints a job.
func statusCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return withJob("status", args, getenv, stderr, func(c *apiclient.Client, id string) error {
		job, err := c.Get(ctx, id)
		if err != nil {
			return err
		}
		return printJSON(stdout, job.Raw)
	})
}

// cancelCmd cancels a job and prints it.
func cancelCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return withJob("cancel", args, getenv, stderr, func(c *apiclient.Client, id string) error {
		job, err := c.Cancel(ctx, id)
		if err != nil {
			return err
		}
		return printJSON(stdout, job.Raw)
	})
}

// withJob parses the flags and the job ID of command name, about one job, then calls do.
func withJob(name string, args []string, getenv func(string) string, stderr io.Writer, do func(*apiclient.Client, string) error) error {
	fs := newFlagSet(name, name+" [--url URL] [--api-key KEY] ID", stderr)
	api := addAPIFlags(fs, "api-key", "BOOMERANG_API_KEY")
	positional, err := parseFlags(fs, args)
	if err != nil {
		return commandError(name, err)
	}
	id, err := oneID(positional)
	if err != nil {
		return commandError(name, err)
	}
	c, _, err := api.client(getenv)
	if err != nil {
		return commandError(name, err)
	}
	return do(c, id)
}

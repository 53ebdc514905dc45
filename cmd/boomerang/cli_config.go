package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/boomerang-dev/boomerang/apiclient"
)

// defaultURL is where `boomerang serve` listens unless BOOMERANG_ADDR says
// otherwise (":8080").
const defaultURL = "http://localhost:8080"

// apiFlags are the connection settings of a client command: a flag wins over
// its variable. Keys are best given in the environment, where ps cannot see
// them; they are never shown, not even as a flag's default.
type apiFlags struct {
	url    *string
	key    *string
	keyVar string
}

// addAPIFlags adds --url and the key flag (--api-key or --worker-key) to fs.
func addAPIFlags(fs *flag.FlagSet, keyFlag, keyVar string) *apiFlags {
	return &apiFlags{
		url:    fs.String("url", "", "`URL` of the Boomerang API (default $BOOMERANG_URL, else "+defaultURL+")"),
		key:    fs.String(keyFlag, "", "the `key` to authenticate with (default $"+keyVar+"; prefer the variable)"),
		keyVar: keyVar,
	}
}

// client returns an API client with the settings of the flags, else of the environment.
func (a *apiFlags) client(getenv func(string) string) (*apiclient.Client, string, error) {
	base := firstSet(*a.url, getenv("BOOMERANG_URL"), defaultURL)
	key := firstSet(*a.key, getenv(a.keyVar))
	if key == "" {
		return nil, "", fmt.Errorf("no key: set %s (or the flag)", a.keyVar)
	}
	c, err := apiclient.New(base, key, apiclient.WithUserAgent("boomerang-cli/"+version))
	if err != nil {
		return nil, "", err
	}
	return c, base, nil
}

func firstSet(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// parseFlags parses args with fs, allowing flags after the positional
// arguments too (`boomerang status ID --url ...`); it returns the positional
// arguments. -h answers flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// newFlagSet is a flag set that prints its usage line and defaults to stderr.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("boomerang "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: boomerang "+usage)
		fs.PrintDefaults()
	}
	return fs
}

// commandError wraps the error of command name, except -h (not an error).
func commandError(name string, err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

// oneID is the single positional argument of status, watch and cancel.
func oneID(positional []string) (string, error) {
	if len(positional) != 1 || positional[0] == "" {
		return "", fmt.Errorf("want one job ID, got %d arguments", len(positional))
	}
	return positional[0], nil
}

// printJSON writes raw indented, with a final newline.
func printJSON(w io.Writer, raw json.RawMessage) error {
	if len(raw) == 0 {
		raw = json.RawMessage("null")
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return fmt.Errorf("answer is not JSON: %w", err)
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// isTerminal reports whether w is a terminal that can redraw a line.
func isTerminal(w io.Writer, getenv func(string) string) bool {
	f, ok := w.(*os.File)
	if !ok || getenv("TERM") == "dumb" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// mustJSON encodes a value that always encodes.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

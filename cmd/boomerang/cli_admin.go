package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/boomerang-dev/boomerang/apiclient"
)

// The admin commands (clients, deliveries, replays) call the admin API with
// BOOMERANG_URL and BOOMERANG_ADMIN_TOKEN (--url, --admin-token). Each
// prints a table for people, or with --json the server's JSON for scripts.

// subcommand is one verb of an admin command group.
type subcommand struct {
	name, args, summary string
	run                 func(ctx context.Context, a *adminRun) error
}

// adminRun is one subcommand's run: its flags, parsed, and its outputs.
type adminRun struct {
	fs         *flag.FlagSet
	positional []string
	jsonOut    *bool
	api        *apiFlags
	getenv     func(string) string
	stdout     io.Writer
	stderr     io.Writer
	client     *apiclient.Client
}

// runGroup dispatches `boomerang <group> <sub> ...`; flags adds a
// subcommand's own flags to its flag set before parsing.
func runGroup(ctx context.Context, group string, subs []subcommand, flags map[string]func(*flag.FlagSet), args []string,
	getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		groupUsage(stderr, group, subs, flags)
		return fmt.Errorf("%s: want a subcommand (%s)", group, subNames(subs))
	}
	if isHelp(args[0]) { // asked for: on stdout, so that | less shows it
		groupUsage(stdout, group, subs, flags)
		return nil
	}
	for _, s := range subs {
		if s.name != args[0] {
			continue
		}
		name := group + " " + s.name
		a := &adminRun{getenv: getenv, stdout: stdout, stderr: stderr}
		a.fs = newFlagSet(name, name+" "+s.args, stderr)
		if add := flags[s.name]; add != nil {
			add(a.fs)
		}
		a.jsonOut = a.fs.Bool("json", false, "print JSON instead of a table")
		a.api = addAPIFlags(a.fs, "admin-token", "BOOMERANG_ADMIN_TOKEN")
		var err error
		if a.positional, err = parseFlags(a.fs, args[1:]); err != nil {
			return commandError(name, err)
		}
		if a.client, _, err = a.api.client(getenv); err != nil {
			return commandError(name, err)
		}
		return commandError(name, s.run(ctx, a))
	}
	return fmt.Errorf("%s: unknown subcommand %q (want %s)", group, args[0], subNames(subs))
}

func isHelp(s string) bool { return s == "-h" || s == "-help" || s == "--help" || s == "help" }

func subNames(subs []subcommand) string {
	var n []string
	for _, s := range subs {
		n = append(n, s.name)
	}
	return strings.Join(n, ", ")
}

// groupUsage lists a group's subcommands with their arguments and flags.
func groupUsage(w io.Writer, group string, subs []subcommand, flags map[string]func(*flag.FlagSet)) {
	fmt.Fprintf(w, "usage: boomerang %s <subcommand> [flags]\n\nSubcommands:\n", group)
	for _, s := range subs {
		fmt.Fprintf(w, "  %s %s\n    \t%s\n", s.name, s.args, s.summary)
		if add := flags[s.name]; add != nil {
			fs := flag.NewFlagSet(s.name, flag.ContinueOnError)
			add(fs)
			fs.VisitAll(func(f *flag.Flag) {
				arg, usage := flag.UnquoteUsage(f)
				fmt.Fprintf(w, "      --%s\n        \t%s\n", strings.TrimSpace(f.Name+" "+arg), usage)
			})
		}
	}
	fmt.Fprint(w, `
Every subcommand also takes:
  --json         print JSON instead of a table
  --url URL      the Boomerang API (default $BOOMERANG_URL, else `+defaultURL+`)
  --admin-token  the admin token (default $BOOMERANG_ADMIN_TOKEN; prefer the variable)
`)
}

// ids returns the n positional arguments, named by what.
func (a *adminRun) ids(what ...string) ([]string, error) {
	if len(a.positional) != len(what) {
		return nil, fmt.Errorf("want %s, got %d arguments", strings.Join(what, " "), len(a.positional))
	}
	return a.positional, nil
}

// print writes v as JSON with --json, else calls table.
func (a *adminRun) print(v any, table func(w *tabwriter.Writer)) error {
	if *a.jsonOut {
		return printJSON(a.stdout, mustJSON(v))
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// when formats an optional time for a table.
func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// dash stands in for an empty cell.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseWhen reads --since/--until: an RFC 3339 time, or a duration ago
// (2h means two hours before now).
func parseWhen(flagName, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--%s: %q is neither an RFC 3339 time nor a duration ago such as 2h", flagName, v)
}

// errNeedFilter keeps a bulk command from matching everything by accident.
var errNeedFilter = errors.New("give an ID, or a filter (--status, --client, --since, --until), or --all")

// flag returns the value of one of the subcommand's own flags.
func (a *adminRun) flag(name string) string { return a.fs.Lookup(name).Value.String() }

func (a *adminRun) flagBool(name string) bool { return a.flag(name) == "true" }

func (a *adminRun) flagInt(name string) int {
	n, _ := strconv.Atoi(a.flag(name))
	return n
}

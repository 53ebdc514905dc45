// Command boomerang runs the Boomerang service and its tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "boomerang:", err)
		os.Exit(1)
	}
}

// command is one subcommand: the table below is both the dispatch and the
// list `boomerang help` prints, so neither can miss one.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the service (configured by BOOMERANG_* variables, listed by serve -h)", serve},
		{"listen", "run a local webhook receiver that verifies signatures", func(ctx context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
			return listen(ctx, args, stdout, stderr)
		}},
		{"submit", "submit a job: submit --type T --payload JSON --callback URL [--watch]", submitCmd},
		{"status", "print a job: status ID", statusCmd},
		{"watch", "follow a job to its end, with its progress: watch ID", watchCmd},
		{"cancel", "cancel a job: cancel ID", cancelCmd},
		{"work", "run an external worker: work --type T -- COMMAND ARGS... (payload on stdin, result JSON on stdout)",
			func(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
				return workCmd(ctx, args, getenv, stderr)
			}},
		{"healthcheck", "exit 0 if this container's process is ready (GET /readyz), for a HEALTHCHECK", healthcheck},
		{"clients", "manage clients (admin): create|list|show|rotate-secret|add-key|revoke-key|disable", clientsCmd},
		{"deliveries", "inspect and resend deliveries (admin): list|show|replay|retry-now", deliveriesCmd},
		{"replays", "follow a bulk replay (admin): show ID", replaysCmd},
		{"version", "print the version", func(_ context.Context, _ []string, _ func(string) string, stdout, _ io.Writer) error {
			_, err := fmt.Fprintln(stdout, version)
			return err
		}},
		{"help", "print this help, or a command's: help [COMMAND]", nil}, // run handles it
	}
}

// printUsage lists every command.
func printUsage(w io.Writer) {
	fmt.Fprint(w, "usage: boomerang <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
submit, status, watch and cancel use BOOMERANG_URL (default http://localhost:8080)
and BOOMERANG_API_KEY; work uses BOOMERANG_URL and BOOMERANG_WORKER_KEY; clients,
deliveries and replays use BOOMERANG_URL and BOOMERANG_ADMIN_TOKEN. The flags --url,
--api-key, --worker-key and --admin-token override them. boomerang <command> -h
(or boomerang help <command>) lists a command's flags.

The load benchmark is a separate command: go run ./cmd/boomerang-bench
`)
}

// run is the whole program; tests call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		printUsage(stderr)
		return errors.New("no command given")
	}
	name, rest := args[1], args[2:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 || name != "help" {
			printUsage(stdout)
			return nil
		}
		// help COMMAND: the command's own -h, on stdout.
		name, rest, stderr = rest[0], []string{"-h"}, stdout
	}
	for _, c := range commands() {
		if c.name == name && c.run != nil {
			return c.run(ctx, rest, getenv, stdout, stderr)
		}
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	return fmt.Errorf("unknown command %q (want %s; boomerang help lists them)", name, strings.Join(names, ", "))
}

// Command boomerang runs the Boomerang service and its tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
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

const usage = `usage: boomerang <command> [flags]

Commands:
  serve     run the service (configured by BOOMERANG_* variables; serve -h)
  listen    run a local webhook receiver that verifies signatures (listen -h)
  submit    submit a job: submit --type T --payload JSON --callback URL [--watch]
  status    print a job: status ID
  watch     follow a job to its end, with its progress: watch ID
  cancel    cancel a job: cancel ID
  work      run an external worker: work --type T [--concurrency N] -- COMMAND ARGS...
            (the payload on COMMAND's stdin, its stdout JSON the result)
  healthcheck  exit 0 if this container's process is ready (GET /readyz), for HEALTHCHECK
  version   print the version

submit, status, watch and cancel use BOOMERANG_URL (default http://localhost:8080)
and BOOMERANG_API_KEY; work uses BOOMERANG_URL and BOOMERANG_WORKER_KEY.
The flags --url, --api-key and --worker-key override them; <command> -h for more.

The load benchmark is a separate command: go run ./cmd/boomerang-bench
`

// run is the whole program; tests call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[1] {
	case "serve":
		return serve(ctx, args[2:], getenv, stdout, stderr)
	case "listen":
		return listen(ctx, args[2:], stdout, stderr)
	case "submit":
		return submitCmd(ctx, args[2:], getenv, stdout, stderr)
	case "status":
		return statusCmd(ctx, args[2:], getenv, stdout, stderr)
	case "watch":
		return watchCmd(ctx, args[2:], getenv, stdout, stderr)
	case "cancel":
		return cancelCmd(ctx, args[2:], getenv, stdout, stderr)
	case "work":
		return workCmd(ctx, args[2:], getenv, stderr)
	case "healthcheck":
		return healthcheck(ctx, args[2:], getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	}
	return fmt.Errorf("unknown command %q (want serve, listen, submit, status, watch, cancel, work, healthcheck, version)", args[1])
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/config"
)

// healthcheck asks a running process of this container whether it is ready
// (GET /readyz, or -path), for a Dockerfile HEALTHCHECK: the distroless
// image has no shell and no curl. It reads the same BOOMERANG_* variables
// as serve to find the listener: BOOMERANG_ADDR for a process that runs
// the API, BOOMERANG_ADMIN_ADDR for a worker-only one (its only listener).
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("path", "/readyz", "route to GET: /readyz (ready: Redis answers, workers run) or /healthz (alive)")
	base := fs.String("url", "", "base URL of the process (default: from BOOMERANG_ROLE, BOOMERANG_ADDR and BOOMERANG_ADMIN_ADDR)")
	timeout := fs.Duration("timeout", 3*time.Second, "longest wait for the answer")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: boomerang healthcheck [-path /readyz] [-url URL] [-timeout 3s]\n\n"+
			"Exits 0 if the route answers 200, 1 otherwise (for a container HEALTHCHECK).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *base == "" {
		addr, err := healthAddr(getenv)
		if err != nil {
			return err
		}
		*base = loopbackURL(addr)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	target := strings.TrimSuffix(*base, "/") + "/" + strings.TrimPrefix(*path, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s answered %s", target, resp.Status)
	}
	fmt.Fprintf(stdout, "boomerang: %s ok\n", target)
	return nil
}

// healthAddr is the listen address that serves the health routes in a
// process configured by getenv, as serve sets up its listeners.
func healthAddr(getenv func(string) string) (string, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return "", fmt.Errorf("configuration:\n%w", err)
	}
	if cfg.Role.RunsAPI() {
		return cfg.Addr, nil
	}
	if cfg.AdminAddr == "" {
		return "", errors.New("healthcheck: a worker-only process (BOOMERANG_ROLE=worker) serves /healthz and /readyz only on BOOMERANG_ADMIN_ADDR, which is not set")
	}
	return cfg.AdminAddr, nil
}

// loopbackURL is the URL of a listen address from inside its container:
// an unspecified host (":8080", "0.0.0.0:8080") is asked on 127.0.0.1,
// which needs no name resolution (a distroless image has no resolver
// configuration of its own).
func loopbackURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

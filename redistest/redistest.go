// Package redistest gives each test its own empty Redis database on a real
// server, so tests never skip and packages never flush each other's data.
//
// Where the server comes from, in order:
//  1. BOOMERANG_TEST_REDIS_URL, if set: a server someone else runs. Each test
//     takes the next database number (1..15, claimed with INCR in db 0) and
//     flushes it first, so use such a server for one package at a time
//     (go test -p 1) or give each run its own server.
//  2. Otherwise a private redis-server on a free loopback port, started once
//     per test binary with 100 000 databases and no persistence, killed when
//     the binary exits. Each test gets a fresh database; nothing is flushed.
//  3. Otherwise (no redis-server on PATH) the embedded miniredis, with a loud
//     log line, so the suite still runs on a bare machine.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

var (
	once    sync.Once
	baseURL string // redis://host:port
	shared  bool   // BOOMERANG_TEST_REDIS_URL: claim and flush databases
	nextDB  atomic.Int64
	initErr error
	kind    string
)

func setup() {
	if u := os.Getenv("BOOMERANG_TEST_REDIS_URL"); u != "" {
		parsed, err := url.Parse(u)
		if err != nil {
			initErr = fmt.Errorf("BOOMERANG_TEST_REDIS_URL: %w", err)
			return
		}
		parsed.Path = ""
		baseURL, shared, kind = parsed.String(), true, "BOOMERANG_TEST_REDIS_URL"
		return
	}
	if path, err := exec.LookPath("redis-server"); err == nil {
		baseURL, initErr = startServer(path)
		kind = "private redis-server"
		return
	}
	fmt.Fprintln(os.Stderr, "redistest: WARNING: no redis-server on PATH and BOOMERANG_TEST_REDIS_URL unset; using embedded miniredis")
	mr := miniredis.NewMiniRedis()
	mr.ClockTTL(true)
	if err := mr.Start(); err != nil {
		initErr = err
		return
	}
	baseURL, kind = "redis://"+mr.Addr(), "embedded miniredis"
}

func startServer(path string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--databases", "100000",
		"--maxmemory-policy", "noeviction", "--dir", os.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start redis-server: %w", err)
	}
	go func() { // drain so redis-server never blocks on a full pipe
		s := bufio.NewScanner(stdout)
		for s.Scan() {
		}
	}()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c := redis.NewClient(&redis.Options{Addr: addr})
		err := c.Ping(context.Background()).Err()
		c.Close()
		if err == nil {
			return "redis://" + addr, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return "", fmt.Errorf("redis-server on %s did not answer within 10s", addr)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URL returns the URL of a Redis database that belongs to this test alone.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(setup)
	if initErr != nil {
		t.Fatalf("redistest: %v", initErr)
	}
	if !shared {
		return fmt.Sprintf("%s/%d", baseURL, nextDB.Add(1))
	}
	ctx := context.Background()
	c := redis.NewClient(mustOptions(t, baseURL))
	defer c.Close()
	n, err := c.Incr(ctx, "redistest:nextdb").Result()
	if err != nil {
		t.Fatalf("redistest: claim a database: %v", err)
	}
	u := fmt.Sprintf("%s/%d", baseURL, 1+(n-1)%15)
	db := redis.NewClient(mustOptions(t, u))
	defer db.Close()
	if err := db.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("redistest: flush: %v", err)
	}
	return u
}

// Client returns a client of a database that belongs to this test alone,
// closed when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(mustOptions(t, URL(t)))
	t.Cleanup(func() { c.Close() })
	return c
}

func mustOptions(t testing.TB, u string) *redis.Options {
	t.Helper()
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return opt
}

// Kind says which kind of server the tests use, for test logs.
func Kind() string {
	once.Do(setup)
	return kind
}

package redistest

import (
	"context"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartServer starts a redis-server of the test's own, with extra
// configuration args (e.g. "--appendonly", "yes"), and returns its URL; it
// is killed when the test ends. For tests of how Boomerang reads a
// server's configuration: it skips the test only if there is no
// redis-server to start.
func StartServer(t testing.TB, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redistest.StartServer: no redis-server on PATH")
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", t.TempDir()}, args...)
	cmd := exec.Command(path, all...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server %v: %v", args, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c.Ping(context.Background()).Err() == nil {
			return "redis://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server %v on %s did not answer within 10s", args, addr)
		}
	}
}

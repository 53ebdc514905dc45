package redistest

import (
	"os/exec"
	"strconv"
	"testing"
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
	p := &process{dir: t.TempDir()}
	err = p.run(path, func(port int) ([]string, error) {
		return append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", p.dir}, args...), nil
	})
	if err != nil {
		t.Fatalf("start redis-server %v: %v", args, err)
	}
	t.Cleanup(p.kill)
	return "redis://" + p.addr
}

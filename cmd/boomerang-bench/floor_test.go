package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkLoopbackExchange measures the floor under the throughput phase:
// the CPU time (user + system, this process) of one HTTP/1.1 request over
// loopback with Go's net/http, client and server both counted, at the
// bench's concurrency of 32, with a body of a submission's size and no
// work at all in the handler. A Boomerang job makes two such exchanges (the
// submission and the webhook), so twice this is CPU the machine spends per
// job before any Redis, JSON or signing:
//
//	go test ./cmd/boomerang-bench -run XXX -bench LoopbackExchange
func BenchmarkLoopbackExchange(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"requestId":"req_01KBENCHBENCHBENCHBENCHBE","status":"ACCEPTED"}` + "\n"))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	const concurrency = 32
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * concurrency}}
	url := "http://" + l.Addr().String() + "/v1/jobs"
	body := []byte(`{"type":"echo","payload":{"n":12345},"callbackUrl":"http://127.0.0.1:40000","metadata":{"bench":"throughput-1"}}`)
	post := func() error {
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	for range concurrency { // open the connections before measuring
		if err := post(); err != nil {
			b.Fatal(err)
		}
	}
	cpu0 := processCPU(b)
	b.ResetTimer()
	var next sync.Mutex
	left := b.N
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for {
				next.Lock()
				if left == 0 {
					next.Unlock()
					return
				}
				left--
				next.Unlock()
				if err := post(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// processCPU is this process's user + system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package handlers_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/handlers"
)

// worstBody is a submission body whose payload has a hostile shape, of
// about size bytes.
type worstBody struct {
	name   string
	status int // the answer: the body is read in full whatever it is
	build  func(size int) string
}

func submission(payload string) string {
	return `{"type":"echo","callbackUrl":"` + okCallback + `","payload":` + payload + `}`
}

func manyKeysPayload(size int, keysPerObject int, escaped bool) string {
	var b strings.Builder
	b.WriteString("[")
	for i := 0; b.Len() < size-64; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("{")
		for k := 0; k < keysPerObject; k++ {
			if k > 0 {
				b.WriteString(",")
			}
			if escaped {
				fmt.Fprintf(&b, `"\u006b%d":1`, i*keysPerObject+k)
			} else {
				fmt.Fprintf(&b, `"k%d":1`, i*keysPerObject+k)
			}
		}
		b.WriteString("}")
	}
	b.WriteString("]")
	return b.String()
}

func oneObjectPayload(size int, tail string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; b.Len() < size-64; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%d":1`, i)
	}
	b.WriteString(tail + "}")
	return b.String()
}

var worstBodies = []worstBody{
	{"one object, 55 000+ keys", http.StatusAccepted, func(n int) string { return submission(oneObjectPayload(n, "")) }},
	{"one object, repeated key at the end", http.StatusBadRequest, func(n int) string { return submission(oneObjectPayload(n, `,"k0":2`)) }},
	{"small objects, escaped keys", http.StatusAccepted, func(n int) string { return submission(manyKeysPayload(n, 7, true)) }},
	{"objects 9 999 deep", http.StatusAccepted, func(n int) string {
		d := min(9990, n/6)
		return submission(strings.Repeat(`{"a":`, d) + "1" + strings.Repeat("}", d))
	}},
	{"arrays far too deep", http.StatusBadRequest, func(n int) string { return submission(strings.Repeat("[", n)) }},
	{"string of escapes", http.StatusAccepted, func(n int) string { return submission(`"` + strings.Repeat(`\u00e9`, n/6) + `"`) }},
	{"lone surrogate at the end", http.StatusUnprocessableEntity, func(n int) string {
		return submission(`"` + strings.Repeat(`\ud83d\ude00`, n/12) + `\ud800"`)
	}},
	{"numbers", http.StatusAccepted, func(n int) string { return submission("[" + strings.Repeat("-0.5e-7,", n/8) + "1]") }},
}

// plainBody is the baseline: a payload of the same size in one plain string.
func plainBody(size int) string { return submission(`"` + strings.Repeat("x", size) + `"`) }

// TestWorstCaseBodiesCostLikePlainOnes sends each hostile body shape through
// the real submission path (strict check, decoding, validation, a real job
// store on Redis) and compares its cost with a plain body of the same size
// measured in the same run: the shape of a body must not make it cost much
// more than its size. Before the single-pass check, 110 000 keys took
// 0.26–1.0 s. Bodies of 250 and 500 KiB also show the cost grows linearly.
// Times are logged; only ratios are asserted.
func TestWorstCaseBodiesCostLikePlainOnes(t *testing.T) {
	e := newEnv()
	e.useRealJobs(t)
	e.deps.MaxBody = 1 << 20
	h := e.handler()
	run := func(body string) (time.Duration, int) {
		best := time.Duration(1 << 62)
		code := 0
		for range 5 {
			req := httptest.NewRequest(http.MethodPost, "/v1/jobs", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+keyA)
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			start := time.Now()
			h.ServeHTTP(w, req)
			best = min(best, time.Since(start))
			code = w.Code
		}
		return best, code
	}
	for _, wb := range worstBodies {
		t.Run(wb.name, func(t *testing.T) {
			const small, large = 250 << 10, 500 << 10
			var costSmall, costLarge time.Duration
			for attempt := 0; attempt < 3; attempt++ { // a noisy machine gets two more tries
				bs, bl := wb.build(small), wb.build(large)
				cs, code := run(bs)
				if code != wb.status {
					t.Fatalf("%d-byte body answered %d, want %d", len(bs), code, wb.status)
				}
				cl, _ := run(bl)
				plain, _ := run(plainBody(len(bl)))
				costSmall, costLarge = cs, cl
				ratio, growth := float64(cl)/float64(plain), float64(cl)/float64(cs)
				t.Logf("%d bytes: %v (plain body of that size %v, ratio %.1f); %d bytes: %v (growth %.2f)",
					len(bl), cl.Round(10*time.Microsecond), plain.Round(10*time.Microsecond), ratio, len(bs),
					cs.Round(10*time.Microsecond), growth)
				if ratio <= 8 && growth <= 3.5 {
					return
				}
			}
			t.Errorf("cost %v at 500 KiB and %v at 250 KiB: not linear, or over 8× a plain body of the same size", costLarge, costSmall)
		})
	}
}

// BenchmarkSubmitWorstCase measures the whole submission path for each
// hostile 500 KiB body, beside a plain one (go test -bench SubmitWorstCase).
func BenchmarkSubmitWorstCase(b *testing.B) {
	e := newEnv()
	e.useRealJobs(b)
	e.deps.MaxBody = 1 << 20
	h := e.handler()
	cases := append([]worstBody{{"plain string", http.StatusAccepted, plainBody}}, worstBodies...)
	for _, wb := range cases {
		body := wb.build(500 << 10)
		b.Run(wb.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			submitLoop(b, h, body, wb.status)
		})
	}
}

// submitLoop submits body as client A until the benchmark ends.
func submitLoop(b *testing.B, h http.Handler, body string, status int) {
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/jobs", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+keyA)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != status {
			b.Fatalf("answered %d, want %d: %.200s", w.Code, status, w.Body)
		}
	}
}

var _ = handlers.ProblemBase

// BenchmarkSubmitTypical measures the submission handler (middleware,
// strict check, decoding, validation, a real job store on Redis) for the
// body boomerang-bench sends (go test -bench SubmitTypical -benchmem).
func BenchmarkSubmitTypical(b *testing.B) {
	e := newEnv()
	e.useRealJobs(b)
	h := e.handler()
	const body = `{"type":"echo","payload":{"n":12345},"callbackUrl":"https://hooks.example.com/in","metadata":{"bench":"throughput-1"}}`
	submitLoop(b, h, body, http.StatusAccepted)
}

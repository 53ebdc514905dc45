package strictjson_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/testkit"

	"github.com/boomerang-dev/boomerang/strictjson"
)

// A worstCase builds a body of about size bytes that was slow for the old
// Decoder.Token check, or would be for a naive checker (one that recurses,
// rescans, or compares each key with all the others).
type worstCase struct {
	name  string
	build func(size int) []byte
	want  strictjson.Kind // 0: valid
}

var worstCases = []worstCase{
	{"keys in one object", func(n int) []byte { return manyKeys(n, `"%s":0`, "}") }, 0},
	{"escaped keys in one object", func(n int) []byte { return manyKeys(n, `"\u006b%s":0`, "}") }, 0},
	{"repeat after all keys of one object", func(n int) []byte { return manyKeys(n, `"%s":0`, `,"0":1}`) }, strictjson.DuplicateKey},
	{"keys in 2-key objects", func(n int) []byte { return repeatIn("[", object(2, `"%c":0`), "]", n) }, 0},
	// Check compares each key of an object with the others up to 6 keys,
	// and hashes them past that.
	{"keys alike in 6-key objects", func(n int) []byte { return repeatIn("[", object(6, `"k%ck":0`), "]", n) }, 0},
	{"long keys alike in 6-key objects", func(n int) []byte {
		return repeatIn("[", object(6, `"`+strings.Repeat("k", 60)+`%c":0`), "]", n)
	}, 0},
	{"keys alike in 7-key objects", func(n int) []byte { return repeatIn("[", object(7, `"k%ck":0`), "]", n) }, 0},
	{"keys in 17-key objects", func(n int) []byte { return repeatIn("[", object(17, `"%c":0`), "]", n) }, 0},
	{"deep arrays", func(n int) []byte { return bytes.Repeat([]byte("["), n) }, strictjson.TooDeep},
	{"deep objects at the limit", func(n int) []byte {
		const d = strictjson.MaxDepth - 1 // inside the outer array
		return repeatIn("[", strings.Repeat(`{"a":`, d)+"0"+strings.Repeat("}", d), "]", n)
	}, 0},
	{`string of \u00e9 escapes`, func(n int) []byte { return repeatIn(`"`, `\u00e9`, `"`, n) }, 0},
	{"string of surrogate pair escapes", func(n int) []byte { return repeatIn(`"`, `\ud83d\ude00`, `"`, n) }, 0},
	{"string of raw UTF-8", func(n int) []byte { return repeatIn(`"`, `é😀中`, `"`, n) }, 0},
	{"small numbers in an array", func(n int) []byte {
		var b []byte
		b = append(b, '[')
		for i := 0; len(b) < n-8; i++ {
			b = fmt.Appendf(b, "%d,", i%1000)
		}
		return append(b, "0]"...)
	}, 0},
}

// manyKeys returns an object of distinct short keys, of about n bytes,
// each key formatted into keyValue; end closes the object.
func manyKeys(n int, keyValue, end string) []byte {
	b := []byte{'{'}
	for i := 0; len(b) < n-len(end)-len(keyValue)-4; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, keyValue, shortKey(i))
	}
	return append(b, end...)
}

// object returns an object of n keys, each formatted into keyValue with a
// letter: A, B, …
func object(n int, keyValue string) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, keyValue, 'A'+i)
	}
	sb.WriteByte('}')
	return sb.String()
}

// shortKey names key i with letters and digits: 0, 1, …, z, 10, 11, …
func shortKey(i int) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var b []byte
	for {
		b = append([]byte{digits[i%len(digits)]}, b...)
		if i /= len(digits); i == 0 {
			return string(b)
		}
	}
}

// repeatIn returns open, then copies of item (separated by commas if open
// is a bracket) up to about n bytes, then end.
func repeatIn(open, item, end string, n int) []byte {
	sep := ""
	if open == "[" {
		sep = ","
	}
	b := []byte(open)
	for i := 0; i == 0 || len(b)+len(sep)+len(item)+len(end) <= n; i++ {
		if i > 0 {
			b = append(b, sep...)
		}
		b = append(b, item...)
	}
	return append(b, end...)
}

// submission is an ordinary job submission of about 2 KiB.
var submission = func() []byte {
	var items []string
	for i := range 12 {
		items = append(items, fmt.Sprintf(`{"sku":"SKU-%05d","name":"Item number %d, blue","qty":%d,"price":%d.%02d,"tags":["sale","new"]}`, i*7919, i, i+1, 10+i, i*7))
	}
	return []byte(`{"type":"echo","payload":{"orderId":"ord_01KB8Z3W4N5P6Q7R8S9T0V1W2X","customer":{"id":"cus_42","email":"ada@example.com","name":"Ada Lovelace","address":{"line1":"12 Rue de l'\u00c9cole","city":"Paris","zip":"75005","country":"FR"}},` +
		`"items":[` + strings.Join(items, ",") + `],"total":1234.5,"currency":"EUR","notes":null,"gift":false},` +
		`"callbackUrl":"https://example.com/hook","metadata":{"a":"b"}}`)
}()

// TestWorstCaseBodiesAreLinear checks each worst case at 512 KiB and
// 1 MiB, and compares Check's cost with json.Valid's on the same bytes in
// the same run; it asserts ratios only, never times, since machines are
// noisy. Check must cost at most maxRatio times json.Valid, and doubling
// the body must not multiply its cost by more than maxGrowth. A case that
// misses is measured again, up to three times in all, since a busy machine
// can slow one measure more than another (a large body's tables, for
// instance, fall out of a shared cache first); a slow algorithm misses
// every time.
func TestWorstCaseBodiesAreLinear(t *testing.T) {
	testkit.Long(t) // 40 s under -race: it measures every case up to three times
	const maxRatio, maxGrowth = 8.0, 3.5
	for _, wc := range worstCases {
		t.Run(wc.name, func(t *testing.T) {
			small, large := wc.build(512<<10), wc.build(1<<20)
			for _, body := range [][]byte{small, large} {
				err := strictjson.Check(body)
				var e *strictjson.Error
				switch {
				case wc.want == 0 && err != nil:
					t.Fatalf("Check(%s) = %v, want nil", abbrev(string(body)), err)
				case wc.want != 0 && (!errors.As(err, &e) || e.Kind != wc.want):
					t.Fatalf("Check(%s) = %v, want a %v error", abbrev(string(body)), err, wc.want)
				}
			}
			var problems []string
			for attempt := 1; attempt <= 3; attempt++ {
				c := costs(func() { strictjson.Check(small) }, func() { strictjson.Check(large) },
					func() { json.Valid(small) }, func() { json.Valid(large) })
				checkSmall, checkLarge, validSmall, validLarge := c[0]*1e3, c[1]*1e3, c[2]*1e3, c[3]*1e3
				ratio, growth := checkLarge/validLarge, checkLarge/checkSmall
				t.Logf("%7d bytes: Check %6.3f ms, json.Valid %6.3f ms (Check/json.Valid %.2f); %7d bytes: Check %6.3f ms, json.Valid %6.3f ms; growth %.2f",
					len(large), checkLarge, validLarge, ratio, len(small), checkSmall, validSmall, growth)
				problems = problems[:0]
				if ratio > maxRatio {
					problems = append(problems, fmt.Sprintf("Check(%s) costs %.1f times json.Valid on the same bytes (%.3f ms against %.3f ms), want at most %.0f",
						abbrev(string(large)), ratio, checkLarge, validLarge, maxRatio))
				}
				if growth > maxGrowth {
					problems = append(problems, fmt.Sprintf("Check on %d bytes costs %.1f times Check on %d bytes (%.3f ms against %.3f ms), want at most %.1f (linear: about 2)",
						len(large), growth, len(small), checkLarge, checkSmall, maxGrowth))
				}
				if len(problems) == 0 {
					return
				}
			}
			for _, p := range problems {
				t.Error(p)
			}
		})
	}
}

// costs returns the least time each of fs takes, in seconds. It measures
// them in turns, a few rounds, so that a slow spell of the machine slows
// all of them or is outlasted; and each measure repeats f for at least a
// millisecond, so that short calls are measured too.
func costs(fs ...func()) []float64 {
	runtime.GC()
	reps := make([]int, len(fs))
	for i, f := range fs {
		start := time.Now()
		f()
		reps[i] = int(time.Millisecond/max(time.Since(start), time.Microsecond)) + 1
	}
	best := make([]float64, len(fs))
	for round := range 15 {
		for i, f := range fs {
			start := time.Now()
			for range reps[i] {
				f()
			}
			if d := time.Since(start).Seconds() / float64(reps[i]); round == 0 || d < best[i] {
				best[i] = d
			}
		}
	}
	return best
}

var benchBodies = sync.OnceValue(func() []struct {
	name string
	body []byte
} {
	bodies := []struct {
		name string
		body []byte
	}{{"job submission", submission}}
	for _, wc := range worstCases {
		bodies = append(bodies, struct {
			name string
			body []byte
		}{wc.name, wc.build(1 << 20)})
	}
	return bodies
})

func BenchmarkCheck(b *testing.B) {
	for _, bb := range benchBodies() {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				strictjson.Check(bb.body)
			}
		})
	}
}

// BenchmarkJSONValid is the baseline for BenchmarkCheck: the same bodies
// through json.Valid.
func BenchmarkJSONValid(b *testing.B) {
	for _, bb := range benchBodies() {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				json.Valid(bb.body)
			}
		})
	}
}

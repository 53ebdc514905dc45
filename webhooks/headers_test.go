package webhooks

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFlatten(t *testing.T) {
	h := http.Header{"A": {"1", "2"}, "B": {"x"}}
	got := flatten(h)
	if len(got) != 2 || got["A"] != "1, 2" || got["B"] != "x" {
		t.Errorf("flatten(%v) = %v, want A: \"1, 2\", B: \"x\"", h, got)
	}
}

// A receiver cannot make one attempt's log entry large: its response
// headers are kept to maxHeaderLog bytes, longest values cut first.
func TestResponseHeadersAreBounded(t *testing.T) {
	size := func(m map[string]string) int {
		n := 0
		for k, v := range m {
			n += len(k) + len(v)
		}
		return n
	}
	tests := []struct {
		name   string
		header http.Header
		check  func(t *testing.T, got map[string]string)
	}{
		{"small headers are kept whole", http.Header{"A": {"1"}, "B": {"x", "y"}}, func(t *testing.T, got map[string]string) {
			if got["A"] != "1" || got["B"] != "x, y" || len(got) != 2 {
				t.Errorf("got %v, want A: 1, B: x, y", got)
			}
		}},
		{"one 60 KB value is cut, the short ones kept", http.Header{"Short": {"keep me"}, "Huge": {strings.Repeat("é", 30000)}},
			func(t *testing.T, got map[string]string) {
				if got["Short"] != "keep me" || !strings.HasSuffix(got["Huge"], "…") || !utf8.ValidString(got["Huge"]) {
					t.Errorf("Short %q, Huge ends %q (valid UTF-8 %v); want Short kept, Huge cut with … on a character boundary",
						got["Short"], got["Huge"][len(got["Huge"])-10:], utf8.ValidString(got["Huge"]))
				}
			}},
		{"many large values share the room", func() http.Header {
			h := http.Header{}
			for i := 0; i < 60; i++ {
				h.Set(fmt.Sprintf("X-H%02d", i), strings.Repeat("v", 1000))
			}
			return h
		}(), func(t *testing.T, got map[string]string) {
			if len(got) != 60 {
				t.Errorf("%d headers kept, want all 60 (cut)", len(got))
			}
		}},
		{"thousands of names: the rest is counted", func() http.Header {
			h := http.Header{}
			for i := 0; i < 3000; i++ {
				h.Set(fmt.Sprintf("X-Header-%05d", i), "v")
			}
			return h
		}(), func(t *testing.T, got map[string]string) {
			if got["Boomerang-Omitted-Headers"] == "" || len(got) >= 3000 {
				t.Errorf("%d headers kept, omitted %q; want some left out and counted", len(got), got["Boomerang-Omitted-Headers"])
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := flatten(tc.header)
			if n := size(got); n > maxHeaderLog {
				t.Errorf("kept %d bytes of headers, want at most %d", n, maxHeaderLog)
			}
			tc.check(t, got)
		})
	}
}

func TestCutUTF8(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abc", 2, "ab"},
		{"aé", 2, "a"}, // é is 2 bytes: not split
		{"aé", 3, "aé"},
		{"€", 2, ""},
		{"x😀", 4, "x"},
	}
	for _, tt := range tests {
		if got := cutUTF8(tt.s, tt.n); got != tt.want {
			t.Errorf("cutUTF8(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}

// The stored request headers say how many signatures went out, never what
// they were.
func TestRequestHeaders(t *testing.T) {
	d := Delivery{ID: "msg_1", Payload: []byte(`{"a":1}`)}
	tests := []struct {
		sigs int
		want string
	}{{1, "v1,<redacted>"}, {2, "2 × v1,<redacted>"}, {3, "3 × v1,<redacted>"}}
	for _, tt := range tests {
		got := RequestHeaders(d, 1795737600, "Boomerang/test", tt.sigs)
		want := map[string]string{"Content-Type": "application/json", "Content-Length": "7", "User-Agent": "Boomerang/test",
			"webhook-id": "msg_1", "webhook-timestamp": "1795737600", "webhook-signature": tt.want}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("RequestHeaders(%d signatures) = %v, want %v", tt.sigs, got, want)
		}
	}
}

package handlers_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/boomerang-dev/boomerang/handlers"
)

// FuzzSubmitDecode throws arbitrary bodies at POST /v1/jobs. Whatever the
// bytes, the answer is 202 or a 4xx problem, never a 5xx or a panic, and a
// 202 only for a body that is a JSON object.
func FuzzSubmitDecode(f *testing.F) {
	for _, seed := range []string{
		`{"type":"echo","payload":{"a":1},"callbackUrl":"https://example.com/h","metadata":{"k":"v"}}`,
		`{"type":"echo","type":"x"}`,
		`{"type":"echo","payload":{"a":1,"a":2},"callbackUrl":"https://example.com/h"}`,
		`{"TYPE":"echo"}`,
		`[1,2,3]`,
		`"just a string"`,
		`{"type":"echo","payload":1e400,"callbackUrl":"https://example.com/h"}`,
		"{\"type\":\"ech\xffo\"}",
		`{"type":"echo","metadata":{"a":1}}`,
		`{"type":"echo","payload":{"deep":[[[[[[[[[[[]]]]]]]]]]]},"callbackUrl":"https://example.com/h"}`,
		``,
		`{`,
	} {
		f.Add([]byte(seed))
	}
	e := newEnv()
	e.deps.MaxBody = 4096
	h := handlers.New(e.deps, e.serve)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/jobs", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+keyA)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusAccepted:
			var obj map[string]json.RawMessage
			if json.Unmarshal(body, &obj) != nil {
				t.Fatalf("202 for a body that is not a JSON object: %q", body)
			}
		case rec.Code >= 400 && rec.Code < 500:
			var p handlers.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code || p.Type == "" {
				t.Fatalf("status %d with a body that is not a problem: %q", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
	})
}

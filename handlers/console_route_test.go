package handlers

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestConsoleMount: the console answers /admin/ on the listener that
// serves the admin API and nowhere else, and /admin/v1 stays the API's.
func TestConsoleMount(t *testing.T) {
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Console", "yes")
		w.WriteHeader(http.StatusTeapot)
	})
	d := Deps{AdminToken: "console-mount-token", Console: console}
	cases := []struct {
		serve       int
		path        string
		wantConsole bool
		wantCode    int
	}{
		{ServePublic | ServeAdmin, "/admin/", true, http.StatusTeapot},
		{ServePublic | ServeAdmin, "/admin/deliveries", true, http.StatusTeapot},
		{ServeAdmin, "/admin/login", true, http.StatusTeapot},
		{ServePublic, "/admin/login", false, http.StatusNotFound},
		{ServePublic | ServeAdmin, "/admin/v1/deliveries", false, http.StatusUnauthorized},
		{ServePublic | ServeAdmin, "/admin/v1/nothing-here", false, http.StatusNotFound},
		{ServePublic | ServeAdmin, "/admin/v1", false, http.StatusNotFound},
		{ServePublic | ServeAdmin, "/admin", false, http.StatusMovedPermanently},
		{ServePublic, "/admin", false, http.StatusNotFound},
	}
	for _, tc := range cases {
		rec := httptest.NewRecorder()
		Router(d, tc.serve).ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		got := rec.Header().Get("X-Console") == "yes"
		if got != tc.wantConsole || rec.Code != tc.wantCode {
			t.Errorf("serve=%d GET %s: got console=%v %d, want console=%v %d", tc.serve, tc.path, got, rec.Code, tc.wantConsole, tc.wantCode)
		}
		if !got && rec.Code >= 400 && rec.Code != http.StatusMovedPermanently && !strings.Contains(rec.Header().Get("Content-Type"), "problem+json") {
			t.Errorf("serve=%d GET %s: %d is not a problem (%q)", tc.serve, tc.path, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
}

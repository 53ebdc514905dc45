package handlers_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/mux"
)

func TestZZDebug(t *testing.T) {
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, variant := range []int{0, 1, 2} {
		r := mux.NewRouter()
		r.NotFoundHandler = h
		r.MethodNotAllowedHandler = h
		v1 := r.PathPrefix("/v1").Subrouter()
		v1.Handle("/jobs", h).Methods("POST")
		if variant >= 1 {
			v1.Handle("/jobs/{id}", h).Methods("GET")
		}
		if variant >= 2 {
			a := r.PathPrefix("/admin").Subrouter()
			a.Handle("/x", h).Methods("GET")
		}
		req := httptest.NewRequest("PUT", "/v1/jobs", nil)
		var match mux.RouteMatch
		ok := r.Match(req, &match)
		t.Logf("variant %d ok=%v err=%v", variant, ok, match.MatchErr)
	}
}

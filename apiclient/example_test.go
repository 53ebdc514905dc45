package apiclient_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/boomerang-dev/boomerang/apiclient"
)

// Following a job to its end: a status snapshot, progress, then the
// webhook's event, after which the sequence ends.
func ExampleClient_Events() {
	boomerang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: 1\nevent: status\ndata: {\"requestId\":\"req_1\",\"status\":\"PROCESSING\",\"attempt\":1}\n\n"+
			": keepalive\n\n"+
			"id: 2\nevent: progress\ndata: {\"requestId\":\"req_1\",\"percent\":42,\"message\":\"encoding\"}\n\n"+
			"id: 3\nevent: job.completed\ndata: {\"type\":\"job.completed\",\"data\":{\"requestId\":\"req_1\",\"status\":\"COMPLETED\",\"result\":{\"url\":\"https://cdn.example/x.mp4\"}}}\n\n")
	}))
	defer boomerang.Close()

	c, err := apiclient.New(boomerang.URL, "bmr_example")
	if err != nil {
		fmt.Println(err)
		return
	}
	for ev, err := range c.Events(context.Background(), "req_1", "") {
		if err != nil {
			fmt.Println(err)
			return
		}
		switch {
		case ev.Name == apiclient.EventStatus:
			var s apiclient.StatusEvent
			_ = ev.Decode(&s)
			fmt.Println(ev.ID, s.Status, "attempt", s.Attempt)
		case ev.Name == apiclient.EventProgress:
			var p apiclient.ProgressEvent
			_ = ev.Decode(&p)
			fmt.Printf("%s %g%% %s\n", ev.ID, p.Percent, p.Message)
		case ev.Final():
			var f apiclient.FinalEvent
			_ = ev.Decode(&f)
			fmt.Println(ev.ID, f.Data.Status, string(f.Data.Result))
		}
	}
	// Output:
	// 1 PROCESSING attempt 1
	// 2 42% encoding
	// 3 COMPLETED {"url":"https://cdn.example/x.mp4"}
}

// A worker decides on the problem's slug whether to go on with a job.
func ExampleProblemSlug() {
	boomerang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusConflict)
		fmt.Fprint(w, `{"type":"https://boomerang.dev/problems/job-canceled","title":"The job was canceled; drop it","status":409}`)
	}))
	defer boomerang.Close()

	c, _ := apiclient.New(boomerang.URL, "bmw_example")
	_, err := c.Heartbeat(context.Background(), "req_1", "1.x8f", &apiclient.Progress{Percent: 42, Message: "encoding"})
	switch apiclient.ProblemSlug(err) {
	case apiclient.SlugLeaseLost, apiclient.SlugJobCanceled, apiclient.SlugJobExpired:
		fmt.Println("stop:", err)
	}
	// Output:
	// stop: heartbeat job req_1: 409 job-canceled: The job was canceled; drop it
}

package main

import (
	"strings"
	"testing"

	"github.com/boomerang-dev/boomerang/apiclient"
)

const (
	statusProcessing = `{"requestId":"req_1","status":"PROCESSING","attempt":1,"updatedAt":"2030-01-01T00:00:01Z"}`
	progressHalf     = `{"requestId":"req_1","percent":50,"message":"half","updatedAt":"2030-01-01T00:00:02Z"}`
)

func finalEvent(name, status, outcome string) string {
	return `{"type":"` + name + `","timestamp":"2030-01-01T00:00:03Z","data":{"requestId":"req_1","type":"shell","status":"` + status + `",` + outcome + `}}`
}

func TestWatch(t *testing.T) {
	tests := []struct {
		name       string
		stream     string
		wantStdout string
		wantErr    string
	}{
		{"completed",
			sse(1, "status", statusProcessing) + ": keepalive\n\n" + sse(2, "progress", progressHalf) +
				sse(3, "job.completed", finalEvent("job.completed", "COMPLETED", `"result":{"ok":true}`)),
			"2030-01-01T00:00:01Z PROCESSING 0%\n" +
				"2030-01-01T00:00:02Z PROCESSING 50% half\n" +
				"2030-01-01T00:00:03Z COMPLETED 100% half\n" +
				"{\n  \"ok\": true\n}\n", ""},
		{"failed",
			sse(1, "status", statusProcessing) + sse(2, "job.failed", finalEvent("job.failed", "FAILED", `"error":{"code":"exit_3","message":"boom\nbang"}`)),
			"2030-01-01T00:00:01Z PROCESSING 0%\n" +
				"2030-01-01T00:00:03Z FAILED 0% exit_3: boom bang\n" +
				"{\n  \"code\": \"exit_3\",\n  \"message\": \"boom\\nbang\"\n}\n",
			"job req_1 FAILED: exit_3: boom\nbang"},
		{"canceled",
			sse(1, "job.canceled", finalEvent("job.canceled", "CANCELED", `"error":{"code":"canceled","message":"canceled by the client"}`)),
			"2030-01-01T00:00:03Z CANCELED 0% canceled: canceled by the client\n" +
				"{\n  \"code\": \"canceled\",\n  \"message\": \"canceled by the client\"\n}\n",
			"job req_1 CANCELED"},
		{"expired without an error object",
			sse(1, "job.expired", finalEvent("job.expired", "EXPIRED", `"metadata":{}`)),
			"2030-01-01T00:00:03Z EXPIRED 0%\n", "job req_1 EXPIRED"},
		{"a retried attempt and escape sequences in a message",
			sse(1, "status", `{"requestId":"req_1","status":"PROCESSING","attempt":2,"updatedAt":"2030-01-01T00:00:01Z","progress":{"percent":10,"message":"\u001b[2Jten"}}`) +
				sse(2, "status", `{"requestId":"req_1","status":"PROCESSING","attempt":2,"updatedAt":"2030-01-01T00:00:01Z","progress":{"percent":10,"message":"\u001b[2Jten"}}`) +
				sse(3, "job.completed", finalEvent("job.completed", "COMPLETED", `"result":null`)),
			"2030-01-01T00:00:01Z PROCESSING 10% [2Jten (attempt 2)\n" +
				"2030-01-01T00:00:03Z COMPLETED 100% [2Jten (attempt 2)\n" +
				"null\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.streams["req_1"] = tt.stream
			stdout, stderr, err := runCLI(t, f, "watch", "req_1")
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("watch: %v\nstderr: %s", err, stderr)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("watch: error %v, want one with %q", err, tt.wantErr)
			}
			if stdout != tt.wantStdout {
				t.Errorf("watch printed\n%s\nwant\n%s", stdout, tt.wantStdout)
			}
		})
	}
}

func TestWatchLiveBar(t *testing.T) {
	var out strings.Builder
	w := &watcher{out: &out, live: true}
	for _, ev := range []apiclient.Event{
		{ID: "1", Name: "status", Data: []byte(statusProcessing)},
		{ID: "2", Name: "progress", Data: []byte(progressHalf)},
		{ID: "3", Name: "job.completed", Data: []byte(finalEvent("job.completed", "COMPLETED", `"result":1`))},
	} {
		if _, err := w.show(ev); err != nil {
			t.Fatal(err)
		}
	}
	want := "\r\x1b[KPROCESSING [" + strings.Repeat("░", 30) + "]   0% " +
		"\r\x1b[KPROCESSING [" + strings.Repeat("█", 15) + strings.Repeat("░", 15) + "]  50% half" +
		"\r\x1b[KCOMPLETED  [" + strings.Repeat("█", 30) + "] 100% half\n" +
		"1\n"
	if out.String() != want {
		t.Errorf("live output\n%q\nwant\n%q", out.String(), want)
	}
}

func TestSubmitWatch(t *testing.T) {
	f := newFakeAPI(t)
	f.streams["req_1"] = sse(1, "status", statusProcessing) + sse(2, "job.completed", finalEvent("job.completed", "COMPLETED", `"result":{"n":2}`))
	stdout, stderr, err := runCLI(t, f, "submit", "--type", "shell", "--payload", `{"n":1}`, "--callback", "https://e.com/cb", "--watch")
	if err != nil {
		t.Fatalf("submit --watch: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "submitted req_1") || !strings.HasSuffix(stdout, "{\n  \"n\": 2\n}\n") || len(f.calls(&f.submitted)) != 1 {
		t.Errorf("submit --watch: stdout\n%s\nstderr\n%s\nwant the submission on stderr and the result last on stdout", stdout, stderr)
	}
}

func TestWatchEndsOnAnErrorOfTheStream(t *testing.T) {
	f := newFakeAPI(t)
	_, _, err := runCLI(t, f, "watch", "req_missing")
	if err == nil || !strings.Contains(err.Error(), "404 not-found") {
		t.Errorf("watch of an unknown job: %v, want the 404", err)
	}
}

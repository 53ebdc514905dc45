package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSubmit(t *testing.T) {
	payloadFile := filepath.Join(t.TempDir(), "payload.json")
	if err := os.WriteFile(payloadFile, []byte(`{"from":"file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantBody map[string]any
		wantKey  string
	}{
		{"inline payload, metadata, idempotency key",
			[]string{"--type", "shell", "--payload", `{"n":1}`, "--callback", "https://example.com/cb", "--metadata", "a=1", "--metadata", "b=x=y", "--idempotency-key", "k-1"},
			map[string]any{"type": "shell", "payload": map[string]any{"n": 1.0}, "callbackUrl": "https://example.com/cb", "metadata": map[string]any{"a": "1", "b": "x=y"}},
			"k-1"},
		{"payload from a file, RFC 3339 deadline",
			[]string{"--type", "shell", "--payload", "@" + payloadFile, "--callback", "https://example.com/cb", "--deadline", "2030-01-02T03:04:05+01:00"},
			map[string]any{"type": "shell", "payload": map[string]any{"from": "file"}, "callbackUrl": "https://example.com/cb", "deadline": "2030-01-02T03:04:05+01:00"},
			""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			stdout, stderr, err := runCLI(t, f, append([]string{"submit"}, tt.args...)...)
			if err != nil {
				t.Fatalf("submit %q: %v\nstderr: %s", tt.args, err, stderr)
			}
			var accepted map[string]any
			if err := json.Unmarshal([]byte(stdout), &accepted); err != nil || accepted["requestId"] != "req_1" {
				t.Errorf("stdout %q: want the 202 answer as JSON (%v)", stdout, err)
			}
			sent := f.calls(&f.submitted)
			if len(sent) != 1 {
				t.Fatalf("%d submissions, want 1", len(sent))
			}
			if !reflect.DeepEqual(sent[0].body, tt.wantBody) {
				t.Errorf("sent %v\nwant %v", sent[0].body, tt.wantBody)
			}
			if got := sent[0].header.Get("Idempotency-Key"); got != tt.wantKey {
				t.Errorf("Idempotency-Key %q, want %q", got, tt.wantKey)
			}
		})
	}
}

func TestSubmitRelativeDeadline(t *testing.T) {
	f := newFakeAPI(t)
	before := time.Now()
	if _, stderr, err := runCLI(t, f, "submit", "--type", "shell", "--callback", "https://e.com", "--deadline", "10m"); err != nil {
		t.Fatalf("submit: %v\n%s", err, stderr)
	}
	sent := f.calls(&f.submitted)[0].body["deadline"].(string)
	d, err := time.Parse(time.RFC3339, sent)
	if err != nil || d.Before(before.Add(10*time.Minute-time.Second)) || d.After(time.Now().Add(10*time.Minute)) {
		t.Errorf("deadline %q (%v), want 10 minutes from now", sent, err)
	}
}

func TestParseDeadline(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 123, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"10m", time.Date(2030, 1, 1, 12, 10, 0, 0, time.UTC), false},
		{"1h30m", time.Date(2030, 1, 1, 13, 30, 0, 0, time.UTC), false},
		{"2031-02-03T04:05:06Z", time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC), false},
		{"2031-02-03T04:05:06.5-02:00", time.Date(2031, 2, 3, 6, 5, 6, 5e8, time.UTC), false},
		{"-5m", time.Time{}, true},
		{"0s", time.Time{}, true},
		{"tomorrow", time.Time{}, true},
		{"2031-02-03", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := parseDeadline(tt.in, now)
		if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("parseDeadline(%q) = %v, %v; want %v (error: %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestJobCommands(t *testing.T) {
	const view = `{"requestId":"req_1","type":"shell","status":"PROCESSING","progress":{"percent":5,"message":"m","updatedAt":"2030-01-01T00:00:00Z"},"futureField":[1]}`
	const canceled = `{"requestId":"req_2","type":"shell","status":"CANCELED"}`
	tests := []struct {
		name       string
		args       []string
		wantStdout string // compared after indenting; "" for none
		wantErr    string // "" for none
	}{
		{"status prints the job as the server sent it", []string{"status", "req_1"}, view, ""},
		{"flags may follow the ID", []string{"status", "req_1", "--api-key", fakeAPIKey}, view, ""},
		{"status of an unknown job", []string{"status", "req_9"}, "", "404 not-found"},
		{"status without an ID", []string{"status"}, "", "status: want one job ID"},
		{"status with two IDs", []string{"status", "a", "b"}, "", "want one job ID, got 2"},
		{"a wrong key is refused", []string{"status", "--api-key", "bmr_wrong", "req_1"}, "", "401 unauthorized"},
		{"cancel prints the canceled job", []string{"cancel", "req_2"}, canceled, ""},
		{"cancel of a final job", []string{"cancel", "req_1"}, "", "409 job-final"},
		{"watch without an ID", []string{"watch"}, "", "watch: want one job ID"},
		{"submit with a bad payload sends nothing", []string{"submit", "--type", "t", "--payload", "{", "--callback", "https://e.com"}, "", "--payload: not valid JSON"},
		{"submit with a bad deadline", []string{"submit", "--type", "t", "--deadline", "soon"}, "", `--deadline: "soon" is neither`},
		{"submit with stray arguments", []string{"submit", "--type", "t", "extra"}, "", `unexpected argument "extra"`},
		{"help is not an error", []string{"status", "-h"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.jobs["req_1"] = view
			f.cancels["req_2"] = canceled
			stdout, stderr, err := runCLI(t, f, tt.args...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("boomerang %q: %v\nstderr: %s", tt.args, err, stderr)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("boomerang %q: error %v, want one with %q", tt.args, err, tt.wantErr)
			}
			want := ""
			if tt.wantStdout != "" {
				want = indent(t, tt.wantStdout)
			}
			if stdout != want {
				t.Errorf("boomerang %q printed\n%s\nwant\n%s", tt.args, stdout, want)
			}
			if n := len(f.calls(&f.submitted)); n != 0 {
				t.Errorf("boomerang %q made %d submissions, want none", tt.args, n)
			}
		})
	}
}

func indent(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(s), "", "  "); err != nil {
		t.Fatal(err)
	}
	return b.String() + "\n"
}

func TestSettingsFromFlagsAndEnvironment(t *testing.T) {
	f := newFakeAPI(t)
	f.jobs["req_1"] = `{"requestId":"req_1","status":"ACCEPTED"}`
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"all from the environment", map[string]string{"BOOMERANG_URL": f.srv.URL, "BOOMERANG_API_KEY": fakeAPIKey}, nil, ""},
		{"flags win over the environment", map[string]string{"BOOMERANG_URL": "http://127.0.0.1:1", "BOOMERANG_API_KEY": "bmr_wrong"},
			[]string{"--url", f.srv.URL, "--api-key", fakeAPIKey}, ""},
		{"no key", map[string]string{"BOOMERANG_URL": f.srv.URL}, nil, "no key: set BOOMERANG_API_KEY"},
		{"a worker key is not an API key", map[string]string{"BOOMERANG_URL": f.srv.URL, "BOOMERANG_WORKER_KEY": fakeWorkerKey}, nil, "no key: set BOOMERANG_API_KEY"},
		{"a bad URL", map[string]string{"BOOMERANG_URL": "localhost:8080", "BOOMERANG_API_KEY": fakeAPIKey}, nil, "base URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut strings.Builder
			args := append([]string{"boomerang", "status", "req_1"}, tt.args...)
			err := run(t.Context(), args, func(k string) string { return tt.env[k] }, &out, &errOut)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("status with env %v and flags %q: %v, want error %q", tt.env, tt.args, err, tt.wantErr)
			}
			if strings.Contains(errOut.String()+out.String(), "bmr_wrong") || strings.Contains(errOut.String()+out.String(), fakeAPIKey) {
				t.Errorf("the key was printed:\n%s%s", out.String(), errOut.String())
			}
		})
	}
}

func TestUsageListsTheCommands(t *testing.T) {
	var out, errOut strings.Builder
	_ = run(t.Context(), []string{"boomerang"}, func(string) string { return "" }, &out, &errOut)
	for _, cmd := range []string{"submit", "status", "watch", "cancel", "work", "BOOMERANG_WORKER_KEY"} {
		if !strings.Contains(errOut.String(), cmd) {
			t.Errorf("usage does not mention %s:\n%s", cmd, errOut.String())
		}
	}
}

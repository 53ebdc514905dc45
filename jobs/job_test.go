package jobs_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
)

func TestWebhookBodyGolden(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	done := created.Add(1500 * time.Millisecond)
	updated := created.Add(time.Minute)
	tests := []struct {
		name string
		job  jobs.Job
		want string
	}{
		{
			name: "completed",
			job: jobs.Job{ID: "req_01JD3M4X2Z8QK3V9W7T5N6P4R2", ClientID: "cli_secret_tenant", Type: "echo", Status: jobs.StatusCompleted,
				Payload: json.RawMessage(`{"in":1}`), Result: json.RawMessage(`{"out": [1, 2], "s": "<b>"}`),
				CallbackURL: "https://hooks.example.com/cb?token=t", Metadata: map[string]string{"b": "2", "a": "1"},
				CreatedAt: created, UpdatedAt: done, CompletedAt: &done, Attempts: 2, DeliveryID: "msg_01JD3M4X2Z8QK3V9W7T5N6P4R2"},
			want: `{"type":"job.completed","timestamp":"2026-03-01T12:00:01.5Z","data":{"requestId":"req_01JD3M4X2Z8QK3V9W7T5N6P4R2",` +
				`"type":"echo","status":"COMPLETED","result":{"out": [1, 2], "s": "<b>"},"metadata":{"a":"1","b":"2"},` +
				`"createdAt":"2026-03-01T12:00:00Z","completedAt":"2026-03-01T12:00:01.5Z"}}`,
		},
		{
			name: "completed with null result",
			job: jobs.Job{ID: "req_N", Type: "echo", Status: jobs.StatusCompleted, Result: json.RawMessage(`null`),
				CreatedAt: created, UpdatedAt: done, CompletedAt: &done},
			want: `{"type":"job.completed","timestamp":"2026-03-01T12:00:01.5Z","data":{"requestId":"req_N","type":"echo","status":"COMPLETED",` +
				`"result":null,"createdAt":"2026-03-01T12:00:00Z","completedAt":"2026-03-01T12:00:01.5Z"}}`,
		},
		{
			name: "failed",
			job: jobs.Job{ID: "req_02", ClientID: "cli_x", Type: "resize", Status: jobs.StatusFailed,
				Payload: json.RawMessage(`{"in":1}`), Error: &jobs.Error{Code: "timeout", Message: "too slow"},
				CallbackURL: "https://hooks.example.com/cb", CreatedAt: created, UpdatedAt: done, CompletedAt: &done, Attempts: 5},
			want: `{"type":"job.failed","timestamp":"2026-03-01T12:00:01.5Z","data":{"requestId":"req_02","type":"resize","status":"FAILED",` +
				`"error":{"code":"timeout","message":"too slow"},"createdAt":"2026-03-01T12:00:00Z","completedAt":"2026-03-01T12:00:01.5Z"}}`,
		},
		{
			name: "no completedAt: timestamp is updatedAt",
			job:  jobs.Job{ID: "req_03", Type: "echo", Status: jobs.StatusFailed, Error: &jobs.Error{Code: "c", Message: "m"}, CreatedAt: created, UpdatedAt: updated},
			want: `{"type":"job.failed","timestamp":"2026-03-01T12:01:00Z","data":{"requestId":"req_03","type":"echo","status":"FAILED",` +
				`"error":{"code":"c","message":"m"},"createdAt":"2026-03-01T12:00:00Z"}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := jobs.WebhookBody(tc.job)
			if err != nil {
				t.Fatalf("WebhookBody(%s): %v", tc.name, err)
			}
			if string(got) != tc.want {
				t.Errorf("WebhookBody(%s)\n got: %s\nwant: %s", tc.name, got, tc.want)
			}
		})
	}
}

// The webhook carries the result byte for byte: no HTML escaping, no
// re-encoding of numbers, escapes or white space, at any depth.
func TestWebhookBodyCarriesTheResultByteForByte(t *testing.T) {
	deep := strings.Repeat(`{"a":[`, 2000) + `"<&>"` + strings.Repeat(`]}`, 2000)
	for _, result := range []string{
		`"a<b&c>d"`,
		`{"html": "<script>alert(1)</script>", "amp": "&amp;"}`,
		"\"line\u2028separator\u2029and raw \u2028 \u2029\"",
		`"escaped \u2028 \u003c \/ \ud83d\ude00"`,
		`123456789012345678901234567890123456789`,
		`-0`,
		`1e400`,
		`[-0.0, 1E+2, 0.1e-7, 18446744073709551616]`,
		`{ "spaced" :  [ 1 ,2 ]	}`,
		deep,
	} {
		job := jobs.Job{ID: "req_x", Type: "echo", Status: jobs.StatusCompleted, Result: json.RawMessage(result),
			Metadata: map[string]string{"m": "<&>"}}
		body, err := jobs.WebhookBody(job)
		if err != nil {
			t.Fatalf("WebhookBody(result %.60s): %v", result, err)
		}
		if !bytes.Contains(body, []byte(`"result":`+result+`,`)) {
			t.Errorf("webhook for result %.60s does not carry it byte for byte:\n%.300s", result, body)
		}
		if !bytes.Contains(body, []byte(`"metadata":{"m":"<&>"}`)) {
			t.Errorf("metadata HTML-escaped: %.300s", body)
		}
		if !json.Valid(body) {
			t.Errorf("webhook body for result %.60s is not valid JSON", result)
		}
	}
}

func TestWebhookBodyInvalidResult(t *testing.T) {
	if b, err := jobs.WebhookBody(jobs.Job{ID: "req_x", Status: jobs.StatusCompleted, Result: json.RawMessage(`{bad`)}); err == nil {
		t.Errorf("WebhookBody with an invalid JSON result = %s, nil; want an error", b)
	}
}

func TestDeliveryID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"req_01JD3M4X2Z8QK3V9W7T5N6P4R2", "msg_01JD3M4X2Z8QK3V9W7T5N6P4R2"},
		{"req_x", "msg_x"},
		{"req_", "msg_req_"},
		{"abc", "msg_abc"},
		{"REQ_abc", "msg_REQ_abc"},
		{"", "msg_"},
	}
	for _, tc := range tests {
		if got := jobs.DeliveryID(tc.in); got != tc.want {
			t.Errorf("DeliveryID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValidStatus(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"ACCEPTED", true}, {"PROCESSING", true}, {"COMPLETED", true}, {"FAILED", true},
		{"accepted", false}, {"", false}, {"DONE", false},
	}
	for _, tc := range tests {
		if got := jobs.ValidStatus(tc.in); got != tc.want {
			t.Errorf("ValidStatus(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestValidationErrorText(t *testing.T) {
	tests := []struct {
		err  *jobs.ValidationError
		want string
	}{
		{&jobs.ValidationError{}, "invalid submission"},
		{&jobs.ValidationError{Fields: []jobs.FieldError{{Field: "type", Code: "required", Message: "type is required"},
			{Field: "metadata", Code: "invalid", Message: "x"}}}, "invalid submission: type: type is required"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%+v.Error() = %q, want %q", tc.err, got, tc.want)
		}
	}
}

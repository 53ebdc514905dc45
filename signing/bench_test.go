package signing_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/signing"
)

// BenchmarkSign and BenchmarkVerify (in signing_test.go) use the published
// vector's tiny body. These use a body the size of a real Boomerang webhook
// (about 300 bytes) and cover a secret rotation (two secrets).

var webhookBody = []byte(`{"type":"job.completed","timestamp":"2026-11-26T12:00:01.123456789Z","data":{"requestId":"req_01KB8Z3W4N5P6Q7R8S9T0V1W2X","type":"echo","status":"COMPLETED","result":{"n":1520},"metadata":{"bench":"throughput-1"},"createdAt":"2026-11-26T12:00:00.987654321Z","completedAt":"2026-11-26T12:00:01.123456789Z"}}`)

const (
	benchID     = "msg_01KB8Z3W4N5P6Q7R8S9T0V1W2X"
	benchSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	benchOld    = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

func BenchmarkSignWebhook(b *testing.B) {
	for _, tc := range []struct {
		name    string
		secrets []string
	}{{"1secret", []string{benchSecret}}, {"2secrets", []string{benchSecret, benchOld}}} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := signing.NewSigner(tc.secrets...)
			if err != nil {
				b.Fatal(err)
			}
			ts := time.Now().Unix()
			b.SetBytes(int64(len(webhookBody)))
			b.ReportAllocs()
			for b.Loop() {
				_ = s.Sign(benchID, ts, webhookBody)
			}
		})
	}
}

// BenchmarkNewSignerSign is what a delivery attempt costs when the signer is
// built for each attempt: secrets parsed and HMAC states made every time.
func BenchmarkNewSignerSign(b *testing.B) {
	for _, tc := range []struct {
		name    string
		secrets []string
	}{{"1secret", []string{benchSecret}}, {"2secrets", []string{benchSecret, benchOld}}} {
		b.Run(tc.name, func(b *testing.B) {
			ts := time.Now().Unix()
			b.ReportAllocs()
			for b.Loop() {
				s, err := signing.NewSigner(tc.secrets...)
				if err != nil {
					b.Fatal(err)
				}
				_ = s.Sign(benchID, ts, webhookBody)
			}
		})
	}
}

// BenchmarkVerifyWebhook verifies as a receiver does: headers, current time.
// "rotation" holds the new secret only while the webhook is signed with the
// old and the new one; "2secrets" is a receiver holding both.
func BenchmarkVerifyWebhook(b *testing.B) {
	ts := time.Now().Unix()
	one, err := signing.NewSigner(benchSecret)
	if err != nil {
		b.Fatal(err)
	}
	both, err := signing.NewSigner(benchOld, benchSecret)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		header  string
		secrets []string
	}{
		{"1secret", one.Sign(benchID, ts, webhookBody), []string{benchSecret}},
		{"rotation", both.Sign(benchID, ts, webhookBody), []string{benchSecret}},
		{"2secrets", one.Sign(benchID, ts, webhookBody), []string{benchOld, benchSecret}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			v, err := signing.NewVerifier(tc.secrets...)
			if err != nil {
				b.Fatal(err)
			}
			h := http.Header{}
			h.Set(signing.HeaderID, benchID)
			h.Set(signing.HeaderTimestamp, strconv.FormatInt(ts, 10))
			h.Set(signing.HeaderSignature, tc.header)
			b.SetBytes(int64(len(webhookBody)))
			b.ReportAllocs()
			for b.Loop() {
				if err := v.Verify(h, webhookBody); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package webhooks_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/boomerang-dev/boomerang/signing"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// verifyingReceiver checks every request with our verifier and with the
// Standard Webhooks reference library, for each secret, and answers with the
// scripted codes once the signature holds (401 otherwise).
type verifyingReceiver struct {
	*receiver
	mu   sync.Mutex
	errs []string
}

func newVerifyingReceiver(t *testing.T, secrets []string, codes ...int) *verifyingReceiver {
	t.Helper()
	type verifier struct {
		name   string
		verify func(h http.Header, body []byte) error
	}
	var vs []verifier
	for i, s := range secrets {
		ours, err := signing.NewVerifier(s)
		if err != nil {
			t.Fatalf("signing.NewVerifier(secret %d) = %v", i, err)
		}
		theirs, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatalf("standardwebhooks.NewWebhook(secret %d) = %v", i, err)
		}
		vs = append(vs,
			verifier{fmt.Sprintf("signing.Verifier(secret %d)", i), ours.Verify},
			verifier{fmt.Sprintf("standardwebhooks(secret %d)", i), func(h http.Header, b []byte) error { return theirs.Verify(b, h) }})
	}
	vr := &verifyingReceiver{}
	var handlers []http.HandlerFunc
	for _, code := range codes {
		handlers = append(handlers, func(w http.ResponseWriter, r *http.Request) {
			// The receiver recorded the body already; look it up.
			reqs := vr.Requests()
			body := reqs[len(reqs)-1].Body
			ok := true
			for _, v := range vs {
				if err := v.verify(r.Header, body); err != nil {
					ok = false
					vr.mu.Lock()
					vr.errs = append(vr.errs, fmt.Sprintf("request %d: %s: %v", len(reqs), v.name, err))
					vr.mu.Unlock()
				}
			}
			if !ok {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.WriteHeader(code)
		})
	}
	vr.receiver = newReceiver(t, handlers...)
	return vr
}

func (v *verifyingReceiver) Errors() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.errs...)
}

func TestSignaturesVerifyOnEveryAttempt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets int
	}{
		{"one secret", 1},
		{"rotation: two secrets", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t)
			var secrets []string
			for i := 0; i < tt.secrets; i++ {
				s, err := signing.NewSecret()
				if err != nil {
					t.Fatal(err)
				}
				secrets = append(secrets, s)
			}
			e.secrets.Set("cl_sig", secrets...)
			r := newVerifyingReceiver(t, secrets, 500, 503, 200)
			m := e.newDelivery(t, "cl_sig", r.URL+"/hook")
			e.first(t, m)
			for n := 2; n <= 3; n++ {
				d := e.get(t, m.ID)
				e.clock.Set(*d.NextAttemptAt)
				if err := e.d.Attempt(ctx, m.ID, n); err != nil {
					t.Fatalf("Attempt(%s, %d) = %v", m.ID, n, err)
				}
			}
			if errs := r.Errors(); len(errs) > 0 {
				t.Errorf("receiver could not verify: %s", strings.Join(errs, "; "))
			}
			d := e.get(t, m.ID)
			if d.Status != webhooks.StatusDelivered || d.Attempts != 3 {
				t.Fatalf("Status, Attempts = %s, %d, want DELIVERED, 3 (log %+v)", d.Status, d.Attempts, d.AttemptLog)
			}
			reqs := r.Requests()
			if len(reqs) != 3 {
				t.Fatalf("receiver saw %d requests, want 3", len(reqs))
			}
			for i, req := range reqs {
				if !bytes.Equal(req.Body, m.Payload) {
					t.Errorf("request %d body = %s, want the job's webhook body %s (the same on every retry)", i+1, req.Body, m.Payload)
				}
				if got := req.Header.Get(signing.HeaderID); got != m.ID {
					t.Errorf("request %d webhook-id = %q, want %q (the same on every retry)", i+1, got, m.ID)
				}
				sig := req.Header.Get(signing.HeaderSignature)
				if got := len(strings.Fields(sig)); got != tt.secrets {
					t.Errorf("request %d webhook-signature has %d signatures, want %d", i+1, got, tt.secrets)
				}
				if got, want := req.Header.Get(signing.HeaderTimestamp), fmt.Sprint(d.AttemptLog[i].StartedAt.Unix()); got != want {
					t.Errorf("request %d webhook-timestamp = %q, want %q", i+1, got, want)
				}
				if got := req.Header.Get("User-Agent"); got != "Boomerang-test/1.0" {
					t.Errorf("request %d User-Agent = %q, want Boomerang-test/1.0", i+1, got)
				}
				if got := req.Header.Get("Content-Type"); got != "application/json" {
					t.Errorf("request %d Content-Type = %q, want application/json", i+1, got)
				}
				stored, _ := headerValue(d.AttemptLog[i].RequestHeaders, signing.HeaderSignature)
				for _, s := range strings.Fields(sig) {
					if strings.Contains(stored, strings.TrimPrefix(s, "v1,")) {
						t.Errorf("attempt %d log stores the real signature", i+1)
					}
				}
				wantStored := "v1,<redacted>"
				if tt.secrets > 1 {
					wantStored = fmt.Sprintf("%d × v1,<redacted>", tt.secrets)
				}
				if stored != wantStored {
					t.Errorf("attempt %d stored signature = %q, want %q", i+1, stored, wantStored)
				}
			}
		})
	}
}

// A rotation that happens between attempts: the retry is signed with the
// secrets of the time of the retry.
func TestSignaturesFollowRotationBetweenAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	oldS, _ := signing.NewSecret()
	newS, _ := signing.NewSecret()
	e.secrets.Set("cl_rot", oldS)
	r := newReceiver(t, status(500), status(200))
	m := e.newDelivery(t, "cl_rot", r.URL)
	e.first(t, m)
	e.secrets.Set("cl_rot", oldS, newS)
	e.clock.Set(*e.get(t, m.ID).NextAttemptAt)
	if err := e.d.Attempt(ctx, m.ID, 2); err != nil {
		t.Fatal(err)
	}
	reqs := r.Requests()
	if len(reqs) != 2 {
		t.Fatalf("receiver saw %d requests, want 2", len(reqs))
	}
	tests := []struct {
		req     int
		secret  string
		name    string
		wantErr bool
	}{
		{0, oldS, "attempt 1, old secret", false},
		{0, newS, "attempt 1, new secret", true},
		{1, oldS, "attempt 2, old secret", false},
		{1, newS, "attempt 2, new secret", false},
	}
	for _, tt := range tests {
		v, err := signing.NewVerifier(tt.secret)
		if err != nil {
			t.Fatal(err)
		}
		err = v.Verify(reqs[tt.req].Header, reqs[tt.req].Body)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: Verify = %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}

package signing_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/boomerang-dev/boomerang/signing"
)

// The reference Go library of the Standard Webhooks project (test-only
// dependency) must accept what we sign, and we must accept what it signs.
//
// That library always checks timestamps against time.Now with a fixed,
// unexported 5-minute tolerance, so these tests use the real clock.

func TestInteropOurSignerTheirVerifier(t *testing.T) {
	oldSecret, newSecret := mustSecret(t), mustSecret(t)
	vec := loadVectors(t)[0]
	tests := []struct {
		name        string
		signWith    []string
		verifyWith  string
		id, body    string
		wantAccepts bool
	}{
		{"vector secret", []string{vec.Secret}, vec.Secret, vec.ID, vec.Body, true},
		{"single secret", []string{newSecret}, newSecret, "msg_single", `{"a":1}`, true},
		{"rotation header, old secret", []string{oldSecret, newSecret}, oldSecret, "msg_rot", `{"b":2}`, true},
		{"rotation header, new secret", []string{oldSecret, newSecret}, newSecret, "msg_rot", `{"b":2}`, true},
		{"old only, new secret", []string{oldSecret}, newSecret, "msg_old", `{}`, false},
		{"empty body", []string{newSecret}, newSecret, "msg_empty", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := signing.NewSigner(tt.signWith...)
			if err != nil {
				t.Fatal(err)
			}
			ts := time.Now().Unix()
			sig := s.Sign(tt.id, ts, []byte(tt.body))
			wh, err := standardwebhooks.NewWebhook(tt.verifyWith)
			if err != nil {
				t.Fatal(err)
			}
			err = wh.Verify([]byte(tt.body), headers(tt.id, ts, sig))
			if tt.wantAccepts && err != nil {
				t.Errorf("standardwebhooks Verify(our header %q) = %v, want nil", sig, err)
			}
			if !tt.wantAccepts && !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
				t.Errorf("standardwebhooks Verify(our header %q) = %v, want ErrNoMatchingSignature", sig, err)
			}
		})
	}
}

func TestInteropTheirSignerOurVerifier(t *testing.T) {
	secret := mustSecret(t)
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`{"type":"invoice.paid"}`, "", "not json \x00\xff"} {
		now := time.Now()
		const id = "msg_theirs"
		sig, err := wh.Sign(id, now, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		// Their header, through a real http.Header as they build it.
		h := http.Header{}
		h.Set(standardwebhooks.HeaderWebhookID, id)
		h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(standardwebhooks.HeaderWebhookSignature, sig)
		if err := signing.Verify(secret, h, []byte(body)); err != nil {
			t.Errorf("Verify(their signature %q, body %q) = %v, want nil", sig, body, err)
		}
		// And their signature equals ours.
		ours, _ := signing.Sign(secret, id, now.Unix(), []byte(body))
		if sig != ours {
			t.Errorf("body %q: their Sign = %q, ours = %q", body, sig, ours)
		}
	}

	// Their signature on the vector input is the published one.
	vec := loadVectors(t)[0]
	whVec, err := standardwebhooks.NewWebhook(vec.Secret)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := whVec.Sign(vec.ID, time.Unix(vec.Timestamp, 0), []byte(vec.Body))
	if sig != vec.Signature {
		t.Errorf("standardwebhooks Sign(vector) = %q, want %q", sig, vec.Signature)
	}
	if err := fixedVerifier(t, vec.Timestamp, vec.Secret).Verify(headers(vec.ID, vec.Timestamp, sig), []byte(vec.Body)); err != nil {
		t.Errorf("Verify(their vector signature) = %v, want nil", err)
	}
}

// TestInteropDifferences documents where the reference library is more
// lenient than this package; see the comments for why we differ.
func TestInteropDifferences(t *testing.T) {
	secret := mustSecret(t)
	now := time.Now().Unix()
	const id, body = "msg_diff", "{}"
	sig, _ := signing.Sign(secret, id, now, []byte(body))

	// 1. It accepts a secret without the whsec_ prefix (strings.TrimPrefix);
	//    we require the prefix so that a misplaced value fails loudly.
	bare := strings.TrimPrefix(secret, signing.SecretPrefix)
	if _, err := standardwebhooks.NewWebhook(bare); err != nil {
		t.Errorf("standardwebhooks.NewWebhook(bare secret) = %v; the library now rejects it, update this test", err)
	}
	if _, err := signing.NewVerifier(bare); !errors.Is(err, signing.ErrInvalidSecret) {
		t.Errorf("NewVerifier(bare secret) = %v, want ErrInvalidSecret", err)
	}

	// 2. It parses the timestamp with strconv.ParseInt, so "+1700000000"
	//    passes its syntax check (and it signs the re-formatted number); we
	//    accept digits only and sign the header value as sent.
	wh, _ := standardwebhooks.NewWebhook(secret)
	h := headers(id, now, sig)
	h.Set(signing.HeaderTimestamp, "+"+strconv.FormatInt(now, 10))
	if err := wh.Verify([]byte(body), h); err != nil {
		t.Errorf("standardwebhooks Verify(timestamp with +) = %v; the library now rejects it, update this test", err)
	}
	if err := signing.Verify(secret, h, []byte(body)); !errors.Is(err, signing.ErrTimestamp) {
		t.Errorf("Verify(timestamp with +) = %v, want ErrTimestamp", err)
	}

	// 3. It splits each entry on every comma and compares the second field,
	//    so "v1,<sig>,junk" matches there; base64 has no comma, so we treat
	//    such an entry as malformed.
	h = headers(id, now, sig+",junk")
	if err := wh.Verify([]byte(body), h); err != nil {
		t.Errorf("standardwebhooks Verify(entry with extra comma field) = %v; the library now rejects it, update this test", err)
	}
	if err := signing.Verify(secret, h, []byte(body)); !errors.Is(err, signing.ErrNoMatch) {
		t.Errorf("Verify(entry with extra comma field) = %v, want ErrNoMatch", err)
	}

	// 4. It accepts any key length, even empty; we require 24..64 bytes.
	if _, err := standardwebhooks.NewWebhook("whsec_"); err != nil {
		t.Errorf("standardwebhooks.NewWebhook(empty key) = %v; the library now rejects it, update this test", err)
	}
}

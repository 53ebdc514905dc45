package signing_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/signing"
)

// hmacVector is one published Standard Webhooks symmetric (v1) test vector.
type hmacVector struct {
	Source    string `json:"source"`
	Secret    string `json:"secret"`
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
	Body      string `json:"body"`
	Signature string `json:"signature"`
}

// loadVectors reads testdata/standard-webhooks-vectors.json.
//
// Its "ed25519" vectors are deliberately not decoded: they are for the
// asymmetric "v1a" scheme, and Boomerang signs with the symmetric v1 scheme
// only (secrets are shared per endpoint). The verifier must merely ignore
// v1a entries, which TestVerifyIgnoresOtherVersions checks.
func loadVectors(t testing.TB) []hmacVector {
	t.Helper()
	data, err := os.ReadFile("testdata/standard-webhooks-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		HMAC []hmacVector `json:"hmac"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.HMAC) == 0 {
		t.Fatal("no hmac vectors in testdata/standard-webhooks-vectors.json")
	}
	return file.HMAC
}

// fixedVerifier returns a verifier whose clock is stopped at unix.
func fixedVerifier(t testing.TB, unix int64, secrets ...string) *signing.Verifier {
	t.Helper()
	v, err := signing.NewVerifier(secrets...)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	v.Now = func() time.Time { return time.Unix(unix, 0) }
	return v
}

func headers(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set(signing.HeaderID, id)
	h.Set(signing.HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(signing.HeaderSignature, sig)
	return h
}

func TestVectorsSign(t *testing.T) {
	for _, vec := range loadVectors(t) {
		t.Run(vec.ID, func(t *testing.T) {
			got, err := signing.Sign(vec.Secret, vec.ID, vec.Timestamp, []byte(vec.Body))
			if err != nil {
				t.Fatalf("Sign(%s): %v", vec.ID, err)
			}
			if got != vec.Signature {
				t.Errorf("Sign(id=%s, ts=%d, body=%q) = %q, want %q", vec.ID, vec.Timestamp, vec.Body, got, vec.Signature)
			}
		})
	}
}

func TestVectorsVerify(t *testing.T) {
	for _, vec := range loadVectors(t) {
		t.Run(vec.ID, func(t *testing.T) {
			v := fixedVerifier(t, vec.Timestamp, vec.Secret)
			if err := v.Verify(headers(vec.ID, vec.Timestamp, vec.Signature), []byte(vec.Body)); err != nil {
				t.Errorf("Verify(id=%s, sig=%s) = %v, want nil", vec.ID, vec.Signature, err)
			}
			// Same with lower/upper-case header names.
			h := http.Header{}
			h["Webhook-Id"] = []string{vec.ID}
			h["Webhook-Timestamp"] = []string{strconv.FormatInt(vec.Timestamp, 10)}
			h["Webhook-Signature"] = []string{vec.Signature}
			if err := v.Verify(h, []byte(vec.Body)); err != nil {
				t.Errorf("Verify with canonical header names = %v, want nil", err)
			}
			// A one-byte change to the body must not verify.
			tampered := []byte(vec.Body + " ")
			if err := v.Verify(headers(vec.ID, vec.Timestamp, vec.Signature), tampered); !errors.Is(err, signing.ErrNoMatch) {
				t.Errorf("Verify(tampered body %q) = %v, want ErrNoMatch", tampered, err)
			}
			// So must a different id.
			if err := v.Verify(headers(vec.ID+"x", vec.Timestamp, vec.Signature), []byte(vec.Body)); !errors.Is(err, signing.ErrNoMatch) {
				t.Errorf("Verify(other id) = %v, want ErrNoMatch", err)
			}
		})
	}
}

// TestVectorsMustFail covers the "must_fail" list of the vector file.
func TestVectorsMustFail(t *testing.T) {
	vec := loadVectors(t)[0]
	sigOnly := strings.TrimPrefix(vec.Signature, "v1,")
	ts := vec.Timestamp
	tests := []struct {
		name      string
		timestamp string
		sig       string
		want      error
	}{
		{"wrong signature", "", "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", signing.ErrNoMatch},
		{"unknown version v2", "", "v2," + sigOnly, signing.ErrNoMatch},
		{"v1 empty", "", "v1,", signing.ErrNoMatch},
		{"timestamp 5 min + 1 s old", strconv.FormatInt(ts-301, 10), vec.Signature, signing.ErrTimestamp},
		{"timestamp 5 min + 1 s ahead", strconv.FormatInt(ts+301, 10), vec.Signature, signing.ErrTimestamp},
		{"timestamp 1 h old", strconv.FormatInt(ts-3600, 10), vec.Signature, signing.ErrTimestamp},
		{"non-numeric timestamp", "yesterday", vec.Signature, signing.ErrTimestamp},
		{"millisecond timestamp", strconv.FormatInt(ts*1000, 10), vec.Signature, signing.ErrTimestamp},
		{"negative timestamp", "-" + strconv.FormatInt(ts, 10), vec.Signature, signing.ErrTimestamp},
		{"signed timestamp", "+" + strconv.FormatInt(ts, 10), vec.Signature, signing.ErrTimestamp},
		{"fractional timestamp", strconv.FormatInt(ts, 10) + ".0", vec.Signature, signing.ErrTimestamp},
		{"huge timestamp", strings.Repeat("9", 40), vec.Signature, signing.ErrTimestamp},
	}
	v := fixedVerifier(t, ts, vec.Secret)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timestamp := tt.timestamp
			if timestamp == "" {
				timestamp = strconv.FormatInt(ts, 10)
			}
			err := v.VerifyValues(vec.ID, timestamp, tt.sig, []byte(vec.Body))
			if !errors.Is(err, tt.want) {
				t.Errorf("VerifyValues(ts=%q, sig=%q) = %v, want %v", timestamp, tt.sig, err, tt.want)
			}
		})
	}
}

func TestVerifyTolerance(t *testing.T) {
	vec := loadVectors(t)[0]
	tests := []struct {
		name      string
		tolerance time.Duration
		now       time.Time
		want      error
	}{
		{"exactly 5 min later", 0, time.Unix(vec.Timestamp+300, 0), nil},
		{"exactly 5 min earlier", 0, time.Unix(vec.Timestamp-300, 0), nil},
		{"5 min 0.5 s later", 0, time.Unix(vec.Timestamp+300, 5e8), signing.ErrTimestamp},
		{"5 min 1 s earlier", 0, time.Unix(vec.Timestamp-301, 0), signing.ErrTimestamp},
		{"negative tolerance means default", -time.Second, time.Unix(vec.Timestamp+200, 0), nil},
		{"custom 10 s, 11 s later", 10 * time.Second, time.Unix(vec.Timestamp+11, 0), signing.ErrTimestamp},
		{"custom 10 s, 10 s earlier", 10 * time.Second, time.Unix(vec.Timestamp-10, 0), nil},
		{"custom 1 h, 59 min later", time.Hour, time.Unix(vec.Timestamp+59*60, 0), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := signing.NewVerifier(vec.Secret)
			if err != nil {
				t.Fatal(err)
			}
			v.Now = func() time.Time { return tt.now }
			v.Tolerance = tt.tolerance
			err = v.Verify(headers(vec.ID, vec.Timestamp, vec.Signature), []byte(vec.Body))
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify(ts=%d) at now=%v tolerance=%v = %v, want %v", vec.Timestamp, tt.now.Unix(), tt.tolerance, err, tt.want)
			}
		})
	}
}

func TestVerifyRealClock(t *testing.T) {
	secret, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	sig, err := signing.Sign(secret, "msg_1", now, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if err := signing.Verify(secret, headers("msg_1", now, sig), []byte("{}")); err != nil {
		t.Errorf("Verify(fresh webhook) = %v, want nil", err)
	}
	old := now - 3600
	sig, _ = signing.Sign(secret, "msg_1", old, []byte("{}"))
	if err := signing.Verify(secret, headers("msg_1", old, sig), []byte("{}")); !errors.Is(err, signing.ErrTimestamp) {
		t.Errorf("Verify(hour-old webhook) = %v, want ErrTimestamp", err)
	}
	if err := signing.Verify("nope", headers("msg_1", now, sig), []byte("{}")); !errors.Is(err, signing.ErrInvalidSecret) {
		t.Errorf("Verify(bad secret) = %v, want ErrInvalidSecret", err)
	}
}

func TestVerifyMissingHeaders(t *testing.T) {
	vec := loadVectors(t)[0]
	v := fixedVerifier(t, vec.Timestamp, vec.Secret)
	for _, name := range []string{signing.HeaderID, signing.HeaderTimestamp, signing.HeaderSignature} {
		for _, empty := range []bool{false, true} {
			h := headers(vec.ID, vec.Timestamp, vec.Signature)
			if empty {
				h.Set(name, "")
			} else {
				h.Del(name)
			}
			err := v.Verify(h, []byte(vec.Body))
			if !errors.Is(err, signing.ErrMissingHeader) {
				t.Errorf("Verify without %s (empty=%v) = %v, want ErrMissingHeader", name, empty, err)
				continue
			}
			if !strings.Contains(err.Error(), name) {
				t.Errorf("Verify without %s: error %q does not name the header", name, err)
			}
		}
	}
}

// TestVerifyHeaderParsing checks entries around the true signature.
func TestVerifyHeaderParsing(t *testing.T) {
	vec := loadVectors(t)[0]
	good := vec.Signature
	sigOnly := strings.TrimPrefix(good, "v1,")
	tests := []struct {
		header string
		ok     bool
	}{
		{good, true},
		{"v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== " + good, true},
		{good + " v2,abc", true},
		{"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + good, true},
		{"  " + good + "  ", true},
		{"garbage " + good, true},
		{", v1 v1, ,,, " + good, true},
		{"v1a," + sigOnly, false},
		{"V1," + sigOnly, false},
		{" v1," + sigOnly + "x", false},
		{"v1," + sigOnly[:len(sigOnly)-1], false},
		{"v1," + sigOnly + "=", false},
		{"v1," + strings.TrimRight(sigOnly, "="), false},
		{"v1,," + sigOnly, false},
		{sigOnly, false},
		{"v1," + strings.ToLower(sigOnly), false},
		{"v1,!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", false},
		{"v1,\x00\xff" + sigOnly[2:], false},
		{"v1\t" + sigOnly, false},
		{good[:len(good)-1] + "\t", false},
		{",", false},
		{" ", false},
		{strings.Repeat("v1,AAAA ", 1000), false},
	}
	v := fixedVerifier(t, vec.Timestamp, vec.Secret)
	ts := strconv.FormatInt(vec.Timestamp, 10)
	for _, tt := range tests {
		err := v.VerifyValues(vec.ID, ts, tt.header, []byte(vec.Body))
		if tt.ok && err != nil {
			t.Errorf("VerifyValues(sig header %q) = %v, want nil", tt.header, err)
		}
		if !tt.ok && !errors.Is(err, signing.ErrNoMatch) {
			t.Errorf("VerifyValues(sig header %q) = %v, want ErrNoMatch", tt.header, err)
		}
	}
}

func TestVerifyIgnoresOtherVersions(t *testing.T) {
	vec := loadVectors(t)[0]
	v := fixedVerifier(t, vec.Timestamp, vec.Secret)
	ts := strconv.FormatInt(vec.Timestamp, 10)
	// The asymmetric vector of the same message, on its own: ignored, so no match.
	v1a := "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="
	for _, h := range []string{v1a, "v2," + strings.TrimPrefix(vec.Signature, "v1,"), "v0,x v3,y"} {
		if err := v.VerifyValues(vec.ID, ts, h, []byte(vec.Body)); !errors.Is(err, signing.ErrNoMatch) {
			t.Errorf("VerifyValues(%q) = %v, want ErrNoMatch", h, err)
		}
	}
}

func TestRotation(t *testing.T) {
	oldSecret, newSecret := mustSecret(t), mustSecret(t)
	const id, body = "msg_rotate", `{"type":"rotation"}`
	ts := int64(1700000000)

	both, err := signing.NewSigner(oldSecret, newSecret)
	if err != nil {
		t.Fatal(err)
	}
	header := both.Sign(id, ts, []byte(body))
	oldOnly, _ := signing.Sign(oldSecret, id, ts, []byte(body))
	newOnly, _ := signing.Sign(newSecret, id, ts, []byte(body))
	if want := oldOnly + " " + newOnly; header != want {
		t.Fatalf("NewSigner(old, new).Sign = %q, want %q (old then new)", header, want)
	}

	tests := []struct {
		name    string
		secrets []string
		header  string
		ok      bool
	}{
		{"both signed, old secret", []string{oldSecret}, header, true},
		{"both signed, new secret", []string{newSecret}, header, true},
		{"both signed, both secrets", []string{newSecret, oldSecret}, header, true},
		{"old signed, new secret", []string{newSecret}, oldOnly, false},
		{"new signed, old secret", []string{oldSecret}, newOnly, false},
		{"old signed, both secrets", []string{newSecret, oldSecret}, oldOnly, true},
		{"old signed, three secrets", []string{mustSecret(t), mustSecret(t), oldSecret}, oldOnly, true},
		{"old signed, three other secrets", []string{mustSecret(t), mustSecret(t), newSecret}, oldOnly, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := fixedVerifier(t, ts, tt.secrets...)
			err := v.Verify(headers(id, ts, tt.header), []byte(body))
			if tt.ok && err != nil {
				t.Errorf("Verify = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, signing.ErrNoMatch) {
				t.Errorf("Verify = %v, want ErrNoMatch", err)
			}
		})
	}
}

func mustSecret(t testing.TB) string {
	t.Helper()
	s, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewSecret(t *testing.T) {
	a, b := mustSecret(t), mustSecret(t)
	if a == b {
		t.Errorf("NewSecret returned %q twice", a)
	}
	if !strings.HasPrefix(a, signing.SecretPrefix) {
		t.Errorf("NewSecret() = %q, want prefix %q", a, signing.SecretPrefix)
	}
	key, err := signing.ParseSecret(a)
	if err != nil {
		t.Fatalf("ParseSecret(NewSecret()) = %v", err)
	}
	if len(key) != 32 {
		t.Errorf("NewSecret key is %d bytes, want 32", len(key))
	}
}

func TestParseSecret(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	tests := []struct {
		secret  string
		wantLen int    // 0: must fail
		reason  string // substring of the error
	}{
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 24, ""},
		{"whsec_" + b64(24), 24, ""},
		{"whsec_" + b64(32), 32, ""},
		{"whsec_" + b64(64), 64, ""},
		{"whsec_" + b64(23), 0, "23 bytes"},
		{"whsec_" + b64(65), 0, "65 bytes"},
		{"whsec_", 0, "0 bytes"},
		{"", 0, "prefix"},
		{b64(32), 0, "prefix"},
		{"WHSEC_" + b64(32), 0, "prefix"},
		{"whsk_" + b64(32), 0, "prefix"},
		{"whsec_" + strings.TrimRight(b64(32), "="), 0, "base64"},
		{"whsec_" + strings.ReplaceAll(b64(32), "A", "-"), 0, "base64"},
		{"whsec_ " + b64(32), 0, "base64"},
		{"whsec_" + b64(32) + "\n", 0, "line break"},
	}
	for _, tt := range tests {
		key, err := signing.ParseSecret(tt.secret)
		if tt.wantLen > 0 {
			if err != nil || len(key) != tt.wantLen {
				t.Errorf("ParseSecret(%q) = %d bytes, %v; want %d bytes, nil", tt.secret, len(key), err, tt.wantLen)
			}
			continue
		}
		if !errors.Is(err, signing.ErrInvalidSecret) || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("ParseSecret(%q) error = %v, want ErrInvalidSecret saying %q", tt.secret, err, tt.reason)
			continue
		}
		if payload := strings.TrimPrefix(tt.secret, "whsec_"); len(payload) > 4 && strings.Contains(err.Error(), payload) {
			t.Errorf("ParseSecret(%q) error %q contains the secret", tt.secret, err)
		}
	}
}

func TestConstructorsRejectBadSecrets(t *testing.T) {
	good := mustSecret(t)
	tests := []struct {
		name    string
		secrets []string
		detail  string
	}{
		{"none", nil, "no secret"},
		{"one bad", []string{"whsec_tooshort"}, ""},
		{"second bad", []string{good, "secret"}, "secret 2 of 2"},
	}
	for _, tt := range tests {
		_, errS := signing.NewSigner(tt.secrets...)
		_, errV := signing.NewVerifier(tt.secrets...)
		for _, err := range []error{errS, errV} {
			if !errors.Is(err, signing.ErrInvalidSecret) || !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("%s: secrets %q: error %v, want ErrInvalidSecret saying %q", tt.name, tt.secrets, err, tt.detail)
			}
			if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(good, "whsec_")) {
				t.Errorf("%s: error %q contains a secret", tt.name, err)
			}
		}
	}
	if _, err := signing.Sign("bad", "id", 1, nil); !errors.Is(err, signing.ErrInvalidSecret) {
		t.Errorf("Sign(bad secret) error = %v, want ErrInvalidSecret", err)
	}
}

// TestErrorsHideSecrets checks that no verification error quotes a signature.
func TestErrorsHideSecrets(t *testing.T) {
	vec := loadVectors(t)[0]
	v := fixedVerifier(t, vec.Timestamp, vec.Secret)
	sigOnly := strings.TrimPrefix(vec.Signature, "v1,")
	for _, ts := range []string{"1", "x", strconv.FormatInt(vec.Timestamp, 10)} {
		err := v.VerifyValues(vec.ID, ts, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", []byte(vec.Body))
		if err == nil {
			t.Fatalf("VerifyValues(wrong sig, ts=%s) = nil, want error", ts)
		}
		for _, s := range []string{sigOnly, "Ceo5qEr07ixe2NLp", strings.TrimPrefix(vec.Secret, "whsec_")} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %q contains %q", err, s)
			}
		}
	}
}

func TestZeroValues(t *testing.T) {
	var s signing.Signer
	if got := s.Sign("id", 1, nil); got != "" {
		t.Errorf("zero Signer.Sign = %q, want empty", got)
	}
	var v signing.Verifier
	v.Now = func() time.Time { return time.Unix(1, 0) }
	if err := v.VerifyValues("id", "1", "v1,AAAA", nil); !errors.Is(err, signing.ErrNoMatch) {
		t.Errorf("zero Verifier.VerifyValues = %v, want ErrNoMatch", err)
	}
}

func TestLongID(t *testing.T) {
	// Ids longer than the internal stack buffer must sign the same way.
	secret := mustSecret(t)
	id := strings.Repeat("i", 1000)
	sig, err := signing.Sign(secret, id, 1700000000, []byte("body"))
	if err != nil {
		t.Fatal(err)
	}
	v := fixedVerifier(t, 1700000000, secret)
	if err := v.VerifyValues(id, "1700000000", sig, []byte("body")); err != nil {
		t.Errorf("VerifyValues(1000-byte id) = %v, want nil", err)
	}
}

func TestVerifyAllocations(t *testing.T) {
	vec := loadVectors(t)[0]
	v := fixedVerifier(t, vec.Timestamp, vec.Secret)
	ts := strconv.FormatInt(vec.Timestamp, 10)
	header := "v1a,xyz v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + vec.Signature
	body := []byte(vec.Body)
	fail := "v2,x v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
	rejectAllocs := testing.AllocsPerRun(100, func() {
		_ = v.VerifyValues(vec.ID, "1", header, body) // stale: no HMAC at all
	})
	if rejectAllocs != 0 {
		t.Errorf("rejecting a stale timestamp allocates %v times, want 0", rejectAllocs)
	}
	okAllocs := testing.AllocsPerRun(100, func() {
		if err := v.VerifyValues(vec.ID, ts, header, body); err != nil {
			t.Fatal(err)
		}
		_ = v.VerifyValues(vec.ID, ts, fail, body)
	})
	// Keyed HMAC states are pooled, and the header parser does not allocate.
	// (The race detector makes sync.Pool drop items at random.)
	if okAllocs != 0 && !raceEnabled {
		t.Errorf("two verifications allocate %v times, want 0", okAllocs)
	}
}

func BenchmarkVerify(b *testing.B) {
	vec := loadVectors(b)[0]
	v := fixedVerifier(b, vec.Timestamp, vec.Secret)
	ts := strconv.FormatInt(vec.Timestamp, 10)
	header := "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + vec.Signature
	body := []byte(vec.Body)
	b.ReportAllocs()
	for b.Loop() {
		if err := v.VerifyValues(vec.ID, ts, header, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	vec := loadVectors(b)[0]
	s, err := signing.NewSigner(vec.Secret)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(vec.Body)
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Sign(vec.ID, vec.Timestamp, body)
	}
}

package signing_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/signing"
)

// refSign is an independent, straightforward implementation of the v1
// signature over the timestamp exactly as written in the header.
func refSign(secret, id, timestamp, body string) string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic(err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + timestamp + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// FuzzVerifyHeader feeds arbitrary signature headers and timestamps to the
// verifier. It checks that verification never panics, returns only the
// documented errors, succeeds only if the header holds the true v1
// signature as one of its space-separated entries and the timestamp is
// in tolerance, and always succeeds when both hold.
func FuzzVerifyHeader(f *testing.F) {
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		body   = `{"test": 2432232314}`
		now    = 1614265330
	)
	v, err := signing.NewVerifier(secret)
	if err != nil {
		f.Fatal(err)
	}
	v.Now = func() time.Time { return time.Unix(now, 0) }

	// More seeds are in testdata/fuzz/FuzzVerifyHeader.
	f.Add("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "1614265330")
	f.Add("v1a,abc v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "1614265330")
	f.Add("v1,", "1614265330")

	f.Fuzz(func(t *testing.T, header, timestamp string) {
		err := v.VerifyValues(id, timestamp, header, []byte(body))

		// The oracle: digits only, within ±5 min, and the true signature
		// over the timestamp as written is one of the entries.
		digitsOnly := timestamp != "" && strings.Trim(timestamp, "0123456789") == ""
		ts, parseErr := strconv.ParseInt(timestamp, 10, 64)
		inTolerance := digitsOnly && parseErr == nil && ts >= now-300 && ts <= now+300
		hasTrue := false
		if inTolerance {
			want := refSign(secret, id, timestamp, body)
			for _, entry := range strings.Split(header, " ") {
				hasTrue = hasTrue || entry == want
			}
		}

		switch {
		case err == nil && !hasTrue:
			t.Fatalf("VerifyValues(ts=%q, sig=%q) = nil, but the timestamp is out of tolerance or the header lacks the true signature", timestamp, header)
		case err != nil && hasTrue:
			t.Fatalf("VerifyValues(ts=%q, sig=%q) = %v, want nil: the header holds the true signature", timestamp, header, err)
		case err != nil && !errors.Is(err, signing.ErrNoMatch) && !errors.Is(err, signing.ErrTimestamp) && !errors.Is(err, signing.ErrMissingHeader):
			t.Fatalf("VerifyValues(ts=%q, sig=%q) = %v, an undocumented error", timestamp, header, err)
		case errors.Is(err, signing.ErrTimestamp) && inTolerance:
			t.Fatalf("VerifyValues(ts=%q) = %v, but the timestamp is valid", timestamp, err)
		case err != nil && header != "" && len(header) > 8 && strings.Contains(err.Error(), header):
			t.Fatalf("VerifyValues error %q quotes the signature header", err)
		}
	})
}

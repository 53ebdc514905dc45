package signing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names and defaults of the Standard Webhooks specification.
const (
	HeaderID         = "webhook-id"
	HeaderTimestamp  = "webhook-timestamp"
	HeaderSignature  = "webhook-signature"
	SecretPrefix     = "whsec_"
	DefaultTolerance = 5 * time.Minute
)

// Errors returned by this package. Returned errors wrap one of them and may
// add detail; test with [errors.Is].
var (
	// ErrMissingHeader: the webhook-id, webhook-timestamp or
	// webhook-signature header is absent or empty.
	ErrMissingHeader = errors.New("signing: missing webhook header")
	// ErrTimestamp: the webhook-timestamp header is not a number of Unix
	// seconds, or is outside the verifier's tolerance.
	ErrTimestamp = errors.New("signing: invalid webhook timestamp")
	// ErrNoMatch: no v1 signature in the webhook-signature header matches
	// any of the verifier's secrets.
	ErrNoMatch = errors.New("signing: no matching signature")
	// ErrInvalidSecret: a secret is not "whsec_" followed by the base64 of
	// 24 to 64 bytes.
	ErrInvalidSecret = errors.New("signing: invalid secret")
)

// Preallocated detailed errors, so that rejecting a webhook does not allocate.
var (
	errMissingID        = fmt.Errorf("%w: %s", ErrMissingHeader, HeaderID)
	errMissingTimestamp = fmt.Errorf("%w: %s", ErrMissingHeader, HeaderTimestamp)
	errMissingSignature = fmt.Errorf("%w: %s", ErrMissingHeader, HeaderSignature)
	errTimestampSyntax  = fmt.Errorf("%w: not an integer number of Unix seconds", ErrTimestamp)
	errTimestampOld     = fmt.Errorf("%w: too old", ErrTimestamp)
	errTimestampNew     = fmt.Errorf("%w: too far in the future", ErrTimestamp)
)

const (
	version      = "v1"
	minKeyLen    = 24
	maxKeyLen    = 64
	newSecretLen = 32
	// sigLen is the length of the padded base64 encoding of an HMAC-SHA256.
	sigLen = (sha256.Size + 2) / 3 * 4
	// maxTimestamp bounds parsed timestamps, far beyond any valid one.
	maxTimestamp = 1e15
)

// NewSecret returns a new random secret: "whsec_" followed by the base64 of
// 32 bytes from crypto/rand.
func NewSecret() (string, error) {
	var key [newSecretLen]byte
	if _, err := rand.Read(key[:]); err != nil {
		return "", fmt.Errorf("signing: new secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key[:]), nil
}

// ParseSecret validates a secret and returns its key: the secret must be
// "whsec_" followed by the standard, padded base64 encoding of 24 to 64
// bytes. Errors wrap [ErrInvalidSecret] and say what is wrong, without
// quoting the secret.
func ParseSecret(secret string) ([]byte, error) {
	encoded, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: missing %q prefix", ErrInvalidSecret, SecretPrefix)
	}
	if strings.ContainsAny(encoded, "\r\n") {
		// The decoder would silently skip line breaks.
		return nil, fmt.Errorf("%w: contains a line break", ErrInvalidSecret)
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, fmt.Errorf("%w: not valid standard base64 after the prefix", ErrInvalidSecret)
	}
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return nil, fmt.Errorf("%w: key is %d bytes, want %d to %d", ErrInvalidSecret, len(key), minKeyLen, maxKeyLen)
	}
	return key, nil
}

// parseSecrets parses one or more secrets.
func parseSecrets(secrets []string) ([]*macKey, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secret given", ErrInvalidSecret)
	}
	keys := make([]*macKey, len(secrets))
	for i, s := range secrets {
		k, err := ParseSecret(s)
		if err != nil {
			if len(secrets) > 1 {
				return nil, fmt.Errorf("secret %d of %d: %w", i+1, len(secrets), err)
			}
			return nil, err
		}
		keys[i] = newMACKey(k)
	}
	return keys, nil
}

// macKey computes signatures with one key. It pools keyed HMAC states so
// that signing and verifying do not allocate in the steady state.
type macKey struct {
	pool sync.Pool // of *macState
}

type macState struct {
	h   hash.Hash
	buf [128]byte // id + "." + timestamp + "." for ids up to ~100 bytes
	sum [sha256.Size]byte
}

func newMACKey(key []byte) *macKey {
	k := &macKey{}
	k.pool.New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	return k
}

// sign writes into dst the padded base64 of
// HMAC-SHA256(key, id + "." + timestamp + "." + body).
func (k *macKey) sign(dst *[sigLen]byte, id, timestamp string, body []byte) {
	st := k.pool.Get().(*macState)
	st.h.Reset()
	prefix := append(append(append(append(st.buf[:0], id...), '.'), timestamp...), '.')
	st.h.Write(prefix)
	st.h.Write(body)
	base64.StdEncoding.Encode(dst[:], st.h.Sum(st.sum[:0]))
	k.pool.Put(st)
}

// Signer signs webhooks with one or more secrets. While a secret is rotated,
// sign with both the old and the new one so that receivers holding either
// accept the webhook. A Signer is safe for concurrent use; make one with
// [NewSigner].
type Signer struct {
	keys []*macKey
}

// NewSigner returns a Signer for the given secrets (at least one; see
// [ParseSecret] for their format).
func NewSigner(secrets ...string) (*Signer, error) {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return nil, err
	}
	return &Signer{keys: keys}, nil
}

// Sign returns the value of the webhook-signature header for a webhook: one
// "v1,<signature>" per secret, in the order the secrets were given, separated
// by single spaces. timestamp is in Unix seconds; send it in the
// webhook-timestamp header as a base-10 integer.
func (s *Signer) Sign(id string, timestamp int64, body []byte) string {
	if len(s.keys) == 0 {
		return ""
	}
	var tsBuf [20]byte
	ts := strconv.AppendInt(tsBuf[:0], timestamp, 10)
	var out strings.Builder
	out.Grow(len(s.keys)*(len(version)+1+sigLen+1) - 1)
	var sig [sigLen]byte
	for i, k := range s.keys {
		if i > 0 {
			out.WriteByte(' ')
		}
		k.sign(&sig, id, string(ts), body)
		out.WriteString(version)
		out.WriteByte(',')
		out.Write(sig[:])
	}
	return out.String()
}

// Sign returns the webhook-signature header value for one webhook signed
// with one secret.
func Sign(secret, id string, timestamp int64, body []byte) (string, error) {
	s, err := NewSigner(secret)
	if err != nil {
		return "", err
	}
	return s.Sign(id, timestamp, body), nil
}

// Verifier checks the signatures of incoming webhooks. Make one with
// [NewVerifier]; set Now and Tolerance before first use if needed. A Verifier
// is safe for concurrent use.
type Verifier struct {
	keys []*macKey
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Tolerance is how far the webhook timestamp may be from Now, in either
	// direction; zero or negative means DefaultTolerance.
	Tolerance time.Duration
}

// NewVerifier returns a Verifier that accepts a webhook if any of its
// secrets matches any v1 signature in the header. Give several secrets
// while rotating.
func NewVerifier(secrets ...string) (*Verifier, error) {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return nil, err
	}
	return &Verifier{keys: keys}, nil
}

// Verify checks a webhook given its request headers (looked up
// case-insensitively) and its raw body. It returns nil if the webhook is
// authentic and recent, or an error wrapping [ErrMissingHeader],
// [ErrTimestamp] or [ErrNoMatch].
func (v *Verifier) Verify(h http.Header, body []byte) error {
	return v.VerifyValues(h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature), body)
}

// VerifyValues is [Verifier.Verify] for callers that have the three header
// values rather than an [http.Header].
//
// The timestamp must be a base-10 integer of Unix seconds (digits only)
// within the tolerance. Signature entries whose version is not "v1" are
// ignored, as are malformed entries; signatures are compared in constant
// time.
func (v *Verifier) VerifyValues(id, timestamp, signatureHeader string, body []byte) error {
	switch {
	case id == "":
		return errMissingID
	case timestamp == "":
		return errMissingTimestamp
	case signatureHeader == "":
		return errMissingSignature
	}
	if err := v.checkTimestamp(timestamp); err != nil {
		return err
	}

	// Compute the expected signature for each key once; two fit on the
	// stack, which covers a rotation.
	var stack [2][sigLen]byte
	want := stack[:0]
	if len(v.keys) > len(stack) {
		want = make([][sigLen]byte, 0, len(v.keys))
	}
	for _, k := range v.keys {
		want = append(want, [sigLen]byte{})
		k.sign(&want[len(want)-1], id, timestamp, body)
	}

	var got [sigLen]byte
	for rest := signatureHeader; rest != ""; {
		var entry string
		entry, rest, _ = strings.Cut(rest, " ")
		ver, sig, ok := strings.Cut(entry, ",")
		if !ok || ver != version || len(sig) != sigLen {
			continue
		}
		copy(got[:], sig)
		for i := range want {
			if hmac.Equal(got[:], want[i][:]) {
				return nil
			}
		}
	}
	return ErrNoMatch
}

// checkTimestamp parses a timestamp of Unix seconds and checks it against
// the tolerance.
func (v *Verifier) checkTimestamp(timestamp string) error {
	var ts int64
	overflow := false
	for i := 0; i < len(timestamp); i++ {
		c := timestamp[i]
		if c < '0' || c > '9' {
			return errTimestampSyntax
		}
		if ts > maxTimestamp/10 {
			overflow = true // keep checking the syntax
			continue
		}
		ts = ts*10 + int64(c-'0')
	}
	if overflow {
		return errTimestampNew
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tolerance := v.Tolerance
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	t, n := time.Unix(ts, 0), now()
	if n.Sub(t) > tolerance {
		return errTimestampOld
	}
	if t.Sub(n) > tolerance {
		return errTimestampNew
	}
	return nil
}

// Verify checks a webhook with one secret, the current time and
// [DefaultTolerance]. Receivers that handle many webhooks should make one
// [Verifier] instead, which parses the secret once.
func Verify(secret string, h http.Header, body []byte) error {
	v, err := NewVerifier(secret)
	if err != nil {
		return err
	}
	return v.Verify(h, body)
}

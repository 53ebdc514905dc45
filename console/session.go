package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Sessions are stateless and signed: the cookie holds a random session id
// and an expiry, with an HMAC-SHA256 over both under a key derived from
// the admin token. Every API replica that shares the admin token accepts
// every other replica's sessions without a shared store, a login writes
// nothing to Redis, and changing the admin token ends every session at
// once. The cost: logging out clears the browser's cookie but cannot
// revoke a copy of it, which stays valid until it expires (sessionTTL);
// the cookie is HttpOnly and SameSite=Strict, so scripts and other sites
// cannot take or use it.

const (
	sessionCookie = "boomerang_console"
	loginCookie   = "boomerang_console_login" // the login form's CSRF nonce
	cookiePath    = "/admin/"
	sessionTTL    = 8 * time.Hour
	loginTTL      = 30 * time.Minute
	csrfField     = "csrf"
)

var errBadSession = errors.New("no valid session")

// keys are the HMAC keys derived from the admin token, one per use, so
// that no signed value can stand for another.
type keys struct {
	session, csrf, login []byte
}

func deriveKeys(adminToken string) keys {
	d := func(label string) []byte {
		m := hmac.New(sha256.New, []byte(adminToken))
		m.Write([]byte("boomerang console " + label + " v1"))
		return m.Sum(nil)
	}
	return keys{session: d("session"), csrf: d("csrf"), login: d("login")}
}

func mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		m.Write(n[:])
		m.Write(p)
	}
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding

// session is a logged-in browser.
type session struct {
	id      []byte // 16 random bytes
	expires time.Time
}

// newSession starts a session at now.
func newSession(now time.Time) (session, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return session{}, err
	}
	return session{id: id, expires: now.Add(sessionTTL).Truncate(time.Second)}, nil
}

// encode is the cookie value: id‖expiry, then its MAC.
func (k keys) encode(s session) string {
	payload := make([]byte, 0, 24)
	payload = append(payload, s.id...)
	payload = binary.BigEndian.AppendUint64(payload, uint64(s.expires.Unix()))
	return b64.EncodeToString(payload) + "." + b64.EncodeToString(mac(k.session, payload))
}

// decode checks a cookie value's MAC and expiry.
func (k keys) decode(v string, now time.Time) (session, error) {
	p, m, ok := strings.Cut(v, ".")
	if !ok {
		return session{}, errBadSession
	}
	payload, err1 := b64.DecodeString(p)
	sum, err2 := b64.DecodeString(m)
	if err1 != nil || err2 != nil || len(payload) != 24 || !hmac.Equal(sum, mac(k.session, payload)) {
		return session{}, errBadSession
	}
	s := session{id: payload[:16], expires: time.Unix(int64(binary.BigEndian.Uint64(payload[16:])), 0)}
	if !now.Before(s.expires) {
		return session{}, errBadSession
	}
	return s, nil
}

// csrfToken is the session's CSRF token: every form of the session
// carries it, and every POST must.
func (k keys) csrfToken(s session) string {
	return b64.EncodeToString(mac(k.csrf, s.id))
}

// loginToken is the login form's CSRF token, bound to the nonce cookie
// set with the form.
func (k keys) loginToken(nonce string) string {
	return b64.EncodeToString(mac(k.login, []byte(nonce)))
}

// tokensEqual compares two tokens in constant time.
func tokensEqual(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// tokenMatcher admits the admin token, in constant time whatever the
// length of the guess (as handlers' adminAuth).
func tokenMatcher(token string) func(string) bool {
	want := sha256.Sum256([]byte(token))
	return func(got string) bool {
		sum := sha256.Sum256([]byte(got))
		return token != "" && subtle.ConstantTimeCompare(sum[:], want[:]) == 1
	}
}

// secure reports whether the browser reached us over TLS, directly or
// through a proxy that terminated it. A forged X-Forwarded-Proto only
// makes the forger's own cookie Secure.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// setCookie sets a console cookie for ttl, or deletes it if ttl ≤ 0.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, ttl time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: cookiePath, HttpOnly: true,
		Secure: secure(r), SameSite: http.SameSiteStrictMode, MaxAge: int(ttl.Seconds())}
	if ttl <= 0 {
		c.Value, c.MaxAge = "", -1
	}
	http.SetCookie(w, c)
}

func randRead(b []byte) (int, error) { return rand.Read(b) }

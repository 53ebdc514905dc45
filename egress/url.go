package egress

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

func urlErr(code, detail string) *URLError { return &URLError{Code: code, Detail: detail} }

// CheckURL validates a callback URL at submission time, without any DNS
// lookup. The URL must be at most MaxURLLength bytes, contain no whitespace or
// control characters, start with http:// or https:// (https only if
// RequireHTTPS), parse with net/url, have a non-empty host, no user-info and,
// if present, a port in 1–65535. Query strings and fragments are allowed.
//
// If the host is an IP literal in any spelling a resolver or browser accepts
// (dotted decimal, a single integer such as 2130706433, octal 0177.0.0.1, hex
// 0x7f.0.0.1, short forms such as 127.1, bracketed IPv6 including
// IPv4-mapped forms and zone ids) it is normalised and checked with
// CheckAddr. Host names in the localhost family (localhost, *.localhost, ...)
// are checked as loopback and metadata.google.internal as cloud metadata.
// Other host names are accepted here and checked when dialled.
//
// Errors are *URLError; for Code "blocked-address" errors.As also yields the
// *BlockedError.
func (p Policy) CheckURL(raw string) error {
	_, err := p.CanonicalURL(raw)
	return err
}

// CanonicalURL checks raw like CheckURL and returns its canonical form, the
// one to store and to dial, so that one destination has one spelling:
//
//   - scheme and host name in lower case, without a trailing dot;
//   - an IP literal in its standard form: 2130706434, 0x7f.0.0.2 and
//     127.2 are 127.0.0.2, and an IPv4-mapped IPv6 address
//     ([::ffff:127.0.0.2]) is the IPv4 address;
//   - the port explicit and without leading zeros (:80 for http, :443
//     for https when absent);
//   - an empty path is "/"; the fragment, never sent over HTTP, is
//     dropped; path and query are kept as written.
//
// So the dialer never sends a numeric name such as 2130706434 to DNS, and
// per-host limits cannot be dodged by respelling a host.
func (p Policy) CanonicalURL(raw string) (string, error) {
	canonical, _, err := p.canonical(raw)
	return canonical, err
}

// CanonicalURLFor is CanonicalURL: a Policy resolves nothing and caches
// nothing, so the client makes no difference (see Checker.CanonicalURLFor).
func (p Policy) CanonicalURLFor(_, raw string) (string, error) { return p.CanonicalURL(raw) }

// canonical is CanonicalURL, which also returns the URL's host name, or ""
// when the host is an address (which it has checked).
func (p Policy) canonical(raw string) (canonical, name string, err error) {
	if limit := p.maxURLLength(); len(raw) > limit {
		return "", "", urlErr(CodeTooLong, fmt.Sprintf("callback URL is %d bytes long; the limit is %d", len(raw), limit))
	}
	if raw == "" {
		return "", "", urlErr(CodeInvalidURL, "callback URL is empty")
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c == 0x7f {
			return "", "", urlErr(CodeInvalidURL, "callback URL contains whitespace or control characters")
		}
	}
	if lower := strings.ToLower(raw); !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		// Checked before parsing: "127.0.0.1:9000/hook" would otherwise
		// get the parser's puzzling "first path segment cannot contain
		// colon", and "localhost:9000/hook" a scheme named localhost.
		return "", "", urlErr(CodeScheme, "callbackUrl must start with http:// or https://")
	}
	u, err := url.Parse(raw)
	if err != nil {
		detail := err.Error()
		if ue, ok := errors.AsType[*url.Error](err); ok {
			detail = ue.Err.Error() // without the URL itself
		}
		return "", "", urlErr(CodeInvalidURL, "callback URL does not parse: "+detail)
	}
	if u.Opaque != "" {
		return "", "", urlErr(CodeInvalidURL, "callback URL must have the form scheme://host/path")
	}
	if p.RequireHTTPS && u.Scheme != "https" {
		return "", "", urlErr(CodeHTTPSRequired, "callback URL must use https")
	}
	if u.User != nil {
		return "", "", urlErr(CodeUserinfo, "callback URL must not contain user-info (user:password@)")
	}
	host := u.Hostname()
	if host == "" {
		return "", "", urlErr(CodeMissingHost, "callback URL has no host")
	}
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	if ps := u.Port(); ps != "" {
		n, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || n == 0 {
			return "", "", urlErr(CodeInvalidURL, "callback URL port must be between 1 and 65535")
		}
		port = int(n)
	}
	t, problem := parseHost(host, strings.HasPrefix(u.Host, "["))
	if problem != "" {
		return "", "", urlErr(CodeInvalidURL, "callback URL "+problem)
	}
	var canonHost string
	if t.ip.IsValid() {
		err = p.CheckAddr(t.ip)
		ip := t.ip
		if ip.Is4In6() {
			ip = ip.Unmap().WithZone("")
		}
		canonHost = ip.String()
	} else {
		err = p.checkName(t.name)
		canonHost = t.name
	}
	if be, ok := err.(*BlockedError); ok {
		return "", "", blockedURL("callback URL destination "+be.Addr.String()+" is not allowed ("+be.Reason+")", be)
	}
	u.Host = net.JoinHostPort(canonHost, strconv.Itoa(port))
	if u.Path == "" && u.RawPath == "" {
		u.Path = "/"
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String(), t.name, nil
}

// blockedURL is the error for a refused destination; when the operator
// could open it, it says how.
func blockedURL(detail string, be *BlockedError) *URLError {
	if be.Allowable {
		detail += "; an operator can allow private destinations with BOOMERANG_ALLOW_PRIVATE_CALLBACKS=true " +
			"(development) or chosen ranges with BOOMERANG_ALLOW_CALLBACK_CIDRS"
	}
	return &URLError{Code: CodeBlockedAddress, Detail: detail, Err: be}
}

// HostPort returns the host:port of a canonical URL (see CanonicalURL): the
// key of per-host limits.
func HostPort(canonical string) string {
	u, err := url.Parse(canonical)
	if err != nil {
		return canonical
	}
	return u.Host
}

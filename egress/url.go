package egress

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

func urlErr(code, detail string) *URLError { return &URLError{Code: code, Detail: detail} }

// CheckURL validates a callback URL at submission time, without any DNS
// lookup. The URL must be at most MaxURLLength bytes, contain no whitespace or
// control characters, parse with net/url, be absolute with scheme http or
// https (https only if RequireHTTPS), have a non-empty host, no user-info and,
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
	if limit := p.maxURLLength(); len(raw) > limit {
		return urlErr(CodeTooLong, fmt.Sprintf("callback URL is %d bytes long; the limit is %d", len(raw), limit))
	}
	if raw == "" {
		return urlErr(CodeInvalidURL, "callback URL is empty")
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c == 0x7f {
			return urlErr(CodeInvalidURL, "callback URL contains whitespace or control characters")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		detail := err.Error()
		if ue, ok := errors.AsType[*url.Error](err); ok {
			detail = ue.Err.Error() // without the URL itself
		}
		return urlErr(CodeInvalidURL, "callback URL does not parse: "+detail)
	}
	switch u.Scheme { // url.Parse lower-cases the scheme
	case "":
		return urlErr(CodeInvalidURL, "callback URL must be absolute (https://host/path)")
	case "http", "https":
	default:
		return urlErr(CodeScheme, "callback URL scheme must be http or https")
	}
	if u.Opaque != "" {
		return urlErr(CodeInvalidURL, "callback URL must have the form scheme://host/path")
	}
	if p.RequireHTTPS && u.Scheme != "https" {
		return urlErr(CodeHTTPSRequired, "callback URL must use https")
	}
	if u.User != nil {
		return urlErr(CodeUserinfo, "callback URL must not contain user-info (user:password@)")
	}
	host := u.Hostname()
	if host == "" {
		return urlErr(CodeMissingHost, "callback URL has no host")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return urlErr(CodeInvalidURL, "callback URL port must be between 1 and 65535")
		}
	}
	t, problem := parseHost(host, strings.HasPrefix(u.Host, "["))
	if problem != "" {
		return urlErr(CodeInvalidURL, "callback URL "+problem)
	}
	if t.ip.IsValid() {
		err = p.CheckAddr(t.ip)
	} else {
		err = p.checkName(t.name)
	}
	if be, ok := err.(*BlockedError); ok {
		return &URLError{
			Code:   CodeBlockedAddress,
			Detail: "callback URL destination " + be.Addr.String() + " is not allowed (" + be.Reason + ")",
			Err:    be,
		}
	}
	return nil
}

package egress

import (
	"fmt"
	"net/netip"
	"strings"
)

// DefaultMaxURLLength is the callback URL length limit used when
// Policy.MaxURLLength is zero (or negative).
const DefaultMaxURLLength = 2048

// Policy says which callback destinations are allowed. The zero value is the
// safe default: public addresses only, http and https.
type Policy struct {
	// AllowPrivate (BOOMERANG_ALLOW_PRIVATE_CALLBACKS) is the blunt
	// development switch: it allows every non-public range (loopback,
	// RFC 1918, link-local, cloud metadata, ...), but still never the
	// unspecified addresses (0.0.0.0, ::) or multicast/broadcast.
	AllowPrivate bool
	// AllowCIDRs (BOOMERANG_ALLOW_CALLBACK_CIDRS) are ranges opened
	// explicitly, e.g. 127.0.0.1/32 or 10.20.0.0/16. They are matched against
	// the unmapped address, so 127.0.0.1/32 also opens ::ffff:127.0.0.1.
	// They cannot open unspecified, multicast or broadcast addresses.
	AllowCIDRs []netip.Prefix
	// RequireHTTPS (BOOMERANG_REQUIRE_HTTPS) refuses http:// callback URLs
	// at submission.
	RequireHTTPS bool
	// MaxURLLength is the longest callback URL accepted, in bytes; 0 means
	// DefaultMaxURLLength.
	MaxURLLength int
}

// BlockedError says a destination was refused. Addr is the IP (not a
// secret), Reason a short phrase such as "loopback", "private (RFC 1918)",
// "link-local", "cloud metadata", "unique-local", "IPv4-mapped loopback",
// "NAT64 of private (RFC 1918)", "multicast" or "reserved".
type BlockedError struct {
	Addr   netip.Addr
	Reason string
	// Allowable says that BOOMERANG_ALLOW_PRIVATE_CALLBACKS or a
	// BOOMERANG_ALLOW_CALLBACK_CIDRS entry could open the destination
	// (never true for unspecified, multicast and broadcast addresses).
	Allowable bool
}

func (e *BlockedError) Error() string {
	if !e.Addr.IsValid() {
		return "egress: destination blocked: " + e.Reason
	}
	return "egress: destination " + e.Addr.String() + " blocked: " + e.Reason
}

// URL error codes, the values of URLError.Code.
const (
	CodeInvalidURL     = "invalid-url"
	CodeScheme         = "scheme"
	CodeUserinfo       = "userinfo"
	CodeTooLong        = "too-long"
	CodeBlockedAddress = "blocked-address"
	CodeHTTPSRequired  = "https-required"
	CodeMissingHost    = "missing-host"
)

// URLError says a callback URL is unacceptable at submission. Code is one of
// the Code* constants ("invalid-url", "scheme", "userinfo", "too-long",
// "blocked-address", "https-required", "missing-host"); Detail is human
// readable and never repeats the URL (which may carry secrets). Err is the
// *BlockedError when Code is "blocked-address", nil otherwise.
type URLError struct {
	Code   string
	Detail string
	Err    error
}

func (e *URLError) Error() string {
	return "egress: callback URL rejected (" + e.Code + "): " + e.Detail
}

// Unwrap returns the *BlockedError behind a "blocked-address" error.
func (e *URLError) Unwrap() error { return e.Err }

// ParseCIDRs parses a comma-separated list such as
// "127.0.0.1/32, 10.20.0.0/16". Spaces around entries are ignored, as are
// empty entries (so "" and a trailing comma are fine); a bare IP means /32 or
// /128. Prefixes are masked to their canonical form (10.20.30.40/16 becomes
// 10.20.0.0/16) and IPv4-mapped IPv6 prefixes of /96 or longer are converted
// to the IPv4 prefix they denote. Errors name the bad entry.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		var pfx netip.Prefix
		if strings.Contains(entry, "/") {
			p, err := netip.ParsePrefix(entry)
			if err != nil {
				return nil, fmt.Errorf("egress: bad CIDR %q: %w", entry, err)
			}
			pfx = p
		} else {
			a, err := netip.ParseAddr(entry)
			if err != nil {
				return nil, fmt.Errorf("egress: bad CIDR %q: %w", entry, err)
			}
			if a.Zone() != "" {
				return nil, fmt.Errorf("egress: bad CIDR %q: zone not allowed", entry)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
		out = append(out, pfx.Masked())
	}
	return out, nil
}

// CheckAddr reports whether the policy allows connecting to ip: nil if so,
// a *BlockedError saying why not otherwise. A zone is ignored; the invalid
// zero Addr is always blocked.
func (p Policy) CheckAddr(ip netip.Addr) error {
	if !ip.IsValid() {
		return &BlockedError{Addr: ip, Reason: "invalid address"}
	}
	ip = ip.WithZone("")
	v := classify(ip)
	if !v.blocked {
		return nil
	}
	if !v.never && (p.AllowPrivate || p.cidrAllows(ip)) {
		return nil
	}
	return &BlockedError{Addr: ip, Reason: v.reason, Allowable: !v.never}
}

func (p Policy) cidrAllows(ip netip.Addr) bool {
	un := ip.Unmap()
	for _, pfx := range p.AllowCIDRs {
		if pfx.Contains(un) || pfx.Contains(ip) {
			return true
		}
	}
	return false
}

func (p Policy) maxURLLength() int {
	if p.MaxURLLength <= 0 {
		return DefaultMaxURLLength
	}
	return p.MaxURLLength
}

// Message is the part of the error meant for the client who sent the URL.
func (e *URLError) Message() string { return e.Detail }

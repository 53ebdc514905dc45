package egress

import (
	"net/netip"
	"strings"
)

// hostTarget is a parsed host: either an IP literal (ip valid) or a
// normalised host name (lower case, no trailing dot).
type hostTarget struct {
	ip   netip.Addr
	name string
}

// parseHost normalises host as a resolver or browser would. bracketed says the
// host was written inside [ ] in a URL (and had the brackets removed), which
// makes it an IPv6 literal, possibly with a zone. On failure it returns a
// human-readable problem.
func parseHost(host string, bracketed bool) (hostTarget, string) {
	if host == "" {
		return hostTarget{}, "host is empty"
	}
	if bracketed || strings.Contains(host, ":") {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return hostTarget{}, "bracketed host is not a valid IPv6 address"
		}
		return hostTarget{ip: ip}, ""
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			// IDNA mapping would turn fullwidth digits and ideographic full
			// stops into ASCII ("１２７。０。０。１" is 127.0.0.1), so only
			// the already-encoded (xn--) form is accepted.
			return hostTarget{}, "host name must be ASCII (use the punycode xn-- form)"
		}
	}
	name := strings.ToLower(host)
	if endsInNumber(name) {
		ip, ok := parseLegacyIPv4(name)
		if !ok {
			return hostTarget{}, "host looks like an IPv4 address but is not a valid one"
		}
		return hostTarget{ip: ip}, ""
	}
	name = strings.TrimSuffix(name, ".")
	if !validHostName(name) {
		return hostTarget{}, "host is not a valid host name"
	}
	return hostTarget{name: name}, ""
}

// validHostName reports whether name (lower case, no trailing dot) is made of
// 1–63 character labels of letters, digits, '-' and '_', at most 253 bytes.
func validHostName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// endsInNumber is the WHATWG URL "ends in a number" checker: a host whose last
// label (ignoring one trailing dot) is numeric must be parsed as IPv4, and is
// invalid if that fails. No real host name has an all-numeric last label.
func endsInNumber(host string) bool {
	host = strings.TrimSuffix(host, ".")
	_, ok := parseIPv4Number(host[strings.LastIndexByte(host, '.')+1:])
	return ok
}

// tooBig is returned by parseIPv4Number for values that do not fit in 32
// bits; any such value makes the address invalid.
const tooBig = 1 << 33

// parseIPv4Number parses one part of a legacy IPv4 address as inet_aton and
// the WHATWG URL standard do: "0x"/"0X" prefix means hex ("0x" alone is 0),
// a leading "0" means octal, otherwise decimal. ok reports whether s is
// syntactically a number; values above 32 bits are returned as tooBig.
func parseIPv4Number(s string) (n uint64, ok bool) {
	if s == "" {
		return 0, false
	}
	base := uint64(10)
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
	case len(s) >= 2 && s[0] == '0':
		base, s = 8, s[1:]
	}
	for i := 0; i < len(s); i++ {
		var d uint64
		switch c := s[i]; {
		case '0' <= c && c <= '9':
			d = uint64(c - '0')
		case 'a' <= c && c <= 'f':
			d = uint64(c-'a') + 10
		case 'A' <= c && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		if n < tooBig {
			n = n*base + d
		}
		if n > tooBig {
			n = tooBig
		}
	}
	return n, true
}

// parseLegacyIPv4 is the WHATWG URL IPv4 parser (equivalently inet_aton):
// one to four dot-separated numbers (see parseIPv4Number), an optional
// trailing dot; every number but the last is one byte and the last fills the
// remaining bytes. So "2130706433", "0x7f.1", "0177.0.0.1" and "127.1" are all
// 127.0.0.1.
func parseLegacyIPv4(host string) (netip.Addr, bool) {
	host = strings.TrimSuffix(host, ".") // one trailing dot is allowed
	count := strings.Count(host, ".") + 1
	if count > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	rest := host
	for i := range count {
		part, after, _ := strings.Cut(rest, ".")
		rest = after
		n, ok := parseIPv4Number(part)
		if !ok {
			return netip.Addr{}, false
		}
		if i < count-1 {
			if n > 255 {
				return netip.Addr{}, false
			}
			v |= n << (8 * (3 - i))
			continue
		}
		if n >= 1<<(8*(5-count)) {
			return netip.Addr{}, false
		}
		v |= n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

var (
	loopback4 = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	loopback6 = netip.IPv6Loopback()
	metadata4 = netip.AddrFrom4([4]byte{169, 254, 169, 254})
)

// checkName applies the policy to host names that are special without any
// DNS lookup: the localhost family (RFC 6761 and common /etc/hosts aliases)
// is loopback, and cloud metadata names are cloud metadata. Ordinary names
// return nil; the dial-time check covers what they resolve to.
func (p Policy) checkName(name string) error {
	switch {
	case name == "localhost" || strings.HasSuffix(name, ".localhost") ||
		name == "localhost.localdomain" || name == "ip6-localhost" || name == "ip6-loopback":
		// The name may resolve to either loopback address; the dialer
		// re-checks whichever is actually used.
		if p.CheckAddr(loopback6) == nil {
			return nil
		}
		return p.CheckAddr(loopback4)
	case name == "metadata.google.internal":
		return p.CheckAddr(metadata4)
	}
	return nil
}

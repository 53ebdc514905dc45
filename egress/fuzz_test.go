package egress

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// oracleIPv4 is an independent reading of legacy IPv4 spellings, built on
// strconv's base-0 parsing (minus the 0b/0o prefixes and underscores, which no
// resolver accepts): whatever it reads as an address, CheckURL must have
// checked as that address.
func oracleIPv4(host string) (netip.Addr, bool) {
	host = strings.TrimSuffix(host, ".")
	parts := strings.Split(host, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, p := range parts {
		if strings.Contains(p, "_") || len(p) > 1 && strings.ContainsAny(p[1:2], "bBoO") {
			return netip.Addr{}, false
		}
		n, err := strconv.ParseUint(p, 0, 64)
		if err != nil {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 255 {
				return netip.Addr{}, false
			}
			v += n << (8 * (3 - i))
		} else {
			if n >= 1<<(8*(5-len(parts))) {
				return netip.Addr{}, false
			}
			v += n
		}
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// checkAccepted asserts the properties of a URL that p.CheckURL accepted.
func checkAccepted(t *testing.T, p Policy, raw string) {
	t.Helper()
	if len(raw) > p.maxURLLength() {
		t.Fatalf("CheckURL(%q) = nil, but length %d > %d", raw, len(raw), p.maxURLLength())
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("CheckURL(%q) = nil, but url.Parse fails: %v", raw, err)
	}
	if u.Scheme != "https" && (p.RequireHTTPS || u.Scheme != "http") {
		t.Fatalf("CheckURL(%q) = nil, but scheme is %q (RequireHTTPS=%v)", raw, u.Scheme, p.RequireHTTPS)
	}
	if u.User != nil {
		t.Fatalf("CheckURL(%q) = nil, but URL has user-info", raw)
	}
	if u.Opaque != "" {
		t.Fatalf("CheckURL(%q) = nil, but URL is opaque", raw)
	}
	host := u.Hostname()
	if host == "" {
		t.Fatalf("CheckURL(%q) = nil, but host is empty", raw)
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		t.Fatalf("CheckURL(%q) = nil, but URL contains whitespace or control characters", raw)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			t.Fatalf("CheckURL(%q) = nil, but port %q is invalid", raw, port)
		}
	}
	checkIP := func(how string, ip netip.Addr) {
		if err := p.CheckAddr(ip); err != nil {
			t.Fatalf("CheckURL(%q) = nil, but host %q is IP literal %v (%s), which CheckAddr refuses: %v", raw, host, ip, how, err)
		}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		checkIP("netip", ip)
	}
	if ip := net.ParseIP(host); ip != nil {
		a, _ := netip.AddrFromSlice(ip)
		checkIP("net.ParseIP", a)
	}
	if ip, ok := oracleIPv4(host); ok {
		checkIP("legacy IPv4", ip)
	}
	if name := strings.TrimSuffix(strings.ToLower(host), "."); (name == "localhost" || strings.HasSuffix(name, ".localhost")) && p.CheckAddr(loopback4) != nil && p.CheckAddr(loopback6) != nil {
		t.Fatalf("CheckURL(%q) = nil, but host %q is a localhost name and loopback is not allowed", raw, host)
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			t.Fatalf("CheckURL(%q) = nil, but host %q is not ASCII", raw, host)
		}
	}
}

func FuzzCheckURL(f *testing.F) {
	// More seeds live in testdata/fuzz/FuzzCheckURL.
	f.Add("https://example.com/hook")
	f.Add("http://0x7f.1/")
	policies := []Policy{
		{},
		{RequireHTTPS: true, MaxURLLength: 100},
		{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, p := range policies {
			err := p.CheckURL(raw) // must not panic
			if err == nil {
				checkAccepted(t, p, raw)
				continue
			}
			ue, ok := err.(*URLError)
			if !ok {
				t.Fatalf("CheckURL(%q) returned %T, want *URLError", raw, err)
			}
			if (ue.Code == CodeBlockedAddress) != (ue.Err != nil) {
				t.Fatalf("CheckURL(%q) = %#v: Err must be set exactly for blocked-address", raw, ue)
			}
		}
	})
}

// FuzzCheckAddr checks CheckAddr against netip's own predicates and the
// IPv4-mapped equivalence.
func FuzzCheckAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::ffff:127.0.0.1", "64:ff9b::a00:1", "2002:7f00:1::", "8.8.8.8", "2606:4700:4700::1111", "fe80::1"} {
		b := netip.MustParseAddr(s).As16()
		f.Add(b[:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		err := Policy{}.CheckAddr(ip)
		if err == nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() || !ip.IsGlobalUnicast()) {
			t.Fatalf("CheckAddr(%v) = nil, but netip says it is not public", ip)
		}
		if ip.Is4In6() {
			in := Policy{}.CheckAddr(ip.Unmap())
			if (err == nil) != (in == nil) {
				t.Fatalf("CheckAddr(%v) = %v but CheckAddr(%v) = %v; want the same verdict", ip, err, ip.Unmap(), in)
			}
		}
		if err != nil && (Policy{AllowPrivate: true}).CheckAddr(ip) == nil {
			if ip.IsUnspecified() || ip.IsMulticast() || ip.Unmap() == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
				t.Fatalf("AllowPrivate opened %v, want never", ip)
			}
		}
	})
}

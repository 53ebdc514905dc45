package egress

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func mustPrefixes(t testing.TB, s string) []netip.Prefix {
	t.Helper()
	p, err := ParseCIDRs(s)
	if err != nil {
		t.Fatalf("ParseCIDRs(%q): %v", s, err)
	}
	return p
}

// TestCheckAddrDefault has one row per blocked range and the public addresses
// that must pass, under the zero (production) Policy. reason "" means allowed.
func TestCheckAddrDefault(t *testing.T) {
	tests := []struct {
		addr   string
		reason string
	}{
		// IPv4 ranges.
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "this network"},
		{"0.255.255.255", "this network"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"10.0.0.1", "private (RFC 1918)"},
		{"10.255.255.255", "private (RFC 1918)"},
		{"172.16.0.1", "private (RFC 1918)"},
		{"172.31.255.255", "private (RFC 1918)"},
		{"192.168.1.1", "private (RFC 1918)"},
		{"100.64.0.1", "carrier-grade NAT (RFC 6598)"},
		{"100.127.255.255", "carrier-grade NAT (RFC 6598)"},
		{"100.100.100.200", "cloud metadata"},
		{"169.254.0.1", "link-local"},
		{"169.254.169.254", "cloud metadata"},
		{"169.254.170.2", "cloud metadata"},
		{"192.0.0.8", "IETF protocol assignments"},
		{"192.0.2.1", "documentation (TEST-NET-1)"},
		{"198.51.100.7", "documentation (TEST-NET-2)"},
		{"203.0.113.9", "documentation (TEST-NET-3)"},
		{"192.88.99.1", "6to4 relay anycast (deprecated)"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"240.0.0.1", "reserved"},
		{"254.1.2.3", "reserved"},
		{"255.255.255.255", "broadcast"},

		// IPv6 ranges.
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"febf:ffff::1", "link-local"},
		{"fc00::1", "unique-local"},
		{"fd12:3456::1", "unique-local"},
		{"fd00:ec2::254", "cloud metadata"},
		{"fec0::1", "site-local (deprecated)"},
		{"ff02::1", "multicast"},
		{"ff0e::1", "multicast"},
		{"2001:db8::1", "documentation"},
		{"3fff::1", "documentation"},
		{"100::1", "discard-only"},
		{"2001::1", "IETF protocol assignments"},          // Teredo
		{"2001:1ff:ffff::1", "IETF protocol assignments"}, // top of 2001::/23
		{"64:ff9b:1::1", "NAT64 (local-use)"},
		{"5f00::1", "reserved"},         // outside 2000::/3
		{"4000::1", "reserved"},         // outside 2000::/3
		{"::ffff:0:7f00:1", "reserved"}, // SIIT IPv4-translated, outside 2000::/3

		// IPv4-mapped: unmap and check.
		{"::ffff:127.0.0.1", "IPv4-mapped loopback"},
		{"::ffff:7f00:1", "IPv4-mapped loopback"},
		{"::ffff:10.1.2.3", "IPv4-mapped private (RFC 1918)"},
		{"::ffff:169.254.169.254", "IPv4-mapped cloud metadata"},
		{"::ffff:0.0.0.0", "IPv4-mapped unspecified"},
		{"::ffff:255.255.255.255", "IPv4-mapped broadcast"},
		// NAT64: embedded IPv4 checked.
		{"64:ff9b::7f00:1", "NAT64 of loopback"},
		{"64:ff9b::10.0.0.1", "NAT64 of private (RFC 1918)"},
		{"64:ff9b::169.254.169.254", "NAT64 of cloud metadata"},
		// 6to4: embedded IPv4 in bits 16–48.
		{"2002:7f00:1::1", "6to4 of loopback"},
		{"2002:c0a8:101::", "6to4 of private (RFC 1918)"},
		{"2002:a9fe:a9fe::1", "6to4 of cloud metadata"},
		// IPv4-compatible (deprecated): always blocked.
		{"::127.0.0.1", "IPv4-compatible loopback"},
		{"::10.0.0.1", "IPv4-compatible private (RFC 1918)"},
		{"::8.8.8.8", "IPv4-compatible (deprecated)"},
		{"::0.0.0.2", "IPv4-compatible this network"},

		// Public: must pass.
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"93.184.215.14", ""},
		{"100.63.255.255", ""},  // just below CGNAT
		{"100.128.0.0", ""},     // just above CGNAT
		{"172.15.255.255", ""},  // just below 172.16/12
		{"172.32.0.0", ""},      // just above 172.16/12
		{"192.0.1.1", ""},       // between 192.0.0/24 and 192.0.2/24
		{"198.17.255.255", ""},  // just below benchmarking
		{"198.20.0.0", ""},      // just above benchmarking
		{"223.255.255.255", ""}, // just below multicast
		{"2606:4700:4700::1111", ""},
		{"2001:4860:4860::8888", ""}, // in 2001::/16 but not 2001::/23
		{"2001:200::1", ""},          // first address after 2001::/23
		{"2a00:1450::1", ""},
		{"::ffff:8.8.8.8", ""},    // IPv4-mapped public
		{"64:ff9b::8.8.8.8", ""},  // NAT64 of public
		{"2002:808:808::1", ""},   // 6to4 of public
		{"2606:4700::1%eth0", ""}, // zone ignored
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			ip := netip.MustParseAddr(tc.addr)
			err := Policy{}.CheckAddr(ip)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("CheckAddr(%s) = %v, want nil", tc.addr, err)
				}
				return
			}
			var be *BlockedError
			if !errors.As(err, &be) {
				t.Fatalf("CheckAddr(%s) = %v, want *BlockedError with reason %q", tc.addr, err, tc.reason)
			}
			if be.Reason != tc.reason {
				t.Errorf("CheckAddr(%s).Reason = %q, want %q", tc.addr, be.Reason, tc.reason)
			}
			if be.Addr != ip.WithZone("") {
				t.Errorf("CheckAddr(%s).Addr = %v, want %v", tc.addr, be.Addr, ip.WithZone(""))
			}
			if !strings.Contains(be.Error(), tc.reason) || !strings.Contains(be.Error(), be.Addr.String()) {
				t.Errorf("CheckAddr(%s).Error() = %q, want it to name %s and %q", tc.addr, be.Error(), be.Addr, tc.reason)
			}
		})
	}
}

// TestCheckAddrPolicies covers AllowPrivate and AllowCIDRs.
func TestCheckAddrPolicies(t *testing.T) {
	private := Policy{AllowPrivate: true}
	cidrs := Policy{AllowCIDRs: mustPrefixes(t, "127.0.0.1/32, 10.20.0.0/16, fd00::/8")}
	wide := Policy{AllowCIDRs: mustPrefixes(t, "0.0.0.0/0, ::/0")}
	// Built directly: ParseCIDRs would turn ::ffff:0:0/96 into 0.0.0.0/0.
	mapped := Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("::ffff:0:0/96")}}
	nat64 := Policy{AllowCIDRs: mustPrefixes(t, "64:ff9b::/96")}

	tests := []struct {
		name   string
		policy Policy
		addr   string
		allow  bool
	}{
		// AllowPrivate opens every non-public range...
		{"private loopback", private, "127.0.0.1", true},
		{"private rfc1918", private, "192.168.0.10", true},
		{"private cgnat", private, "100.64.1.1", true},
		{"private link-local", private, "169.254.1.1", true},
		{"private metadata", private, "169.254.169.254", true},
		{"private this-network", private, "0.1.2.3", true},
		{"private reserved", private, "240.0.0.1", true},
		{"private documentation", private, "192.0.2.1", true},
		{"private v6 loopback", private, "::1", true},
		{"private ula", private, "fd00::1", true},
		{"private v6 link-local", private, "fe80::1%lo", true},
		{"private mapped loopback", private, "::ffff:127.0.0.1", true},
		{"private nat64 of private", private, "64:ff9b::a00:1", true},
		{"private ipv4-compatible", private, "::8.8.8.8", true},
		{"private public", private, "8.8.8.8", true},
		// ...but never unspecified, multicast or broadcast.
		{"private unspecified v4", private, "0.0.0.0", false},
		{"private unspecified v6", private, "::", false},
		{"private multicast v4", private, "224.0.0.251", false},
		{"private multicast v6", private, "ff02::fb", false},
		{"private broadcast", private, "255.255.255.255", false},
		{"private mapped unspecified", private, "::ffff:0.0.0.0", false},
		{"private nat64 multicast", private, "64:ff9b::e000:1", false},

		// AllowCIDRs open exactly the named ranges, matched on the unmapped address.
		{"cidr exact", cidrs, "127.0.0.1", true},
		{"cidr neighbour", cidrs, "127.0.0.2", false},
		{"cidr mapped", cidrs, "::ffff:127.0.0.1", true},
		{"cidr v6 loopback not opened", cidrs, "::1", false},
		{"cidr /16 inside", cidrs, "10.20.255.1", true},
		{"cidr /16 outside", cidrs, "10.21.0.1", false},
		{"cidr other private", cidrs, "192.168.1.1", false},
		{"cidr metadata not opened", cidrs, "169.254.169.254", false},
		{"cidr v6 ula inside", cidrs, "fd12::1", true},
		{"cidr v6 ula outside", cidrs, "fc00::1", false},
		{"cidr nat64 of allowed v4 not opened", cidrs, "64:ff9b::7f00:1", false},
		{"cidr public", cidrs, "1.1.1.1", true},
		{"cidr everything still not unspecified", wide, "0.0.0.0", false},
		{"cidr everything still not multicast", wide, "239.1.1.1", false},
		{"cidr everything still not broadcast", wide, "255.255.255.255", false},
		{"cidr everything still not v6 unspecified", wide, "::", false},
		{"cidr everything opens loopback", wide, "127.9.9.9", true},
		{"cidr mapped range opens mapped", mapped, "::ffff:10.0.0.1", true},
		{"cidr mapped range does not open plain v4", mapped, "10.0.0.1", false},
		{"cidr nat64 range opens nat64", nat64, "64:ff9b::a00:1", true},

		// The zero Addr is never allowed.
		{"invalid zero addr", private, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ip netip.Addr
			if tc.addr != "" {
				ip = netip.MustParseAddr(tc.addr)
			}
			err := tc.policy.CheckAddr(ip)
			if got := err == nil; got != tc.allow {
				t.Fatalf("%+v.CheckAddr(%q) = %v, want allowed=%v", tc.policy, tc.addr, err, tc.allow)
			}
			if err != nil {
				var be *BlockedError
				if !errors.As(err, &be) || be.Reason == "" {
					t.Fatalf("%+v.CheckAddr(%q) = %#v, want *BlockedError with a reason", tc.policy, tc.addr, err)
				}
			}
		})
	}
}

// TestCheckAddrAgreesWithNetip cross-checks the table against netip's own
// predicates: anything netip calls loopback, private, link-local, multicast
// or unspecified must be blocked by the zero Policy.
func TestCheckAddrAgreesWithNetip(t *testing.T) {
	var buf [16]byte
	seed := uint64(0x9e3779b97f4a7c15)
	next := func() uint64 { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; return seed }
	for i := 0; i < 200000; i++ {
		var ip netip.Addr
		switch i % 4 {
		case 0:
			v := next()
			ip = netip.AddrFrom4([4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
		case 1: // IPv6 with a random first byte from a small interesting set
			for j := 0; j < 16; j += 8 {
				v := next()
				for k := 0; k < 8; k++ {
					buf[j+k] = byte(v >> (8 * k))
				}
			}
			buf[0] = []byte{0x00, 0x20, 0x26, 0xfc, 0xfd, 0xfe, 0xff, 0x3f}[next()%8]
			ip = netip.AddrFrom16(buf)
		case 2: // IPv4-mapped
			v := next()
			ip = netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: byte(v), 13: byte(v >> 8), 14: byte(v >> 16), 15: byte(v >> 24)})
		default: // NAT64
			v := next()
			ip = netip.AddrFrom16([16]byte{1: 0x64, 2: 0xff, 3: 0x9b, 12: byte(v), 13: byte(v >> 8), 14: byte(v >> 16), 15: byte(v >> 24)})
		}
		special := ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
			ip.IsMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsUnspecified() || !ip.IsGlobalUnicast()
		if in := ip.Unmap(); in.Is4() && ip.Is4In6() {
			special = special || in.IsLoopback() || in.IsPrivate() || in.IsLinkLocalUnicast() || in.IsMulticast() || in.IsUnspecified()
		}
		if special && (Policy{}).CheckAddr(ip) == nil {
			t.Fatalf("CheckAddr(%v) = nil, but netip classifies it as special; want *BlockedError", ip)
		}
	}
}

// TestRangeTable checks the table itself: canonical prefixes, a reason for
// every row, and embedded rows that extract within the address.
func TestRangeTable(t *testing.T) {
	seen := map[netip.Prefix]bool{}
	for _, r := range ranges {
		if r.reason == "" {
			t.Errorf("range %v: empty reason", r.prefix)
		}
		if seen[r.prefix] {
			t.Errorf("range %v listed twice", r.prefix)
		}
		seen[r.prefix] = true
		if r.class == classEmbedded && (!r.prefix.Addr().Is6() || r.embedAt*8 < r.prefix.Bits() || r.embedAt+4 > 16) {
			t.Errorf("range %v: embedded IPv4 at byte %d is not inside the address", r.prefix, r.embedAt)
		}
	}
	defer func() {
		if recover() == nil {
			t.Errorf("buildRanges accepted a non-canonical prefix; want panic")
		}
	}()
	buildRanges([]struct {
		cidr, reason string
		class        class
		embedAt      int
		ifPublic     string
	}{{"10.0.0.1/8", "x", classBlocked, 0, ""}})
}

func TestBlockedErrorWithoutAddr(t *testing.T) {
	e := &BlockedError{Reason: "test"}
	if got, want := e.Error(), "egress: destination blocked: test"; got != want {
		t.Errorf("(&BlockedError{Reason: %q}).Error() = %q, want %q", "test", got, want)
	}
}

func TestParseCIDRs(t *testing.T) {
	tests := []struct {
		in      string
		want    string // prefixes joined by ","; "ERR:<substring>" for an error
		wantNil bool
	}{
		{in: "", wantNil: true},
		{in: "   ", wantNil: true},
		{in: ",", wantNil: true},
		{in: "127.0.0.1/32,10.20.0.0/16", want: "127.0.0.1/32,10.20.0.0/16"},
		{in: " 127.0.0.1/32 , 10.20.0.0/16 ", want: "127.0.0.1/32,10.20.0.0/16"},
		{in: "127.0.0.1", want: "127.0.0.1/32"},
		{in: "::1", want: "::1/128"},
		{in: "fd00::/8,", want: "fd00::/8"},
		{in: "10.20.30.40/16", want: "10.20.0.0/16"},
		{in: "::ffff:127.0.0.1", want: "127.0.0.1/32"},
		{in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{in: "::ffff:0:0/96", want: "0.0.0.0/0"},
		{in: "::/0", want: "::/0"},
		{in: "127.0.0.1/32,bogus", want: `ERR:"bogus"`},
		{in: "10.0.0.0/33", want: `ERR:"10.0.0.0/33"`},
		{in: "10.0.0.0/", want: `ERR:"10.0.0.0/"`},
		{in: "localhost", want: `ERR:"localhost"`},
		{in: "fe80::1%eth0", want: `ERR:"fe80::1%eth0"`},
		{in: "127.1", want: `ERR:"127.1"`},
	}
	for _, tc := range tests {
		got, err := ParseCIDRs(tc.in)
		if wantErr, ok := strings.CutPrefix(tc.want, "ERR:"); ok {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("ParseCIDRs(%q) = %v, %v; want error naming %s", tc.in, got, err, wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCIDRs(%q) error %v, want %q", tc.in, err, tc.want)
			continue
		}
		if tc.wantNil {
			if got != nil {
				t.Errorf("ParseCIDRs(%q) = %v, want nil", tc.in, got)
			}
			continue
		}
		var parts []string
		for _, p := range got {
			parts = append(parts, p.String())
		}
		if s := strings.Join(parts, ","); s != tc.want {
			t.Errorf("ParseCIDRs(%q) = %s, want %s", tc.in, s, tc.want)
		}
	}
}

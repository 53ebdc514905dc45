package egress

import (
	"net/netip"
)

// class says how a special-purpose range is treated.
type class uint8

const (
	// classBlocked ranges are refused by default and opened by
	// Policy.AllowPrivate or a matching Policy.AllowCIDRs entry.
	classBlocked class = iota + 1
	// classNever ranges are refused whatever the policy: unspecified,
	// multicast and broadcast addresses are never valid webhook destinations
	// (and connecting to 0.0.0.0 or :: reaches the local host).
	classNever
	// classEmbedded ranges carry an IPv4 address; the verdict is that of the
	// embedded address (with the range's label prefixed to the reason).
	classEmbedded
)

// special is one row of the range table.
type special struct {
	prefix netip.Prefix
	reason string // for classEmbedded: the label prefixed to the inner reason
	class  class
	// For classEmbedded only:
	embedAt  int    // byte offset of the embedded IPv4 address in the IPv6 address
	ifPublic string // reason when the embedded IPv4 is public; "" means allowed
}

// ranges is THE table of special-purpose address ranges. Lookups use the
// longest matching prefix, so more specific rows (cloud metadata inside
// link-local, broadcast inside reserved, ...) override their parents whatever
// their position. Sources: IANA IPv4/IPv6 Special-Purpose Address Registries
// (RFC 6890 and updates), RFC 6052 (NAT64), RFC 8215, RFC 3056 (6to4),
// RFC 4291 (IPv4-mapped/compatible), RFC 9637, plus well-known cloud metadata
// endpoints.
var ranges = buildRanges([]struct {
	cidr, reason string
	class        class
	embedAt      int
	ifPublic     string
}{
	// IPv4.
	{"0.0.0.0/32", "unspecified", classNever, 0, ""},
	{"0.0.0.0/8", "this network", classBlocked, 0, ""},
	{"10.0.0.0/8", "private (RFC 1918)", classBlocked, 0, ""},
	{"100.64.0.0/10", "carrier-grade NAT (RFC 6598)", classBlocked, 0, ""},
	{"100.100.100.200/32", "cloud metadata", classBlocked, 0, ""}, // Alibaba Cloud
	{"127.0.0.0/8", "loopback", classBlocked, 0, ""},
	{"169.254.0.0/16", "link-local", classBlocked, 0, ""},
	{"169.254.169.254/32", "cloud metadata", classBlocked, 0, ""}, // AWS, GCP, Azure, OCI, ...
	{"169.254.170.2/32", "cloud metadata", classBlocked, 0, ""},   // AWS ECS task credentials
	{"172.16.0.0/12", "private (RFC 1918)", classBlocked, 0, ""},
	{"192.0.0.0/24", "IETF protocol assignments", classBlocked, 0, ""},
	{"192.0.2.0/24", "documentation (TEST-NET-1)", classBlocked, 0, ""},
	{"192.88.99.0/24", "6to4 relay anycast (deprecated)", classBlocked, 0, ""},
	{"192.168.0.0/16", "private (RFC 1918)", classBlocked, 0, ""},
	{"198.18.0.0/15", "benchmarking", classBlocked, 0, ""},
	{"198.51.100.0/24", "documentation (TEST-NET-2)", classBlocked, 0, ""},
	{"203.0.113.0/24", "documentation (TEST-NET-3)", classBlocked, 0, ""},
	{"224.0.0.0/4", "multicast", classNever, 0, ""},
	{"240.0.0.0/4", "reserved", classBlocked, 0, ""},
	{"255.255.255.255/32", "broadcast", classNever, 0, ""},

	// IPv6.
	{"::/128", "unspecified", classNever, 0, ""},
	{"::1/128", "loopback", classBlocked, 0, ""},
	{"::/96", "IPv4-compatible", classEmbedded, 12, "(deprecated)"},
	{"::ffff:0:0/96", "IPv4-mapped", classEmbedded, 12, ""},
	{"64:ff9b::/96", "NAT64 of", classEmbedded, 12, ""},
	{"64:ff9b:1::/48", "NAT64 (local-use)", classBlocked, 0, ""},
	{"100::/64", "discard-only", classBlocked, 0, ""},
	{"2001::/23", "IETF protocol assignments", classBlocked, 0, ""},
	{"2001:db8::/32", "documentation", classBlocked, 0, ""},
	{"2002::/16", "6to4 of", classEmbedded, 2, ""},
	{"3fff::/20", "documentation", classBlocked, 0, ""},
	{"fc00::/7", "unique-local", classBlocked, 0, ""},
	{"fd00:ec2::254/128", "cloud metadata", classBlocked, 0, ""}, // AWS IPv6 IMDS
	{"fe80::/10", "link-local", classBlocked, 0, ""},
	{"fec0::/10", "site-local (deprecated)", classBlocked, 0, ""},
	{"ff00::/8", "multicast", classNever, 0, ""},
})

// globalUnicast6 is the only IPv6 block IANA has allocated for global
// unicast. IPv6 addresses outside it that no row above names are refused as
// "reserved".
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

func buildRanges(rows []struct {
	cidr, reason string
	class        class
	embedAt      int
	ifPublic     string
}) []special {
	out := make([]special, 0, len(rows))
	for _, r := range rows {
		s := special{
			prefix:   netip.MustParsePrefix(r.cidr),
			reason:   r.reason,
			class:    r.class,
			embedAt:  r.embedAt,
			ifPublic: r.ifPublic,
		}
		if s.prefix != s.prefix.Masked() {
			panic("egress: range table entry not canonical: " + r.cidr)
		}
		out = append(out, s)
	}
	return out
}

// verdict is the policy-independent classification of an address.
type verdict struct {
	blocked bool
	never   bool // blocked whatever the policy
	reason  string
}

// lookup returns the most specific row containing ip (which must carry no
// zone), or nil.
func lookup(ip netip.Addr) *special {
	var best *special
	for i := range ranges {
		r := &ranges[i]
		if r.prefix.Contains(ip) && (best == nil || r.prefix.Bits() > best.prefix.Bits()) {
			best = r
		}
	}
	return best
}

// classify returns the policy-independent verdict for ip, which must be valid
// and carry no zone.
func classify(ip netip.Addr) verdict {
	r := lookup(ip)
	if r == nil {
		if ip.Is6() && !globalUnicast6.Contains(ip) {
			return verdict{blocked: true, reason: "reserved"}
		}
		return verdict{}
	}
	switch r.class {
	case classNever:
		return verdict{blocked: true, never: true, reason: r.reason}
	case classEmbedded:
		b := ip.As16()
		inner := classify(netip.AddrFrom4([4]byte(b[r.embedAt : r.embedAt+4])))
		if inner.blocked {
			inner.reason = r.reason + " " + inner.reason
			return inner
		}
		if r.ifPublic != "" {
			return verdict{blocked: true, reason: r.reason + " " + r.ifPublic}
		}
		return verdict{}
	default:
		return verdict{blocked: true, reason: r.reason}
	}
}

package egress

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("a", DefaultMaxURLLength-len("https://example.com/"))
	httpsOnly := Policy{RequireHTTPS: true}
	private := Policy{AllowPrivate: true}
	loopCIDR := Policy{AllowCIDRs: mustPrefixes(t, "127.0.0.1/32")}
	short := Policy{MaxURLLength: 30}

	tests := []struct {
		name   string
		policy Policy
		url    string
		code   string // "" means accepted
		reason string // for blocked-address: the BlockedError reason
	}{
		// IP literal spellings of loopback.
		{"dotted", Policy{}, "http://127.0.0.1/", CodeBlockedAddress, "loopback"},
		{"dotted with port", Policy{}, "http://127.0.0.1:6379/", CodeBlockedAddress, "loopback"},
		{"decimal integer", Policy{}, "http://2130706433/", CodeBlockedAddress, "loopback"},
		{"octal", Policy{}, "http://0177.0.0.1/", CodeBlockedAddress, "loopback"},
		{"octal long zeros", Policy{}, "http://00000177.0.0.01/", CodeBlockedAddress, "loopback"},
		{"octal integer", Policy{}, "http://017700000001/", CodeBlockedAddress, "loopback"},
		{"hex", Policy{}, "http://0x7f.0.0.1/", CodeBlockedAddress, "loopback"},
		{"hex upper", Policy{}, "http://0X7F.0X0.0X0.0X1/", CodeBlockedAddress, "loopback"},
		{"hex integer", Policy{}, "http://0x7f000001/", CodeBlockedAddress, "loopback"},
		{"hex short", Policy{}, "http://0x7f.1/", CodeBlockedAddress, "loopback"},
		{"mixed", Policy{}, "http://0x7f.0.00.1/", CodeBlockedAddress, "loopback"},
		{"mixed three parts", Policy{}, "http://0177.0x0.1/", CodeBlockedAddress, "loopback"},
		{"short 127.1", Policy{}, "http://127.1/", CodeBlockedAddress, "loopback"},
		{"short 127.0.1", Policy{}, "http://127.0.1/", CodeBlockedAddress, "loopback"},
		{"trailing dot", Policy{}, "http://127.0.0.1./", CodeBlockedAddress, "loopback"},
		{"upper-case scheme", Policy{}, "HTTP://127.0.0.1/", CodeBlockedAddress, "loopback"},
		{"zero", Policy{}, "http://0/", CodeBlockedAddress, "unspecified"},
		{"zero dotted", Policy{}, "http://0.0.0.0:8080/", CodeBlockedAddress, "unspecified"},
		{"hex zero", Policy{}, "http://0x/", CodeBlockedAddress, "unspecified"},
		{"v6 unspecified", Policy{}, "http://[::]/", CodeBlockedAddress, "unspecified"},
		{"v6 loopback", Policy{}, "http://[::1]:8080/", CodeBlockedAddress, "loopback"},
		{"v6 loopback long", Policy{}, "http://[0:0:0:0:0:0:0:1]/", CodeBlockedAddress, "loopback"},
		{"v6 mapped hex", Policy{}, "http://[::ffff:7f00:1]/", CodeBlockedAddress, "IPv4-mapped loopback"},
		{"v6 mapped dotted", Policy{}, "http://[::ffff:127.0.0.1]/", CodeBlockedAddress, "IPv4-mapped loopback"},
		{"v6 mapped metadata", Policy{}, "http://[::ffff:a9fe:a9fe]/", CodeBlockedAddress, "IPv4-mapped cloud metadata"},
		{"v6 compatible", Policy{}, "http://[::127.0.0.1]/", CodeBlockedAddress, "IPv4-compatible loopback"},
		{"nat64", Policy{}, "http://[64:ff9b::a00:1]/", CodeBlockedAddress, "NAT64 of private (RFC 1918)"},
		{"6to4", Policy{}, "http://[2002:7f00:1::]/", CodeBlockedAddress, "6to4 of loopback"},
		{"zone id", Policy{}, "http://[fe80::1%25eth0]/", CodeBlockedAddress, "link-local"},
		{"ula", Policy{}, "http://[fd00::1]/", CodeBlockedAddress, "unique-local"},
		{"metadata", Policy{}, "http://169.254.169.254/latest/meta-data/", CodeBlockedAddress, "cloud metadata"},
		{"metadata decimal", Policy{}, "http://2852039166/", CodeBlockedAddress, "cloud metadata"},
		{"metadata name", Policy{}, "http://metadata.google.internal/computeMetadata/v1/", CodeBlockedAddress, "cloud metadata"},
		{"rfc1918", Policy{}, "https://10.0.0.5/admin", CodeBlockedAddress, "private (RFC 1918)"},
		{"rfc1918 short", Policy{}, "https://10.1/", CodeBlockedAddress, "private (RFC 1918)"},
		{"multicast", Policy{}, "http://224.0.0.1/", CodeBlockedAddress, "multicast"},
		{"broadcast", Policy{}, "http://4294967295/", CodeBlockedAddress, "broadcast"},

		// Invalid IPv4-looking hosts.
		{"octet too big", Policy{}, "http://256.0.0.1/", CodeInvalidURL, ""},
		{"integer too big", Policy{}, "http://4294967296/", CodeInvalidURL, ""},
		{"huge integer", Policy{}, "http://99999999999999999999999/", CodeInvalidURL, ""},
		{"huge hex", Policy{}, "http://0xffffffffffffffffffff/", CodeInvalidURL, ""},
		{"bad octal", Policy{}, "http://08.0.0.1/", CodeInvalidURL, ""},
		{"five parts", Policy{}, "http://1.2.3.4.5/", CodeInvalidURL, ""},
		{"numeric tld", Policy{}, "http://example.123/", CodeInvalidURL, ""},
		{"hex tld", Policy{}, "http://example.0x1a/", CodeInvalidURL, ""},
		{"short last too big", Policy{}, "http://127.16777216/", CodeInvalidURL, ""},
		{"bracketed v4", Policy{}, "http://[127.0.0.1]/", CodeInvalidURL, ""},
		{"bracketed octal mapped", Policy{}, "http://[::ffff:0177.0.0.1]/", CodeInvalidURL, ""},
		{"unbracketed v6", Policy{}, "http://::1/", CodeInvalidURL, ""},
		{"percent-encoded host", Policy{}, "http://%31%32%37.0.0.1/", CodeInvalidURL, ""},
		{"fullwidth digits", Policy{}, "http://１２７。０。０。１/", CodeInvalidURL, ""},
		{"non-ascii name", Policy{}, "https://bücher.example/", CodeInvalidURL, ""},
		{"empty label", Policy{}, "http://a..b/", CodeInvalidURL, ""},
		{"underscore ok but star not", Policy{}, "http://*.example.com/", CodeInvalidURL, ""},
		{"label too long", Policy{}, "http://" + strings.Repeat("a", 64) + ".com/", CodeInvalidURL, ""},
		{"name too long", Policy{}, "http://" + strings.Repeat("a.", 127) + "com/", CodeInvalidURL, ""},

		// User-info.
		{"userinfo", Policy{}, "http://user:pass@example.com/", CodeUserinfo, ""},
		{"userinfo redirect trick", Policy{}, "http://example.com@127.0.0.1/", CodeUserinfo, ""},
		{"empty userinfo", Policy{}, "http://@example.com/", CodeUserinfo, ""},
		{"backslash trick", Policy{}, `http://example.com\@127.0.0.1/`, CodeInvalidURL, ""},

		// Schemes.
		{"ftp", Policy{}, "ftp://example.com/", CodeScheme, ""},
		{"file", Policy{}, "file:///etc/passwd", CodeScheme, ""},
		{"gopher", Policy{}, "gopher://127.0.0.1:6379/_FLUSHALL", CodeScheme, ""},
		{"javascript", Policy{}, "javascript:alert(1)", CodeScheme, ""},
		{"data", Policy{}, "data:text/plain,hi", CodeScheme, ""},
		{"dict", Policy{}, "dict://127.0.0.1:11211/", CodeScheme, ""},
		{"ws", Policy{}, "ws://example.com/", CodeScheme, ""},
		{"opaque http", Policy{}, "http:example.com", CodeScheme, ""},

		// Relative, empty, whitespace, control characters.
		{"relative path", Policy{}, "/hook", CodeScheme, ""},
		{"scheme-relative", Policy{}, "//example.com/hook", CodeScheme, ""},
		{"bare host", Policy{}, "example.com", CodeScheme, ""},
		{"empty", Policy{}, "", CodeInvalidURL, ""},
		{"space only", Policy{}, " ", CodeInvalidURL, ""},
		{"leading space", Policy{}, " https://example.com/", CodeInvalidURL, ""},
		{"trailing newline", Policy{}, "https://example.com/\n", CodeInvalidURL, ""},
		{"tab in host", Policy{}, "https://exam\tple.com/", CodeInvalidURL, ""},
		{"space in path", Policy{}, "https://example.com/a b", CodeInvalidURL, ""},
		{"NUL", Policy{}, "https://example.com\x00.evil/", CodeInvalidURL, ""},
		{"DEL", Policy{}, "https://example.com/\x7f", CodeInvalidURL, ""},
		{"CRLF injection", Policy{}, "https://example.com/\r\nHost: internal", CodeInvalidURL, ""},
		{"bad escape", Policy{}, "https://example.com/%zz", CodeInvalidURL, ""},

		// Length.
		{"at limit", Policy{}, long, "", ""},
		{"over limit", Policy{}, long + "a", CodeTooLong, ""},
		{"custom limit", short, "https://example.com/0123456789a", CodeTooLong, ""},
		{"custom limit ok", short, "https://example.com/", "", ""},

		// RequireHTTPS.
		{"http with RequireHTTPS", httpsOnly, "http://example.com/hook", CodeHTTPSRequired, ""},
		{"https with RequireHTTPS", httpsOnly, "https://example.com/hook", "", ""},

		// Host and port.
		{"no host", Policy{}, "http:///hook", CodeMissingHost, ""},
		{"port only", Policy{}, "http://:8080/hook", CodeMissingHost, ""},
		{"empty brackets", Policy{}, "http://[]/", CodeInvalidURL, ""},
		{"port zero", Policy{}, "http://example.com:0/", CodeInvalidURL, ""},
		{"port too big", Policy{}, "http://example.com:65536/", CodeInvalidURL, ""},
		{"port huge", Policy{}, "http://example.com:99999999999999999999/", CodeInvalidURL, ""},
		{"port letters", Policy{}, "http://example.com:http/", CodeInvalidURL, ""},
		{"port twice", Policy{}, "http://example.com:80:80/", CodeInvalidURL, ""},
		{"port negative", Policy{}, "http://example.com:-1/", CodeInvalidURL, ""},

		// Special names.
		{"localhost", Policy{}, "http://localhost:8080/", CodeBlockedAddress, "loopback"},
		{"localhost upper", Policy{}, "http://LOCALHOST/", CodeBlockedAddress, "loopback"},
		{"localhost trailing dot", Policy{}, "http://localhost./", CodeBlockedAddress, "loopback"},
		{"sub.localhost", Policy{}, "http://foo.localhost/", CodeBlockedAddress, "loopback"},
		{"deep.sub.localhost", Policy{}, "http://a.b.localhost./", CodeBlockedAddress, "loopback"},
		{"localhost.localdomain", Policy{}, "http://localhost.localdomain/", CodeBlockedAddress, "loopback"},
		{"ip6-localhost", Policy{}, "http://ip6-localhost/", CodeBlockedAddress, "loopback"},
		{"localhost allowed by AllowPrivate", private, "http://localhost:8080/", "", ""},
		{"localhost allowed by CIDR", loopCIDR, "http://localhost:8080/", "", ""},
		{"notlocalhost is a normal name", Policy{}, "https://notlocalhost.com/", "", ""},

		// Policies opening addresses.
		{"loopback allowed by CIDR", loopCIDR, "http://127.0.0.1:8080/hook", "", ""},
		{"loopback decimal allowed by CIDR", loopCIDR, "http://2130706433:8080/hook", "", ""},
		{"other loopback not allowed by CIDR", loopCIDR, "http://127.0.0.2/", CodeBlockedAddress, "loopback"},
		{"rfc1918 allowed by AllowPrivate", private, "http://10.0.0.5/", "", ""},
		{"unspecified never allowed", private, "http://0/", CodeBlockedAddress, "unspecified"},

		// Good URLs.
		{"good https", Policy{}, "https://example.com/hook", "", ""},
		{"good http port query", Policy{}, "http://example.com:8080/x?y=1", "", ""},
		{"good fragment", Policy{}, "https://example.com/x#frag", "", ""},
		{"good empty port", Policy{}, "https://example.com:/x", "", ""},
		{"good no path", Policy{}, "https://example.com", "", ""},
		{"good upper", Policy{}, "HTTPS://EXAMPLE.COM/Hook", "", ""},
		{"good trailing dot", Policy{}, "https://example.com./", "", ""},
		{"good punycode", Policy{}, "https://xn--bcher-kva.example/", "", ""},
		{"good underscore", Policy{}, "https://my_service.example.com/", "", ""},
		{"good digits in name", Policy{}, "https://123.example.com/", "", ""},
		{"good public v4", Policy{}, "http://8.8.8.8/", "", ""},
		{"good public v6", Policy{}, "https://[2606:4700:4700::1111]:443/hook", "", ""},
		{"good public nat64", Policy{}, "https://[64:ff9b::808:808]/", "", ""},
		{"good escaped query", Policy{}, "https://example.com/hook?token=a%20b&x=%2F", "", ""},
	}
	hostile := 0
	for _, tc := range tests {
		if tc.code != "" {
			hostile++
		}
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.CheckURL(tc.url)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("CheckURL(%q) = %v, want nil", tc.url, err)
				}
				return
			}
			var ue *URLError
			if !errors.As(err, &ue) {
				t.Fatalf("CheckURL(%q) = %v (%T), want *URLError code %q", tc.url, err, err, tc.code)
			}
			if ue.Code != tc.code {
				t.Fatalf("CheckURL(%q) code = %q (%v), want %q", tc.url, ue.Code, err, tc.code)
			}
			if ue.Detail == "" || !strings.Contains(ue.Error(), ue.Code) {
				t.Errorf("CheckURL(%q).Error() = %q, want code and a detail", tc.url, ue.Error())
			}
			var be *BlockedError
			gotBlocked := errors.As(err, &be)
			if gotBlocked != (tc.code == CodeBlockedAddress) {
				t.Fatalf("CheckURL(%q): errors.As(*BlockedError) = %v, want %v", tc.url, gotBlocked, tc.code == CodeBlockedAddress)
			}
			if gotBlocked && be.Reason != tc.reason {
				t.Errorf("CheckURL(%q) reason = %q, want %q", tc.url, be.Reason, tc.reason)
			}
			// Details must not echo the URL (it may carry secrets).
			if len(tc.url) > 12 && strings.Contains(ue.Detail, tc.url) {
				t.Errorf("CheckURL(%q) detail %q repeats the URL", tc.url, ue.Detail)
			}
		})
	}
	if hostile < 40 {
		t.Errorf("only %d hostile rows, want at least 40", hostile)
	}
}

func TestParseLegacyIPv4(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means invalid
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"0177.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"1.2.3.4.", "1.2.3.4"},
		{"0x", "0.0.0.0"},
		{"0XFF.0xAb.0.1", "255.171.0.1"},
		{"0", "0.0.0.0"},
		{"00", "0.0.0.0"},
		{"1.0x10000", "1.1.0.0"},
		{"1.2.65535", "1.2.255.255"},
		{"1.2.65536", ""},
		{"1.256.0", ""},
		{"4294967295", "255.255.255.255"},
		{"4294967296", ""},
		{"1..2", ""},
		{".1", ""},
		{"1.2.3.4.5", ""},
		{"0xg", ""},
		{"09", ""},
		{"1.2.3.", "1.2.0.3"},
	}
	for _, tc := range tests {
		ip, ok := parseLegacyIPv4(tc.in)
		if tc.want == "" {
			if ok {
				t.Errorf("parseLegacyIPv4(%q) = %v, true; want invalid", tc.in, ip)
			}
			continue
		}
		if !ok || ip != netip.MustParseAddr(tc.want) {
			t.Errorf("parseLegacyIPv4(%q) = %v, %v; want %s", tc.in, ip, ok, tc.want)
		}
	}
}

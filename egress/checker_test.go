package egress_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/boomerang-dev/boomerang/egress"
)

type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	ips, ok := f[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var out []netip.Addr
	for _, s := range ips {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

func TestCheckerResolvesNames(t *testing.T) {
	r := fakeResolver{
		"evil.example":    {"127.0.0.1"},
		"mixed.example":   {"93.184.215.14", "10.0.0.7"},
		"meta.example":    {"169.254.169.254"},
		"v6.example":      {"::1"},
		"mapped.example":  {"::ffff:192.168.1.1"},
		"public.example":  {"93.184.215.14"},
		"public6.example": {"2606:4700:4700::1111"},
	}
	tests := []struct {
		url      string
		policy   egress.Policy
		wantCode string // "" means accepted
	}{
		{"https://evil.example/hook", egress.Policy{}, egress.CodeBlockedAddress},
		{"https://mixed.example/hook", egress.Policy{}, egress.CodeBlockedAddress},
		{"https://meta.example/hook", egress.Policy{}, egress.CodeBlockedAddress},
		{"https://v6.example/hook", egress.Policy{}, egress.CodeBlockedAddress},
		{"https://mapped.example/hook", egress.Policy{}, egress.CodeBlockedAddress},
		{"https://public.example/hook", egress.Policy{}, ""},
		{"https://public6.example/hook", egress.Policy{}, ""},
		{"https://unknown.example/hook", egress.Policy{}, ""}, // lookup failure: left to delivery time
		{"https://evil.example/hook", egress.Policy{AllowPrivate: true}, ""},
		{"https://mixed.example/hook", egress.Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, ""},
		{"http://127.0.0.1/hook", egress.Policy{}, egress.CodeBlockedAddress},
		{"ftp://public.example/", egress.Policy{}, egress.CodeScheme},
	}
	for _, tt := range tests {
		err := egress.Checker{Policy: tt.policy, Resolver: r}.CheckURL(tt.url)
		var ue *egress.URLError
		switch {
		case tt.wantCode == "" && err != nil:
			t.Errorf("CheckURL(%q) with %+v = %v, want accepted", tt.url, tt.policy, err)
		case tt.wantCode != "" && (!errors.As(err, &ue) || ue.Code != tt.wantCode):
			t.Errorf("CheckURL(%q) with %+v = %v, want code %s", tt.url, tt.policy, err, tt.wantCode)
		}
		if tt.wantCode == egress.CodeBlockedAddress {
			var b *egress.BlockedError
			if !errors.As(err, &b) {
				t.Errorf("CheckURL(%q): %v does not unwrap to *BlockedError", tt.url, err)
			}
		}
	}
}

// BenchmarkCheckerCanonicalURL measures the submission check of a callback
// URL, for an address (nothing to resolve) and for a name (resolved by a
// fake resolver): go test -bench CheckerCanonicalURL -benchmem ./egress
func BenchmarkCheckerCanonicalURL(b *testing.B) {
	c := egress.Checker{Policy: egress.Policy{AllowPrivate: true}, Resolver: fakeResolver{"hooks.example.com": {"93.184.216.34"}}}
	for _, raw := range []string{"http://127.0.0.1:40000/in", "https://hooks.example.com/in?a=1"} {
		b.Run(raw, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.CanonicalURL(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

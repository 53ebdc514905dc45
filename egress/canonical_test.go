package egress

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonicalURL(t *testing.T) {
	open := Policy{AllowPrivate: true}
	tests := []struct {
		in, want string
	}{
		// One host, many spellings: the spellings that split the per-host
		// cap three ways before canonical keys.
		{"http://127.0.0.2:18622/a", "http://127.0.0.2:18622/a"},
		{"http://127.0.0.2:018622/a", "http://127.0.0.2:18622/a"},
		{"http://[::ffff:127.0.0.2]:18622/a", "http://127.0.0.2:18622/a"},
		{"http://[::FFFF:7f00:2]:18622/a", "http://127.0.0.2:18622/a"},
		{"http://2130706434:18622/a", "http://127.0.0.2:18622/a"},
		{"http://0x7f.0.0.2:18622/a", "http://127.0.0.2:18622/a"},
		{"http://0177.0.0.02:18622/a", "http://127.0.0.2:18622/a"},
		{"http://127.2:18622/a", "http://127.0.0.2:18622/a"},
		{"HTTP://127.0.0.2:18622/a", "http://127.0.0.2:18622/a"},
		// Names: lower case, no trailing dot, default ports explicit.
		{"https://Hooks.Example.COM./x", "https://hooks.example.com:443/x"},
		{"http://hooks.example.com/x", "http://hooks.example.com:80/x"},
		{"https://hooks.example.com:0443/x", "https://hooks.example.com:443/x"},
		{"https://hooks.example.com:/x", "https://hooks.example.com:443/x"},
		{"https://hooks.example.com", "https://hooks.example.com:443/"},
		// IPv6 in its standard form, bracketed.
		{"https://[2001:DB8:0:0::1]/x", "https://[2001:db8::1]:443/x"},
		{"http://[::1]:8080/x", "http://[::1]:8080/x"},
		// Path and query kept as written (receivers may sign them), the
		// fragment dropped.
		{"https://example.com/a%2Fb/c?x=1&y=%41#frag", "https://example.com:443/a%2Fb/c?x=1&y=%41"},
		{"https://example.com/A/B/", "https://example.com:443/A/B/"},
	}
	for _, tc := range tests {
		got, err := open.CanonicalURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CanonicalURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		again, err := open.CanonicalURL(got)
		if err != nil || again != got {
			t.Errorf("CanonicalURL is not idempotent on %q: %q, %v", got, again, err)
		}
		if hp := HostPort(got); strings.Contains(tc.in, "127") && hp != "127.0.0.2:18622" {
			t.Errorf("HostPort(%q) = %q, want 127.0.0.2:18622", got, hp)
		}
	}
}

func TestCanonicalURLErrorsSayWhatToDo(t *testing.T) {
	tests := []struct {
		p        Policy
		in       string
		code     string
		contains []string
		lacks    []string
	}{
		{Policy{}, "127.0.0.1:9000/hook", CodeScheme, []string{"callbackUrl must start with http:// or https://"}, nil},
		{Policy{}, "localhost:9000/hook", CodeScheme, []string{"must start with http:// or https://"}, nil},
		{Policy{}, "http://127.0.0.1:9000/hook", CodeBlockedAddress,
			[]string{"loopback", "BOOMERANG_ALLOW_PRIVATE_CALLBACKS", "BOOMERANG_ALLOW_CALLBACK_CIDRS"}, nil},
		{Policy{}, "http://10.1.2.3/hook", CodeBlockedAddress, []string{"BOOMERANG_ALLOW_PRIVATE_CALLBACKS"}, nil},
		// What no setting can open does not point at the settings.
		{Policy{AllowPrivate: true}, "http://0.0.0.0/hook", CodeBlockedAddress, []string{"unspecified"}, []string{"BOOMERANG_ALLOW"}},
		{Policy{}, "http://224.0.0.1/hook", CodeBlockedAddress, []string{"multicast"}, []string{"BOOMERANG_ALLOW"}},
	}
	for _, tc := range tests {
		_, err := tc.p.CanonicalURL(tc.in)
		var ue *URLError
		if !errors.As(err, &ue) || ue.Code != tc.code {
			t.Errorf("CanonicalURL(%q) = %v, want a %s URLError", tc.in, err, tc.code)
			continue
		}
		for _, s := range tc.contains {
			if !strings.Contains(ue.Detail, s) {
				t.Errorf("CanonicalURL(%q) detail %q lacks %q", tc.in, ue.Detail, s)
			}
		}
		for _, s := range tc.lacks {
			if strings.Contains(ue.Detail, s) {
				t.Errorf("CanonicalURL(%q) detail %q mentions %q", tc.in, ue.Detail, s)
			}
		}
	}
}

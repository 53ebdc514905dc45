package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// All traffic in these tests stays on loopback: servers listen on 127.0.0.1,
// and every other address a test names is refused in the dialer's Control
// hook, before any packet is sent.

var _ Resolver = (*net.Resolver)(nil)

// countingServer starts an httptest server on 127.0.0.1 that counts requests.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if h != nil {
			h(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	if ap := netip.MustParseAddrPort(srv.Listener.Addr().String()); !ap.Addr().IsLoopback() {
		t.Fatalf("test server listens on %v, want loopback", ap)
	}
	return srv, &n
}

func clientFor(p Policy) *http.Client {
	tr := p.Transport()
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func wantBlocked(t *testing.T, what string, err error, addr, reason string) {
	t.Helper()
	var be *BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("%s: error = %v (%T), want one errors.As turns into *BlockedError", what, err, err)
	}
	if addr != "" && be.Addr != netip.MustParseAddr(addr) {
		t.Errorf("%s: BlockedError.Addr = %v, want %v", what, be.Addr, addr)
	}
	if !strings.Contains(be.Reason, reason) {
		t.Errorf("%s: BlockedError.Reason = %q, want it to mention %q", what, be.Reason, reason)
	}
}

func TestTransportBlocksLoopbackAtDial(t *testing.T) {
	srv, hits := countingServer(t, nil)
	tests := []struct {
		name   string
		policy Policy
		url    string
		allow  bool
	}{
		{"default policy, IP", Policy{}, srv.URL + "/hook", false},
		{"default policy, localhost", Policy{}, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/hook", false},
		{"CIDR 127.0.0.1/32, IP", Policy{AllowCIDRs: mustPrefixes(t, "127.0.0.1/32")}, srv.URL + "/hook", true},
		{"CIDR 127.0.0.1/32, localhost", Policy{AllowCIDRs: mustPrefixes(t, "127.0.0.1/32")}, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/hook", true},
		{"AllowPrivate", Policy{AllowPrivate: true}, srv.URL + "/hook", true},
		{"CIDR for another range", Policy{AllowCIDRs: mustPrefixes(t, "10.0.0.0/8")}, srv.URL + "/hook", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			resp, err := clientFor(tc.policy).Post(tc.url, "application/json", strings.NewReader(`{"ok":true}`))
			if !tc.allow {
				if err == nil {
					resp.Body.Close()
				}
				wantBlocked(t, "POST "+tc.url, err, "", "loopback")
				if got := hits.Load() - before; got != 0 {
					t.Errorf("POST %s: server saw %d requests, want 0", tc.url, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("POST %s with %+v: %v, want success", tc.url, tc.policy, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Errorf("POST %s: %d %q, want 200 \"ok\"", tc.url, resp.StatusCode, body)
			}
		})
	}
}

func TestTransportBlocksRedirectHop(t *testing.T) {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(mustServerURL(t), "http://"))
	targets := []struct{ location, addr, reason string }{
		{"http://127.0.0.2:" + port + "/internal", "127.0.0.2", "loopback"},
		{"http://[::1]:" + port + "/internal", "::1", "loopback"},
		{"http://169.254.169.254/latest/meta-data/", "169.254.169.254", "cloud metadata"},
		{"http://10.0.0.1/admin", "10.0.0.1", "private (RFC 1918)"},
		{"http://[::ffff:127.0.0.2]:" + port + "/", "127.0.0.2", "loopback"},
	}
	for _, tg := range targets {
		t.Run(tg.location, func(t *testing.T) {
			a, aHits := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, tg.location, http.StatusTemporaryRedirect)
			})
			// Only server A's exact address is open.
			client := clientFor(Policy{AllowCIDRs: mustPrefixes(t, "127.0.0.1/32")})
			resp, err := client.Get(a.URL + "/start")
			if err == nil {
				resp.Body.Close()
			}
			wantBlocked(t, "GET via redirect to "+tg.location, err, "", tg.reason)
			var be *BlockedError
			errors.As(err, &be)
			if be.Addr.Unmap() != netip.MustParseAddr(tg.addr) {
				t.Errorf("redirect to %s: blocked %v, want %v", tg.location, be.Addr, tg.addr)
			}
			var ue *url.Error
			if !errors.As(err, &ue) || !strings.Contains(ue.URL, "/") {
				t.Errorf("redirect to %s: error %v is not a *url.Error", tg.location, err)
			}
			if got := aHits.Load(); got != 1 {
				t.Errorf("redirect to %s: server A saw %d requests, want 1", tg.location, got)
			}
		})
	}
}

func mustServerURL(t *testing.T) string {
	srv, _ := countingServer(t, nil)
	return srv.URL
}

func TestDialerControl(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name           string
		policy         Policy
		network, addr  string
		blocked        bool   // want *BlockedError
		errContains    string // otherwise want an error containing this ("" = success)
		blockedAddress string
	}{
		{"tcp4 loopback", Policy{}, "tcp4", "127.0.0.1:9", true, "", "127.0.0.1"},
		{"tcp6 loopback", Policy{}, "tcp6", "[::1]:9", true, "", "::1"},
		{"tcp metadata", Policy{}, "tcp", "169.254.169.254:80", true, "", "169.254.169.254"},
		{"tcp unspecified", Policy{AllowPrivate: true}, "tcp", "0.0.0.0:80", true, "", "0.0.0.0"},
		{"tcp mapped (net unmaps it)", Policy{}, "tcp", "[::ffff:10.0.0.1]:80", true, "", "10.0.0.1"},
		{"udp loopback", Policy{}, "udp", "127.0.0.1:53", true, "", "127.0.0.1"},
		{"unix refused", Policy{AllowPrivate: true}, "unix", "/nonexistent/egress-test.sock", false, "not permitted", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.policy.Dialer(2 * time.Second)
			conn, err := d.DialContext(ctx, tc.network, tc.addr)
			if conn != nil {
				conn.Close()
			}
			if tc.blocked {
				wantBlocked(t, tc.network+" "+tc.addr, err, tc.blockedAddress, "")
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("Dial(%s, %s) = %v, want error containing %q", tc.network, tc.addr, err, tc.errContains)
			}
		})
	}

	// The dialer really connects when allowed.
	srv, _ := countingServer(t, nil)
	addr := srv.Listener.Addr().String()
	conn, err := Policy{AllowCIDRs: mustPrefixes(t, "127.0.0.1")}.Dialer(2*time.Second).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("Dial(tcp, %s) with 127.0.0.1 allowed: %v, want success", addr, err)
	}
	conn.Close()

	// An address the Control hook cannot parse is refused.
	if err := (Policy{}).control("tcp", "not-an-address", nil); err == nil {
		t.Errorf("control(tcp, %q) = nil, want error", "not-an-address")
	}
}

func TestDialerCopiesCIDRs(t *testing.T) {
	cidrs := mustPrefixes(t, "127.0.0.1/32")
	d := Policy{AllowCIDRs: cidrs}.Dialer(time.Second)
	cidrs[0] = netip.MustParsePrefix("10.0.0.0/8") // caller edits its slice afterwards
	srv, _ := countingServer(t, nil)
	conn, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatalf("Dial after caller edited AllowCIDRs: %v, want success (dialer keeps its own copy)", err)
	}
	conn.Close()
}

func TestTransportSettings(t *testing.T) {
	tr := Policy{}.Transport()
	if tr.Proxy != nil {
		t.Errorf("Transport().Proxy is set, want nil (never the environment's proxy)")
	}
	if tr.DialContext == nil || tr.DialTLSContext != nil || tr.Dial != nil || tr.DialTLS != nil { //nolint:staticcheck
		t.Errorf("Transport() dial hooks: DialContext set=%v, others set=%v; want only DialContext", tr.DialContext != nil, tr.DialTLSContext != nil)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"DisableKeepAlives", tr.DisableKeepAlives, false},
		{"MaxIdleConnsPerHost", tr.MaxIdleConnsPerHost, 64},
		{"MaxIdleConns", tr.MaxIdleConns, 1024},
		{"IdleConnTimeout", tr.IdleConnTimeout, 90 * time.Second},
		{"TLSHandshakeTimeout", tr.TLSHandshakeTimeout, 10 * time.Second},
		{"ResponseHeaderTimeout", tr.ResponseHeaderTimeout, time.Duration(0)},
		{"ForceAttemptHTTP2", tr.ForceAttemptHTTP2, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("Transport().%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// The environment's proxy must be ignored even when set.
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("http_proxy", "http://127.0.0.1:1")
	srv, hits := countingServer(t, nil)
	resp, err := clientFor(Policy{AllowCIDRs: mustPrefixes(t, "127.0.0.1")}).Get(srv.URL)
	if err != nil {
		t.Fatalf("GET %s with HTTP_PROXY set: %v, want direct success", srv.URL, err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Errorf("GET %s with HTTP_PROXY set: server saw %d requests, want 1", srv.URL, hits.Load())
	}
}

// fakeResolver answers from a map; names not in it fail.
type fakeResolver struct {
	t       *testing.T
	answers map[string][]string
	err     error
	calls   int
}

func (f *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	f.calls++
	if network != "ip" {
		f.t.Errorf("LookupNetIP network = %q, want %q", network, "ip")
	}
	if f.err != nil {
		return nil, f.err
	}
	ans, ok := f.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	out := make([]netip.Addr, len(ans))
	for i, a := range ans {
		out[i] = netip.MustParseAddr(a)
	}
	return out, nil
}

func TestCheckHost(t *testing.T) {
	answers := map[string][]string{
		"evil.example":     {"127.0.0.1"},
		"mixed.example":    {"93.184.215.14", "2606:4700::1", "10.0.0.7"},
		"mixed6.example":   {"8.8.8.8", "fd00::1"},
		"mapped.example":   {"::ffff:169.254.169.254"},
		"good.example":     {"93.184.215.14", "2606:4700:4700::1111"},
		"metadata.example": {"169.254.169.254"},
		"empty.example":    {},
	}
	loop := Policy{AllowCIDRs: mustPrefixes(t, "127.0.0.1/32")}
	tests := []struct {
		name      string
		policy    Policy
		host      string
		reason    string // want *BlockedError with this reason
		errSubstr string // or a plain error containing this
		lookups   int    // resolver calls expected
	}{
		{"resolves to loopback", Policy{}, "evil.example", "loopback", "", 1},
		{"upper-case name, trailing dot", Policy{}, "EVIL.example.", "loopback", "", 1},
		{"mix public and private", Policy{}, "mixed.example", "private (RFC 1918)", "", 1},
		{"mix public and ULA", Policy{}, "mixed6.example", "unique-local", "", 1},
		{"mapped metadata", Policy{}, "mapped.example", "IPv4-mapped cloud metadata", "", 1},
		{"metadata", Policy{}, "metadata.example", "cloud metadata", "", 1},
		{"all public", Policy{}, "good.example", "", "", 1},
		{"loopback allowed by CIDR", loop, "evil.example", "", "", 1},
		{"mix still blocked by CIDR policy", loop, "mixed.example", "private (RFC 1918)", "", 1},
		{"private allowed", Policy{AllowPrivate: true}, "mixed.example", "", "", 1},
		{"NXDOMAIN", Policy{}, "missing.example", "", "no such host", 1},
		{"no addresses", Policy{}, "empty.example", "", "no addresses", 1},
		{"IPv4 literal, no lookup", Policy{}, "127.0.0.1", "loopback", "", 0},
		{"hex literal, no lookup", Policy{}, "0x7f.1", "loopback", "", 0},
		{"bracketed v6, no lookup", Policy{}, "[::1]", "loopback", "", 0},
		{"bare v6, no lookup", Policy{}, "fe80::1%eth0", "link-local", "", 0},
		{"public literal, no lookup", Policy{}, "8.8.8.8", "", "", 0},
		{"localhost, no lookup", Policy{}, "localhost", "loopback", "", 0},
		{"metadata name, no lookup", Policy{}, "metadata.google.internal", "cloud metadata", "", 0},
		{"invalid name", Policy{}, "a..b", "", "not a valid host name", 0},
		{"invalid numeric", Policy{}, "1.2.3.4.5", "", "not a valid one", 0},
		{"bracketed v4", Policy{}, "[127.0.0.1]", "", "IPv6", 0},
		{"empty", Policy{}, "", "", "empty", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeResolver{t: t, answers: answers}
			err := tc.policy.CheckHost(context.Background(), r, tc.host)
			if r.calls != tc.lookups {
				t.Errorf("CheckHost(%q) made %d lookups, want %d", tc.host, r.calls, tc.lookups)
			}
			switch {
			case tc.reason != "":
				wantBlocked(t, "CheckHost("+tc.host+")", err, "", tc.reason)
			case tc.errSubstr != "":
				var be *BlockedError
				if err == nil || errors.As(err, &be) || !strings.Contains(err.Error(), tc.errSubstr) {
					t.Errorf("CheckHost(%q) = %v, want a non-blocked error containing %q", tc.host, err, tc.errSubstr)
				}
			default:
				if err != nil {
					t.Errorf("CheckHost(%q) = %v, want nil", tc.host, err)
				}
			}
		})
	}

	// Resolver errors are wrapped, not swallowed.
	sentinel := errors.New("resolver down")
	if err := (Policy{}).CheckHost(context.Background(), &fakeResolver{t: t, err: sentinel}, "good.example"); !errors.Is(err, sentinel) {
		t.Errorf("CheckHost with failing resolver = %v, want it to wrap %v", err, sentinel)
	}
	// A nil resolver is fine when no lookup is needed.
	if err := (Policy{}).CheckHost(context.Background(), nil, "127.0.0.1"); err == nil {
		t.Errorf("CheckHost(nil resolver, 127.0.0.1) = nil, want blocked")
	}
}

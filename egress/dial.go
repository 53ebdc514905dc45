package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"syscall"
	"time"
)

// Dialer returns a *net.Dialer whose Control hook checks, with CheckAddr, the
// actual IP address of every connection it makes, after DNS resolution and
// before any packet is sent. DNS rebinding, redirects and retries therefore
// cannot reach a blocked address. A refusal is returned wrapped (in a
// *net.OpError, and by net/http in a *url.Error) so that errors.As yields the
// *BlockedError. timeout is the connect timeout (0 means none beyond the
// context's). Only TCP and UDP over IP are permitted.
func (p Policy) Dialer(timeout time.Duration) *net.Dialer {
	p.AllowCIDRs = slices.Clone(p.AllowCIDRs) // later edits by the caller must not change the dialer
	return &net.Dialer{
		Timeout:   timeout,
		KeepAlive: 30 * time.Second,
		Control:   p.control,
	}
}

func (p Policy) control(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return fmt.Errorf("egress: network %q not permitted", network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress: cannot check dial address %q: %w", address, err)
	}
	return p.CheckAddr(ap.Addr())
}

// DialTimeout is the connect timeout of the dialer used by Transport.
const DialTimeout = 10 * time.Second

// Transport returns an *http.Transport tuned for webhook delivery whose
// connections all go through Dialer(DialTimeout): no proxy (never the
// environment's, which would hide the real destination), keep-alives on,
// MaxIdleConns 1024, MaxIdleConnsPerHost 64, IdleConnTimeout 90s,
// TLSHandshakeTimeout 10s, HTTP/2 attempted, response headers capped at
// 64 KiB. There is no ResponseHeaderTimeout: the caller's context sets the
// deadline of each delivery.
func (p Policy) Transport() *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            p.Dialer(DialTimeout).DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  1 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// Resolver is the part of *net.Resolver that CheckHost needs; tests supply
// fakes.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// CheckHost checks a host (name or IP literal in any spelling CheckURL
// accepts; IPv6 with or without brackets; no port) against the policy. IP
// literals and special names (localhost, ...) are checked without a lookup;
// other names are resolved with r (net.DefaultResolver if nil) and refused
// with a *BlockedError if ANY address is blocked. Lookup failures and empty
// answers are returned as other errors.
//
// CheckHost is advisory (for early, friendly refusals): a name can resolve
// differently by the time it is dialled, so delivery must still use Dialer
// or Transport.
func (p Policy) CheckHost(ctx context.Context, r Resolver, host string) error {
	bracketed := len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']'
	if bracketed {
		host = host[1 : len(host)-1]
	}
	t, problem := parseHost(host, bracketed)
	if problem != "" {
		return errors.New("egress: " + problem)
	}
	if t.ip.IsValid() {
		return p.CheckAddr(t.ip)
	}
	if err := p.checkName(t.name); err != nil {
		return err
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", t.name)
	if err != nil {
		return fmt.Errorf("egress: resolving %s: %w", t.name, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("egress: resolving %s: no addresses", t.name)
	}
	for _, a := range addrs {
		if err := p.CheckAddr(a); err != nil {
			return err
		}
	}
	return nil
}

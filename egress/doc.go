// Package egress makes Boomerang's outbound HTTP safe to point at URLs that
// untrusted clients supply.
//
// # The threat
//
// Boomerang POSTs job results to callback URLs chosen by its clients. Without
// care that turns the service into a server-side request forgery (SSRF)
// cannon: a client registers http://169.254.169.254/latest/meta-data/ (cloud
// credentials), http://127.0.0.1:6379/ (the Redis next door),
// http://10.0.0.5/admin (the internal network) and Boomerang dutifully makes
// the request from inside the trust boundary, possibly on every retry.
//
// Checking the URL string once is not enough:
//
//   - IP literals have many spellings that resolvers and browsers accept:
//     2130706433, 0177.0.0.1, 0x7f.1, 127.1, [::ffff:127.0.0.1],
//     [64:ff9b::7f00:1], [fe80::1%25eth0], ...
//   - A hostname can resolve to a private address, and DNS rebinding lets it
//     resolve to a public address when checked and a private one when
//     connected.
//   - A public callback can answer with a redirect to a private address.
//
// # The defence
//
// Two layers, both driven by one [Policy]:
//
//  1. At submission, [Policy.CheckURL] validates the URL syntactically
//     (scheme, user-info, length, port) and, when the host is an IP literal in
//     any spelling, normalises it and checks it with [Policy.CheckAddr]. It
//     does no DNS lookup, so it is cheap and deterministic; its *URLError
//     carries a stable Code for API responses.
//  2. At connection time, [Policy.Dialer] (and [Policy.Transport], which is
//     built on it) checks the address actually being connected to, after DNS
//     resolution, in the dialer's Control hook. That check runs for every
//     connection: every retry, every redirect hop, every address tried by
//     happy eyeballs. DNS rebinding and redirects therefore cannot reach a
//     blocked address. A refusal happens before any packet is sent and
//     surfaces as an error from which errors.As extracts a *BlockedError.
//
// The transport never uses the environment's HTTP proxy: a proxy would make
// the connected address the proxy's, defeating layer 2.
//
// # Use
//
//	pol := egress.Policy{
//		AllowPrivate: cfg.AllowPrivateCallbacks,  // BOOMERANG_ALLOW_PRIVATE_CALLBACKS
//		AllowCIDRs:   cidrs,                      // egress.ParseCIDRs(BOOMERANG_ALLOW_CALLBACK_CIDRS)
//		RequireHTTPS: cfg.RequireHTTPS,           // BOOMERANG_REQUIRE_HTTPS
//	}
//	// On job submission:
//	if err := pol.CheckURL(req.CallbackURL); err != nil {
//		var ue *egress.URLError
//		errors.As(err, &ue) // ue.Code for the API, ue.Detail for humans
//	}
//	// For delivery (one shared client):
//	client := &http.Client{Transport: pol.Transport()}
//	// ... client.Do(req.WithContext(ctx)); on failure:
//	var be *egress.BlockedError
//	if errors.As(err, &be) { /* permanent failure: do not retry */ }
//
// The zero Policy is the safe production default: only public unicast
// addresses, http and https. The address table lives in ranges.go.
package egress

// Package signing signs and verifies webhooks as described by the Standard
// Webhooks specification, version 1 (https://www.standardwebhooks.com).
//
// Boomerang signs every delivery with this package, and any Go receiver can
// import it to check that a webhook really comes from its Boomerang endpoint
// and was not replayed. It depends on the standard library only.
//
// # The scheme
//
// Each delivery carries three headers:
//
//	webhook-id:        msg_2KWPBgLlAfxdpx2AI54pPJ85f4W
//	webhook-timestamp: 1674087231
//	webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=
//
// The signature is the standard (padded) base64 encoding of
// HMAC-SHA256(key, id + "." + timestamp + "." + body), prefixed with its
// version "v1,". The key is the base64 decoding of the endpoint secret after
// its "whsec_" prefix. While a secret is being rotated the signature header
// lists one signature per secret, separated by spaces; a receiver accepts the
// webhook if any of them matches any secret it holds.
//
// Only the symmetric "v1" scheme is implemented. Asymmetric ("v1a", Ed25519)
// signatures are ignored by the verifier, like any other unknown version.
//
// # Receiving webhooks
//
// A receiver creates one [Verifier] from its secret(s) and calls
// [Verifier.Verify] with the request headers and the raw body, before it
// parses the body:
//
//	v, err := signing.NewVerifier(os.Getenv("WEBHOOK_SECRET"))
//	...
//	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
//	...
//	if err := v.Verify(r.Header, body); err != nil {
//		http.Error(w, "invalid webhook", http.StatusUnauthorized)
//		return
//	}
//
// Verify rejects webhooks whose timestamp is more than [DefaultTolerance]
// away from the receiver's clock (see [Verifier.Tolerance]), which limits
// replays. Receivers should also remember recently seen webhook ids if they
// need exactly-once processing: the signature does not prevent a replay
// within the tolerance window.
//
// Errors wrap one of [ErrMissingHeader], [ErrTimestamp], [ErrNoMatch] or
// [ErrInvalidSecret]; test for them with [errors.Is]. Error messages never
// contain secrets or signatures.
//
// # Sending webhooks
//
// A sender creates a [Signer] and sets the three headers itself:
//
//	s, err := signing.NewSigner(secret)
//	...
//	ts := time.Now().Unix()
//	req.Header.Set(signing.HeaderID, id)
//	req.Header.Set(signing.HeaderTimestamp, strconv.FormatInt(ts, 10))
//	req.Header.Set(signing.HeaderSignature, s.Sign(id, ts, body))
//
// [NewSecret] makes a new random secret.
package signing

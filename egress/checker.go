package egress

import (
	"context"
	"errors"
	"time"
)

// Checker validates callback URLs at submission like Policy.CheckURL and,
// for host names, also resolves them and refuses a name that resolves to a
// blocked address, so a client learns at once (422) instead of at the first
// delivery attempt. The dial-time check stays authoritative: a name can
// resolve differently later (DNS rebinding). Lookup failures are not
// refusals here; the delivery attempt will report them.
type Checker struct {
	Policy   Policy
	Resolver Resolver      // nil means net.DefaultResolver
	Timeout  time.Duration // 0 means 2 s
	Names    *NameCache    // reuses recent verdicts on host names; nil resolves every time
}

// CheckURL implements the submission check.
func (c Checker) CheckURL(raw string) error {
	_, err := c.CanonicalURL(raw)
	return err
}

// CanonicalURL checks raw like CheckURL and returns its canonical form
// (Policy.CanonicalURL).
func (c Checker) CanonicalURL(raw string) (string, error) { return c.CanonicalURLFor("", raw) }

// CanonicalURLFor is CanonicalURL for one client: verdicts cached in
// c.Names serve only the client that caused them, so that no client can
// tell from how fast a name is answered whether another submitted it.
func (c Checker) CanonicalURLFor(clientID, raw string) (string, error) {
	canonical, name, err := c.Policy.canonical(raw)
	if err != nil || name == "" { // an address is checked already; nothing to resolve
		return canonical, err
	}
	key := clientID + "\x00" + name
	blocked, known := c.Names.get(key)
	if !known {
		blocked = c.resolve(key, name)
	}
	if blocked != nil {
		return "", blockedURL("the host resolves to a blocked address ("+blocked.Reason+")", blocked)
	}
	return canonical, nil
}

// resolve checks what name resolves to, and notes the verdict in c.Names
// under key: the blocked address, or nil when every address is allowed or
// the lookup failed (not a refusal: the delivery attempt will report it).
func (c Checker) resolve(key, name string) *BlockedError {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := c.Policy.CheckHost(ctx, c.Resolver, name)
	var blocked *BlockedError
	if !errors.As(err, &blocked) {
		blocked = nil
	}
	c.Names.put(key, blocked, err != nil && blocked == nil)
	return blocked
}

package webhooks

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/boomerang-dev/boomerang/signing"
)

// signerCache reads a client's secrets for every attempt (a rotation takes
// effect at once, in every worker), but keeps the parsed Signer for the same
// secrets, so attempts do not decode keys and set up HMAC state each time.
type signerCache struct {
	src SecretSource
	mu  sync.Mutex
	m   map[string]*signing.Signer // by the secrets, joined
}

func (c *signerCache) get(ctx context.Context, clientID string) (*signing.Signer, error) {
	secrets, err := c.src.SigningSecrets(ctx, clientID)
	if err != nil {
		return nil, fmt.Errorf("signing secrets of %s: %w", clientID, err)
	}
	key := strings.Join(secrets, " ")
	c.mu.Lock()
	signer, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return signer, nil
	}
	signer, err = signing.NewSigner(secrets...)
	if err != nil {
		return nil, fmt.Errorf("signing secrets of %s: %w", clientID, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= 10000 { // bound the memory; a refill costs one parse each
		clear(c.m)
	}
	c.m[key] = signer
	return signer, nil
}

// Package dns stands in for lego's table of ACME DNS-01 challenge providers
// (github.com/go-acme/lego/v5/providers/dns). Thirteen of lego's providers need SDKs the
// module proxy here refuses, so this build of Traefik has none: an ACME certificate
// resolver with a dnsChallenge fails with the error below, while the HTTP-01 and
// TLS-ALPN-01 challenges work as upstream.
package dns

import (
	"fmt"

	"github.com/go-acme/lego/v5/challenge"
)

// NewDNSChallengeProviderByName returns the DNS-01 provider called name: none is built in.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("DNS provider %q: this build of Traefik (scripts/devcluster) has no ACME DNS-01 providers", name)
}

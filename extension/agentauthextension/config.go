// Package agentauthextension provides the `agentauth` extension: a server authenticator
// (extensionauth.Server) that accepts agentcost's bearer tokens on any receiver with an `auth`
// setting, such as the OTLP receiver, and owns the token list the budget receiver's decision API
// can share (`access: {authenticator: agentauth}`). An authenticated request's context carries
// client.Info.Auth with the token's subject and role, from which the agentcost processor
// attributes spans to their sender.
package agentauthextension

import (
	"go.opentelemetry.io/collector/component"

	"github.com/agentcost/agentcost/internal/access"
)

// Config is the configuration of the agentauth extension.
type Config struct {
	// Tokens are the accepted bearer tokens, each with a role (agent, reviewer or forwarder), a
	// subject and, for a forwarder, an optional agents allow-list.
	Tokens []access.TokenConfig `mapstructure:"tokens"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration; messages name the YAML key.
func (cfg *Config) Validate() error {
	return access.Validate("tokens", cfg.Tokens)
}

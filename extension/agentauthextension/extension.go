package agentauthextension

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionauth"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/agentcost/agentcost/extension/agentauthextension/internal/metadata"
	"github.com/agentcost/agentcost/internal/access"
)

// ErrUnauthenticated is the error of a request without a valid bearer token; receivers answer it
// with 401 (HTTP) or Unauthenticated (gRPC).
var ErrUnauthenticated = errors.New("a valid bearer token is required")

// errNotStarted is returned by Authenticate before Start loaded the tokens.
var errNotStarted = errors.New("agentauth: the token list is not loaded")

// Tokens is what the extension offers other components: its loaded token list. The budget
// receiver uses it for the decision API (access: {authenticator: agentauth}).
type Tokens interface {
	// TokenSet returns the loaded tokens; nil before the extension started.
	TokenSet() *access.Set
}

// authenticator is the agentauth extension.
type authenticator struct {
	cfg       *Config
	logger    *zap.Logger
	telemetry *metadata.TelemetryBuilder

	mu  sync.RWMutex
	set *access.Set
}

var (
	_ extension.Extension  = (*authenticator)(nil)
	_ extensionauth.Server = (*authenticator)(nil)
	_ Tokens               = (*authenticator)(nil)
)

func newAuthenticator(set extension.Settings, cfg *Config) (*authenticator, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, fmt.Errorf("creating telemetry: %w", err)
	}
	return &authenticator{cfg: cfg, logger: set.Logger, telemetry: tb}, nil
}

// Start reads the tokens (token files now), checking their length and that they are distinct.
func (a *authenticator) Start(context.Context, component.Host) error {
	s, err := access.Load("tokens", a.cfg.Tokens)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.set = s
	a.mu.Unlock()
	roles := map[access.Role]int{}
	for _, t := range a.cfg.Tokens {
		roles[t.Role]++
	}
	a.logger.Info("agentauth tokens loaded", zap.Int("tokens", s.Len()),
		zap.Int(access.RoleAgent.String(), roles[access.RoleAgent]), zap.Int(access.RoleReviewer.String(), roles[access.RoleReviewer]),
		zap.Int(access.RoleForwarder.String(), roles[access.RoleForwarder]))
	return nil
}

// Shutdown forgets the tokens.
func (a *authenticator) Shutdown(context.Context) error {
	a.mu.Lock()
	a.set = nil
	a.mu.Unlock()
	return nil
}

// TokenSet returns the loaded tokens; nil before Start.
func (a *authenticator) TokenSet() *access.Set {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.set
}

// Authenticate accepts a request whose authorization header (HTTP "Authorization", gRPC metadata
// "authorization") is "Bearer <token>" with a configured token, and returns the context with
// client.Info.Auth naming the token's subject and role. It never logs a token.
func (a *authenticator) Authenticate(ctx context.Context, sources map[string][]string) (context.Context, error) {
	set := a.TokenSet()
	if set == nil {
		return ctx, errNotStarted
	}
	token, ok := access.BearerToken(authorization(sources))
	if !ok {
		a.telemetry.ExtensionAgentauthRejections.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", "missing")))
		return ctx, ErrUnauthenticated
	}
	id, ok := set.Lookup(token)
	if !ok {
		a.telemetry.ExtensionAgentauthRejections.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", "invalid")))
		return ctx, ErrUnauthenticated
	}
	a.telemetry.ExtensionAgentauthAuthenticated.Add(ctx, 1, metric.WithAttributes(attribute.String("role", string(id.Role))))
	info := client.FromContext(ctx)
	info.Auth = access.NewAuthData(id)
	return client.NewContext(ctx, info), nil
}

// authorization returns the first authorization value of sources, whatever the key's case (HTTP
// headers arrive canonicalised, gRPC metadata lowercased).
func authorization(sources map[string][]string) string {
	for _, k := range [...]string{"authorization", "Authorization"} {
		if v := sources[k]; len(v) > 0 {
			return v[0]
		}
	}
	for k, v := range sources {
		if len(v) > 0 && strings.EqualFold(k, "authorization") {
			return v[0]
		}
	}
	return ""
}

// Find returns the token list of the agentauth extension id on host, for a component that shares
// it (the budget receiver's access.authenticator). Call it from Start: extensions start first.
func Find(host component.Host, id component.ID) (*access.Set, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("extension %q is not configured (add it under extensions and service::extensions)", id)
	}
	t, ok := ext.(Tokens)
	if !ok {
		return nil, fmt.Errorf("extension %q is not an agentauth extension", id)
	}
	s := t.TokenSet()
	if s == nil {
		return nil, fmt.Errorf("extension %q has not loaded its tokens", id)
	}
	return s, nil
}

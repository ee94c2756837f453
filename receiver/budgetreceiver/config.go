// Package budgetreceiver provides the `budget` receiver, agentcost's feedback loop: it serves the
// decision API agents call before each action (decisions, leases, approvals, budgets, explain),
// enforces the policy as code through the budget ledger, keeps per-action cost baselines, and
// emits budget state and decision metrics into a metrics pipeline and every cost-evidence record
// into a logs pipeline.
package budgetreceiver

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/confignet"

	"github.com/agentcost/agentcost/extension/agentauthextension"
	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/internal/policy"
)

// Roles of access tokens.
const (
	RoleAgent     = access.RoleAgent
	RoleReviewer  = access.RoleReviewer
	RoleForwarder = access.RoleForwarder
)

// Config is the configuration of the budget receiver.
type Config struct {
	// ServerConfig is the decision API's HTTP server (default endpoint localhost:4320), with
	// confighttp's TLS, CORS and auth (authenticator extensions) settings.
	confighttp.ServerConfig `mapstructure:",squash"`

	// PolicyFile is the policy as code (required).
	PolicyFile string `mapstructure:"policy_file"`
	// PolicyOverlays are overlay files applied over the policy in order (later ones win).
	PolicyOverlays []string `mapstructure:"policy_overlays"`
	// PolicyReloadInterval is how often the policy files are checked for changes (default 5s). A
	// change that does not validate keeps the policy in force; the error is logged and counted.
	PolicyReloadInterval time.Duration `mapstructure:"policy_reload_interval"`
	// MaxFileBytes bounds each policy and overlay file (default 64 MiB, the bound price files
	// share). A larger file is refused by its size before it is read or parsed: at start this fails
	// start-up, on reload the policy in force stays and the file is not examined again until its
	// size or modification time changes.
	MaxFileBytes int64 `mapstructure:"max_file_bytes"`

	// Ledger is the component ID of the budgetledger extension (default budgetledger).
	Ledger component.ID `mapstructure:"ledger"`

	// Access holds the bearer tokens and their roles, inline (tokens) or an agentauth extension's
	// (authenticator). Without it the API is open, which is allowed only on a loopback endpoint.
	Access *AccessConfig `mapstructure:"access"`

	// MaxRequestBytes bounds a request body; a larger one is answered 413 (default 64 KiB). A
	// declared Content-Length over it is refused before the body is read. confighttp's own
	// max_request_body_size (default 20 MiB) applies too: the smaller of the two wins.
	MaxRequestBytes int64 `mapstructure:"max_request_bytes"`
	// MaxInFlight bounds the requests served at once; past it the answer is 429 (default 1024).
	MaxInFlight int `mapstructure:"max_in_flight"`
	// MaxInFlightPerCaller bounds the requests one caller (one token's subject, however many
	// connections it opens) has served at once, so that it cannot take every max_in_flight slot;
	// past it that caller gets 429 (default 0: a quarter of max_in_flight, at least 1). An open API
	// has one caller, held to max_in_flight only. A request holds a slot only once its body is read.
	MaxInFlightPerCaller int `mapstructure:"max_in_flight_per_caller"`

	// ApprovalTTL is how long a pending or approved approval stays valid (default 24h).
	ApprovalTTL time.Duration `mapstructure:"approval_ttl"`
	// ReservationTTL is how long an allowed action's reservation holds when the decision sets no
	// max_runtime_sec (default 10m); with max_runtime_sec the reservation holds that long.
	ReservationTTL time.Duration `mapstructure:"reservation_ttl"`
	// IdempotencyTTL is how long an idempotency_key returns its first answer (default 24h).
	IdempotencyTTL time.Duration `mapstructure:"idempotency_ttl"`
	// PublishInterval is how often budget state and decision metrics go to the metrics pipeline
	// (default 15s).
	PublishInterval time.Duration `mapstructure:"publish_interval"`
	// MaxLabelValues bounds the distinct values of each label (agent, team, model, provider,
	// reason) of the published ledger totals; values past it are published as __overflow__ and
	// counted in agentcost_label_overflow_total (default 1000).
	MaxLabelValues int `mapstructure:"max_label_values"`
	// SettleInterval is how often reservations past their TTL are settled (default 5s).
	SettleInterval time.Duration `mapstructure:"settle_interval"`
	// MidflightInterval is how often open actions' and running runs' totals of booked spend are
	// compared with their baselines (default 1s), so that a crossing is flagged within a few
	// seconds of the booking.
	MidflightInterval time.Duration `mapstructure:"midflight_interval"`
	// RunIdle is how long a run must show no activity (nothing booked, nothing reserved or freed,
	// no open action with booked spend) before it counts as complete and its total feeds its
	// agent's run baseline (default 10m).
	RunIdle time.Duration `mapstructure:"run_idle"`

	// Baseline configures the per-(agent, action) cost baselines and the anomaly rule.
	Baseline BaselineConfig `mapstructure:"baseline"`

	// LedgerUnavailable says how the API behaves while the ledger fails.
	LedgerUnavailable LedgerUnavailableConfig `mapstructure:"ledger_unavailable"`

	// Notifications sends approvals, budget level crossings, action anomalies and freezes to
	// people through webhooks, at least once, from a durable outbox in the ledger.
	Notifications NotificationsConfig `mapstructure:"notifications"`

	// Prices is the price table that re-estimates a degraded request for its cheaper model (the
	// policy's `degrade:`): the processor's table, so both price a model alike.
	Prices PricesConfig `mapstructure:"prices"`

	// Console serves the reviewer console (console.go) at /console/ on this endpoint.
	Console ConsoleConfig `mapstructure:"console"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// AccessConfig holds the API's bearer tokens: inline, or shared with OTLP through an agentauth
// extension. Set exactly one of Tokens and Authenticator.
type AccessConfig struct {
	// Tokens are the accepted tokens, each with a role and a subject (a receiver-only setup).
	Tokens []TokenConfig `mapstructure:"tokens"`
	// Authenticator is the ID of an agentauth extension whose token list the API uses, so that the
	// OTLP receiver (auth: {authenticator: agentauth}) and the decision API share one list.
	Authenticator *component.ID `mapstructure:"authenticator"`
}

// TokenConfig is one bearer token: token or token_file, role (agent, reviewer; a forwarder token
// is refused by the API with 403) and subject.
type TokenConfig = access.TokenConfig

// BaselineConfig configures the per-(agent, action) baselines of settled action cost and the
// per-agent baselines of completed runs: the baseline settings the processor shares
// (internal/baseline.Settings, squashed; warmup is still read as the older spelling of
// warmup_calls).
type BaselineConfig struct {
	baseline.Settings `mapstructure:",squash"`
}

// LedgerUnavailableConfig is the documented behaviour while the ledger fails.
type LedgerUnavailableConfig struct {
	// Decisions is fail_closed (default: deny with the reason) or fail_open (answer the policy's
	// rule result without reserving; require_approval becomes throttle). Other endpoints answer
	// 503 either way.
	Decisions string `mapstructure:"decisions"`
	// FailOpenTopics are topic globs answered fail_open when decisions is fail_closed (cheap reads
	// that may go on while the ledger is away; their spend is still booked once it is back, through
	// the costledger exporter's persistent queue).
	FailOpenTopics []string `mapstructure:"fail_open_topics"`
	// FailClosedTopics are topic globs answered fail_closed when decisions is fail_open (risky
	// topics such as batches).
	FailClosedTopics []string `mapstructure:"fail_closed_topics"`
	// RetryAfter is the retry hint of those answers (default 5s).
	RetryAfter time.Duration `mapstructure:"retry_after"`
	// Timeout bounds the ledger calls of one decision (default 500ms): a ledger that does not
	// answer in time counts as unavailable, so a decision fails closed (or open) within about this
	// long instead of waiting on the backend's own timeouts.
	Timeout time.Duration `mapstructure:"timeout"`
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration; messages name the YAML key.
func (cfg *Config) Validate() error {
	var errs error
	add := func(format string, args ...any) { errs = errors.Join(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(cfg.NetAddr.Endpoint) == "" {
		add("endpoint: required (host:port of the decision API)")
	}
	if strings.TrimSpace(cfg.PolicyFile) == "" {
		add("policy_file: required (the policy as code)")
	}
	for i, o := range cfg.PolicyOverlays {
		if strings.TrimSpace(o) == "" {
			add("policy_overlays[%d]: empty path", i)
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"policy_reload_interval", cfg.PolicyReloadInterval}, {"approval_ttl", cfg.ApprovalTTL},
		{"idempotency_ttl", cfg.IdempotencyTTL}, {"publish_interval", cfg.PublishInterval},
		{"settle_interval", cfg.SettleInterval}, {"ledger_unavailable.retry_after", cfg.LedgerUnavailable.RetryAfter},
		{"midflight_interval", cfg.MidflightInterval}, {"run_idle", cfg.RunIdle},
		{"ledger_unavailable.timeout", cfg.LedgerUnavailable.Timeout},
	} {
		if d.v <= 0 {
			add("%s: %v must be positive", d.key, d.v)
		}
	}
	if cfg.MaxLabelValues < 1 {
		add("max_label_values: %d must be at least 1", cfg.MaxLabelValues)
	}
	if cfg.ReservationTTL <= 0 {
		add("reservation_ttl: %v must be positive", cfg.ReservationTTL)
	}
	if cfg.MaxRequestBytes < 1024 {
		add("max_request_bytes: %d must be at least 1024", cfg.MaxRequestBytes)
	}
	if cfg.MaxFileBytes < 1 {
		add("max_file_bytes: %d must be positive", cfg.MaxFileBytes)
	}
	if cfg.MaxInFlight < 1 {
		add("max_in_flight: %d must be at least 1", cfg.MaxInFlight)
	}
	if cfg.MaxInFlightPerCaller < 0 || (cfg.MaxInFlight >= 1 && cfg.MaxInFlightPerCaller > cfg.MaxInFlight) {
		add("max_in_flight_per_caller: %d must be between 0 (a quarter of max_in_flight) and max_in_flight (%d)", cfg.MaxInFlightPerCaller, cfg.MaxInFlight)
	}
	if _, ok := decide.ParseFailMode(cfg.LedgerUnavailable.Decisions); !ok {
		add("ledger_unavailable.decisions: %q is not fail_closed or fail_open", cfg.LedgerUnavailable.Decisions)
	}
	if _, err := policy.CompileTopics(cfg.LedgerUnavailable.FailOpenTopics); err != nil {
		add("ledger_unavailable.fail_open_topics: %v", err)
	}
	if _, err := policy.CompileTopics(cfg.LedgerUnavailable.FailClosedTopics); err != nil {
		add("ledger_unavailable.fail_closed_topics: %v", err)
	}
	if _, err := cfg.Baseline.config(); err != nil {
		errs = errors.Join(errs, err)
	}
	errs = errors.Join(errs, cfg.Prices.validate())
	errs = errors.Join(errs, cfg.Notifications.validate())
	if cfg.Access == nil {
		if !cfg.loopback() {
			add("access: required when the endpoint %q is not a loopback address (without access the API is open)", cfg.NetAddr.Endpoint)
		}
	} else {
		errs = errors.Join(errs, cfg.Access.validate())
	}
	return errs
}

// bodyLimit is the request body limit in force: max_request_bytes, or confighttp's
// max_request_body_size when that is set and smaller.
func (cfg *Config) bodyLimit() int64 {
	if n := cfg.MaxRequestBodySize; n > 0 && n < cfg.MaxRequestBytes {
		return n
	}
	return cfg.MaxRequestBytes
}

// requestLimits are the server's request-flow settings from the configuration.
func (cfg *Config) requestLimits() requestLimits {
	l := requestLimits{perCaller: cfg.MaxInFlightPerCaller, anyHost: cfg.NetAddr.Transport == confignet.TransportTypeUnix, console: cfg.Console.Enabled}
	if cors := cfg.CORS.Get(); cors != nil {
		for _, o := range cors.AllowedOrigins {
			if !strings.Contains(o, "*") {
				l.origins = append(l.origins, o)
			}
		}
	}
	return l
}

// loopback reports whether the endpoint can only be reached from this host.
func (cfg *Config) loopback() bool {
	if cfg.NetAddr.Transport == confignet.TransportTypeUnix {
		return true
	}
	host, _, err := net.SplitHostPort(cfg.NetAddr.Endpoint)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (a *AccessConfig) validate() error {
	switch {
	case a.Authenticator != nil && len(a.Tokens) > 0:
		return errors.New("access: set tokens or authenticator, not both")
	case a.Authenticator != nil:
		return nil
	case len(a.Tokens) == 0:
		return errors.New("access.tokens: at least one token is required, or set access.authenticator (remove access for an open loopback API)")
	}
	return access.Validate("access.tokens", a.Tokens)
}

// load returns the API's tokens: the inline list (token files read now) or the agentauth
// extension's.
func (a *AccessConfig) load(host component.Host) (*access.Set, error) {
	if a.Authenticator != nil {
		s, err := agentauthextension.Find(host, *a.Authenticator)
		if err != nil {
			return nil, fmt.Errorf("access.authenticator: %w", err)
		}
		return s, nil
	}
	return access.Load("access.tokens", a.Tokens)
}

// config converts the settings to a baseline configuration, naming the YAML key of a bad value.
func (b BaselineConfig) config() (baseline.Config, error) { return b.Settings.Config() }

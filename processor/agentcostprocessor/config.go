// Package agentcostprocessor provides the `agentcost` processor: it prices every LLM span in dollars
// from its token usage and a price table, attributes the cost to agent, team and run, normalises
// usage into the GenAI semantic-convention keys, and flags calls that cost several times their
// agent's baseline.
package agentcostprocessor

import (
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/component"

	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/costing"
	"github.com/agentcost/agentcost/internal/pricing"
)

// AttributeLevel selects which agentcost.* attributes the processor writes.
type AttributeLevel string

const (
	// AttributesLean writes the lean default set (cost, agent, model, team, flags).
	AttributesLean AttributeLevel = "lean"
	// AttributesDetailed adds the per-part costs, price source and tenant.
	AttributesDetailed AttributeLevel = "detailed"
)

// Config is the configuration of the agentcost processor.
type Config struct {
	// Prices selects the price table: the embedded default and user price files.
	Prices PricesConfig `mapstructure:"prices"`

	// Attributes is the attribute level: "lean" (default) or "detailed".
	Attributes AttributeLevel `mapstructure:"attributes"`

	// Normalize writes the GenAI semantic-convention usage, model and provider keys on spans whose
	// instrumentation reported them under other names (default true).
	Normalize bool `mapstructure:"normalize"`

	// InputExcludesCache lists the instrumentation dialects (and optionally providers) whose input
	// token count does not include cached tokens, such as Anthropic's raw usage.
	InputExcludesCache []CacheRule `mapstructure:"input_excludes_cache"`

	// AggregateOperations lists the operations (ai.operationId or span name) whose spans repeat
	// their children's usage; they are marked agentcost.aggregate and never priced. Empty keeps the
	// default list (the Vercel AI SDK's ai.generateText, ai.streamText, ai.generateObject,
	// ai.streamObject).
	AggregateOperations []string `mapstructure:"aggregate_operations"`

	// Fields overrides or extends how a field is read: field name (model, provider, input_tokens,
	// output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, agent, team, tenant,
	// run_id, action, service_tier) to an ordered list of OTTL value expressions; the first non-nil
	// result wins over the built-in keys.
	Fields map[string][]string `mapstructure:"fields"`

	// Condition is an OTTL condition selecting which spans are priced; empty prices every span that
	// carries usage.
	Condition string `mapstructure:"condition"`

	// Baseline configures the per-call baselines and the anomaly rule.
	Baseline BaselineConfig `mapstructure:"baseline"`

	// Auth says how spans of requests authenticated by an agentauth extension are attributed.
	Auth AuthConfig `mapstructure:"auth"`

	// Limits are the plausibility bounds of one span (token counts, cost); a span beyond them is
	// counted as malformed and not priced.
	Limits LimitsConfig `mapstructure:"limits"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// PricesConfig selects where prices come from.
type PricesConfig struct {
	// Embedded includes the embedded default table derived from the LiteLLM price map (default true).
	Embedded bool `mapstructure:"embedded"`
	// Files are user price files, LiteLLM JSON (.json) or agentcost YAML (.yaml, .yml), applied in
	// order over the embedded default: later files win.
	Files []string `mapstructure:"files"`
	// AllowMatch lists the kinds of non-exact match that may price a span (provider_prefix,
	// regional_prefix, vendor_prefix, version_suffix, dated_snapshot, case_insensitive,
	// provider_fallback; default: all). A span priced by a kind not listed is left unpriced,
	// marked agentcost.price.unknown and counted; an empty list allows exact keys only.
	AllowMatch []string `mapstructure:"allow_match"`
	// MaxFileBytes bounds each price file, checked on its size before it is read (default 64 MiB,
	// the bound every file the distribution loads shares); a larger file fails start-up.
	MaxFileBytes int64 `mapstructure:"max_file_bytes"`
	// ReportedCost says when a cost the span reports itself — gen_ai.usage.cost.amount (with
	// gen_ai.usage.cost.currency), OpenLIT's gen_ai.usage.cost, OpenInference's llm.cost.total —
	// is booked: ignore (default: the sender's word is never booked), prefer (book it whenever the
	// span has one) or only_when_unpriced (book it when the table cannot price the span). Only USD
	// is booked; the span carries agentcost.cost.source=reported, and the limits apply.
	ReportedCost string `mapstructure:"reported_cost"`
}

// denyMatch returns the match kinds AllowMatch does not list; Validate has checked the names.
func (c PricesConfig) denyMatch() pricing.MatchKind {
	allowed := pricing.MatchKind(0)
	for _, name := range c.AllowMatch {
		k, _ := pricing.ParseMatchKind(name)
		allowed |= k
	}
	return pricing.AllMatchKinds &^ allowed
}

// CacheRule marks usage whose input tokens exclude the cached parts.
type CacheRule struct {
	// Dialect is the instrumentation dialect: genai, genai_legacy, openllmetry, openinference,
	// vercel_ai or openlit; empty means any.
	Dialect string `mapstructure:"dialect"`
	// Provider restricts the rule to one provider (e.g. anthropic); empty means any.
	Provider string `mapstructure:"provider"`
}

// Modes of auth.mode.
const (
	// AuthModePrice prices spans, booking them to their authenticated sender (the default).
	AuthModePrice = "price"
	// AuthModeForward is an edge collector's: write the sender's subject on each resource as
	// agentcost.auth.subject, for the replicas behind to trust from this collector's forwarder
	// token, and price nothing.
	AuthModeForward = "forward"
)

// AuthConfig says how the processor uses the agentauth authentication of a request. Without an
// agentauth authenticator on the receiver there is none, and spans are attributed from their own
// attributes.
type AuthConfig struct {
	// Mode is price (default: price the spans; an agent or reviewer token's subject is the agent of
	// every span it sends, a forwarder's carried agentcost.auth.subject is trusted within its
	// agents list) or forward (an edge collector: carry the sender's subject to the replicas,
	// price nothing).
	Mode string `mapstructure:"mode"`
	// Required refuses (permanent error, nothing priced or booked) every batch that does not carry
	// an agentauth authentication: it catches an OTLP receiver without auth, or a component that
	// drops the request context (a batch processor) in front of this processor (default false).
	Required bool `mapstructure:"required"`
}

// BaselineConfig configures the per-(agent, model) baselines of cost per call: the switch, and
// the baseline settings the budget receiver shares (internal/baseline.Settings, squashed).
type BaselineConfig struct {
	// Enabled turns baselines and anomaly flags on (default true).
	Enabled bool `mapstructure:"enabled"`
	// Settings are the shared baseline keys (multiplier, warmup_calls, min_cost_usd, alpha, clip,
	// shift_calls, escalation_*, max_keys, storage).
	baseline.Settings `mapstructure:",squash"`
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration; messages name the YAML key.
func (cfg *Config) Validate() error {
	var errs error
	if cfg.Prices.MaxFileBytes < 1 {
		errs = errors.Join(errs, fmt.Errorf("prices.max_file_bytes: %d must be positive", cfg.Prices.MaxFileBytes))
	}
	switch cfg.Attributes {
	case AttributesLean, AttributesDetailed:
	default:
		errs = errors.Join(errs, fmt.Errorf("attributes: %q is not lean or detailed", cfg.Attributes))
	}
	if !cfg.Prices.Embedded && len(cfg.Prices.Files) == 0 {
		errs = errors.Join(errs, errors.New("prices: embedded is false and no files are given: nothing could be priced"))
	}
	for i, f := range cfg.Prices.Files {
		if f == "" {
			errs = errors.Join(errs, fmt.Errorf("prices.files[%d]: empty path", i))
		}
	}
	switch costing.ReportedCostMode(cfg.Prices.ReportedCost) {
	case costing.ReportedCostIgnore, costing.ReportedCostPrefer, costing.ReportedCostWhenUnpriced:
	default:
		errs = errors.Join(errs, fmt.Errorf("prices.reported_cost: %q is not ignore, prefer or only_when_unpriced", cfg.Prices.ReportedCost))
	}
	for i, name := range cfg.Prices.AllowMatch {
		if _, ok := pricing.ParseMatchKind(name); !ok {
			errs = errors.Join(errs, fmt.Errorf("prices.allow_match[%d]: %q is not a match kind (want one of %s)",
				i, name, strings.Join(pricing.MatchKindNames(), ", ")))
		}
	}
	for i, r := range cfg.InputExcludesCache {
		if r.Dialect == "" && r.Provider == "" {
			errs = errors.Join(errs, fmt.Errorf("input_excludes_cache[%d]: set dialect, provider or both", i))
		}
	}
	switch cfg.Auth.Mode {
	case AuthModePrice, AuthModeForward:
	default:
		errs = errors.Join(errs, fmt.Errorf("auth.mode: %q is not price or forward", cfg.Auth.Mode))
	}
	if err := cfg.Limits.validate(); err != nil {
		errs = errors.Join(errs, err)
	}
	if _, err := cfg.Baseline.Config(); err != nil {
		errs = errors.Join(errs, err)
	}
	return errs
}

package agentcostprocessor

import (
	"context"
	"fmt"
	"math"

	"go.uber.org/zap"

	"github.com/agentcost/agentcost/internal/costing"
	"github.com/agentcost/agentcost/internal/genai"
	"github.com/agentcost/agentcost/internal/money"
)

// Defaults of the limits block.
const (
	// DefaultMaxTokensPerCount is limits.max_tokens_per_count's default: the longest context any
	// model of the embedded price table accepts (max_input_tokens 10,485,760, Llama 4 Scout on
	// OCI, in the LiteLLM map of 2026-07). No single count of one call can honestly exceed it.
	DefaultMaxTokensPerCount = 10_485_760
	// DefaultMaxCostUSDPerSpan is limits.max_cost_usd_per_span's default.
	DefaultMaxCostUSDPerSpan = 500
)

// LimitsConfig are the plausibility bounds of one span. A span beyond them is not priced (so
// never booked), counted in otelcol_agentcost_spans_malformed_total with reason tokens_over_limit
// or cost_over_limit, passes through marked agentcost.malformed=<reason> (so the costledger
// exporter counts it on /metrics), and is named in a rate-limited warning.
type LimitsConfig struct {
	// MaxTokensPerCount bounds each token count of one span: input, output, cache read, cache
	// write and reasoning, and its seconds, pixels and characters (default 10485760, the longest context in the embedded price table; at
	// most 100000000, the hard cap above which a count is malformed in itself).
	MaxTokensPerCount int64 `mapstructure:"max_tokens_per_count"`
	// MaxCostUSDPerSpan bounds the priced cost of one span in dollars (default 500).
	MaxCostUSDPerSpan float64 `mapstructure:"max_cost_usd_per_span"`
}

// validate checks the limits; messages name the YAML key.
func (l LimitsConfig) validate() error {
	if l.MaxTokensPerCount < 1 || l.MaxTokensPerCount > genai.MaxTokens {
		return fmt.Errorf("limits.max_tokens_per_count: %d must be between 1 and %d", l.MaxTokensPerCount, int64(genai.MaxTokens))
	}
	if !(l.MaxCostUSDPerSpan > 0) || math.IsInf(l.MaxCostUSDPerSpan, 0) || l.MaxCostUSDPerSpan > money.MaxNanos.USD() {
		return fmt.Errorf("limits.max_cost_usd_per_span: %v must be above 0 and at most %v", l.MaxCostUSDPerSpan, money.MaxNanos.USD())
	}
	return nil
}

// pricerLimits converts the validated limits for the pricer.
func (l LimitsConfig) pricerLimits() (costing.Limits, error) {
	c, err := money.FromUSD(l.MaxCostUSDPerSpan)
	if err != nil {
		return costing.Limits{}, fmt.Errorf("limits.max_cost_usd_per_span: %w", err)
	}
	return costing.Limits{MaxTokensPerCount: l.MaxTokensPerCount, MaxCostPerSpan: c}, nil
}

// overLimit logs, at most every logInterval, the spans of a batch beyond the limits,
// naming their sender: the agent the span claimed, its service.name and, when the request was
// authenticated, the token's subject. The metric counts every one of them.
func (p *costProcessor) overLimit(ctx context.Context, st *costing.Stats) {
	if st.OverLimit == 0 {
		return
	}
	if !p.overLimitLog.allow() {
		return
	}
	fields := []zap.Field{zap.String("reason", st.OverLimitReason), zap.String("agent", st.OverLimitAgent),
		zap.String("service.name", st.OverLimitService), zap.Int64("spans", st.OverLimit),
		zap.Int64("max_tokens_per_count", p.cfg.Limits.MaxTokensPerCount),
		zap.Float64("max_cost_usd_per_span", p.cfg.Limits.MaxCostUSDPerSpan)}
	if id, authed := sender(ctx); authed {
		fields = append(fields, zap.String("sender", id.Subject), zap.String("role", string(id.Role)))
	}
	p.logger.Warn("Spans beyond the processor's limits were not priced or booked", fields...)
}

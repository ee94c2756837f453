package metadata

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/metric"
)

// NameSpansAgentOverridden is the name of the counter of spans whose claimed agent the
// authenticated sender overrode.
const NameSpansAgentOverridden = "otelcol_processor_agentcost_spans_agent_overridden"

// NameSpansUnauthenticated is the name of the counter of spans refused by auth.required.
const NameSpansUnauthenticated = "otelcol_processor_agentcost_spans_unauthenticated"

// NameSpansTeamOverridden is the name of the counter of spans booked to their agent token's
// default team instead of a team the token does not list.
const NameSpansTeamOverridden = "otelcol_processor_agentcost_spans_team_overridden"

// NameSpansForbidden is the name of the counter of spans refused because their token's role may
// not send spans (a reviewer token).
const NameSpansForbidden = "otelcol_processor_agentcost_spans_forbidden"

// TelemetryBuilder holds the processor's internal metrics, reported through the collector's own
// telemetry (service::telemetry::metrics).
type TelemetryBuilder struct {
	meter         metric.Meter
	mu            sync.Mutex
	registrations []metric.Registration

	// SpansPriced counts spans given a cost.
	SpansPriced metric.Int64Counter
	// SpansUnpriced counts spans with usage whose model matched no price (agentcost.price.unknown).
	SpansUnpriced metric.Int64Counter
	// PriceMatches counts spans whose price was found by a non-exact match (attributes model, match,
	// allowed); allowed=false spans were left unpriced by prices.allow_match.
	PriceMatches metric.Int64Counter
	// AggregatesSkipped counts spans that repeat their children's usage and were not priced.
	AggregatesSkipped metric.Int64Counter
	// SpansMalformed counts spans whose usage could not be read (attribute reason).
	SpansMalformed metric.Int64Counter
	// Anomalies counts per-call anomalies flagged.
	Anomalies metric.Int64Counter
	// Escalations counts LLM calls flagged as escalating (cost per call climbing steadily).
	Escalations metric.Int64Counter
	// LevelShifts counts sustained changes of an (agent, model) cost level learned by its baseline.
	LevelShifts metric.Int64Counter
	// CostUSD sums the dollars priced.
	CostUSD metric.Float64Counter
	// SpansAgentOverridden counts spans booked to their authenticated sender (or a forwarder's
	// subject) instead of the agent they claimed (attributes sender, reason).
	SpansAgentOverridden metric.Int64Counter
	// SpansUnauthenticated counts spans refused by auth.required.
	SpansUnauthenticated metric.Int64Counter
	// SpansTeamOverridden counts spans booked to their agent token's default team instead of the
	// team they claimed, which the token does not list (attribute sender).
	SpansTeamOverridden metric.Int64Counter
	// SpansForbidden counts spans refused because their token's role sends no spans (attributes
	// sender, role).
	SpansForbidden metric.Int64Counter
	// ToolCallsPriced counts execute_tool spans priced from the price file's tools.
	ToolCallsPriced metric.Int64Counter
	// SpansReportedCost counts spans booked at the cost they reported (prices.reported_cost).
	SpansReportedCost metric.Int64Counter
	// SpansUnpricedUnits counts priced spans reporting units without a price for them
	// (agentcost.price.unpriced_units).
	SpansUnpricedUnits metric.Int64Counter
	// BaselineEvictions counts baselines evicted at the key bound.
	BaselineEvictions metric.Int64ObservableCounter
	// PriceEntries is the number of price entries loaded.
	PriceEntries metric.Int64ObservableGauge
}

// NewTelemetryBuilder creates the processor's instruments on the settings' meter provider.
func NewTelemetryBuilder(settings component.TelemetrySettings) (*TelemetryBuilder, error) {
	b := &TelemetryBuilder{meter: settings.MeterProvider.Meter(ScopeName)}
	var err, errs error
	b.SpansPriced, err = b.meter.Int64Counter("otelcol_processor_agentcost_spans_priced",
		metric.WithDescription("Number of LLM spans given a cost."), metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.SpansUnpriced, err = b.meter.Int64Counter("otelcol_processor_agentcost_spans_unpriced",
		metric.WithDescription("Number of spans with token usage whose model matched no price."), metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.PriceMatches, err = b.meter.Int64Counter("otelcol_processor_agentcost_price_matches",
		metric.WithDescription("Number of spans whose price was found by a non-exact match, per matched model and match kind; allowed=false: left unpriced by prices.allow_match."), metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.AggregatesSkipped, err = b.meter.Int64Counter("otelcol_processor_agentcost_aggregates_skipped",
		metric.WithDescription("Number of aggregate spans that repeat their children's usage, marked and not priced."), metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.SpansMalformed, err = b.meter.Int64Counter("otelcol_processor_agentcost_spans_malformed",
		metric.WithDescription("Number of spans whose usage attributes were malformed; passed through unpriced."), metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.Anomalies, err = b.meter.Int64Counter("otelcol_processor_agentcost_anomalies",
		metric.WithDescription("Number of LLM calls flagged as costing at least the multiplier times their baseline."), metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.Escalations, err = b.meter.Int64Counter("otelcol_processor_agentcost_escalations",
		metric.WithDescription("Number of LLM calls flagged as escalating: the cost per call of their agent and model climbs steadily."), metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.LevelShifts, err = b.meter.Int64Counter("otelcol_processor_agentcost_level_shifts",
		metric.WithDescription("Number of sustained changes of an agent and model's cost level learned by its baseline."), metric.WithUnit("{event}"))
	errs = errors.Join(errs, err)
	b.CostUSD, err = b.meter.Float64Counter("otelcol_processor_agentcost_cost_usd",
		metric.WithDescription("Dollars priced on LLM spans."), metric.WithUnit("USD"))
	errs = errors.Join(errs, err)
	b.SpansAgentOverridden, err = b.meter.Int64Counter(NameSpansAgentOverridden,
		metric.WithDescription("Number of spans booked to their authenticated sender instead of the agent they claimed (reason agent_token), or to a forwarder's subject because its token may not send for the agent (reason forwarder_agents)."),
		metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.SpansUnauthenticated, err = b.meter.Int64Counter(NameSpansUnauthenticated,
		metric.WithDescription("Number of spans refused because auth.required is set and their request carried no agentauth authentication."),
		metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.SpansTeamOverridden, err = b.meter.Int64Counter(NameSpansTeamOverridden,
		metric.WithDescription("Number of spans booked to their agent token's default team instead of a team the token does not list."),
		metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.SpansForbidden, err = b.meter.Int64Counter(NameSpansForbidden,
		metric.WithDescription("Number of spans refused because their token's role may not send spans (a reviewer token)."),
		metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.ToolCallsPriced, err = b.meter.Int64Counter("otelcol_processor_agentcost_tool_calls_priced",
		metric.WithDescription("Number of tool and MCP call spans (execute_tool) priced from the price file's tools."), metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.SpansReportedCost, err = b.meter.Int64Counter("otelcol_processor_agentcost_spans_reported_cost",
		metric.WithDescription("Number of spans booked at the cost they reported themselves (prices.reported_cost)."), metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.SpansUnpricedUnits, err = b.meter.Int64Counter("otelcol_processor_agentcost_spans_unpriced_units",
		metric.WithDescription("Number of priced spans reporting units (web-search queries, images, tool units) their price has no price for."), metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.BaselineEvictions, err = b.meter.Int64ObservableCounter("otelcol_processor_agentcost_baseline_evictions",
		metric.WithDescription("Number of per-call baselines evicted at the max_keys bound."), metric.WithUnit("{baseline}"))
	errs = errors.Join(errs, err)
	b.PriceEntries, err = b.meter.Int64ObservableGauge("otelcol_processor_agentcost_price_entries",
		metric.WithDescription("Number of price entries loaded."), metric.WithUnit("{entry}"))
	errs = errors.Join(errs, err)
	return b, errs
}

// RegisterCallbacks reports the observable instruments from the given functions.
func (b *TelemetryBuilder) RegisterCallbacks(evictions, entries func() int64) error {
	reg, err := b.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(b.BaselineEvictions, evictions())
		o.ObserveInt64(b.PriceEntries, entries())
		return nil
	}, b.BaselineEvictions, b.PriceEntries)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.registrations = append(b.registrations, reg)
	return nil
}

// Shutdown unregisters the callbacks.
func (b *TelemetryBuilder) Shutdown() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.registrations {
		_ = r.Unregister()
	}
	b.registrations = nil
}

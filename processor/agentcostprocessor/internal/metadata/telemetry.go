package metadata

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/metric"
)

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
	// AggregatesSkipped counts spans that repeat their children's usage and were not priced.
	AggregatesSkipped metric.Int64Counter
	// SpansMalformed counts spans whose usage could not be read (attribute reason).
	SpansMalformed metric.Int64Counter
	// Anomalies counts per-call anomalies flagged.
	Anomalies metric.Int64Counter
	// CostUSD sums the dollars priced.
	CostUSD metric.Float64Counter
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
	b.AggregatesSkipped, err = b.meter.Int64Counter("otelcol_processor_agentcost_aggregates_skipped",
		metric.WithDescription("Number of aggregate spans that repeat their children's usage, marked and not priced."), metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.SpansMalformed, err = b.meter.Int64Counter("otelcol_processor_agentcost_spans_malformed",
		metric.WithDescription("Number of spans whose usage attributes were malformed; passed through unpriced."), metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.Anomalies, err = b.meter.Int64Counter("otelcol_processor_agentcost_anomalies",
		metric.WithDescription("Number of LLM calls flagged as costing at least the multiplier times their baseline."), metric.WithUnit("{span}"))
	errs = errors.Join(errs, err)
	b.CostUSD, err = b.meter.Float64Counter("otelcol_processor_agentcost_cost_usd",
		metric.WithDescription("Dollars priced on LLM spans."), metric.WithUnit("USD"))
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

package agentcostprocessor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/costing"
	"github.com/agentcost/agentcost/internal/genai"
	"github.com/agentcost/agentcost/internal/pricing"
	"github.com/agentcost/agentcost/processor/agentcostprocessor/internal/metadata"
)

// baselineKey is the storage key of the baseline snapshot.
const baselineKey = "agentcost.baselines.v1"

// snapshotInterval is how often baselines are saved when a storage extension is configured.
const snapshotInterval = time.Minute

type costProcessor struct {
	cfg       *Config
	logger    *zap.Logger
	id        component.ID
	pricer    *costing.Pricer
	telemetry *metadata.TelemetryBuilder

	keeper *baseline.Keeper

	// The warnings, each kind at most once every logInterval: overridden agents, spans booked to
	// their token's default team, batches refused for their token's role, spans beyond the limits,
	// malformed spans and spans of unknown models.
	overrideLog, teamLog, forbiddenLog, overLimitLog, malformedLog, unknownLog logLimiter
}

// newCostProcessor builds the price table, extractor, overrides and baselines. Every configuration
// problem — an unreadable or invalid price file, a bad OTTL expression — fails here, at start-up.
func newCostProcessor(set processor.Settings, cfg *Config) (*costProcessor, error) {
	table, err := pricing.LoadLimit(cfg.Prices.Embedded, cfg.Prices.MaxFileBytes, cfg.Prices.Files...)
	if err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	var rules []string
	for _, r := range cfg.InputExcludesCache {
		d, prov := r.Dialect, r.Provider
		if d == "" {
			d = "*"
		}
		if prov != "" {
			d += "/" + prov
		}
		rules = append(rules, d)
	}
	ex, err := genai.NewExtractor(genai.Options{InputExcludesCache: rules, AggregateOperations: cfg.AggregateOperations})
	if err != nil {
		return nil, fmt.Errorf("input_excludes_cache: %w", err)
	}
	overrides, err := genai.NewOverrides(genai.OverridesConfig{Fields: cfg.Fields, Condition: cfg.Condition}, ex,
		set.TelemetrySettings, genai.WithFunctions(ottlConverters()))
	if err != nil {
		return nil, err
	}
	limits, err := cfg.Limits.pricerLimits()
	if err != nil {
		return nil, err
	}
	p := &costProcessor{
		cfg:    cfg,
		logger: set.Logger,
		id:     set.ID,
		pricer: &costing.Pricer{
			Table:     table,
			Extractor: ex,
			Overrides: overrides,
			Normalize: cfg.Normalize,
			Detailed:  cfg.Attributes == AttributesDetailed,
			Limits:    limits,
			DenyMatch: cfg.Prices.denyMatch(),
			// Validate checked the mode.
			ReportedCost: costing.ReportedCostMode(cfg.Prices.ReportedCost),
		},
	}
	if cfg.Baseline.Enabled {
		bcfg, err := cfg.Baseline.Config()
		if err != nil {
			return nil, err
		}
		store, err := baseline.New(bcfg)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		p.pricer.Baselines = store
	}
	p.telemetry, err = metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, fmt.Errorf("creating telemetry: %w", err)
	}
	entries := int64(table.Len())
	err = errors.Join(
		p.telemetry.RegisterProcessorAgentcostBaselineEvictionsCallback(func(_ context.Context, o metric.Int64Observer) error {
			var n int64
			if p.pricer.Baselines != nil {
				n = int64(p.pricer.Baselines.Evictions())
			}
			o.Observe(n)
			return nil
		}),
		p.telemetry.RegisterProcessorAgentcostPriceEntriesCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(entries)
			return nil
		}))
	if err != nil {
		p.telemetry.Shutdown()
		return nil, fmt.Errorf("registering telemetry callbacks: %w", err)
	}
	return p, nil
}

func (p *costProcessor) start(ctx context.Context, host component.Host) error {
	if p.cfg.Baseline.Storage != nil && p.pricer.Baselines != nil {
		k, err := baseline.StartKeeper(ctx, host, *p.cfg.Baseline.Storage, component.KindProcessor, p.id,
			p.pricer.Baselines, baselineKey, snapshotInterval, p.logger)
		if err != nil {
			return err
		}
		p.keeper = k
	}
	var layers []zap.Field
	var skips []pricing.SkipCount
	for _, l := range p.pricer.Table.Layers() {
		layers = append(layers, zap.Int(l.Source, l.Loaded))
		skips = append(skips, l.Skips...)
	}
	// One line: the entries each file lists without token prices, by reason; `agentcostctl prices
	// lint FILE` lists them.
	p.logger.Info("price files: entries skipped (no token prices)", zap.String("skipped", pricing.FormatSkips(pricing.MergeSkipCounts(skips))))
	p.logger.Info("agentcost processor started",
		zap.Int("price_keys", p.pricer.Table.Len()), zap.Dict("price_layers", layers...),
		zap.Bool("baselines", p.pricer.Baselines != nil), zap.String("attributes", string(p.cfg.Attributes)))
	return nil
}

func (p *costProcessor) shutdown(ctx context.Context) error {
	var err error
	if p.keeper != nil {
		err = p.keeper.Stop(ctx)
		p.keeper = nil
	}
	if p.telemetry != nil {
		p.telemetry.Shutdown()
	}
	p.logger.Info("agentcost processor stopped")
	return err
}

func (p *costProcessor) processTraces(ctx context.Context, td ptrace.Traces) (ptrace.Traces, error) {
	id, authed := sender(ctx)
	if !authed && p.cfg.Auth.Required {
		return td, p.unauthenticated(ctx, td)
	}
	if authed && !sendsSpans(id) {
		return td, p.forbidden(ctx, id, td)
	}
	if p.cfg.Auth.Mode == AuthModeForward {
		p.forward(ctx, td)
		return td, nil
	}
	st := p.pricer.ProcessTracesFor(ctx, td, attribution(id, authed))
	p.overridden(ctx, id, &st)
	p.teamOverridden(ctx, id, &st)
	p.overLimit(ctx, &st)
	p.logUnpriced(ctx, td, &st)
	t := p.telemetry
	if st.Priced > 0 {
		t.ProcessorAgentcostSpansPriced.Add(ctx, st.Priced)
		t.ProcessorAgentcostCostUsd.Add(ctx, st.Cost.USD())
	}
	for _, c := range [...]struct {
		counter metric.Int64Counter
		n       int64
	}{
		{t.ProcessorAgentcostSpansUnpriced, st.Unpriced}, {t.ProcessorAgentcostAggregatesSkipped, st.Aggregates}, {t.ProcessorAgentcostAnomalies, st.Anomalies},
		{t.ProcessorAgentcostEscalations, st.Escalations}, {t.ProcessorAgentcostLevelShifts, st.LevelShifts}, {t.ProcessorAgentcostToolCallsPriced, st.Tools},
		{t.ProcessorAgentcostSpansReportedCost, st.Reported}, {t.ProcessorAgentcostSpansUnpricedUnits, st.UnpricedUnits},
	} {
		if c.n > 0 {
			c.counter.Add(ctx, c.n)
		}
	}
	for m, n := range st.Matches {
		t.ProcessorAgentcostPriceMatches.Add(ctx, n, metric.WithAttributes(attribute.String("model", m.Model),
			attribute.String("match", m.Kind.String()), attribute.Bool("allowed", m.Allowed)))
	}
	for reason, n := range st.Malformed {
		t.ProcessorAgentcostSpansMalformed.Add(ctx, n, metric.WithAttributes(attribute.String("reason", reason)))
	}
	if st.OverrideErrors > 0 {
		t.ProcessorAgentcostSpansMalformed.Add(ctx, st.OverrideErrors, metric.WithAttributes(attribute.String("reason", "override_error")))
	}
	return td, nil
}

//go:generate ../../internal/tools/mdatagen.sh metadata.yaml

package agentcostprocessor

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"

	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/boundedfile"
	"github.com/agentcost/agentcost/internal/costing"
	"github.com/agentcost/agentcost/internal/pricing"
	"github.com/agentcost/agentcost/processor/agentcostprocessor/internal/metadata"
)

// NewFactory returns the factory of the agentcost processor.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		metadata.Type,
		createDefaultConfig,
		processor.WithTraces(createTraces, metadata.TracesStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		Prices: PricesConfig{Embedded: true, AllowMatch: pricing.MatchKindNames(), MaxFileBytes: boundedfile.DefaultLimit,
			ReportedCost: string(costing.ReportedCostIgnore)},
		Attributes: AttributesLean,
		Normalize:  true,
		Baseline:   BaselineConfig{Enabled: true, Settings: baseline.DefaultSettings(10)},
		Auth:       AuthConfig{Mode: AuthModePrice},
		Limits:     LimitsConfig{MaxTokensPerCount: DefaultMaxTokensPerCount, MaxCostUSDPerSpan: DefaultMaxCostUSDPerSpan},
	}
}

func createTraces(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	p, err := newCostProcessor(set, cfg.(*Config))
	if err != nil {
		return nil, err
	}
	return processorhelper.NewTraces(ctx, set, cfg, next, p.processTraces,
		processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true}),
		processorhelper.WithStart(p.start),
		processorhelper.WithShutdown(p.shutdown),
	)
}

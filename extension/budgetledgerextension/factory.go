//go:generate ../../internal/tools/mdatagen.sh metadata.yaml

package budgetledgerextension

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/agentcost/agentcost/extension/budgetledgerextension/internal/metadata"
	"github.com/agentcost/agentcost/internal/ledger"
)

// NewFactory returns the factory of the budgetledger extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(metadata.Type, createDefaultConfig, create, metadata.ExtensionStability)
}

func createDefaultConfig() component.Config {
	return &Config{
		Config:   ledger.NewDefaultConfig(),
		Evidence: EvidenceConfig{Directory: "./data/evidence", AnchorInterval: 100 * time.Millisecond},
	}
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newBudgetLedger(set, cfg.(*Config))
}

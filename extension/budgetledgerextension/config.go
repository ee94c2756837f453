// Package budgetledgerextension provides the `budgetledger` extension: it owns agentcost's budget
// ledger (embedded on local disk, or Redis shared by several collectors) and the cost-evidence
// writer, which the costledger exporter and the budget receiver reference by component ID.
package budgetledgerextension

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
)

// Config is the configuration of the budgetledger extension.
type Config struct {
	// Config is the ledger: backend (embedded | redis), directory, redis, time_zone (governs every
	// budget window), idempotency_horizon and retention settings.
	ledger.Config `mapstructure:",squash"`

	// Evidence configures the append-only, hash-chained cost-evidence writer.
	Evidence EvidenceConfig `mapstructure:"evidence"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// EvidenceConfig configures the cost-evidence writer (one chain per collector process).
type EvidenceConfig struct {
	// Directory holds the evidence files (evidence-000001.jsonl, ...). Default ./data/evidence.
	Directory string `mapstructure:"directory"`
	// Sync is the fsync policy: always, interval or never. Unset, it follows the ledger's
	// durability: always with "power", interval with "process" (every sync_interval of the ledger
	// unless evidence.sync_interval is set), so that one setting says what an answered decision
	// survives.
	Sync string `mapstructure:"sync"`
	// SyncInterval is the fsync period of the interval policy (default 1s, or the ledger's
	// sync_interval when the policy follows durability "process").
	SyncInterval time.Duration `mapstructure:"sync_interval"`
	// MaxFileBytes rotates to a new file past this size; the chain continues (default 64 MiB).
	MaxFileBytes int64 `mapstructure:"max_file_bytes"`
	// AnchorInterval is the shortest time between two writes of the chain's head (seq and hash)
	// into the ledger (default 100ms). Records made durable within the last interval can be cut
	// from the chain's end without the anchor noticing.
	AnchorInterval time.Duration `mapstructure:"anchor_interval"`
	// AcceptTruncatedChain starts the collector even when the evidence chain ends behind the head
	// anchored in the ledger (records were cut from its end, or the files removed). The default,
	// false, refuses to start. When set, the start is logged as an error, the gauge
	// otelcol_extension_budgetledger_evidence_chain_truncated is 1 and the anchor is reset to the
	// chain's head: set it deliberately, for one start, after investigating.
	AcceptTruncatedChain bool `mapstructure:"accept_truncated_chain"`
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration; messages name the YAML key.
func (cfg *Config) Validate() error {
	errs := cfg.Config.Validate()
	if strings.TrimSpace(cfg.Evidence.Directory) == "" {
		errs = errors.Join(errs, errors.New("evidence.directory: required"))
	}
	if err := cfg.evidenceOptions().Validate(); err != nil {
		errs = errors.Join(errs, fmt.Errorf("evidence.%w", err))
	}
	if cfg.Evidence.AnchorInterval <= 0 {
		errs = errors.Join(errs, fmt.Errorf("evidence.anchor_interval: %v must be positive", cfg.Evidence.AnchorInterval))
	}
	return errs
}

func (cfg *Config) evidenceOptions() evidence.Options {
	sync, interval := evidence.SyncPolicy(cfg.Evidence.Sync), cfg.Evidence.SyncInterval
	if sync == "" {
		sync = evidence.SyncAlways
		if cfg.Durability == ledger.DurabilityProcess {
			sync = evidence.SyncInterval
			if interval == 0 {
				interval = cfg.SyncInterval
			}
		}
	}
	return evidence.Options{
		Sync:         sync,
		SyncInterval: interval,
		MaxFileBytes: cfg.Evidence.MaxFileBytes,
	}
}

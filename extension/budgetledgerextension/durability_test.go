package budgetledgerextension

import (
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
)

// An unset evidence.sync follows the ledger's durability; a set one is kept as written.
func TestEvidenceSyncFollowsDurability(t *testing.T) {
	for _, c := range []struct {
		name         string
		durability   string
		sync         string
		interval     time.Duration
		wantSync     evidence.SyncPolicy
		wantInterval time.Duration
	}{
		{"power", ledger.DurabilityPower, "", 0, evidence.SyncAlways, 0},
		{"process", ledger.DurabilityProcess, "", 0, evidence.SyncInterval, 250 * time.Millisecond},
		{"process, own interval", ledger.DurabilityProcess, "", 2 * time.Second, evidence.SyncInterval, 2 * time.Second},
		{"process, sync set", ledger.DurabilityProcess, "always", 0, evidence.SyncAlways, 0},
		{"power, sync set", ledger.DurabilityPower, "never", 0, evidence.SyncNever, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig().(*Config)
			cfg.Durability, cfg.SyncInterval = c.durability, 250*time.Millisecond
			cfg.Evidence.Sync, cfg.Evidence.SyncInterval = c.sync, c.interval
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			o := cfg.evidenceOptions()
			if o.Sync != c.wantSync || o.SyncInterval != c.wantInterval {
				t.Errorf("evidence sync %q every %v, want %q every %v", o.Sync, o.SyncInterval, c.wantSync, c.wantInterval)
			}
		})
	}
}

package budgetledgerextension

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/confmap"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/testutil/readmetest"
)

// TestREADMEConfigs loads every extension configuration the README shows into the Config and
// validates it.
func TestREADMEConfigs(t *testing.T) {
	// Resolved as the collector resolves --config, ${env:REDIS_PASSWORD} included: an unquoted
	// ${...} in a flow map is a YAML error a string replacement would hide (issue 13).
	t.Setenv("REDIS_PASSWORD", "secret")
	t.Setenv("REDIS_SENTINEL_PASSWORD", "sentinel-secret")
	var cfgs []*Config
	for _, b := range readmetest.Blocks(t, "README.md", "yaml") {
		conf, err := readmetest.Resolve(t, b)
		if err != nil {
			t.Fatalf("%s: README block does not load: %v\n%s", b.Where(), err, b.Text)
		}
		raw, err := conf.Sub("extensions::budgetledger")
		if err != nil || len(raw.AllKeys()) == 0 {
			continue
		}
		block := b.Text
		cfg := createDefaultConfig().(*Config)
		if err := raw.Unmarshal(cfg); err != nil {
			t.Fatalf("README config does not load: %v\n%s", err, block)
		}
		if err := confmap.Validate(cfg); err != nil {
			t.Fatalf("README config invalid: %v\n%s", err, block)
		}
		cfgs = append(cfgs, cfg)
	}
	if len(cfgs) != 4 {
		t.Fatalf("found %d budgetledger configurations in the README, want 4", len(cfgs))
	}
	if r := cfgs[2].Redis; r.Mode != ledger.RedisModeSentinel || len(r.SentinelAddresses) != 3 || r.WaitForReplicas.Replicas != 1 {
		t.Errorf("sentinel example: %+v", r)
	}
	if r := cfgs[3].Redis; r.Mode != ledger.RedisModeCluster || len(r.Addresses) != 3 || r.TLS == nil {
		t.Errorf("cluster example: %+v", r)
	}
	if string(cfgs[0].Redis.Password) != "secret" {
		t.Errorf("redis example: password %q, want the expanded ${env:REDIS_PASSWORD}", cfgs[0].Redis.Password)
	}
	if cfgs[1].Evidence.AnchorInterval != 250*time.Millisecond {
		t.Errorf("anchor example: anchor_interval %v", cfgs[1].Evidence.AnchorInterval)
	}
	if def := createDefaultConfig().(*Config); def.Evidence.AnchorInterval != 100*time.Millisecond || def.Evidence.AcceptTruncatedChain {
		t.Errorf("defaults differ from the README: %+v", def.Evidence)
	}
}

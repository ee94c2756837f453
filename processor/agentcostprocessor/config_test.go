package agentcostprocessor

import (
	"strings"
	"testing"

	"go.opentelemetry.io/collector/confmap"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/testutil/configtest"
)

func loadConfig(t *testing.T, name string) *Config {
	t.Helper()
	return configtest.Load[*Config](t, NewFactory(), name)
}

func TestLoadConfig(t *testing.T) {
	def := loadConfig(t, "")
	if err := confmap.Validate(def); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	if !def.Prices.Embedded || def.Attributes != AttributesLean || !def.Normalize || !def.Baseline.Enabled ||
		def.Baseline.Multiplier != 3 || def.Baseline.WarmupCalls != 10 || def.Baseline.MinCostUSD != 0.01 {
		t.Fatalf("zero config is not the documented default: %+v", def)
	}

	c := loadConfig(t, "custom")
	if err := confmap.Validate(c); err != nil {
		t.Fatalf("custom config invalid: %v", err)
	}
	if c.Attributes != AttributesDetailed || c.Normalize || len(c.Prices.Files) != 1 ||
		c.InputExcludesCache[0] != (CacheRule{Dialect: "openinference", Provider: "anthropic"}) ||
		c.Fields["agent"][0] != `resource.attributes["k8s.deployment.name"]` ||
		c.Baseline.Multiplier != 4 || c.Baseline.MaxKeys != 500 || c.Baseline.Storage.String() != "file_storage" ||
		strings.Join(c.Prices.AllowMatch, ",") != "provider_prefix,dated_snapshot" {
		t.Fatalf("custom config not read: %+v", c)
	}
	if bc, err := c.Baseline.Config(); err != nil || bc.WarmUp != 20 || bc.Clip != 0.1 || bc.ShiftCalls != 12 ||
		bc.EscalationCalls != 6 || bc.EscalationGrowth != 0.03 || bc.EscalationRatio != 2 || bc.Floor != money.NanosPerUSD/20 {
		t.Errorf("custom baseline settings convert to %+v, %v", bc, err)
	}

	err := confmap.Validate(loadConfig(t, "bad"))
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, key := range []string{"prices.allow_match[0]:", "prices.max_file_bytes:", "attributes:", "baseline.multiplier:", "baseline.warmup_calls:", "baseline.alpha:", "baseline.max_keys:"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
	// The shared baseline settings are validated once, not again by the collector's config walk.
	if n := strings.Count(err.Error(), "baseline.multiplier:"); n != 1 {
		t.Errorf("baseline.multiplier reported %d times: %v", n, err)
	}
}

func TestValidateNothingToPrice(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Prices.Embedded = false
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "prices:") {
		t.Fatalf("want a prices: error, got %v", err)
	}
}

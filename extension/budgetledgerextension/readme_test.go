package budgetledgerextension

import (
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/confmap"
	"go.yaml.in/yaml/v3"
)

// TestREADMEConfigs loads every extension configuration the README shows into the Config and
// validates it.
func TestREADMEConfigs(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cfgs []*Config
	for _, part := range strings.Split(string(data), "```yaml\n")[1:] {
		end := strings.Index(part, "```")
		if end < 0 {
			t.Fatal("unterminated yaml block")
		}
		block := strings.ReplaceAll(part[:end], "${env:REDIS_PASSWORD}", "secret")
		var doc struct {
			Extensions map[string]map[string]any `yaml:"extensions"`
		}
		if err := yaml.Unmarshal([]byte(block), &doc); err != nil {
			t.Fatalf("README block does not parse: %v\n%s", err, block)
		}
		raw, ok := doc.Extensions["budgetledger"]
		if !ok {
			continue
		}
		cfg := createDefaultConfig().(*Config)
		if err := confmap.NewFromStringMap(raw).Unmarshal(cfg); err != nil {
			t.Fatalf("README config does not load: %v\n%s", err, block)
		}
		if err := confmap.Validate(cfg); err != nil {
			t.Fatalf("README config invalid: %v\n%s", err, block)
		}
		cfgs = append(cfgs, cfg)
	}
	if len(cfgs) != 2 {
		t.Fatalf("found %d budgetledger configurations in the README, want 2", len(cfgs))
	}
	if cfgs[1].Evidence.AnchorInterval != 250*time.Millisecond {
		t.Errorf("anchor example: anchor_interval %v", cfgs[1].Evidence.AnchorInterval)
	}
	if def := createDefaultConfig().(*Config); def.Evidence.AnchorInterval != 100*time.Millisecond || def.Evidence.AcceptTruncatedChain {
		t.Errorf("defaults differ from the README: %+v", def.Evidence)
	}
}

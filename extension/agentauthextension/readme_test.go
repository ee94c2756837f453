package agentauthextension

import (
	"os"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/confmap"
	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/internal/access"
)

// TestREADMEConfigs loads the extension configuration the README shows and validates it.
func TestREADMEConfigs(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, part := range strings.Split(string(data), "```yaml\n")[1:] {
		end := strings.Index(part, "```")
		if end < 0 {
			t.Fatal("unterminated yaml block")
		}
		var doc struct {
			Extensions map[string]map[string]any `yaml:"extensions"`
		}
		if err := yaml.Unmarshal([]byte(part[:end]), &doc); err != nil {
			t.Fatalf("README block does not parse: %v\n%s", err, part[:end])
		}
		raw, ok := doc.Extensions["agentauth"]
		if !ok {
			continue
		}
		cfg := createDefaultConfig().(*Config)
		if err := confmap.NewFromStringMap(raw).Unmarshal(cfg); err != nil {
			t.Fatalf("README config does not load: %v", err)
		}
		if err := confmap.Validate(cfg); err != nil {
			t.Fatalf("README config invalid: %v", err)
		}
		roles := map[access.Role]int{}
		for _, tok := range cfg.Tokens {
			roles[tok.Role]++
		}
		if roles[access.RoleAgent] == 0 || roles[access.RoleReviewer] == 0 || roles[access.RoleForwarder] != 2 {
			t.Errorf("README example roles %v, want every role and both forwarder shapes", roles)
		}
		for _, tok := range cfg.Tokens {
			if tok.Role == access.RoleAgent && len(tok.Teams) == 0 {
				t.Errorf("README agent token %q lists no teams (production configs should)", tok.Subject)
			}
		}
		found++
	}
	if found != 1 {
		t.Fatalf("found %d agentauth configurations in the README, want 1", found)
	}
}

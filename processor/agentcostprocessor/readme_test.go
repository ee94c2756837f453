package agentcostprocessor

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/confmap"
	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/internal/pricing"
)

// readmeBlocks returns the README's fenced yaml blocks.
func readmeBlocks(t *testing.T) (string, []string) {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, part := range strings.Split(string(data), "```yaml\n")[1:] {
		end := strings.Index(part, "```")
		if end < 0 {
			t.Fatal("unterminated yaml block")
		}
		blocks = append(blocks, part[:end])
	}
	return string(data), blocks
}

// TestREADMEConfigs loads every processor configuration the README shows into the processor's
// Config and validates it, and parses its price-file example.
func TestREADMEConfigs(t *testing.T) {
	_, blocks := readmeBlocks(t)
	configs := 0
	for _, b := range blocks {
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(b), &doc); err != nil {
			t.Fatalf("README block does not parse: %v\n%s", err, b)
		}
		if procs, ok := doc["processors"].(map[string]any); ok {
			raw, _ := procs["agentcost"].(map[string]any)
			cfg := createDefaultConfig().(*Config)
			if err := confmap.NewFromStringMap(raw).Unmarshal(cfg); err != nil {
				t.Fatalf("README config does not load: %v\n%s", err, b)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("README config invalid: %v\n%s", err, b)
			}
			configs++
			continue
		}
		if _, ok := doc["models"]; ok {
			l, err := pricing.ParseYAML([]byte(b), "readme.yaml")
			if err != nil {
				t.Fatal(err)
			}
			def, err := pricing.DefaultLayer()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pricing.Build(def, l); err != nil {
				t.Fatal(err)
			}
		}
	}
	if configs < 2 {
		t.Fatalf("found %d processor configurations in the README", configs)
	}
}

// TestREADMEMatchingTable checks the README's matching table against the embedded table.
func TestREADMEMatchingTable(t *testing.T) {
	readme, _ := readmeBlocks(t)
	start := strings.Index(readme, "| span model (provider) |")
	if start < 0 {
		t.Fatal("no matching table in the README")
	}
	table, err := pricing.Default()
	if err != nil {
		t.Fatal(err)
	}
	code := regexp.MustCompile("`([^`]+)`")
	rows := 0
	for _, line := range strings.Split(readme[start:], "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		names := code.FindAllStringSubmatch(cells[0], -1)
		priced := code.FindStringSubmatch(cells[1])
		wantKind := strings.Trim(strings.TrimSpace(cells[2]), "`")
		if strings.Contains(cells[1], "unpriced") {
			for _, n := range names {
				name := strings.TrimSuffix(n[1], "…") + "gpt-4o"
				if strings.HasSuffix(n[1], "/*") || !strings.HasSuffix(n[1], "…") {
					name = n[1]
				}
				if m := table.Explain(name, ""); m.Entry != nil {
					t.Errorf("%s: priced as %s, README says unpriced", name, m.Key)
				}
			}
			rows++
			continue
		}
		model, provider := names[0][1], ""
		if len(names) > 1 {
			provider = names[1][1]
		}
		key := model
		if priced != nil {
			key = priced[1]
		}
		m := table.Explain(model, provider)
		if m.Entry == nil || m.Key != key {
			t.Errorf("%s (%s): matched %q, README says %q", model, provider, m.Key, key)
		}
		if wantKind == "—" {
			wantKind = "exact"
		}
		if m.Kind.String() != wantKind {
			t.Errorf("%s: kind %s, README says %s", model, m.Kind, wantKind)
		}
		rows++
	}
	if rows != 11 {
		t.Fatalf("checked %d rows", rows)
	}
}

package main

import (
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"

	"github.com/agentcost/agentcost/internal/testutil/readmetest"
)

// envRef finds the ${env:VAR} and ${VAR} references of a YAML block.
var envRef = regexp.MustCompile(`\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}`)

// TestDocsYAMLLoads runs every ```yaml block of every Markdown document in the repository through
// the distribution's config loader: the block is resolved as the collector resolves --config
// (file and env providers, ${env:VAR} expanded: a YAML a user could not load fails), and each
// component configuration under receivers, processors, exporters, extensions and connectors is
// unmarshalled onto its factory's defaults and validated. A component type the distribution lacks
// fails too. Blocks with none of these sections (price files, policies, manifests) must still
// resolve.
func TestDocsYAMLLoads(t *testing.T) {
	factories, err := components()
	if err != nil {
		t.Fatal(err)
	}
	type factory interface {
		Type() component.Type
		CreateDefaultConfig() component.Config
	}
	lookup := map[string]func(component.Type) (factory, bool){
		"receivers":  func(typ component.Type) (factory, bool) { f, ok := factories.Receivers[typ]; return f, ok },
		"processors": func(typ component.Type) (factory, bool) { f, ok := factories.Processors[typ]; return f, ok },
		"exporters":  func(typ component.Type) (factory, bool) { f, ok := factories.Exporters[typ]; return f, ok },
		"extensions": func(typ component.Type) (factory, bool) { f, ok := factories.Extensions[typ]; return f, ok },
		"connectors": func(typ component.Type) (factory, bool) { f, ok := factories.Connectors[typ]; return f, ok },
	}
	root := filepath.Join("..", "..")
	components, blocks := 0, 0
	for _, md := range readmetest.MarkdownFiles(t, root) {
		for _, b := range readmetest.Blocks(t, md, "yaml") {
			blocks++
			rel, _ := filepath.Rel(root, md)
			where := rel + ":" + strings.TrimPrefix(b.Where(), md+":")
			for _, m := range envRef.FindAllStringSubmatch(b.Text, -1) {
				t.Setenv(m[1], "example-"+strings.ToLower(m[1]))
			}
			conf, err := readmetest.Resolve(t, b)
			if err != nil {
				t.Errorf("%s: the YAML does not load as a collector config would: %v", where, err)
				continue
			}
			for section, find := range lookup {
				sec, err := conf.Sub(section)
				if err != nil {
					t.Errorf("%s: %s: %v", where, section, err)
					continue
				}
				ids := sortedKeys(sec)
				for _, key := range ids {
					var id component.ID
					if err := id.UnmarshalText([]byte(key)); err != nil {
						t.Errorf("%s: %s::%s: %v", where, section, key, err)
						continue
					}
					f, ok := find(id.Type())
					if !ok {
						t.Errorf("%s: %s::%s: the distribution has no %s of type %q", where, section, key, strings.TrimSuffix(section, "s"), id.Type())
						continue
					}
					cfg := f.CreateDefaultConfig()
					sub, err := sec.Sub(key)
					if err == nil {
						err = sub.Unmarshal(cfg)
					}
					if err == nil {
						err = confmap.Validate(cfg)
					}
					if err != nil {
						t.Errorf("%s: %s::%s: %v", where, section, key, err)
						continue
					}
					components++
				}
			}
		}
	}
	if components < 25 || blocks < 15 {
		t.Fatalf("validated %d component configurations in %d yaml blocks: the walk found too few", components, blocks)
	}
	t.Logf("validated %d component configurations in %d yaml blocks", components, blocks)
}

func sortedKeys(c *confmap.Conf) []string {
	var keys []string
	for k := range c.ToStringMap() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.yaml.in/yaml/v3"
)

type builderConfig struct {
	Extensions []builderModule `yaml:"extensions"`
	Receivers  []builderModule `yaml:"receivers"`
	Processors []builderModule `yaml:"processors"`
	Exporters  []builderModule `yaml:"exporters"`
	Connectors []builderModule `yaml:"connectors"`
	Providers  []builderModule `yaml:"providers"`
}

type builderModule struct {
	GoMod  string `yaml:"gomod"`
	Import string `yaml:"import"`
}

// TestComponentsMatchBuilderConfig keeps the hand-kept components.go and builder-config.yaml in step:
// each section lists exactly the modules the distribution registers, and go.mod requires the
// versions builder-config.yaml names.
func TestComponentsMatchBuilderConfig(t *testing.T) {
	root := filepath.Join("..", "..")
	raw, err := os.ReadFile(filepath.Join(root, "builder-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var bc builderConfig
	if err := yaml.Unmarshal(raw, &bc); err != nil {
		t.Fatal(err)
	}
	f, err := components()
	if err != nil {
		t.Fatal(err)
	}
	check := func(section string, want []builderModule, modules map[component.Type]string, factories int) {
		isAlias := func(typ component.Type) bool { return section == "exporters" && isExporterAlias(typ) }
		t.Helper()
		var wantMods []string
		for _, m := range want {
			wantMods = append(wantMods, m.GoMod)
		}
		var got []string
		seen := map[string]bool{}
		for typ, m := range modules {
			// ocb maps deprecated aliases (otlp, otlphttp) to their module too; count each factory once.
			if !seen[typ.String()] && !isAlias(typ) {
				got = append(got, m)
			}
			seen[typ.String()] = true
		}
		sort.Strings(wantMods)
		sort.Strings(got)
		if strings.Join(got, "\n") != strings.Join(wantMods, "\n") {
			t.Errorf("%s: components.go registers\n  %v\nbuilder-config.yaml lists\n  %v", section, got, wantMods)
		}
		if factories != len(want) {
			t.Errorf("%s: %d factories registered, builder-config.yaml lists %d", section, factories, len(want))
		}
	}
	check("extensions", bc.Extensions, f.ExtensionModules, len(f.Extensions))
	check("receivers", bc.Receivers, f.ReceiverModules, len(f.Receivers))
	check("processors", bc.Processors, f.ProcessorModules, len(f.Processors))
	check("exporters", bc.Exporters, f.ExporterModules, countNonAlias(f.ExporterModules))
	check("connectors", bc.Connectors, f.ConnectorModules, len(f.Connectors))

	var provMods []string
	for _, m := range settings().ProviderModules {
		provMods = append(provMods, m)
	}
	var wantProv []string
	for _, p := range bc.Providers {
		wantProv = append(wantProv, p.GoMod)
	}
	sort.Strings(provMods)
	sort.Strings(wantProv)
	if strings.Join(provMods, ",") != strings.Join(wantProv, ",") {
		t.Errorf("providers: main.go has %v, builder-config.yaml %v", provMods, wantProv)
	}

	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	all := append(append(append(append(append(bc.Extensions, bc.Receivers...), bc.Processors...), bc.Exporters...), bc.Connectors...), bc.Providers...)
	for _, m := range all {
		if m.GoMod == ownModule {
			continue
		}
		if !strings.Contains(string(gomod), "\t"+m.GoMod+"\n") && !strings.Contains(string(gomod), "\t"+m.GoMod+" //") {
			t.Errorf("go.mod does not require %s", m.GoMod)
		}
	}
}

// isExporterAlias reports the deprecated exporter type names ocb also maps to their modules.
func isExporterAlias(typ component.Type) bool {
	return typ.String() == "otlp" || typ.String() == "otlphttp"
}

func countNonAlias(m map[component.Type]string) int {
	n := 0
	for typ := range m {
		if !isExporterAlias(typ) {
			n++
		}
	}
	return n
}

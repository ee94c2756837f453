// Package configtest loads component configurations from a test's testdata/config.yaml, the way the
// collector would: the factory's defaults, overlaid with the YAML under the component's ID.
package configtest

import (
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

// Factory is what Load needs of a component factory.
type Factory interface {
	Type() component.Type
	CreateDefaultConfig() component.Config
}

// Load returns the configuration of the component named name (empty for the bare type) from
// testdata/config.yaml, on top of the factory's defaults.
func Load[T component.Config](t testing.TB, f Factory, name string) T {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := cm.Sub(component.NewIDWithName(f.Type(), name).String())
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.CreateDefaultConfig()
	if err := sub.Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.(T)
}

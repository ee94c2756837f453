// Package ledgertest starts the budgetledger extension for the tests of the components that book
// into it (the costledger exporter, the budget receiver), on the embedded backend in a temporary
// directory.
package ledgertest

import (
	"context"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/agentcost/agentcost/extension/budgetledgerextension"
)

// Start starts a budgetledger extension with its ledger and evidence in a temporary directory,
// and shuts it down when the test ends.
func Start(t testing.TB) extension.Extension {
	t.Helper()
	f := budgetledgerextension.NewFactory()
	cfg := f.CreateDefaultConfig().(*budgetledgerextension.Config)
	dir := t.TempDir()
	cfg.Directory = filepath.Join(dir, "ledger")
	cfg.Evidence.Directory = filepath.Join(dir, "evidence")
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ext.Shutdown(context.Background()) })
	return ext
}

// Host returns a host whose only extension is ext, as "budgetledger" (the components' default
// `ledger`).
func Host(ext component.Component) component.Host {
	return host{Host: componenttest.NewNopHost(), exts: map[component.ID]component.Component{component.MustNewID("budgetledger"): ext}}
}

type host struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.exts }

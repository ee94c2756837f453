package budgetreceiver

import (
	"context"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/agentcost/agentcost/extension/budgetledgerextension"

	"github.com/agentcost/agentcost/internal/testutil/componentdoc"
)

// ledgerHost is the host of the generated lifecycle test (metadata.yaml tests::host): a started
// budgetledger extension in a temporary directory, shut down when the test ends.
func ledgerHost(t *testing.T) component.Host {
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
	return testHost{Host: componenttest.NewNopHost(), exts: map[component.ID]component.Component{component.MustNewID("budgetledger"): ext}}
}

// TestREADMEMatchesMetadata: the README's status table and telemetry table say what
// metadata.yaml (and so the generated code and documentation.md) says.
func TestREADMEMatchesMetadata(t *testing.T) {
	componentdoc.Check(t, ".")
}

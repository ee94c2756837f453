package budgetledgerextension

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/agentcost/agentcost/internal/testutil/componentdoc"
)

// TestComponentLifecycleTempDir is the lifecycle mdatagen would generate (metadata.yaml skips it,
// since the default config keeps the ledger in ./data): create, start, shut down, then again on
// the same files, here in a temporary directory. The second start proves the first shutdown
// released the ledger file's lock and left a ledger and an evidence chain that open again.
func TestComponentLifecycleTempDir(t *testing.T) {
	factory := NewFactory()
	cfg := factory.CreateDefaultConfig().(*Config)
	dir := t.TempDir()
	cfg.Directory = filepath.Join(dir, "ledger")
	cfg.Evidence.Directory = filepath.Join(dir, "evidence")
	for range 2 {
		ext, err := factory.Create(context.Background(), extensiontest.NewNopSettings(typ), cfg)
		require.NoError(t, err)
		require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
		require.NoError(t, ext.Shutdown(context.Background()))
	}
}

// TestREADMEMatchesMetadata: the README's status table and telemetry table say what
// metadata.yaml (and so the generated code and documentation.md) says.
func TestREADMEMatchesMetadata(t *testing.T) {
	componentdoc.Check(t, ".")
}

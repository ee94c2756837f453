package budgetreceiver

import (
	"testing"

	"go.opentelemetry.io/collector/component"

	"github.com/agentcost/agentcost/internal/testutil/componentdoc"
	"github.com/agentcost/agentcost/internal/testutil/ledgertest"
)

// ledgerHost is the host of the generated lifecycle test (metadata.yaml tests::host): a started
// budgetledger extension in a temporary directory, shut down when the test ends.
func ledgerHost(t *testing.T) component.Host {
	return ledgertest.Host(ledgertest.Start(t))
}

// TestREADMEMatchesMetadata: the README's status table and telemetry table say what
// metadata.yaml (and so the generated code and documentation.md) says.
func TestREADMEMatchesMetadata(t *testing.T) {
	componentdoc.Check(t, ".")
}

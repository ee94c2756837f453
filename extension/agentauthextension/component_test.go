package agentauthextension

import (
	"testing"

	"github.com/agentcost/agentcost/internal/testutil/componentdoc"
)

// TestREADMEMatchesMetadata: the README's status table and telemetry table say what
// metadata.yaml (and so the generated code and documentation.md) says.
func TestREADMEMatchesMetadata(t *testing.T) {
	componentdoc.Check(t, ".")
}

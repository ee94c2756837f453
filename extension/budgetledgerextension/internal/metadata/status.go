// Package metadata holds the budgetledger extension's type and stability, written by hand in the
// shape mdatagen generates.
package metadata

import "go.opentelemetry.io/collector/component"

var (
	// Type is the extension's component type.
	Type = component.MustNewType("budgetledger")
	// ScopeName is the instrumentation scope of the extension's own telemetry.
	ScopeName = "github.com/agentcost/agentcost/extension/budgetledgerextension"
)

// ExtensionStability is the stability of the extension.
const ExtensionStability = component.StabilityLevelAlpha

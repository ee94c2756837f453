// Package metadata holds the agentauth extension's type, stability and telemetry, written by hand
// in the shape mdatagen generates.
package metadata

import "go.opentelemetry.io/collector/component"

var (
	// Type is the extension's component type.
	Type = component.MustNewType("agentauth")
	// ScopeName is the instrumentation scope of the extension's own telemetry.
	ScopeName = "github.com/agentcost/agentcost/extension/agentauthextension"
)

// ExtensionStability is the stability of the extension.
const ExtensionStability = component.StabilityLevelAlpha

// Package metadata holds the agentcost processor's type, stability and internal telemetry, written by
// hand in the shape mdatagen generates.
package metadata

import "go.opentelemetry.io/collector/component"

var (
	// Type is the processor's component type.
	Type = component.MustNewType("agentcost")
	// ScopeName is the instrumentation scope of the processor's own telemetry.
	ScopeName = "github.com/agentcost/agentcost/processor/agentcostprocessor"
)

// TracesStability is the stability of the traces pipeline support.
const TracesStability = component.StabilityLevelAlpha

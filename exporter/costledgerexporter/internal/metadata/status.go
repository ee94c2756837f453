// Package metadata holds the costledger exporter's type and stability, written by hand in the shape
// mdatagen generates.
package metadata

import "go.opentelemetry.io/collector/component"

var (
	// Type is the exporter's component type.
	Type = component.MustNewType("costledger")
	// ScopeName is the instrumentation scope of the exporter's own telemetry.
	ScopeName = "github.com/agentcost/agentcost/exporter/costledgerexporter"
)

const (
	// TracesStability is the stability of the traces pipeline support.
	TracesStability = component.StabilityLevelAlpha
	// MetricsStability is the stability of the metrics pipeline support.
	MetricsStability = component.StabilityLevelAlpha
)

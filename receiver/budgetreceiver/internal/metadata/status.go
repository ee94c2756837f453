// Package metadata holds the budget receiver's type and stability, written by hand in the shape
// mdatagen generates.
package metadata

import "go.opentelemetry.io/collector/component"

var (
	// Type is the receiver's component type.
	Type = component.MustNewType("budget")
	// ScopeName is the instrumentation scope of the receiver's metrics and logs.
	ScopeName = "github.com/agentcost/agentcost/receiver/budgetreceiver"
)

const (
	// MetricsStability is the stability of the metrics pipeline support (budget state, decisions).
	MetricsStability = component.StabilityLevelAlpha
	// LogsStability is the stability of the logs pipeline support (cost-evidence records).
	LogsStability = component.StabilityLevelAlpha
)

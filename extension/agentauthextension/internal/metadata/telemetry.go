package metadata

import (
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/metric"
)

// NameRejections is the name of the rejected-requests counter.
const NameRejections = "otelcol_extension_agentauth_rejections"

// NameAuthenticated is the name of the authenticated-requests counter.
const NameAuthenticated = "otelcol_extension_agentauth_authenticated"

// TelemetryBuilder holds the extension's internal metrics, reported through the collector's own
// telemetry (service::telemetry::metrics).
type TelemetryBuilder struct {
	// Rejections counts requests refused, by reason (missing, invalid).
	Rejections metric.Int64Counter
	// Authenticated counts requests accepted, by role.
	Authenticated metric.Int64Counter
}

// NewTelemetryBuilder creates the extension's instruments on the settings' meter provider.
func NewTelemetryBuilder(settings component.TelemetrySettings) (*TelemetryBuilder, error) {
	meter := settings.MeterProvider.Meter(ScopeName)
	b := &TelemetryBuilder{}
	var err, errs error
	b.Rejections, err = meter.Int64Counter(NameRejections,
		metric.WithDescription("Requests refused by the agentauth authenticator, by reason: missing (no bearer token) or invalid (an unknown token)."),
		metric.WithUnit("{request}"))
	errs = errors.Join(errs, err)
	b.Authenticated, err = meter.Int64Counter(NameAuthenticated,
		metric.WithDescription("Requests authenticated by the agentauth authenticator, by role."),
		metric.WithUnit("{request}"))
	errs = errors.Join(errs, err)
	return b, errs
}

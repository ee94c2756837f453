// Package costledgerexporter provides the `costledger` exporter: on a traces pipeline it books every
// priced span exactly once into the budget ledger, with the totals (spend, tokens, unpriced,
// malformed, refused and duplicate spans) the budget receiver publishes into a metrics pipeline.
package costledgerexporter

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/agentcost/agentcost/internal/money"
)

// Config is the configuration of the costledger exporter.
type Config struct {
	// Endpoint, Path and MaxLabelValues are keys of earlier releases, which served Prometheus from
	// this exporter; they are rejected with a note of where they moved (the prometheus exporter's
	// endpoint on a metrics pipeline fed by the budget receiver, and the receiver's
	// max_label_values).
	Endpoint       string `mapstructure:"endpoint"`
	Path           string `mapstructure:"path"`
	MaxLabelValues int    `mapstructure:"max_label_values"`

	// Ledger is the component ID of the budgetledger extension to book into (required on a
	// traces pipeline).
	Ledger component.ID `mapstructure:"ledger"`

	// MaxCostUSDPerSpan is the most one span's agentcost.cost_usd may be to be booked (default
	// 500, as the agentcost processor's limits.max_cost_usd_per_span): defence in depth for spans
	// priced upstream by another collector. A costlier span is not booked and is counted in
	// agentcost_refused_spans_total{reason="cost_over_limit"}.
	MaxCostUSDPerSpan float64 `mapstructure:"max_cost_usd_per_span"`

	// TimeoutConfig bounds each booking call.
	TimeoutConfig exporterhelper.TimeoutConfig `mapstructure:",squash"`
	// QueueConfig is the sending queue. Off by default: booking is synchronous, so an OTLP request is
	// acknowledged only once its spend is durable. Enable it only with `storage` (a file_storage
	// extension): a persistent queue survives a restart and a ledger outage.
	QueueConfig configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	// RetryConfig retries failed bookings (idempotent on trace and span id).
	RetryConfig configretry.BackOffConfig `mapstructure:"retry_on_failure"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration; messages name the YAML key.
func (cfg *Config) Validate() error {
	var errs error
	if cfg.Endpoint != "" || cfg.Path != "" {
		errs = errors.Join(errs, errors.New("endpoint, path: the costledger exporter no longer serves Prometheus; "+
			"add a metrics pipeline {receivers: [budget], exporters: [prometheus]} and set the prometheus exporter's endpoint"))
	}
	if cfg.MaxLabelValues != 0 {
		errs = errors.Join(errs, errors.New("max_label_values: moved to the budget receiver, which publishes the metrics"))
	}
	if !(cfg.MaxCostUSDPerSpan > 0) || cfg.MaxCostUSDPerSpan > money.MaxNanos.USD() {
		errs = errors.Join(errs, fmt.Errorf("max_cost_usd_per_span: %v must be above 0 and at most %v", cfg.MaxCostUSDPerSpan, money.MaxNanos.USD()))
	}
	if cfg.QueueConfig.HasValue() {
		if q := cfg.QueueConfig.Get(); q.StorageID == nil && !q.WaitForResult {
			errs = errors.Join(errs, errors.New("sending_queue.storage: an in-memory queue acknowledges spans before their spend is booked "+
				"and loses it on a crash; set storage to a file_storage extension, set wait_for_result, or remove sending_queue"))
		}
	}
	return errs
}

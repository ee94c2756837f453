// Package costledgerexporter provides the `costledger` exporter: on a traces pipeline it books every
// priced span exactly once into the budget ledger; on a metrics pipeline it re-exposes the budget
// receiver's budget state unchanged; and it serves both, with the span-side metrics, on one
// Prometheus /metrics endpoint.
package costledgerexporter

import (
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/agentcost/agentcost/internal/money"
)

// Config is the configuration of the costledger exporter.
type Config struct {
	// ServerConfig is the Prometheus endpoint (default localhost:9464), with confighttp's TLS,
	// auth and CORS settings.
	confighttp.ServerConfig `mapstructure:",squash"`

	// Path is the URL path of the metrics (default /metrics).
	Path string `mapstructure:"path"`

	// Ledger is the component ID of the budgetledger extension to book into (required on a
	// traces pipeline).
	Ledger component.ID `mapstructure:"ledger"`

	// MaxLabelValues bounds the distinct values of each label (agent, team, model, provider) and the
	// series of each re-exposed metric; values past it are reported as __overflow__ and counted
	// (default 1000).
	MaxLabelValues int `mapstructure:"max_label_values"`

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
	if strings.TrimSpace(cfg.NetAddr.Endpoint) == "" {
		errs = errors.Join(errs, errors.New("endpoint: required (host:port of the Prometheus endpoint)"))
	}
	if !strings.HasPrefix(cfg.Path, "/") {
		errs = errors.Join(errs, fmt.Errorf("path: %q must start with /", cfg.Path))
	}
	if cfg.MaxLabelValues < 1 {
		errs = errors.Join(errs, fmt.Errorf("max_label_values: %d must be at least 1", cfg.MaxLabelValues))
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

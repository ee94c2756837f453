//go:generate ../../internal/tools/mdatagen.sh metadata.yaml

package budgetreceiver

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/boundedfile"
	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/pkg/decisionapi"
	"github.com/agentcost/agentcost/receiver/budgetreceiver/internal/metadata"
)

// NewFactory returns the factory of the budget receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithMetrics(createMetrics, metadata.MetricsStability),
		receiver.WithLogs(createLogs, metadata.LogsStability),
	)
}

func createDefaultConfig() component.Config {
	server := confighttp.NewDefaultServerConfig()
	server.NetAddr.Endpoint = "localhost:4320"
	// A decision request is a few KiB: a client that takes longer than this to send its headers
	// or its body is holding a connection, not asking.
	server.ReadHeaderTimeout = 5 * time.Second
	server.ReadTimeout = 10 * time.Second
	return &Config{
		ServerConfig:         server,
		PolicyReloadInterval: 5 * time.Second,
		MaxFileBytes:         boundedfile.DefaultLimit,
		Ledger:               component.MustNewID("budgetledger"),
		MaxRequestBytes:      decisionapi.DefaultBodyLimit,
		MaxInFlight:          1024,
		ApprovalTTL:          24 * time.Hour,
		ReservationTTL:       10 * time.Minute,
		IdempotencyTTL:       24 * time.Hour,
		PublishInterval:      15 * time.Second,
		MaxLabelValues:       1000,
		SettleInterval:       5 * time.Second,
		MidflightInterval:    time.Second,
		RunIdle:              10 * time.Minute,
		Baseline:             BaselineConfig{Settings: baseline.DefaultSettings(5)},
		LedgerUnavailable:    LedgerUnavailableConfig{Decisions: decide.FailClosed.String(), RetryAfter: 5 * time.Second, Timeout: 500 * time.Millisecond},
		Prices:               PricesConfig{Embedded: true},
		Notifications:        defaultNotifications(),
	}
}

func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	r := shared(set, cfg.(*Config))
	r.Unwrap().setMetrics(next)
	return r, nil
}

func createLogs(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	r := shared(set, cfg.(*Config))
	r.Unwrap().setLogs(next)
	return r, nil
}

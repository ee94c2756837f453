package budgetledgerextension

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.uber.org/zap"

	"github.com/agentcost/agentcost/extension/budgetledgerextension/internal/metadata"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
)

// Provider is what the costledger exporter and the budget receiver get from the extension.
type Provider interface {
	// Ledger is the budget ledger; valid between Start and Shutdown.
	Ledger() ledger.Ledger
	// Evidence is the process's one cost-evidence writer; valid between Start and Shutdown.
	Evidence() *evidence.Writer
	// Location is the time zone that aligns every budget window.
	Location() *time.Location
}

// Find returns the budgetledger extension id names in host, for components that reference it by
// their `ledger` setting.
func Find(host component.Host, id component.ID) (Provider, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("ledger: extension %q is not configured (add it under extensions and service::extensions)", id)
	}
	p, ok := ext.(Provider)
	if !ok {
		return nil, fmt.Errorf("ledger: extension %q is not a budgetledger extension", id)
	}
	return p, nil
}

type budgetLedger struct {
	cfg       *Config
	logger    *zap.Logger
	loc       *time.Location
	telemetry component.TelemetrySettings
	metrics   *metadata.TelemetryBuilder

	ledger   ledger.Ledger
	evidence *evidence.Writer
}

var _ Provider = (*budgetLedger)(nil)

func newBudgetLedger(set extension.Settings, cfg *Config) (*budgetLedger, error) {
	loc, err := cfg.location()
	if err != nil {
		return nil, err
	}
	return &budgetLedger{cfg: cfg, logger: set.Logger, loc: loc, telemetry: set.TelemetrySettings}, nil
}

// Start opens the ledger backend and the evidence writer; a backend that cannot be opened fails
// start-up.
func (b *budgetLedger) Start(ctx context.Context, _ component.Host) error {
	l, err := ledger.Open(ctx, b.cfg.Config, ledger.Settings{Logger: b.logger})
	if err != nil {
		return fmt.Errorf("opening the %s ledger: %w", b.cfg.Backend, err)
	}
	w, report, err := evidence.Open(b.cfg.Evidence.Directory, b.cfg.evidenceOptions())
	if err != nil {
		_ = l.Close()
		return fmt.Errorf("opening evidence directory %q: %w", b.cfg.Evidence.Directory, err)
	}
	if t := report.Truncated; t != nil {
		b.logger.Warn("Evidence file ended in a half-written record after a crash; it was truncated",
			zap.String("file", t.File), zap.Int64("bytes_dropped", t.Bytes))
	}
	b.ledger, b.evidence = l, w
	if sr, ok := l.(ledger.StatsReporter); ok {
		tb, err := metadata.NewTelemetryBuilder(b.telemetry)
		if err == nil {
			err = tb.RegisterCallback(sr.Stats)
		}
		if err != nil {
			_, _ = w.Close(), l.Close()
			return fmt.Errorf("creating the ledger's telemetry: %w", err)
		}
		b.metrics = tb
	}
	fields := []zap.Field{zap.String("backend", b.cfg.Backend), zap.String("time_zone", b.loc.String()),
		zap.String("evidence_chain", report.ChainID), zap.Uint64("evidence_last_seq", report.LastSeq)}
	if b.cfg.Backend == ledger.BackendRedis {
		fields = append(fields, zap.String("redis_endpoint", b.cfg.Redis.Endpoint))
	} else {
		fields = append(fields, zap.String("directory", b.cfg.Directory))
	}
	b.logger.Info("Budget ledger started", fields...)
	return nil
}

// Shutdown flushes the evidence writer and closes the ledger.
func (b *budgetLedger) Shutdown(context.Context) error {
	var errs error
	if b.metrics != nil {
		b.metrics.Shutdown()
	}
	if b.evidence != nil {
		errs = errors.Join(errs, b.evidence.Close())
	}
	if b.ledger != nil {
		errs = errors.Join(errs, b.ledger.Close())
	}
	b.logger.Info("Budget ledger stopped")
	return errs
}

func (b *budgetLedger) Ledger() ledger.Ledger      { return b.ledger }
func (b *budgetLedger) Evidence() *evidence.Writer { return b.evidence }
func (b *budgetLedger) Location() *time.Location   { return b.loc }

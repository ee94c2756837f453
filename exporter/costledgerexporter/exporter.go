package costledgerexporter

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/agentcost/agentcost/extension/budgetledgerextension"
	"github.com/agentcost/agentcost/internal/booking"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
)

// costLedger is the exporter on a traces pipeline: the booking point.
type costLedger struct {
	cfg      *Config
	set      exporter.Settings
	provider budgetledgerextension.Provider
}

func newCostLedger(set exporter.Settings, cfg *Config) *costLedger {
	return &costLedger{cfg: cfg, set: set}
}

func (e *costLedger) start(_ context.Context, host component.Host) error {
	p, err := budgetledgerextension.Find(host, e.cfg.Ledger)
	if err != nil {
		return err
	}
	e.provider = p
	return nil
}

// pushTraces books the batch's priced spans, and counts its unpriced, malformed and refused spans
// in the ledger's totals in the same call. It returns only once the booking is durable, so the
// pipeline acknowledges nothing the ledger has not kept; an error makes exporterhelper retry (or
// keep the batch in its persistent queue), and booking is idempotent on (trace id, span id), so the
// totals (which the budget receiver publishes) count every span once.
func (e *costLedger) pushTraces(ctx context.Context, td ptrace.Traces) error {
	maxCost, _ := money.FromUSD(e.cfg.MaxCostUSDPerSpan) // validated
	b := booking.FromTracesWithin(td, maxCost)
	if b.Invalid > 0 {
		e.set.Logger.Debug("Priced spans with an unreadable cost were not booked", zap.Int("spans", b.Invalid))
	}
	if b.OverLimit > 0 {
		e.set.Logger.Debug("Priced spans above max_cost_usd_per_span were not booked", zap.Int("spans", b.OverLimit))
	}
	if len(b.Spends)+len(b.Unbooked) == 0 {
		return nil
	}
	spends := make([]ledger.Spend, 0, len(b.Spends)+len(b.Unbooked))
	spends = append(append(spends, b.Spends...), b.Unbooked...)
	res, err := e.provider.Ledger().Book(ctx, spends)
	if err != nil {
		e.provider.BookFailed()
		return fmt.Errorf("booking %d spans: %w", len(b.Spends), err)
	}
	// The hooks (the budget receiver's level notifications) see the priced spends only, and run
	// before the spans are acknowledged; a failure makes the batch retried, and the retry books
	// nothing twice.
	n := len(b.Spends)
	res.New, res.Same = res.New[:min(n, len(res.New))], res.Same[:min(n, len(res.Same))]
	if err := e.provider.Booked(ctx, b.Spends, res); err != nil {
		e.provider.BookFailed()
		return fmt.Errorf("after booking %d spans: %w", len(b.Spends), err)
	}
	return nil
}

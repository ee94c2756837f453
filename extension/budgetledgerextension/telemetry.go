package budgetledgerextension

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/metric"

	"github.com/agentcost/agentcost/extension/budgetledgerextension/internal/metadata"
	"github.com/agentcost/agentcost/internal/ledger"
)

// anchorStats is what the evidence instruments report; both backends have them.
type anchorStats struct {
	// chainTruncated is 1 after a start over a chain behind its anchor, else 0.
	chainTruncated int64
	// anchorErrors and anchorWrites count the failed and successful anchor writes.
	anchorErrors, anchorWrites int64
}

// registerTelemetry reports the ledger's statistics (when stats is not nil: the embedded backend)
// and the evidence anchor's through tb's observable instruments, declared in metadata.yaml.
func registerTelemetry(tb *metadata.TelemetryBuilder, stats func() ledger.Stats, anchor func() anchorStats) error {
	i64 := func(v func() int64) metric.Int64Callback {
		return func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(v())
			return nil
		}
	}
	seconds := func(v func() float64) metric.Float64Callback {
		return func(_ context.Context, o metric.Float64Observer) error {
			o.Observe(v())
			return nil
		}
	}
	errs := errors.Join(
		tb.RegisterExtensionBudgetledgerEvidenceChainTruncatedCallback(i64(func() int64 { return anchor().chainTruncated })),
		tb.RegisterExtensionBudgetledgerEvidenceAnchorErrorsCallback(i64(func() int64 { return anchor().anchorErrors })),
		tb.RegisterExtensionBudgetledgerEvidenceAnchorWritesCallback(i64(func() int64 { return anchor().anchorWrites })),
	)
	if stats == nil {
		return errs
	}
	return errors.Join(errs,
		tb.RegisterExtensionBudgetledgerCommitsCallback(i64(func() int64 { return stats().Commits })),
		tb.RegisterExtensionBudgetledgerCommitDurationCallback(seconds(func() float64 { return stats().CommitTime.Seconds() })),
		tb.RegisterExtensionBudgetledgerJournalSyncsCallback(i64(func() int64 { return stats().JournalSyncs })),
		tb.RegisterExtensionBudgetledgerJournalSyncDurationCallback(seconds(func() float64 { return stats().JournalSyncTime.Seconds() })),
		tb.RegisterExtensionBudgetledgerReservationsPendingCallback(i64(func() int64 { return stats().PendingReservations })),
		tb.RegisterExtensionBudgetledgerJournalSizeCallback(i64(func() int64 { return stats().JournalBytes })),
		tb.RegisterExtensionBudgetledgerReservationsRecoveredCallback(i64(func() int64 { return stats().RecoveredReservations })),
	)
}

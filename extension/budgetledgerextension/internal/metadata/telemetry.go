package metadata

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/metric"

	"github.com/agentcost/agentcost/internal/ledger"
)

// TelemetryBuilder holds the extension's internal metrics, reported through the collector's own
// telemetry (service::telemetry::metrics). They describe the embedded ledger backend; the Redis
// backend reports none.
type TelemetryBuilder struct {
	meter        metric.Meter
	mu           sync.Mutex
	registration metric.Registration
	evidenceReg  metric.Registration

	// Commits counts the ledger file's write transactions.
	Commits metric.Int64ObservableCounter
	// CommitDuration is the time spent in them.
	CommitDuration metric.Float64ObservableCounter
	// JournalSyncs counts the reservation journal's fdatasyncs.
	JournalSyncs metric.Int64ObservableCounter
	// JournalSyncDuration is the time spent in them, which decisions wait for.
	JournalSyncDuration metric.Float64ObservableCounter
	// ReservationsPending is the journaled reservations not yet applied to the ledger file.
	ReservationsPending metric.Int64ObservableGauge
	// JournalSize is the reservation journal's size.
	JournalSize metric.Int64ObservableGauge
	// ReservationsRecovered counts the reservations replayed from the journal at start.
	ReservationsRecovered metric.Int64ObservableCounter
	// EvidenceChainTruncated is 1 after a start over an evidence chain that ended behind its
	// anchor in the ledger (evidence.accept_truncated_chain), else 0. Both backends report it.
	EvidenceChainTruncated metric.Int64ObservableGauge
	// EvidenceAnchorErrors counts failed writes of the evidence chain's head into the ledger.
	EvidenceAnchorErrors metric.Int64ObservableCounter
	// EvidenceAnchorWrites counts the writes of the evidence chain's head into the ledger.
	EvidenceAnchorWrites metric.Int64ObservableCounter
}

// EvidenceStats is what the evidence instruments report.
type EvidenceStats struct {
	// ChainTruncated is 1 after a start over a chain behind its anchor.
	ChainTruncated int64
	// AnchorErrors and AnchorWrites count the failed and successful anchor writes.
	AnchorErrors, AnchorWrites int64
}

// NewTelemetryBuilder creates the extension's instruments on the settings' meter provider.
func NewTelemetryBuilder(settings component.TelemetrySettings) (*TelemetryBuilder, error) {
	b := &TelemetryBuilder{meter: settings.MeterProvider.Meter(ScopeName)}
	var err, errs error
	b.Commits, err = b.meter.Int64ObservableCounter("otelcol_extension_budgetledger_commits",
		metric.WithDescription("Number of write transactions committed (and fsynced) to the embedded ledger file; concurrent writers share one."),
		metric.WithUnit("{transaction}"))
	errs = errors.Join(errs, err)
	b.CommitDuration, err = b.meter.Float64ObservableCounter("otelcol_extension_budgetledger_commit_duration",
		metric.WithDescription("Time spent committing write transactions to the embedded ledger file."), metric.WithUnit("s"))
	errs = errors.Join(errs, err)
	b.JournalSyncs, err = b.meter.Int64ObservableCounter("otelcol_extension_budgetledger_journal_syncs",
		metric.WithDescription("Number of fdatasyncs of the reservation journal; concurrent decisions share one."),
		metric.WithUnit("{sync}"))
	errs = errors.Join(errs, err)
	b.JournalSyncDuration, err = b.meter.Float64ObservableCounter("otelcol_extension_budgetledger_journal_sync_duration",
		metric.WithDescription("Time spent in fdatasyncs of the reservation journal, which decisions wait for."), metric.WithUnit("s"))
	errs = errors.Join(errs, err)
	b.ReservationsPending, err = b.meter.Int64ObservableGauge("otelcol_extension_budgetledger_reservations_pending",
		metric.WithDescription("Journaled reservations not yet applied to the embedded ledger file."), metric.WithUnit("{reservation}"))
	errs = errors.Join(errs, err)
	b.JournalSize, err = b.meter.Int64ObservableGauge("otelcol_extension_budgetledger_journal_size",
		metric.WithDescription("Size of the reservation journal."), metric.WithUnit("By"))
	errs = errors.Join(errs, err)
	b.ReservationsRecovered, err = b.meter.Int64ObservableCounter("otelcol_extension_budgetledger_reservations_recovered",
		metric.WithDescription("Reservations replayed from the journal at start, after a crash."), metric.WithUnit("{reservation}"))
	errs = errors.Join(errs, err)
	b.EvidenceChainTruncated, err = b.meter.Int64ObservableGauge("otelcol_extension_budgetledger_evidence_chain_truncated",
		metric.WithDescription("1 when the collector started over an evidence chain that ends behind the head anchored in the ledger (evidence.accept_truncated_chain), else 0."))
	errs = errors.Join(errs, err)
	b.EvidenceAnchorErrors, err = b.meter.Int64ObservableCounter("otelcol_extension_budgetledger_evidence_anchor_errors",
		metric.WithDescription("Failed writes of the evidence chain's head into the ledger."), metric.WithUnit("{write}"))
	errs = errors.Join(errs, err)
	b.EvidenceAnchorWrites, err = b.meter.Int64ObservableCounter("otelcol_extension_budgetledger_evidence_anchor_writes",
		metric.WithDescription("Writes of the evidence chain's head into the ledger."), metric.WithUnit("{write}"))
	errs = errors.Join(errs, err)
	return b, errs
}

// RegisterEvidenceCallback reports the evidence instruments from stats at each collection.
func (b *TelemetryBuilder) RegisterEvidenceCallback(stats func() EvidenceStats) error {
	reg, err := b.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := stats()
		o.ObserveInt64(b.EvidenceChainTruncated, s.ChainTruncated)
		o.ObserveInt64(b.EvidenceAnchorErrors, s.AnchorErrors)
		o.ObserveInt64(b.EvidenceAnchorWrites, s.AnchorWrites)
		return nil
	}, b.EvidenceChainTruncated, b.EvidenceAnchorErrors, b.EvidenceAnchorWrites)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.evidenceReg = reg
	return nil
}

// RegisterCallback reports the instruments from stats at each collection.
func (b *TelemetryBuilder) RegisterCallback(stats func() ledger.Stats) error {
	reg, err := b.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := stats()
		o.ObserveInt64(b.Commits, s.Commits)
		o.ObserveFloat64(b.CommitDuration, s.CommitTime.Seconds())
		o.ObserveInt64(b.JournalSyncs, s.JournalSyncs)
		o.ObserveFloat64(b.JournalSyncDuration, s.JournalSyncTime.Seconds())
		o.ObserveInt64(b.ReservationsPending, s.PendingReservations)
		o.ObserveInt64(b.JournalSize, s.JournalBytes)
		o.ObserveInt64(b.ReservationsRecovered, s.RecoveredReservations)
		return nil
	}, b.Commits, b.CommitDuration, b.JournalSyncs, b.JournalSyncDuration, b.ReservationsPending, b.JournalSize, b.ReservationsRecovered)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.registration = reg
	return nil
}

// Shutdown unregisters the callback.
func (b *TelemetryBuilder) Shutdown() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.registration != nil {
		_ = b.registration.Unregister()
		b.registration = nil
	}
	if b.evidenceReg != nil {
		_ = b.evidenceReg.Unregister()
		b.evidenceReg = nil
	}
}

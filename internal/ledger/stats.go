package ledger

import (
	"sync/atomic"
	"time"
)

// Stats is what the embedded backend reports about its own work, for telemetry. Counters are
// cumulative since the ledger was opened.
type Stats struct {
	// Commits counts bbolt write transactions, and CommitTime their total duration (group
	// commit shares one among concurrent writers).
	Commits    int64
	CommitTime time.Duration
	// JournalSyncs counts fdatasyncs of the reservation journal, and JournalSyncTime their total
	// duration: what a decision waits for.
	JournalSyncs    int64
	JournalSyncTime time.Duration
	// PendingReservations is the number of journaled reservations not yet applied to the file.
	PendingReservations int64
	// JournalBytes is the journal's current size.
	JournalBytes int64
	// RecoveredReservations counts the reservations replayed from the journal at open.
	RecoveredReservations int64
}

// StatsReporter is implemented by backends that report Stats (the embedded one).
type StatsReporter interface {
	Stats() Stats
}

// statCounters are the Stats counters, updated without locks.
type statCounters struct {
	commits, commitNanos, syncs, syncNanos, recovered atomic.Int64
}

var _ StatsReporter = (*Embedded)(nil)

// Stats implements StatsReporter.
func (e *Embedded) Stats() Stats {
	pending := e.pending.count()
	c := &e.stats
	return Stats{
		Commits: c.commits.Load(), CommitTime: time.Duration(c.commitNanos.Load()),
		JournalSyncs: c.syncs.Load(), JournalSyncTime: time.Duration(c.syncNanos.Load()),
		PendingReservations: int64(pending), JournalBytes: e.journal.size.Load(),
		RecoveredReservations: c.recovered.Load(),
	}
}

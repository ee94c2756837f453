package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"

	"github.com/agentcost/agentcost/internal/money"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// Reserve implements Ledger. The reservation is durable in the journal when it returns; see
// Embedded.
func (e *Embedded) Reserve(ctx context.Context, req ReserveRequest) (Reservation, error) {
	checks, err := e.cal.prepareReserve(&req)
	if err != nil {
		return Reservation{}, err
	}
	if err := e.check(ctx); err != nil {
		return Reservation{}, err
	}
	r := newReservation(req, checks)
	rec := encodeReservation(r)

	e.reserveMu.Lock()
	vals, err := e.reserveCheck(r, checks)
	if err != nil {
		e.reserveMu.Unlock()
		return Reservation{}, err
	}
	seq := e.nextSeq + 1
	if err := e.journal.append(seq, rec); err != nil {
		e.reserveMu.Unlock()
		return Reservation{}, fmt.Errorf("reserving %q: %w", req.ID, err)
	}
	e.nextSeq = seq
	e.pending.mu.Lock()
	e.pending.add(seq, r, rec)
	n := e.pending.len()
	e.pending.mu.Unlock()
	e.reserveMu.Unlock()

	switch {
	case n >= maxPending:
		// The flusher is behind: apply everything before taking more.
		err := e.check(ctx)
		if err == nil {
			err = e.applyJournal()
		}
		if err != nil {
			return Reservation{}, fmt.Errorf("reserving %q: applying pending reservations: %w", req.ID, err)
		}
	case n >= flushAt:
		select {
		case e.flushNow <- struct{}{}:
		default:
		}
	}
	// A failure from here on leaves the reservation in place (it is journaled and will be
	// applied); the caller releases it or its TTL frees it. With durability "process" the record
	// is in the page cache now, which a process crash keeps; the syncer fsyncs it within
	// SyncInterval (a failed sync fails every later reservation, as it does here).
	if err := e.journal.durable(seq, e.cfg.Durability == DurabilityProcess); err != nil {
		return Reservation{}, fmt.Errorf("reserving %q: %w", req.ID, err)
	}
	out := Reservation{ID: r.ID, TraceID: r.TraceID, Estimate: r.Estimate, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
		Usage: make([]Usage, len(checks))}
	for i, ch := range checks {
		out.Usage[i] = usage(ch, vals[i].spent, money.AddSat(vals[i].reserved, r.Estimate), e.cal.loc)
	}
	return out, nil
}

// reserveCheck returns each check's counter as the file and the pending reservations have it, or
// the error that refuses the reservation: ErrExists, or an *ExhaustedError for the first check
// the estimate does not fit. The caller holds reserveMu.
func (e *Embedded) reserveCheck(r *reservation, checks []preparedCheck) ([]counterValue, error) {
	vals := make([]counterValue, len(checks))
	e.pending.mu.RLock()
	defer e.pending.mu.RUnlock()
	if e.pending.has(r.ID) {
		return nil, fmt.Errorf("reservation %q: %w", r.ID, ErrExists)
	}
	err := e.db.View(func(tx *bolt.Tx) error {
		t := newTxn(tx)
		if t.res().Get([]byte(r.ID)) != nil {
			return fmt.Errorf("reservation %q: %w", r.ID, ErrExists)
		}
		applied := t.appliedSeq()
		for i, ch := range checks {
			v := e.pending.onto(t.counter(ch.counter), ch.counter, applied)
			vals[i] = v
			if !ch.Unlimited && money.AddSat(money.AddSat(v.spent, v.reserved), r.Estimate) > ch.Limit {
				return &ExhaustedError{Scope: ch.Scope, ID: ch.ID, Window: ch.Window, Spent: v.spent,
					Reserved: v.reserved, Estimate: r.Estimate, Limit: ch.Limit}
			}
		}
		return nil
	})
	return vals, err
}

// applyPending is the first step of every write transaction: it applies the journaled
// reservations the file does not have yet, as the reservation's own transaction used to, and
// returns the last sequence number applied.
func (e *Embedded) applyPending(t *txn) (uint64, error) {
	applied := t.appliedSeq()
	e.pending.mu.RLock()
	todo := e.pending.after(applied)
	e.pending.mu.RUnlock()
	if len(todo) == 0 {
		return applied, nil
	}
	deltas := map[counter]*delta{}
	for _, p := range todo {
		// The file cannot hold it yet: it records the last sequence number applied in the same
		// transaction, and Reserve refuses an id the file or the journal already has.
		r := p.res
		for _, k := range r.Counters {
			deltaFor(deltas, k).reserve += r.Estimate
		}
		if err := t.res().Put([]byte(r.ID), p.rec); err != nil {
			return 0, err
		}
		if err := t.resOpen().Put(openKey(r), nil); err != nil {
			return 0, err
		}
		if r.TraceID != "" {
			if err := t.resTrace().Put([]byte(r.TraceID), []byte(r.ID)); err != nil {
				return 0, err
			}
		}
	}
	if err := t.applyDeltas(deltas, e.now()); err != nil {
		return 0, err
	}
	last := todo[len(todo)-1].seq
	return last, t.meta().Put(metaJournalApplied, binary.BigEndian.AppendUint64(nil, last))
}

// applied runs after a write transaction committed with the journal applied up to seq.
func (e *Embedded) applied(seq uint64) {
	e.pending.mu.Lock()
	e.pending.remove(seq)
	e.pending.mu.Unlock()
	e.journal.markDurable(seq)
}

// applyJournal commits the journaled reservations the file does not have yet (every write
// transaction applies them first, so an empty one does); nothing when none are pending.
func (e *Embedded) applyJournal() error {
	if e.pending.count() == 0 {
		return nil
	}
	return e.commits.do(e.db, func(*txn) error { return nil })
}

// flushPending applies the journaled reservations to the file, and empties the journal once it
// has grown past journalCompactBytes.
func (e *Embedded) flushPending() {
	if err := e.applyJournal(); err != nil {
		e.log.Warn("Applying journaled reservations to the ledger failed; retrying", zap.Error(err))
		return
	}
	if e.journal.size.Load() > journalCompactBytes {
		if err := e.drain(); err != nil {
			e.log.Warn("Emptying the reservation journal failed", zap.Error(err))
		}
	}
}

// drain applies everything pending and empties the journal, holding off new reservations until
// it is done.
func (e *Embedded) drain() error {
	e.reserveMu.Lock()
	defer e.reserveMu.Unlock()
	if err := e.applyJournal(); err != nil {
		return fmt.Errorf("applying journaled reservations: %w", err)
	}
	if e.pending.count() > 0 || e.journal.size.Load() == 0 {
		return nil
	}
	return e.journal.reset()
}

// recover opens the journal and applies what it holds beyond the file: reservations answered
// before a crash that the flusher had not applied yet. A record cut short by the crash ends the
// journal; it was never answered, so nothing acknowledged is lost.
func (e *Embedded) recover() error {
	path := filepath.Join(e.cfg.Directory, JournalFileName)
	j, recs, torn, err := openJournal(path)
	if err != nil {
		return err
	}
	e.journal = j
	j.stats = &e.stats
	var applied uint64
	if err := e.db.View(func(tx *bolt.Tx) error { applied = newTxn(tx).appliedSeq(); return nil }); err != nil {
		return fmt.Errorf("reading the ledger's journal position: %w", err)
	}
	e.nextSeq = applied
	replayed := 0
	for _, r := range recs {
		if r.seq > applied {
			e.pending.add(r.seq, r.res, r.rec)
			replayed++
		}
		e.nextSeq = max(e.nextSeq, r.seq)
	}
	if torn >= 0 {
		e.log.Warn("The reservation journal ends in a record cut short by a crash; it was never answered and is dropped",
			zap.String("path", path), zap.Int64("offset", torn), zap.Int64("dropped_bytes", j.size.Load()-torn))
	}
	e.stats.recovered.Store(int64(replayed))
	if replayed > 0 {
		e.log.Info("Applying reservations recovered from the journal", zap.Int("reservations", replayed))
	}
	if err := e.drain(); err != nil {
		return fmt.Errorf("recovering reservation journal %q: %w", path, err)
	}
	return nil
}

package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// FileName is the embedded backend's file inside Config.Directory.
const FileName = "ledger.db"

// Buckets of the embedded file.
var (
	// counters: window code | start (8, big endian Unix seconds) | len(scope) | scope | id →
	// spent (8) | reserved (8) | last touched (8, Unix nanoseconds).
	bucketCounters = []byte("counters")
	// kv: namespace | key → expiry (8, Unix nanoseconds) | value. Namespaces: kvSpan, kvPut.
	bucketKV = []byte("kv")
	// expiry: expiry (8) | namespace | key → nothing; the order in which records are pruned.
	bucketExpiry = []byte("expiry")
	// reservations: id → reservation (rescodec.go); reservations_open: expiry (8) | id; by_trace: trace → id.
	bucketRes      = []byte("reservations")
	bucketResOpen  = []byte("reservations_open")
	bucketResTrace = []byte("reservations_by_trace")
	// leases: len(key) (uvarint) | key | lease id → expiry (8, Unix nanoseconds).
	bucketLeases = []byte("leases")
	// rates: key → theoretical arrival time (8, Unix microseconds).
	bucketRates = []byte("rates")
	// approvals: id → JSON approval.
	bucketApprovals = []byte("approvals")
	// approvals_pending: len(agent) (uvarint) | agent | id → expiry (8, Unix nanoseconds) of each
	// approval created pending and not yet resolved; an entry past its expiry is stale.
	bucketApprovalsPending = []byte("approvals_pending")
	// approvals_by_created: created (8, Unix microseconds) | id → nothing; the list order.
	bucketApprovalsByCreated = []byte("approvals_by_created")
	// anomalies: level ":" agent → time (8, Unix nanoseconds).
	bucketAnomalies = []byte("anomalies")
	// meta: metaJournalApplied → the sequence number (8) of the last journal record applied.
	bucketMeta = []byte("meta")

	allBuckets = [][]byte{bucketCounters, bucketKV, bucketExpiry, bucketRes, bucketResOpen, bucketResTrace,
		bucketLeases, bucketRates, bucketApprovals, bucketAnomalies, bucketMeta, bucketApprovalsPending,
		bucketApprovalsByCreated}
)

var metaJournalApplied = []byte("journal_applied")

// Namespaces of the kv and expiry buckets.
const (
	kvSpan        byte = 's' // booked span ids
	kvCall        byte = 'c' // an LLM span's call key: trace+span -> CallKey (same-call rule)
	kvChild       byte = 'k' // an LLM child's call key under its parent: trace+parent+0+CallKey
	kvPut         byte = 'p' // PutIfAbsent records
	kvReservation byte = 'r' // settled reservations (expiry bucket only)
	kvApproval    byte = 'a' // approvals (expiry bucket only)
)

// pruneBatch bounds the records one maintenance transaction deletes per kind.
const pruneBatch = 10000

// Embedded is the embedded backend: one bbolt file, one process. Every mutation but Reserve is one
// bbolt read-write transaction, committed (and fsynced) before the method returns; bbolt's single
// writer makes each one atomic, and concurrent writers share a transaction (groupcommit.go).
//
// Reserve, the decision hot path, is made durable in the reservation journal instead: under one
// lock it checks the limits against the file plus the reservations not yet applied to it, appends
// the reservation to the journal and waits for a (shared) fdatasync. Every write transaction first
// applies the journaled reservations, so Book, Release, ExpireDue and the rest see them as if they
// had been committed one by one; a flusher applies them every flushInterval, and opening the file
// after a crash applies whatever the journal holds beyond the file.
type Embedded struct {
	db  *bolt.DB
	cfg Config
	cal calendar
	log *zap.Logger
	now func() time.Time

	mu        sync.Mutex
	closed    bool
	stop      chan struct{}
	done      chan struct{}
	runCursor []byte // where the incremental scan of run counters resumes

	commits groupCommit

	// reserveMu serialises reservations: the limit check, the journal append and the insertion
	// into pending; nextSeq and the journal's append side belong to it.
	reserveMu sync.Mutex
	nextSeq   uint64
	journal   *journal
	pending   pendingSet
	flushNow  chan struct{}

	stats statCounters
}

// flushInterval is how often the journaled reservations are applied to the bbolt file; a
// flush also starts once flushAt are pending, and Reserve waits for one beyond maxPending.
const (
	flushInterval = 10 * time.Millisecond
	flushAt       = 1024
	maxPending    = 16384
)

var _ Ledger = (*Embedded)(nil)

// OpenEmbedded opens (creating if needed) the ledger file in cfg.Directory and starts background
// maintenance every cfg.MaintenanceInterval.
func OpenEmbedded(cfg Config, set Settings) (*Embedded, error) {
	cfg = cfg.withDefaults()
	cfg.Backend = BackendEmbedded
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	set = set.withDefaults()
	loc, _ := cfg.Location()
	if err := os.MkdirAll(cfg.Directory, 0o700); err != nil {
		return nil, fmt.Errorf("creating ledger directory %q: %w", cfg.Directory, err)
	}
	path := filepath.Join(cfg.Directory, FileName)
	// The freelist is not written on every commit (as etcd runs bbolt): a commit writes fewer
	// pages, and opening the file rebuilds the freelist by walking the tree instead.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("opening ledger file %q (is another collector using it?): %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return indexApprovals(newTxn(tx))
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("initialising ledger file %q: %w", path, err)
	}
	e := &Embedded{db: db, cfg: cfg, cal: calendar{loc}, log: set.Logger, now: set.Now,
		stop: make(chan struct{}), done: make(chan struct{}), flushNow: make(chan struct{}, 1)}
	e.commits.before, e.commits.after = e.applyPending, e.applied
	e.commits.stats = &e.stats
	if err := e.recover(); err != nil {
		_ = e.journal.close()
		_ = db.Close()
		return nil, err
	}
	go e.maintain()
	set.Logger.Info("Ledger opened", zap.String("backend", BackendEmbedded), zap.String("path", path),
		zap.String("time_zone", loc.String()))
	return e, nil
}

// Location returns the time zone that aligns every window.
func (e *Embedded) Location() *time.Location { return e.cal.loc }

// Close stops maintenance and closes the file.
func (e *Embedded) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.stop)
	e.mu.Unlock()
	<-e.done
	err := e.drain()
	return errors.Join(err, e.journal.close(), e.db.Close())
}

func (e *Embedded) maintain() {
	defer close(e.done)
	t := time.NewTicker(e.cfg.MaintenanceInterval)
	defer t.Stop()
	flush := time.NewTicker(flushInterval)
	defer flush.Stop()
	// The syncer of durability "process" runs on its own, so that a slow flush or prune cannot
	// hold an unsynced reservation past SyncInterval.
	if e.cfg.Durability == DurabilityProcess {
		synced := make(chan struct{})
		defer func() { <-synced }()
		go func() {
			defer close(synced)
			e.syncJournal()
		}()
	}
	for {
		select {
		case <-e.stop:
			return
		case <-flush.C:
			e.flushPending()
		case <-e.flushNow:
			e.flushPending()
		case <-t.C:
			e.pruneAll()
		}
	}
}

// syncJournal fsyncs the reservation journal every SyncInterval until the ledger closes, when
// anything was written since the last sync.
func (e *Embedded) syncJournal() {
	t := time.NewTicker(e.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			if err := e.journal.syncWritten(); err != nil {
				e.log.Error("Syncing the reservation journal failed; reservations are refused from now on", zap.Error(err))
				return
			}
		}
	}
}

func (e *Embedded) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	return nil
}

func (e *Embedded) update(ctx context.Context, fn func(*txn) error) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	return e.commits.do(e.db, fn)
}

func (e *Embedded) view(ctx context.Context, fn func(*txn) error) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	return e.db.View(func(tx *bolt.Tx) error { return fn(newTxn(tx)) })
}

// txn wraps a bbolt transaction; it opens the ledger's buckets on first use, since most
// operations touch two or three of the ten.
type txn struct {
	tx      *bolt.Tx
	buckets [len(bucketNames)]*bolt.Bucket
}

// bucketNames lists the buckets in txn.buckets order.
var bucketNames = [...][]byte{bucketCounters, bucketKV, bucketExpiry, bucketRes, bucketResOpen, bucketResTrace,
	bucketLeases, bucketRates, bucketApprovals, bucketAnomalies, bucketMeta, bucketApprovalsPending,
	bucketApprovalsByCreated}

func newTxn(tx *bolt.Tx) *txn { return &txn{tx: tx} }

func (t *txn) bucket(i int) *bolt.Bucket {
	if t.buckets[i] == nil {
		t.buckets[i] = t.tx.Bucket(bucketNames[i])
	}
	return t.buckets[i]
}

func (t *txn) counters() *bolt.Bucket  { return t.bucket(0) }
func (t *txn) kv() *bolt.Bucket        { return t.bucket(1) }
func (t *txn) expiry() *bolt.Bucket    { return t.bucket(2) }
func (t *txn) res() *bolt.Bucket       { return t.bucket(3) }
func (t *txn) resOpen() *bolt.Bucket   { return t.bucket(4) }
func (t *txn) resTrace() *bolt.Bucket  { return t.bucket(5) }
func (t *txn) leases() *bolt.Bucket    { return t.bucket(6) }
func (t *txn) rates() *bolt.Bucket     { return t.bucket(7) }
func (t *txn) approvals() *bolt.Bucket { return t.bucket(8) }
func (t *txn) anomalies() *bolt.Bucket { return t.bucket(9) }
func (t *txn) meta() *bolt.Bucket      { return t.bucket(10) }

// approvalsPending is the per-agent index of pending approvals (bucketApprovalsPending).
func (t *txn) approvalsPending() *bolt.Bucket { return t.bucket(11) }

// approvalsByCreated is the list-order index of approvals (bucketApprovalsByCreated).
func (t *txn) approvalsByCreated() *bolt.Bucket { return t.bucket(12) }

// appliedSeq is the sequence number of the last journal record applied to the file.
func (t *txn) appliedSeq() uint64 {
	if v := t.meta().Get(metaJournalApplied); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// counterValue is a counter's stored value.
type counterValue struct {
	spent, reserved money.Nanos
	touched         int64
}

func counterKey(k counter) []byte {
	b := make([]byte, 0, 10+len(k.Scope)+len(k.ID))
	b = append(b, windowCode(k.Window))
	b = binary.BigEndian.AppendUint64(b, uint64(k.Start))
	b = append(b, byte(len(k.Scope)))
	b = append(b, k.Scope...)
	return append(b, k.ID...)
}

func (e *Embedded) decodeCounterKey(b []byte) (counter, bool) {
	if len(b) < 10 || len(b) < 10+int(b[9]) {
		return counter{}, false
	}
	w := windowFromCode(b[0])
	start := int64(binary.BigEndian.Uint64(b[1:9]))
	n := int(b[9])
	k := counter{Scope: Scope(b[10 : 10+n]), ID: string(b[10+n:]), Window: w}
	if w != Lifetime {
		s, end := WindowBounds(w, time.Unix(start, 0), e.cal.loc)
		k.Start, k.End = s.Unix(), end.Unix()
	}
	return k, true
}

func (t *txn) counter(k counter) counterValue {
	return decodeCounterValue(t.counters().Get(counterKey(k)))
}

func decodeCounterValue(v []byte) counterValue {
	if len(v) < 24 {
		return counterValue{}
	}
	return counterValue{
		spent:    money.Nanos(binary.BigEndian.Uint64(v[0:8])),
		reserved: money.Nanos(binary.BigEndian.Uint64(v[8:16])),
		touched:  int64(binary.BigEndian.Uint64(v[16:24])),
	}
}

func (t *txn) putCounter(k counter, v counterValue) error {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b[0:8], uint64(v.spent))
	binary.BigEndian.PutUint64(b[8:16], uint64(v.reserved))
	binary.BigEndian.PutUint64(b[16:24], uint64(v.touched))
	return t.counters().Put(counterKey(k), b)
}

// delta is a pending change to one counter.
type delta struct {
	spent, reserve, release money.Nanos
}

// applyDeltas writes pending counter changes; reserved never drops below zero.
func (t *txn) applyDeltas(deltas map[counter]*delta, now time.Time) error {
	for k, d := range deltas {
		v := t.counter(k)
		v.spent = money.AddSat(v.spent, d.spent)
		v.reserved = max(money.AddSat(v.reserved, d.reserve)-d.release, 0)
		v.touched = now.UnixNano()
		if err := t.putCounter(k, v); err != nil {
			return err
		}
	}
	return nil
}

func deltaFor(m map[counter]*delta, k counter) *delta {
	d := m[k]
	if d == nil {
		d = &delta{}
		m[k] = d
	}
	return d
}

func be64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// kvGet returns a live record's value (expiry after now).
func (t *txn) kvGet(ns byte, key string, now time.Time) ([]byte, bool) {
	v := t.kv().Get(append([]byte{ns}, key...))
	if len(v) < 8 || int64(binary.BigEndian.Uint64(v[:8])) <= now.UnixNano() {
		return nil, false
	}
	return v[8:], true
}

func (t *txn) kvPut(ns byte, key string, value []byte, expires time.Time) error {
	k := append([]byte{ns}, key...)
	if err := t.kv().Put(k, append(be64(expires.UnixNano()), value...)); err != nil {
		return err
	}
	return t.expiry().Put(append(be64(expires.UnixNano()), k...), nil)
}

func (t *txn) expireLater(ns byte, key string, when time.Time) error {
	return t.expiry().Put(append(append(be64(when.UnixNano()), ns), key...), nil)
}

func spanKey(trace, span string) string {
	return string(binary.AppendUvarint(nil, uint64(len(trace)))) + trace + span
}

// sameCall applies the same-call rule to a new spend with a CallKey and records it: it reports
// whether the span's direct parent was recorded with the same call key, or the span is the direct
// parent of a recorded child with the same call key. Either way the span's own call key and its
// place under its parent are recorded until expires, so a later parent or child finds it.
func (t *txn) sameCall(sp Spend, now, expires time.Time) (bool, error) {
	if sp.CallKey == "" {
		return false, nil
	}
	same := false
	if sp.ParentSpanID != "" {
		if v, ok := t.kvGet(kvCall, spanKey(sp.TraceID, sp.ParentSpanID), now); ok && string(v) == sp.CallKey {
			same = true
		}
	}
	if !same {
		_, same = t.kvGet(kvChild, childKey(sp.TraceID, sp.SpanID, sp.CallKey), now)
	}
	if err := t.kvPut(kvCall, spanKey(sp.TraceID, sp.SpanID), []byte(sp.CallKey), expires); err != nil {
		return false, err
	}
	if sp.ParentSpanID != "" {
		if err := t.kvPut(kvChild, childKey(sp.TraceID, sp.ParentSpanID, sp.CallKey), nil, expires); err != nil {
			return false, err
		}
	}
	return same, nil
}

// childKey is the kvChild key of a child with callKey under parent.
func childKey(trace, parent, callKey string) string {
	return spanKey(trace, parent) + "\x00" + callKey
}

func (t *txn) reservation(id string) (*reservation, error) {
	v := t.res().Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	r, err := decodeReservationRecord(v)
	if err != nil {
		return nil, fmt.Errorf("decoding reservation %q: %w", id, err)
	}
	return r, nil
}

func (t *txn) putReservation(r *reservation) error {
	return t.res().Put([]byte(r.ID), encodeReservation(r))
}

func openKey(r *reservation) []byte { return append(be64(r.ExpiresAt.UnixNano()), r.ID...) }

// Book implements Ledger.
func (e *Embedded) Book(ctx context.Context, spends []Spend) (BookResult, error) {
	for i := range spends {
		if err := spends[i].validate(); err != nil {
			return BookResult{}, fmt.Errorf("spend %d: %w", i, err)
		}
	}
	if len(spends) == 0 {
		return BookResult{}, nil
	}
	clock := e.now()
	var res BookResult
	err := e.update(ctx, func(t *txn) error {
		res = BookResult{New: make([]bool, len(spends)), Same: make([]bool, len(spends))}
		deltas := map[counter]*delta{}
		loaded := map[string]*reservation{}
		dirty := map[string]bool{}
		seen := map[string]bool{}
		anomalies := map[string]time.Time{}
		load := func(id string) (*reservation, error) {
			if r, ok := loaded[id]; ok {
				return r, nil
			}
			r, err := t.reservation(id)
			loaded[id] = r
			return r, err
		}
		totals := map[string]int64{}
		count := func(ds []totalDelta) {
			for _, d := range ds {
				totals[d.Key] = money.AddSat(totals[d.Key], d.N)
			}
		}
		for i, sp := range spends {
			sp.Time = at(sp.Time)
			if sp.Unbooked != "" {
				if sp.identified() {
					sk := spanKey(sp.TraceID, unbookedSpanID(sp.SpanID, sp.Unbooked))
					if _, live := t.kvGet(kvSpan, sk, clock); live || seen[sk] {
						continue
					}
					seen[sk] = true
					if err := t.kvPut(kvSpan, sk, nil, clock.Add(e.cfg.IdempotencyHorizon)); err != nil {
						return err
					}
				}
				count(unbookedTotals(sp))
				continue
			}
			sk := spanKey(sp.TraceID, sp.SpanID)
			if _, live := t.kvGet(kvSpan, sk, clock); live || seen[sk] {
				res.Duplicates++
				count([]totalDelta{{duplicateKey, 1}})
				continue
			}
			seen[sk] = true
			if err := t.kvPut(kvSpan, sk, nil, clock.Add(e.cfg.IdempotencyHorizon)); err != nil {
				return err
			}
			if same, err := t.sameCall(sp, clock, clock.Add(e.cfg.IdempotencyHorizon)); err != nil {
				return err
			} else if same {
				res.SameCall++
				res.SameCallCost = money.AddSat(res.SameCallCost, sp.Cost)
				res.Same[i] = true
				count(sameCallTotals(sp))
				continue
			}
			res.Booked++
			res.New[i] = true
			for _, k := range e.cal.bookCounters(sp.Agent, sp.Team, sp.Model, sp.Run(), sp.Time) {
				deltaFor(deltas, k).spent += sp.Cost
			}
			if sp.flagged() && sp.Agent != "" && sp.Time.After(anomalies[sp.Agent]) {
				anomalies[sp.Agent] = sp.Time
			}
			var match *reservation
			mismatched := false
			if sp.DecisionID != "" {
				r, err := load(sp.DecisionID)
				if err != nil {
					return err
				}
				if r != nil && !r.Settled {
					if r.accepts(sp) {
						match = r
					} else {
						res.Mismatched++
						mismatched = true
					}
				}
			}
			count(bookedTotals(sp, mismatched))
			if match == nil {
				if id := t.resTrace().Get([]byte(sp.TraceID)); id != nil {
					r, err := load(string(id))
					if err != nil {
						return err
					}
					if r != nil && !r.Settled && r.accepts(sp) {
						match = r
					}
				}
			}
			if match != nil {
				take := match.commit(sp)
				dirty[match.ID] = true
				res.Matched++
				for _, k := range match.Counters {
					deltaFor(deltas, k).release += take
				}
			}
		}
		for id := range dirty {
			if err := t.putReservation(loaded[id]); err != nil {
				return err
			}
		}
		for agent, when := range anomalies {
			if err := t.recordAnomaly(agent, LevelCall, when); err != nil {
				return err
			}
		}
		if err := t.addTotals(totals, clock); err != nil {
			return err
		}
		return t.applyDeltas(deltas, clock)
	})
	if err != nil {
		return BookResult{}, fmt.Errorf("booking %d spends: %w", len(spends), err)
	}
	return res, nil
}

func usage(ch preparedCheck, spent, reserved money.Nanos, loc *time.Location) Usage {
	u := Usage{Check: ch.Check, Spent: spent, Reserved: reserved}
	if ch.counter.Window != Lifetime {
		u.Start, u.End = time.Unix(ch.counter.Start, 0).In(loc), time.Unix(ch.counter.End, 0).In(loc)
	}
	return u
}

// settle settles an open reservation inside t: frees its remainder, books a reported cost, drops
// its indexes and schedules the record's removal after the idempotency horizon.
func (e *Embedded) settle(t *txn, r *reservation, reason SettleReason, reported money.Nanos, hasReported bool, now time.Time) (Settlement, error) {
	deltas := map[counter]*delta{}
	for _, k := range r.Counters {
		deltaFor(deltas, k).release += r.Remaining
	}
	if err := t.resOpen().Delete(openKey(r)); err != nil {
		return Settlement{}, err
	}
	if r.settle(reason, reported, hasReported, now) {
		for _, k := range e.cal.bookCounters(r.Agent, r.Team, "", r.RunID, now) {
			deltaFor(deltas, k).spent += reported
		}
	}
	if r.TraceID != "" && string(t.resTrace().Get([]byte(r.TraceID))) == r.ID {
		if err := t.resTrace().Delete([]byte(r.TraceID)); err != nil {
			return Settlement{}, err
		}
	}
	if err := t.putReservation(r); err != nil {
		return Settlement{}, err
	}
	clock := e.now()
	if err := t.expireLater(kvReservation, r.ID, clock.Add(e.cfg.SettledRetention)); err != nil {
		return Settlement{}, err
	}
	return r.settlement(), t.applyDeltas(deltas, clock)
}

// Release implements Ledger.
func (e *Embedded) Release(ctx context.Context, req ReleaseRequest) (Settlement, error) {
	if err := validateRelease(&req); err != nil {
		return Settlement{}, err
	}
	var out Settlement
	err := e.update(ctx, func(t *txn) error {
		r, err := t.reservation(req.ID)
		if err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("reservation %q: %w", req.ID, ErrNotFound)
		}
		if r.Settled {
			out = r.settlement()
			out.AlreadySettled = true
			return nil
		}
		reported, clipped := clipReported(req, r.Estimate)
		out, err = e.settle(t, r, ReasonReleased, reported, req.HasReported, req.Time)
		if req.HasReported {
			out.ReportedClaimed, out.ReportedClipped = req.ReportedCost, clipped && out.Source == decisionapi.SourceReported
		}
		return err
	})
	return out, err
}

// ExpireDue implements Ledger.
func (e *Embedded) ExpireDue(ctx context.Context, now time.Time) ([]Settlement, error) {
	now = at(now)
	var out []Settlement
	err := e.update(ctx, func(t *txn) error {
		out = nil
		var ids []string
		c := t.resOpen().Cursor()
		for k, _ := c.First(); len(k) >= 8 && int64(binary.BigEndian.Uint64(k[:8])) <= now.UnixNano(); k, _ = c.Next() {
			ids = append(ids, string(k[8:]))
		}
		for _, id := range ids {
			r, err := t.reservation(id)
			if err != nil {
				return err
			}
			if r == nil || r.Settled {
				continue
			}
			s, err := e.settle(t, r, ReasonExpired, 0, false, now)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		return nil
	})
	return out, err
}

// State implements Ledger.
func (e *Embedded) State(ctx context.Context, scope Scope, id string, window Window, now time.Time) (State, error) {
	r, err := e.Read(ctx, ReadRequest{States: []StateQuery{{Scope: scope, ID: id, Window: window}}, Time: now})
	if err != nil {
		return State{}, err
	}
	return r.States[0], nil
}

// Read implements Ledger.
func (e *Embedded) Read(ctx context.Context, req ReadRequest) (ReadResult, error) {
	now := at(req.Time)
	keys, err := e.cal.queryCounters(req.States, now)
	if err != nil {
		return ReadResult{}, err
	}
	out := ReadResult{States: make([]State, len(keys))}
	e.pending.mu.RLock()
	defer e.pending.mu.RUnlock()
	err = e.view(ctx, func(t *txn) error {
		applied := t.appliedSeq()
		for i, k := range keys {
			v := e.pending.onto(t.counter(k), k, applied)
			out.States[i] = stateOf(k, v.spent, v.reserved, now, e.cal.loc)
		}
		if req.Agent != "" {
			out.LastCallAnomaly = t.lastAnomaly(req.Agent, LevelCall, e.cal.loc)
			out.LastActionAnomaly = t.lastAnomaly(req.Agent, LevelAction, e.cal.loc)
			out.LastRunAnomaly = t.lastAnomaly(req.Agent, LevelRun, e.cal.loc)
		}
		if req.Freezes {
			var err error
			if out.Freezes, err = activeFreezesTx(t, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ReadResult{}, err
	}
	return out, nil
}

func stateOf(k counter, spent, reserved money.Nanos, now time.Time, loc *time.Location) State {
	s := State{Scope: k.Scope, ID: k.ID, Window: k.Window, At: now, Spent: spent, Reserved: reserved}
	if k.Window != Lifetime {
		s.Start, s.End = time.Unix(k.Start, 0).In(loc), time.Unix(k.End, 0).In(loc)
	}
	return s
}

// Snapshot implements Ledger.
func (e *Embedded) Snapshot(ctx context.Context, now time.Time) (Snapshot, error) {
	now = at(now)
	out := Snapshot{At: now}
	// Apply the journaled reservations first, so that the counters they created are listed.
	if err := e.check(ctx); err != nil {
		return out, err
	}
	if err := e.applyJournal(); err != nil {
		return out, err
	}
	e.pending.mu.RLock()
	defer e.pending.mu.RUnlock()
	err := e.view(ctx, func(t *txn) error {
		applied := t.appliedSeq()
		c := t.counters().Cursor()
		for _, w := range CalendarWindows {
			prefix := counterKey(e.cal.counter("", "", w, now))[:9]
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				key, ok := e.decodeCounterKey(k)
				cv := e.pending.onto(decodeCounterValue(v), key, applied)
				if !ok || cv.spent == 0 && cv.reserved == 0 {
					continue
				}
				if len(out.States) >= e.cfg.SnapshotLimit {
					out.Truncated = true
					return nil
				}
				out.States = append(out.States, stateOf(key, cv.spent, cv.reserved, now, e.cal.loc))
			}
		}
		return nil
	})
	return out, err
}

func leasePrefix(key string) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(key))), key...)
}

// AcquireLease implements Ledger.
func (e *Embedded) AcquireLease(ctx context.Context, key string, limit int, ttl time.Duration, now time.Time) (string, bool, time.Duration, error) {
	if err := validateLease(key, limit, ttl); err != nil {
		return "", false, 0, err
	}
	now = at(now)
	var (
		id         string
		ok         bool
		retryAfter time.Duration
	)
	err := e.update(ctx, func(t *txn) error {
		id, ok, retryAfter = "", false, 0
		prefix := leasePrefix(key)
		var expired [][]byte
		live, earliest := 0, int64(math.MaxInt64)
		c := t.leases().Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			exp := int64(binary.BigEndian.Uint64(v))
			if exp <= now.UnixNano() {
				expired = append(expired, slices.Clone(k))
				continue
			}
			live++
			earliest = min(earliest, exp)
		}
		for _, k := range expired {
			if err := t.leases().Delete(k); err != nil {
				return err
			}
		}
		if live >= limit {
			retryAfter = time.Duration(earliest - now.UnixNano())
			return nil
		}
		id, ok = newLeaseID(), true
		return t.leases().Put(append(prefix, id...), be64(now.Add(ttl).UnixNano()))
	})
	return id, ok, retryAfter, err
}

// ReleaseLease implements Ledger.
func (e *Embedded) ReleaseLease(ctx context.Context, key, leaseID string) error {
	return e.update(ctx, func(t *txn) error { return t.leases().Delete(append(leasePrefix(key), leaseID...)) })
}

// AllowRate implements Ledger.
func (e *Embedded) AllowRate(ctx context.Context, key string, limit int, per time.Duration, now time.Time) (bool, time.Duration, error) {
	if key == "" {
		return false, 0, errors.New("rate limit key is empty")
	}
	interval, period, err := gcraInterval(limit, per)
	if err != nil {
		return false, 0, err
	}
	now = at(now)
	var (
		ok         bool
		retryAfter time.Duration
	)
	err = e.update(ctx, func(t *txn) error {
		var tat int64
		if v := t.rates().Get([]byte(key)); len(v) == 8 {
			tat = int64(binary.BigEndian.Uint64(v))
		}
		var newTAT int64
		newTAT, ok, retryAfter = gcra(tat, micros(now), interval, period)
		if !ok {
			return nil
		}
		return t.rates().Put([]byte(key), be64(newTAT))
	})
	return ok, retryAfter, err
}

// PutIfAbsent implements Ledger.
func (e *Embedded) PutIfAbsent(ctx context.Context, key string, value []byte, ttl time.Duration) ([]byte, bool, error) {
	if key == "" {
		return nil, false, errors.New("idempotency key is empty")
	}
	if ttl <= 0 {
		return nil, false, fmt.Errorf("idempotency ttl %v is not positive", ttl)
	}
	var (
		existing []byte
		created  bool
	)
	err := e.update(ctx, func(t *txn) error {
		existing, created = nil, false
		now := e.now()
		if v, ok := t.kvGet(kvPut, key, now); ok {
			existing = slices.Clone(v)
			return nil
		}
		created = true
		return t.kvPut(kvPut, key, value, now.Add(ttl))
	})
	return existing, created, err
}

func (t *txn) approval(id string) (Approval, error) {
	v := t.approvals().Get([]byte(id))
	if v == nil {
		return Approval{}, fmt.Errorf("approval %q: %w", id, ErrNotFound)
	}
	var a Approval
	if err := json.Unmarshal(v, &a); err != nil {
		return Approval{}, fmt.Errorf("decoding approval %q: %w", id, err)
	}
	return a, nil
}

func (t *txn) putApproval(a Approval) error {
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return t.approvals().Put([]byte(a.ID), v)
}

// CreateApproval implements Ledger.
func (e *Embedded) CreateApproval(ctx context.Context, a Approval, maxPending int) (Approval, error) {
	a.CreatedAt = at(a.CreatedAt)
	if err := a.validate(); err != nil {
		return Approval{}, err
	}
	a.State, a.Decision, a.ConsumedAt = decisionapi.ApprovalPending, nil, time.Time{}
	err := e.update(ctx, func(t *txn) error {
		if t.approvals().Get([]byte(a.ID)) != nil {
			return fmt.Errorf("approval %q: %w", a.ID, ErrExists)
		}
		if maxPending > 0 {
			n, err := t.countPending(a.Agent, a.CreatedAt)
			if err != nil {
				return err
			}
			if n >= maxPending {
				return &PendingCapError{Agent: a.Agent, Max: maxPending}
			}
		}
		if err := t.putApproval(a); err != nil {
			return err
		}
		if err := t.approvalsPending().Put(pendingKey(a.Agent, a.ID), be64(a.ExpiresAt.UnixNano())); err != nil {
			return err
		}
		if err := t.approvalsByCreated().Put(approvalIndexKey(a.Cursor()), nil); err != nil {
			return err
		}
		return t.expireLater(kvApproval, a.ID, a.ExpiresAt.Add(e.cfg.ApprovalRetention))
	})
	return a, err
}

// countPending counts agent's pending approvals at now and deletes the index entries of those
// that expired meanwhile. Resolving removes an entry, so the live entries are at most the cap.
func (t *txn) countPending(agent string, now time.Time) (int, error) {
	prefix := pendingPrefix(agent)
	var stale [][]byte
	n := 0
	c := t.approvalsPending().Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) <= now.UnixNano() {
			stale = append(stale, slices.Clone(k))
			continue
		}
		n++
	}
	for _, k := range stale {
		if err := t.approvalsPending().Delete(k); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// GetApproval implements Ledger.
func (e *Embedded) GetApproval(ctx context.Context, id string, now time.Time) (Approval, error) {
	var a Approval
	err := e.view(ctx, func(t *txn) error {
		var err error
		a, err = t.approval(id)
		return err
	})
	return a.effective(at(now)), err
}

// ListApprovals implements Ledger. It walks the list-order index from the cursor, reading
// approvals until limit match the state.
func (e *Embedded) ListApprovals(ctx context.Context, state decisionapi.ApprovalState, after ApprovalCursor, limit int, now time.Time) ([]Approval, error) {
	if _, err := decisionapi.ParseApprovalState(string(state)); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	now = at(now)
	var out []Approval
	err := e.view(ctx, func(t *txn) error {
		c := t.approvalsByCreated().Cursor()
		var k []byte
		if after.IsZero() {
			k, _ = c.First()
		} else {
			seek := approvalIndexKey(after)
			if k, _ = c.Seek(seek); bytes.Equal(k, seek) {
				k, _ = c.Next()
			}
		}
		for ; k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) <= 8 {
				continue
			}
			a, err := t.approval(string(k[8:]))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if a = a.effective(now); state == "" || a.State == state {
				out = append(out, a)
			}
		}
		return nil
	})
	return out, err
}

// ResolveApproval implements Ledger.
func (e *Embedded) ResolveApproval(ctx context.Context, id string, res Resolution) (Approval, error) {
	if err := res.validate(); err != nil {
		return Approval{}, err
	}
	now := at(res.Time)
	return e.transition(ctx, id, func(a Approval) (Approval, error) { return a.resolve(res, now) }, now)
}

// ConsumeApproval implements Ledger.
func (e *Embedded) ConsumeApproval(ctx context.Context, id string, now time.Time) (Approval, error) {
	now = at(now)
	return e.transition(ctx, id, func(a Approval) (Approval, error) { return a.consume(now) }, now)
}

func (e *Embedded) transition(ctx context.Context, id string, fn func(Approval) (Approval, error), now time.Time) (Approval, error) {
	var out Approval
	err := e.update(ctx, func(t *txn) error {
		a, err := t.approval(id)
		if err != nil {
			return err
		}
		if out, err = fn(a.effective(now)); err != nil {
			return err
		}
		if a.State == decisionapi.ApprovalPending && out.State != decisionapi.ApprovalPending {
			if err := t.approvalsPending().Delete(pendingKey(a.Agent, a.ID)); err != nil {
				return err
			}
		}
		return t.putApproval(out)
	})
	return out, err
}

func anomalyKey(agent string, level AnomalyLevel) []byte { return []byte(string(level) + ":" + agent) }

func (t *txn) recordAnomaly(agent string, level AnomalyLevel, when time.Time) error {
	k := anomalyKey(agent, level)
	if v := t.anomalies().Get(k); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) >= when.UnixNano() {
		return nil
	}
	return t.anomalies().Put(k, be64(when.UnixNano()))
}

// RecordAnomaly implements Ledger.
func (e *Embedded) RecordAnomaly(ctx context.Context, agent string, level AnomalyLevel, t time.Time) error {
	if err := level.validate(); err != nil {
		return err
	}
	if agent == "" {
		return errors.New("anomaly agent is empty")
	}
	t = at(t)
	return e.update(ctx, func(tx *txn) error { return tx.recordAnomaly(agent, level, t) })
}

// LastAnomaly implements Ledger.
func (e *Embedded) LastAnomaly(ctx context.Context, agent string, level AnomalyLevel) (time.Time, bool, error) {
	if err := level.validate(); err != nil {
		return time.Time{}, false, err
	}
	var when time.Time
	err := e.view(ctx, func(t *txn) error { when = t.lastAnomaly(agent, level, e.cal.loc); return nil })
	return when, !when.IsZero(), err
}

func (t *txn) lastAnomaly(agent string, level AnomalyLevel, loc *time.Location) time.Time {
	if v := t.anomalies().Get(anomalyKey(agent, level)); len(v) == 8 {
		return time.Unix(0, int64(binary.BigEndian.Uint64(v))).In(loc)
	}
	return time.Time{}
}

// Prune removes what is no longer needed at now: counters of windows that ended more than two
// instances ago, runs idle past run_retention, span ids past the idempotency horizon, settled
// reservations, expired leases, rate limits and idempotency records, and approvals past
// approval_retention. Background maintenance calls it; each call deletes a bounded amount.
func (e *Embedded) Prune(ctx context.Context, now time.Time) error {
	now = at(now)
	e.mu.Lock()
	cursor := e.runCursor
	e.mu.Unlock()
	var next []byte
	err := e.update(ctx, func(t *txn) error {
		var del [][]byte
		c := t.counters().Cursor()
		for _, w := range CalendarWindows {
			code := []byte{windowCode(w)}
			for k, _ := c.Seek(code); k != nil && k[0] == code[0] && len(del) < pruneBatch; k, _ = c.Next() {
				key, ok := e.decodeCounterKey(k)
				if !ok {
					continue
				}
				start, end := time.Unix(key.Start, 0), time.Unix(key.End, 0)
				if end.Add(retention(w, start, end)).After(now) {
					break // later keys start later
				}
				del = append(del, slices.Clone(k))
			}
		}
		// Runs: an incremental scan that resumes where the last one stopped.
		scanned := 0
		k, v := c.Seek(append([]byte{windowCode(Lifetime)}, cursor...))
		for ; k != nil && k[0] == windowCode(Lifetime) && scanned < pruneBatch; k, v = c.Next() {
			scanned++
			cv := decodeCounterValue(v)
			if cv.reserved == 0 && time.Unix(0, cv.touched).Add(e.cfg.RunRetention).Before(now) {
				del = append(del, slices.Clone(k))
			}
		}
		if k != nil && k[0] == windowCode(Lifetime) {
			next = slices.Clone(k[1:])
		}
		for _, k := range del {
			if err := t.counters().Delete(k); err != nil {
				return err
			}
		}
		if err := t.pruneExpiry(now); err != nil {
			return err
		}
		if err := pruneBefore(t.leases(), now.UnixNano()); err != nil {
			return err
		}
		return pruneBefore(t.rates(), micros(now))
	})
	if err == nil {
		e.mu.Lock()
		e.runCursor = next
		e.mu.Unlock()
	}
	return err
}

// pruneExpiry removes records whose expiry entry is due.
func (t *txn) pruneExpiry(now time.Time) error {
	type due struct {
		entry []byte
		exp   int64
		ns    byte
		key   []byte
	}
	var todo []due
	c := t.expiry().Cursor()
	for k, _ := c.First(); len(k) >= 9 && len(todo) < pruneBatch; k, _ = c.Next() {
		exp := int64(binary.BigEndian.Uint64(k[:8]))
		if exp > now.UnixNano() {
			break
		}
		todo = append(todo, due{entry: slices.Clone(k), exp: exp, ns: k[8], key: slices.Clone(k[9:])})
	}
	for _, d := range todo {
		switch d.ns {
		case kvSpan, kvPut, kvCall, kvChild:
			kk := append([]byte{d.ns}, d.key...)
			// A key re-created after it expired has a newer expiry and its own entry.
			if v := t.kv().Get(kk); len(v) >= 8 && int64(binary.BigEndian.Uint64(v[:8])) == d.exp {
				if err := t.kv().Delete(kk); err != nil {
					return err
				}
			}
		case kvReservation:
			if r, err := t.reservation(string(d.key)); err == nil && r != nil && r.Settled {
				if err := t.res().Delete(d.key); err != nil {
					return err
				}
			}
		case kvApproval:
			if a, err := t.approval(string(d.key)); err == nil {
				if err := t.approvalsPending().Delete(pendingKey(a.Agent, a.ID)); err != nil {
					return err
				}
				if err := t.approvalsByCreated().Delete(approvalIndexKey(a.Cursor())); err != nil {
					return err
				}
			}
			if err := t.approvals().Delete(d.key); err != nil {
				return err
			}
		}
		if err := t.expiry().Delete(d.entry); err != nil {
			return err
		}
	}
	return nil
}

// pruneBefore deletes entries of b whose 8-byte value (a time) is before now.
func pruneBefore(b *bolt.Bucket, now int64) error {
	var del [][]byte
	_ = b.ForEach(func(k, v []byte) error {
		if len(v) == 8 && int64(binary.BigEndian.Uint64(v)) < now && len(del) < pruneBatch {
			del = append(del, slices.Clone(k))
		}
		return nil
	})
	for _, k := range del {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

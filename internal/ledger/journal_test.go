package ledger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/money"
)

func openTestEmbedded(t *testing.T, dir string) *Embedded {
	t.Helper()
	return openTestEmbeddedIn(t, dir, DurabilityPower)
}

// openTestEmbeddedIn opens the embedded ledger in dir with the given durability.
func openTestEmbeddedIn(t *testing.T, dir, durability string) *Embedded {
	t.Helper()
	cfg := NewDefaultConfig()
	cfg.Directory = dir
	cfg.Durability = durability
	cfg.MaintenanceInterval = 24 * time.Hour
	e, err := OpenEmbedded(cfg, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// stopFlushing stops the background flusher, so that reservations stay in the journal only.
func (e *Embedded) stopFlushing() {
	e.mu.Lock()
	e.closed = true
	close(e.stop)
	e.mu.Unlock()
	<-e.done
	// Close stops maintenance again: give it a loop that has already ended.
	e.mu.Lock()
	e.closed = false
	e.stop = make(chan struct{})
	e.mu.Unlock()
}

// crash drops the process's hold on the files without applying the journal, as kill -9 does
// (what was written is in the page cache; what was not applied stays in the journal only).
func (e *Embedded) crash(t *testing.T) {
	t.Helper()
	if err := e.journal.close(); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
}

func reserveN(t *testing.T, e *Embedded, n int, at time.Time) money.Nanos {
	t.Helper()
	var sum money.Nanos
	for i := range n {
		est := money.Nanos(1000 + i)
		if _, err := e.Reserve(t.Context(), ReserveRequest{ID: fmt.Sprintf("d%d", i), TraceID: fmt.Sprintf("trace%d", i),
			Estimate: est, TTL: time.Hour, Time: at, Agent: "A",
			Checks: []Check{{Scope: ScopeAgent, ID: "A", Window: Day, Limit: money.MaxNanos}, {Scope: ScopeFleet, Window: Day, Unlimited: true}}}); err != nil {
			t.Fatal(err)
		}
		sum += est
	}
	return sum
}

// Reservations answered but not yet applied to the bbolt file survive a crash: opening the ledger
// applies the journal, exactly once, and a record cut short at the end is dropped and reported.
// With durability "process" they were answered before any fsync, and survive the same way.
func TestJournalRecoversReservationsAfterCrash(t *testing.T) {
	for _, mode := range []string{DurabilityPower, DurabilityProcess} {
		for _, tornTail := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/torn=%v", mode, tornTail), func(t *testing.T) { testJournalRecovery(t, mode, tornTail) })
		}
	}
}

func testJournalRecovery(t *testing.T, mode string, tornTail bool) {
	dir := t.TempDir()
	at := time.Now()
	e := openTestEmbeddedIn(t, dir, mode)
	e.stopFlushing()
	sum := reserveN(t, e, 50, at)
	if n := e.count(t, bucketRes); n != 0 {
		t.Fatalf("%d reservations reached the file before the crash; the test needs them in the journal only", n)
	}
	if st, err := e.State(t.Context(), ScopeAgent, "A", Day, at); err != nil || st.Reserved != sum {
		t.Fatalf("reserved before the crash %v (%v), want %v", st.Reserved, err, sum)
	}
	st := e.Stats()
	if st.PendingReservations != 50 || st.JournalBytes == 0 {
		t.Errorf("stats before the crash: %+v, want 50 pending in the journal", st)
	}
	if synced := st.JournalSyncs > 0 && st.JournalSyncTime > 0; synced != (mode == DurabilityPower) {
		t.Errorf("durability %s: %d journal syncs before the answers, want them only in %s", mode, st.JournalSyncs, DurabilityPower)
	}
	e.crash(t)
	if tornTail {
		f, err := os.OpenFile(filepath.Join(dir, JournalFileName), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte{200, 0, 0, 0, 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}

	e = openTestEmbedded(t, dir)
	defer e.Close()
	if st := e.Stats(); st.RecoveredReservations != 50 || st.PendingReservations != 0 || st.JournalBytes != 0 || st.Commits == 0 {
		t.Errorf("stats after recovery: %+v, want 50 recovered, nothing pending, an empty journal", st)
	}
	if n := e.count(t, bucketRes); n != 50 {
		t.Errorf("%d reservations in the file after recovery, want 50", n)
	}
	if fi, err := os.Stat(filepath.Join(dir, JournalFileName)); err != nil || fi.Size() != 0 {
		t.Errorf("journal after recovery: %v %v, want empty", fi.Size(), err)
	}
	for _, w := range []struct {
		scope Scope
		id    string
	}{{ScopeAgent, "A"}, {ScopeFleet, FleetID}} {
		if st, err := e.State(t.Context(), w.scope, w.id, Day, at); err != nil || st.Reserved != sum {
			t.Errorf("%s reserved after recovery %v (%v), want %v", w.scope, st.Reserved, err, sum)
		}
	}
	// The recovered reservations behave like any other: a span commits by trace, a
	// release settles, a repeated id is refused.
	if r, err := e.Book(t.Context(), []Spend{{TraceID: "trace0", SpanID: "s", Time: at, Agent: "A", Cost: 400}}); err != nil || r.Matched != 1 {
		t.Errorf("booking against a recovered reservation: %+v %v", r, err)
	}
	s, err := e.Release(t.Context(), ReleaseRequest{ID: "d0", Time: at})
	if err != nil || s.MatchedCost != 400 || s.SpansMatched != 1 {
		t.Errorf("releasing a recovered reservation: %+v %v", s, err)
	}
	if _, err := e.Reserve(t.Context(), ReserveRequest{ID: "d1", Estimate: 1, TTL: time.Hour, Time: at}); err == nil {
		t.Error("a recovered reservation id was reserved again")
	}
	// Reopening again replays nothing twice.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openTestEmbedded(t, dir)
	if st, _ := e.State(t.Context(), ScopeAgent, "A", Day, at); st.Reserved != sum-1000 || st.Spent != 400 {
		t.Errorf("after a clean reopen: reserved %v spent %v, want %v and 400", st.Reserved, st.Spent, sum-1000)
	}
}

// Limit checks, reads and the flusher race: whatever interleaving, spent + reserved never passes
// the limit, a read never sees more than was reserved, and the total is exact at the end.
func TestJournalPendingAndFlushAgree(t *testing.T) {
	e := openTestEmbedded(t, t.TempDir())
	defer e.Close()
	at := time.Now()
	const limit = 300_000
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		granted money.Nanos
		stop    = make(chan struct{})
	)
	check := []Check{{Scope: ScopeAgent, ID: "A", Window: Day, Limit: limit}}
	for g := range 16 {
		wg.Go(func() {
			for i := range 100 {
				_, err := e.Reserve(t.Context(), ReserveRequest{ID: fmt.Sprintf("g%d-%d", g, i), Estimate: 250, TTL: time.Hour, Time: at, Checks: check})
				var ex *ExhaustedError
				switch {
				case err == nil:
					mu.Lock()
					granted += 250
					mu.Unlock()
				case !errors.As(err, &ex):
					t.Error(err)
					return
				}
				if i%10 == 0 {
					e.flushPending()
				}
			}
		})
	}
	var readErr error
	var rg sync.WaitGroup
	rg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			st, err := e.State(t.Context(), ScopeAgent, "A", Day, at)
			if err != nil || st.Reserved > limit {
				readErr = fmt.Errorf("read %v reserved (%v), limit %d", st.Reserved, err, limit)
				return
			}
		}
	})
	wg.Wait()
	close(stop)
	rg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
	if granted != limit {
		t.Errorf("granted %v, want exactly the limit %d (1600 requests of 250 against 300000)", granted, limit)
	}
	st, err := e.State(t.Context(), ScopeAgent, "A", Day, at)
	if err != nil || st.Reserved != granted {
		t.Errorf("reserved %v (%v), want %v", st.Reserved, err, granted)
	}
	e.flushPending()
	if st, _ := e.State(t.Context(), ScopeAgent, "A", Day, at); st.Reserved != granted {
		t.Errorf("reserved after the flush %v, want %v", st.Reserved, granted)
	}
}

func TestParseJournal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "j"))
	if err != nil {
		t.Fatal(err)
	}
	j := newJournal(f, f.Name(), 0)
	for seq := uint64(1); seq <= 3; seq++ {
		if err := j.append(seq, encodeReservation(&reservation{ID: fmt.Sprint(seq), CreatedAt: time.Unix(1, 0).UTC()})); err != nil {
			t.Fatal(err)
		}
	}
	good, _ := os.ReadFile(f.Name())
	f.Close()
	recs, torn := parseJournal(good)
	if len(recs) != 3 || torn != -1 || recs[2].seq != 3 || recs[2].res.ID != "3" {
		t.Fatalf("clean journal: %d records, torn %d", len(recs), torn)
	}
	one := len(good) / 3
	damaged := append([]byte(nil), good...)
	damaged[one+12] ^= 0xff // inside the second record's payload
	if recs, torn := parseJournal(damaged); len(recs) != 1 || torn != int64(one) {
		t.Errorf("damaged second record: %d records, torn at %d, want 1 and %d", len(recs), torn, one)
	}
	// An emptied file that was not synced may show old records after new ones: they stop reading.
	stale := append(append([]byte(nil), good[2*one:]...), good[:one]...)
	if recs, torn := parseJournal(stale); len(recs) != 1 || recs[0].seq != 3 || torn != int64(one) {
		t.Errorf("stale tail: %d records, torn at %d", len(recs), torn)
	}
	if recs, torn := parseJournal(good[:len(good)-1]); len(recs) != 2 || torn != int64(2*one) {
		t.Errorf("cut record: %d records, torn at %d", len(recs), torn)
	}
}

// A snapshot lists the counters of reservations still in the journal, with their reserved amount.
func TestSnapshotSeesJournaledReservations(t *testing.T) {
	e := openTestEmbedded(t, t.TempDir())
	defer e.Close()
	e.stopFlushing()
	at := time.Now()
	if _, err := e.Reserve(t.Context(), ReserveRequest{ID: "z", Estimate: 700, TTL: time.Hour, Time: at,
		Checks: []Check{{Scope: ScopeAgent, ID: "Z", Window: Hour, Limit: 1000}}}); err != nil {
		t.Fatal(err)
	}
	snap, err := e.Snapshot(t.Context(), at)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range snap.States {
		if s.Scope == ScopeAgent && s.ID == "Z" && s.Window == Hour {
			found = s.Reserved == 700
		}
	}
	if !found {
		t.Errorf("snapshot %+v lacks agent Z's hour with 700 reserved", snap.States)
	}
}

// A journal that cannot write or sync refuses every later reservation instead of answering one
// that might not be durable, and says why.
func TestJournalFailuresAreSticky(t *testing.T) {
	e := openTestEmbedded(t, t.TempDir())
	defer e.Close()
	at := time.Now()
	req := func(id string) ReserveRequest {
		return ReserveRequest{ID: id, Estimate: 1, TTL: time.Hour, Time: at, Checks: []Check{{Scope: ScopeAgent, ID: "A", Window: Day, Limit: 100}}}
	}
	if _, err := e.Reserve(t.Context(), req("ok")); err != nil {
		t.Fatal(err)
	}
	// Break the file under the journal: the write fails and so does undoing it.
	if err := e.journal.f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"w1", "w2"} {
		if _, err := e.Reserve(t.Context(), req(id)); err == nil || !strings.Contains(err.Error(), "reservation journal") {
			t.Errorf("reserve %s with a broken journal: %v", id, err)
		}
	}
	if e.journal.err == nil {
		t.Error("the failed write left the journal usable although undoing it failed")
	}
	// Nothing of the refused reservations counts.
	if st, err := e.State(t.Context(), ScopeAgent, "A", Day, at); err != nil || st.Reserved != 1 {
		t.Errorf("reserved %v (%v), want only the first reservation's 1", st.Reserved, err)
	}

	// A sync failure is sticky too.
	j := newJournal(e.journal.f, "broken", 0)
	j.written.Store(5)
	if err := j.waitDurable(5); err == nil {
		t.Fatal("a failed fdatasync was reported durable")
	}
	j.written.Store(6)
	if err := j.waitDurable(6); err == nil || !strings.Contains(err.Error(), "syncing reservation journal") {
		t.Errorf("after a failed sync: %v", err)
	}
}

// With durability "process" a reservation is answered before any fsync, and the syncer makes it
// durable within sync_interval (plus the time of the fsync itself) even when the flusher cannot
// apply it to the bbolt file: here a write transaction held open blocks every commit. (That it is
// answered before any fsync, and survives kill -9 all the same, TestJournalRecoversReservationsAfterCrash
// shows.)
func TestProcessDurabilitySyncsWithinInterval(t *testing.T) {
	const interval = 50 * time.Millisecond
	cfg := NewDefaultConfig()
	cfg.Directory = t.TempDir()
	cfg.MaintenanceInterval = 24 * time.Hour
	cfg.Durability, cfg.SyncInterval = DurabilityProcess, interval
	e, err := OpenEmbedded(cfg, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tx, err := e.db.Begin(true) // the flusher's commits wait behind it
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	for round := range 5 {
		before := e.Stats()
		began := time.Now()
		if _, err := e.Reserve(t.Context(), ReserveRequest{ID: fmt.Sprintf("r%d", round), Estimate: 1, TTL: time.Hour, Time: at, Agent: "A",
			Checks: []Check{{Scope: ScopeAgent, ID: "A", Window: Day, Limit: money.MaxNanos}}}); err != nil {
			t.Fatal(err)
		}
		answered := time.Since(began)
		for {
			e.journal.smu.Lock()
			synced := e.journal.synced >= e.journal.written.Load()
			e.journal.smu.Unlock()
			if synced {
				break
			}
			if time.Since(began) > 5*time.Second {
				t.Fatalf("round %d: not durable 5 s after the answer", round)
			}
			time.Sleep(time.Millisecond)
		}
		took := time.Since(began) - answered
		st := e.Stats()
		if st.JournalSyncs <= before.JournalSyncs || st.PendingReservations == 0 {
			t.Fatalf("round %d: made durable by %d syncs with %d pending: not by the syncer", round, st.JournalSyncs-before.JournalSyncs, st.PendingReservations)
		}
		// The bound: the interval, plus the fsync that made it durable, plus 25 ms for the
		// scheduler of a loaded test machine (and this loop's polling).
		syncTime := st.JournalSyncTime - before.JournalSyncTime
		if bound := interval + syncTime + 25*time.Millisecond; took > bound {
			t.Errorf("round %d: durable %v after the answer, bound %v", round, took, bound)
		}
		t.Logf("round %d: answered in %v, durable %v later (fsync %v)", round, answered, took, syncTime)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
}

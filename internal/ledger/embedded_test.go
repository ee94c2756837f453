package ledger

import (
	"errors"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fakeClock is a settable clock for maintenance and idempotency horizons.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func (e *Embedded) count(t *testing.T, bucket []byte) int {
	t.Helper()
	n := 0
	if err := e.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucket).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEmbeddedPrune(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 5, 4, 10, 0, 30, 0, time.UTC)
	clock := &fakeClock{t: t0}
	cfg := NewDefaultConfig()
	cfg.Directory = t.TempDir()
	cfg.MaintenanceInterval = 24 * time.Hour
	cfg.IdempotencyHorizon = time.Hour
	cfg.RunRetention = 2 * time.Hour
	cfg.ApprovalRetention = time.Hour
	e, err := OpenEmbedded(cfg, Settings{Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	spend := Spend{TraceID: "t", SpanID: "s", Time: t0, Agent: "A", RunID: "r1", Cost: 5}
	if _, err := e.Book(ctx, []Spend{spend}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reserve(ctx, ReserveRequest{ID: "settled", Estimate: 1, TTL: time.Minute, Time: t0,
		Checks: []Check{{Scope: ScopeAgent, ID: "A", Window: Day, Limit: 100}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Release(ctx, ReleaseRequest{ID: "settled", Time: t0}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.PutIfAbsent(ctx, "k", []byte("v"), 30*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateApproval(ctx, Approval{ID: "ap", CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := e.AcquireLease(ctx, "l", 1, time.Minute, t0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.AllowRate(ctx, "r", 1, time.Minute, t0); err != nil {
		t.Fatal(err)
	}
	// Agent and fleet in five calendar windows each, plus the run.
	if n := e.count(t, bucketCounters); n != 11 {
		t.Fatalf("%d counters, want 11", n)
	}

	// Half an hour later the 10:00 minute (ended 10:01, kept two minutes more) is gone; the lease
	// and the rate limit have expired.
	clock.set(t0.Add(30 * time.Minute))
	if err := e.Prune(ctx, clock.now()); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, bucketCounters); n != 9 {
		t.Errorf("%d counters after the minute ended, want 9", n)
	}
	if n := e.count(t, bucketLeases) + e.count(t, bucketRates); n != 0 {
		t.Errorf("%d leases and rate limits left after they expired", n)
	}
	if s, _ := e.State(ctx, ScopeAgent, "A", Hour, t0); s.Spent != 5 {
		t.Errorf("the current hour lost its spend: %s", s.Spent)
	}

	// Three hours later: the 10:00 hour (kept until 13:00), the idle run, the span id, the settled
	// reservation, the idempotency record and the approval are gone; day, week and month remain.
	clock.set(t0.Add(3 * time.Hour))
	if err := e.Prune(ctx, clock.now()); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, bucketCounters); n != 6 {
		t.Errorf("%d counters, want 6 (agent and fleet day, week, month)", n)
	}
	for name, b := range map[string][]byte{"kv": bucketKV, "expiry": bucketExpiry, "reservations": bucketRes, "approvals": bucketApprovals,
		"approvals_pending": bucketApprovalsPending, "approvals_by_created": bucketApprovalsByCreated} {
		if n := e.count(t, b); n != 0 {
			t.Errorf("%d %s records left", n, name)
		}
	}
	if _, err := e.Release(ctx, ReleaseRequest{ID: "settled"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("release of a forgotten reservation: %v", err)
	}
	if s, _ := e.State(ctx, ScopeAgent, "A", Day, t0); s.Spent != 5 {
		t.Errorf("the day lost its spend: %s", s.Spent)
	}
	// The span id is forgotten past the horizon: the same span counts again.
	if r, _ := e.Book(ctx, []Spend{spend}); r.Booked != 1 {
		t.Errorf("rebooking after the horizon: %+v", r)
	}
}

func TestEmbeddedPruneKeepsOpenRuns(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	cfg := NewDefaultConfig()
	cfg.Directory = t.TempDir()
	cfg.RunRetention = time.Hour
	e, err := OpenEmbedded(cfg, Settings{Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Reserve(ctx, ReserveRequest{ID: "long", Estimate: 7, TTL: 24 * time.Hour, Time: t0,
		Checks: []Check{{Scope: ScopeRun, ID: "r", Window: Lifetime, Limit: 100}}}); err != nil {
		t.Fatal(err)
	}
	clock.set(t0.Add(3 * time.Hour))
	if err := e.Prune(ctx, clock.now()); err != nil {
		t.Fatal(err)
	}
	if s, _ := e.State(ctx, ScopeRun, "r", Lifetime, t0); s.Reserved != 7 {
		t.Errorf("a run holding a reservation was pruned: reserved %s", s.Reserved)
	}
}

package decide

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/ledger/ledgertest"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// growthEngine is a test engine on an embedded ledger whose maintenance clock is the engine's.
func growthEngine(tb testing.TB) (*testEngine, *ledger.Embedded) {
	tb.Helper()
	cfg := ledgertest.BaseConfig()
	cfg.Directory = filepath.Join(tb.TempDir(), "ledger")
	cfg.MaintenanceInterval = time.Hour // pruned by hand below
	var te *testEngine
	l, err := ledger.OpenEmbedded(cfg, ledger.Settings{Now: func() time.Time {
		if te == nil {
			return time.Date(2026, time.March, 11, 10, 0, 0, 0, time.UTC)
		}
		te.mu.Lock()
		defer te.mu.Unlock()
		return te.clock
	}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	p, err := policy.Parse("policy.yaml", []byte(enginePolicy))
	if err != nil {
		tb.Fatal(err)
	}
	bl, err := baseline.New(baseline.DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	te = &testEngine{ledger: &failingLedger{Ledger: l, fail: map[string]bool{}}, ev: &memEvidence{},
		clock: time.Date(2026, time.March, 11, 10, 0, 0, 0, time.UTC)}
	te.Engine, err = New(context.Background(), Config{
		Policy: func() *policy.Policy { return p }, Ledger: te.ledger, Evidence: te.ev, Baselines: bl, FailMode: FailClosed,
		Now: func() time.Time { te.mu.Lock(); defer te.mu.Unlock(); return te.clock },
	})
	if err != nil {
		tb.Fatal(err)
	}
	return te, l
}

// decideAndRelease runs n actions the way the guard client does: a decision with an idempotency
// key (allow_with_constraints: a reservation, a lease, evidence) and its release.
func decideAndRelease(tb testing.TB, te *testEngine, from, n int) {
	tb.Helper()
	decideAndReleaseKeyed(tb, te, from, n, true)
}

func decideAndReleaseKeyed(tb testing.TB, te *testEngine, from, n int, keyed bool) {
	tb.Helper()
	ctx := context.Background()
	agent := Caller{Role: access.RoleAgent, Subject: "a"}
	for i := from; i < from+n; i++ {
		req := decisionapi.DecisionRequest{AgentID: "a", Action: "job.concurrent", EstimatedCostUSD: 0.0001,
			RunID: fmt.Sprintf("run-%d", i%10)}
		if keyed {
			req.IdempotencyKey = fmt.Sprintf("key-%d", i)
		}
		d, err := te.Decide(ctx, agent, req, "")
		if err != nil || d.LeaseID == "" {
			tb.Fatalf("decision %d: %+v %v", i, d, err)
		}
		if _, err := te.Release(ctx, agent, d.LeaseID, decisionapi.ReleaseRequest{ActualCostUSD: ptr(0.0001)}); err != nil {
			tb.Fatalf("release %d: %v", i, err)
		}
	}
}

// perRecord are the keys that grow with the number of actions (not with agents or windows).
var perRecord = []string{"kv", "expiry", "reservations", "reservations_open", "reservations_by_trace", "leases", "rates"}

func recordKeys(st ledger.FileStats) int {
	n := 0
	for _, b := range perRecord {
		n += st.Keys[b]
	}
	return n
}

// TestLedgerGrowthBounded: N settled actions leave per-action records (settled reservations,
// idempotency records, expiry entries, leases) only until their retention; pruning after it
// removes them all, so the key count does not grow with the number of decisions.
func TestLedgerGrowthBounded(t *testing.T) {
	te, l := growthEngine(t)
	ctx := context.Background()
	const n = 200
	prune := func() {
		t.Helper()
		if err := l.Prune(ctx, te.clock); err != nil {
			t.Fatal(err)
		}
	}
	stats := func() ledger.FileStats {
		t.Helper()
		st, err := l.FileStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	base := recordKeys(stats()) // the engine's lease key, kept for good
	decideAndRelease(t, te, 0, n)
	st := stats()
	if got := recordKeys(st) - base; got < 3*n || st.Keys["reservations"] != n {
		t.Fatalf("after %d actions %d per-action keys (%v): the test does not see them", n, got, st.Keys)
	}
	// Past settled_retention (15m) the settled reservations and their expiry entries go; the
	// idempotency records (the engine's idempotency_ttl, 24h) stay.
	te.advance(2 * time.Hour)
	prune()
	mid := stats()
	if mid.Keys["reservations"] != 0 || mid.Keys["kv"] != st.Keys["kv"] {
		t.Errorf("after settled_retention: %v, want no reservation and every idempotency record", mid.Keys)
	}
	// Past every retention, maintenance removes every per-action record.
	te.advance(23 * time.Hour)
	prune()
	if got := recordKeys(stats()) - base; got != 0 {
		t.Errorf("after expiry %d per-action keys remain: %v", got, stats().Keys)
	}
	// A second round reuses the freed pages: the file does not grow.
	decideAndRelease(t, te, n, n)
	te.advance(25 * time.Hour)
	prune()
	again := stats()
	if got := recordKeys(again) - base; got != 0 {
		t.Errorf("after the second expiry %d per-action keys remain: %v", got, again.Keys)
	}
	if again.Bytes > st.Bytes {
		t.Errorf("the file grew from %d to %d bytes over a second round of %d actions after expiry: freed pages are not reused", st.Bytes, again.Bytes, n)
	}
}

// BenchmarkLedgerGrowth measures what each settled action leaves in the embedded ledger until its
// retention ends: bytes of the file in use and keys, with and without an idempotency_key
// (docs/benchmarks.md, "Ledger growth per decision").
func BenchmarkLedgerGrowth(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		b.Run(fmt.Sprintf("idempotency_key=%v", keyed), func(b *testing.B) {
			te, l := growthEngine(b)
			ctx := context.Background()
			before, err := l.FileStats(ctx)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			decideAndReleaseKeyed(b, te, 0, b.N, keyed)
			b.StopTimer()
			after, err := l.FileStats(ctx)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(after.InUseBytes-before.InUseBytes)/float64(b.N), "bytes/decision")
			b.ReportMetric(float64(recordKeys(after)-recordKeys(before))/float64(b.N), "keys/decision")
			b.ReportMetric(float64(after.Bytes-before.Bytes)/float64(b.N), "file-bytes/decision")
		})
	}
}

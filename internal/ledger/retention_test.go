package ledger

import (
	"fmt"
	"testing"
	"time"
)

// TestPruneKeepsUp: more expired records than one Prune transaction deletes (pruneBatch) are all
// gone after one maintenance tick, so pruning does not fall behind a steady decision rate.
func TestPruneKeepsUp(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 5, 4, 10, 0, 30, 0, time.UTC)
	clock := &fakeClock{t: t0}
	cfg := NewDefaultConfig()
	cfg.Directory = t.TempDir()
	cfg.MaintenanceInterval = 24 * time.Hour
	cfg.IdempotencyHorizon = time.Hour
	e, err := OpenEmbedded(cfg, Settings{Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const n = 2*pruneBatch + 500
	batch := make([]Spend, 0, 1000)
	for i := range n {
		batch = append(batch, Spend{TraceID: "t", SpanID: fmt.Sprint(i), Time: t0, Agent: "A", Cost: 1})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := e.Book(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if k := e.count(t, bucketKV); k != n {
		t.Fatalf("%d span ids booked, want %d", k, n)
	}
	clock.set(t0.Add(2 * time.Hour))
	e.pruneAll()
	if k, x := e.count(t, bucketKV), e.count(t, bucketExpiry); k != 0 || x != 0 {
		t.Errorf("after one maintenance tick %d span ids and %d expiry entries of %d expired remain", k, x, n)
	}
	st, err := e.FileStats(ctx)
	if err != nil || st.Keys["kv"] != 0 || st.Bytes <= 0 || st.InUseBytes <= 0 || st.InUseBytes > st.Bytes {
		t.Errorf("file stats %+v %v", st, err)
	}
}

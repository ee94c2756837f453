package costledgerexporter

import (
	"context"
	"errors"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/component"

	"github.com/agentcost/agentcost/extension/budgetledgerextension"
	"github.com/agentcost/agentcost/internal/ledger"
)

// TestBookedHookFailureFailsExportAndRetryBooksOnce: the budgetledger extension's OnBooked hooks
// run after the booking and before the export returns; a failing hook fails the export (so the
// spans are sent again), the retry books nothing twice and runs the hook again, and an
// unregistered hook is not called.
func TestBookedHookFailureFailsExportAndRetryBooksOnce(t *testing.T) {
	h, l := startLedger(t)
	p := h.GetExtensions()[component.MustNewID("budgetledger")].(budgetledgerextension.Provider)
	var (
		mu    sync.Mutex
		calls [][]ledger.Spend
		fail  = true
	)
	unregister := p.OnBooked(func(_ context.Context, spends []ledger.Spend, _ ledger.BookResult) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, spends)
		if fail {
			return errors.New("notification store down")
		}
		return nil
	})
	cfg := testConfig(t)
	cfg.RetryConfig.Enabled = false // the error reaches the caller, which re-sends
	exp := startTraces(t, h, cfg, component.MustNewID("costledger"))
	ctx := context.Background()
	td := pricedTraces(pricedSpan{span: 1, agent: "a", model: "m", costNanos: 700}, pricedSpan{span: 2, agent: "a", model: "m", costNanos: 300})
	if err := exp.ConsumeTraces(ctx, td); err == nil {
		t.Fatal("export succeeded although the booked hook failed")
	}
	spent := func() int64 {
		st, err := l.State(ctx, ledger.ScopeAgent, "a", ledger.Day, spanTime)
		if err != nil {
			t.Fatal(err)
		}
		return int64(st.Spent)
	}
	if got := spent(); got != 1000 {
		t.Fatalf("spent after the failed export: %d, want 1000 (booked before the hook ran)", got)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if err := exp.ConsumeTraces(ctx, td); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := spent(); got != 1000 {
		t.Fatalf("spent after the retry: %d, want 1000 (booked once)", got)
	}
	mu.Lock()
	if len(calls) != 2 || len(calls[1]) != 2 || calls[1][0].Agent != "a" {
		t.Fatalf("hook calls %v, want two with the batch's 2 spends", calls)
	}
	mu.Unlock()
	unregister()
	if err := exp.ConsumeTraces(ctx, pricedTraces(pricedSpan{span: 3, agent: "a", model: "m", costNanos: 1})); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 {
		t.Fatalf("an unregistered hook was called (%d calls)", len(calls))
	}
}

package costledgerexporter

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"

	"github.com/agentcost/agentcost/internal/ledger"
)

// TestRefusesCostOverLimit: a span arriving pre-priced above max_cost_usd_per_span (from another
// collector) is not booked and is counted; a span within it is booked.
func TestRefusesCostOverLimit(t *testing.T) {
	h, l := startLedger(t)
	cfg := testConfig(t)
	cfg.MaxCostUSDPerSpan = 10
	exp := startTraces(t, h, cfg, component.MustNewIDWithName("costledger", "limits"))
	ctx := context.Background()
	td := pricedTraces(
		pricedSpan{span: 1, agent: "research-agent", model: "gpt-4o", costNanos: 2_000_000_000, in: 10, out: 10},
		pricedSpan{span: 2, agent: "research-agent", model: "gpt-4o", costNanos: 999_999_999_000_000_000, in: 10, out: 10},
	)
	if err := exp.ConsumeTraces(ctx, td); err != nil {
		t.Fatal(err)
	}
	st, err := l.State(ctx, ledger.ScopeAgent, "research-agent", ledger.Day, spanTime)
	if err != nil {
		t.Fatal(err)
	}
	if st.Spent != 2_000_000_000 {
		t.Errorf("spent %s, want 2 (the $999999999 span refused)", st.Spent)
	}
	got := scrape(t, l, 1000)
	if v := value(t, got, `agentcost_refused_spans_total{reason=cost_over_limit}`); v != 1 {
		t.Errorf("refused = %v, want 1", v)
	}
	if err := confmap.Validate(func() *Config { c := testConfig(t); c.MaxCostUSDPerSpan = 0; return c }()); err == nil {
		t.Error("max_cost_usd_per_span 0 accepted")
	}
}

// TestCountsMismatchedDecisionSpans: a span of agent B carrying agent A's decision id is booked as
// B's spend, not settled into A's action, and counted.
func TestCountsMismatchedDecisionSpans(t *testing.T) {
	h, l := startLedger(t)
	cfg := testConfig(t)
	exp := startTraces(t, h, cfg, component.MustNewIDWithName("costledger", "mismatch"))
	ctx := context.Background()
	if _, err := l.Reserve(ctx, ledger.ReserveRequest{ID: "dec-a", Estimate: 1_000_000_000, TTL: time.Hour, Time: spanTime,
		Agent: "agent-a", Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "agent-a", Window: ledger.Day, Limit: 5_000_000_000}}}); err != nil {
		t.Fatal(err)
	}
	td := pricedTraces(pricedSpan{span: 1, agent: "agent-b", model: "gpt-4o", costNanos: 300_000_000, in: 10, out: 10})
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().PutStr("agentcost.decision_id", "dec-a")
	if err := exp.ConsumeTraces(ctx, td); err != nil {
		t.Fatal(err)
	}
	s, err := l.Release(ctx, ledger.ReleaseRequest{ID: "dec-a", Time: spanTime})
	if err != nil {
		t.Fatal(err)
	}
	if s.SpansMatched != 0 || s.Cost != 0 {
		t.Errorf("agent A's action settled %d spans for %s, want none", s.SpansMatched, s.Cost)
	}
	if st, _ := l.State(ctx, ledger.ScopeAgent, "agent-b", ledger.Day, spanTime); st.Spent != 300_000_000 {
		t.Errorf("agent B spent %s, want 0.3", st.Spent)
	}
	if v := value(t, scrape(t, l, 1000), `agentcost_mismatched_decision_spans_total{}`); v != 1 {
		t.Errorf("mismatched = %v, want 1", v)
	}
}

package costledgerexporter

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
)

// TestSameCallBookedOnceAndCounted: an instrumentation library's priced span over the SDK's priced
// span of the same call (same trace, direct parent, same model and cost) arrives in a later batch
// than its child: it is not booked, and the scrape counts it and its dollars, the amount to
// subtract from a downstream sum of agentcost.cost_usd over every span. A sibling of the same price
// (another call under the same agent span) is booked.
func TestSameCallBookedOnceAndCounted(t *testing.T) {
	h, l := startLedger(t)
	cfg := testConfig(t)
	exp := startTraces(t, h, cfg, component.MustNewID("costledger"))
	ctx := context.Background()
	const cost = money.Nanos(6_435_000)
	// span is a priced span id under parent, in a batch of its own.
	span := func(id, parent byte) ptrace.Traces {
		td := pricedTraces(pricedSpan{span: id, agent: "a", team: "t", model: "claude-sonnet-4-5-20250929", costNanos: cost, in: 1300, out: 200})
		td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetParentSpanID(pcommon.SpanID([8]byte{parent}))
		return td
	}
	// The child first, its parent (twice: a redelivery), then a sibling of the parent.
	for _, td := range []ptrace.Traces{span(2, 1), span(1, 9), span(1, 9), span(3, 9)} {
		if err := exp.ConsumeTraces(ctx, td); err != nil {
			t.Fatal(err)
		}
	}
	st, err := l.State(ctx, ledger.ScopeAgent, "a", ledger.Day, spanTime)
	if err != nil {
		t.Fatal(err)
	}
	if st.Spent != 2*cost {
		t.Errorf("agent spent %s, want %s (the call once, the sibling once)", st.Spent, 2*cost)
	}
	got := scrape(t, l, 1000)
	series := `{agent=a,model=claude-sonnet-4-5-20250929}`
	if v := value(t, got, "agentcost_duplicate_calls_total"+series); v != 1 {
		t.Errorf("duplicate calls %v, want 1 (the redelivered parent is a plain duplicate)", v)
	}
	if v := value(t, got, "agentcost_duplicate_call_usd_total"+series); v != cost.USD() {
		t.Errorf("duplicate call dollars %v, want %v", v, cost.USD())
	}
	if v := value(t, got, `agentcost_spend_usd_total{agent=a,model=claude-sonnet-4-5-20250929,provider=openai,team=t}`); v != (2 * cost).USD() {
		t.Errorf("spend %v, want %v", v, (2 * cost).USD())
	}
}

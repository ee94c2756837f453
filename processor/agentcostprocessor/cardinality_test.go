package agentcostprocessor

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/agentcost/agentcost/internal/costmetrics"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/processor/agentcostprocessor/internal/metadata"
)

// TestAdversarialCardinality sends a million spans with distinct agent ids and a million with
// distinct model names: baselines, the price-lookup cache and the published metric labels stay
// bounded, with the evictions and overflows counted.
func TestAdversarialCardinality(t *testing.T) {
	if testing.Short() {
		t.Skip("a million spans; skipped with -short")
	}
	const n = 1_000_000
	cfg := createDefaultConfig().(*Config)
	cfg.Baseline.MaxKeys = 5_000
	p, err := newCostProcessor(processortest.NewNopSettings(metadata.Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	spendNanos, unpriced := int64(0), int64(0)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	const batch = 1_000
	for start := 0; start < 2*n; start += batch {
		td := ptrace.NewTraces()
		spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
		for i := start; i < start+batch; i++ {
			s := spans.AppendEmpty()
			a := s.Attributes()
			a.PutStr("gen_ai.provider.name", "openai")
			a.PutInt("gen_ai.usage.input_tokens", 100)
			a.PutInt("gen_ai.usage.output_tokens", 10)
			if i < n { // distinct agents on a known model
				a.PutStr("gen_ai.agent.name", "agent-"+strconv.Itoa(i))
				a.PutStr("gen_ai.request.model", "gpt-4o")
			} else { // distinct, unknown models
				a.PutStr("gen_ai.agent.name", "agent")
				a.PutStr("gen_ai.request.model", "model-"+strconv.Itoa(i))
			}
		}
		if _, err := p.processTraces(ctx, td); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < spans.Len(); i++ {
			if cost, ok := spans.At(i).Attributes().Get("agentcost.cost_usd"); ok {
				spendNanos += int64(money.Nanos(cost.Double() * 1e9))
			} else {
				unpriced++
			}
		}
	}

	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew %d MiB over %d distinct agents and %d distinct models", grown>>20, n, n)
	if grown > 64<<20 {
		t.Errorf("heap grew %d MiB: state is not bounded", grown>>20)
	}
	b := p.pricer.Baselines
	if b.Len() > cfg.Baseline.MaxKeys || b.Evictions() < uint64(n-cfg.Baseline.MaxKeys) {
		t.Errorf("baselines: %d keys, %d evictions (bound %d)", b.Len(), b.Evictions(), cfg.Baseline.MaxKeys)
	}
	cs := p.pricer.Table.CacheStats()
	if cs.Entries > cs.Capacity || cs.Evictions == 0 {
		t.Errorf("price lookup cache: %+v", cs)
	}
	// The ledger's totals of these spans (one per agent, one per unknown model), published with
	// max_label_values 1000: the series stay bounded and the overflow counts every folded value.
	totals := ledger.Totals{Totals: make([]ledger.Total, 0, 2*n)}
	for i := range n {
		totals.Totals = append(totals.Totals,
			ledger.Total{Family: ledger.TotalSpend, Labels: []string{"agent-" + strconv.Itoa(i), "", "gpt-4o", "openai"}, Value: spendNanos / n},
			ledger.Total{Family: ledger.TotalUnpriced, Labels: []string{"model-" + strconv.Itoa(n+i)}, Value: unpriced / n})
	}
	md := pmetric.NewMetrics()
	costmetrics.NewPublisher(1_000).Append(md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics(), totals, time.Now())
	published := costmetrics.Series(md)
	series := 0
	for k := range published {
		if strings.HasPrefix(k, costmetrics.NameSpend+"{") || strings.HasPrefix(k, costmetrics.NameUnpriced+"{") {
			series++
		}
	}
	if series > 2*1_000+2 {
		t.Errorf("%d spend/unpriced series published; labels are not bounded", series)
	}
	if got := published[costmetrics.NameOverflow+"{label=agent}"]; got < n-1_000 {
		t.Errorf("agent label overflow counted %v values, want about %d", got, n-1_000)
	}
}

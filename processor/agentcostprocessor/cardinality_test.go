package agentcostprocessor

import (
	"context"
	"runtime"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/agentcost/agentcost/internal/costmetrics"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/processor/agentcostprocessor/internal/metadata"
)

// TestAdversarialCardinality sends a million spans with distinct agent ids and a million with
// distinct model names: baselines, the price-lookup cache and the Prometheus labels stay bounded,
// with the evictions and overflows counted.
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
	metrics := costmetrics.New(1_000)
	ctx := context.Background()

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
			a := spans.At(i).Attributes()
			agent, _ := a.Get("agentcost.agent")
			if cost, ok := a.Get("agentcost.cost_usd"); ok {
				metrics.RecordSpend(ledger.Spend{Agent: agent.Str(), Model: "gpt-4o", Cost: money.Nanos(cost.Double() * 1e9)}, "openai")
			} else {
				model, _ := a.Get("gen_ai.request.model")
				metrics.RecordUnpriced(model.Str())
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
	series := testutil.CollectAndCount(metrics.Registry(), costmetrics.NameSpend, costmetrics.NameUnpriced)
	if series > 2*1_000+2 {
		t.Errorf("%d spend/unpriced series exposed; labels are not bounded", series)
	}
	if got := overflowCount(t, metrics, "agent"); got < n-1_000 {
		t.Errorf("agent label overflow counted %v times, want about %d", got, n-1_000)
	}
}

// overflowCount reads agentcost_label_overflow_total{label=...} from the registry.
func overflowCount(t *testing.T, m *costmetrics.Metrics, label string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != costmetrics.NameOverflow {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "label" && l.GetValue() == label {
					return mt.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

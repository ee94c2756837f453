package costledgerexporter

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/agentcost/agentcost/exporter/costledgerexporter/internal/metadata"
	"github.com/agentcost/agentcost/extension/budgetledgerextension"
	"github.com/agentcost/agentcost/internal/costmetrics"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/testutil/configtest"
	"github.com/agentcost/agentcost/internal/testutil/ledgertest"
)

func loadConfig(t *testing.T, name string) *Config {
	t.Helper()
	return configtest.Load[*Config](t, NewFactory(), name)
}

func TestLoadConfig(t *testing.T) {
	def := loadConfig(t, "")
	if err := confmap.Validate(def); err != nil {
		t.Fatalf("default invalid: %v", err)
	}
	if def.Ledger.String() != "budgetledger" || def.QueueConfig.HasValue() || def.MaxCostUSDPerSpan != 500 {
		t.Fatalf("defaults: %+v", def)
	}
	c := loadConfig(t, "custom")
	if err := confmap.Validate(c); err != nil {
		t.Fatalf("custom invalid: %v", err)
	}
	if c.Ledger.String() != "budgetledger/shared" || !c.QueueConfig.HasValue() || c.QueueConfig.Get().StorageID.String() != "file_storage" {
		t.Fatalf("custom: %+v", c)
	}
	err := confmap.Validate(loadConfig(t, "memqueue"))
	if err == nil || !strings.Contains(err.Error(), "sending_queue.storage") {
		t.Fatalf("an in-memory queue must be rejected, got %v", err)
	}
	// The keys of the Prometheus endpoint this exporter served before are refused with where they
	// moved.
	err = confmap.Validate(loadConfig(t, "bad"))
	for _, key := range []string{"endpoint, path:", "prometheus exporter", "max_label_values: moved to the budget receiver"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("bad config error does not name %s: %v", key, err)
		}
	}
}

// startLedger starts a budgetledger extension in a temporary directory: a host serving it, and
// its ledger.
func startLedger(t *testing.T) (component.Host, ledger.Ledger) {
	t.Helper()
	ext := ledgertest.Start(t)
	return ledgertest.Host(ext), ext.(budgetledgerextension.Provider).Ledger()
}

func testConfig(*testing.T) *Config {
	return createDefaultConfig().(*Config)
}

func startTraces(t *testing.T, h component.Host, cfg *Config, id component.ID) exporter.Traces {
	t.Helper()
	set := exportertest.NewNopSettings(metadata.Type)
	set.ID = id
	exp, err := NewFactory().CreateTraces(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

type pricedSpan struct {
	span        byte
	agent, team string
	model       string
	costNanos   money.Nanos
	in, out     int64
	anomaly     bool
}

var spanTime = time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC)

func pricedTraces(spans ...pricedSpan) ptrace.Traces {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for _, p := range spans {
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID([16]byte{0xaa, 1}))
		s.SetSpanID(pcommon.SpanID([8]byte{p.span}))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(spanTime))
		a := s.Attributes()
		if p.costNanos < 0 { // an unpriced span
			a.PutStr("gen_ai.request.model", p.model)
			a.PutBool("agentcost.price.unknown", true)
			continue
		}
		a.PutDouble("agentcost.cost_usd", p.costNanos.USD())
		a.PutStr("agentcost.agent", p.agent)
		a.PutStr("agentcost.team", p.team)
		a.PutStr("agentcost.model", p.model)
		a.PutStr("gen_ai.provider.name", "openai")
		a.PutInt("gen_ai.usage.input_tokens", p.in)
		a.PutInt("gen_ai.usage.output_tokens", p.out)
		if p.anomaly {
			a.PutBool("agentcost.anomaly", true)
		}
	}
	return td
}

// scrape publishes the ledger's totals as the budget receiver does, with max_label_values labels,
// and returns the series.
func scrape(t *testing.T, l ledger.Ledger, maxLabels int) map[string]*dto {
	t.Helper()
	totals, err := l.Totals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	md := pmetric.NewMetrics()
	costmetrics.NewPublisher(maxLabels).Append(md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics(), totals, time.Now())
	out := map[string]*dto{}
	for k, v := range costmetrics.Series(md) {
		out[k] = &dto{value: v}
	}
	return out
}

type dto struct{ value float64 }

func value(t *testing.T, got map[string]*dto, series string) float64 {
	t.Helper()
	v, ok := got[series]
	if !ok {
		keys := []string{}
		for k := range got {
			keys = append(keys, k)
		}
		t.Fatalf("series %s not exposed; have %v", series, keys)
	}
	return v.value
}

// TestBooksOnceAndExposes books a batch, re-delivers it, and checks the ledger and the scrape.
func TestBooksOnceAndExposes(t *testing.T) {
	h, l := startLedger(t)
	cfg := testConfig(t)
	exp := startTraces(t, h, cfg, component.MustNewID("costledger"))

	batch := func() ptrace.Traces {
		return pricedTraces(
			pricedSpan{span: 1, agent: "research-agent", team: "growth", model: "gpt-4o", costNanos: 35_000_000, in: 10_000, out: 1_000},
			pricedSpan{span: 2, agent: "research-agent", team: "growth", model: "gpt-4o", costNanos: 105_000_000, in: 30_000, out: 3_000, anomaly: true},
			pricedSpan{span: 3, agent: "drafting-agent", team: "growth", model: "o3", costNanos: 1, in: 1, out: 0},
			pricedSpan{span: 4, model: "mystery-model", costNanos: -1},
		)
	}
	ctx := context.Background()
	for i := 0; i < 2; i++ { // the second delivery is a retry of the first: counted once
		if err := exp.ConsumeTraces(ctx, batch()); err != nil {
			t.Fatal(err)
		}
	}

	want := map[[2]string]money.Nanos{
		{"agent", "research-agent"}: 140_000_000,
		{"agent", "drafting-agent"}: 1,
		{"team", "growth"}:          140_000_001,
		{"model", "gpt-4o"}:         140_000_000,
		{"fleet", "fleet"}:          140_000_001,
	}
	for k, v := range want {
		scope, _ := ledger.ParseScope(k[0])
		for _, w := range ledger.CalendarWindows {
			st, err := l.State(ctx, scope, k[1], w, spanTime)
			if err != nil {
				t.Fatal(err)
			}
			if st.Spent != v {
				t.Errorf("%s %s %s spent %s, want %s", k[0], k[1], w, st.Spent, v)
			}
		}
	}
	if last, ok, _ := l.LastAnomaly(ctx, "research-agent", ledger.LevelCall); !ok || !last.Equal(spanTime) {
		t.Errorf("per-call anomaly not recorded: %v %v", last, ok)
	}

	got := scrape(t, l, 1000)
	if v := value(t, got, `agentcost_spend_usd_total{agent=research-agent,model=gpt-4o,provider=openai,team=growth}`); v != 0.14 {
		t.Errorf("spend = %v, want 0.14 (booked once)", v)
	}
	if v := value(t, got, `agentcost_tokens_total{agent=research-agent,model=gpt-4o,type=input}`); v != 40_000 {
		t.Errorf("input tokens = %v", v)
	}
	if v := value(t, got, `agentcost_anomalies_total{agent=research-agent,level=call}`); v != 1 {
		t.Errorf("anomalies = %v", v)
	}
	if v := value(t, got, `agentcost_unpriced_spans_total{model=mystery-model}`); v != 1 {
		t.Errorf("unpriced = %v, want 1 (a redelivered span counts once)", v)
	}
	if v := value(t, got, `agentcost_duplicate_spans_total{}`); v != 3 {
		t.Errorf("duplicates = %v, want 3", v)
	}
}

// TestCardinality: past max_label_values, agents are published as __overflow__ with their spend
// summed, and the overflowed values are counted. (Exemplars are not published: the totals are read
// from the ledger, not from single spans.)
func TestCardinality(t *testing.T) {
	h, l := startLedger(t)
	cfg := testConfig(t)
	exp := startTraces(t, h, cfg, component.MustNewID("costledger"))
	var spans []pricedSpan
	for i := 0; i < 5; i++ {
		spans = append(spans, pricedSpan{span: byte(i + 1), agent: fmt.Sprintf("agent-%d", i), model: "gpt-4o", costNanos: 1_000_000_000})
	}
	if err := exp.ConsumeTraces(context.Background(), pricedTraces(spans...)); err != nil {
		t.Fatal(err)
	}
	got := scrape(t, l, 2)
	if v := value(t, got, `agentcost_spend_usd_total{agent=__overflow__,model=gpt-4o,provider=openai,team=}`); v != 3 {
		t.Errorf("overflow spend = %v, want 3", v)
	}
	if v := value(t, got, `agentcost_label_overflow_total{label=agent}`); v < 3 {
		t.Errorf("overflow counter = %v", v)
	}
}

func TestStartFailsWithoutLedger(t *testing.T) {
	cfg := testConfig(t)
	exp, err := NewFactory().CreateTraces(context.Background(), exportertest.NewNopSettings(metadata.Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = exp.Start(context.Background(), componenttest.NewNopHost())
	if err == nil || !strings.Contains(err.Error(), "ledger:") {
		t.Fatalf("want a ledger: error, got %v", err)
	}
}

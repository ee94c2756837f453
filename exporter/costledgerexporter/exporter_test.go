package costledgerexporter

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
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
	if def.NetAddr.Endpoint != "localhost:9464" || def.Path != "/metrics" || def.Ledger.String() != "budgetledger" || def.QueueConfig.HasValue() {
		t.Fatalf("defaults: %+v", def)
	}
	c := loadConfig(t, "custom")
	if err := confmap.Validate(c); err != nil {
		t.Fatalf("custom invalid: %v", err)
	}
	if c.NetAddr.Endpoint != "127.0.0.1:19464" || c.Path != "/prom" || c.Ledger.String() != "budgetledger/shared" ||
		c.MaxLabelValues != 50 || !c.QueueConfig.HasValue() || c.QueueConfig.Get().StorageID.String() != "file_storage" {
		t.Fatalf("custom: %+v", c)
	}
	err := confmap.Validate(loadConfig(t, "memqueue"))
	if err == nil || !strings.Contains(err.Error(), "sending_queue.storage") {
		t.Fatalf("an in-memory queue must be rejected, got %v", err)
	}
	err = confmap.Validate(loadConfig(t, "bad"))
	for _, key := range []string{"endpoint:", "path:", "max_label_values:"} {
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

func testConfig(t *testing.T) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = collectortest.Endpoint(t)
	return cfg
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

func scrape(t *testing.T, cfg *Config) map[string]*dto {
	t.Helper()
	resp, err := http.Get("http://" + cfg.NetAddr.Endpoint + cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parsing the exposition: %v\n%s", err, body)
	}
	out := map[string]*dto{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			labels := []string{}
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			out[name+"{"+strings.Join(labels, ",")+"}"] = &dto{value: v}
		}
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

	got := scrape(t, cfg)
	if v := value(t, got, `agentcost_spend_usd_total{agent=research-agent,model=gpt-4o,provider=openai,team=growth}`); v != 0.14 {
		t.Errorf("spend = %v, want 0.14 (booked once)", v)
	}
	if v := value(t, got, `agentcost_tokens_total{agent=research-agent,model=gpt-4o,type=input}`); v != 40_000 {
		t.Errorf("input tokens = %v", v)
	}
	if v := value(t, got, `agentcost_anomalies_total{agent=research-agent,level=call}`); v != 1 {
		t.Errorf("anomalies = %v", v)
	}
	if v := value(t, got, `agentcost_unpriced_spans_total{model=mystery-model}`); v != 2 {
		t.Errorf("unpriced = %v, want 2 (counted per delivery)", v)
	}
	if v := value(t, got, `agentcost_duplicate_spans_total{}`); v != 3 {
		t.Errorf("duplicates = %v, want 3", v)
	}
}

// TestExemplarsAndCardinality checks the OpenMetrics exemplar and the overflow label.
func TestExemplarsAndCardinality(t *testing.T) {
	h, _ := startLedger(t)
	cfg := testConfig(t)
	cfg.MaxLabelValues = 2
	exp := startTraces(t, h, cfg, component.MustNewID("costledger"))
	var spans []pricedSpan
	for i := 0; i < 5; i++ {
		spans = append(spans, pricedSpan{span: byte(i + 1), agent: fmt.Sprintf("agent-%d", i), model: "gpt-4o", costNanos: 1_000_000_000})
	}
	if err := exp.ConsumeTraces(context.Background(), pricedTraces(spans...)); err != nil {
		t.Fatal(err)
	}
	got := scrape(t, cfg)
	if v := value(t, got, `agentcost_spend_usd_total{agent=__overflow__,model=gpt-4o,provider=openai,team=}`); v != 3 {
		t.Errorf("overflow spend = %v, want 3", v)
	}
	if v := value(t, got, `agentcost_label_overflow_total{label=agent}`); v < 3 {
		t.Errorf("overflow counter = %v", v)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+cfg.NetAddr.Endpoint+cfg.Path, nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `# {trace_id="aa010000000000000000000000000000"}`) {
		t.Errorf("no trace_id exemplar on spend:\n%s", body)
	}
}

// TestMetricsPipelineSharesEndpoint: the metrics instance of the same exporter ID re-exposes the
// budget receiver's points on the traces instance's endpoint, next to the span-side families.
func TestMetricsPipelineSharesEndpoint(t *testing.T) {
	h, _ := startLedger(t)
	cfg := testConfig(t)
	id := component.MustNewID("costledger")
	traces := startTraces(t, h, cfg, id)
	set := exportertest.NewNopSettings(metadata.Type)
	set.ID = id
	metrics, err := NewFactory().CreateMetrics(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := metrics.Start(context.Background(), h); err != nil {
		t.Fatalf("second instance could not share the endpoint: %v", err)
	}
	defer func() { _ = metrics.Shutdown(context.Background()) }()

	if err := traces.ConsumeTraces(context.Background(), pricedTraces(pricedSpan{span: 1, agent: "a", model: "m", costNanos: 5, anomaly: true})); err != nil {
		t.Fatal(err)
	}
	md := pmetric.NewMetrics()
	ms := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
	g := ms.AppendEmpty()
	g.SetName("agentcost_budget_utilization_ratio")
	g.SetDescription("Utilization of a budget scope: (spent + reserved) / limit.")
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetDoubleValue(0.82)
	dp.Attributes().PutStr("scope", "fleet")
	dp.Attributes().PutStr("id", "fleet")
	dp.Attributes().PutStr("window", "day")
	an := ms.AppendEmpty()
	an.SetName("agentcost_anomalies_total")
	an.SetDescription(costmetrics.HelpAnomalies)
	sum := an.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	adp := sum.DataPoints().AppendEmpty()
	adp.SetIntValue(2)
	adp.Attributes().PutStr("agent", "a")
	adp.Attributes().PutStr("level", "action")
	if err := metrics.ConsumeMetrics(context.Background(), md); err != nil {
		t.Fatal(err)
	}
	got := scrape(t, cfg)
	if v := value(t, got, `agentcost_budget_utilization_ratio{id=fleet,scope=fleet,window=day}`); v != 0.82 {
		t.Errorf("mirrored gauge = %v", v)
	}
	if v := value(t, got, `agentcost_anomalies_total{agent=a,level=action}`); v != 2 {
		t.Errorf("mirrored action anomalies = %v", v)
	}
	if v := value(t, got, `agentcost_anomalies_total{agent=a,level=call}`); v != 1 {
		t.Errorf("span-side call anomalies = %v", v)
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

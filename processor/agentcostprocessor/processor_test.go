package agentcostprocessor

import (
	"context"
	"encoding/json"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/agentcost/agentcost/internal/pricing"
	"github.com/agentcost/agentcost/processor/agentcostprocessor/internal/metadata"
)

// priceFacts reads the embedded default price file as exact decimals, so that expected costs are
// worked out from the published numbers and not from the code under test.
func priceFacts(t testing.TB) map[string]map[string]*big.Rat {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "internal", "pricing", "data", pricing.DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]map[string]any
	dec := json.NewDecoder(bytesReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]*big.Rat{}
	for model, fields := range raw {
		out[model] = map[string]*big.Rat{}
		for k, v := range fields {
			if n, ok := v.(json.Number); ok {
				r, ok := new(big.Rat).SetString(n.String())
				if ok {
					out[model][k] = r
				}
			}
		}
	}
	return out
}

// expectUSD is Σ tokens × price, rounded half-even to the nano-dollar, in dollars.
func expectUSD(t testing.TB, facts map[string]map[string]*big.Rat, model string, parts map[string]int64) float64 {
	t.Helper()
	sum := new(big.Rat)
	for field, tokens := range parts {
		p, ok := facts[model][field]
		if !ok {
			t.Fatalf("price fact %s.%s missing", model, field)
		}
		sum.Add(sum, new(big.Rat).Mul(p, new(big.Rat).SetInt64(tokens)))
	}
	nanos := new(big.Rat).Mul(sum, big.NewRat(1_000_000_000, 1))
	q, r := new(big.Int).QuoRem(nanos.Num(), nanos.Denom(), new(big.Int))
	twice := new(big.Int).Mul(r, big.NewInt(2))
	if c := twice.Cmp(nanos.Denom()); c > 0 || c == 0 && q.Bit(0) == 1 {
		q.Add(q, big.NewInt(1))
	}
	return float64(q.Int64()) / 1e9
}

type spanSpec struct {
	name     string
	kind     ptrace.SpanKind
	attrs    map[string]any
	resource map[string]any
	parent   int // index+1 of the parent span in the same trace; 0 for a root
}

func buildTraces(t testing.TB, specs ...spanSpec) ptrace.Traces {
	t.Helper()
	td := ptrace.NewTraces()
	traceID := pcommon.TraceID([16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	for i, s := range specs {
		rs := td.ResourceSpans().AppendEmpty()
		if err := rs.Resource().Attributes().FromRaw(s.resource); err != nil {
			t.Fatal(err)
		}
		span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		span.SetName(s.name)
		span.SetKind(s.kind)
		span.SetTraceID(traceID)
		span.SetSpanID(pcommon.SpanID([8]byte{byte(i + 1)}))
		if s.parent > 0 {
			span.SetParentSpanID(pcommon.SpanID([8]byte{byte(s.parent)}))
		}
		if err := span.Attributes().FromRaw(s.attrs); err != nil {
			t.Fatal(err)
		}
	}
	return td
}

func spansOf(td ptrace.Traces) []ptrace.Span {
	var out []ptrace.Span
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		sss := td.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			for k := 0; k < sss.At(j).Spans().Len(); k++ {
				out = append(out, sss.At(j).Spans().At(k))
			}
		}
	}
	return out
}

func newTestProcessor(t *testing.T, cfg *Config, tel *componenttest.Telemetry) (processor.Traces, *consumertest.TracesSink) {
	t.Helper()
	set := processortest.NewNopSettings(metadata.Type)
	if tel != nil {
		set.TelemetrySettings = tel.NewTelemetrySettings()
	}
	sink := new(consumertest.TracesSink)
	p, err := NewFactory().CreateTraces(context.Background(), set, cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p, sink
}

func process(t *testing.T, p processor.Traces, sink *consumertest.TracesSink, td ptrace.Traces) []ptrace.Span {
	t.Helper()
	sink.Reset()
	if err := p.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	all := sink.AllTraces()
	if len(all) != 1 {
		t.Fatalf("%d batches forwarded, want 1", len(all))
	}
	return spansOf(all[0])
}

func attrStr(s ptrace.Span, k string) string {
	v, ok := s.Attributes().Get(k)
	if !ok {
		return ""
	}
	return v.AsString()
}

func attrDouble(t *testing.T, s ptrace.Span, k string) float64 {
	t.Helper()
	v, ok := s.Attributes().Get(k)
	if !ok || v.Type() != pcommon.ValueTypeDouble {
		t.Fatalf("span %q: %s missing or not a double (attrs %v)", s.Name(), k, s.Attributes().AsRaw())
	}
	return v.Double()
}

func TestGoldenDialects(t *testing.T) {
	facts := priceFacts(t)
	res := map[string]any{"service.name": "research-agent", "service.namespace": "growth"}
	cases := []struct {
		name      string
		span      spanSpec
		model     string
		want      map[string]int64 // price field → tokens
		wantModel string
		wantMatch string         // agentcost.price.match; "" for an exact key (not written)
		written   map[string]any // normalised GenAI keys expected on the span
	}{
		{
			name: "genai current, openai, cached + reasoning",
			span: spanSpec{name: "chat gpt-5.4-mini", attrs: map[string]any{
				"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
				"gen_ai.request.model": "gpt-5.4-mini", "gen_ai.response.model": "gpt-5.4-mini-2026-09-30",
				"gen_ai.usage.input_tokens": int64(10_000), "gen_ai.usage.output_tokens": int64(2_000),
				"gen_ai.usage.cache_read.input_tokens": int64(4_000), "gen_ai.usage.reasoning.output_tokens": int64(1_500),
			}},
			model: "gpt-5.4-mini",
			// input includes cache: 6,000 uncached at the input rate, 4,000 at the cache-read rate;
			// reasoning is inside the 2,000 output tokens and not priced again.
			want:      map[string]int64{"input_cost_per_token": 6_000, "cache_read_input_token_cost": 4_000, "output_cost_per_token": 2_000},
			wantModel: "gpt-5.4-mini",
			wantMatch: "dated_snapshot", // the response model's snapshot is not in the table
		},
		{
			name: "genai current, anthropic cache write",
			span: spanSpec{name: "chat claude-sonnet-4-5", attrs: map[string]any{
				"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
				"gen_ai.usage.input_tokens": int64(12_000), "gen_ai.usage.output_tokens": int64(350),
				"gen_ai.usage.cache_read.input_tokens": int64(8_000), "gen_ai.usage.cache_creation.input_tokens": int64(3_000),
			}},
			model:     "claude-sonnet-4-5",
			want:      map[string]int64{"input_cost_per_token": 1_000, "cache_read_input_token_cost": 8_000, "cache_creation_input_token_cost": 3_000, "output_cost_per_token": 350},
			wantModel: "claude-sonnet-4-5",
		},
		{
			name: "legacy gen_ai names",
			span: spanSpec{name: "openai.chat", attrs: map[string]any{
				"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
				"gen_ai.usage.prompt_tokens": int64(1_200), "gen_ai.usage.completion_tokens": int64(300),
			}},
			model:     "gpt-4o",
			want:      map[string]int64{"input_cost_per_token": 1_200, "output_cost_per_token": 300},
			wantModel: "gpt-4o",
			written:   map[string]any{"gen_ai.usage.input_tokens": int64(1_200), "gen_ai.usage.output_tokens": int64(300), "gen_ai.provider.name": "openai"},
		},
		{
			name: "openllmetry",
			span: spanSpec{name: "openai.chat", kind: ptrace.SpanKindClient, attrs: map[string]any{
				"llm.request.type": "chat", "gen_ai.system": "openai",
				"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
				"gen_ai.usage.prompt_tokens": int64(900), "gen_ai.usage.completion_tokens": int64(100),
				"llm.usage.total_tokens": int64(1000), "gen_ai.usage.cache_read_input_tokens": int64(512),
			}},
			model:     "gpt-4o",
			want:      map[string]int64{"input_cost_per_token": 388, "cache_read_input_token_cost": 512, "output_cost_per_token": 100},
			wantModel: "gpt-4o-2024-08-06",
		},
		{
			name: "openinference",
			span: spanSpec{name: "ChatCompletion", attrs: map[string]any{
				"openinference.span.kind": "LLM", "llm.provider": "openai", "llm.system": "openai",
				"llm.model_name": "o3", "llm.token_count.prompt": int64(5_000), "llm.token_count.completion": int64(7_000),
				"llm.token_count.total": int64(12_000), "llm.token_count.completion_details.reasoning": int64(6_000),
			}},
			model:     "o3",
			want:      map[string]int64{"input_cost_per_token": 5_000, "output_cost_per_token": 7_000},
			wantModel: "o3",
			written:   map[string]any{"gen_ai.request.model": "o3", "gen_ai.usage.input_tokens": int64(5_000), "gen_ai.usage.output_tokens": int64(7_000), "gen_ai.usage.reasoning.output_tokens": int64(6_000), "gen_ai.provider.name": "openai"},
		},
		{
			name: "openlit with its own cost (kept, not trusted)",
			span: spanSpec{name: "chat deepseek-chat", attrs: map[string]any{
				"gen_ai.system": "deepseek", "gen_ai.operation.name": "chat", "gen_ai.request.model": "deepseek-chat",
				"gen_ai.usage.input_tokens": int64(100_000), "gen_ai.usage.output_tokens": int64(10_000),
				"gen_ai.usage.cost": 99.0,
			}},
			model:     "deepseek/deepseek-chat", // the provider's own key in the upstream map
			want:      map[string]int64{"input_cost_per_token": 100_000, "output_cost_per_token": 10_000},
			wantModel: "deepseek/deepseek-chat",
		},
		{
			name: "provider prefix and dated snapshot",
			span: spanSpec{name: "chat", attrs: map[string]any{
				"gen_ai.provider.name": "openai", "gen_ai.request.model": "openai/gpt-5.4-mini-2026-09-30",
				"gen_ai.usage.input_tokens": int64(1_000_000), "gen_ai.usage.output_tokens": int64(0),
			}},
			model:     "gpt-5.4-mini",
			want:      map[string]int64{"input_cost_per_token": 1_000_000},
			wantModel: "gpt-5.4-mini",
			wantMatch: "provider_prefix,dated_snapshot",
		},
		{
			name: "flex service tier",
			span: spanSpec{name: "chat", attrs: map[string]any{
				"gen_ai.provider.name": "openai", "gen_ai.request.model": "o3", "openai.response.service_tier": "flex",
				"gen_ai.usage.input_tokens": int64(2_000), "gen_ai.usage.output_tokens": int64(1_000),
			}},
			model:     "o3",
			want:      map[string]int64{"input_cost_per_token_flex": 2_000, "output_cost_per_token_flex": 1_000},
			wantModel: "o3",
		},
		{
			name: "gemini above 200k tier",
			span: spanSpec{name: "chat", attrs: map[string]any{
				"gen_ai.provider.name": "gcp.gemini", "gen_ai.request.model": "gemini-2.5-pro",
				"gen_ai.usage.input_tokens": int64(250_000), "gen_ai.usage.output_tokens": int64(4_000),
			}},
			model:     "gemini/gemini-2.5-pro",
			want:      map[string]int64{"input_cost_per_token_above_200k_tokens": 250_000, "output_cost_per_token_above_200k_tokens": 4_000},
			wantModel: "gemini/gemini-2.5-pro",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, sink := newTestProcessor(t, createDefaultConfig().(*Config), nil)
			if c.span.resource == nil {
				c.span.resource = res
			}
			span := process(t, p, sink, buildTraces(t, c.span))[0]
			want := expectUSD(t, facts, c.model, c.want)
			if got := attrDouble(t, span, "agentcost.cost_usd"); got != want {
				t.Errorf("cost_usd = %.9f, want %.9f", got, want)
			}
			if got := attrStr(span, "agentcost.model"); got != c.wantModel {
				t.Errorf("agentcost.model = %q, want %q", got, c.wantModel)
			}
			// agentcost.price.match only when the price did not come from an exact key.
			if got, ok := span.Attributes().Get("agentcost.price.match"); ok != (c.wantMatch != "") || (ok && got.Str() != c.wantMatch) {
				t.Errorf("agentcost.price.match = %v (present %v), want %q", got.AsRaw(), ok, c.wantMatch)
			}
			if got := attrStr(span, "agentcost.agent"); got != "research-agent" {
				t.Errorf("agentcost.agent = %q", got)
			}
			if got := attrStr(span, "agentcost.team"); got != "growth" {
				t.Errorf("agentcost.team = %q", got)
			}
			for k, v := range c.written {
				got, ok := span.Attributes().Get(k)
				if !ok || got.AsRaw() != v {
					t.Errorf("normalised %s = %v, want %v", k, got.AsRaw(), v)
				}
			}
			if _, ok := span.Attributes().Get("agentcost.price.source"); ok {
				t.Error("lean attribute set wrote the detailed agentcost.price.source")
			}
		})
	}
}

// TestVercelAggregateNotPricedTwice: the AI SDK repeats doGenerate's usage on ai.generateText; the
// trace's summed cost equals the one provider call.
func TestVercelAggregateNotPricedTwice(t *testing.T) {
	facts := priceFacts(t)
	usage := map[string]any{"ai.model.id": "gpt-4o", "ai.model.provider": "openai.chat",
		"ai.usage.promptTokens": int64(2_000), "ai.usage.completionTokens": int64(500)}
	parent := map[string]any{"ai.operationId": "ai.generateText", "operation.name": "ai.generateText"}
	child := map[string]any{"ai.operationId": "ai.generateText.doGenerate", "operation.name": "ai.generateText.doGenerate",
		"gen_ai.system": "openai.chat", "gen_ai.request.model": "gpt-4o",
		"gen_ai.usage.input_tokens": int64(2_000), "gen_ai.usage.output_tokens": int64(500)}
	for k, v := range usage {
		parent[k] = v
		child[k] = v
	}
	res := map[string]any{"service.name": "drafting-agent"}
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	p, sink := newTestProcessor(t, createDefaultConfig().(*Config), tel)
	spans := process(t, p, sink, buildTraces(t,
		spanSpec{name: "ai.generateText", attrs: parent, resource: res},
		spanSpec{name: "ai.generateText.doGenerate", attrs: child, resource: res, parent: 1}))

	var total float64
	for _, s := range spans {
		if v, ok := s.Attributes().Get("agentcost.cost_usd"); ok {
			total += v.Double()
		}
	}
	want := expectUSD(t, facts, "gpt-4o", map[string]int64{"input_cost_per_token": 2_000, "output_cost_per_token": 500})
	if total != want {
		t.Fatalf("trace cost %.9f, want one call's %.9f", total, want)
	}
	if v, ok := spans[0].Attributes().Get("agentcost.aggregate"); !ok || !v.Bool() {
		t.Fatal("parent not marked agentcost.aggregate")
	}
	if got := sumCounter(t, tel, "otelcol_processor_agentcost_aggregates_skipped"); got != 1 {
		t.Fatalf("aggregates_skipped = %d", got)
	}
	if got := sumCounter(t, tel, "otelcol_processor_agentcost_spans_priced"); got != 1 {
		t.Fatalf("spans_priced = %d", got)
	}
}

func sumCounter(t *testing.T, tel *componenttest.Telemetry, name string) int64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	if err != nil {
		return 0
	}
	var n int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		n += dp.Value
	}
	return n
}

// TestBadInputPassesThrough: malformed usage is counted and passed on unpriced; never a panic, never
// a negative cost; an unknown model is flagged, never a silent $0.
func TestBadInputPassesThrough(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	p, sink := newTestProcessor(t, createDefaultConfig().(*Config), tel)
	base := func(extra map[string]any) map[string]any {
		m := map[string]any{"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	bad := []map[string]any{
		base(map[string]any{"gen_ai.usage.input_tokens": "1200", "gen_ai.usage.output_tokens": int64(5)}),
		base(map[string]any{"gen_ai.usage.input_tokens": int64(-5), "gen_ai.usage.output_tokens": int64(5)}),
		base(map[string]any{"gen_ai.usage.input_tokens": math.NaN(), "gen_ai.usage.output_tokens": int64(5)}),
		base(map[string]any{"gen_ai.usage.input_tokens": int64(1) << 50, "gen_ai.usage.output_tokens": int64(5)}),
		base(map[string]any{"gen_ai.usage.input_tokens": int64(10), "gen_ai.usage.cache_read.input_tokens": int64(20)}),
		{"gen_ai.usage.input_tokens": int64(10), "gen_ai.usage.output_tokens": int64(10)}, // no model
	}
	specs := []spanSpec{}
	for _, a := range bad {
		specs = append(specs, spanSpec{name: "chat", attrs: a, resource: map[string]any{"service.name": "a"}})
	}
	specs = append(specs,
		spanSpec{name: "chat", attrs: map[string]any{"gen_ai.request.model": "no-such-model-9000",
			"gen_ai.usage.input_tokens": int64(10), "gen_ai.usage.output_tokens": int64(10)}, resource: map[string]any{"service.name": "a"}},
		spanSpec{name: "GET /health", attrs: map[string]any{"http.method": "GET"}, resource: map[string]any{"service.name": "a"}},
	)
	td := buildTraces(t, specs...)
	before := ptrace.NewTraces()
	td.CopyTo(before)
	spans := process(t, p, sink, td)
	if len(spans) != len(specs) {
		t.Fatalf("%d spans forwarded, want %d", len(spans), len(specs))
	}
	for i, s := range spans[:len(bad)] {
		if _, ok := s.Attributes().Get("agentcost.cost_usd"); ok {
			t.Errorf("malformed span %d priced: %v", i, s.Attributes().AsRaw())
		}
	}
	if v, ok := spans[len(bad)].Attributes().Get("agentcost.price.unknown"); !ok || !v.Bool() {
		t.Errorf("unknown model not flagged: %v", spans[len(bad)].Attributes().AsRaw())
	}
	health := spans[len(spans)-1].Attributes()
	if health.Len() != 1 {
		t.Errorf("non-LLM span changed: %v", health.AsRaw())
	}
	if got := sumCounter(t, tel, "otelcol_processor_agentcost_spans_malformed"); got != int64(len(bad)) {
		t.Errorf("spans_malformed = %d, want %d", got, len(bad))
	}
	if got := sumCounter(t, tel, "otelcol_processor_agentcost_spans_unpriced"); got != 1 {
		t.Errorf("spans_unpriced = %d, want 1", got)
	}
}

// TestAnomalyAfterWarmup: ten normal calls, then one at 3x: flagged with attributes and an event.
func TestAnomalyAfterWarmup(t *testing.T) {
	p, sink := newTestProcessor(t, createDefaultConfig().(*Config), nil)
	call := func(outTokens int64) ptrace.Span {
		return process(t, p, sink, buildTraces(t, spanSpec{name: "chat", resource: map[string]any{"service.name": "research-agent"},
			attrs: map[string]any{"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
				"gen_ai.usage.input_tokens": int64(0), "gen_ai.usage.output_tokens": outTokens}}))[0]
	}
	for i := 0; i < 10; i++ {
		if s := call(2_000); attrStr(s, "agentcost.anomaly") != "" {
			t.Fatalf("call %d flagged during warm-up", i)
		}
	}
	// $0.02 per call baseline; 2.9x is not anomalous, 3x is.
	if s := call(5_800); attrStr(s, "agentcost.anomaly") != "" {
		t.Fatal("2.9x flagged")
	}
	s := call(3 * 2_000 * 2) // well above 3x whatever the 2.9x call did to the baseline
	if v, ok := s.Attributes().Get("agentcost.anomaly"); !ok || !v.Bool() {
		t.Fatalf("6x call not flagged: %v", s.Attributes().AsRaw())
	}
	if r := attrDouble(t, s, "agentcost.anomaly.ratio"); r < 3 {
		t.Fatalf("ratio %v < 3", r)
	}
	if b := attrDouble(t, s, "agentcost.baseline_usd"); b < 0.02 || b > 0.03 {
		t.Fatalf("baseline_usd %v, want about 0.02", b)
	}
	if s.Events().Len() != 1 || s.Events().At(0).Name() != "agentcost.anomaly" {
		t.Fatal("no agentcost.anomaly span event")
	}
}

// TestDetailedAndOverrides: the detailed set, a user price file, an OTTL field override and the
// OTTL condition selecting which spans are priced.
func TestDetailedAndOverrides(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Attributes = AttributesDetailed
	cfg.Prices.Files = []string{filepath.Join("testdata", "prices.yaml")}
	cfg.Fields = map[string][]string{"agent": {`resource.attributes["k8s.deployment.name"]`}}
	cfg.Condition = `span.kind == SPAN_KIND_CLIENT`
	p, sink := newTestProcessor(t, cfg, nil)
	attrs := map[string]any{"gen_ai.request.model": "sim-llm", "gen_ai.usage.input_tokens": int64(40_000),
		"gen_ai.usage.output_tokens": int64(10_000), "agentcost.tenant": "acme"}
	res := map[string]any{"service.name": "svc", "k8s.deployment.name": "research-agent"}
	spans := process(t, p, sink, buildTraces(t,
		spanSpec{name: "client", kind: ptrace.SpanKindClient, attrs: attrs, resource: res},
		spanSpec{name: "internal", kind: ptrace.SpanKindInternal, attrs: attrs, resource: res}))
	// The article's price: $0.015 per 1K tokens = $15 per 1M; 50K tokens = $0.75.
	if got := attrDouble(t, spans[0], "agentcost.cost_usd"); got != 0.75 {
		t.Fatalf("sim-llm cost %v, want 0.75", got)
	}
	if got := attrStr(spans[0], "agentcost.agent"); got != "research-agent" {
		t.Fatalf("override agent %q", got)
	}
	if attrStr(spans[0], "agentcost.price.source") != "test-prices" || attrStr(spans[0], "agentcost.tenant") != "acme" ||
		attrDouble(t, spans[0], "agentcost.cost.input_usd") != 0.6 || attrDouble(t, spans[0], "agentcost.cost.output_usd") != 0.15 {
		t.Fatalf("detailed attributes wrong: %v", spans[0].Attributes().AsRaw())
	}
	if _, ok := spans[1].Attributes().Get("agentcost.cost_usd"); ok {
		t.Fatal("span outside the condition was priced")
	}
}

func TestBadPriceFileFailsAtStart(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "prices.yaml")
	if err := os.WriteFile(bad, []byte("models:\n  x: {input_per_million: -1, output_per_million: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig().(*Config)
	cfg.Prices.Files = []string{bad}
	_, err := NewFactory().CreateTraces(context.Background(), processortest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	if err == nil {
		t.Fatal("bad price file accepted")
	}
	for _, want := range []string{"prices.yaml:2: ", "input_per_million"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	cfg.Prices.Files = nil
	cfg.Fields = map[string][]string{"model": {`span.attributes[`}}
	if _, err := NewFactory().CreateTraces(context.Background(), processortest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop()); err == nil {
		t.Fatal("bad OTTL expression accepted")
	}
}

package agentcostprocessor

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/agentcost/agentcost/internal/genai"
	"github.com/agentcost/agentcost/internal/testutil/otlpfixture"
	"github.com/agentcost/agentcost/processor/agentcostprocessor/internal/metadata"
)

// recordedCall is what one recorded span tree (testdata/otlp) must come to: one provider call,
// priced once, at the cost worked out from the published price decimals.
type recordedCall struct {
	fixture string
	// priced names the one span that carries the price; aggregates the spans marked
	// agentcost.aggregate (the same call as their child): by scope, or "scope/span name".
	priced     string
	aggregates []string
	model      string
	parts      map[string]int64
	// wantInput and wantOutput are the convention's counts the priced span carries afterwards.
	wantInput, wantOutput int64
}

// anthropicCall is the Anthropic call every Anthropic fixture recorded: a 1300-token prompt with 200
// tokens read from and 100 written to the cache (Anthropic's raw input_tokens: 1000), 200 output.
var anthropicParts = map[string]int64{"input_cost_per_token": 1000, "cache_read_input_token_cost": 200,
	"cache_creation_input_token_cost": 100, "output_cost_per_token": 200}

var recordedCalls = []recordedCall{
	{fixture: "anthropic-sdk", priced: "com.anthropic.sdk.typescript",
		model: "claude-sonnet-4-5-20250929", parts: anthropicParts, wantInput: 1300, wantOutput: 200},
	{fixture: "openllmetry-anthropic", priced: "@traceloop/instrumentation-anthropic",
		model: "claude-sonnet-4-5-20250929", parts: anthropicParts, wantInput: 1300, wantOutput: 200},
	{fixture: "openllmetry-anthropic-over-sdk", priced: "com.anthropic.sdk.typescript",
		aggregates: []string{"@traceloop/instrumentation-anthropic"},
		model:      "claude-sonnet-4-5-20250929", parts: anthropicParts, wantInput: 1300, wantOutput: 200},
	{fixture: "openinference-anthropic-over-sdk", priced: "com.anthropic.sdk.typescript",
		aggregates: []string{"@arizeai/openinference-instrumentation-anthropic"},
		model:      "claude-sonnet-4-5-20250929", parts: anthropicParts, wantInput: 1300, wantOutput: 200},
	{fixture: "openinference-bedrock-invokemodel", priced: "@arizeai/openinference-instrumentation-bedrock",
		model: "anthropic.claude-sonnet-4-5-20250929-v1:0", parts: anthropicParts, wantInput: 1300, wantOutput: 200},
	// Gemini bills the 150 thinking tokens as output beside the 300 visible ones.
	{fixture: "openllmetry-gemini", priced: "@traceloop/instrumentation-google-generativeai",
		model: "gemini-2.5-flash", parts: map[string]int64{"input_cost_per_token": 1000, "output_cost_per_token": 450},
		wantInput: 1000, wantOutput: 450},
	// Vercel AI SDK 6 with @ai-sdk/anthropic: ai.generateText repeats its doGenerate child's usage.
	{fixture: "vercel-ai-anthropic", priced: "ai/ai.generateText.doGenerate", aggregates: []string{"ai/ai.generateText"},
		model: "claude-sonnet-4-5-20250929", parts: anthropicParts, wantInput: 1300, wantOutput: 200},
	{fixture: "synthetic-python-openllmetry-anthropic", priced: "opentelemetry.instrumentation.anthropic",
		model: "claude-sonnet-4-5-20250929", parts: anthropicParts, wantInput: 1300, wantOutput: 200},
}

// scopedSpan is a span of a processed batch with its instrumentation scope name.
type scopedSpan struct {
	scope string
	span  ptrace.Span
}

func scopedSpans(td ptrace.Traces) []scopedSpan {
	var out []scopedSpan
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		sss := td.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			for k := 0; k < sss.At(j).Spans().Len(); k++ {
				out = append(out, scopedSpan{sss.At(j).Scope().Name(), sss.At(j).Spans().At(k)})
			}
		}
	}
	return out
}

// TestRecordedSpanTreesPricedOnce runs every recorded span tree through the zero-config processor,
// in one batch: each provider call is priced exactly once, at the cost of its real usage, whatever
// instrumentation wrote which count in which meaning; a span repeating its child's call is marked
// agentcost.aggregate and not priced.
func TestRecordedSpanTreesPricedOnce(t *testing.T) {
	facts := priceFacts(t)
	covered := map[string]bool{}
	for _, rc := range recordedCalls {
		covered[rc.fixture] = true
		t.Run(rc.fixture, func(t *testing.T) {
			tel := componenttest.NewTelemetry()
			t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
			p, sink := newTestProcessor(t, createDefaultConfig().(*Config), tel)
			if err := p.ConsumeTraces(context.Background(), otlpfixture.Load(t, rc.fixture)); err != nil {
				t.Fatal(err)
			}
			want := expectUSD(t, facts, rc.model, rc.parts)
			var sum float64
			var priced []string
			for _, s := range scopedSpans(sink.AllTraces()[0]) {
				attrs := s.span.Attributes()
				if v, ok := attrs.Get(genai.KeyCostUSD); ok {
					sum += v.Double()
					priced = append(priced, s.scope+"/"+s.span.Name())
					if !s.is(rc.priced) {
						continue
					}
					if in, _ := attrs.Get(genai.KeyInputTokens); in.Int() != rc.wantInput {
						t.Errorf("%s: %s = %d, want %d", s.scope, genai.KeyInputTokens, in.Int(), rc.wantInput)
					}
					if out, _ := attrs.Get(genai.KeyOutputTokens); out.Int() != rc.wantOutput {
						t.Errorf("%s: %s = %d, want %d", s.scope, genai.KeyOutputTokens, out.Int(), rc.wantOutput)
					}
				}
				if v, ok := attrs.Get(genai.KeyAggregate); ok && v.Bool() {
					if !s.isOneOf(rc.aggregates) {
						t.Errorf("span of %s marked agentcost.aggregate, want only %v", s.scope, rc.aggregates)
					}
				} else if s.isOneOf(rc.aggregates) {
					t.Errorf("span of %s (the same call as its child) not marked agentcost.aggregate", s.scope)
				}
			}
			if len(priced) != 1 || !strings.HasPrefix(priced[0]+"/", rc.priced+"/") {
				t.Fatalf("priced spans %v, want exactly the one of %s", priced, rc.priced)
			}
			if math.Abs(sum-want) > 1e-12 {
				t.Errorf("trace cost $%.9f, want $%.9f (one call)", sum, want)
			}
			if got := sumCounter(t, tel, "otelcol_processor_agentcost_aggregates_skipped"); got != int64(len(rc.aggregates)) {
				t.Errorf("aggregates_skipped %d, want %d", got, len(rc.aggregates))
			}
		})
	}
	for _, name := range otlpfixture.Names(t) {
		if !covered[name] {
			t.Errorf("fixture %s has no expectation here", name)
		}
	}
}

// TestRecordedChildAndParentInSeparateBatches: when the two spans of one call reach the processor
// in separate requests (each span exported as it ends), each is priced in its own meaning at the
// same cost, which the costledger exporter books once (its same-call rule); the processor alone
// cannot tell, so both carry the price here.
func TestRecordedChildAndParentInSeparateBatches(t *testing.T) {
	facts := priceFacts(t)
	want := expectUSD(t, facts, "claude-sonnet-4-5-20250929", anthropicParts)
	for _, fixture := range []string{"openllmetry-anthropic-over-sdk", "openinference-anthropic-over-sdk"} {
		t.Run(fixture, func(t *testing.T) {
			p, sink := newTestProcessor(t, createDefaultConfig().(*Config), nil)
			n := 0
			for _, b := range otlpfixture.SplitBySpan(otlpfixture.Load(t, fixture)) {
				for _, s := range process(t, p, sink, b) {
					if v, ok := s.Attributes().Get(genai.KeyCostUSD); ok {
						n++
						if math.Abs(v.Double()-want) > 1e-12 {
							t.Errorf("span %q priced $%.9f alone, want $%.9f", s.Name(), v.Double(), want)
						}
					}
				}
			}
			if n != 2 {
				t.Errorf("%d spans priced across separate batches, want 2 (booked once by the exporter)", n)
			}
		})
	}
}

// is reports whether the span is the one want names: its scope, or "scope/span name".
func (s scopedSpan) is(want string) bool {
	return want == s.scope || want == s.scope+"/"+s.span.Name()
}

func (s scopedSpan) isOneOf(wants []string) bool {
	for _, w := range wants {
		if s.is(w) {
			return true
		}
	}
	return false
}

// BenchmarkProcessBatchLinked is BenchmarkProcessBatch as an agent's trees are: one trace per
// resource under its first span, each LLM span the parent of the span after it (the HTTP request
// of the call), the rest children of the root. The same-call pass then reads each LLM span, and its
// HTTP child, once more.
func BenchmarkProcessBatchLinked(b *testing.B) {
	models, _, _ := benchModelsAndRates(b)
	src := benchBatch(models)
	rss := src.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		spans := rss.At(i).ScopeSpans().At(0).Spans()
		root := spans.At(0)
		for k := 1; k < spans.Len(); k++ {
			s := spans.At(k)
			s.SetTraceID(root.TraceID())
			s.SetParentSpanID(root.SpanID())
			if prev := spans.At(k - 1); k > 1 && isLLMSpan(prev) {
				s.SetParentSpanID(prev.SpanID())
			}
		}
	}
	set := processortest.NewNopSettings(metadata.Type)
	p, err := newCostProcessor(set, createDefaultConfig().(*Config))
	if err != nil {
		b.Fatal(err)
	}
	if err := p.start(context.Background(), componenttest.NewNopHost()); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	td := ptrace.NewTraces()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		td = ptrace.NewTraces()
		src.CopyTo(td)
		b.StartTimer()
		if _, err := p.processTraces(ctx, td); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportPerSpan(b)
	if n := countPriced(td); n != 300 {
		b.Fatalf("priced %d spans, want 300", n)
	}
}

func isLLMSpan(s ptrace.Span) bool {
	_, ok := s.Attributes().Get("gen_ai.usage.input_tokens")
	return ok
}

// BenchmarkProcessWrappedCalls prices 300 recorded calls each wrapped by OpenLLMetry's span over
// the SDK's own span (900 spans with the application spans): the same-call pass reads every LLM
// span once more and marks the 300 wrappers.
func BenchmarkProcessWrappedCalls(b *testing.B) {
	one := otlpfixture.Load(b, "openinference-anthropic-over-sdk")
	src := ptrace.NewTraces()
	for i := range 300 {
		otlpfixture.WithTraceID(one, pcommon.TraceID([16]byte{0xbe, byte(i >> 8), byte(i)}), byte(i)).ResourceSpans().MoveAndAppendTo(src.ResourceSpans())
	}
	set := processortest.NewNopSettings(metadata.Type)
	p, err := newCostProcessor(set, createDefaultConfig().(*Config))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	td := ptrace.NewTraces()
	spans := src.SpanCount()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		td = ptrace.NewTraces()
		src.CopyTo(td)
		b.StartTimer()
		if _, err := p.processTraces(ctx, td); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
	if n := countPriced(td); n != 300 {
		b.Fatalf("priced %d spans, want 300 (one per call)", n)
	}
}

// TestReadmeListsKnownScopes: the README's token-semantics table names every scope the processor
// knows out of the box.
func TestReadmeListsKnownScopes(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range genai.KnownScopes() {
		if !strings.Contains(string(readme), "| `"+s.Scope+"`") {
			t.Errorf("README's token-semantics table lacks the known scope %s", s.Scope)
		}
	}
}

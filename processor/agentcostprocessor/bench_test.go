package agentcostprocessor

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl/contexts/ottlspan"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl/ottlfuncs"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/agentcost/agentcost/internal/pricing"
	"github.com/agentcost/agentcost/processor/agentcostprocessor/internal/metadata"
)

const (
	benchSpans     = 1000
	benchModels    = 50
	benchResources = 5
)

// benchModelsAndRates returns 50 chat models of the embedded table with their standard input and
// output rates, so both contenders price the same models at the same prices.
func benchModelsAndRates(b *testing.B) (models []string, in, out []float64) {
	table, err := pricing.Default()
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range table.Entries() {
		if e.Mode != "chat" || e.Standard.Input == 0 || len(e.Tiers) > 0 {
			continue
		}
		models = append(models, e.Model)
		in = append(in, float64(e.Standard.Input)/1e15)
		out = append(out, float64(e.Standard.Output)/1e15)
		if len(models) == benchModels {
			return models, in, out
		}
	}
	b.Fatalf("only %d chat models in the table", len(models))
	return nil, nil, nil
}

// benchBatch is a 1,000-span batch over 5 resources: 30% LLM spans in the current GenAI convention
// spread over the models, the rest ordinary HTTP / DB spans.
func benchBatch(models []string) ptrace.Traces {
	td := ptrace.NewTraces()
	perResource := benchSpans / benchResources
	n := 0
	for r := 0; r < benchResources; r++ {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "agent-"+strconv.Itoa(r))
		rs.Resource().Attributes().PutStr("service.namespace", "team-"+strconv.Itoa(r%2))
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		for i := 0; i < perResource; i++ {
			s := spans.AppendEmpty()
			s.SetTraceID(pcommon.TraceID([16]byte{byte(r), byte(i), byte(i >> 8), 1}))
			s.SetSpanID(pcommon.SpanID([8]byte{byte(r), byte(i), byte(i >> 8), 2}))
			a := s.Attributes()
			if n%10 < 3 { // 30% of spans
				m := models[n%len(models)]
				s.SetName("chat " + m)
				a.PutStr("gen_ai.operation.name", "chat")
				a.PutStr("gen_ai.provider.name", "openai")
				a.PutStr("gen_ai.request.model", m)
				a.PutInt("gen_ai.usage.input_tokens", int64(1000+n%997))
				a.PutInt("gen_ai.usage.output_tokens", int64(200+n%211))
				a.PutStr("server.address", "api.example.com")
			} else {
				s.SetName("GET /v1/items")
				a.PutStr("http.request.method", "GET")
				a.PutStr("url.path", "/v1/items")
				a.PutInt("http.response.status_code", 200)
				a.PutStr("server.address", "items.internal")
			}
			n++
		}
	}
	return td
}

// BenchmarkProcessBatch prices a 1,000-span batch with the agentcost processor at default settings.
func BenchmarkProcessBatch(b *testing.B) {
	models, _, _ := benchModelsAndRates(b)
	src := benchBatch(models)
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
		src.CopyTo(td) // a fresh, unpriced batch each time (priced spans are never priced again)
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

// reportPerSpan reports the timed work per span of the batch.
func reportPerSpan(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSpans), "ns/span")
}

func countPriced(td ptrace.Traces) (n int) {
	for _, s := range spansOf(td) {
		if _, ok := s.Attributes().Get("agentcost.cost_usd"); ok {
			n++
		}
	}
	return n
}

// BenchmarkProcessNonLLMSpans prices a batch with no LLM span at all: the target is zero allocations.
func BenchmarkProcessNonLLMSpans(b *testing.B) {
	models, _, _ := benchModelsAndRates(b)
	src := benchBatch(models)
	// Drop the LLM spans.
	for i := 0; i < src.ResourceSpans().Len(); i++ {
		src.ResourceSpans().At(i).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool {
			_, ok := s.Attributes().Get("gen_ai.request.model")
			return ok
		})
	}
	p, err := newCostProcessor(processortest.NewNopSettings(metadata.Type), createDefaultConfig().(*Config))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = p.processTraces(ctx, src)
	}
}

// BenchmarkOTTLStatements prices the same batch the way people do it today: a transformprocessor-style
// OTTL statement per model, `set(cost) where model == "..."`, executed through pkg/ottl for every span.
func BenchmarkOTTLStatements(b *testing.B) {
	models, in, out := benchModelsAndRates(b)
	src := benchBatch(models)
	set := componenttest.NewNopTelemetrySettings()
	funcs := ottlfuncs.StandardFuncs[*ottlspan.TransformContext]()
	for k, v := range ottlfuncs.StandardConverters[*ottlspan.TransformContext]() {
		funcs[k] = v
	}
	parser, err := ottlspan.NewParser(funcs, set, ottlspan.EnablePathContextNames())
	if err != nil {
		b.Fatal(err)
	}
	stmts := make([]string, 0, len(models))
	for i, m := range models {
		stmts = append(stmts, fmt.Sprintf(
			`set(span.attributes["agentcost.cost_usd"], Double(span.attributes["gen_ai.usage.input_tokens"]) * %s + Double(span.attributes["gen_ai.usage.output_tokens"]) * %s) where span.attributes["gen_ai.request.model"] == %q`,
			strconv.FormatFloat(in[i], 'f', -1, 64), strconv.FormatFloat(out[i], 'f', -1, 64), m))
	}
	parsed, err := parser.ParseStatements(stmts)
	if err != nil {
		b.Fatal(err)
	}
	seq := ottlspan.NewStatementSequence(parsed, set, ottlspan.WithStatementSequenceErrorMode(ottl.IgnoreError))
	ctx := context.Background()
	td := ptrace.NewTraces()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		td = ptrace.NewTraces()
		src.CopyTo(td)
		b.StartTimer()
		for r := 0; r < td.ResourceSpans().Len(); r++ {
			rs := td.ResourceSpans().At(r)
			for s := 0; s < rs.ScopeSpans().Len(); s++ {
				ss := rs.ScopeSpans().At(s)
				for k := 0; k < ss.Spans().Len(); k++ {
					tCtx := ottlspan.NewTransformContext(rs, ss, ss.Spans().At(k))
					_ = seq.Execute(ctx, tCtx)
					tCtx.Close()
				}
			}
		}
	}
	b.StopTimer()
	reportPerSpan(b)
	// The OTTL contender must really have priced the LLM spans, or the comparison means nothing.
	if n := countPriced(td); n != 300 {
		b.Fatalf("OTTL statements priced %d spans, want 300", n)
	}
}

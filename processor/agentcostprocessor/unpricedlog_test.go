package agentcostprocessor

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/agentcost/agentcost/processor/agentcostprocessor/internal/metadata"
)

// TestUnpricedSpansWarn is issue 13's finding 8: a span with a malformed token count (a string)
// and a span of a model without a price were counted only in the collector's own telemetry and
// logged nothing. Now the malformed span carries agentcost.malformed=<reason>, and each kind gets a
// rate-limited warning naming the reason and an example span (trace and span id, the usage
// attribute as sent); a second batch within the interval is counted, not logged again.
func TestUnpricedSpansWarn(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	core, logs := observer.New(zapcore.WarnLevel)
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	set.Logger = zap.New(core)
	sink := new(consumertest.TracesSink)
	p, err := NewFactory().CreateTraces(context.Background(), set, testConfig(), sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })

	stringTokens := simCall("research-agent")
	stringTokens["gen_ai.usage.input_tokens"] = "10000"
	unknown := simCall("research-agent")
	unknown["gen_ai.request.model"] = "my-finetune"
	td := buildTraces(t, spanSpec{name: "string-tokens", attrs: stringTokens}, spanSpec{name: "unknown-model", attrs: unknown})
	if err := p.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	spans := spansOf(sink.AllTraces()[0])
	if v, ok := spans[0].Attributes().Get("agentcost.malformed"); !ok || v.Str() != "string" {
		t.Errorf("malformed span attributes %v, want agentcost.malformed=string", spans[0].Attributes().AsRaw())
	}
	if _, ok := spans[0].Attributes().Get("agentcost.cost_usd"); ok {
		t.Errorf("the malformed span was priced")
	}

	warned := logs.FilterMessageSnippet("malformed usage").All()
	if len(warned) != 1 {
		t.Fatalf("%d malformed warnings, want 1: %v", len(warned), logs.All())
	}
	f := warned[0].ContextMap()
	usage, _ := f["usage"].(map[string]string)
	if f["trace_id"] != spans[0].TraceID().String() || f["span_id"] != spans[0].SpanID().String() || f["span_name"] != "string-tokens" ||
		f["agentcost.malformed"] != "string" || f["spans"] != int64(1) || usage["gen_ai.usage.input_tokens"] != "Str 10000" {
		t.Errorf("malformed warning fields %v", f)
	}
	warned = logs.FilterMessageSnippet("model without a price").All()
	if len(warned) != 1 {
		t.Fatalf("%d unknown-model warnings, want 1: %v", len(warned), logs.All())
	}
	if f := warned[0].ContextMap(); f["span_id"] != spans[1].SpanID().String() || f["gen_ai.request.model"] != "my-finetune" || f["spans"] != int64(1) {
		t.Errorf("unknown-model warning fields %v", f)
	}

	// Within the interval: counted, not logged again.
	if err := p.ConsumeTraces(context.Background(), buildTraces(t, spanSpec{name: "again", attrs: stringTokens})); err != nil {
		t.Fatal(err)
	}
	if n := len(logs.FilterMessageSnippet("malformed usage").All()); n != 1 {
		t.Errorf("%d malformed warnings after a second batch, want still 1 (rate limited)", n)
	}
	if got := malformedBy(t, tel); got["string"] != 2 {
		t.Errorf("spans_malformed by reason = %v, want string 2", got)
	}
}

package agentcostprocessor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/pricing"
	"github.com/agentcost/agentcost/processor/agentcostprocessor/internal/metadata"
)

// malformedBy returns otelcol_processor_agentcost_spans_malformed by reason.
func malformedBy(t *testing.T, tel *componenttest.Telemetry) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	m, err := tel.GetMetric("otelcol_processor_agentcost_spans_malformed")
	if err != nil {
		return out
	}
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		r, _ := dp.Attributes.Value(attribute.Key("reason"))
		out[r.AsString()] += dp.Value
	}
	return out
}

// TestSpanLimits: a span with a token count above limits.max_tokens_per_count, or a cost above
// limits.max_cost_usd_per_span, is not priced (so the exporter never books it), is counted as
// malformed by its reason, and is named in a warning with its agent, service and authenticated
// sender; a span within the limits is priced as usual.
func TestSpanLimits(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	core, logs := observer.New(zapcore.WarnLevel)
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	set.Logger = zap.New(core)
	cfg := testConfig()
	cfg.Limits = LimitsConfig{MaxTokensPerCount: 1_000_000, MaxCostUSDPerSpan: 1}
	sink := new(consumertest.TracesSink)
	p, err := NewFactory().CreateTraces(context.Background(), set, cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })

	tooManyTokens := simCall("research-agent")
	tooManyTokens["gen_ai.usage.input_tokens"] = int64(2_000_000) // $30 at $15/M, but implausible
	tooCostly := simCall("research-agent")
	tooCostly["gen_ai.usage.input_tokens"] = int64(100_000) // $1.65 > $1
	svc := map[string]any{"service.name": "svc-research"}
	td := buildTraces(t,
		spanSpec{name: "within", attrs: simCall("research-agent"), resource: svc},
		spanSpec{name: "too-many-tokens", attrs: tooManyTokens, resource: svc},
		spanSpec{name: "too-costly", attrs: tooCostly, resource: svc},
	)
	ctx := as(access.Identity{Role: access.RoleAgent, Subject: "research-agent"})
	if err := p.ConsumeTraces(ctx, td); err != nil {
		t.Fatal(err)
	}
	spans := spansOf(sink.AllTraces()[0])
	if got := attrDouble(t, spans[0], "agentcost.cost_usd"); got != 0.75 {
		t.Errorf("span within the limits: cost %v, want 0.75", got)
	}
	for _, s := range spans[1:] {
		if _, ok := s.Attributes().Get("agentcost.cost_usd"); ok {
			t.Errorf("span %s beyond the limits was priced: %v", s.Name(), s.Attributes().AsRaw())
		}
	}
	if got := malformedBy(t, tel); got["tokens_over_limit"] != 1 || got["cost_over_limit"] != 1 {
		t.Errorf("spans_malformed by reason = %v, want one tokens_over_limit and one cost_over_limit", got)
	}
	warned := logs.FilterMessageSnippet("beyond the processor's limits").All()
	if len(warned) != 1 {
		t.Fatalf("%d warnings, want 1: %v", len(warned), logs.All())
	}
	f := warned[0].ContextMap()
	if f["agent"] != "research-agent" || f["service.name"] != "svc-research" || f["sender"] != "research-agent" ||
		f["spans"] != int64(2) || f["reason"] != "tokens_over_limit" {
		t.Errorf("warning fields %v", f)
	}
	// A second batch within the log interval is counted, not logged again.
	if err := p.ConsumeTraces(ctx, buildTraces(t, spanSpec{name: "again", attrs: tooCostly, resource: svc})); err != nil {
		t.Fatal(err)
	}
	if n := len(logs.FilterMessageSnippet("beyond the processor's limits").All()); n != 1 {
		t.Errorf("%d warnings after a second batch, want still 1 (rate limited)", n)
	}
	if got := malformedBy(t, tel); got["cost_over_limit"] != 2 {
		t.Errorf("cost_over_limit = %d, want 2", got["cost_over_limit"])
	}
}

// TestSpanLimitsDefault: by default a count above the longest context of the embedded price table
// is beyond the limits, though far below the 100M hard cap.
func TestSpanLimitsDefault(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	p, sink := newTestProcessor(t, createDefaultConfig().(*Config), tel)
	td := buildTraces(t, spanSpec{name: "huge", attrs: map[string]any{"gen_ai.provider.name": "openai",
		"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": int64(DefaultMaxTokensPerCount + 1), "gen_ai.usage.output_tokens": int64(10)}})
	spans := process(t, p, sink, td)
	if _, ok := spans[0].Attributes().Get("agentcost.cost_usd"); ok {
		t.Errorf("a span above the default token limit was priced: %v", spans[0].Attributes().AsRaw())
	}
	if got := malformedBy(t, tel); got["tokens_over_limit"] != 1 {
		t.Errorf("spans_malformed by reason = %v, want one tokens_over_limit", got)
	}
}

func TestLimitsValidation(t *testing.T) {
	for _, c := range []struct {
		limits LimitsConfig
		want   string
	}{
		{LimitsConfig{MaxTokensPerCount: 0, MaxCostUSDPerSpan: 1}, "limits.max_tokens_per_count: 0 must be between 1 and 100000000"},
		{LimitsConfig{MaxTokensPerCount: 200_000_000, MaxCostUSDPerSpan: 1}, "limits.max_tokens_per_count: 200000000 must be between 1"},
		{LimitsConfig{MaxTokensPerCount: 10, MaxCostUSDPerSpan: 0}, "limits.max_cost_usd_per_span: 0 must be above 0"},
		{LimitsConfig{MaxTokensPerCount: 10, MaxCostUSDPerSpan: -5}, "limits.max_cost_usd_per_span: -5 must be above 0"},
	} {
		cfg := createDefaultConfig().(*Config)
		cfg.Limits = c.limits
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want %q", c.limits, err, c.want)
		}
	}
}

// TestReadmeExampleLoads: the README's example configuration (with its limits) loads and validates.
func TestReadmeExampleLoads(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, part := range strings.Split(string(data), "```yaml\n")[1:] {
		if b, _, _ := strings.Cut(part, "```"); strings.HasPrefix(b, "processors:\n") && strings.Contains(b, "limits:") {
			block = b
		}
	}
	if block == "" {
		t.Fatal("no processors example with limits in README.md")
	}
	var raw map[string]any
	if err := yaml.Unmarshal([]byte(block), &raw); err != nil {
		t.Fatal(err)
	}
	sub, err := confmap.NewFromStringMap(raw).Sub("processors::agentcost")
	if err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.MaxTokensPerCount != 2_000_000 || cfg.Limits.MaxCostUSDPerSpan != 200 {
		t.Errorf("limits %+v, want the README's 2000000 and 200", cfg.Limits)
	}
}

// TestDefaultTokenLimitIsLongestContext: limits.max_tokens_per_count defaults to the longest
// context (max_input_tokens) of any model in the embedded price file, so the default never
// refuses a real call and is no larger than any model accepts.
func TestDefaultTokenLimitIsLongestContext(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "internal", "pricing", "data", pricing.DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(data, &entries); err != nil {
		t.Fatal(err)
	}
	var longest int64
	for _, raw := range entries {
		var e struct {
			MaxInputTokens any `json:"max_input_tokens"`
		}
		if json.Unmarshal(raw, &e) != nil {
			continue
		}
		if f, ok := e.MaxInputTokens.(float64); ok && int64(f) > longest {
			longest = int64(f)
		}
	}
	if longest != DefaultMaxTokensPerCount {
		t.Errorf("the embedded table's longest context is %d tokens; DefaultMaxTokensPerCount is %d", longest, DefaultMaxTokensPerCount)
	}
}

package agentcostprocessor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/agentcost/agentcost/internal/access"
)

// modesConfig is the test configuration with a price file that prices two tools.
func modesConfig(t *testing.T) *Config {
	t.Helper()
	tools := filepath.Join(t.TempDir(), "tools.yaml")
	if err := os.WriteFile(tools, []byte(`source: tool-prices
tools:
  web_search: {per_call_usd: 0.01}
  maps: {per_unit_usd: 0.002, unit_attribute: maps.requests}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Prices.Files = append(cfg.Prices.Files, tools)
	return cfg
}

func toolSpan(tool string, extra map[string]any) map[string]any {
	a := map[string]any{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool, "gen_ai.agent.name": "research-agent"}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// TestToolCallsPriced: execute_tool spans are priced from the price file's tools — a flat price per
// call, or per unit of a span attribute — and booked like LLM spend under the model
// "tool:<name>"; an unpriced tool, a span that is not execute_tool, a malformed or implausible unit
// count, and a per-unit tool whose span does not count its units are never booked at a guess.
func TestToolCallsPriced(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	cfg := modesConfig(t)
	cfg.Limits.MaxTokensPerCount = 1_000_000
	p, sink := newTestProcessor(t, cfg, tel)
	spans := process(t, p, sink, buildTraces(t,
		spanSpec{name: "search", attrs: toolSpan("web_search", nil)},
		spanSpec{name: "maps", attrs: toolSpan("maps", map[string]any{"maps.requests": int64(25)})},
		spanSpec{name: "free tool", attrs: toolSpan("calculator", nil)},
		spanSpec{name: "not a tool call", attrs: map[string]any{"gen_ai.tool.name": "web_search"}},
		spanSpec{name: "maps without units", attrs: toolSpan("maps", nil)},
		spanSpec{name: "maps, string units", attrs: toolSpan("maps", map[string]any{"maps.requests": "25"})},
		spanSpec{name: "maps, implausible units", attrs: toolSpan("maps", map[string]any{"maps.requests": int64(2_000_000)})},
	))
	want := []struct {
		cost  float64 // 0: not priced
		model string
	}{{0.01, "tool:web_search"}, {0.05, "tool:maps"}, {}, {}, {}, {}, {}}
	for i, s := range spans {
		v, priced := s.Attributes().Get("agentcost.cost_usd")
		switch {
		case want[i].cost == 0 && priced:
			t.Errorf("%s: priced at %v: %v", s.Name(), v.Double(), s.Attributes().AsRaw())
		case want[i].cost != 0 && (!priced || v.Double() != want[i].cost || attrStr(s, "agentcost.model") != want[i].model ||
			attrStr(s, "agentcost.agent") != "research-agent"):
			t.Errorf("%s: attrs %v, want cost %v model %s", s.Name(), s.Attributes().AsRaw(), want[i].cost, want[i].model)
		}
	}
	if attrStr(spans[4], "agentcost.price.unknown") != "true" || attrStr(spans[4], "agentcost.price.unpriced_units") != "tool_units" {
		t.Errorf("a per-unit tool without its unit count: %v, want marked unknown", spans[4].Attributes().AsRaw())
	}
	if got := malformedBy(t, tel); got["tool_units"] != 1 || got["tokens_over_limit"] != 1 {
		t.Errorf("spans_malformed = %v, want one tool_units and one tokens_over_limit", got)
	}
	if n := sumCounter(t, tel, "otelcol_processor_agentcost_tool_calls_priced"); n != 2 {
		t.Errorf("tool_calls_priced = %d, want 2", n)
	}
}

func reportedSpan(model string, extra map[string]any) map[string]any {
	a := map[string]any{"gen_ai.request.model": model, "gen_ai.usage.input_tokens": int64(40_000),
		"gen_ai.usage.output_tokens": int64(10_000), "gen_ai.agent.name": "research-agent"}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// TestReportedCost: a cost the span reports is ignored by default; prices.reported_cost: prefer
// books it (USD only) whenever present, only_when_unpriced only where the table has no price; the
// span says so in agentcost.cost.source, and the per-span cost limit holds the sender's word too.
func TestReportedCost(t *testing.T) {
	// sim-llm at $15/M: 50k tokens are $0.75 by the table.
	specs := func() ptrace.Traces {
		return buildTraces(t,
			spanSpec{name: "genai cost", attrs: reportedSpan("sim-llm", map[string]any{"gen_ai.usage.cost.amount": 0.5, "gen_ai.usage.cost.currency": "USD"})},
			spanSpec{name: "openlit cost", attrs: reportedSpan("sim-llm", map[string]any{"gen_ai.usage.cost": 0.25})},
			spanSpec{name: "euro cost", attrs: reportedSpan("sim-llm", map[string]any{"gen_ai.usage.cost.amount": 0.5, "gen_ai.usage.cost.currency": "EUR"})},
			spanSpec{name: "unknown model", attrs: reportedSpan("router/mystery-model", map[string]any{"gen_ai.usage.cost.amount": 0.125})},
			spanSpec{name: "absurd cost", attrs: reportedSpan("router/mystery-model", map[string]any{"gen_ai.usage.cost.amount": 900.0})},
			spanSpec{name: "cost, no tokens", attrs: map[string]any{"gen_ai.request.model": "router/mystery-model", "gen_ai.usage.cost.amount": 0.0625}},
		)
	}
	cases := []struct {
		mode string
		// want is the cost per span (0: not priced) and reported whether it came from the span.
		want     []float64
		reported []bool
	}{
		{"ignore", []float64{0.75, 0.75, 0.75, 0, 0, 0}, []bool{false, false, false, false, false, false}},
		{"prefer", []float64{0.5, 0.25, 0.75, 0.125, 0, 0.0625}, []bool{true, true, false, true, false, true}},
		{"only_when_unpriced", []float64{0.75, 0.75, 0.75, 0.125, 0, 0.0625}, []bool{false, false, false, true, false, true}},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			tel := componenttest.NewTelemetry()
			t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
			cfg := testConfig()
			cfg.Prices.ReportedCost = c.mode
			cfg.Limits.MaxCostUSDPerSpan = 500
			p, sink := newTestProcessor(t, cfg, tel)
			spans := process(t, p, sink, specs())
			for i, s := range spans {
				v, priced := s.Attributes().Get("agentcost.cost_usd")
				got := 0.0
				if priced {
					got = v.Double()
				}
				src := attrStr(s, "agentcost.cost.source")
				if got != c.want[i] || (src == "reported") != c.reported[i] {
					t.Errorf("%s: cost %v source %q, want %v reported=%v (%v)", s.Name(), got, src, c.want[i], c.reported[i], s.Attributes().AsRaw())
				}
			}
			if c.mode == "ignore" {
				return
			}
			if model := attrStr(spans[3], "agentcost.model"); model != "router/mystery-model" {
				t.Errorf("a reported cost without a table entry is booked under model %q, want the span's", model)
			}
			got := malformedBy(t, tel)
			if got["reported_cost_currency"] != 1 || got["cost_over_limit"] != 1 {
				t.Errorf("spans_malformed = %v, want one reported_cost_currency and one cost_over_limit", got)
			}
			reported := int64(0)
			for _, r := range c.reported {
				if r {
					reported++
				}
			}
			if n := sumCounter(t, tel, "otelcol_processor_agentcost_spans_reported_cost"); n != reported {
				t.Errorf("spans_reported_cost = %d, want %d", n, reported)
			}
		})
	}
	cfg := createDefaultConfig().(*Config)
	if cfg.Prices.ReportedCost != "ignore" {
		t.Errorf("default prices.reported_cost = %q, want ignore", cfg.Prices.ReportedCost)
	}
	cfg.Prices.ReportedCost = "trust"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "prices.reported_cost") {
		t.Errorf("Validate() = %v, want an error naming prices.reported_cost", err)
	}
}

// TestReportedCostAuthenticatedSender: an authenticated agent cannot smuggle a cost source or a
// cost in agentcost.* keys; its gen_ai.usage.cost.amount is its word, booked only by configuration.
func TestReportedCostAuthenticatedSender(t *testing.T) {
	cfg := testConfig()
	td := buildTraces(t, spanSpec{name: "claims", attrs: reportedSpan("sim-llm", map[string]any{
		"gen_ai.usage.cost.amount": 0.001, "agentcost.cost.source": "reported", "agentcost.price.unpriced_units": "x"})})
	out := processAs(t, as(access.Identity{Role: access.RoleAgent, Subject: "research-agent"}), cfg, nil, td)
	s := spansOf(out)[0]
	if got := attrDouble(t, s, "agentcost.cost_usd"); got != 0.75 || attrStr(s, "agentcost.cost.source") != "" ||
		attrStr(s, "agentcost.price.unpriced_units") != "" {
		t.Errorf("attrs %v: want the table's $0.75 and the sender's agentcost.* claims removed", s.Attributes().AsRaw())
	}
}

// TestModalitiesAndUnits: the GenAI modality keys and the per-unit counts reach the price, and a
// unit the entry has no price for is named on the span, never silently $0.
func TestModalitiesAndUnits(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	cfg := createDefaultConfig().(*Config)
	cfg.Attributes = AttributesDetailed
	p, sink := newTestProcessor(t, cfg, tel)
	spans := process(t, p, sink, buildTraces(t,
		// gpt-4o-audio-preview: $2.5/M text in, $40/M audio in, $10/M text out, $80/M audio out.
		spanSpec{name: "audio", attrs: map[string]any{"gen_ai.request.model": "gpt-4o-audio-preview",
			"gen_ai.usage.input_tokens": int64(5_000), "gen_ai.usage.audio.input_tokens": int64(3_000),
			"gen_ai.usage.output_tokens": int64(900), "gen_ai.usage.audio.output_tokens": int64(700)}},
		// gpt-4o-search-preview: $2.5/M in, $10/M out, $0.05 per high-context query.
		spanSpec{name: "search", attrs: map[string]any{"gen_ai.request.model": "gpt-4o-search-preview",
			"gen_ai.usage.input_tokens": int64(1_000), "gen_ai.usage.output_tokens": int64(400),
			"agentcost.usage.web_search_queries": int64(3), "agentcost.usage.search_context_size": "high"}},
		spanSpec{name: "search, no price", attrs: map[string]any{"gen_ai.request.model": "gpt-4o-mini",
			"gen_ai.usage.input_tokens": int64(1_000), "gen_ai.usage.output_tokens": int64(10),
			"agentcost.usage.web_search_queries": int64(2)}},
		// text-embedding-3-small: $0.02/M.
		spanSpec{name: "embedding", attrs: map[string]any{"gen_ai.operation.name": "embeddings",
			"gen_ai.request.model": "text-embedding-3-small", "gen_ai.usage.input_tokens": int64(100_000)}},
	))
	for i, want := range []float64{0.005 + 0.12 + 0.002 + 0.056, 0.0025 + 0.004 + 0.15, 0.00015 + 0.000006, 0.002} {
		if got := attrDouble(t, spans[i], "agentcost.cost_usd"); got != roundNano(want) {
			t.Errorf("%s: cost %v, want %v", spans[i].Name(), got, roundNano(want))
		}
	}
	if got := attrDouble(t, spans[1], "agentcost.cost.units_usd"); got != 0.15 {
		t.Errorf("search units part %v, want 0.15", got)
	}
	if got := attrStr(spans[2], "agentcost.price.unpriced_units"); got != "web_search" {
		t.Errorf("unpriced units %q, want web_search", got)
	}
	if n := sumCounter(t, tel, "otelcol_processor_agentcost_spans_unpriced_units"); n != 1 {
		t.Errorf("spans_unpriced_units = %d, want 1", n)
	}
}

// roundNano rounds a float dollar amount to the nano-dollar, as agentcost.cost_usd carries it.
func roundNano(f float64) float64 {
	n := int64(f*1e9 + 0.5)
	return float64(n) / 1e9
}

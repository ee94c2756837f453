package genai

import (
	"testing"

	"github.com/agentcost/agentcost/internal/pricing"
)

// TestExtractModes: the GenAI modality keys, the agentcost per-unit keys and the reported cost's
// keys reach the Call; a malformed or inconsistent count is flagged like a token count.
func TestExtractModes(t *testing.T) {
	c := Extract(attrMap(t, map[string]any{
		"gen_ai.request.model": "gpt-4o-audio-preview", "gen_ai.usage.input_tokens": int64(5_000),
		"gen_ai.usage.audio.input_tokens": int64(3_000), "gen_ai.usage.image.input_tokens": int64(1_000),
		"gen_ai.usage.output_tokens": int64(900), "gen_ai.usage.audio.output_tokens": int64(700),
		"gen_ai.usage.cache_write.input_tokens": int64(500), KeyCacheWrite1hTokens: int64(200),
		KeyWebSearchQueries: int64(3), KeySearchContextSize: "high", KeyOutputImages: 2.0, KeyInputImages: int64(1),
		KeyReportedCostAmount: 0.0375, KeyReportedCostCurrency: "usd",
	}), "chat", nil)
	want := pricing.Usage{InputTokens: 5_000, OutputTokens: 900, CacheWriteTokens: 500, AudioInputTokens: 3_000,
		ImageInputTokens: 1_000, AudioOutputTokens: 700, CacheWrite1hTokens: 200, WebSearchQueries: 3,
		SearchContext: pricing.SearchContextHigh, OutputImages: 2, InputImages: 1}
	if c.Usage != want || c.Malformed != 0 || !c.HasReportedCost || c.ReportedCostUSD != 0.0375 || !c.ReportedCostInUSD() {
		t.Errorf("call %+v (malformed %s), want usage %+v and a USD reported cost", c, c.Malformed, want)
	}

	// Per-unit counts alone are usage to price; a currency other than USD is not dollars.
	c = Extract(attrMap(t, map[string]any{"gen_ai.request.model": "sonar", KeyWebSearchQueries: int64(1),
		KeyReportedCostAmount: 1.0, KeyReportedCostCurrency: "EUR"}), "search", nil)
	if !c.HasUsage || c.Usage.WebSearchQueries != 1 || c.ReportedCostInUSD() {
		t.Errorf("call %+v: want usage with one query and a non-USD cost", c)
	}
	// OpenLIT's and OpenInference's costs are dollars without a currency key.
	for _, k := range []string{"gen_ai.usage.cost", "llm.cost.total"} {
		c = Extract(attrMap(t, map[string]any{"gen_ai.request.model": "m", k: 0.5}), "x", nil)
		if !c.HasReportedCost || c.ReportedCostUSD != 0.5 || !c.ReportedCostInUSD() {
			t.Errorf("%s: call %+v, want a $0.5 reported cost", k, c)
		}
	}

	for _, bad := range []map[string]any{
		{"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": int64(10), "gen_ai.usage.audio.input_tokens": int64(11)},
		{"gen_ai.request.model": "m", "gen_ai.usage.output_tokens": int64(10), "gen_ai.usage.audio.output_tokens": int64(11)},
		{"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": int64(10), "gen_ai.usage.cache_write.input_tokens": int64(2), KeyCacheWrite1hTokens: int64(3)},
		{"gen_ai.request.model": "m", KeyWebSearchQueries: "3"},
		{"gen_ai.request.model": "m", KeyOutputImages: -1.0},
		{KeyOutputImages: int64(1)}, // no model
	} {
		if c := Extract(attrMap(t, bad), "x", nil); c.Malformed == 0 {
			t.Errorf("%v: not flagged malformed (%+v)", bad, c)
		}
	}
}

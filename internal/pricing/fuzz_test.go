package pricing

import (
	"errors"
	"testing"
)

// checkCostInvariants prices a few usages with e and checks what must always hold: no part is
// negative, and the once-rounded total is within the parts' rounding of their sum.
func checkCostInvariants(t *testing.T, e *Entry, usages ...Usage) {
	t.Helper()
	for _, u := range usages {
		c, err := e.Cost(u)
		if err != nil {
			if !errors.Is(err, ErrMalformedUsage) && !errors.Is(err, ErrCostOverflow) {
				t.Fatalf("%s: unexpected error %v", e.Model, err)
			}
			if c != (Cost{}) {
				t.Fatalf("%s: cost %+v with error %v", e.Model, c, err)
			}
			continue
		}
		if c.Input < 0 || c.Output < 0 || c.CacheRead < 0 || c.CacheWrite < 0 || c.Units < 0 || c.Total < 0 {
			t.Fatalf("%s: negative cost %+v for %+v", e.Model, c, u)
		}
		// Each of the five parts is off by at most half a nano-dollar from its exact value.
		if d := c.Total - (c.Input + c.Output + c.CacheRead + c.CacheWrite + c.Units); d < -2 || d > 2 {
			t.Fatalf("%s: total %d vs parts %+v", e.Model, c.Total, c)
		}
	}
}

var fuzzUsages = []Usage{
	{InputTokens: 1_000, OutputTokens: 500},
	{InputTokens: 300_000, CacheReadTokens: 100_000, CacheWriteTokens: 1_000, OutputTokens: 2_000, ReasoningTokens: 1_000, Tier: TierPriority},
	{InputTokens: 10, CacheReadTokens: 250_000, InputExcludesCache: true, Tier: TierBatch},
	{InputTokens: MaxTokensPerPart, OutputTokens: MaxTokensPerPart, CacheReadTokens: MaxTokensPerPart, InputExcludesCache: true, Tier: TierFlex},
	{InputTokens: 5_000, AudioInputTokens: 2_000, ImageInputTokens: 1_000, CacheReadTokens: 3_000, CacheWriteTokens: 500,
		CacheWrite1hTokens: 200, OutputTokens: 900, ReasoningTokens: 300, AudioOutputTokens: 400, WebSearchQueries: 3,
		SearchContext: SearchContextHigh, OutputImages: 2, InputImages: 1},
}

func FuzzLoadLiteLLM(f *testing.F) {
	f.Add([]byte(`{"gpt-x": {"input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07, "litellm_provider": "openai"}}`))
	f.Add([]byte(`{"g": {"input_cost_per_token": 1.25e-06, "output_cost_per_token": 1e-05,
		"input_cost_per_token_above_200k_tokens": 2.5e-06, "output_cost_per_token_above_200k_tokens": 1.5e-05,
		"cache_read_input_token_cost_above_200k_tokens_priority": 7.2e-07, "input_cost_per_token_flex": 1e-7,
		"output_cost_per_reasoning_token": 3.5e-06, "supported_regions": ["global"], "x": {"y": [1, {"z": null}]}}}`))
	f.Add([]byte(`{"sample_spec": {"input_cost_per_token": 0}, "a": {"input_cost_per_token": "3e-7", "output_cost_per_token": 0}}`))
	f.Add([]byte(`{"a": {"input_cost_per_token": -1}}`))
	f.Add([]byte(`{"t": {"tiered_pricing": [{"input_cost_per_token": 4e-07, "output_cost_per_reasoning_token": 4e-06, "output_cost_per_token": 1.2e-06, "range": [0, 256000.0]},
		{"input_cost_per_token": 1.2e-06, "cache_read_input_token_cost": 1e-7, "output_cost_per_token": 3.6e-06, "range": [256000.0, 1000000.0]}]},
		"s": {"tiered_pricing": [{"input_cost_per_query": 0.005, "max_results_range": [0, 25]}]},
		"w": {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6, "input_cost_per_audio_token": 4e-5, "output_cost_per_audio_token_priority": 8e-5,
		"cache_creation_input_token_cost_above_1hr_above_200k_tokens": 1.2e-05, "output_cost_per_image": 0.039, "input_cost_per_image": 0.001,
		"search_context_cost_per_query": {"search_context_size_low": 0.03, "search_context_size_medium": 0.035, "search_context_size_high": 0.05}}}`))
	f.Add([]byte(`{"a": {"input_cost_per_token": 1e999, "output_cost_per_token": 1}}`))
	f.Add([]byte(`{"a": {}, "a": {}}`))
	f.Add([]byte(`[`))
	f.Add([]byte(``))
	f.Add(defaultJSON[:2000])
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLiteLLM(data, "fuzz.json", "fuzz")
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) || fe.File != "fuzz.json" || fe.Line < 1 {
				t.Fatalf("error without file and line: %v", err)
			}
			return
		}
		table, err := Build(l)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		for _, e := range l.Entries {
			if !e.Standard.Has(HasInput | HasOutput) {
				t.Fatalf("%q loaded without input and output prices", e.Model)
			}
			for i := 1; i < len(e.Tiers); i++ {
				if e.Tiers[i-1].AboveTokens >= e.Tiers[i].AboveTokens {
					t.Fatalf("%q: tiers out of order", e.Model)
				}
			}
			if got, ok := table.Lookup(e.Model, ""); !ok || got.Model != e.Model {
				t.Fatalf("%q does not reach itself", e.Model)
			}
			checkCostInvariants(t, e, fuzzUsages...)
		}
	})
}

func FuzzLoadYAML(f *testing.F) {
	f.Add([]byte(teamYAML))
	f.Add([]byte("models:\n  a: {input_per_million: 1, output_per_million: 2, aliases: [b, c]}\naliases: {d: a}\n"))
	f.Add([]byte("models:\n  a: &p {input_per_million: 1, output_per_million: 2}\n  b: *p\n"))
	f.Add([]byte("fallback:\n  openai: {input_per_million: 1e3, output_per_million: 0.000001}\n"))
	f.Add([]byte("models:\n  a: {input_per_million: -1}\n"))
	f.Add([]byte("source: [x]\n"))
	f.Add([]byte("tools:\n  w: {per_call_usd: 0.01}\n  m: {per_unit_usd: 0.002, unit_attribute: m.n}\nmodels:\n  v: {input_per_million: 1, output_per_million: 2, audio_input_per_million: 40, web_search_per_query_usd: 0.01}\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseYAML(data, "fuzz.yaml")
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) || fe.File != "fuzz.yaml" {
				t.Fatalf("error without file: %v", err)
			}
			return
		}
		if l.Source == "" {
			t.Fatal("empty source label")
		}
		table, err := Build(l)
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) || fe.Line < 1 {
				t.Fatalf("Build error without line: %v", err)
			}
			return
		}
		for _, e := range append(append([]*Entry(nil), l.Entries...), l.Fallbacks...) {
			if !e.Standard.Has(HasInput|HasOutput) || e.Source != l.Source {
				t.Fatalf("entry %+v", e)
			}
			checkCostInvariants(t, e, fuzzUsages...)
		}
		for _, a := range l.Aliases {
			if _, ok := table.Lookup(a.Name, ""); !ok {
				t.Fatalf("alias %q does not resolve", a.Name)
			}
		}
	})
}

var fuzzTable struct {
	table *Table
	err   error
}

func FuzzLookup(f *testing.F) {
	for _, s := range []struct{ model, provider string }{
		{"gpt-5.4-mini-2026-09-30", "openai"},
		{"us.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock"},
		{"bedrock/converse/global.anthropic.claude-opus-4-5-v1:0", ""},
		{"vertex_ai/claude-3-5-sonnet@20240620", "gcp.vertex_ai"},
		{"gemini-1.5-pro", "gcp.gemini"},
		{"azure/gpt-4o-mini", "az.ai.openai"},
		{"GPT-4O", "OpenAI.Chat"},
		{"@", "-"},
		{"a/b/c/", "/"},
		{"x-v:", ""},
		{"-0000", ""},
		{"\xff\xfe", "\x00"},
	} {
		f.Add(s.model, s.provider, int64(250_000), int64(1_000), int64(50_000), int64(1_000), int64(500), uint8(TierPriority), false)
	}
	f.Fuzz(func(t *testing.T, model, provider string, in, out, cr, cw, reasoning int64, tier uint8, excl bool) {
		if fuzzTable.table == nil && fuzzTable.err == nil {
			fuzzTable.table, fuzzTable.err = Build(fullLayer(t), embeddedLayer(t))
		}
		if fuzzTable.err != nil {
			t.Fatal(fuzzTable.err)
		}
		table := fuzzTable.table
		e, ok := table.Lookup(model, provider)
		m := table.Explain(model, provider)
		if e != m.Entry || ok != (e != nil) {
			t.Fatalf("Lookup %v, Explain %+v", e, m)
		}
		if again, _ := table.Lookup(model, provider); again != e {
			t.Fatal("cached lookup differs")
		}
		if e == nil {
			return
		}
		if m.Reason == "" || len(m.Rules) == 0 {
			t.Fatalf("match without reason: %+v", m)
		}
		u := Usage{InputTokens: in, OutputTokens: out, CacheReadTokens: cr, CacheWriteTokens: cw,
			ReasoningTokens: reasoning, Tier: ServiceTier(tier), InputExcludesCache: excl}
		checkCostInvariants(t, e, u)
	})
}

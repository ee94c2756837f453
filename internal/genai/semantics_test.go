package genai

import (
	"reflect"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

func TestDecideByTotal(t *testing.T) {
	for _, tc := range []struct {
		name                         string
		in, out, cache, reason, tot  int64
		wantCache, wantReasonOutside bool
	}{
		{"convention", 1300, 200, 300, 0, 1500, false, false},
		{"input without the cache", 1000, 200, 300, 0, 1500, true, false},
		{"Gemini output without the thoughts", 1000, 300, 0, 150, 1450, false, true},
		{"OpenAI reasoning inside output", 1000, 450, 0, 150, 1450, false, false},
		{"both left out", 1000, 300, 300, 150, 1750, true, true},
		{"no cache, no reasoning: says nothing", 1000, 200, 0, 0, 1200, false, false},
		{"a total that fits nothing says nothing", 1000, 200, 300, 150, 9999, false, false},
		// Anthropic's raw input + output (OpenLLMetry's JS total) reads as the convention: the
		// scope rule, not the total, decides for that instrumentation.
		{"raw total of raw counts", 1000, 200, 300, 0, 1200, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, r := decideByTotal(tc.in, tc.out, tc.cache, tc.reason, tc.tot)
			if c != tc.wantCache || r != tc.wantReasonOutside {
				t.Errorf("decideByTotal = (%v, %v), want (%v, %v)", c, r, tc.wantCache, tc.wantReasonOutside)
			}
		})
	}
}

// TestScopeSemantics reads the same attributes under each known scope, an unknown one and none.
func TestScopeSemantics(t *testing.T) {
	anthropic := map[string]any{"gen_ai.provider.name": "anthropic", "gen_ai.response.model": "claude-sonnet-4-5-20250929",
		"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200, "gen_ai.usage.total_tokens": 1200,
		"gen_ai.usage.cache_read.input_tokens": 200, "gen_ai.usage.cache_creation.input_tokens": 100}
	gemini := map[string]any{"gen_ai.provider.name": "gcp.gen_ai", "gen_ai.response.model": "gemini-2.5-flash",
		"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 300, "gen_ai.usage.reasoning_tokens": 150}
	bedrock := map[string]any{"llm.provider": "aws", "llm.model_name": "claude-sonnet-4-5-20250929", "openinference.span.kind": "LLM",
		"llm.token_count.prompt": 1000, "llm.token_count.completion": 200,
		"llm.token_count.prompt_details.cache_read": 200, "llm.token_count.prompt_details.cache_write": 100}
	for _, tc := range []struct {
		name, scope string
		attrs       map[string]any
		// wantExcludes is Usage.InputExcludesCache; wantOutput the output in the convention's meaning;
		// written the convention keys Normalize writes or rewrites.
		wantExcludes bool
		wantOutput   int64
		written      map[string]any
	}{
		{"OpenLLMetry JS Anthropic", "@traceloop/instrumentation-anthropic", anthropic, true, 200,
			map[string]any{KeyInputTokens: int64(1300), KeyUsageConvention: true}},
		{"unknown scope: the convention", "my-own-instrumentation", anthropic, false, 200, nil},
		{"no scope: the convention", "", anthropic, false, 200, nil},
		{"OpenLLMetry JS Gemini", "@traceloop/instrumentation-google-generativeai", gemini, false, 450,
			map[string]any{KeyOutputTokens: int64(450), KeyReasoningTokens: int64(150), KeyUsageConvention: true}},
		{"OpenInference Bedrock", "@arizeai/openinference-instrumentation-bedrock", bedrock, true, 200,
			map[string]any{KeyInputTokens: int64(1300), KeyOutputTokens: int64(200), KeyCacheReadTokens: int64(200),
				KeyCacheWriteTokens: int64(100), KeyRequestModel: "claude-sonnet-4-5-20250929", KeyProviderName: "aws.bedrock"}},
		// The Bedrock rule is Bedrock's: the same scope name with another provider reads as the convention.
		{"OpenInference Bedrock rule is per provider", "@arizeai/openinference-instrumentation-bedrock",
			withAttr(bedrock, "llm.provider", "anthropic"), false, 200,
			map[string]any{KeyInputTokens: int64(1000), KeyOutputTokens: int64(200), KeyCacheReadTokens: int64(200),
				KeyCacheWriteTokens: int64(100), KeyRequestModel: "claude-sonnet-4-5-20250929", KeyProviderName: "anthropic"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attrs := attrMap(t, tc.attrs)
			res := ReadResource(pcommon.NewMap()).InScope(tc.scope)
			c := Extract(attrs, "call", &res)
			if c.Usage.InputExcludesCache != tc.wantExcludes || c.Usage.OutputTokens != tc.wantOutput {
				t.Errorf("InputExcludesCache %v output %d, want %v and %d", c.Usage.InputExcludesCache, c.Usage.OutputTokens,
					tc.wantExcludes, tc.wantOutput)
			}
			if c.Malformed != 0 {
				t.Errorf("malformed: %v", c.Malformed)
			}
			before := pcommon.NewMap()
			attrs.CopyTo(before)
			Normalize(attrs, &c)
			var got map[string]any
			attrs.Range(func(k string, v pcommon.Value) bool {
				if old, ok := before.Get(k); !ok || !reflect.DeepEqual(old.AsRaw(), v.AsRaw()) {
					if got == nil {
						got = map[string]any{}
					}
					got[k] = v.AsRaw()
				}
				return true
			})
			if !reflect.DeepEqual(got, tc.written) {
				t.Errorf("Normalize wrote %v, want %v", got, tc.written)
			}
			// Normalising again (a second pass over the written span) changes nothing more.
			again := Extract(attrs, "call", &res)
			if again.Usage.OutputTokens != tc.wantOutput {
				t.Errorf("after Normalize the output reads %d, want %d", again.Usage.OutputTokens, tc.wantOutput)
			}
		})
	}
}

// TestTotalDecidesForUnknownScopes: an instrumentation this package does not know (here OpenLLMetry's
// Gemini spans under another scope name) whose total shows the reasoning outside the output.
func TestTotalDecidesForUnknownScopes(t *testing.T) {
	attrs := attrMap(t, map[string]any{"gen_ai.provider.name": "gcp.gen_ai", "gen_ai.response.model": "gemini-2.5-flash",
		"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 300, "gen_ai.usage.reasoning_tokens": 150,
		"gen_ai.usage.total_tokens": 1450})
	res := ReadResource(pcommon.NewMap()).InScope("opentelemetry.instrumentation.google_generativeai")
	c := Extract(attrs, "gemini.generate_content", &res)
	if c.Usage.OutputTokens != 450 || c.Usage.ReasoningTokens != 150 {
		t.Errorf("output %d reasoning %d, want 450 and 150", c.Usage.OutputTokens, c.Usage.ReasoningTokens)
	}
	// Under a known scope that follows the convention, the total does not decide.
	res = ReadResource(pcommon.NewMap()).InScope("opentelemetry.instrumentation.anthropic")
	if c := Extract(attrs, "x", &res); c.Usage.OutputTokens != 300 {
		t.Errorf("known convention scope: output %d, want 300 as written", c.Usage.OutputTokens)
	}
}

// TestSemanticsSurviveOverrides: finish runs again after OTTL overrides; the reasoning is added once.
func TestSemanticsSurviveOverrides(t *testing.T) {
	ex, err := NewExtractor(Options{})
	if err != nil {
		t.Fatal(err)
	}
	attrs := attrMap(t, map[string]any{"gen_ai.provider.name": "gcp.gen_ai", "gen_ai.response.model": "gemini-2.5-flash",
		"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 300, "gen_ai.usage.reasoning_tokens": 150})
	res := ReadResource(pcommon.NewMap()).InScope("@traceloop/instrumentation-google-generativeai")
	c := ex.Extract(attrs, "x", &res)
	ex.finish(&c)
	ex.finish(&c)
	if c.Usage.OutputTokens != 450 {
		t.Errorf("output %d after finishing three times, want 450", c.Usage.OutputTokens)
	}
}

func TestKnownScopesDocumented(t *testing.T) {
	for _, s := range KnownScopes() {
		if s.Scope == "" || s.Source == "" {
			t.Errorf("known scope %+v lacks a name or a source", s)
		}
	}
}

func withAttr(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for kk, vv := range m {
		out[kk] = vv
	}
	out[k] = v
	return out
}

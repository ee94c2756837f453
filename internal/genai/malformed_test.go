package genai

import (
	"math"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/agentcost/agentcost/internal/pricing"
)

func TestMalformed(t *testing.T) {
	const model = "gpt-4o"
	tests := []struct {
		name  string
		opts  Options
		set   func(m pcommon.Map)
		want  Malformed
		usage pricing.Usage
	}{
		{
			name: "valid",
			set: func(m pcommon.Map) {
				m.PutInt(KeyInputTokens, 100)
				m.PutInt(KeyOutputTokens, 10)
			},
			usage: pricing.Usage{InputTokens: 100, OutputTokens: 10},
		},
		{
			name: "token count as a string is dropped",
			set: func(m pcommon.Map) {
				m.PutStr(KeyInputTokens, "100")
				m.PutInt(KeyOutputTokens, 10)
			},
			want:  MalformedString,
			usage: pricing.Usage{OutputTokens: 10},
		},
		{
			name:  "token count as a bool",
			set:   func(m pcommon.Map) { m.PutBool(KeyOutputTokens, true) },
			want:  MalformedType,
			usage: pricing.Usage{},
		},
		{
			name:  "token count as a slice",
			set:   func(m pcommon.Map) { m.PutEmptySlice("ai.usage.promptTokens").AppendEmpty().SetInt(3) },
			want:  MalformedType,
			usage: pricing.Usage{},
		},
		{
			name: "negative int",
			set: func(m pcommon.Map) {
				m.PutInt(KeyInputTokens, -5)
				m.PutInt(KeyOutputTokens, 10)
			},
			want:  MalformedNegative,
			usage: pricing.Usage{OutputTokens: 10},
		},
		{
			name:  "negative double",
			set:   func(m pcommon.Map) { m.PutDouble(KeyOutputTokens, -2) },
			want:  MalformedNegative,
			usage: pricing.Usage{},
		},
		{
			name:  "NaN",
			set:   func(m pcommon.Map) { m.PutDouble(KeyInputTokens, math.NaN()) },
			want:  MalformedNonFinite,
			usage: pricing.Usage{},
		},
		{
			name:  "+Inf",
			set:   func(m pcommon.Map) { m.PutDouble("llm.token_count.prompt", math.Inf(1)) },
			want:  MalformedNonFinite,
			usage: pricing.Usage{},
		},
		{
			name:  "non-integral double",
			set:   func(m pcommon.Map) { m.PutDouble(KeyOutputTokens, 12.5) },
			want:  MalformedFraction,
			usage: pricing.Usage{},
		},
		{
			name:  "huge int",
			set:   func(m pcommon.Map) { m.PutInt(KeyInputTokens, MaxTokens+1) },
			want:  MalformedHuge,
			usage: pricing.Usage{},
		},
		{
			name:  "huge double",
			set:   func(m pcommon.Map) { m.PutDouble(KeyInputTokens, 1e300) },
			want:  MalformedHuge,
			usage: pricing.Usage{},
		},
		{
			name:  "exactly MaxTokens is fine",
			set:   func(m pcommon.Map) { m.PutInt(KeyInputTokens, MaxTokens) },
			usage: pricing.Usage{InputTokens: MaxTokens},
		},
		{
			name: "cache parts larger than input",
			set: func(m pcommon.Map) {
				m.PutInt(KeyInputTokens, 100)
				m.PutInt(KeyCacheReadTokens, 80)
				m.PutInt("gen_ai.usage.cache_creation.input_tokens", 30)
			},
			want:  MalformedCacheExceedsInput,
			usage: pricing.Usage{InputTokens: 100, CacheReadTokens: 80, CacheWriteTokens: 30},
		},
		{
			name: "cache parts equal to input are fine",
			set: func(m pcommon.Map) {
				m.PutInt(KeyInputTokens, 110)
				m.PutInt(KeyCacheReadTokens, 80)
				m.PutInt(KeyCacheWriteTokens, 30)
			},
			usage: pricing.Usage{InputTokens: 110, CacheReadTokens: 80, CacheWriteTokens: 30},
		},
		{
			name: "cache larger than input is expected when input excludes cache",
			opts: Options{InputExcludesCache: []string{"genai/anthropic"}},
			set: func(m pcommon.Map) {
				m.PutStr(KeyProviderName, "anthropic")
				m.PutInt(KeyInputTokens, 5)
				m.PutInt(KeyCacheReadTokens, 900)
			},
			usage: pricing.Usage{InputTokens: 5, CacheReadTokens: 900, InputExcludesCache: true},
		},
		{
			name: "reasoning larger than output",
			set: func(m pcommon.Map) {
				m.PutInt(KeyOutputTokens, 10)
				m.PutInt(KeyReasoningTokens, 11)
			},
			want:  MalformedReasoningExceedsOutput,
			usage: pricing.Usage{OutputTokens: 10, ReasoningTokens: 11},
		},
		{
			name: "several reasons at once",
			set: func(m pcommon.Map) {
				m.PutStr(KeyInputTokens, "x")
				m.PutDouble(KeyOutputTokens, 0.5)
				m.PutInt(KeyCacheReadTokens, 1)
			},
			want:  MalformedString | MalformedFraction | MalformedCacheExceedsInput,
			usage: pricing.Usage{CacheReadTokens: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex, err := NewExtractor(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			m := pcommon.NewMap()
			m.PutStr(KeyRequestModel, model)
			tt.set(m)
			c := ex.Extract(m, "chat", nil)
			if c.Malformed != tt.want {
				t.Errorf("Malformed = %q, want %q", c.Malformed, tt.want)
			}
			if c.Usage != tt.usage {
				t.Errorf("Usage = %+v, want %+v", c.Usage, tt.usage)
			}
			if !c.HasUsage {
				t.Error("HasUsage = false for a span with a token-count key")
			}
		})
	}
}

func TestMalformedNoModel(t *testing.T) {
	m := pcommon.NewMap()
	m.PutInt("ai.usage.inputTokens", 10)
	m.PutStr("ai.model.provider", "openai.chat")
	c := Extract(m, "ai.generateText.doGenerate", nil)
	if c.Malformed != MalformedNoModel {
		t.Errorf("Malformed = %q, want no_model", c.Malformed)
	}
	m.PutStr("ai.model.id", "gpt-4o")
	if c := Extract(m, "ai.generateText.doGenerate", nil); c.Malformed != 0 {
		t.Errorf("with a model: Malformed = %q, want none", c.Malformed)
	}
}

// A malformed value in itself is not normalised: the convention key would spread the bad value.
func TestNormalizeSkipsMalformedValues(t *testing.T) {
	m := pcommon.NewMap()
	m.PutStr("llm.model_name", "gpt-4o")
	m.PutStr("llm.token_count.prompt", "12")
	m.PutInt("llm.token_count.completion", 3)
	c := Extract(m, "ChatCompletion", nil)
	Normalize(m, &c)
	if _, ok := m.Get(KeyInputTokens); ok {
		t.Error("Normalize wrote gen_ai.usage.input_tokens from a string token count")
	}
	if v, ok := m.Get(KeyOutputTokens); !ok || v.Int() != 3 {
		t.Errorf("gen_ai.usage.output_tokens = %v, %v; want 3", v.AsRaw(), ok)
	}
}

func TestMalformedString(t *testing.T) {
	tests := []struct {
		m     Malformed
		str   string
		first string
	}{
		{0, "", ""},
		{MalformedNegative, "negative", "negative"},
		{MalformedString | MalformedNoModel, "string,no_model", "string"},
		{MalformedHuge | MalformedReasoningExceedsOutput, "huge,reasoning_exceeds_output", "huge"},
	}
	for _, tt := range tests {
		if got := tt.m.String(); got != tt.str {
			t.Errorf("%d.String() = %q, want %q", tt.m, got, tt.str)
		}
		if got := tt.m.First(); got != tt.first {
			t.Errorf("%d.First() = %q, want %q", tt.m, got, tt.first)
		}
	}
	if !(MalformedString | MalformedHuge).Has(MalformedHuge) || MalformedString.Has(MalformedHuge) || MalformedString.Has(0) {
		t.Error("Has is wrong")
	}
}

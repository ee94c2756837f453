package pricing

import (
	"encoding/json"
	"errors"
	"math/big"
	"strconv"
	"testing"

	"github.com/agentcost/agentcost/internal/money"
)

// TestCostGolden prices real entries of both files and checks every part against the file's own
// decimal prices, multiplied out with rationals and rounded once.
func TestCostGolden(t *testing.T) {
	def := embeddedLayer(t)
	table := mustBuild(t, fullLayer(t), def)
	raw := rawPrices(t, defaultJSON)
	for k, v := range rawPrices(t, fullJSON(t)) {
		if _, ok := raw[k]; !ok {
			raw[k] = v
		}
	}

	type want struct{ input, output, cacheRead, cacheWrite []part }
	cases := []struct {
		name  string
		model string
		usage Usage
		want  want
	}{
		{
			name: "plain", model: "gpt-5.4-mini",
			usage: Usage{InputTokens: 1200, OutputTokens: 350},
			want:  want{input: []part{{1200, "input_cost_per_token"}}, output: []part{{350, "output_cost_per_token"}}},
		},
		{
			name: "cached input is inside input_tokens", model: "gpt-5.4-mini",
			usage: Usage{InputTokens: 10_000, CacheReadTokens: 8_000, OutputTokens: 500},
			want: want{
				input:     []part{{2_000, "input_cost_per_token"}},
				output:    []part{{500, "output_cost_per_token"}},
				cacheRead: []part{{8_000, "cache_read_input_token_cost"}},
			},
		},
		{
			name: "reasoning without its own rate is output", model: "gpt-5.4-mini",
			usage: Usage{InputTokens: 100, OutputTokens: 3_000, ReasoningTokens: 2_500},
			want:  want{input: []part{{100, "input_cost_per_token"}}, output: []part{{3_000, "output_cost_per_token"}}},
		},
		{
			name: "batch; cache read has no batch column", model: "gpt-5.4-mini",
			usage: Usage{InputTokens: 10_000, CacheReadTokens: 4_000, OutputTokens: 1_000, Tier: TierBatch},
			want: want{
				input:     []part{{6_000, "input_cost_per_token_batches"}},
				output:    []part{{1_000, "output_cost_per_token_batches"}},
				cacheRead: []part{{4_000, "cache_read_input_token_cost"}},
			},
		},
		{
			name: "flex", model: "gpt-5.4-mini",
			usage: Usage{InputTokens: 10_000, CacheReadTokens: 4_000, OutputTokens: 1_000, Tier: TierFlex},
			want: want{
				input:     []part{{6_000, "input_cost_per_token_flex"}},
				output:    []part{{1_000, "output_cost_per_token_flex"}},
				cacheRead: []part{{4_000, "cache_read_input_token_cost_flex"}},
			},
		},
		{
			name: "priority", model: "gpt-5.4-mini",
			usage: Usage{InputTokens: 10_000, CacheReadTokens: 4_000, OutputTokens: 1_000, Tier: TierPriority},
			want: want{
				input:     []part{{6_000, "input_cost_per_token_priority"}},
				output:    []part{{1_000, "output_cost_per_token_priority"}},
				cacheRead: []part{{4_000, "cache_read_input_token_cost_priority"}},
			},
		},
		{
			name: "anthropic raw usage excludes cache; cache write", model: "claude-sonnet-4-5",
			usage: Usage{InputTokens: 500, CacheReadTokens: 20_000, CacheWriteTokens: 3_000, OutputTokens: 800, InputExcludesCache: true},
			want: want{
				input:      []part{{500, "input_cost_per_token"}},
				output:     []part{{800, "output_cost_per_token"}},
				cacheRead:  []part{{20_000, "cache_read_input_token_cost"}},
				cacheWrite: []part{{3_000, "cache_creation_input_token_cost"}},
			},
		},
		{
			name: "claude above 200k counts cached prompt tokens", model: "claude-sonnet-4-5",
			usage: Usage{InputTokens: 150_000, CacheReadTokens: 50_000, CacheWriteTokens: 1_000, OutputTokens: 2_000, InputExcludesCache: true},
			want: want{
				input:      []part{{150_000, "input_cost_per_token_above_200k_tokens"}},
				output:     []part{{2_000, "output_cost_per_token_above_200k_tokens"}},
				cacheRead:  []part{{50_000, "cache_read_input_token_cost_above_200k_tokens"}},
				cacheWrite: []part{{1_000, "cache_creation_input_token_cost_above_200k_tokens"}},
			},
		},
		{
			name: "gemini at exactly 200k is not above", model: "gemini-2.5-pro",
			usage: Usage{InputTokens: 200_000, OutputTokens: 1_000},
			want:  want{input: []part{{200_000, "input_cost_per_token"}}, output: []part{{1_000, "output_cost_per_token"}}},
		},
		{
			name: "gemini above 200k", model: "gemini-2.5-pro",
			usage: Usage{InputTokens: 250_000, CacheReadTokens: 100_000, OutputTokens: 4_000},
			want: want{
				input:     []part{{150_000, "input_cost_per_token_above_200k_tokens"}},
				output:    []part{{4_000, "output_cost_per_token_above_200k_tokens"}},
				cacheRead: []part{{100_000, "cache_read_input_token_cost_above_200k_tokens"}},
			},
		},
		{
			name: "gemini without a base cache-write rate falls back to input", model: "gemini-2.5-pro",
			usage: Usage{InputTokens: 10_000, CacheWriteTokens: 4_000, OutputTokens: 10},
			want: want{
				input:      []part{{6_000, "input_cost_per_token"}},
				output:     []part{{10, "output_cost_per_token"}},
				cacheWrite: []part{{4_000, "input_cost_per_token"}},
			},
		},
		{
			name: "gemini priority below 200k", model: "gemini-3-pro-preview",
			usage: Usage{InputTokens: 50_000, CacheReadTokens: 10_000, OutputTokens: 1_000, Tier: TierPriority},
			want: want{
				input:     []part{{40_000, "input_cost_per_token_priority"}},
				output:    []part{{1_000, "output_cost_per_token_priority"}},
				cacheRead: []part{{10_000, "cache_read_input_token_cost_priority"}},
			},
		},
		{
			name: "gemini priority above 200k uses the combined columns", model: "gemini-3-pro-preview",
			usage: Usage{InputTokens: 300_000, CacheReadTokens: 10_000, OutputTokens: 1_000, Tier: TierPriority},
			want: want{
				input:     []part{{290_000, "input_cost_per_token_above_200k_tokens_priority"}},
				output:    []part{{1_000, "output_cost_per_token_above_200k_tokens_priority"}},
				cacheRead: []part{{10_000, "cache_read_input_token_cost_above_200k_tokens_priority"}},
			},
		},
		{
			name: "gpt-5.4 above 272k on priority: no combined column, tiered standard wins (LiteLLM)", model: "gpt-5.4",
			usage: Usage{InputTokens: 300_000, CacheReadTokens: 100_000, OutputTokens: 1_000, Tier: TierPriority},
			want: want{
				input:     []part{{200_000, "input_cost_per_token_above_272k_tokens"}},
				output:    []part{{1_000, "output_cost_per_token_above_272k_tokens"}},
				cacheRead: []part{{100_000, "cache_read_input_token_cost_above_272k_tokens"}},
			},
		},
		{
			name: "gpt-5.4 batch above 272k: batch has no tier, tiered standard wins", model: "gpt-5.4",
			usage: Usage{InputTokens: 300_000, OutputTokens: 1_000, Tier: TierBatch},
			want: want{
				input:  []part{{300_000, "input_cost_per_token_above_272k_tokens"}},
				output: []part{{1_000, "output_cost_per_token_above_272k_tokens"}},
			},
		},
		{
			name: "reasoning at its own rate, priced once", model: "gemini-2.5-flash-preview-04-17",
			usage: Usage{InputTokens: 1_000, OutputTokens: 2_000, ReasoningTokens: 1_500},
			want: want{
				input:  []part{{1_000, "input_cost_per_token"}},
				output: []part{{500, "output_cost_per_token"}, {1_500, "output_cost_per_reasoning_token"}},
			},
		},
		{
			name: "bedrock key with version suffix", model: "claude-sonnet-4-5-20250929-v1:0",
			usage: Usage{InputTokens: 2_000, CacheWriteTokens: 1_000, OutputTokens: 100},
			want: want{
				input:      []part{{1_000, "input_cost_per_token"}},
				output:     []part{{100, "output_cost_per_token"}},
				cacheWrite: []part{{1_000, "cache_creation_input_token_cost"}},
			},
		},
		{
			name: "deepseek sub-nano cache price", model: "deepseek-v4-flash",
			usage: Usage{InputTokens: 12_345, CacheReadTokens: 7_777, OutputTokens: 333},
			want: want{
				input:     []part{{12_345 - 7_777, "input_cost_per_token"}},
				output:    []part{{333, "output_cost_per_token"}},
				cacheRead: []part{{7_777, "cache_read_input_token_cost"}},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, ok := table.Lookup(c.model, "")
			if !ok || e.Model != c.model {
				t.Fatalf("Lookup(%q) = %v, %v", c.model, e, ok)
			}
			entry := raw[c.model]
			got, err := e.Cost(c.usage)
			if err != nil {
				t.Fatal(err)
			}
			all := append(append(append(append([]part(nil), c.want.input...), c.want.output...), c.want.cacheRead...), c.want.cacheWrite...)
			want := Cost{
				Input:      money.Nanos(oracleNanos(t, entry, c.want.input...)),
				Output:     money.Nanos(oracleNanos(t, entry, c.want.output...)),
				CacheRead:  money.Nanos(oracleNanos(t, entry, c.want.cacheRead...)),
				CacheWrite: money.Nanos(oracleNanos(t, entry, c.want.cacheWrite...)),
				Total:      money.Nanos(oracleNanos(t, entry, all...)),
			}
			if got != want {
				t.Errorf("Cost(%+v)\n got %+v\nwant %+v", c.usage, got, want)
			}
		})
	}
}

// TestCostRoundsTotalOnce shows the total is the exact sum rounded once, not the sum of rounded
// parts: two parts of 0.3 nano-dollars each round to 0 but total 0.6, which rounds to 1.
func TestCostRoundsTotalOnce(t *testing.T) {
	e := &Entry{Model: "m", Standard: Rates{Input: 300_000, Output: 300_000, Set: HasInput | HasOutput}}
	got, err := e.Cost(Usage{InputTokens: 1, OutputTokens: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got != (Cost{Input: 0, Output: 0, Total: 1}) {
		t.Fatalf("got %+v", got)
	}
	// 0.5 nano-dollars rounds to even (0); 1.5 rounds to 2.
	e.Standard.Output = 500_000
	if got, _ := e.Cost(Usage{OutputTokens: 1}); got.Total != 0 {
		t.Errorf("0.5 nano rounded to %d", got.Total)
	}
	if got, _ := e.Cost(Usage{OutputTokens: 3}); got.Total != 2 {
		t.Errorf("1.5 nano rounded to %d", got.Total)
	}
}

func TestCostFallbacksAndTiers(t *testing.T) {
	const in, out, cr, up money.Rate = 1_000_000, 4_000_000, 100_000, 2_000_000
	e := &Entry{
		Model:    "m",
		Standard: Rates{Input: in, Output: out, Set: HasInput | HasOutput},
		Tiers: []Tier{
			{AboveTokens: 1_000, Rates: Rates{Input: up, CacheRead: cr, Set: HasInput | HasCacheRead}},
			{AboveTokens: 10_000, Rates: Rates{Input: 3 * up, Set: HasInput}},
		},
	}
	cases := []struct {
		name string
		u    Usage
		want Rates
	}{
		{"standard, cache rates fall back to input", Usage{InputTokens: 1_000},
			Rates{Input: in, Output: out, CacheRead: in, CacheWrite: in, Reasoning: out}},
		{"first tier", Usage{InputTokens: 1_001},
			Rates{Input: up, Output: out, CacheRead: cr, CacheWrite: up, Reasoning: out}},
		{"highest tier exceeded wins, lower tier's columns do not leak", Usage{InputTokens: 10_001},
			Rates{Input: 3 * up, Output: out, CacheRead: 3 * up, CacheWrite: 3 * up, Reasoning: out}},
		{"excluded cache counts toward the prompt size", Usage{InputTokens: 10, CacheReadTokens: 991, InputExcludesCache: true},
			Rates{Input: up, Output: out, CacheRead: cr, CacheWrite: up, Reasoning: out}},
		{"service tier the entry lacks is standard", Usage{InputTokens: 5, Tier: TierPriority},
			Rates{Input: in, Output: out, CacheRead: in, CacheWrite: in, Reasoning: out}},
		{"out-of-range tier value is standard", Usage{InputTokens: 5, Tier: ServiceTier(200)},
			Rates{Input: in, Output: out, CacheRead: in, CacheWrite: in, Reasoning: out}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prompt := c.u.InputTokens
			if c.u.InputExcludesCache {
				prompt += c.u.CacheReadTokens + c.u.CacheWriteTokens
			}
			got := e.Effective(prompt, c.u.Tier)
			// Without their own rates, 1-hour cache writes are cache writes and audio and image
			// tokens are input and output tokens.
			c.want.CacheWrite1h, c.want.AudioInput, c.want.AudioOutput, c.want.ImageInput =
				c.want.CacheWrite, c.want.Input, c.want.Output, c.want.Input
			c.want.Set = HasInput | HasOutput | HasCacheRead | HasCacheWrite | HasReasoning | HasCacheWrite1h |
				HasAudioInput | HasAudioOutput | HasImageInput
			if got != c.want {
				t.Errorf("Effective = %+v, want %+v", got, c.want)
			}
			cost, err := e.Cost(c.u)
			if err != nil {
				t.Fatal(err)
			}
			var acc money.Acc
			uncached := c.u.InputTokens
			if !c.u.InputExcludesCache {
				uncached -= c.u.CacheReadTokens + c.u.CacheWriteTokens
			}
			acc.Add(uncached, c.want.Input)
			acc.Add(c.u.CacheReadTokens, c.want.CacheRead)
			if n, _ := acc.Nanos(); cost.Total != n {
				t.Errorf("Total = %d, want %d", cost.Total, n)
			}
		})
	}
}

func TestCostRejectsMalformedUsage(t *testing.T) {
	e := &Entry{Model: "m", Standard: Rates{Input: 1, Output: 1, Set: HasInput | HasOutput}}
	cases := []struct {
		name string
		u    Usage
		want error
	}{
		{"negative input", Usage{InputTokens: -1}, ErrMalformedUsage},
		{"negative output", Usage{OutputTokens: -5}, ErrMalformedUsage},
		{"negative cache read", Usage{InputTokens: 10, CacheReadTokens: -1}, ErrMalformedUsage},
		{"negative reasoning", Usage{OutputTokens: 10, ReasoningTokens: -1}, ErrMalformedUsage},
		{"absurd input", Usage{InputTokens: MaxTokensPerPart + 1}, ErrMalformedUsage},
		{"absurd cache write", Usage{InputTokens: 1, CacheWriteTokens: MaxTokensPerPart + 1, InputExcludesCache: true}, ErrMalformedUsage},
		{"cache read above input", Usage{InputTokens: 100, CacheReadTokens: 101}, ErrInconsistentUsage},
		{"cache read + write above input", Usage{InputTokens: 100, CacheReadTokens: 60, CacheWriteTokens: 41}, ErrInconsistentUsage},
		{"reasoning above output", Usage{OutputTokens: 10, ReasoningTokens: 11}, ErrInconsistentUsage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := e.Cost(c.u)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if !errors.Is(err, ErrMalformedUsage) {
				t.Errorf("%v is not ErrMalformedUsage", err)
			}
			if got != (Cost{}) {
				t.Errorf("cost %+v returned with an error", got)
			}
		})
	}
	// The same counts are fine when input excludes the cache, and at the limit.
	for _, u := range []Usage{
		{InputTokens: 100, CacheReadTokens: 101, InputExcludesCache: true},
		{InputTokens: MaxTokensPerPart, OutputTokens: MaxTokensPerPart, ReasoningTokens: MaxTokensPerPart},
	} {
		if _, err := e.Cost(u); err != nil {
			t.Errorf("Cost(%+v): %v", u, err)
		}
	}
	huge := &Entry{Model: "h", Standard: Rates{Input: 1 << 62, Output: 1, Set: HasInput | HasOutput}}
	if _, err := huge.Cost(Usage{InputTokens: MaxTokensPerPart}); !errors.Is(err, ErrCostOverflow) {
		t.Errorf("overflow: err = %v", err)
	}
}

func TestCostDoesNotAllocate(t *testing.T) {
	e, ok := mustBuild(t, embeddedLayer(t)).Lookup("claude-sonnet-4-5", "anthropic")
	if !ok {
		t.Fatal("claude-sonnet-4-5 not found")
	}
	u := Usage{InputTokens: 150_000, CacheReadTokens: 60_000, CacheWriteTokens: 2_000, OutputTokens: 900, ReasoningTokens: 100, InputExcludesCache: true}
	if n := testing.AllocsPerRun(100, func() { _, _ = e.Cost(u) }); n != 0 {
		t.Errorf("Cost allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = e.Cost(Usage{InputTokens: -1}) }); n != 0 {
		t.Errorf("Cost allocates %v times on malformed usage", n)
	}
}

// TestCostGoldenEveryUpstreamEntry prices one call with cached and written tokens at every priced
// entry of the embedded upstream map, against an oracle computed with exact rationals from the
// file's decimal text (cache rates fall back to the input rate when the entry has none; DeepSeek's
// input_cost_per_token_cache_hit stands for the cache-read rate).
func TestCostGoldenEveryUpstreamEntry(t *testing.T) {
	table := mustBuild(t, embeddedLayer(t))
	raw := rawPrices(t, defaultJSON)
	// Below the smallest prompt-size threshold (128k), so the standard columns apply.
	u := Usage{InputTokens: 123_457, CacheReadTokens: 10_001, CacheWriteTokens: 2_003, OutputTokens: 45_679}
	n, subFemto, tiered := 0, 0, 0
	media, mediaSubFemto := 0, 0
	for _, e := range table.Entries() {
		entry := raw[e.Model]
		if !e.HasTokenPrices() {
			// Priced per second, pixel or character only: one call of each unit the entry prices.
			mu := Usage{InputMillis: 61_000, OutputMillis: 7_000, InputPixels: 1_572_864, OutputPixels: 1_048_576,
				InputCharacters: 12_345, OutputCharacters: 678}
			var parts []part
			for _, p := range []part{{61, "input_cost_per_second"}, {7, "output_cost_per_second"},
				{1_572_864, "input_cost_per_pixel"}, {1_048_576, "output_cost_per_pixel"},
				{12_345, "input_cost_per_character"}, {678, "output_cost_per_character"}} {
				if _, ok := entry[p.field].(json.Number); ok {
					parts = append(parts, p)
				}
			}
			got, err := e.Cost(mu)
			if err != nil || len(parts) == 0 {
				t.Fatalf("%s: %v, %d parts", e.Model, err, len(parts))
			}
			want := money.Nanos(oracleNanos(t, entry, parts...))
			if got.Total != want {
				// A rate finer than a femto-dollar per unit (2.0345052083e-09 per pixel) is rounded.
				femto := map[string]any{}
				for _, p := range parts {
					r, _ := new(big.Rat).SetString(string(entry[p.field].(json.Number)))
					femto[p.field] = json.Number(new(big.Rat).SetInt64(roundHalfEven(r.Mul(r, big.NewRat(1e15, 1)))).FloatString(0) + "e-15")
				}
				if want = money.Nanos(oracleNanos(t, femto, parts...)); got.Total != want {
					t.Errorf("%s: cost %s, want %s from the file's decimals", e.Model, got.Total, want)
				}
				mediaSubFemto++
			}
			media++
			continue
		}
		if tiers, ok := entry["tiered_pricing"].([]any); ok {
			// The tier whose range holds the prompt (start < prompt <= end), else the last one
			// (LiteLLM's select_tier_for_input); every token of the call is priced there.
			entry = tiers[len(tiers)-1].(map[string]any)
			for _, tier := range tiers {
				rng := tier.(map[string]any)["range"].([]any)
				lo, _ := strconv.ParseFloat(string(rng[0].(json.Number)), 64)
				hi, _ := strconv.ParseFloat(string(rng[1].(json.Number)), 64)
				if lo < float64(u.InputTokens) && float64(u.InputTokens) <= hi {
					entry = tier.(map[string]any)
					break
				}
			}
			tiered++
		}
		field := func(names ...string) string {
			for _, f := range names {
				if _, ok := entry[f].(json.Number); ok {
					return f
				}
			}
			return ""
		}
		in := field("input_cost_per_token")
		out := field("output_cost_per_token")
		if out == "" { // an embedding priced by its input alone
			entry["output_cost_per_token"] = json.Number("0")
			out = "output_cost_per_token"
		}
		read := field("cache_read_input_token_cost", cacheHitField, in)
		write := field("cache_creation_input_token_cost", in)
		parts := []part{{u.InputTokens - u.CacheReadTokens - u.CacheWriteTokens, in}, {u.OutputTokens, out},
			{u.CacheReadTokens, read}, {u.CacheWriteTokens, write}}
		got, err := e.Cost(u)
		if err != nil {
			t.Fatalf("%s: %v", e.Model, err)
		}
		// Rates are held to the femto-dollar per token, rounded half-even from the text. 23
		// Databricks entries carry float artefacts below that (2.5000010000000002e-05); for them
		// the oracle rounds the rates first, and the difference is counted, never hidden.
		want := money.Nanos(oracleNanos(t, entry, parts...))
		if got.Total != want {
			femto := map[string]any{}
			for _, p := range parts {
				r, _ := new(big.Rat).SetString(string(entry[p.field].(json.Number)))
				femto[p.field] = json.Number(new(big.Rat).SetInt64(roundHalfEven(r.Mul(r, big.NewRat(1e15, 1)))).FloatString(0) + "e-15")
			}
			if want = money.Nanos(oracleNanos(t, femto, parts...)); got.Total != want {
				t.Errorf("%s: cost %s, want %s from the file's decimals", e.Model, got.Total, want)
			}
			subFemto++
		}
		n++
	}
	if tiered != 18 {
		t.Errorf("checked %d entries priced by tiered_pricing, want the 18 dashscope and volcengine ones", tiered)
	}
	if media != 153 || mediaSubFemto > 5 { // 5 entries have a rate finer than a femto-dollar per unit
		t.Errorf("checked %d entries priced per second, pixel or character (want 153); %d differ from the unrounded decimals", media, mediaSubFemto)
	}
	if n < 2480 || subFemto > 23 {
		t.Fatalf("checked %d entries; %d differ from the unrounded decimals (want at most the 23 Databricks entries)", n, subFemto)
	}
}

package pricing

import (
	"encoding/json"
	"errors"
	"math/big"
	"testing"

	"github.com/agentcost/agentcost/internal/money"
)

// flatPrices returns a raw upstream entry with its nested price objects flattened
// ("search_context_cost_per_query.search_context_size_high") and, for an entry priced through
// tiered_pricing, tier i's fields as "tier<i>.<field>", for the oracle.
func flatPrices(entry map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range entry {
		switch v := v.(type) {
		case map[string]any:
			for kk, vv := range v {
				out[k+"."+kk] = vv
			}
		case []any:
			for i, t := range v {
				if m, ok := t.(map[string]any); ok {
					for kk, vv := range m {
						out["tier"+string(rune('0'+i))+"."+kk] = vv
					}
				}
			}
		default:
			out[k] = v
		}
	}
	return out
}

// TestCostGoldenModes prices every mode a real agent bill has — embeddings, tiered_pricing lists,
// audio and image tokens, web-search queries, images, 1-hour cache writes, reasoning — at real
// entries of the embedded upstream map, against the exact rational sum of the file's decimals.
func TestCostGoldenModes(t *testing.T) {
	table := mustBuild(t, embeddedLayer(t))
	raw := rawPrices(t, defaultJSON)
	cases := []struct {
		name  string
		model string
		usage Usage
		parts []part
		// unpriced are the units the entry has no price for.
		unpriced UnitSet
	}{
		{
			name: "embedding with an input price only", model: "mistral/mistral-embed",
			usage: Usage{InputTokens: 12_345},
			parts: []part{{12_345, "input_cost_per_token"}},
		},
		{
			name: "embedding with a zero output price", model: "text-embedding-3-small",
			usage: Usage{InputTokens: 100_001},
			parts: []part{{100_001, "input_cost_per_token"}},
		},
		{
			name: "tiered_pricing: 300k prompt is the second range, every token at its rates", model: "dashscope/qwen-plus-2025-07-28",
			usage: Usage{InputTokens: 300_000, OutputTokens: 300},
			parts: []part{{300_000, "tier1.input_cost_per_token"}, {300, "tier1.output_cost_per_token"}},
		},
		{
			name: "tiered_pricing: a prompt at the range end stays in the lower tier", model: "dashscope/qwen-plus-2025-07-28",
			usage: Usage{InputTokens: 256_000, OutputTokens: 1_000, ReasoningTokens: 400},
			parts: []part{{256_000, "tier0.input_cost_per_token"}, {600, "tier0.output_cost_per_token"},
				{400, "tier0.output_cost_per_reasoning_token"}},
		},
		{
			name: "tiered_pricing: cache read at the tier's own price", model: "dashscope/qwen3-coder-flash",
			usage: Usage{InputTokens: 100_000, CacheReadTokens: 40_000, OutputTokens: 2_000},
			parts: []part{{60_000, "tier1.input_cost_per_token"}, {40_000, "tier1.cache_read_input_token_cost"},
				{2_000, "tier1.output_cost_per_token"}},
		},
		{
			name: "tiered_pricing: a tier without a cache price caches at its own input price", model: "dashscope/qwen3-coder-flash-2025-07-28",
			usage: Usage{InputTokens: 300_000, CacheReadTokens: 100_000, OutputTokens: 10},
			parts: []part{{300_000, "tier3.input_cost_per_token"}, {10, "tier3.output_cost_per_token"}},
		},
		{
			name: "tiered_pricing: above the last range is the last tier", model: "dashscope/qwen3-max",
			usage: Usage{InputTokens: 255_000, OutputTokens: 10},
			parts: []part{{255_000, "tier2.input_cost_per_token"}, {10, "tier2.output_cost_per_token"}},
		},
		{
			name: "audio input and output tokens", model: "gpt-4o-audio-preview",
			usage: Usage{InputTokens: 5_000, AudioInputTokens: 3_000, OutputTokens: 900, AudioOutputTokens: 700},
			parts: []part{{2_000, "input_cost_per_token"}, {3_000, "input_cost_per_audio_token"},
				{200, "output_cost_per_token"}, {700, "output_cost_per_audio_token"}},
		},
		{
			name: "image input tokens", model: "us.amazon.nova-2-pro-preview-20251202-v1:0",
			usage: Usage{InputTokens: 4_000, ImageInputTokens: 1_500, OutputTokens: 50},
			parts: []part{{2_500, "input_cost_per_token"}, {1_500, "input_cost_per_image_token"}, {50, "output_cost_per_token"}},
		},
		{
			name: "web search, high context", model: "gpt-4o-search-preview",
			usage: Usage{InputTokens: 1_000, OutputTokens: 400, WebSearchQueries: 3, SearchContext: SearchContextHigh},
			parts: []part{{1_000, "input_cost_per_token"}, {400, "output_cost_per_token"},
				{3, "search_context_cost_per_query.search_context_size_high"}},
		},
		{
			name: "web search, default (medium) context", model: "perplexity/sonar",
			usage: Usage{InputTokens: 1_000, OutputTokens: 400, WebSearchQueries: 1},
			parts: []part{{1_000, "input_cost_per_token"}, {400, "output_cost_per_token"},
				{1, "search_context_cost_per_query.search_context_size_medium"}},
		},
		{
			name: "generated images and image reasoning", model: "gemini-2.5-flash-image",
			usage: Usage{InputTokens: 300, OutputTokens: 1_400, ReasoningTokens: 100, OutputImages: 2},
			parts: []part{{300, "input_cost_per_token"}, {1_300, "output_cost_per_token"},
				{100, "output_cost_per_reasoning_token"}, {2, "output_cost_per_image"}},
		},
		{
			name: "input images", model: "amazon.titan-embed-image-v1",
			usage: Usage{InputTokens: 20, InputImages: 3},
			parts: []part{{20, "input_cost_per_token"}, {3, "input_cost_per_image"}},
		},
		{
			name: "1-hour cache write inside the cache writes", model: "claude-sonnet-4-5",
			usage: Usage{InputTokens: 10_000, CacheWriteTokens: 3_000, CacheWrite1hTokens: 1_000, OutputTokens: 100},
			parts: []part{{7_000, "input_cost_per_token"}, {2_000, "cache_creation_input_token_cost"},
				{1_000, "cache_creation_input_token_cost_above_1hr"}, {100, "output_cost_per_token"}},
		},
		{
			name: "1-hour cache write above 200k", model: "claude-sonnet-4-5",
			usage: Usage{InputTokens: 250_000, CacheWriteTokens: 3_000, CacheWrite1hTokens: 3_000, OutputTokens: 100},
			parts: []part{{247_000, "input_cost_per_token_above_200k_tokens"},
				{3_000, "cache_creation_input_token_cost_above_1hr_above_200k_tokens"},
				{100, "output_cost_per_token_above_200k_tokens"}},
		},
		{
			name: "reasoning at its own price", model: "dashscope/qwen-plus-2025-04-28",
			usage: Usage{InputTokens: 1_000, OutputTokens: 5_000, ReasoningTokens: 4_000},
			parts: []part{{1_000, "input_cost_per_token"}, {1_000, "output_cost_per_token"},
				{4_000, "output_cost_per_reasoning_token"}},
		},
		{
			name: "web search on a model without a search price: tokens priced, the gap reported", model: "gpt-4o-mini",
			usage:    Usage{InputTokens: 1_000, OutputTokens: 10, WebSearchQueries: 2},
			parts:    []part{{1_000, "input_cost_per_token"}, {10, "output_cost_per_token"}},
			unpriced: HasSearchQuery,
		},
		{
			name: "transcription per second (whisper-1, no token prices)", model: "whisper-1",
			usage: Usage{InputMillis: 754_000},
			parts: []part{{754, "input_cost_per_second"}},
		},
		{
			name: "speech per character (tts-1-hd)", model: "tts-1-hd",
			usage: Usage{InputCharacters: 4_096},
			parts: []part{{4_096, "input_cost_per_character"}},
		},
		{
			name: "image generation per pixel (dall-e-3 hd 1024x1024, two images)", model: "hd/1024-x-1024/dall-e-3",
			usage: Usage{InputPixels: 2 * 1024 * 1024, OutputPixels: 2 * 1024 * 1024},
			parts: []part{{2 * 1024 * 1024, "input_cost_per_pixel"}, {2 * 1024 * 1024, "output_cost_per_pixel"}},
		},
		{
			name: "tokens against a per-second entry: the seconds priced, the tokens reported", model: "whisper-1",
			usage:    Usage{InputMillis: 60_000, InputTokens: 500, OutputTokens: 80},
			parts:    []part{{60, "input_cost_per_second"}},
			unpriced: UnitTokens,
		},
		{
			name: "characters and seconds on a token model: tokens priced, the gap reported", model: "gpt-4o-mini",
			usage:    Usage{InputTokens: 1_000, OutputTokens: 10, InputCharacters: 300, OutputMillis: 2_500},
			parts:    []part{{1_000, "input_cost_per_token"}, {10, "output_cost_per_token"}},
			unpriced: HasInputCharacters | HasOutputSeconds,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := table.LookupHit(c.model, "")
			if h.Entry == nil || h.Entry.Model != c.model || h.Kind != 0 {
				t.Fatalf("LookupHit(%q) = %+v, want the exact key", c.model, h)
			}
			got, err := h.Entry.Cost(c.usage)
			if err != nil {
				t.Fatal(err)
			}
			want := money.Nanos(oracleNanos(t, flatPrices(raw[c.model]), c.parts...))
			if got.Total != want || got.Unpriced != c.unpriced {
				t.Errorf("Cost(%+v) = %s (unpriced %q), want %s (unpriced %q)", c.usage, got.Total, got.Unpriced, want, c.unpriced)
			}
			if sum := got.Input + got.Output + got.CacheRead + got.CacheWrite + got.Units; sum-got.Total > 5 || got.Total-sum > 5 {
				t.Errorf("parts %+v do not add up to the total", got)
			}
		})
	}
	// The number: $0.36108, not the undated neighbour's $0.12036.
	e, _ := table.Lookup("dashscope/qwen-plus-2025-07-28", "dashscope")
	if c, _ := e.Cost(Usage{InputTokens: 300_000, OutputTokens: 300}); c.Total.String() != "0.36108" {
		t.Errorf("qwen-plus-2025-07-28 at 300k = $%s, want $0.36108", c.Total)
	}
}

// TestCostModesInconsistent: a modality count above the count that includes it is malformed,
// never a negative part.
func TestCostModesInconsistent(t *testing.T) {
	e := &Entry{Model: "m", Standard: Rates{Input: 1, Output: 1, Set: HasInput | HasOutput}}
	for _, u := range []Usage{
		{InputTokens: 10, AudioInputTokens: 11},
		{InputTokens: 10, AudioInputTokens: 6, ImageInputTokens: 5},
		{OutputTokens: 10, AudioOutputTokens: 11},
		{InputTokens: 10, CacheWriteTokens: 2, CacheWrite1hTokens: 3},
		{WebSearchQueries: -1},
		{OutputImages: MaxTokensPerPart + 1},
	} {
		if _, err := e.Cost(u); !errors.Is(err, ErrMalformedUsage) {
			t.Errorf("Cost(%+v) = %v, want malformed usage", u, err)
		}
	}
	// Audio tokens beyond the uncached input were served from the cache: priced there, once.
	e.Standard = Rates{Input: 1_000_000, Output: 1, CacheRead: 100_000, AudioInput: 10_000_000,
		Set: HasInput | HasOutput | HasCacheRead | HasAudioInput}
	c, err := e.Cost(Usage{InputTokens: 100, CacheReadTokens: 80, AudioInputTokens: 50})
	if err != nil {
		t.Fatal(err)
	}
	// 20 uncached tokens, all audio (20 × 10 nano), 80 cached (80 × 0.1 nano) = 208 nano.
	if c.Total != 208 {
		t.Errorf("total %d, want 208", c.Total)
	}
}

// TestTieredPricingRejects: a malformed tiered_pricing list rejects the file, naming the field.
func TestTieredPricingRejects(t *testing.T) {
	checkBadFiles(t, "t.json", func(b []byte) (*Layer, error) { return ParseLiteLLM(b, "t.json", "t") }, []badFile{
		{"range not a pair", `{"m": {"tiered_pricing": [{"input_cost_per_token": 1e-7, "output_cost_per_token": 1e-7, "range": [0]}]}}`, 1, "m", "tiered_pricing.range"},
		{"fractional range", `{"m": {"tiered_pricing": [{"input_cost_per_token": 1e-7, "output_cost_per_token": 1e-7, "range": [0.5, 10]}]}}`, 1, "m", "tiered_pricing.range"},
		{"negative tier price", `{"m": {"tiered_pricing": [{"input_cost_per_token": -1e-7, "output_cost_per_token": 1e-7, "range": [0, 10]}]}}`, 1, "m", "tiered_pricing.input_cost_per_token"},
		{"two tiers from the same start", `{"m": {"tiered_pricing": [{"input_cost_per_token": 1e-7, "output_cost_per_token": 1e-7, "range": [0, 10]}, {"input_cost_per_token": 1e-7, "output_cost_per_token": 1e-7, "range": [0, 20]}]}}`, 1, "m", "tiered_pricing"},
		{"high tier price", `{"m": {"tiered_pricing": [{"input_cost_per_token": 2, "output_cost_per_token": 1e-7, "range": [0, 10]}]}}`, 1, "m", "tiered_pricing.input_cost_per_token"},
		{"search price not a number", `{"m": {"input_cost_per_token": 1e-7, "output_cost_per_token": 1e-7, "search_context_cost_per_query": {"search_context_size_medium": "x"}}}`, 1, "m", "search_context_cost_per_query.search_context_size_medium"},
	})
}

// TestYAMLToolsAndModes: the YAML format prices tool calls and the per-unit and modality parts.
func TestYAMLToolsAndModes(t *testing.T) {
	l, err := ParseYAML([]byte(`
source: ours
tools:
  web_search: {per_call_usd: 0.01}
  maps: {per_unit_usd: 0.002, unit_attribute: maps.requests}
  mcp_db: {per_call_usd: 0.0005, per_unit_usd: 0.000001, unit_attribute: db.rows}
models:
  voice-1:
    input_per_million: 2.5
    output_per_million: 10
    audio_input_per_million: 40
    audio_output_per_million: 80
    cache_write_1h_per_million: 6
    web_search_per_query_usd: 0.035
    output_image_usd: 0.04
`), "ours.yaml")
	if err != nil {
		t.Fatal(err)
	}
	table := mustBuild(t, l)
	for _, c := range []struct {
		tool  string
		units int64
		want  string
	}{{"web_search", 7, "0.01"}, {"maps", 3, "0.006"}, {"mcp_db", 1_500, "0.002"}} {
		tp, ok := table.Tool(c.tool)
		if !ok || tp.Source != "ours" {
			t.Fatalf("Tool(%q) = %+v, %v", c.tool, tp, ok)
		}
		got, err := tp.Cost(c.units)
		if err != nil || got.String() != c.want {
			t.Errorf("%s × %d = %s, %v; want $%s", c.tool, c.units, got, err, c.want)
		}
	}
	if _, ok := table.Tool("Web_Search"); ok {
		t.Error("tool names match exactly")
	}
	if tp, _ := table.Tool("maps"); func() bool { _, err := tp.Cost(-1); return !errors.Is(err, ErrMalformedUsage) }() {
		t.Error("a negative unit count is malformed")
	}
	e, _ := table.Lookup("voice-1", "")
	c, err := e.Cost(Usage{InputTokens: 1_000_000, AudioInputTokens: 500_000, CacheWriteTokens: 100_000, CacheWrite1hTokens: 100_000,
		OutputTokens: 1_000_000, AudioOutputTokens: 250_000, WebSearchQueries: 2, OutputImages: 1})
	if err != nil {
		t.Fatal(err)
	}
	// 400k text × 2.5 + 500k audio × 40 + 100k 1h × 6 + 750k × 10 + 250k audio × 80 per million,
	// + 2 × 0.035 + 0.04 = 1 + 20 + 0.6 + 7.5 + 20 + 0.11 = 49.21.
	if c.Total.String() != "49.21" || c.Units.String() != "0.11" {
		t.Errorf("cost %+v, want total $49.21, units $0.11", c)
	}
	checkBadFiles(t, "t.yaml", func(b []byte) (*Layer, error) { return ParseYAML(b, "t.yaml") }, []badFile{
		{"tool without price", "tools:\n  x: {unit_attribute: a}\n", 2, "", "tools.x"},
		{"per-unit tool without attribute", "tools:\n  x: {per_unit_usd: 1}\n", 2, "", "tools.x.unit_attribute"},
		{"empty tool", "tools:\n  x: {}\n", 2, "", "tools.x"},
		{"unknown tool key", "tools:\n  x:\n    per_call: 1\n", 3, "", "tools.x.per_call"},
		{"negative tool price", "tools:\n  x: {per_call_usd: -1}\n", 2, "", "tools.x.per_call_usd"},
		{"absurd tool price", "tools:\n  x: {per_call_usd: 5000}\n", 2, "", "tools.x.per_call_usd"},
		{"negative image price", "models:\n  m: {input_per_million: 1, output_per_million: 1,\n    output_image_usd: -0.1}\n", 3, "m", "output_image_usd"},
	})
}

// TestCostModesDoNotAllocate: pricing every part and unit allocates nothing.
func TestCostModesDoNotAllocate(t *testing.T) {
	e, ok := mustBuild(t, embeddedLayer(t)).Lookup("gemini-2.5-flash-image", "")
	if !ok {
		t.Fatal("gemini-2.5-flash-image not found")
	}
	u := Usage{InputTokens: 5_000, AudioInputTokens: 1_000, ImageInputTokens: 500, CacheReadTokens: 1_000, OutputTokens: 2_000,
		ReasoningTokens: 200, AudioOutputTokens: 100, WebSearchQueries: 2, OutputImages: 1, InputImages: 1}
	if n := testing.AllocsPerRun(100, func() { _, _ = e.Cost(u) }); n != 0 {
		t.Errorf("Cost allocates %v times", n)
	}
}

// TestCostMediaUnits: per-second, per-pixel and per-character prices — fractional seconds priced to
// the millisecond, rates finer than a femto-dollar rounded half-even like token rates, the hard
// caps, and entries priced only by these units loaded rather than skipped.
func TestCostMediaUnits(t *testing.T) {
	table := mustBuild(t, embeddedLayer(t))
	raw := rawPrices(t, defaultJSON)
	// exact is ms milliseconds at the file's decimal per-second price, in nano-dollars, half-even.
	exact := func(model, field string, ms int64) money.Nanos {
		v, ok := raw[model][field].(json.Number)
		if !ok {
			t.Fatalf("%s has no %s", model, field)
		}
		r, _ := new(big.Rat).SetString(string(v))
		r.Mul(r, big.NewRat(ms*1_000_000_000, 1000))
		return money.Nanos(roundHalfEven(r))
	}
	for _, c := range []struct {
		model string
		ms    int64
	}{
		{"whisper-1", 12_345}, {"whisper-1", 1}, {"whisper-1", 999}, {"whisper-1", 3_600_500},
		// 0.0002833333333333333 $/s is 283,333,333,333.33 femto-dollars: held as 283,333,333,333.
		{"gpt-realtime-whisper", 3_600_000}, {"gpt-realtime-whisper", 61_500}, {"gpt-realtime-whisper", 7},
	} {
		e, ok := table.Lookup(c.model, "")
		if !ok || e.Model != c.model || e.HasTokenPrices() {
			t.Fatalf("Lookup(%q) = %+v, want the per-second entry without token prices", c.model, e)
		}
		got, err := e.Cost(Usage{InputMillis: c.ms})
		if err != nil {
			t.Fatal(err)
		}
		if want := exact(c.model, "input_cost_per_second", c.ms); got.Total != want || got.Units != want || got.Unpriced != 0 {
			t.Errorf("%s for %d ms = %s (units %s, unpriced %q), want %s", c.model, c.ms, got.Total, got.Units, got.Unpriced, want)
		}
	}

	// A rate finer than a femto-dollar per unit is rounded half-even when loaded, like a token rate.
	img, _ := table.Lookup("azure/low/1536-x-1024/gpt-image-1-mini", "")
	if img == nil || img.Units.InputPixel != 2_034_505 || !img.Units.Has(HasInputPixels|HasOutputPixels) || img.Units.OutputPixel != 0 {
		t.Fatalf("gpt-image-1-mini units %+v, want input_cost_per_pixel 2.0345052083e-09 as 2,034,505 femto-dollars", img)
	}
	// One 1536x1024 image: the rounding is 0.33 nano-dollars below the exact price, under the rounding.
	if c, _ := img.Cost(Usage{InputPixels: 1536 * 1024}); c.Total != 3_200_000 {
		t.Errorf("one 1536x1024 image = %d nano-dollars, want 3,200,000", c.Total)
	}

	// The hard caps: a count above them is malformed, not spend.
	e, _ := table.Lookup("whisper-1", "")
	for _, u := range []Usage{{InputMillis: MaxMillisPerPart + 1}, {OutputMillis: -1}, {InputPixels: MaxTokensPerPart + 1},
		{OutputCharacters: -5}, {InputCharacters: MaxTokensPerPart + 1}, {OutputPixels: -1}} {
		if _, err := e.Cost(u); !errors.Is(err, ErrMalformedUsage) {
			t.Errorf("Cost(%+v) error %v, want ErrMalformedUsage", u, err)
		}
	}
	if c, err := e.Cost(Usage{InputMillis: MaxMillisPerPart, OutputMillis: MaxMillisPerPart}); err != nil || c.Total != 20_000_000_000_000 {
		t.Errorf("the cap itself = %v, %v; want $20,000", c.Total, err)
	}

	if s := (HasInputSeconds | HasOutputPixels | HasOutputCharacters | UnitTokens).String(); s != "input_seconds,output_pixels,output_characters,tokens" {
		t.Errorf("String() = %q", s)
	}
}

// TestParseMediaUnits: an entry priced only per second, pixel or character loads; one that also has
// a lone token price stays skipped as it was (its tokens would be half priced); a media price above
// the sanity bound is rejected like a token price.
func TestParseMediaUnits(t *testing.T) {
	data := `{
  "stt": {"input_cost_per_second": "0.0001", "output_cost_per_second": 0, "mode": "audio_transcription"},
  "tts": {"input_cost_per_character": 1.5e-05, "output_cost_per_character": 1e-06},
  "img": {"input_cost_per_pixel": 3.81469e-08, "output_cost_per_pixel": 0.0, "input_cost_per_image": 0.04},
  "half": {"input_cost_per_token": 1e-6, "input_cost_per_second": 0.01},
  "null": {"input_cost_per_second": null}
}`
	l, err := ParseLiteLLM([]byte(data), "x.json", "x")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*Entry{}
	for _, e := range l.Entries {
		got[e.Model] = e
	}
	if len(l.Entries) != 3 || len(l.Skips) != 2 || l.Skips[0].Model != "half" || l.Skips[0].Reason != SkipInputOnly ||
		l.Skips[1].Reason != SkipPerSecond {
		t.Fatalf("entries %d, skips %+v", len(l.Entries), l.Skips)
	}
	if u := got["stt"].Units; u.InputSecond != 100_000_000_000 || u.OutputSecond != 0 || u.Set != HasInputSeconds|HasOutputSeconds {
		t.Errorf("stt units %+v", u)
	}
	if u := got["tts"].Units; u.InputCharacter != 15_000_000_000 || u.OutputCharacter != 1_000_000_000 || u.Set != HasInputCharacters|HasOutputCharacters {
		t.Errorf("tts units %+v", u)
	}
	if u := got["img"].Units; u.InputPixel != 38_146_900 || u.InputImage != 40_000_000_000_000 || u.Set != HasInputPixels|HasOutputPixels|HasInputImage {
		t.Errorf("img units %+v", u)
	}

	_, err = ParseLiteLLM([]byte(`{"m": {"output_cost_per_second": 2}}`), "x.json", "x")
	var fe *FileError
	if !errors.As(err, &fe) || fe.Field != "output_cost_per_second" {
		t.Errorf("a $2/s price: %v, want a FileError on output_cost_per_second", err)
	}
	if _, err := ParseLiteLLM([]byte(`{"m": {"output_cost_per_second": 2, "`+AllowHighPriceField+`": true}}`), "x.json", "x"); err != nil {
		t.Errorf("allowed high price: %v", err)
	}
}

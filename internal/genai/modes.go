package genai

import (
	"math"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/agentcost/agentcost/internal/pricing"
)

// The GenAI modality keys (parts of gen_ai.usage.input_tokens and output_tokens), the agentcost
// keys of the per-unit counts the conventions do not name, and the proposed GenAI cost keys.
const (
	KeyAudioInputTokens  = "gen_ai.usage.audio.input_tokens"
	KeyImageInputTokens  = "gen_ai.usage.image.input_tokens"
	KeyAudioOutputTokens = "gen_ai.usage.audio.output_tokens"
	// KeyCacheWrite1hTokens is the part of the cache-write tokens written with a 1-hour lifetime
	// (Anthropic's usage.cache_creation.ephemeral_1h_input_tokens).
	KeyCacheWrite1hTokens = "agentcost.usage.cache_write_1h.input_tokens"
	// KeyWebSearchQueries is the number of web-search queries a call ran (OpenAI web_search_call
	// items, Anthropic usage.server_tool_use.web_search_requests, Perplexity requests).
	KeyWebSearchQueries = "agentcost.usage.web_search_queries"
	// KeySearchContextSize is the search context size of those queries: low, medium (default), high.
	KeySearchContextSize = "agentcost.usage.search_context_size"
	// KeyOutputImages and KeyInputImages count the images a call generated and was given.
	KeyOutputImages = "agentcost.usage.output_images"
	KeyInputImages  = "agentcost.usage.input_images"
	// KeyInputSeconds and KeyOutputSeconds are the duration of the input and output audio or video
	// in seconds, fractions allowed (OpenAI's transcription usage {"type": "duration", "seconds"}),
	// read to the millisecond. The GenAI conventions define no duration usage key.
	KeyInputSeconds  = "agentcost.usage.input_seconds"
	KeyOutputSeconds = "agentcost.usage.output_seconds"
	// KeyInputPixels and KeyOutputPixels count pixels (width × height, summed over the images).
	// LiteLLM prices image generation per pixel of the generated images as input_cost_per_pixel, so
	// a dall-e size-keyed entry prices agentcost.usage.input_pixels.
	KeyInputPixels  = "agentcost.usage.input_pixels"
	KeyOutputPixels = "agentcost.usage.output_pixels"
	// KeyInputCharacters and KeyOutputCharacters count characters (text-to-speech input).
	KeyInputCharacters  = "agentcost.usage.input_characters"
	KeyOutputCharacters = "agentcost.usage.output_characters"
	// KeyReportedCostAmount and KeyReportedCostCurrency are the proposed GenAI cost keys: the
	// charge the provider (or a gateway such as OpenRouter) reported, and its ISO 4217 currency.
	KeyReportedCostAmount   = "gen_ai.usage.cost.amount"
	KeyReportedCostCurrency = "gen_ai.usage.cost.currency"
)

// modeFields are the modality and per-unit count fields.
var modeFields = [...]field{fAudioIn, fImageIn, fAudioOut, fCacheWrite1h, fSearchQueries, fOutputImages, fInputImages,
	fInputSeconds, fOutputSeconds, fInputPixels, fOutputPixels, fInputChars, fOutputChars}

// setMode stores a modality or per-unit count in u (a switch, not function values, so that
// Extract stays allocation-free).
func setMode(u *pricing.Usage, f field, n int64) {
	switch f {
	case fAudioIn:
		u.AudioInputTokens = n
	case fImageIn:
		u.ImageInputTokens = n
	case fAudioOut:
		u.AudioOutputTokens = n
	case fCacheWrite1h:
		u.CacheWrite1hTokens = n
	case fSearchQueries:
		u.WebSearchQueries = n
	case fOutputImages:
		u.OutputImages = n
	case fInputImages:
		u.InputImages = n
	case fInputSeconds:
		u.InputMillis = n
	case fOutputSeconds:
		u.OutputMillis = n
	case fInputPixels:
		u.InputPixels = n
	case fOutputPixels:
		u.OutputPixels = n
	case fInputChars:
		u.InputCharacters = n
	case fOutputChars:
		u.OutputCharacters = n
	}
}

// readModes reads the modality and per-unit counts, the search context size and the reported
// cost's currency from the scan's slots. A count malformed in itself is read as 0 and flagged.
func (c *Call) readModes(slots *[numFields]pcommon.Value) {
	for _, f := range modeFields {
		if c.rank[f] == 0 {
			continue
		}
		var n int64
		var bad Malformed
		if f == fInputSeconds || f == fOutputSeconds {
			n, bad = millisValue(slots[f])
		} else {
			n, bad = tokenValue(slots[f])
		}
		c.unitBad |= bad
		// A per-unit count is usage in itself: a span with only web-search queries is priced.
		c.hasUnits = c.hasUnits || f >= fSearchQueries
		setMode(&c.Usage, f, n)
	}
	if c.rank[fSearchContext] != 0 {
		c.Usage.SearchContext = pricing.ParseSearchContextSize(slots[fSearchContext].Str())
	}
	if c.rank[fCostCurrency] != 0 {
		c.ReportedCostCurrency = slots[fCostCurrency].Str()
	}
}

// finishModes adds the modality and per-unit counts to HasUsage and Malformed: a modality count
// above the count that includes it is inconsistent, like cached tokens above the input.
func (c *Call) finishModes() {
	c.Malformed |= c.unitBad
	c.HasUsage = c.HasUsage || c.hasUnits
	u := &c.Usage
	prompt := u.InputTokens
	if u.InputExcludesCache {
		prompt += u.CacheReadTokens + u.CacheWriteTokens
	}
	if u.AudioInputTokens+u.ImageInputTokens > prompt || u.CacheWrite1hTokens > u.CacheWriteTokens {
		c.Malformed |= MalformedCacheExceedsInput
	}
	if u.AudioOutputTokens > u.OutputTokens {
		c.Malformed |= MalformedReasoningExceedsOutput
	}
}

// ReportedCostInUSD reports whether the reported cost is in dollars: no currency (OpenLIT's and
// OpenInference's costs are dollars) or "USD" in any case.
func (c *Call) ReportedCostInUSD() bool {
	cur := c.ReportedCostCurrency
	return cur == "" || (len(cur) == 3 && (cur[0]|0x20) == 'u' && (cur[1]|0x20) == 's' && (cur[2]|0x20) == 'd')
}

// The agentcost.* attributes of the modes (DESIGN.md "What the processor writes").
const (
	// KeyCostSource says where a span's agentcost.cost_usd came from when it is not the price
	// table: "reported" (the span's own reported cost, prices.reported_cost).
	KeyCostSource = "agentcost.cost.source"
	// KeyUnpricedUnits lists the units a priced span reports that have no price ("web_search",
	// "output_image", "input_image", "tool_units"): the tokens are booked, the units are not.
	KeyUnpricedUnits = "agentcost.price.unpriced_units"
	// KeyCostUnitsUSD is the per-request and per-unit part of the cost (detailed level).
	KeyCostUnitsUSD = "agentcost.cost.units_usd"
)

// millisValue reads a duration in seconds (an int, or a double with a fraction) as milliseconds,
// rounded half away from zero; 0 and the reason when it is malformed (not a number, negative, non
// finite, above MaxTokens seconds).
func millisValue(v pcommon.Value) (int64, Malformed) {
	if v.Type() != pcommon.ValueTypeDouble {
		n, bad := tokenValue(v)
		return n * 1000, bad
	}
	f := v.Double()
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return 0, MalformedNonFinite
	case f < 0:
		return 0, MalformedNegative
	case f > MaxTokens:
		return 0, MalformedHuge
	}
	return int64(math.Round(f * 1000)), 0
}

// TokenCount reads a count attribute (an int, or a whole double) as tokenValue does for token
// counts: 0 and the reason when it is malformed.
func TokenCount(v pcommon.Value) (int64, Malformed) { return tokenValue(v) }

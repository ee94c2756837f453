package pricing

import "strings"

// Usage is the token usage of one provider call in GenAI semantic-convention terms. It is what
// internal/genai reads from a span and what a price Entry prices.
type Usage struct {
	// InputTokens is every prompt token. By the convention it includes the cached tokens
	// (CacheReadTokens and CacheWriteTokens), unless InputExcludesCache is set.
	InputTokens int64
	// OutputTokens is every completion token, reasoning tokens included.
	OutputTokens int64
	// CacheReadTokens is the prompt tokens served from the provider's prompt cache.
	CacheReadTokens int64
	// CacheWriteTokens is the prompt tokens written to the provider's prompt cache.
	CacheWriteTokens int64
	// ReasoningTokens is the part of OutputTokens spent on reasoning; it is never priced on top of
	// OutputTokens (only the difference in rate applies when a table prices reasoning separately).
	ReasoningTokens int64
	// InputExcludesCache marks usage whose InputTokens does not include the cached parts
	// (Anthropic's raw API usage).
	InputExcludesCache bool
	// Tier is the service tier the provider ran the call on.
	Tier ServiceTier

	// AudioInputTokens and ImageInputTokens are the parts of InputTokens in audio and images
	// (gen_ai.usage.audio.input_tokens, gen_ai.usage.image.input_tokens), priced at the entry's
	// audio and image-token rates. They are taken out of the uncached input: a modality count above
	// it is cached tokens, priced at the cache rates.
	AudioInputTokens int64
	ImageInputTokens int64
	// AudioOutputTokens is the part of OutputTokens (outside the reasoning tokens) in audio
	// (gen_ai.usage.audio.output_tokens), priced at the entry's audio output rate.
	AudioOutputTokens int64
	// CacheWrite1hTokens is the part of CacheWriteTokens written with a 1-hour lifetime (Anthropic),
	// priced at the entry's 1-hour cache-write rate.
	CacheWrite1hTokens int64
	// WebSearchQueries is the number of web-search queries the call ran, priced per query at the
	// entry's price for SearchContext.
	WebSearchQueries int64
	// SearchContext is the search context size of the queries (default medium, as LiteLLM).
	SearchContext SearchContextSize
	// OutputImages and InputImages are images generated and images given, priced per image.
	OutputImages int64
	InputImages  int64
	// InputMillis and OutputMillis are the duration of the input and output audio or video in
	// milliseconds (a span reports seconds, fractions allowed), priced per second.
	InputMillis  int64
	OutputMillis int64
	// InputPixels and OutputPixels are pixel counts (width × height, summed over the images),
	// priced per pixel.
	InputPixels  int64
	OutputPixels int64
	// InputCharacters and OutputCharacters are character counts (text-to-speech input), priced per
	// character.
	InputCharacters  int64
	OutputCharacters int64
}

// Units returns the per-unit counts u reports (non-zero), as a UnitSet.
func (u Usage) Units() UnitSet {
	var s UnitSet
	for _, c := range [...]struct {
		n   int64
		bit UnitSet
	}{{u.WebSearchQueries, HasSearchQuery}, {u.OutputImages, HasOutputImage}, {u.InputImages, HasInputImage},
		{u.InputMillis, HasInputSeconds}, {u.OutputMillis, HasOutputSeconds}, {u.InputPixels, HasInputPixels},
		{u.OutputPixels, HasOutputPixels}, {u.InputCharacters, HasInputCharacters}, {u.OutputCharacters, HasOutputCharacters}} {
		if c.n != 0 {
			s |= c.bit
		}
	}
	return s
}

// SearchContextSize is the web-search context size a query's price depends on.
type SearchContextSize uint8

// The search context sizes of LiteLLM's search_context_cost_per_query.
const (
	SearchContextMedium SearchContextSize = iota
	SearchContextLow
	SearchContextHigh
	numSearchSizes
)

// ParseSearchContextSize maps "low", "medium" or "high" (also LiteLLM's
// "search_context_size_low" spelling) to a SearchContextSize; anything else is medium.
func ParseSearchContextSize(s string) SearchContextSize {
	switch strings.TrimPrefix(strings.ToLower(s), "search_context_size_") {
	case "low":
		return SearchContextLow
	case "high":
		return SearchContextHigh
	default:
		return SearchContextMedium
	}
}

// ServiceTier is a provider service tier with its own price column.
type ServiceTier uint8

// The service tiers the LiteLLM price map distinguishes.
const (
	TierStandard ServiceTier = iota
	TierBatch
	TierFlex
	TierPriority
)

// ParseServiceTier maps a span's service-tier value ("default", "auto", "flex", "priority",
// "batch", "scale") to a ServiceTier; unknown values are the standard tier.
func ParseServiceTier(s string) ServiceTier {
	switch s {
	case "batch", "batches":
		return TierBatch
	case "flex":
		return TierFlex
	case "priority":
		return TierPriority
	default:
		return TierStandard
	}
}

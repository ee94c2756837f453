package pricing

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

package genai

import "go.opentelemetry.io/collector/pdata/pcommon"

// Normalize writes onto attrs the GenAI convention keys whose value c read under another name
// (a dialect key or an OTTL override): gen_ai.request.model (gen_ai.response.model when the source
// named the responding model), gen_ai.provider.name, and the gen_ai.usage token counts. It never
// overwrites a key the span already has, writes nothing for a value that was Malformed in itself,
// and nothing at all for an Aggregate span (its usage is its children's; writing it would let
// a backend that sums gen_ai.usage count it twice). A span already in the convention gets no
// write and costs no allocation.
//
// When the input count excludes the cache (Options.InputExcludesCache), the written
// gen_ai.usage.input_tokens is the convention's value: input + cache read + cache write.
func Normalize(attrs pcommon.Map, c *Call) {
	if c.Aggregate {
		return
	}
	if r := c.rank[fModel]; r > canonicalRank(fModel) && c.Model != "" {
		key := KeyRequestModel
		if c.modelResponse {
			key = KeyResponseModel
		}
		if _, ok := attrs.Get(KeyRequestModel); !ok {
			if _, ok := attrs.Get(KeyResponseModel); !ok {
				attrs.PutStr(key, c.Model)
			}
		}
	}
	if r := c.rank[fProvider]; r > canonicalRank(fProvider) && c.Provider != "" {
		putStrIfAbsent(attrs, KeyProviderName, c.Provider)
	}
	for i, f := range usageFields {
		if r := c.rank[f]; r <= canonicalRank(f) || c.fieldBad[i] != 0 {
			continue
		}
		n := c.usage(f)
		if f == fInput && c.Usage.InputExcludesCache {
			n += c.Usage.CacheReadTokens + c.Usage.CacheWriteTokens
		}
		if _, ok := attrs.Get(canonicalKey[f]); !ok {
			attrs.PutInt(canonicalKey[f], n)
		}
	}
}

func putStrIfAbsent(attrs pcommon.Map, key, value string) {
	if _, ok := attrs.Get(key); !ok {
		attrs.PutStr(key, value)
	}
}

func (c *Call) usage(f field) int64 {
	switch f {
	case fInput:
		return c.Usage.InputTokens
	case fOutput:
		return c.Usage.OutputTokens
	case fCacheRead:
		return c.Usage.CacheReadTokens
	case fCacheWrite:
		return c.Usage.CacheWriteTokens
	case fReasoning:
		return c.Usage.ReasoningTokens
	}
	return 0
}

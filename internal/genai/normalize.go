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
// When the input count excludes the cache (Options.InputExcludesCache, a known instrumentation
// scope or a reported total; semantics.go), the written gen_ai.usage.input_tokens is the
// convention's value: input + cache read + cache write; an output that left the reasoning out is
// written with it. Such a count is rewritten even when the span wrote it under the convention's own
// key (OpenLLMetry's Anthropic instrumentation writes Anthropic's raw input_tokens as
// gen_ai.usage.input_tokens), so that downstream sums and the ledger's same-call rule read one
// meaning. That is the one case where a key the span has is overwritten.
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
		r := c.rank[f]
		if r == 0 || c.fieldBad[i] != 0 {
			continue
		}
		// A convention key that holds the provider's raw count (an input without the cache, an
		// output without the reasoning; see semantics.go) is rewritten in the convention's meaning.
		rewrite := r <= canonicalRank(f) && c.rawMeaning(f)
		if r <= canonicalRank(f) && !rewrite {
			continue
		}
		n := c.usage(f)
		if f == fInput && c.Usage.InputExcludesCache {
			n += c.Usage.CacheReadTokens + c.Usage.CacheWriteTokens
		}
		if _, ok := attrs.Get(canonicalKey[f]); !ok || rewrite {
			attrs.PutInt(canonicalKey[f], n)
		}
		if rewrite {
			attrs.PutBool(KeyUsageConvention, true)
		}
	}
}

// rawMeaning reports whether field f's count was read in another meaning than the convention's,
// as the instrumentation scope or a reported total said, and differs from it: an input that leaves
// out cached tokens, an output that leaves out reasoning. (A user's input_excludes_cache rule alone
// keeps today's contract: the span's own convention key is left as it is.)
func (c *Call) rawMeaning(f field) bool {
	switch f {
	case fInput:
		return c.inputRaw && c.Usage.CacheReadTokens+c.Usage.CacheWriteTokens > 0
	case fOutput:
		return c.outputAdded > 0
	}
	return false
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

package genai

import "go.opentelemetry.io/collector/pdata/pcommon"

// Token semantics: what an instrumentation's counts mean. The GenAI convention (and OpenAI) count
// cached prompt tokens inside the input and reasoning tokens inside the output. Some
// instrumentations write the provider's raw counts under the same keys instead:
//
//   - Anthropic's Messages API reports input_tokens without the cache reads and writes; OpenLLMetry's
//     JS instrumentation (@traceloop/instrumentation-anthropic) writes it unchanged as
//     gen_ai.usage.input_tokens, and so does OpenInference's Bedrock instrumentation on InvokeModel
//     (llm.token_count.prompt).
//   - Gemini reports thoughtsTokenCount beside candidatesTokenCount and bills both as output;
//     OpenLLMetry's JS Google GenAI and Vertex AI instrumentations write the candidates only as
//     gen_ai.usage.output_tokens and the thoughts as gen_ai.usage.reasoning_tokens.
//
// The processor knows these out of the box by the span's instrumentation scope name (knownScopes),
// per provider where they differ. For other scopes a reported total decides when it can (see
// decideByTotal); else the convention's meaning applies. The user's input_excludes_cache rules
// come on top (they can only add an exclusion).

// scopeRule is what one instrumentation scope's counts mean, per provider ("" any provider).
type scopeRule struct {
	// inputExcludesCache: the input count leaves out cache reads and writes.
	inputExcludesCache bool
	// outputExcludesReasoning: the output count leaves out the reasoning tokens, reported apart.
	outputExcludesReasoning bool
	// provider restricts the rule to one normalised provider; "" applies to every provider.
	provider string
}

// ScopeSemantics is one known instrumentation scope's token semantics, for documentation and tests.
type ScopeSemantics struct {
	// Scope is the instrumentation scope name (InstrumentationScope.name of the span's ScopeSpans).
	Scope string
	// Provider is the normalised provider the rule is limited to; "" for every provider.
	Provider string
	// InputExcludesCache says the input count leaves out cache reads and writes.
	InputExcludesCache bool
	// OutputExcludesReasoning says the output count leaves out the reasoning tokens.
	OutputExcludesReasoning bool
	// Source names the published source the rule was read from.
	Source string
}

// knownScopes are the instrumentation scopes whose token semantics differ from the convention,
// read from their published sources (versions in Source). A scope listed with neither flag is known
// to follow the convention: a total it reports does not decide for it.
var knownScopes = []ScopeSemantics{
	{Scope: "@traceloop/instrumentation-anthropic", InputExcludesCache: true,
		Source: "npm @traceloop/instrumentation-anthropic 0.27.0, dist/index.js _endSpan: input_tokens as reported"},
	{Scope: "@traceloop/instrumentation-google-generativeai", OutputExcludesReasoning: true,
		Source: "npm @traceloop/instrumentation-google-generativeai 0.27.0: output = candidatesTokenCount, reasoning = thoughtsTokenCount"},
	{Scope: "@traceloop/instrumentation-vertexai", OutputExcludesReasoning: true, Provider: "gcp.vertex_ai",
		Source: "npm @traceloop/instrumentation-vertexai 0.27.0: Gemini usageMetadata as the Google GenAI instrumentation"},
	{Scope: "@arizeai/openinference-instrumentation-bedrock", InputExcludesCache: true, Provider: "aws.bedrock",
		Source: "npm @arizeai/openinference-instrumentation-bedrock 0.5.1, invoke-model-response-attributes.js: llm.token_count.prompt = usage.input_tokens"},
	{Scope: "@arizeai/openinference-instrumentation-anthropic",
		Source: "npm @arizeai/openinference-instrumentation-anthropic 0.2.8: prompt includes the cache"},
	{Scope: "opentelemetry.instrumentation.anthropic",
		Source: "PyPI opentelemetry-instrumentation-anthropic (traceloop/openllmetry): input_tokens = input + cache read + cache creation"},
}

// KnownScopes returns the instrumentation scopes whose token semantics are known out of the box.
func KnownScopes() []ScopeSemantics { return append([]ScopeSemantics(nil), knownScopes...) }

// scopeIndex maps a scope name to its rules.
var scopeIndex = func() map[string][]scopeRule {
	m := map[string][]scopeRule{}
	for _, s := range knownScopes {
		m[s.Scope] = append(m[s.Scope], scopeRule{inputExcludesCache: s.InputExcludesCache,
			outputExcludesReasoning: s.OutputExcludesReasoning, provider: s.Provider})
	}
	return m
}()

// InScope returns the resource's attribution for the spans of one instrumentation scope (the name
// of their ScopeSpans' scope): Extract then reads their counts in that scope's meaning.
func (r Resource) InScope(name string) Resource {
	r.scope = scopeIndex[name]
	r.scopeKnown = r.scope != nil
	return r
}

// semantics decides, in finish, what c's counts mean and brings them to the convention's meaning:
// Usage.InputExcludesCache for an input without the cache (priced and normalised accordingly), and
// the reasoning tokens added to an output that left them out.
func (e *Extractor) semantics(c *Call, total int64, hasTotal bool) {
	u := &c.Usage
	u.OutputTokens -= c.outputAdded // finish runs again after overrides
	c.outputAdded = 0
	exclCache, exclReasoning, known := false, false, c.scopeKnown
	if c.rank[fConvention] != 0 {
		known = true // Normalize already rewrote the counts in the convention's meaning
	}
	for _, r := range c.scope {
		if c.rank[fConvention] != 0 {
			break
		}
		if r.provider == "" || r.provider == c.Provider {
			exclCache = exclCache || r.inputExcludesCache
			exclReasoning = exclReasoning || r.outputExcludesReasoning
		}
	}
	if !known && hasTotal {
		exclCache, exclReasoning = decideByTotal(u.InputTokens, u.OutputTokens, u.CacheReadTokens+u.CacheWriteTokens, u.ReasoningTokens, total)
	}
	c.inputRaw = exclCache
	u.InputExcludesCache = exclCache || e.inputExcludesCache(c.Dialect, c.Provider)
	if exclReasoning && u.ReasoningTokens > 0 && u.OutputTokens <= MaxTokens {
		u.OutputTokens += u.ReasoningTokens
		c.outputAdded = u.ReasoningTokens
	}
}

// decideByTotal reads which meaning the counts have from a reported total: input + output (the
// convention), input + cache + output (input left the cache out), input + output + reasoning
// (output left the reasoning out), or both. Each question is answered only when every reading the
// total fits gives the same answer (with no cached tokens the total says nothing about the cache);
// a total that fits no reading says nothing, and the convention applies.
func decideByTotal(in, out, cache, reasoning, total int64) (exclCache, exclReasoning bool) {
	var fitCache, fitReasoning [2]bool // which answers of each question some reading fits with
	fits := false
	for ic := range 2 {
		for er := range 2 {
			sum := in + out + int64(ic)*cache + int64(er)*reasoning
			if sum == total {
				fits = true
				fitCache[ic], fitReasoning[er] = true, true
			}
		}
	}
	return fits && fitCache[1] && !fitCache[0], fits && fitReasoning[1] && !fitReasoning[0]
}

// totalValue reads the total token count; false when absent or not a valid count.
func totalValue(v pcommon.Value, rank uint8) (int64, bool) {
	if rank == 0 {
		return 0, false
	}
	n, bad := tokenValue(v)
	return n, bad == 0
}

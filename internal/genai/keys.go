package genai

import "strings"

// The GenAI semantic-convention keys Normalize writes, and the agentcost keys Extract reads.
const (
	KeyRequestModel     = "gen_ai.request.model"
	KeyResponseModel    = "gen_ai.response.model"
	KeyProviderName     = "gen_ai.provider.name"
	KeyInputTokens      = "gen_ai.usage.input_tokens"
	KeyOutputTokens     = "gen_ai.usage.output_tokens"
	KeyCacheReadTokens  = "gen_ai.usage.cache_read.input_tokens"
	KeyCacheWriteTokens = "gen_ai.usage.cache_write.input_tokens"
	KeyReasoningTokens  = "gen_ai.usage.reasoning.output_tokens"

	KeyCostUSD    = "agentcost.cost_usd"
	KeyTeam       = "agentcost.team"
	KeyTenant     = "agentcost.tenant"
	KeyRunID      = "agentcost.run_id"
	KeyAction     = "agentcost.action"
	KeyDecisionID = "agentcost.decision_id"
)

// MaxTokens is the largest token count accepted for one call; larger values are Malformed.
const MaxTokens = 100_000_000

// Dialect is the instrumentation convention a span's GenAI attributes follow.
type Dialect uint8

// The dialects Extract recognises.
const (
	DialectNone          Dialect = iota // no GenAI attribute at all
	DialectGenAI                        // current OpenTelemetry GenAI semantic conventions
	DialectGenAILegacy                  // pre-1.27 gen_ai names (gen_ai.system, prompt_tokens)
	DialectOpenLLMetry                  // Traceloop OpenLLMetry (llm.request.type, llm.usage.*)
	DialectOpenInference                // Arize OpenInference (llm.model_name, llm.token_count.*)
	DialectVercel                       // Vercel AI SDK (ai.*)
	DialectOpenLIT                      // OpenLIT (gen_ai.* plus gen_ai.usage.cost)
)

var dialectNames = [...]string{
	DialectNone:          "none",
	DialectGenAI:         "genai",
	DialectGenAILegacy:   "genai_legacy",
	DialectOpenLLMetry:   "openllmetry",
	DialectOpenInference: "openinference",
	DialectVercel:        "vercel",
	DialectOpenLIT:       "openlit",
}

// String returns the dialect's configuration name ("vercel", "openinference", ...).
func (d Dialect) String() string {
	if int(d) < len(dialectNames) {
		return dialectNames[d]
	}
	return "unknown"
}

// ParseDialect maps a configuration name back to its Dialect.
func ParseDialect(s string) (Dialect, bool) {
	for d, name := range dialectNames {
		if strings.EqualFold(s, name) {
			return Dialect(d), true
		}
	}
	return DialectNone, false
}

// hint is a bit set of the dialects whose keys a span carries.
type hint uint8

const (
	hGenAI hint = 1 << iota
	hLegacy
	hOpenLLMetry
	hOpenInference
	hVercel
	hOpenLIT
)

// dialect resolves the hints, most specific first: Vercel and OpenInference spans also carry
// gen_ai keys, and OpenLIT and OpenLLMetry spans carry legacy gen_ai names.
func (h hint) dialect() Dialect {
	switch {
	case h == 0:
		return DialectNone
	case h&hVercel != 0:
		return DialectVercel
	case h&hOpenInference != 0:
		return DialectOpenInference
	case h&hOpenLIT != 0:
		return DialectOpenLIT
	case h&hOpenLLMetry != 0:
		return DialectOpenLLMetry
	case h&hLegacy != 0:
		return DialectGenAILegacy
	default:
		return DialectGenAI
	}
}

// field is a slot of the one-pass scan: every key feeds one field at a rank.
type field uint8

const (
	fModel field = iota
	fProvider
	fInput
	fOutput
	fCacheRead
	fCacheWrite
	fReasoning
	fTier
	fCost
	fAgent
	fTeam
	fTenant
	fRunID
	fAction
	fDecisionID
	fOperationID
	fPriced
	fSDKName
	// The modality and per-unit counts and the reported cost's currency (modes.go).
	fAudioIn
	fImageIn
	fAudioOut
	fCacheWrite1h
	fSearchQueries
	fSearchContext
	fOutputImages
	fInputImages
	fInputSeconds
	fOutputSeconds
	fInputPixels
	fOutputPixels
	fInputChars
	fOutputChars
	fCostCurrency
	fTotal      // the total token count, used only to tell which meaning the counts have (semantics.go)
	fConvention // agentcost.usage.convention: the counts were rewritten to the convention's meaning
	fMarker     // a dialect marker only
	numFields
)

// usageFields are the token-count fields, in pricing.Usage order.
var usageFields = [...]field{fInput, fOutput, fCacheRead, fCacheWrite, fReasoning}

// keyRef is what the scan knows about one attribute key.
type keyRef struct {
	field field
	rank  uint8 // 1 = first choice; a lower rank wins
	hint  hint
	// response marks model keys that name the responding model (written back as gen_ai.response.model).
	response bool
}

type rankedKey struct {
	key      string
	hint     hint
	response bool
}

// fieldKeys lists, per field, the span keys in DESIGN.md's order: the first found wins.
var fieldKeys = [numFields][]rankedKey{
	fModel: {
		{KeyResponseModel, hGenAI, true},
		{KeyRequestModel, hGenAI, false},
		{"llm.model_name", hOpenInference, false},
		{"llm.response.model_name", hOpenInference, true},
		{"ai.response.model", hVercel, true},
		{"ai.model.id", hVercel, false},
		{"llm.response.model", hOpenLLMetry, true},
		{"llm.request.model", hOpenLLMetry, false},
	},
	fProvider: {
		{KeyProviderName, hGenAI, false},
		{"gen_ai.system", hLegacy, false},
		{"llm.provider", hOpenInference, false},
		{"llm.system", hOpenInference, false},
		{"ai.model.provider", hVercel, false},
	},
	fInput: {
		{KeyInputTokens, hGenAI, false},
		{"gen_ai.usage.prompt_tokens", hLegacy, false},
		{"llm.usage.prompt_tokens", hOpenLLMetry, false},
		{"llm.token_count.prompt", hOpenInference, false},
		{"ai.usage.inputTokens", hVercel, false},
		{"ai.usage.promptTokens", hVercel, false},
	},
	fOutput: {
		{KeyOutputTokens, hGenAI, false},
		{"gen_ai.usage.completion_tokens", hLegacy, false},
		{"llm.usage.completion_tokens", hOpenLLMetry, false},
		{"llm.token_count.completion", hOpenInference, false},
		{"ai.usage.outputTokens", hVercel, false},
		{"ai.usage.completionTokens", hVercel, false},
	},
	fCacheRead: {
		{KeyCacheReadTokens, hGenAI, false},
		{"gen_ai.usage.cache_read_input_tokens", hOpenLLMetry, false},
		{"llm.token_count.prompt_details.cache_read", hOpenInference, false},
		{"ai.usage.inputTokenDetails.cacheReadTokens", hVercel, false},
		{"ai.usage.cachedInputTokens", hVercel, false},
	},
	fCacheWrite: {
		{KeyCacheWriteTokens, hGenAI, false},
		{"gen_ai.usage.cache_creation.input_tokens", hGenAI, false},
		{"gen_ai.usage.cache_creation_input_tokens", hOpenLLMetry, false},
		{"llm.token_count.prompt_details.cache_write", hOpenInference, false},
		{"ai.usage.inputTokenDetails.cacheWriteTokens", hVercel, false},
	},
	fReasoning: {
		{KeyReasoningTokens, hGenAI, false},
		{"gen_ai.usage.reasoning_tokens", hOpenLLMetry, false},
		{"llm.token_count.completion_details.reasoning", hOpenInference, false},
		{"ai.usage.reasoningTokens", hVercel, false},
		{"ai.usage.outputTokenDetails.reasoningTokens", hVercel, false},
	},
	fTier: {
		{"openai.response.service_tier", hGenAI, false},
		{"openai.request.service_tier", hGenAI, false},
		{"gen_ai.openai.response.service_tier", hLegacy, false},
		{"gen_ai.openai.request.service_tier", hLegacy, false},
	},
	fCost: {
		{KeyReportedCostAmount, hGenAI, false},
		{"gen_ai.usage.cost", hOpenLIT, false},
		{"llm.cost.total", hOpenInference, false},
	},
	fAudioIn:       {{KeyAudioInputTokens, hGenAI, false}},
	fImageIn:       {{KeyImageInputTokens, hGenAI, false}},
	fAudioOut:      {{KeyAudioOutputTokens, hGenAI, false}},
	fCacheWrite1h:  {{KeyCacheWrite1hTokens, 0, false}},
	fSearchQueries: {{KeyWebSearchQueries, 0, false}},
	fSearchContext: {{KeySearchContextSize, 0, false}},
	fOutputImages:  {{KeyOutputImages, 0, false}},
	fInputImages:   {{KeyInputImages, 0, false}},
	fInputSeconds:  {{KeyInputSeconds, 0, false}},
	fOutputSeconds: {{KeyOutputSeconds, 0, false}},
	fInputPixels:   {{KeyInputPixels, 0, false}},
	fOutputPixels:  {{KeyOutputPixels, 0, false}},
	fInputChars:    {{KeyInputCharacters, 0, false}},
	fOutputChars:   {{KeyOutputCharacters, 0, false}},
	fCostCurrency:  {{KeyReportedCostCurrency, hGenAI, false}},

	fAgent:       {{"gen_ai.agent.name", hGenAI, false}, {"gen_ai.agent.id", hGenAI, false}},
	fTeam:        {{KeyTeam, 0, false}},
	fTenant:      {{KeyTenant, 0, false}, {"tenant.id", 0, false}},
	fRunID:       {{KeyRunID, 0, false}},
	fAction:      {{KeyAction, 0, false}, {"gen_ai.operation.name", hGenAI, false}},
	fDecisionID:  {{KeyDecisionID, 0, false}},
	fOperationID: {{"ai.operationId", hVercel, false}},
	fPriced:      {{KeyCostUSD, 0, false}},
	fSDKName:     {{"telemetry.sdk.name", 0, false}},
	fTotal: {
		{"gen_ai.usage.total_tokens", 0, false},
		{"llm.usage.total_tokens", hOpenLLMetry, false},
		{"llm.token_count.total", hOpenInference, false},
		{"ai.usage.totalTokens", hVercel, false},
	},
	fConvention: {{KeyUsageConvention, 0, false}},
	fMarker: {
		{"openinference.span.kind", hOpenInference, false},
		{"llm.request.type", hOpenLLMetry, false},
	},
}

// canonicalKey is, per normalisable field, the GenAI key Normalize writes.
var canonicalKey = [...]string{
	fProvider:   KeyProviderName,
	fInput:      KeyInputTokens,
	fOutput:     KeyOutputTokens,
	fCacheRead:  KeyCacheReadTokens,
	fCacheWrite: KeyCacheWriteTokens,
	fReasoning:  KeyReasoningTokens,
}

// keyIndex maps every known span key to its field and rank; built once from fieldKeys.
var keyIndex = func() map[string]keyRef {
	m := make(map[string]keyRef, 64)
	for f, keys := range fieldKeys {
		for i, k := range keys {
			m[k.key] = keyRef{field: field(f), rank: uint8(i + 1), hint: k.hint, response: k.response}
		}
	}
	return m
}()

// keyFirstByte marks the bytes a known key (or "traceloop.") starts with.
var keyFirstByte = func() (b [256]bool) {
	for k := range keyIndex {
		b[k[0]] = true
	}
	b['t'] = true
	return b
}()

// canonicalRank is the worst rank that is still a GenAI convention key (model has two).
func canonicalRank(f field) uint8 {
	// Model: request and response model are both convention keys. Cache write: the semantic
	// convention's gen_ai.usage.cache_creation.input_tokens is as canonical as DESIGN.md's
	// gen_ai.usage.cache_write.input_tokens; a span carrying either gets no extra write.
	if f == fModel || f == fCacheWrite {
		return 2
	}
	return 1
}

// providerAliases maps lower-cased provider spellings of every dialect to the GenAI
// convention's gen_ai.provider.name values. Canonical values map to themselves so that
// normalising twice changes nothing.
var providerAliases = map[string]string{
	"openai": "openai",

	"anthropic": "anthropic",

	"aws.bedrock":    "aws.bedrock",
	"bedrock":        "aws.bedrock",
	"aws":            "aws.bedrock",
	"aws_bedrock":    "aws.bedrock",
	"amazon-bedrock": "aws.bedrock",
	"amazon_bedrock": "aws.bedrock",
	"amazon.bedrock": "aws.bedrock",

	"azure.ai.inference": "azure.ai.inference",
	"az.ai.inference":    "azure.ai.inference",
	"azure_ai":           "azure.ai.inference",
	"azure-ai":           "azure.ai.inference",
	"azure.ai.openai":    "azure.ai.openai",
	"az.ai.openai":       "azure.ai.openai",
	"azure":              "azure.ai.openai",
	"azure_openai":       "azure.ai.openai",
	"azure-openai":       "azure.ai.openai",
	"azureopenai":        "azure.ai.openai",

	"gcp.vertex_ai":        "gcp.vertex_ai",
	"vertex_ai":            "gcp.vertex_ai",
	"vertexai":             "gcp.vertex_ai",
	"vertex":               "gcp.vertex_ai",
	"google.vertex":        "gcp.vertex_ai",
	"google-vertex":        "gcp.vertex_ai",
	"google_vertex":        "gcp.vertex_ai",
	"gcp.gemini":           "gcp.gemini",
	"gemini":               "gcp.gemini",
	"google_genai":         "gcp.gemini",
	"google-genai":         "gcp.gemini",
	"google.genai":         "gcp.gemini",
	"google.gemini":        "gcp.gemini",
	"gcp.gen_ai":           "gcp.gen_ai",
	"google":               "gcp.gen_ai",
	"google.generative-ai": "gcp.gemini",

	"mistral_ai": "mistral_ai",
	"mistral":    "mistral_ai",
	"mistralai":  "mistral_ai",

	"cohere":     "cohere",
	"groq":       "groq",
	"deepseek":   "deepseek",
	"perplexity": "perplexity",

	"x_ai": "x_ai",
	"xai":  "x_ai",
	"x-ai": "x_ai",

	"ibm.watsonx.ai": "ibm.watsonx.ai",
	"watsonx":        "ibm.watsonx.ai",
	"ibm_watsonx_ai": "ibm.watsonx.ai",
}

// vercelAPISuffixes are the API parts of Vercel AI SDK provider ids ("openai.chat").
var vercelAPISuffixes = [...]string{
	".chat", ".completion", ".responses", ".messages", ".embedding", ".textEmbedding",
	".image", ".transcription", ".speech",
}

// NormalizeProvider maps a provider name of any dialect to the GenAI convention's
// gen_ai.provider.name value: Vercel's "openai.chat" is "openai", gen_ai.system's
// "az.ai.inference" is "azure.ai.inference", OpenLLMetry's "Anthropic" is "anthropic".
// Unknown names are returned unchanged, without their Vercel API suffix. It does not allocate.
func NormalizeProvider(s string) string {
	if s == "" {
		return ""
	}
	if p, ok := lookupProvider(s); ok {
		return p
	}
	for _, suffix := range vercelAPISuffixes {
		if len(s) > len(suffix) && strings.HasSuffix(s, suffix) {
			base := s[:len(s)-len(suffix)]
			if p, ok := lookupProvider(base); ok {
				return p
			}
			if hasVercelSuffix(base) {
				return s // stripping once more on a second pass would change the value
			}
			return base
		}
	}
	return s
}

func hasVercelSuffix(s string) bool {
	for _, suffix := range vercelAPISuffixes {
		if len(s) > len(suffix) && strings.HasSuffix(s, suffix) {
			return true
		}
	}
	return false
}

// lookupProvider looks s up case-insensitively, lower-casing into a stack buffer.
func lookupProvider(s string) (string, bool) {
	var buf [32]byte
	if len(s) > len(buf) {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	p, ok := providerAliases[string(buf[:len(s)])]
	return p, ok
}

// KeyMalformed is written by the agentcost processor on a model-call span it could not price
// because its usage was malformed: the reason (a token count given as a string, negative,
// fractional, ...; see Malformed and the costing package's Reason constants).
const KeyMalformed = "agentcost.malformed"

// The agentcost.* span attributes the agentcost processor writes (DESIGN.md "What the processor
// writes"); the costledger exporter reads them back.
const (
	KeyAgent          = "agentcost.agent"
	KeyModel          = "agentcost.model"
	KeyPriceUnknown   = "agentcost.price.unknown"
	KeyAnomaly        = "agentcost.anomaly"
	KeyAnomalyRatio   = "agentcost.anomaly.ratio"
	KeyBaselineUSD    = "agentcost.baseline_usd"
	KeyAggregate      = "agentcost.aggregate"
	KeyCostInputUSD   = "agentcost.cost.input_usd"
	KeyCostOutputUSD  = "agentcost.cost.output_usd"
	KeyCostCacheRead  = "agentcost.cost.cache_read_usd"
	KeyCostCacheWrite = "agentcost.cost.cache_write_usd"
	KeyPriceSource    = "agentcost.price.source"
	// KeyPriceMatch says how a price not found under an exact key was found (pricing.MatchKind,
	// "provider_prefix,dated_snapshot"); written only when the match is not exact.
	KeyPriceMatch = "agentcost.price.match"
	// EventAnomaly is the name of the span event added to anomalous spans.
	EventAnomaly = "agentcost.anomaly"
	// KeyEscalating marks a span whose (agent, model) cost per call climbs steadily (written only
	// when true); the costledger exporter counts it as an anomaly of level escalation.
	KeyEscalating = "agentcost.escalating"
	// EventLevelShift is the span event of a call that completed a sustained change of its
	// (agent, model) cost level; it carries agentcost.baseline_usd (before) and
	// agentcost.baseline.new_usd (after).
	EventLevelShift = "agentcost.baseline.level_shift"
	// KeyNewBaselineUSD is the baseline after a level shift, on EventLevelShift.
	KeyNewBaselineUSD = "agentcost.baseline.new_usd"
	// KeyUsageConvention marks a span whose own gen_ai.usage keys Normalize rewrote from the
	// instrumentation's meaning to the convention's (semantics.go), so that a later reading does not
	// adjust them twice.
	KeyUsageConvention = "agentcost.usage.convention"
)

package pricing

import (
	"strings"
)

// providerRoutes maps provider names as spans carry them (GenAI `gen_ai.provider.name`, legacy
// `gen_ai.system`, OpenInference `llm.provider`, LiteLLM names) to the LiteLLM route prefix that
// qualifies a table key (`azure/gpt-4o`).
var providerRoutes = map[string]string{
	"": "",

	"openai": "openai",

	"anthropic": "anthropic",

	"azure":           "azure",
	"azure_openai":    "azure",
	"azure.openai":    "azure",
	"azure.ai.openai": "azure",
	"az.ai.openai":    "azure",
	"azure-openai":    "azure",

	"azure_ai":           "azure_ai",
	"azure.ai.inference": "azure_ai",
	"az.ai.inference":    "azure_ai",

	"bedrock":          "bedrock",
	"aws.bedrock":      "bedrock",
	"aws_bedrock":      "bedrock",
	"amazon-bedrock":   "bedrock",
	"amazon_bedrock":   "bedrock",
	"bedrock_converse": "bedrock",

	"vertex_ai":     "vertex_ai",
	"vertexai":      "vertex_ai",
	"vertex":        "vertex_ai",
	"gcp.vertex_ai": "vertex_ai",
	"google.vertex": "vertex_ai",
	"google-vertex": "vertex_ai",

	"gemini":               "gemini",
	"gcp.gemini":           "gemini",
	"gcp.gen_ai":           "gemini",
	"google":               "gemini",
	"google_genai":         "gemini",
	"google.generative-ai": "gemini",

	"mistral":    "mistral",
	"mistral_ai": "mistral",
	"mistralai":  "mistral",

	"xai":  "xai",
	"x_ai": "xai",
	"x.ai": "xai",

	"watsonx":        "watsonx",
	"ibm.watsonx.ai": "watsonx",

	"cohere":       "cohere",
	"deepseek":     "deepseek",
	"groq":         "groq",
	"perplexity":   "perplexity",
	"together_ai":  "together_ai",
	"fireworks_ai": "fireworks_ai",
	"openrouter":   "openrouter",
	"ollama":       "ollama",
	"deepinfra":    "deepinfra",
	"cerebras":     "cerebras",
	"moonshot":     "moonshot",
	"databricks":   "databricks",
}

// NormalizeProvider maps a span's provider name ("aws.bedrock", "gcp.vertex_ai", "az.ai.openai",
// the Vercel AI SDK's "openai.chat") to LiteLLM's name for it ("bedrock", "vertex_ai", "azure",
// "openai"). Unknown names are returned lower-cased.
func NormalizeProvider(provider string) string {
	if r, ok := providerRoutes[provider]; ok {
		return r
	}
	p := strings.ToLower(strings.TrimSpace(provider))
	if r, ok := providerRoutes[p]; ok {
		return r
	}
	if len(p) > maxNameLen {
		return p
	}
	// Dialects append an API name: "openai.chat", "anthropic.messages", "google.vertex.chat".
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '.' {
			if r, ok := providerRoutes[p[:i]]; ok {
				return r
			}
		}
	}
	return p
}

// candidate is a name to look up, derived from the raw model name by the listed rules.
type candidate struct {
	name  string
	rules []string
}

// Matching rules, as Explain reports them.
const (
	RuleExact             = "exact"
	RuleProviderQualified = "provider-qualified key"
	RuleCaseInsensitive   = "case-insensitive"
	RuleAlias             = "alias"
	RuleProviderPrefix    = "provider prefix"
	RuleRegionalPrefix    = "regional prefix"
	RuleVendorPrefix      = "vendor prefix"
	RuleVersionSuffix     = "version suffix"
	RuleDatedSnapshot     = "dated snapshot"
	RuleFallback          = "provider fallback"
)

// MatchKind is a set of the non-exact ways a lookup found a price: the rules beyond the exact key,
// the provider-qualified key and an alias. The zero value is an exact match. The processor writes
// a non-zero kind in agentcost.price.match and prices a span only when each of its kinds is allowed
// (`prices.allow_match`).
type MatchKind uint8

// The match kinds, in the order String lists them.
const (
	// MatchCaseInsensitive: the key differs from the name in letter case only.
	MatchCaseInsensitive MatchKind = 1 << iota
	// MatchProviderPrefix: leading route segments were removed ("openai/gpt-4o" → "gpt-4o").
	MatchProviderPrefix
	// MatchRegionalPrefix: a Bedrock cross-region prefix was removed ("us.", "eu.", "jp.", ...).
	MatchRegionalPrefix
	// MatchVendorPrefix: a Bedrock vendor prefix was removed ("anthropic.").
	MatchVendorPrefix
	// MatchVersionSuffix: a Bedrock version suffix was removed ("-v1:0").
	MatchVersionSuffix
	// MatchDatedSnapshot: a snapshot date the table lacks was removed ("gpt-3.5-turbo-0613").
	MatchDatedSnapshot
	// MatchFallback: nothing matched; the provider's fallback price was used.
	MatchFallback

	numMatchKinds = 7
	// AllMatchKinds allows every kind.
	AllMatchKinds MatchKind = 1<<numMatchKinds - 1
)

// matchKindNames are the kinds' names, as agentcost.price.match, the metrics and
// `prices.allow_match` spell them.
var matchKindNames = [numMatchKinds]string{"case_insensitive", "provider_prefix", "regional_prefix",
	"vendor_prefix", "version_suffix", "dated_snapshot", "provider_fallback"}

// matchKindStrings caches String for every set, so that writing the attribute never allocates.
var matchKindStrings = func() (out [AllMatchKinds + 1]string) {
	for k := range out {
		var parts []string
		for i, name := range matchKindNames {
			if k&(1<<i) != 0 {
				parts = append(parts, name)
			}
		}
		out[k] = strings.Join(parts, ",")
	}
	out[0] = "exact"
	return out
}()

// MatchKindNames returns the names of every match kind, in order.
func MatchKindNames() []string { return append([]string(nil), matchKindNames[:]...) }

// ParseMatchKind returns the kind of a name ("dated_snapshot").
func ParseMatchKind(name string) (MatchKind, bool) {
	for i, n := range matchKindNames {
		if n == name {
			return 1 << i, true
		}
	}
	return 0, false
}

// String lists the kinds in the set, comma-separated in a fixed order ("provider_prefix,
// dated_snapshot" without the space); "exact" for none.
func (k MatchKind) String() string {
	if k > AllMatchKinds {
		k &= AllMatchKinds
	}
	return matchKindStrings[k]
}

// Kinds returns each kind in the set, in order.
func (k MatchKind) Kinds() []MatchKind {
	var out []MatchKind
	for i := range numMatchKinds {
		if k&(1<<i) != 0 {
			out = append(out, 1<<i)
		}
	}
	return out
}

// ruleKinds maps the matching rules to their kind; the exact key, the provider-qualified key and
// an alias are exact.
var ruleKinds = map[string]MatchKind{
	RuleCaseInsensitive: MatchCaseInsensitive,
	RuleProviderPrefix:  MatchProviderPrefix,
	RuleRegionalPrefix:  MatchRegionalPrefix,
	RuleVendorPrefix:    MatchVendorPrefix,
	RuleVersionSuffix:   MatchVersionSuffix,
	RuleDatedSnapshot:   MatchDatedSnapshot,
	RuleFallback:        MatchFallback,
}

// kindOf returns the match kind of the rules a Match lists.
func kindOf(rules []string) MatchKind {
	var k MatchKind
	for _, r := range rules {
		for _, part := range strings.Split(r, ", ") {
			k |= ruleKinds[part]
		}
	}
	return k
}

// separateBilling reports whether a leading route segment means a billing of its own that the
// direct API's price must not stand for, so that the segment is never removed to find a price:
// subscriptions (GitHub Copilot, ChatGPT), resellers whose file entries carry no token prices
// (Snowflake, Perplexity's hosted third-party models) and Bedrock provisioned throughput
// ("1-month-commitment").
func separateBilling(segment, rest string) bool {
	switch strings.ToLower(segment) {
	case "github_copilot", "chatgpt", "snowflake":
		return true
	case "perplexity":
		return strings.Contains(rest, "/") // perplexity/openai/gpt-5.2: another vendor's model
	}
	return strings.Contains(rest, "-commitment/") || strings.HasSuffix(segment, "-commitment")
}

// Bedrock cross-region inference profile prefixes ("us.anthropic.claude-...").
var regionalPrefixes = []string{"us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca."}

// Bedrock model-vendor prefixes ("anthropic.claude-...").
var vendorPrefixes = []string{"anthropic.", "meta.", "amazon.", "mistral.", "cohere.", "ai21.", "deepseek.", "openai.", "qwen."}

// candidates returns the names to try for a raw model name, most specific first:
//
//  1. the name itself;
//  2. the name without leading route segments ("bedrock/us-east-1/x" → "us-east-1/x" → "x");
//  3. each of those without a Bedrock regional prefix, vendor prefix and version suffix
//     ("us.anthropic.claude-x-v1:0" → "anthropic.claude-x-v1:0" → "claude-x-v1:0" → "claude-x");
//  4. each of those without a snapshot date ("gpt-5.4-mini-2026-09-30" → "gpt-5.4-mini",
//     "claude-3-5-sonnet@20240620" → "claude-3-5-sonnet-20240620" → "claude-3-5-sonnet").
//
// Date removal comes last so that a snapshot the table prices (gpt-4o-2024-05-13, dearer than
// gpt-4o) is found under any prefix before the undated model is.
func candidates(model string) []candidate {
	var out []candidate
	seen := map[string]bool{}
	add := func(name string, rules []string, rule string) {
		if name == "" || seen[name] {
			return
		}
		seen[name] = true
		r := make([]string, len(rules), len(rules)+1)
		copy(r, rules)
		if rule != "" {
			r = append(r, rule)
		}
		out = append(out, candidate{name: name, rules: r})
	}
	add(model, nil, "")
	for s := model; ; {
		i := strings.IndexByte(s, '/')
		if i < 0 || separateBilling(s[:i], s[i+1:]) {
			break
		}
		s = s[i+1:]
		add(s, nil, RuleProviderPrefix)
	}
	for _, c := range append([]candidate(nil), out...) {
		name, rules := c.name, c.rules
		if s, ok := cutAnyPrefix(name, regionalPrefixes); ok {
			name = s
			rules = append(append([]string(nil), rules...), RuleRegionalPrefix)
			add(name, rules, "")
		}
		if s, ok := cutAnyPrefix(name, vendorPrefixes); ok {
			name = s
			rules = append(append([]string(nil), rules...), RuleVendorPrefix)
			add(name, rules, "")
		}
		if s, ok := cutVersionSuffix(name); ok {
			add(s, rules, RuleVersionSuffix)
		}
	}
	for _, c := range append([]candidate(nil), out...) {
		for _, s := range undated(c.name) {
			add(s, c.rules, RuleDatedSnapshot)
		}
	}
	return out
}

func cutAnyPrefix(s string, prefixes []string) (string, bool) {
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(s, p); ok && rest != "" {
			return rest, true
		}
	}
	return s, false
}

// cutVersionSuffix removes a Bedrock model version ("-v1:0", "-v2").
func cutVersionSuffix(s string) (string, bool) {
	i := strings.LastIndex(s, "-v")
	if i <= 0 {
		return s, false
	}
	ver := s[i+2:]
	major, minor, hasMinor := strings.Cut(ver, ":")
	if !allDigits(major) || (hasMinor && !allDigits(minor)) {
		return s, false
	}
	return s[:i], true
}

// undated returns the name without its snapshot date, in the forms to try: "x@20240620" gives
// "x-20240620" then "x"; "x-2026-09-30", "x-20240620" and "x-0613" give "x".
func undated(s string) []string {
	if i := strings.LastIndexByte(s, '@'); i > 0 {
		out := []string{s[:i]}
		if i+1 < len(s) {
			out = []string{s[:i] + "-" + s[i+1:], s[:i]}
		}
		return out
	}
	i := strings.LastIndexByte(s, '-')
	if i <= 0 {
		return nil
	}
	last := s[i+1:]
	switch {
	case len(last) == 8 && allDigits(last) && (last[:2] == "19" || last[:2] == "20") && validMonthDay(last[4:]):
		return []string{s[:i]} // -20240620
	case len(last) == 4 && allDigits(last) && validMonthDay(last):
		return []string{s[:i]} // -0613
	case len(last) == 2 && allDigits(last) && len(s) >= 11:
		// -YYYY-MM-DD
		d := s[len(s)-11:]
		if d[0] == '-' && d[5] == '-' && d[8] == '-' && allDigits(d[1:5]) && allDigits(d[6:8]) && allDigits(d[9:]) &&
			validMonthDay(d[6:8]+d[9:]) {
			return []string{s[:len(s)-11]}
		}
	}
	return nil
}

func validMonthDay(mmdd string) bool {
	m := int(mmdd[0]-'0')*10 + int(mmdd[1]-'0')
	d := int(mmdd[2]-'0')*10 + int(mmdd[3]-'0')
	return m >= 1 && m <= 12 && d >= 1 && d <= 31
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

package pricing

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestLookupRules(t *testing.T) {
	def := embeddedLayer(t)
	full := fullLayer(t)
	both := mustBuild(t, full, def)
	onlyDefault := mustBuild(t, def)
	onlyFull := mustBuild(t, full)
	// The matching table: (name, provider) → key, rules and match kind, on the upstream map.
	cases := []struct {
		table    *Table
		model    string
		provider string
		wantKey  string
		wantRule []string
		wantKind MatchKind
	}{
		{onlyDefault, "gpt-5.4-mini", "openai", "gpt-5.4-mini", []string{RuleExact}, 0},
		{onlyDefault, "GPT-5.4-Mini", "", "gpt-5.4-mini", []string{RuleCaseInsensitive}, MatchCaseInsensitive},
		{onlyDefault, " gpt-4o ", "", "gpt-4o", []string{RuleExact}, 0},
		{onlyDefault, "gpt-5.4-mini-2026-09-30", "openai", "gpt-5.4-mini", []string{RuleDatedSnapshot}, MatchDatedSnapshot},
		{onlyDefault, "gpt-5.4-mini-2026-03-17", "openai", "gpt-5.4-mini-2026-03-17", []string{RuleExact}, 0},
		{onlyDefault, "openai/gpt-4o", "", "gpt-4o", []string{RuleProviderPrefix}, MatchProviderPrefix},
		// The upstream map prices Azure, Gemini, Vertex and Bedrock's regional profiles under their
		// own keys: exact matches, at their own prices.
		{onlyDefault, "azure/gpt-4o-mini", "", "azure/gpt-4o-mini", []string{RuleExact}, 0},
		{onlyDefault, "gpt-4o-mini", "azure.ai.openai", "azure/gpt-4o-mini", []string{RuleProviderQualified}, 0},
		{onlyDefault, "gpt-4o-mini", "openai", "gpt-4o-mini", []string{RuleExact}, 0},
		{onlyDefault, "gemini-2.5-pro", "gcp.gemini", "gemini/gemini-2.5-pro", []string{RuleProviderQualified}, 0},
		{onlyDefault, "models/gemini-2.5-flash", "gcp.gemini", "gemini/gemini-2.5-flash",
			[]string{RuleProviderPrefix, RuleProviderQualified}, MatchProviderPrefix},
		{onlyDefault, "vertex_ai/claude-sonnet-4-5@20250929", "", "vertex_ai/claude-sonnet-4-5@20250929", []string{RuleExact}, 0},
		{onlyDefault, "claude-opus-4-1@20250805", "gcp.vertex_ai", "vertex_ai/claude-opus-4-1@20250805", []string{RuleProviderQualified}, 0},
		{onlyDefault, "claude-opus-4-5@latest", "", "claude-opus-4-5", []string{RuleDatedSnapshot}, MatchDatedSnapshot},
		{onlyDefault, "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", []string{RuleExact}, 0},
		{onlyDefault, "jp.anthropic.claude-sonnet-4-5-20250929-v1:0", "", "jp.anthropic.claude-sonnet-4-5-20250929-v1:0", []string{RuleExact}, 0},
		{onlyDefault, "au.anthropic.claude-sonnet-4-5-20250929-v1:0", "", "au.anthropic.claude-sonnet-4-5-20250929-v1:0", []string{RuleExact}, 0},
		{onlyDefault, "anthropic.claude-opus-4-6-v1", "", "anthropic.claude-opus-4-6-v1", []string{RuleExact}, 0},
		{onlyDefault, "bedrock/converse/eu.anthropic.claude-sonnet-4-20250514-v1:0", "", "eu.anthropic.claude-sonnet-4-20250514-v1:0",
			[]string{RuleProviderPrefix}, MatchProviderPrefix},
		{onlyDefault, "bedrock/us-east-1/anthropic.claude-3-7-sonnet-20250219-v1:0", "", "anthropic.claude-3-7-sonnet-20250219-v1:0",
			[]string{RuleProviderPrefix}, MatchProviderPrefix},
		{onlyDefault, "apac.anthropic.claude-opus-4-7-20260901-v1:0", "", "claude-opus-4-7",
			[]string{RuleRegionalPrefix, RuleVendorPrefix, RuleVersionSuffix, RuleDatedSnapshot},
			MatchRegionalPrefix | MatchVendorPrefix | MatchVersionSuffix | MatchDatedSnapshot},
		{onlyDefault, "gpt-4o-20240806", "", "gpt-4o", []string{RuleDatedSnapshot}, MatchDatedSnapshot},
		// A snapshot that left the file is priced as today's model, and flagged.
		{onlyDefault, "gpt-3.5-turbo-0613", "", "gpt-3.5-turbo", []string{RuleDatedSnapshot}, MatchDatedSnapshot},
		// A dated snapshot the table prices (dearer than gpt-4o) wins over the undated model under
		// any prefix.
		{onlyDefault, "openai/gpt-4o-2024-05-13", "", "gpt-4o-2024-05-13", []string{RuleProviderPrefix}, MatchProviderPrefix},
		{onlyDefault, "Mistral-Large-Latest", "mistral_ai", "mistral/mistral-large-latest",
			[]string{RuleProviderQualified + ", " + RuleCaseInsensitive}, MatchCaseInsensitive},
		{onlyDefault, "grok-4", "xai", "xai/grok-4", []string{RuleProviderQualified}, 0},
		{onlyDefault, "deepseek-chat", "deepseek", "deepseek/deepseek-chat", []string{RuleProviderQualified}, 0},
		{onlyDefault, "snowflake/claude-3-5-sonnet", "", "snowflake/claude-3-5-sonnet", []string{RuleExact}, 0},
		// An embedding model with an input price only is priced (no output tokens).
		{onlyDefault, "mistral/mistral-embed", "", "mistral/mistral-embed", []string{RuleExact}, 0},

		// The full file's own prefixed keys stay reachable exactly.
		{onlyFull, "bedrock/us-gov-east-1/anthropic.claude-3-haiku-20240307-v1:0", "", "bedrock/us-gov-east-1/anthropic.claude-3-haiku-20240307-v1:0", []string{RuleExact}, 0},
		{onlyFull, "vertex_ai/claude-3-haiku@20240307", "", "vertex_ai/claude-3-haiku@20240307", []string{RuleExact}, 0},
		{onlyFull, "eu.anthropic.claude-3-haiku-20240307-v1:0", "", "eu.anthropic.claude-3-haiku-20240307-v1:0", []string{RuleExact}, 0},
		// The provider picks its own key where the file has one (Azure and AI Studio prices differ).
		{onlyFull, "gpt-4o-mini", "openai", "openai/gpt-4o-mini", []string{RuleProviderQualified}, 0},
		{onlyFull, "gemini-1.5-pro", "gcp.gemini", "gemini/gemini-1.5-pro", []string{RuleProviderQualified}, 0},
		{onlyFull, "gemini-1.5-pro", "gcp.vertex_ai", "gemini-1.5-pro", []string{RuleExact}, 0},
		{onlyFull, "mistral-large-latest", "openai.chat", "", nil, 0},
		// With the default layered over the full file, the later layer's keys win.
		{both, "gpt-4o-mini", "openai", "gpt-4o-mini", []string{RuleExact}, 0},
		{both, "gemini-1.5-pro", "gcp.gemini", "gemini/gemini-1.5-pro", []string{RuleProviderQualified}, 0},

		{onlyDefault, "", "openai", "", nil, 0},
		{onlyDefault, "totally-unknown-model", "", "", nil, 0},
		{onlyDefault, "gpt-4o-9999-99-99", "", "", nil, 0},
		// Route prefixes of a billing of their own are never removed to reach the direct API's
		// price: subscriptions, Perplexity's hosted models, provisioned throughput.
		{onlyDefault, "github_copilot/brand-new-model", "", "", nil, 0},
		{onlyDefault, "chatgpt/gpt-4o", "", "", nil, 0},
		{onlyDefault, "perplexity/openai/gpt-4o", "", "", nil, 0},
		{onlyDefault, "snowflake/gpt-4o", "", "", nil, 0},
		{onlyDefault, "bedrock/us-east-1/1-month-commitment/anthropic.claude-3-7-sonnet-20250219-v1:0", "", "", nil, 0},
	}
	for _, c := range cases {
		t.Run(c.model+"|"+c.provider, func(t *testing.T) {
			m := c.table.Explain(c.model, c.provider)
			e, ok := c.table.Lookup(c.model, c.provider)
			if e != m.Entry || ok != (m.Entry != nil) {
				t.Fatalf("Lookup = %v, %v; Explain = %+v", e, ok, m)
			}
			if m.Kind != c.wantKind {
				t.Errorf("Explain kind %s, want %s", m.Kind, c.wantKind)
			}
			if h := c.table.LookupHit(c.model, c.provider); h.Entry != e || h.Kind != c.wantKind {
				t.Errorf("LookupHit = %v %s, want kind %s", h.Entry, h.Kind, c.wantKind)
			}
			if c.wantKey == "" {
				if m.Entry != nil {
					t.Fatalf("matched %+v", m)
				}
				if !strings.Contains(m.Reason, "matched no model") && m.Unpriced == "" {
					t.Errorf("reason %q", m.Reason)
				}
				return
			}
			if m.Entry == nil || m.Key != c.wantKey || m.Entry.Model != c.wantKey || !slices.Equal(m.Rules, c.wantRule) {
				t.Fatalf("Explain = key %q rules %q (%s); want %q %q", m.Key, m.Rules, m.Reason, c.wantKey, c.wantRule)
			}
			if !strings.Contains(m.Reason, fmt.Sprintf("%q", c.wantKey)) || !strings.Contains(m.Reason, m.Entry.Source) {
				t.Errorf("reason %q does not name key and source", m.Reason)
			}
			// A second lookup (now from the cache) agrees.
			if e2, _ := c.table.Lookup(c.model, c.provider); e2 != e {
				t.Errorf("cached lookup differs")
			}
		})
	}
}

// TestEveryKeyReachesItself checks that no matching rule hides a key the files define.
func TestEveryKeyReachesItself(t *testing.T) {
	full := fullLayer(t)
	def := embeddedLayer(t)
	for _, layers := range [][]*Layer{{full}, {def}, {full, def}} {
		table := mustBuild(t, layers...)
		for _, l := range layers {
			for _, e := range l.Entries {
				got, ok := table.Lookup(e.Model, "")
				if !ok || got.Model != e.Model {
					t.Fatalf("Lookup(%q) = %v", e.Model, got)
				}
				// With its provider named, a key may yield to that provider's own key.
				qualified := NormalizeProvider(e.Provider) + "/" + e.Model
				if got, _ := table.Lookup(e.Model, e.Provider); got.Model != e.Model && got.Model != qualified {
					t.Fatalf("Lookup(%q, %q) = %q", e.Model, e.Provider, got.Model)
				}
			}
		}
	}
}

func TestNormalizeProvider(t *testing.T) {
	cases := map[string]string{
		"openai": "openai", "aws.bedrock": "bedrock", "gcp.vertex_ai": "vertex_ai", "gcp.gemini": "gemini",
		"az.ai.openai": "azure", "azure.ai.inference": "azure_ai", "Anthropic": "anthropic", "openai.chat": "openai",
		"anthropic.messages": "anthropic", "google.vertex.chat": "vertex_ai", "mistral_ai": "mistral", "x_ai": "xai",
		"ibm.watsonx.ai": "watsonx", "Sim": "sim", "": "",
	}
	for in, want := range cases {
		if got := NormalizeProvider(in); got != want {
			t.Errorf("NormalizeProvider(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	table := mustBuild(t, fullLayer(t), embeddedLayer(t))
	for _, c := range [][2]string{
		{"gpt-5.4-mini", "openai"},                          // exact
		{"gpt-4o-mini", "azure.ai.openai"},                  // exact, qualified key considered
		{"gpt-5.4-mini-2026-09-30", "openai"},               // dated, cached
		{"us.anthropic.claude-haiku-4-5-20251001-v1:0", ""}, // bedrock, cached
		{"no-such-model", "openai"},                         // miss, cached
		{"GPT-4O", "OpenAI"},                                // unknown provider spelling, cached
	} {
		table.Lookup(c[0], c[1]) // warm the cache
		if n := testing.AllocsPerRun(200, func() { table.Lookup(c[0], c[1]) }); n != 0 {
			t.Errorf("Lookup(%q, %q) allocates %v times", c[0], c[1], n)
		}
	}
}

func TestLookupCacheIsBounded(t *testing.T) {
	table := mustBuild(t, embeddedLayer(t))
	const n = defaultCacheCapacity + 500
	for i := range n {
		table.Lookup(fmt.Sprintf("unknown-%d", i), "")
	}
	st := table.CacheStats()
	if st.Capacity != defaultCacheCapacity || st.Entries > st.Capacity || st.Evictions < n-defaultCacheCapacity {
		t.Fatalf("cache stats %+v after %d distinct misses", st, n)
	}
	if st.Entries+int(st.Evictions) != n {
		t.Fatalf("entries %d + evictions %d != %d", st.Entries, st.Evictions, n)
	}
	// Evicted names resolve again, correctly.
	if e, ok := table.Lookup("gpt-4o-2099-01-01", ""); !ok || e.Model != "gpt-4o" {
		t.Fatalf("after eviction: %v", e)
	}
}

func TestLookupConcurrent(t *testing.T) {
	table := mustBuild(t, embeddedLayer(t))
	names := []string{"gpt-4o", "gpt-5.4-mini-2026-09-30", "openai/gpt-4.1", "nope", "us.anthropic.claude-opus-4-5-20251101-v1:0"}
	want := make([]*Entry, len(names))
	for i, n := range names {
		want[i] = table.Explain(n, "").Entry
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := (i + g) % len(names)
				if e, _ := table.Lookup(names[k], ""); e != want[k] {
					t.Errorf("Lookup(%q) = %v, want %v", names[k], e, want[k])
					return
				}
				if i%10 == 0 {
					table.Lookup(fmt.Sprintf("churn-%d-%d", g, i), "") // force inserts and evictions
				}
			}
		})
	}
	wg.Wait()
}

func TestLookupLongNames(t *testing.T) {
	l, err := ParseYAML([]byte("fallback:\n  openai: {input_per_million: 1, output_per_million: 2}\n"), "fb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	table := mustBuild(t, embeddedLayer(t), l)
	long := strings.Repeat("a/", 100_000) + "gpt-4o"
	if e, ok := table.Lookup(long, ""); ok {
		t.Fatalf("a %d-byte name matched %q", len(long), e.Model)
	}
	if e, ok := table.Lookup(long, "openai"); !ok || !e.Fallback {
		t.Fatalf("long name with a fallback provider: %v", e)
	}
	dots := strings.Repeat(".", 100_000)
	if e, ok := table.Lookup("gpt-4o", dots); !ok || e.Model != "gpt-4o" {
		t.Fatalf("long provider: %v", e)
	}
	if st := table.CacheStats(); st.Entries != 0 {
		t.Fatalf("long names cached: %+v", st)
	}
}

func TestTableAccessors(t *testing.T) {
	data := `{
  "Mixed-Case": {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6},
  "mixed-case": {"input_cost_per_token": 2e-6, "output_cost_per_token": 2e-6},
  "MIXED-case": {"input_cost_per_token": 3e-6, "output_cost_per_token": 3e-6}
}`
	l, err := ParseLiteLLM([]byte(data), "m.json", "m")
	if err != nil {
		t.Fatal(err)
	}
	y, err := ParseYAML([]byte("models:\n  z: {input_per_million: 1, output_per_million: 1, aliases: [zz]}\nfallback:\n  gcp.vertex_ai: {input_per_million: 1, output_per_million: 1}\n"), "y.yaml")
	if err != nil {
		t.Fatal(err)
	}
	table := mustBuild(t, l, y)
	if table.Len() != 5 { // three models, z and its alias
		t.Fatalf("Len = %d", table.Len())
	}
	var names []string
	for _, e := range table.Entries() {
		names = append(names, e.Model)
	}
	if strings.Join(names, ",") != "MIXED-case,Mixed-Case,mixed-case,z" {
		t.Fatalf("Entries = %v", names)
	}
	// Keys folding to the same name: the one already in lower case wins.
	if m := table.Explain("MiXeD-CaSe", ""); m.Key != "mixed-case" {
		t.Fatalf("case-insensitive tie: %+v", m)
	}
	if e, ok := table.Fallback("vertex_ai"); !ok || e.Provider != "gcp.vertex_ai" || !e.Fallback {
		t.Fatalf("Fallback = %+v", e)
	}
	if _, ok := table.Fallback("openai"); ok {
		t.Fatal("openai has no fallback")
	}
}

func TestParseServiceTier(t *testing.T) {
	cases := map[string]ServiceTier{
		"default": TierStandard, "auto": TierStandard, "scale": TierStandard, "": TierStandard,
		"batch": TierBatch, "batches": TierBatch, "flex": TierFlex, "priority": TierPriority,
	}
	for in, want := range cases {
		if got := ParseServiceTier(in); got != want {
			t.Errorf("ParseServiceTier(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestSeparateBillingNeverDirectPrice: every entry the upstream map lists without token prices
// under a subscription, reseller or provisioned-throughput route stays unpriced, under its own name
// and with a snapshot date appended, and names the reason; so do unlisted models under those routes.
func TestSeparateBillingNeverDirectPrice(t *testing.T) {
	def := embeddedLayer(t)
	table := mustBuild(t, def)
	n := 0
	for _, s := range def.Skips {
		m := s.Model
		if !strings.HasPrefix(m, "github_copilot/") && !strings.HasPrefix(m, "chatgpt/") &&
			!strings.HasPrefix(m, "perplexity/") && !strings.HasPrefix(m, "snowflake/") && !strings.Contains(m, "-commitment/") {
			continue
		}
		n++
		for _, name := range []string{m, m + "-2026-01-01", strings.ToUpper(m[:1]) + m[1:]} {
			if e, ok := table.Lookup(name, ""); ok {
				t.Errorf("%s priced as %s", name, e.Model)
			}
		}
		if x := table.Explain(m, ""); x.Unpriced != s.Reason || !strings.Contains(x.Reason, "without token prices") {
			t.Errorf("%s: %+v", m, x)
		}
	}
	if n < 43+3+20 {
		t.Fatalf("only %d such entries in the upstream map", n)
	}
	for _, name := range []string{"github_copilot/gpt-5.4-mini", "chatgpt/gpt-5.4-mini", "perplexity/openai/gpt-5.4-mini",
		"snowflake/gpt-5.4-mini", "bedrock/eu-west-1/1-month-commitment/gpt-5.4-mini", "bedrock/*/6-month-commitment/gpt-5.4-mini"} {
		if e, ok := table.Lookup(name, "openai"); ok {
			t.Errorf("%s priced as %s", name, e.Model)
		}
	}
	// The direct API under the same names still is priced.
	if _, ok := table.Lookup("openai/gpt-5.4-mini", ""); !ok {
		t.Error("openai/gpt-5.4-mini unpriced")
	}
}

// TestSeparateBillingSkipsProviderFallback: a subscription model is not priced at the span
// provider's fallback price; a fallback for the subscription route itself applies.
func TestSeparateBillingSkipsProviderFallback(t *testing.T) {
	user, err := ParseYAML([]byte("fallback:\n  openai: {input_per_million: 5, output_per_million: 15}\n"), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	table := mustBuild(t, embeddedLayer(t), user)
	if e, ok := table.Lookup("chatgpt/brand-new", "openai"); ok {
		t.Errorf("chatgpt/brand-new priced at %s", e.Model)
	}
	if h := table.LookupHit("brand-new", "openai"); h.Entry == nil || h.Kind != MatchFallback {
		t.Errorf("brand-new: %+v", h)
	}
	sub, err := ParseYAML([]byte("fallback:\n  chatgpt: {input_per_million: 0, output_per_million: 0}\n"), "s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if h := mustBuild(t, embeddedLayer(t), user, sub).LookupHit("chatgpt/brand-new", "openai"); h.Entry == nil || h.Entry.Provider != "chatgpt" {
		t.Errorf("chatgpt fallback not used: %+v", h)
	}
}

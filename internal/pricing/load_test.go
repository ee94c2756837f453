package pricing

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/internal/boundedfile"
	"github.com/agentcost/agentcost/internal/money"
)

// pricedCount counts, independently of the loader, the entries with both token prices, or with a
// per-second, per-pixel or per-character price and no token price at all.
func pricedCount(tb testing.TB, data []byte) (priced, skipped int) {
	for k, v := range rawPrices(tb, data) {
		_, in := v["input_cost_per_token"].(json.Number)
		_, out := v["output_cost_per_token"].(json.Number)
		if in && v["mode"] == "embedding" {
			out = true // an embedding priced by its input alone
		}
		if tiers, ok := v["tiered_pricing"].([]any); ok && len(tiers) > 0 {
			// Priced per token by prompt range (dashscope, volcengine), not per query by result count.
			tokenTiers := true
			for _, t := range tiers {
				m, _ := t.(map[string]any)
				_, tin := m["input_cost_per_token"].(json.Number)
				_, tout := m["output_cost_per_token"].(json.Number)
				_, rng := m["range"]
				tokenTiers = tokenTiers && tin && tout && rng
			}
			in, out = in || tokenTiers, out || tokenTiers
		}
		media := false // priced per second, pixel or character only (whisper-1, tts-1)
		for _, f := range []string{"input_cost_per_second", "output_cost_per_second", "input_cost_per_pixel",
			"output_cost_per_pixel", "input_cost_per_character", "output_cost_per_character"} {
			_, isNum := v[f].(json.Number)
			media = media || isNum
		}
		if (in && out || media && !in && !out) && k != "sample_spec" {
			priced++
		} else {
			skipped++
		}
	}
	return priced, skipped
}

func TestLoadFullLiteLLMFile(t *testing.T) {
	data := fullJSON(t)
	l := fullLayer(t)
	priced, skipped := pricedCount(t, data)
	if len(l.Entries) != priced || l.Skipped != skipped || len(l.SkippedModels) != skipped {
		t.Fatalf("loaded %d, skipped %d; want %d, %d", len(l.Entries), l.Skipped, priced, skipped)
	}
	if priced < 1400 {
		t.Fatalf("only %d priced entries in the full file", priced)
	}
	raw := rawPrices(t, data)
	for _, e := range l.Entries {
		if !e.HasTokenPrices() { // priced per second, pixel or character: TestCostGoldenEveryUpstreamEntry
			continue
		}
		want, err := money.RateFromPerToken(string(raw[e.Model]["input_cost_per_token"].(json.Number)))
		if err != nil || e.Standard.Input != want {
			t.Fatalf("%s: input rate %d, want %d (%v)", e.Model, e.Standard.Input, want, err)
		}
		if p, _ := raw[e.Model]["litellm_provider"].(string); e.Provider != p {
			t.Fatalf("%s: provider %q, want %q", e.Model, e.Provider, p)
		}
		if e.Source != "litellm-2025-09" {
			t.Fatalf("%s: source %q", e.Model, e.Source)
		}
	}
}

func TestDefaultLayer(t *testing.T) {
	l := embeddedLayer(t)
	shared, err := os.ReadFile("data/litellm-model-prices-2026-07-18.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(shared) != string(defaultJSON) {
		t.Fatal("embedded data differs from data/litellm-model-prices-2026-07-18.json")
	}
	if _, err := os.Stat("data/litellm-model-prices-2026-07-18.LICENSE"); err != nil {
		t.Fatalf("licence beside the embedded data: %v", err)
	}
	priced, skipped := pricedCount(t, defaultJSON)
	if len(l.Entries) != priced || l.Skipped != skipped {
		t.Fatalf("loaded %d, skipped %d; want %d, %d", len(l.Entries), l.Skipped, priced, skipped)
	}
	tb, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	e, ok := tb.Lookup("gpt-5.4-mini", "openai")
	if !ok || e.Source != "litellm-2026-07-18" {
		t.Fatalf("gpt-5.4-mini: %+v %v", e, ok)
	}
	// The parsed tiers of an entry with both 272k columns and service columns.
	e, _ = tb.Lookup("gpt-5.4", "")
	if len(e.Tiers) != 1 || e.Tiers[0].AboveTokens != 272_000 || !e.Tiers[0].Rates.Has(HasInput|HasOutput|HasCacheRead) {
		t.Fatalf("gpt-5.4 tiers: %+v", e.Tiers)
	}
	if !e.Service[TierFlex].Has(HasInput|HasOutput|HasCacheRead) || !e.Service[TierBatch].Has(HasInput|HasOutput) {
		t.Fatalf("gpt-5.4 service columns: %+v", e.Service)
	}
}

func TestParsePriceField(t *testing.T) {
	cases := []struct {
		in   string
		want priceField
		ok   bool
	}{
		{"input_cost_per_token", priceField{rate: HasInput}, true},
		{"cache_creation_input_token_cost", priceField{rate: HasCacheWrite}, true},
		{"output_cost_per_reasoning_token", priceField{rate: HasReasoning}, true},
		{"output_cost_per_token_batches", priceField{rate: HasOutput, tier: TierBatch}, true},
		{"cache_read_input_token_cost_flex", priceField{rate: HasCacheRead, tier: TierFlex}, true},
		{"input_cost_per_token_above_200k_tokens", priceField{rate: HasInput, above: 200_000}, true},
		{"output_cost_per_token_above_272k_tokens", priceField{rate: HasOutput, above: 272_000}, true},
		{"input_cost_per_token_above_128000_tokens", priceField{rate: HasInput, above: 128_000}, true},
		{"input_cost_per_token_above_200k_tokens_priority", priceField{rate: HasInput, above: 200_000, tier: TierPriority}, true},
		{"input_cost_per_token_priority_above_200k_tokens", priceField{rate: HasInput, above: 200_000, tier: TierPriority}, true},
		{"cache_creation_input_token_cost_above_1hr", priceField{rate: HasCacheWrite1h}, true},
		{"cache_creation_input_token_cost_above_1hr_above_200k_tokens", priceField{rate: HasCacheWrite1h, above: 200_000}, true},
		{"cache_creation_input_token_cost_above_2hr", priceField{}, false},
		{"input_cost_per_token_batch_requests", priceField{}, false},
		{"input_cost_per_audio_token", priceField{rate: HasAudioInput}, true},
		{"input_cost_per_audio_token_priority", priceField{rate: HasAudioInput, tier: TierPriority}, true},
		{"output_cost_per_audio_token", priceField{rate: HasAudioOutput}, true},
		{"input_cost_per_image_token", priceField{rate: HasImageInput}, true},
		{"output_cost_per_image_token", priceField{}, false},
		{"input_cost_per_audio_per_second", priceField{}, false},
		{"input_cost_per_token_flex_flex", priceField{}, false},
		{"input_cost_per_token_above_0k_tokens", priceField{}, false},
	}
	for _, c := range cases {
		got, ok := parsePriceField(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("parsePriceField(%q) = %+v, %v; want %+v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestLiteLLMRejectsBadFiles(t *testing.T) {
	cases := []badFile{
		{"syntax error", "{\n  \"a\": {\n    \"input_cost_per_token\": 1e-6,,\n  }\n}", 3, "a", ""},
		{"price is text", "{\n\"a\": {\"input_cost_per_token\": 1e-6,\n \"output_cost_per_token\": \"cheap\"}}", 3, "a", "output_cost_per_token"},
		{"negative price", "{\"a\": {\n\"input_cost_per_token\": -1e-6}}", 2, "a", "input_cost_per_token"},
		{"price is an object", "{\"a\": {\"input_cost_per_token\": 1e-6,\n\n\"cache_read_input_token_cost\": {\"x\": 1}}}", 3, "a", "cache_read_input_token_cost"},
		{"price out of range", "{\"a\": {\"input_cost_per_token\": 1e300}}", 1, "a", "input_cost_per_token"},
		{"duplicate model", "{\"a\": {},\n\"b\": {},\n\"a\": {}}", 3, "a", ""},
		{"duplicate field", "{\"a\": {\"mode\": \"chat\",\n\"mode\": \"chat\"}}", 2, "a", "mode"},
		{"provider not a string", "{\"a\": {\n\"litellm_provider\": 7}}", 2, "a", "litellm_provider"},
		{"model not an object", "{\"a\": {},\n\"b\": 3}", 2, "b", ""},
		{"top level array", "[1, 2]", 1, "", ""},
		{"empty model name", "{\"a\": {},\n\" \": {}}", 2, "", ""},
		{"trailing data", "{\"a\": {}}\n{}", 2, "", ""},
		{"truncated", "{\"a\": {\"mode\": \"chat\"", 1, "a", ""},
		{"empty", "", 1, "", ""},
		// A bare NaN is reported on its own line, not at the start of the entry.
		{"bare NaN", "{\n \"a\": {\n  \"input_cost_per_token\": 1e-6,\n  \"output_cost_per_token\": 1e-6\n },\n \"b\": {\n  \"mode\": \"chat\",\n  \"x\": 1,\n  \"input_cost_per_token\": NaN\n }\n}", 9, "b", "input_cost_per_token"},
		{"negative zero", "{\"a\": {\"input_cost_per_token\": 1e-6,\n\"output_cost_per_token\": -0.0}}", 2, "a", "output_cost_per_token"},
		{"below representable", "{\"a\": {\"input_cost_per_token\": 1e-6,\n\"output_cost_per_token\": 1e-308}}", 2, "a", "output_cost_per_token"},
		{"below representable, text", "{\"a\": {\n\"input_cost_per_token\": \"0.0000000000000001\", \"output_cost_per_token\": 1e-6}}", 2, "a", "input_cost_per_token"},
		{"absurd price", "{\"a\": {\"input_cost_per_token\": 1e-6,\n\"output_cost_per_token\": 1000}}", 2, "a", "output_cost_per_token"},
		{"absurd tier price", "{\"a\": {\"input_cost_per_token\": 1e-6, \"output_cost_per_token\": 1e-6,\n\n\"input_cost_per_token_above_200k_tokens\": 2}}", 3, "a", "input_cost_per_token_above_200k_tokens"},
		{"override not a bool", "{\"a\": {\n\"agentcost_allow_high_price\": \"yes\"}}", 2, "a", "agentcost_allow_high_price"},
	}
	checkBadFiles(t, "bad.json", func(data []byte) (*Layer, error) { return ParseLiteLLM(data, "bad.json", "bad") }, cases)
}

// badFile is a price file a loader must reject, and where its error must point.
type badFile struct {
	name  string
	data  string
	line  int
	model string
	field string
}

// checkBadFiles parses each case as file and checks that the error is a *FileError naming the
// file, line, model and field.
func checkBadFiles(t *testing.T, file string, parse func([]byte) (*Layer, error), cases []badFile) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := parse([]byte(c.data))
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("got layer %v, err %v; want a *FileError", l, err)
			}
			if fe.File != file || fe.Line != c.line || fe.Model != c.model || fe.Field != c.field {
				t.Errorf("error %q: file %q line %d model %q field %q; want line %d model %q field %q",
					err, fe.File, fe.Line, fe.Model, fe.Field, c.line, c.model, c.field)
			}
			if !strings.HasPrefix(err.Error(), file+":") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLiteLLMSkipsAndTolerates(t *testing.T) {
	data := `{
  "sample_spec": {"input_cost_per_token": "see docs", "litellm_provider": "one of ..."},
  "img": {"input_cost_per_image": 0.04, "litellm_provider": "openai", "mode": "image_generation"},
  "half": {"input_cost_per_token": 1e-6},
  "nulls": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "cache_read_input_token_cost": null,
            "litellm_provider": null},
  "text": {"input_cost_per_token": "3e-7", "output_cost_per_token": 6e-7,
           "search_context_cost_per_query": {"low": 0.01}, "supported_regions": ["global"],
           "cache_creation_input_token_cost_above_1hr": 6e-6},
  "hit": {"input_cost_per_token": 2.8e-7, "output_cost_per_token": 4.2e-7, "input_cost_per_token_cache_hit": 2.8e-8}
}`
	l, err := ParseLiteLLM([]byte(data), "x.json", "x")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(l.SkippedModels)
	if l.Skipped != 3 || strings.Join(l.SkippedModels, ",") != "half,img,sample_spec" {
		t.Fatalf("skipped %d %v", l.Skipped, l.SkippedModels)
	}
	byName := map[string]*Entry{}
	for _, e := range l.Entries {
		byName[e.Model] = e
	}
	if e := byName["nulls"]; e == nil || e.Standard.Has(HasCacheRead) || e.Provider != "" {
		t.Errorf("nulls: %+v", e)
	}
	if e := byName["text"]; e == nil || e.Standard.Input != 300_000_000 || e.Standard.Output != 600_000_000 || e.Standard.Has(HasCacheWrite) {
		t.Errorf("text: %+v", e)
	}
	if e := byName["hit"]; e == nil || !e.Standard.Has(HasCacheRead) || e.Standard.CacheRead != 28_000_000 {
		t.Errorf("cache_hit: %+v", e)
	}
}

const teamYAML = `source: team-prices            # optional label
models:
  sim-llm: {provider: sim, input_per_million: 15, output_per_million: 15, cache_read_per_million: 1.5, aliases: [sim]}
  my-finetune:
    provider: openai
    input_per_million: 3
    output_per_million: 12
    above_tokens: 200000
    above_input_per_million: 6
    above_output_per_million: 18
    batch: {input_per_million: 1.5, output_per_million: 6}
    priority: {input_per_million: "6", above_input_per_million: 12}
  gpt-4o: {provider: openai, input_per_million: 2, output_per_million: 8}
aliases: {my-deployment: gpt-4o, legacy: openai/gpt-5.4-mini, shouty: GPT-4.1-MINI}
fallback: {openai: {input_per_million: 5, output_per_million: 15}, aws.bedrock: {input_per_million: 4, output_per_million: 20}}
`

func perMillion(t *testing.T, s string) money.Rate {
	t.Helper()
	r, err := money.RateFromPerMillion(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestYAMLFormat(t *testing.T) {
	l, err := ParseYAML([]byte(teamYAML), "/etc/agentcost/team.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if l.Source != "team-prices" || len(l.Entries) != 3 || len(l.Aliases) != 4 || len(l.Fallbacks) != 2 {
		t.Fatalf("layer: %+v", l)
	}
	ft := l.Entries[1]
	want := Entry{
		Model: "my-finetune", Provider: "openai", Source: "team-prices",
		Standard: Rates{Input: perMillion(t, "3"), Output: perMillion(t, "12"), Set: HasInput | HasOutput},
		Tiers: []Tier{{AboveTokens: 200_000,
			Rates: Rates{Input: perMillion(t, "6"), Output: perMillion(t, "18"), Set: HasInput | HasOutput}}},
	}
	want.Service[TierBatch] = Rates{Input: perMillion(t, "1.5"), Output: perMillion(t, "6"), Set: HasInput | HasOutput}
	want.Service[TierPriority] = Rates{Input: perMillion(t, "6"), Set: HasInput}
	want.Tiers[0].Service[TierPriority] = Rates{Input: perMillion(t, "12"), Set: HasInput}
	if ft.Model != want.Model || ft.Provider != want.Provider || ft.Source != want.Source || ft.Standard != want.Standard ||
		ft.Service != want.Service || len(ft.Tiers) != 1 || ft.Tiers[0] != want.Tiers[0] {
		t.Fatalf("my-finetune\n got %+v\nwant %+v", *ft, want)
	}
	// $3 per million is 3e-6 dollars per token: 3,000,000,000 femto-dollars.
	if ft.Standard.Input != 3_000_000_000 {
		t.Fatalf("input rate %d", ft.Standard.Input)
	}
	// Priority above the threshold: 250k prompt tokens at $12/M is $3; 10 output tokens fall back
	// to the tiered standard output, $18/M.
	c, err := ft.Cost(Usage{InputTokens: 250_000, OutputTokens: 10, Tier: TierPriority})
	if err != nil {
		t.Fatal(err)
	}
	if c.Input != 3*money.NanosPerUSD || c.Output != 180_000 {
		t.Fatalf("priority above: %+v", c)
	}

	table := mustBuild(t, fullLayer(t), embeddedLayer(t), l)
	sim, ok := table.Lookup("sim", "")
	if !ok || sim.Model != "sim-llm" || sim.Standard.CacheRead != perMillion(t, "1.5") {
		t.Fatalf("alias sim: %+v", sim)
	}
	m := table.Explain("my-deployment", "")
	if m.Entry == nil || m.Entry.Model != "gpt-4o" || m.Entry.Source != "team-prices" || !strings.Contains(m.Reason, "alias") {
		t.Fatalf("my-deployment: %+v", m)
	}
	if m := table.Explain("legacy", ""); m.Entry == nil || m.Entry.Model != "gpt-5.4-mini" {
		t.Fatalf("legacy alias through a provider prefix: %+v", m)
	}
	if m := table.Explain("shouty", ""); m.Entry == nil || m.Entry.Model != "gpt-4.1-mini" || m.Key != "shouty" {
		t.Fatalf("alias with a case-insensitive target: %+v", m)
	}
	if m := table.Explain("SHOUTY", ""); m.Entry == nil || m.Entry.Model != "gpt-4.1-mini" ||
		!slices.Equal(m.Rules, []string{RuleCaseInsensitive, RuleAlias}) {
		t.Fatalf("alias matched case-insensitively: %+v", m)
	}
	fb, ok := table.Lookup("gpt-9-turbo", "openai")
	if !ok || !fb.Fallback || fb.Standard.Input != perMillion(t, "5") {
		t.Fatalf("openai fallback: %+v %v", fb, ok)
	}
	if fb, ok := table.Lookup("titan-next", "bedrock"); !ok || fb.Standard.Output != perMillion(t, "20") {
		t.Fatalf("bedrock fallback under its semconv name: %+v %v", fb, ok)
	}
	if fb, ok := table.Lookup("openai/gpt-9", ""); !ok || !fb.Fallback {
		t.Fatalf("fallback from the model's provider prefix: %+v %v", fb, ok)
	}
	if e, ok := table.Lookup("gpt-9-turbo", "anthropic"); ok {
		t.Fatalf("anthropic has no fallback, got %+v", e)
	}
}

func TestUserLayerWins(t *testing.T) {
	def := embeddedLayer(t)
	user, err := ParseYAML([]byte("models:\n  gpt-4o: {input_per_million: 1, output_per_million: 2}\n"), "mine.yaml")
	if err != nil {
		t.Fatal(err)
	}
	table := mustBuild(t, def, user)
	e, ok := table.Lookup("gpt-4o", "openai")
	if !ok || e.Source != "mine.yaml" || e.Standard.Input != perMillion(t, "1") {
		t.Fatalf("gpt-4o: %+v", e)
	}
	// Matching rules reach the user's entry too.
	if e, _ := table.Lookup("openai/GPT-4o", ""); e.Source != "mine.yaml" {
		t.Fatalf("openai/GPT-4o: %+v", e)
	}
	// Other models still come from the default.
	if e, _ := table.Lookup("gpt-4o-mini", ""); e.Source != DefaultSource {
		t.Fatalf("gpt-4o-mini: %+v", e)
	}
	st := table.Layers()
	if len(st) != 2 || st[0].Source != DefaultSource || st[0].Loaded != len(def.Entries) || st[0].Skipped != def.Skipped ||
		st[0].Shadowed != 1 || st[1].Loaded != 1 || st[1].Shadowed != 0 {
		t.Fatalf("layer stats: %+v", st)
	}
	// Order matters: the default over the user file wins back.
	if e, _ := mustBuild(t, user, def).Lookup("gpt-4o", ""); e.Source != DefaultSource {
		t.Fatalf("reversed: %+v", e)
	}
}

func TestYAMLRejectsBadFiles(t *testing.T) {
	cases := []badFile{
		{"unknown top-level key", "models: {}\nprices: {}\n", 2, "", "prices"},
		{"unknown model key", "models:\n  a:\n    input_per_million: 1\n    output_per_million: 1\n    input_per_milion: 2\n", 5, "a", "input_per_milion"},
		{"unknown service key", "models:\n  a:\n    input_per_million: 1\n    output_per_million: 1\n    batch: {input: 2}\n", 5, "a", "batch.input"},
		{"bad price", "models:\n  a: {input_per_million: cheap, output_per_million: 1}\n", 2, "a", "input_per_million"},
		{"negative price", "models:\n  a:\n    input_per_million: 1\n    output_per_million: -3\n", 4, "a", "output_per_million"},
		{"null price", "models:\n  a:\n    input_per_million:\n    output_per_million: 1\n", 3, "a", "input_per_million"},
		{"missing output", "models:\n  a:\n    input_per_million: 1\n", 3, "a", "output_per_million"},
		{"duplicate model", "models:\n  a: {input_per_million: 1, output_per_million: 1}\n  a: {input_per_million: 1, output_per_million: 1}\n", 3, "", "models.a"},
		{"alias equals a model", "models:\n  a: {input_per_million: 1, output_per_million: 1}\n  b: {input_per_million: 1, output_per_million: 1, aliases: [a]}\n", 3, "a", "aliases"},
		{"top-level alias equals a model", "models:\n  a: {input_per_million: 1, output_per_million: 1}\naliases:\n  a: gpt-4o\n", 4, "a", "aliases"},
		{"above prices without threshold", "models:\n  a:\n    input_per_million: 1\n    output_per_million: 1\n    above_input_per_million: 2\n", 5, "a", "above_tokens"},
		{"threshold without above prices", "models:\n  a:\n    input_per_million: 1\n    output_per_million: 1\n    above_tokens: 1000\n", 3, "a", "above_tokens"},
		{"bad threshold", "models:\n  a:\n    input_per_million: 1\n    output_per_million: 1\n    above_tokens: lots\n", 5, "a", "above_tokens"},
		{"aliases not a list", "models:\n  a: {input_per_million: 1, output_per_million: 1, aliases: b}\n", 2, "a", "aliases"},
		{"models not a mapping", "models: [a, b]\n", 1, "", "models"},
		{"syntax error", "models:\n  a: {input_per_million: 1, output_per_million: 1}\n\tb: 2\n", 3, "", ""},
		{"two documents", "models: {}\n---\nmodels: {}\n", 2, "", ""},
		{"empty", "", 1, "", ""},
		{"scalar document", "just text\n", 1, "", ""},
		{"fallback without output", "fallback:\n  openai: {input_per_million: 1}\n", 2, "openai", "output_per_million"},
		{"negative zero", "models:\n  a:\n    input_per_million: -0.0\n    output_per_million: 1\n", 3, "a", "input_per_million"},
		{"below representable", "models:\n  a:\n    input_per_million: 1\n    output_per_million: 1e-308\n", 4, "a", "output_per_million"},
		{"absurd price", "models:\n  a:\n    input_per_million: 1\n    output_per_million: 1000000001\n", 4, "a", "output_per_million"},
		{"absurd batch price", "models:\n  a:\n    input_per_million: 1\n    output_per_million: 1\n    batch:\n      input_per_million: 2e9\n", 6, "a", "batch.input_per_million"},
		{"override not a bool", "models:\n  a:\n    input_per_million: 1\n    output_per_million: 1\n    allow_high_price: maybe\n", 5, "a", "allow_high_price"},
	}
	checkBadFiles(t, "bad.yaml", func(data []byte) (*Layer, error) { return ParseYAML(data, "bad.yaml") }, cases)
}

func TestBuildRejectsDanglingAlias(t *testing.T) {
	l, err := ParseYAML([]byte("aliases:\n  mine: gpt-4o\n  other: no-such-model\n"), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(embeddedLayer(t), l)
	var fe *FileError
	if !errors.As(err, &fe) || fe.File != "a.yaml" || fe.Line != 3 || fe.Model != "other" {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	jsonPath := write("prices.json", `{"m": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}`)
	yamlPath := write("prices.yml", "models:\n  y: {input_per_million: 1, output_per_million: 2}\n")
	sniffJSON := write("prices.txt", `  {"s": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}`)
	badPath := write("bad.yaml", "models:\n  y: {input_per_million: 1}\n")
	for path, model := range map[string]string{jsonPath: "m", yamlPath: "y", sniffJSON: "s"} {
		l, err := LoadFile(path)
		if err != nil || len(l.Entries) != 1 || l.Entries[0].Model != model || l.Source != filepath.Base(path) {
			t.Errorf("LoadFile(%s) = %+v, %v", path, l, err)
		}
	}
	if _, err := LoadFile(badPath); err == nil || !strings.Contains(err.Error(), badPath) {
		t.Errorf("bad file: %v", err)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
	table, err := LoadWithDefault(jsonPath, yamlPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := table.Lookup("y", ""); !ok {
		t.Error("y not in the table")
	}
	if e, _ := table.Lookup("gpt-4o", ""); e == nil || e.Source != DefaultSource {
		t.Errorf("default missing: %+v", e)
	}
}

// TestLiteLLMErrorLineInFullFile corrupts one price deep in the full file and checks the error
// names the line the test finds by counting newlines itself.
func TestLiteLLMErrorLineInFullFile(t *testing.T) {
	data := string(fullJSON(t))
	const model = `"gpt-4o-mini-2024-07-18"`
	start := strings.Index(data, model+": {")
	if start < 0 {
		t.Fatal("model not in the file")
	}
	field := `"output_cost_per_token": `
	at := start + strings.Index(data[start:], field)
	end := at + len(field) + strings.IndexAny(data[at+len(field):], ",\n}")
	bad := data[:at] + field + `"6e-07x"` + data[end:]
	wantLine := strings.Count(bad[:at], "\n") + 1

	_, err := ParseLiteLLM([]byte(bad), "full.json", "full")
	var fe *FileError
	if !errors.As(err, &fe) || fe.Line != wantLine || fe.Model != "gpt-4o-mini-2024-07-18" || fe.Field != "output_cost_per_token" {
		t.Fatalf("err = %v; want line %d", err, wantLine)
	}
	// A syntax error in the same place.
	broken := data[:at] + field + "}" + data[end:]
	_, err = ParseLiteLLM([]byte(broken), "full.json", "full")
	if !errors.As(err, &fe) || fe.Line != wantLine {
		t.Fatalf("syntax err = %v; want line %d", err, wantLine)
	}
}

// TestDocExampleParses keeps the YAML example in the package documentation valid.
func TestDocExampleParses(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var yamlLines []string
	in := false
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "//\tsource: ") {
			in = true
		}
		if in && !strings.HasPrefix(line, "//\t") {
			break
		}
		if in {
			yamlLines = append(yamlLines, strings.TrimPrefix(line, "//\t"))
		}
	}
	if len(yamlLines) < 10 {
		t.Fatalf("example not found (%d lines)", len(yamlLines))
	}
	l, err := ParseYAML([]byte(strings.Join(yamlLines, "\n")), "doc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(embeddedLayer(t), l); err != nil {
		t.Fatal(err)
	}
	if l.Source != "team-prices" || len(l.Entries) != 3 || len(l.Aliases) != 2 || len(l.Fallbacks) != 1 ||
		l.Entries[2].Standard.Input != 2*MaxRate {
		t.Fatalf("doc example: %+v", l)
	}
}

// TestPriceSanityBound: a price above MaxRate is rejected with a message naming the bound and the
// per-entry override, and accepted, exactly, when the entry sets the override.
func TestPriceSanityBound(t *testing.T) {
	_, err := ParseLiteLLM([]byte(`{"a": {"input_cost_per_token": 1e-6, "output_cost_per_token": 1000}}`), "f.json", "f")
	if err == nil || !strings.Contains(err.Error(), "$1000 per token is above the sanity bound of $1 per token") ||
		!strings.Contains(err.Error(), AllowHighPriceField) {
		t.Fatalf("err = %v", err)
	}
	l, err := ParseLiteLLM([]byte(`{"a": {"output_cost_per_token": 1000, "input_cost_per_token": 1e-6, "agentcost_allow_high_price": true}}`), "f.json", "f")
	if err != nil || len(l.Entries) != 1 || l.Entries[0].Standard.Output != 1000*MaxRate {
		t.Fatalf("override: %v %+v", err, l)
	}
	// The bound itself is allowed.
	if _, err := ParseLiteLLM([]byte(`{"a": {"input_cost_per_token": 1, "output_cost_per_token": 1}}`), "f.json", "f"); err != nil {
		t.Fatal(err)
	}
	y, err := ParseYAML([]byte("models:\n  a: {input_per_million: 1, output_per_million: 2000000000, allow_high_price: true}\n"), "f.yaml")
	if err != nil || y.Entries[0].Standard.Output != 2000*MaxRate {
		t.Fatalf("yaml override: %v", err)
	}
	_, err = ParseYAML([]byte("models:\n  a: {input_per_million: 1, output_per_million: 2000000000}\n"), "f.yaml")
	if err == nil || !strings.Contains(err.Error(), "allow_high_price: true") {
		t.Fatalf("yaml err = %v", err)
	}
	// A true zero stays a free model.
	if _, err := ParseLiteLLM([]byte(`{"a": {"input_cost_per_token": 0.0, "output_cost_per_token": 0e-5}}`), "f.json", "f"); err != nil {
		t.Fatal(err)
	}
}

// TestSkipReasons: every skipped entry carries a reason and its line; the upstream map's counts
// by reason add up to its skipped entries.
func TestSkipReasons(t *testing.T) {
	data := `{
  "sample_spec": {"input_cost_per_token": 0},
  "copilot": {"litellm_provider": "github_copilot", "mode": "chat"},
  "img": {"input_cost_per_image": 0.04},
  "half": {"input_cost_per_token": 1e-6},
  "out": {"output_cost_per_token": 1e-6},
  "emb": {"input_cost_per_token": 1e-7, "mode": "embedding"},
  "tier": {"tiered_pricing": [{"input_cost_per_query": 0.005, "max_results_range": [0, 25]}]},
  "commit": {"input_cost_per_video_per_second": 0.01, "output_cost_per_video_per_second": 0.01},
  "tts": {"input_cost_per_character_above_128k_tokens": 1.5e-5},
  "search": {"search_context_cost_per_query": {"low": 0.01}},
  "audio": {"input_cost_per_audio_token": 1e-5}
}`
	l, err := ParseLiteLLM([]byte(data), "x.json", "x")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"sample_spec": SkipDocumentation, "copilot": SkipNoPrices, "img": SkipPerImage,
		"half": SkipInputOnly, "out": SkipOutputOnly, "tier": SkipTieredOnly, "commit": SkipPerSecond,
		"tts": SkipPerCharacter, "search": SkipPerRequest, "audio": SkipAudio}
	if len(l.Skips) != len(want) || len(l.Entries) != 1 || l.Entries[0].Model != "emb" {
		t.Fatalf("skips %+v, entries %d", l.Skips, len(l.Entries))
	}
	for i, s := range l.Skips {
		if want[s.Model] != s.Reason || s.Line != i+2+boolInt(i >= 5) {
			t.Errorf("skip %+v, want reason %q", s, want[s.Model])
		}
	}
	if s := l.Skips[1]; s.Provider != "github_copilot" {
		t.Errorf("provider %q", s.Provider)
	}

	def := embeddedLayer(t)
	n := 0
	for _, c := range SkipsByReason(def.Skips) {
		n += c.Count
	}
	if n != def.Skipped || len(def.Skips) != def.Skipped {
		t.Fatalf("counts by reason add up to %d, skipped %d", n, def.Skipped)
	}
	line := FormatSkips(SkipsByReason(def.Skips))
	if !strings.Contains(line, SkipPerImage+" ") || !strings.Contains(line, SkipPerSecond+" ") {
		t.Errorf("one line: %s", line)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestOversizeFileIsInvalid: a file over the size limit is an invalid file (a *FileError), not an
// I/O error.
func TestOversizeFileIsInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(boundedfile.DefaultLimit + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = LoadFile(path)
	var fe *FileError
	if !errors.As(err, &fe) || fe.File != path || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("err = %v", err)
	}
	// A configured bound: a valid 2-entry file over 100 bytes is refused at 100, loads at its size.
	small := filepath.Join(t.TempDir(), "small.yaml")
	content := "models:\n  m1: {input_per_million: 1, output_per_million: 2}\n  m2: {input_per_million: 1, output_per_million: 2}\n"
	if err := os.WriteFile(small, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLimit(false, 100, small); !errors.As(err, &fe) || !strings.Contains(err.Error(), "limit of 100 bytes") {
		t.Fatalf("LoadLimit(100) = %v, want a *FileError naming the limit", err)
	}
	if _, err := LoadLimit(false, int64(len(content)), small); err != nil {
		t.Fatalf("LoadLimit(its size) = %v", err)
	}
}

// TestEmbeddedProvenance: the embedded file is the upstream file the constants name.
func TestEmbeddedProvenance(t *testing.T) {
	sum := sha256.Sum256(defaultJSON)
	if got := hex.EncodeToString(sum[:]); got != DefaultSHA256 {
		t.Fatalf("embedded sha256 %s, DefaultSHA256 %s", got, DefaultSHA256)
	}
	if !strings.Contains(DefaultUpstream, DefaultCommit) || len(DefaultCommit) != 40 {
		t.Fatalf("upstream %q commit %q", DefaultUpstream, DefaultCommit)
	}
	if _, err := os.Stat(filepath.Join("data", DefaultFile)); err != nil {
		t.Fatal(err)
	}
	if n := len(rawPrices(t, defaultJSON)); n != 2968 {
		t.Fatalf("%d keys, want the upstream map's 2,968", n)
	}
}

// TestRenderEmbeddedGo: the refresh command's generator reproduces embedded.go for the current
// file, so a refresh changes only what it must.
func TestRenderEmbeddedGo(t *testing.T) {
	src, err := os.ReadFile("embedded.go")
	if err != nil {
		t.Fatal(err)
	}
	info := Embedded()
	if err := info.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := RenderEmbeddedGo(info); string(got) != string(src) {
		t.Fatalf("RenderEmbeddedGo differs from embedded.go:\n%s", got)
	}
	if info.Source() != DefaultSource || info.File() != DefaultFile || info.Upstream() != DefaultUpstream ||
		SHA256Hex(EmbeddedData()) != DefaultSHA256 {
		t.Fatalf("info %+v", info)
	}
	for _, bad := range []EmbeddedInfo{{Date: "2026-7-18", Commit: DefaultCommit}, {Date: "2026-07-18", Commit: "00035b69"}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestDiffLayers: added, removed and changed entries by key, rates exact per million tokens.
func TestDiffLayers(t *testing.T) {
	a, err := ParseYAML([]byte("models:\n  x: {input_per_million: 1, output_per_million: 2}\n  y: {input_per_million: 1, output_per_million: 2}\n  gone: {input_per_million: 1, output_per_million: 2}\n"), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseYAML([]byte("models:\n  x: {input_per_million: 1, output_per_million: 2}\n  y: {input_per_million: 1.25, output_per_million: 2, cache_read_per_million: 0.1}\n  new: {input_per_million: 1, output_per_million: 2}\n"), "b.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := DiffLayers(a, b)
	want := LayerDiff{Added: []string{"new"}, Removed: []string{"gone"}, Unchanged: 1, Changed: []PriceChange{
		{Model: "y", Column: "input", Old: "1", New: "1.25"}, {Model: "y", Column: "cache_read", Old: "", New: "0.1"}}}
	if fmt.Sprint(d) != fmt.Sprint(want) {
		t.Fatalf("diff %+v, want %+v", d, want)
	}
}

// TestYAMLReportsEveryEntry: a problem in one entry does not hide the next entry's; each is
// reported with its line, in the one `file:line: field: message` form.
func TestYAMLReportsEveryEntry(t *testing.T) {
	_, err := ParseYAML([]byte(`models:
  a: {input_per_million: 1}
  b: {input_per_million: x, output_per_million: 1}
  c: {input_per_million: 1, output_per_million: 2}
aliases: {d: [a]}
colour: red
tools:
  t: {}
`), "p.yaml")
	want := []string{
		`p.yaml:2: "a".output_per_million: missing`,
		`p.yaml:3: "b".input_per_million: price "x": `,
		`p.yaml:5: "d".aliases: want a string`,
		`p.yaml:6: colour: unknown key (want source, models, aliases, fallback or tools)`,
		`p.yaml:8: tools.t: no price (want per_call_usd and/or per_unit_usd)`,
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok || len(joined.Unwrap()) != len(want) {
		t.Fatalf("got %v, want %d problems", err, len(want))
	}
	for i, w := range want {
		if got := joined.Unwrap()[i].Error(); !strings.HasPrefix(got, w) {
			t.Errorf("problem %d: %q, want %q...", i, got, w)
		}
	}
	var fe *FileError
	if !errors.As(err, &fe) || fe != joined.Unwrap()[0] {
		t.Error("errors.As does not reach the first *FileError")
	}
}

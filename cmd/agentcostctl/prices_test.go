package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/pricing"
)

const testPrices = `source: team-prices
models:
  sim-llm:
    provider: sim
    input_per_million: 3
    output_per_million: 15
    cache_read_per_million: 0.3
    above_tokens: 200000
    above_input_per_million: 6
    batch: {input_per_million: 1.5, output_per_million: 7.5}
  gpt-4o:
    provider: openai
    input_per_million: 2
    output_per_million: 8
`

func TestPricesLookup(t *testing.T) {
	file := writeFile(t, t.TempDir(), "prices.yaml", testPrices)

	t.Run("prefixed, dated model from a price file", func(t *testing.T) {
		code, out, errOut := runCLI(t, "prices", "lookup", "openai/sim-llm-2026-01-15", "--prices", file)
		if code != exitOK {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		for label, want := range map[string]string{
			"matched":        "sim-llm",
			"rules":          pricing.RuleProviderPrefix + ", " + pricing.RuleDatedSnapshot,
			"source":         "team-prices",
			"entry provider": "sim",
		} {
			if got := labelled(t, out, label); got != want {
				t.Errorf("%s: %q, want %q", label, got, want)
			}
		}
		// Rates per 1M tokens as the file gives them; absent ones fall back as Effective says:
		// cache write to input, reasoning to output; the batch column keeps the standard cache read.
		for _, want := range [][]string{
			{"standard", "$3", "$15", "$0.3", "$3", "$15"},
			{"batch", "$1.5", "$7.5", "$0.3", "$1.5", "$7.5"},
			{"above", "200000", "prompt", "tokens", "$6", "$15", "$0.3", "$6", "$15"},
		} {
			if got := lineWith(t, out, want[0]+" "); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("rates row %q, want %q", got, want)
			}
		}
	})

	t.Run("user entries win over the default", func(t *testing.T) {
		code, out, _ := runCLI(t, "prices", "lookup", "gpt-4o", "--prices", file, "-o", "json")
		var res lookupResult
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK {
			t.Fatalf("exit %d, %v", code, err)
		}
		if res.Source != "team-prices" || res.Rates[0].InputPerMillion != "2" || res.Rates[0].OutputPerMillion != "8" {
			t.Errorf("got %+v, want team-prices at $2/$8", res)
		}
	})

	t.Run("default table", func(t *testing.T) {
		table, err := pricing.Default()
		if err != nil {
			t.Fatal(err)
		}
		entry, ok := table.Lookup("gpt-4o", "")
		if !ok {
			t.Fatal("default table has no gpt-4o")
		}
		code, out, _ := runCLI(t, "prices", "lookup", "openai/gpt-4o", "-o", "json")
		var res lookupResult
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK {
			t.Fatalf("exit %d, %v", code, err)
		}
		std := entry.Effective(0, pricing.TierStandard)
		if res.Entry != "gpt-4o" || res.Source != pricing.DefaultSource || len(res.Rules) != 1 ||
			res.Rules[0] != pricing.RuleProviderPrefix || res.Rates[0].InputPerMillion != money.Nanos(std.Input).String() {
			t.Errorf("got %+v, want gpt-4o by provider prefix from %s at input %d femto/token", res, pricing.DefaultSource, std.Input)
		}
	})

	t.Run("unknown model is a finding", func(t *testing.T) {
		code, out, errOut := runCLI(t, "prices", "lookup", "no-such-model-xyz")
		if code != exitFindings || labelled(t, out, "matched") != "no entry" || !strings.Contains(errOut, "agentcost.price.unknown") {
			t.Errorf("exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("bad price file", func(t *testing.T) {
		bad := writeFile(t, t.TempDir(), "bad.yaml", "models:\n  x: {input_per_million: lots, output_per_million: 1}\n")
		code, _, errOut := runCLI(t, "prices", "lookup", "x", "--prices", bad)
		if code != exitFindings || !strings.Contains(errOut, "bad.yaml") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
		code, _, _ = runCLI(t, "prices", "lookup", "x", "--prices", bad+".missing")
		if code != exitIO {
			t.Errorf("missing price file: exit %d, want %d", code, exitIO)
		}
	})
}

func TestPricesLookupMatchKind(t *testing.T) {
	code, out, _ := runCLI(t, "prices", "lookup", "gpt-3.5-turbo-0613", "-o", "json")
	var res lookupResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK {
		t.Fatalf("exit %d, %v", code, err)
	}
	if res.Entry != "gpt-3.5-turbo" || res.Match != "dated_snapshot" {
		t.Errorf("got %+v, want gpt-3.5-turbo by dated_snapshot", res)
	}
	// A subscription route the file lists without token prices is not priced as the direct API.
	code, out, _ = runCLI(t, "prices", "lookup", "github_copilot/gpt-4o", "-o", "json")
	res = lookupResult{}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitFindings || res.Matched || res.Unpriced != pricing.SkipNoPrices {
		t.Errorf("exit %d, %+v", code, res)
	}
}

func TestPricesInfo(t *testing.T) {
	code, out, errOut := runCLI(t, "prices", "info")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for label, want := range map[string]string{
		"source": pricing.DefaultSource,
		"commit": pricing.DefaultCommit,
		"sha256": pricing.DefaultSHA256 + " (verified)",
		"keys":   "2968",
	} {
		if got := labelled(t, out, label); got != want {
			t.Errorf("%s: %q, want %q", label, got, want)
		}
	}
	code, out, _ = runCLI(t, "prices", "info", "-o", "json")
	var res infoResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK {
		t.Fatalf("exit %d, %v", code, err)
	}
	n := 0
	for _, c := range res.Skips {
		n += c.Count
	}
	if !res.Verified || res.Bytes != 1642422 || res.Priced+res.Skipped != res.Keys || n != res.Skipped || res.Priced < 2480 {
		t.Errorf("info %+v", res)
	}
}

func TestPricesLint(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "p.json", `{
  "sample_spec": {"input_cost_per_token": 0},
  "ok": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
  "copilot/x": {"litellm_provider": "github_copilot"},
  "img": {"output_cost_per_image": 0.04, "litellm_provider": "openai"}
}`)
	code, out, errOut := runCLI(t, "prices", "lint", file)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "1 priced, 3 skipped") {
		t.Errorf("summary missing:\n%s", out)
	}
	for _, want := range [][]string{{"4", "copilot/x", "github_copilot", "no", "prices"}, {"5", "img", "openai", "per-image", "prices"}} {
		if got := lineWith(t, out, want[0]+" "); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %q, want %q", got, want)
		}
	}
	// A rate above $1,000 per 1M tokens loads, with a warning (the upstream map has 30 such rates).
	slip := writeFile(t, dir, "slip.json", `{"m": {"input_cost_per_token": 0.135, "output_cost_per_token": 1e-6}}`)
	code, out, _ = runCLI(t, "prices", "lint", slip)
	if code != exitOK || !strings.Contains(out, "warning: 1 rates above $1,000 per 1M tokens") {
		t.Errorf("exit %d\n%s", code, out)
	}
	if got := lineWith(t, out, "m "); strings.Join(got, " ") != "m input $135000" {
		t.Errorf("warning row %q", got)
	}
	code, out, _ = runCLI(t, "prices", "lint", file, "--reason", pricing.SkipPerImage, "-o", "json")
	var res []priceLintResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK || len(res) != 1 || len(res[0].Skipped) != 1 || res[0].Skipped[0].Model != "img" {
		t.Fatalf("exit %d, %v, %+v", code, err, res)
	}

	// An invalid file (an absurd price) is a finding naming file, line and field; so is a file over
	// the size bound (not an I/O error); a missing file is an I/O error.
	bad := writeFile(t, dir, "bad.json", "{\"a\": {\"input_cost_per_token\": 1e-6,\n\"output_cost_per_token\": 1000}}")
	code, out, _ = runCLI(t, "prices", "lint", bad)
	if code != exitFindings || !strings.Contains(out, "bad.json:2: ") || !strings.Contains(out, "sanity bound") {
		t.Errorf("exit %d\n%s", code, out)
	}
	big := filepath.Join(dir, "big.json")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(65<<20 + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if code, _, _ = runCLI(t, "prices", "lint", big); code != exitFindings {
		t.Errorf("oversize file: exit %d, want %d", code, exitFindings)
	}
	if code, _, _ = runCLI(t, "prices", "lookup", "gpt-4o", "--prices", big); code != exitFindings {
		t.Errorf("oversize file in lookup: exit %d, want %d", code, exitFindings)
	}
	if code, _, _ = runCLI(t, "prices", "lint", filepath.Join(dir, "missing.json")); code != exitIO {
		t.Errorf("missing file: exit %d, want %d", code, exitIO)
	}
}

// TestPricesRefresh: a candidate is validated with the loader and diffed against the embedded
// table; --write puts it, its licence and a regenerated embedded.go in the pricing directory and
// removes the previous file.
func TestPricesRefresh(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pricing")
	cur := pricing.Embedded()
	writeFile(t, pkg, "embedded.go", string(pricing.RenderEmbeddedGo(cur)))
	writeFile(t, pkg, filepath.Join("data", cur.File()), "{}")
	writeFile(t, pkg, filepath.Join("data", strings.TrimSuffix(cur.File(), ".json")+".LICENSE"), "MIT")
	lic := writeFile(t, dir, "LICENSE", "MIT licence text")
	// A candidate: the embedded map with one price changed, one entry added and one removed.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(pricing.EmbeddedData(), &raw); err != nil {
		t.Fatal(err)
	}
	raw["gpt-4o"] = json.RawMessage(`{"input_cost_per_token": 3e-06, "output_cost_per_token": 1e-05, "litellm_provider": "openai", "mode": "chat"}`)
	raw["new-model-x"] = json.RawMessage(`{"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}`)
	delete(raw, "gpt-4o-mini")
	data, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	candidate := writeFile(t, dir, "model_prices_and_context_window.json", string(data))
	commit := strings.Repeat("ab", 20)
	args := []string{"prices", "refresh", candidate, "--date", "2026-09-01", "--commit", commit, "--dir", pkg}

	code, out, errOut := runCLI(t, append(args, "-o", "json")...)
	var res refreshResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK {
		t.Fatalf("exit %d, %v\n%s%s", code, err, out, errOut)
	}
	d := res.Diff
	if strings.Join(d.Added, ",") != "new-model-x" || strings.Join(d.Removed, ",") != "gpt-4o-mini" || len(res.Written) != 0 {
		t.Fatalf("diff %+v written %v", d, res.Written)
	}
	changed := map[string]pricing.PriceChange{}
	for _, c := range d.Changed {
		if c.Model == "gpt-4o" {
			changed[c.Column] = c
		}
	}
	if c := changed["input"]; c.Old != "2.5" || c.New != "3" {
		t.Errorf("gpt-4o input change %+v, want $2.5 → $3 per 1M", c)
	}

	if code, _, errOut = runCLI(t, append(args, "--write")...); code != exitUsage || !strings.Contains(errOut, "--license") {
		t.Errorf("--write without --license: exit %d %s", code, errOut)
	}
	code, out, errOut = runCLI(t, append(args, "--write", "--license", lic)...)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	next := pricing.EmbeddedInfo{Date: "2026-09-01", Commit: commit, SHA256: pricing.SHA256Hex(data)}
	got, err := os.ReadFile(filepath.Join(pkg, "data", "litellm-model-prices-2026-09-01.json"))
	if err != nil || string(got) != string(data) {
		t.Fatalf("data not written byte for byte: %v", err)
	}
	if gen, _ := os.ReadFile(filepath.Join(pkg, "embedded.go")); string(gen) != string(pricing.RenderEmbeddedGo(next)) ||
		!strings.Contains(string(gen), "//go:embed data/litellm-model-prices-2026-09-01.json") {
		t.Fatalf("embedded.go:\n%s", gen)
	}
	if l, _ := os.ReadFile(filepath.Join(pkg, "data", "litellm-model-prices-2026-09-01.LICENSE")); string(l) != "MIT licence text" {
		t.Errorf("licence %q", l)
	}
	if _, err := os.Stat(filepath.Join(pkg, "data", cur.File())); !os.IsNotExist(err) {
		t.Errorf("previous file not removed: %v", err)
	}

	// An invalid candidate is rejected by the loader, naming the line; nothing is written.
	bad := writeFile(t, dir, "bad.json", "{\"a\": {\"input_cost_per_token\": 1e-6,\n\"output_cost_per_token\": NaN}}")
	code, _, errOut = runCLI(t, "prices", "refresh", bad, "--date", "2026-10-01", "--commit", commit, "--dir", pkg, "--write", "--license", lic)
	if code != exitFindings || !strings.Contains(errOut, "bad.json:2: ") {
		t.Errorf("exit %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(pkg, "data", "litellm-model-prices-2026-10-01.json")); !os.IsNotExist(err) {
		t.Errorf("invalid candidate written: %v", err)
	}
	if code, _, _ = runCLI(t, "prices", "refresh", candidate, "--date", "Sept 1", "--commit", commit); code != exitUsage {
		t.Errorf("bad date: exit %d", code)
	}
}

// TestPricesLookupUnitPrices: a model priced per second (whisper-1) shows its per-unit prices
// exactly, beside its zero token rates, in the table and in the JSON.
func TestPricesLookupUnitPrices(t *testing.T) {
	code, out, errOut := runCLI(t, "prices", "lookup", "whisper-1")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if got := lineWith(t, out, "input second"); strings.Join(got, " ") != "input second $0.0001" {
		t.Errorf("input second row %q", got)
	}
	code, out, errOut = runCLI(t, "prices", "lookup", "whisper-1", "--output", "json")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var res lookupResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Units) != 2 || res.Units[0] != (unitPrice{Unit: "input second", USD: "0.0001"}) {
		t.Errorf("units %+v", res.Units)
	}
	if got := femtoUSD(2_034_505); got != "0.000000002034505" {
		t.Errorf("femtoUSD(2034505) = %s", got)
	}
}

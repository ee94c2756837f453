package main

import (
	"encoding/json"
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

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/pricing"
)

// priceRates are one column of rates in dollars per million tokens, exact.
type priceRates struct {
	Column     string      `json:"column"`
	Input      money.Nanos `json:"-"`
	Output     money.Nanos `json:"-"`
	CacheRead  money.Nanos `json:"-"`
	CacheWrite money.Nanos `json:"-"`
	Reasoning  money.Nanos `json:"-"`
	// The JSON form is exact decimal strings per 1M tokens.
	InputPerMillion      string `json:"input_per_million"`
	OutputPerMillion     string `json:"output_per_million"`
	CacheReadPerMillion  string `json:"cache_read_per_million"`
	CacheWritePerMillion string `json:"cache_write_per_million"`
	ReasoningPerMillion  string `json:"reasoning_per_million"`
}

type lookupResult struct {
	Model    string       `json:"model"`
	Provider string       `json:"provider,omitempty"`
	Matched  bool         `json:"matched"`
	Key      string       `json:"key,omitempty"`
	Entry    string       `json:"entry,omitempty"`
	Rules    []string     `json:"rules"`
	Match    string       `json:"match,omitempty"`
	Unpriced string       `json:"unpriced,omitempty"`
	Reason   string       `json:"reason"`
	Source   string       `json:"source,omitempty"`
	Mode     string       `json:"mode,omitempty"`
	Fallback bool         `json:"fallback,omitempty"`
	Rates    []priceRates `json:"rates,omitempty"`
	// Units are the entry's per-unit prices (web search per query, images, seconds, pixels,
	// characters) as exact dollars per unit, in a stable order.
	Units []unitPrice `json:"units,omitempty"`
}

// unitPrice is one per-unit price of an entry, exact.
type unitPrice struct {
	Unit string `json:"unit"`
	USD  string `json:"usd"`
}

// entryUnits lists the per-unit prices an entry gives, as exact decimal dollars per unit.
func entryUnits(u pricing.UnitPrices) []unitPrice {
	var out []unitPrice
	add := func(unit string, has pricing.UnitSet, r money.Rate) {
		if u.Set&has != 0 {
			out = append(out, unitPrice{Unit: unit, USD: femtoUSD(r)})
		}
	}
	for size, name := range []string{pricing.SearchContextLow: "web search query, low context",
		pricing.SearchContextMedium: "web search query, medium context", pricing.SearchContextHigh: "web search query, high context"} {
		add(name, pricing.HasSearchQuery, u.SearchQuery[size])
	}
	add("output image", pricing.HasOutputImage, u.OutputImage)
	add("input image", pricing.HasInputImage, u.InputImage)
	add("input second", pricing.HasInputSeconds, u.InputSecond)
	add("output second", pricing.HasOutputSeconds, u.OutputSecond)
	add("input pixel", pricing.HasInputPixels, u.InputPixel)
	add("output pixel", pricing.HasOutputPixels, u.OutputPixel)
	add("input character", pricing.HasInputCharacters, u.InputCharacter)
	add("output character", pricing.HasOutputCharacters, u.OutputCharacter)
	return out
}

// femtoUSD formats a rate of femto-dollars as exact decimal dollars ("0.0001").
func femtoUSD(r money.Rate) string {
	const scale = 1_000_000_000_000_000
	frac := strings.TrimRight(fmt.Sprintf("%015d", int64(r)%scale), "0")
	whole := strconv.FormatInt(int64(r)/scale, 10)
	if frac == "" {
		return whole
	}
	return whole + "." + frac
}

var tierNames = [...]string{pricing.TierStandard: "standard", pricing.TierBatch: "batch",
	pricing.TierFlex: "flex", pricing.TierPriority: "priority"}

func pricesLookup(e *env, path string, args []string) error {
	flags := newFlags(e, path, "MODEL [--provider P] [--prices FILE]...", `
Shows which price entry a model name matches, by which rule, and its effective rates in dollars per
million tokens (exact) for the standard column, each service tier and each prompt-size tier. The
table is the embedded default overlaid with --prices files, later ones winning, as the processor
builds it. The exit code is 1 when no entry matches: spans of the model would be marked
agentcost.price.unknown.`)
	provider := flags.String("provider", "", "the provider `NAME` a span reports (gen_ai.provider.name)")
	var files stringList
	flags.Var(&files, "prices", "price `FILE` (LiteLLM JSON or agentcost YAML) over the default (repeatable)")
	out := flags.output("table", "json")
	pos, err := flags.parse(args, 1, 1)
	if err != nil {
		return err
	}
	table, err := pricing.LoadWithDefault(files...)
	if err != nil {
		return priceFileErr(err)
	}
	m := table.Explain(pos[0], *provider)
	res := lookupResult{Model: m.Model, Provider: m.Provider, Matched: m.Entry != nil, Key: m.Key,
		Rules: append([]string{}, m.Rules...), Reason: m.Reason, Unpriced: m.Unpriced}
	if en := m.Entry; en != nil {
		res.Entry, res.Source, res.Mode, res.Fallback = en.Model, en.Source, en.Mode, en.Fallback
		res.Match = m.Kind.String()
		res.Rates = entryRates(en)
		res.Units = entryUnits(en.Units)
	}

	if *out == "json" {
		if err := writeJSON(e.stdout, res); err != nil {
			return ioErr(err)
		}
	} else {
		t := newTable(e.stdout)
		row(t, "model:", res.Model)
		if res.Provider != "" {
			row(t, "provider:", res.Provider+" (normalised: "+pricing.NormalizeProvider(res.Provider)+")")
		}
		if !res.Matched {
			row(t, "matched:", "no entry")
			row(t, "reason:", res.Reason)
			t.Flush()
			return &cliError{code: exitFindings, err: fmt.Errorf("no price for model %q: its spans would be marked agentcost.price.unknown", res.Model)}
		}
		entry := res.Entry
		if res.Fallback {
			entry += " (provider fallback price)"
		}
		row(t, "matched:", entry)
		if res.Key != res.Entry {
			row(t, "via key:", res.Key)
		}
		row(t, "rules:", strings.Join(res.Rules, ", "))
		row(t, "match:", res.Match+matchNote(m.Kind))
		row(t, "reason:", res.Reason)
		row(t, "source:", res.Source)
		row(t, "entry provider:", m.Entry.Provider)
		row(t, "mode:", res.Mode)
		t.Flush()

		fmt.Fprintln(e.stdout, "\nrates in USD per 1M tokens:")
		t = newTable(e.stdout)
		row(t, "COLUMN", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE", "REASONING")
		for _, r := range res.Rates {
			row(t, r.Column, usd(r.Input), usd(r.Output), usd(r.CacheRead), usd(r.CacheWrite), usd(r.Reasoning))
		}
		t.Flush()
		if len(res.Units) > 0 {
			fmt.Fprintln(e.stdout, "\nper-unit prices in USD:")
			t = newTable(e.stdout)
			for _, u := range res.Units {
				row(t, u.Unit, "$"+u.USD)
			}
			t.Flush()
		}
	}
	if !res.Matched {
		return findings()
	}
	return nil
}

// priceFileErr maps a price-file error to its exit code: an invalid file (a *pricing.FileError,
// the size bound included) is a finding, a file that cannot be read is an I/O error.
func priceFileErr(err error) error {
	var fe *pricing.FileError
	var pe *fs.PathError
	if errors.As(err, &fe) && !errors.As(err, &pe) {
		return &cliError{code: exitFindings, err: err}
	}
	return ioErr(err)
}

// matchNote explains the match kind as the processor treats it.
func matchNote(k pricing.MatchKind) string {
	if k == 0 {
		return " (no agentcost.price.match attribute)"
	}
	return " (written as agentcost.price.match; priced only if prices.allow_match lists each kind)"
}

// entryRates lists the effective rates of an entry: standard, each service tier the entry prices,
// and each prompt-size tier (with its service tiers).
func entryRates(en *pricing.Entry) []priceRates {
	out := []priceRates{ratesOf("standard", en.Effective(0, pricing.TierStandard))}
	for tier := pricing.TierBatch; int(tier) < len(en.Service); tier++ {
		if !en.Service[tier].IsZero() {
			out = append(out, ratesOf(tierNames[tier], en.Effective(0, tier)))
		}
	}
	for _, tr := range en.Tiers {
		above := "above " + strconv.FormatInt(tr.AboveTokens, 10) + " prompt tokens"
		out = append(out, ratesOf(above, en.Effective(tr.AboveTokens+1, pricing.TierStandard)))
		for tier := pricing.TierBatch; int(tier) < len(tr.Service); tier++ {
			if !tr.Service[tier].IsZero() {
				out = append(out, ratesOf(above+", "+tierNames[tier], en.Effective(tr.AboveTokens+1, tier)))
			}
		}
	}
	return out
}

// ratesOf converts per-token femto-dollar rates to dollars per million tokens: a femto-dollar per
// token is a nano-dollar per million tokens, so the conversion is exact.
func ratesOf(column string, r pricing.Rates) priceRates {
	p := priceRates{Column: column, Input: money.Nanos(r.Input), Output: money.Nanos(r.Output),
		CacheRead: money.Nanos(r.CacheRead), CacheWrite: money.Nanos(r.CacheWrite), Reasoning: money.Nanos(r.Reasoning)}
	p.InputPerMillion, p.OutputPerMillion = p.Input.String(), p.Output.String()
	p.CacheReadPerMillion, p.CacheWritePerMillion = p.CacheRead.String(), p.CacheWrite.String()
	p.ReasoningPerMillion = p.Reasoning.String()
	return p
}

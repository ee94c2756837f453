package pricing

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/agentcost/agentcost/internal/money"
)

// MaxRate is the sanity bound on a per-token price: $1 per token ($1,000,000 per million tokens),
// above anything a provider charges (the dearest upstream token prices are below $0.6 per token).
// A price file entry above it is rejected unless the entry allows it: `"agentcost_allow_high_price":
// true` in LiteLLM JSON, `allow_high_price: true` in the YAML format.
const MaxRate money.Rate = 1_000_000_000_000_000

// AllowHighPriceField is the LiteLLM JSON field that lets one entry carry prices above MaxRate.
const AllowHighPriceField = "agentcost_allow_high_price"

// errBelowRepresentable and errNegativeZero are the rejections of checkPrice.
var (
	errBelowRepresentable = errors.New("is below the smallest price agentcost represents ($0.000000000000001 per token, $0.000000001 per million) and would price the model as free; write 0 if it is free")
	errNegativeZero       = errors.New("is negative; write 0 for a free model")
)

// checkPrice rejects price text that parses but cannot be meant: a negative zero ("-0.0") and a
// non-zero price that rounds to zero ("1e-308"). r is the parsed rate.
func checkPrice(text string, r money.Rate) error {
	t := strings.TrimSpace(text)
	if strings.HasPrefix(t, "-") {
		return errNegativeZero
	}
	if r != 0 {
		return nil
	}
	mantissa := t
	if i := strings.IndexAny(t, "eE"); i >= 0 {
		mantissa = t[:i]
	}
	if strings.Trim(mantissa, "0.+_") != "" {
		return errBelowRepresentable
	}
	return nil
}

// highPriceError is the rejection of a price above MaxRate; how names the per-entry override.
func highPriceError(r money.Rate, how string) error {
	return fmt.Errorf("price $%s per token is above the sanity bound of $%s per token; if it is real, set %s in this entry",
		money.Nanos(r/1_000_000).String(), money.Nanos(MaxRate/1_000_000).String(), how)
}

// Reasons a price file entry is skipped (Layer.Skips). The processor logs the counts at start and
// `agentcostctl prices lint` lists the entries.
const (
	SkipDocumentation = "format documentation"
	SkipInputOnly     = "input price only"
	SkipOutputOnly    = "output price only"
	SkipTieredOnly    = "tiered_pricing only"
	SkipPerSecond     = "per-second prices"
	SkipPerImage      = "per-image prices"
	SkipPerCharacter  = "per-character prices"
	SkipPerRequest    = "per-request prices"
	SkipAudio         = "audio prices"
	SkipOtherUnit     = "other non-token prices"
	SkipNoPrices      = "no prices"
)

// Skip is a price file entry the loader did not load, and why.
type Skip struct {
	// Model is the entry's key.
	Model string
	// Line is the entry's line in its file.
	Line int
	// Reason is one of the Skip* constants.
	Reason string
	// Provider is the entry's litellm_provider, when given.
	Provider string
}

// SkipCount is the number of skipped entries with one reason.
type SkipCount struct {
	Reason string
	Count  int
}

// SkipsByReason counts skipped entries per reason, most frequent first (then by reason).
func SkipsByReason(skips []Skip) []SkipCount {
	m := map[string]int{}
	for _, s := range skips {
		m[s.Reason]++
	}
	return sortedCounts(m)
}

// MergeSkipCounts adds up counts by reason (several layers' LayerStats.Skips), most frequent first.
func MergeSkipCounts(counts []SkipCount) []SkipCount {
	m := map[string]int{}
	for _, c := range counts {
		m[c.Reason] += c.Count
	}
	return sortedCounts(m)
}

func sortedCounts(m map[string]int) []SkipCount {
	out := make([]SkipCount, 0, len(m))
	for r, n := range m {
		out = append(out, SkipCount{Reason: r, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

// FormatSkips renders counts as one line: "per-image prices 180, no prices 120, ...".
func FormatSkips(counts []SkipCount) string {
	parts := make([]string, len(counts))
	for i, c := range counts {
		parts[i] = fmt.Sprintf("%s %d", c.Reason, c.Count)
	}
	return strings.Join(parts, ", ")
}

// skipReason says why an entry without both standard token prices is not loaded, from the price
// columns it has (non-token columns are the other names containing "cost").
func skipReason(hasIn, hasOut, tiered bool, otherCosts []string) string {
	switch {
	case hasIn && !hasOut:
		return SkipInputOnly
	case hasOut && !hasIn:
		return SkipOutputOnly
	case tiered:
		return SkipTieredOnly
	}
	has := func(parts ...string) bool {
		for _, f := range otherCosts {
			for _, p := range parts {
				if strings.Contains(f, p) {
					return true
				}
			}
		}
		return false
	}
	switch {
	case len(otherCosts) == 0:
		return SkipNoPrices
	case has("per_second"):
		return SkipPerSecond
	case has("image", "pixel"):
		return SkipPerImage
	case has("per_character"):
		return SkipPerCharacter
	case has("per_query", "per_request", "per_page", "per_call"):
		return SkipPerRequest
	case has("audio"):
		return SkipAudio
	}
	return SkipOtherUnit
}

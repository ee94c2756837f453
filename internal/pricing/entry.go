package pricing

import (
	"errors"

	"github.com/agentcost/agentcost/internal/money"
)

// MaxTokensPerPart is the largest token count accepted in one usage part (input, output, cache read,
// cache write, reasoning). Larger counts are treated as malformed telemetry, not as spend.
const MaxTokensPerPart = 100_000_000

var (
	// ErrMalformedUsage is returned by Entry.Cost for a negative or absurdly large token count.
	ErrMalformedUsage = errors.New("malformed usage: token count negative or above 100,000,000")
	// ErrInconsistentUsage is returned by Entry.Cost when the parts of a usage contradict each other:
	// cached tokens above the input tokens that include them, or reasoning tokens above the output
	// tokens. errors.Is(ErrInconsistentUsage, ErrMalformedUsage) holds.
	ErrInconsistentUsage error = &inconsistentError{}
	// ErrCostOverflow is returned by Entry.Cost when a cost exceeds money.MaxNanos (an absurd rate
	// times an absurd count).
	ErrCostOverflow = errors.New("cost exceeds the largest representable amount")
)

type inconsistentError struct{}

func (*inconsistentError) Error() string {
	return "inconsistent usage: cached tokens exceed input tokens or reasoning tokens exceed output tokens"
}

func (*inconsistentError) Is(target error) bool { return target == ErrMalformedUsage }

// RateSet records which of the rates in a Rates value are given.
type RateSet uint8

// The rates a Rates value can hold.
const (
	HasInput RateSet = 1 << iota
	HasOutput
	HasCacheRead
	HasCacheWrite
	HasReasoning
)

// Rates is one column of per-token prices. A rate whose bit is not in Set is absent (not zero): it
// falls back as Entry.Effective describes.
type Rates struct {
	Input      money.Rate
	Output     money.Rate
	CacheRead  money.Rate
	CacheWrite money.Rate
	// Reasoning prices reasoning tokens (a part of the output tokens) when it differs from Output.
	Reasoning money.Rate
	Set       RateSet
}

// Has reports whether every rate in s is given.
func (r Rates) Has(s RateSet) bool { return r.Set&s == s }

// IsZero reports whether no rate is given.
func (r Rates) IsZero() bool { return r.Set == 0 }

// set stores v as the rate s (one bit).
func (r *Rates) set(s RateSet, v money.Rate) {
	switch s {
	case HasInput:
		r.Input = v
	case HasOutput:
		r.Output = v
	case HasCacheRead:
		r.CacheRead = v
	case HasCacheWrite:
		r.CacheWrite = v
	case HasReasoning:
		r.Reasoning = v
	}
	r.Set |= s
}

// get returns the rate s (one bit) and whether it is given.
func (r *Rates) get(s RateSet) (money.Rate, bool) {
	if r.Set&s == 0 {
		return 0, false
	}
	switch s {
	case HasInput:
		return r.Input, true
	case HasOutput:
		return r.Output, true
	case HasCacheRead:
		return r.CacheRead, true
	case HasCacheWrite:
		return r.CacheWrite, true
	case HasReasoning:
		return r.Reasoning, true
	}
	return 0, false
}

// Tier is a set of rates that applies when a call's prompt is above a size threshold (LiteLLM's
// `..._above_200k_tokens` columns).
type Tier struct {
	// AboveTokens is the threshold: the tier applies when the prompt has more tokens than this.
	AboveTokens int64
	// Rates are the tier's standard-service rates.
	Rates Rates
	// Service holds the tier's rates per service tier (`..._above_200k_tokens_priority`), indexed by
	// ServiceTier; the TierStandard slot is unused.
	Service [numServiceTiers]Rates
}

const numServiceTiers = int(TierPriority) + 1

// Entry is the price of one model in the table. Entries returned by a Table are shared and must not
// be modified.
type Entry struct {
	// Model is the table key (the model name as the price file spells it).
	Model string
	// Provider is the LiteLLM provider of the entry (`litellm_provider`), or the YAML `provider`.
	Provider string
	// Mode is the LiteLLM mode ("chat", "embedding", ...), when the file gives one.
	Mode string
	// Source is the label of the layer the entry came from ("litellm-2026-07-18", a file name, or the
	// YAML `source`); the processor shows it in `agentcost.price.source`.
	Source string
	// Fallback marks a per-provider fallback price used for a model the table does not know.
	Fallback bool
	// Standard are the standard-service rates for prompts up to the first tier's threshold.
	Standard Rates
	// Service holds the rates of the batch, flex and priority columns, indexed by ServiceTier; the
	// TierStandard slot is unused.
	Service [numServiceTiers]Rates
	// Tiers are the prompt-size tiers, ascending by AboveTokens.
	Tiers []Tier
}

// Cost is the cost of one call. The parts are each rounded to nano-dollars for display; Total is the
// exact sum of the unrounded parts, rounded once, so it may differ from the sum of the parts by a
// few nano-dollars.
type Cost struct {
	Input      money.Nanos
	Output     money.Nanos
	CacheRead  money.Nanos
	CacheWrite money.Nanos
	Total      money.Nanos
}

// Effective returns the rates that apply to a call with promptTokens prompt tokens (cached tokens
// included) on the given service tier, with every rate given. Each rate is taken from the first
// column that has it:
//
//  1. the highest prompt-size tier exceeded, its service-tier column;
//  2. that tier's standard column;
//  3. the entry's service-tier column;
//  4. the entry's standard column.
//
// A cache-read or cache-write rate found in none of them is the effective input rate; a reasoning
// rate found in none of them is the effective output rate (reasoning is then priced as output).
// This is LiteLLM's precedence, so a tiered standard rate wins over a service-tier base rate when
// the file has no combined column.
func (e *Entry) Effective(promptTokens int64, tier ServiceTier) Rates {
	var cols [4]*Rates
	n := 0
	svc := int(tier)
	if svc <= 0 || svc >= numServiceTiers {
		svc = 0
	}
	for i := len(e.Tiers) - 1; i >= 0; i-- {
		if promptTokens > e.Tiers[i].AboveTokens {
			t := &e.Tiers[i]
			if svc != 0 {
				cols[n] = &t.Service[svc]
				n++
			}
			cols[n] = &t.Rates
			n++
			break
		}
	}
	if svc != 0 {
		cols[n] = &e.Service[svc]
		n++
	}
	cols[n] = &e.Standard
	n++

	pick := func(s RateSet) (money.Rate, bool) {
		for _, c := range cols[:n] {
			if v, ok := c.get(s); ok {
				return v, true
			}
		}
		return 0, false
	}
	var r Rates
	r.Input, _ = pick(HasInput)
	r.Output, _ = pick(HasOutput)
	var ok bool
	if r.CacheRead, ok = pick(HasCacheRead); !ok {
		r.CacheRead = r.Input
	}
	if r.CacheWrite, ok = pick(HasCacheWrite); !ok {
		r.CacheWrite = r.Input
	}
	if r.Reasoning, ok = pick(HasReasoning); !ok {
		r.Reasoning = r.Output
	}
	r.Set = HasInput | HasOutput | HasCacheRead | HasCacheWrite | HasReasoning
	return r
}

// Cost prices one call's usage. Input tokens include the cached tokens (unless
// u.InputExcludesCache): the uncached part is priced at the input rate, the cache-read and
// cache-write parts at theirs. Reasoning tokens are part of the output tokens and priced once, at
// the reasoning rate when the entry has one. Prompt-size tiers apply when the whole prompt (cached
// tokens included) is above their threshold; service-tier columns apply when u.Tier names one the
// entry has.
//
// A negative count or one above MaxTokensPerPart is ErrMalformedUsage; cached tokens above the
// input tokens or reasoning tokens above the output tokens is ErrInconsistentUsage. No part is ever
// negative. Cost does not allocate.
func (e *Entry) Cost(u Usage) (Cost, error) {
	if !validCount(u.InputTokens) || !validCount(u.OutputTokens) || !validCount(u.CacheReadTokens) ||
		!validCount(u.CacheWriteTokens) || !validCount(u.ReasoningTokens) {
		return Cost{}, ErrMalformedUsage
	}
	uncached, prompt := u.InputTokens, u.InputTokens
	if u.InputExcludesCache {
		prompt += u.CacheReadTokens + u.CacheWriteTokens
	} else {
		uncached -= u.CacheReadTokens + u.CacheWriteTokens
		if uncached < 0 {
			return Cost{}, ErrInconsistentUsage
		}
	}
	if u.ReasoningTokens > u.OutputTokens {
		return Cost{}, ErrInconsistentUsage
	}
	r := e.Effective(prompt, u.Tier)

	outside := u.OutputTokens - u.ReasoningTokens
	var total money.Acc
	total.Add(uncached, r.Input)
	total.Add(outside, r.Output)
	total.Add(u.ReasoningTokens, r.Reasoning)
	total.Add(u.CacheReadTokens, r.CacheRead)
	total.Add(u.CacheWriteTokens, r.CacheWrite)
	n, ok := total.Nanos()
	if !ok || n > money.MaxNanos {
		return Cost{}, ErrCostOverflow
	}
	// Every part is at most the total, so it fits once the total does.
	c := Cost{
		Input:      partNanos(uncached, r.Input, 0, 0),
		Output:     partNanos(outside, r.Output, u.ReasoningTokens, r.Reasoning),
		CacheRead:  partNanos(u.CacheReadTokens, r.CacheRead, 0, 0),
		CacheWrite: partNanos(u.CacheWriteTokens, r.CacheWrite, 0, 0),
		Total:      n,
	}
	return c, nil
}

// partNanos rounds one displayed part, a×ra + b×rb, to nano-dollars.
func partNanos(a int64, ra money.Rate, b int64, rb money.Rate) money.Nanos {
	if (a == 0 || ra == 0) && (b == 0 || rb == 0) {
		return 0
	}
	var acc money.Acc
	acc.Add(a, ra)
	acc.Add(b, rb)
	n, _ := acc.Nanos()
	return n
}

func validCount(n int64) bool { return n >= 0 && n <= MaxTokensPerPart }

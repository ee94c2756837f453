package pricing

import (
	"math/bits"

	"github.com/agentcost/agentcost/internal/money"
)

// Reprice scales an estimate made for model from to model to by the ratio of their standard
// per-token prices, input plus output: est × (in_to + out_to) / (in_from + out_from), rounded up
// to the nano-dollar so a re-estimate never under-reserves. The sum is the price of a call with
// as many output as input tokens, a middle ground between prompt-heavy and generation-heavy
// calls; the ratio of two models' input and output prices is close to constant for a provider's
// tiers, so the choice moves the figure little. It reports false when either model is unknown
// (fallback prices included: a guess cannot justify a swap) or lacks input and output prices.
// It satisfies policy.Repricer, which `degrade:` uses.
func (t *Table) Reprice(est money.Nanos, from, to string) (money.Nanos, bool) {
	fe, ok := t.Lookup(from, "")
	if !ok || fe.Fallback || !fe.HasTokenPrices() {
		return 0, false
	}
	te, ok := t.Lookup(to, "")
	if !ok || te.Fallback || !te.HasTokenPrices() {
		return 0, false
	}
	num := uint64(te.Standard.Input) + uint64(te.Standard.Output)
	den := uint64(fe.Standard.Input) + uint64(fe.Standard.Output)
	if den == 0 || te.Standard.Input < 0 || te.Standard.Output < 0 || fe.Standard.Input < 0 || fe.Standard.Output < 0 {
		return 0, false
	}
	if est <= 0 {
		return 0, true
	}
	hi, lo := bits.Mul64(uint64(est), num)
	if hi >= den {
		return money.MaxNanos, true
	}
	q, r := bits.Div64(hi, lo, den)
	if r != 0 {
		q++
	}
	if q > uint64(money.MaxNanos) {
		return money.MaxNanos, true
	}
	return money.Nanos(q), true
}

// Knows reports whether the table prices model per token (not by a provider fallback): a
// `degrade:` target must pass it.
func (t *Table) Knows(model string) bool {
	e, ok := t.Lookup(model, "")
	return ok && !e.Fallback && e.HasTokenPrices()
}

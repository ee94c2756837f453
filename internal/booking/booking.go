// Package booking turns priced spans — the GenAI keys and agentcost.* attributes the agentcost
// processor leaves — into ledger spends. It never re-parses instrumentation dialects.
package booking

import (
	"math"
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/agentcost/agentcost/internal/genai"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
)

// Unpriced is a span with usage whose model matched no price.
type Unpriced struct {
	Model string
	Agent string
}

// Batch is what one trace batch holds for the ledger.
type Batch struct {
	// Spends are the priced spans, in batch order.
	Spends []ledger.Spend
	// Providers holds each spend's provider (gen_ai.provider.name), parallel to Spends.
	Providers []string
	// Unpriced are the spans marked agentcost.price.unknown.
	Unpriced []Unpriced
	// Malformed are the reasons (agentcost.malformed) of the spans the processor could not price
	// because their usage was malformed, one per span.
	Malformed []string
	// Invalid counts priced spans whose agentcost.cost_usd is not a finite, non-negative number or
	// whose ids are missing; they are not booked.
	Invalid int
	// OverLimit counts priced spans whose agentcost.cost_usd is above FromTracesWithin's limit
	// (spans priced upstream by another collector); they are not booked.
	OverLimit int
	// Unbooked holds one ledger.Spend with Unbooked set per span counted above (unpriced,
	// malformed, invalid_cost or cost_over_limit refusal): Book counts each once in the ledger's
	// totals.
	Unbooked []ledger.Spend
}

// FromTraces collects the spends of td's priced spans.
func FromTraces(td ptrace.Traces) Batch { return FromTracesWithin(td, 0) }

// FromTracesWithin collects the spends of td's priced spans whose cost is at most maxCost (0: any
// cost); a costlier span is counted in OverLimit and left out.
func FromTracesWithin(td ptrace.Traces, maxCost money.Nanos) Batch {
	var b Batch
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		resAttrs := rss.At(i).Resource().Attributes()
		resRun := str(resAttrs, genai.KeyRunID)
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				b.add(spans.At(k), resRun, maxCost)
			}
		}
	}
	return b
}

func (b *Batch) add(span ptrace.Span, resRun string, maxCost money.Nanos) {
	attrs := span.Attributes()
	unbooked := func(f ledger.Family, label string) {
		sp := ledger.Spend{Unbooked: f, UnbookedLabel: label}
		if !span.TraceID().IsEmpty() && !span.SpanID().IsEmpty() {
			sp.TraceID, sp.SpanID = span.TraceID().String(), span.SpanID().String()
		}
		b.Unbooked = append(b.Unbooked, sp)
	}
	costVal, priced := attrs.Get(genai.KeyCostUSD)
	if !priced {
		if v, ok := attrs.Get(genai.KeyPriceUnknown); ok && v.Type() == pcommon.ValueTypeBool && v.Bool() {
			b.Unpriced = append(b.Unpriced, Unpriced{Model: model(attrs), Agent: str(attrs, genai.KeyAgent)})
			unbooked(ledger.TotalUnpriced, model(attrs))
		}
		if v, ok := attrs.Get(genai.KeyMalformed); ok {
			b.Malformed = append(b.Malformed, v.AsString())
			unbooked(ledger.TotalMalformed, v.AsString())
		}
		return
	}
	cost, ok := usd(costVal)
	if !ok || span.TraceID().IsEmpty() || span.SpanID().IsEmpty() {
		b.Invalid++
		unbooked(ledger.TotalRefused, "invalid_cost")
		return
	}
	if maxCost > 0 && cost > maxCost {
		b.OverLimit++
		unbooked(ledger.TotalRefused, "cost_over_limit")
		return
	}
	run := str(attrs, genai.KeyRunID)
	if run == "" {
		run = resRun
	}
	end := span.EndTimestamp()
	if end == 0 {
		end = span.StartTimestamp()
	}
	anomaly, hasAnomaly := attrs.Get(genai.KeyAnomaly)
	cacheWrite := count(attrs, genai.KeyCacheWriteTokens)
	if cacheWrite == 0 {
		cacheWrite = count(attrs, "gen_ai.usage.cache_creation.input_tokens")
	}
	b.Spends = append(b.Spends, ledger.Spend{
		TraceID:    span.TraceID().String(),
		SpanID:     span.SpanID().String(),
		Time:       end.AsTime(),
		Agent:      str(attrs, genai.KeyAgent),
		Team:       str(attrs, genai.KeyTeam),
		Model:      str(attrs, genai.KeyModel),
		RunID:      run,
		DecisionID: str(attrs, genai.KeyDecisionID),
		Cost:       cost,
		Tokens: ledger.Tokens{
			Input:      count(attrs, genai.KeyInputTokens),
			Output:     count(attrs, genai.KeyOutputTokens),
			CacheRead:  count(attrs, genai.KeyCacheReadTokens),
			CacheWrite: cacheWrite,
			Reasoning:  count(attrs, genai.KeyReasoningTokens),
		},
		Anomaly:      hasAnomaly && anomaly.Type() == pcommon.ValueTypeBool && anomaly.Bool(),
		Escalating:   flag(attrs, genai.KeyEscalating),
		ParentSpanID: parentSpanID(span),
	})
	sp := &b.Spends[len(b.Spends)-1]
	sp.CallKey = CallKey(sp.Model, sp.Cost)
	sp.Provider = str(attrs, genai.KeyProviderName)
	b.Providers = append(b.Providers, sp.Provider)
}

// CallKey fingerprints the provider call a priced span describes, for the ledger's same-call rule
// (ledger.Spend.CallKey): the priced model (agentcost.model, the price-table entry the model name
// normalised to) and the cost in nano-dollars, which the processor computed from the span's usage
// read in its own instrumentation's meaning (an input without the cache, an output without the
// reasoning are priced as the call was billed). Two spans of one call carry the same key whichever
// instrumentation wrote them; the token counts are left out because a span's own convention keys
// may keep the instrumentation's raw meaning (normalize off, or a user's input_excludes_cache rule).
func CallKey(model string, cost money.Nanos) string {
	return model + "|" + strconv.FormatInt(int64(cost), 10)
}

func parentSpanID(span ptrace.Span) string {
	if p := span.ParentSpanID(); !p.IsEmpty() {
		return p.String()
	}
	return ""
}

// flag reports whether attrs hold key as the boolean true.
func flag(attrs pcommon.Map, key string) bool {
	v, ok := attrs.Get(key)
	return ok && v.Type() == pcommon.ValueTypeBool && v.Bool()
}

// usd reads agentcost.cost_usd back into nano-dollars. The processor wrote float64(nanos)/1e9; the
// shortest decimal of that double parses back to the same nano-dollars for any span under $1M.
func usd(v pcommon.Value) (money.Nanos, bool) {
	f, ok := genai.AmountUSD(v)
	if !ok {
		return 0, false
	}
	n, err := money.FromUSD(f)
	return n, err == nil
}

func model(attrs pcommon.Map) string {
	for _, k := range []string{genai.KeyResponseModel, genai.KeyRequestModel} {
		if s := str(attrs, k); s != "" {
			return s
		}
	}
	return ""
}

func str(attrs pcommon.Map, key string) string {
	if v, ok := attrs.Get(key); ok && v.Type() == pcommon.ValueTypeStr {
		return v.Str()
	}
	return ""
}

// count reads a token count the processor normalised; anything but a non-negative integer is 0.
func count(attrs pcommon.Map, key string) int64 {
	v, ok := attrs.Get(key)
	if !ok {
		return 0
	}
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return max(v.Int(), 0)
	case pcommon.ValueTypeDouble:
		if f := v.Double(); f >= 0 && f <= 1e12 && f == math.Trunc(f) {
			return int64(f)
		}
	}
	return 0
}

package costing

import (
	"encoding/binary"
	"hash/maphash"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/agentcost/agentcost/internal/genai"
	"github.com/agentcost/agentcost/internal/pricing"
)

// The same call inside one batch. An instrumentation library's LLM span over the SDK's own LLM span
// of one provider call (OpenLLMetry or OpenInference over the Anthropic SDK's span) carries the same
// usage twice. When both are in one batch, the parent is marked agentcost.aggregate and not priced,
// as the Vercel AI SDK's aggregate spans are: the leaf keeps the price. "The same call" is a span
// and its direct parent in the same trace whose calls match the same price-table entry (the model
// after normalisation; the raw names when neither matched one) and whose usage, read in each
// span's own instrumentation meaning (genai semantics), is equal. Across batches the ledger's
// same-call rule (ledger.Spend.CallKey) books such a pair once.

// spanRef identifies a span of the batch: its trace id and span id.
type spanRef [24]byte

func refOf(trace pcommon.TraceID, span pcommon.SpanID) spanRef {
	var r spanRef
	copy(r[:16], trace[:])
	copy(r[16:], span[:])
	return r
}

// sameCalls returns the spans of td that repeat the call of one of their direct children in the
// batch; nil when none does. It reads the spans natively (no OTTL overrides), without writing.
//
// Two instrumentations of one call are two instrumentation scopes, so only a child whose parent
// lies outside the child's own ScopeSpans is considered (a same-scope repeat, the Vercel AI SDK's,
// is aggregate_operations' business). Cost: one scan of the ids into 4096-bit filters (no
// allocation); when some child's parent may be in another scope of the batch, a second reading of
// the spans that may be such parents, and of a child only when its parent is an LLM span. A pair
// the filters miss is still booked once by the ledger's same-call rule.
func (p *Pricer) sameCalls(td ptrace.Traces) map[spanRef]struct{} {
	var filter [64]uint64 // bit (id & 4095) set: a span of the batch has id as its parent, in another scope
	rss := td.ResourceSpans()
	linked := false
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			var own [64]uint64 // the scope's own span ids
			for k := 0; k < spans.Len(); k++ {
				w, m := idBit(spans.At(k).SpanID())
				own[w] |= m
			}
			for k := 0; k < spans.Len(); k++ {
				parent := spans.At(k).ParentSpanID()
				if parent.IsEmpty() {
					continue
				}
				if w, m := idBit(parent); own[w]&m == 0 {
					filter[w] |= m
					linked = true
				}
			}
		}
	}
	if !linked {
		return nil
	}
	var parents map[spanRef]uint64 // the LLM spans that may have a child in the batch: their call
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				s := spans.At(k)
				if w, m := idBit(s.SpanID()); filter[w]&m == 0 {
					continue
				}
				if c, ok := p.callOf(s, sss.At(j).Scope().Name()); ok {
					if parents == nil {
						parents = map[spanRef]uint64{}
					}
					parents[refOf(s.TraceID(), s.SpanID())] = c
				}
			}
		}
	}
	if len(parents) == 0 {
		return nil
	}
	var same map[spanRef]struct{}
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				child := spans.At(k)
				if child.ParentSpanID().IsEmpty() {
					continue
				}
				parentRef := refOf(child.TraceID(), child.ParentSpanID())
				pc, ok := parents[parentRef]
				if !ok {
					continue
				}
				if _, done := same[parentRef]; done {
					continue
				}
				if c, ok := p.callOf(child, sss.At(j).Scope().Name()); ok && c == pc {
					if same == nil {
						same = map[spanRef]struct{}{}
					}
					same[parentRef] = struct{}{}
				}
			}
		}
	}
	return same
}

// idBit is a span id's bit in a 4096-bit filter (span ids are random).
func idBit(id pcommon.SpanID) (int, uint64) {
	b := binary.LittleEndian.Uint64(id[:]) & 4095
	return int(b >> 6), 1 << (b & 63)
}

// callSeed keys the call hashes of one process.
var callSeed = maphash.MakeSeed()

// callOf returns a 64-bit hash of what makes a span's call the same as another's: the price entry
// it matches (the raw model name when none) and its usage in the convention's meaning (the input
// with the cache); false when the span is no priceable LLM call.
func (p *Pricer) callOf(span ptrace.Span, scope string) (uint64, bool) {
	res := genai.Resource{}.InScope(scope)
	c := p.Extractor.Extract(span.Attributes(), span.Name(), &res)
	if !c.HasUsage || c.Aggregate || c.AlreadyPriced || c.Malformed != 0 {
		return 0, false
	}
	k := callKey{usage: conventional(c.Usage)}
	if p.Table != nil {
		k.entry = p.Table.LookupHit(c.Model, c.Provider).Entry
	}
	if k.entry == nil {
		k.model = c.Model
	}
	return maphash.Comparable(callSeed, k), true
}

// callKey is what callOf hashes.
type callKey struct {
	entry *pricing.Entry
	model string
	usage pricing.Usage
}

// conventional is u in the GenAI convention's meaning: the input with the cached tokens.
func conventional(u pricing.Usage) pricing.Usage {
	if u.InputExcludesCache {
		u.InputTokens += u.CacheReadTokens + u.CacheWriteTokens
		u.InputExcludesCache = false
	}
	return u
}

// isSameCall reports whether the span repeats a child's call in this batch (Stats.sameCall).
func (s *Stats) isSameCall(span ptrace.Span) bool {
	if s.sameCall == nil {
		return false
	}
	_, ok := s.sameCall[refOf(span.TraceID(), span.SpanID())]
	return ok
}

// Package costing prices the LLM spans of a trace batch: it reads each span's call (internal/genai),
// matches its price (internal/pricing), writes the cost and attribution attributes, and observes the
// per-(agent, model) baseline (internal/baseline). The agentcost processor is a thin shell around it.
package costing

import (
	"context"
	"errors"
	"unsafe"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl/contexts/ottlspan"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/genai"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/pricing"
)

// UnknownAgent is the agent key of a span whose span and resource name no agent at all.
const UnknownAgent = "unknown"

// Pricer prices spans. It is safe for concurrent use once built.
type Pricer struct {
	// Table is the price table.
	Table *pricing.Table
	// Extractor reads calls from spans.
	Extractor *genai.Extractor
	// Overrides are the user's OTTL field overrides and condition; nil for none.
	Overrides *genai.Overrides
	// Baselines are the per-(agent, model) baselines; nil disables anomaly flags.
	Baselines *baseline.Store
	// Normalize writes the GenAI convention keys on dialect spans.
	Normalize bool
	// Detailed writes the detailed attribute set.
	Detailed bool
}

// Stats counts what one batch did, for the processor's telemetry.
type Stats struct {
	Priced, Unpriced, Aggregates, Anomalies int64
	// Malformed counts spans whose usage could not be read, by the first reason.
	Malformed map[string]int64
	// OverrideErrors counts spans where an OTTL override or condition failed to evaluate.
	OverrideErrors int64
	// Cost is the total priced.
	Cost money.Nanos
}

func (s *Stats) malformed(reason string) {
	if s.Malformed == nil {
		s.Malformed = make(map[string]int64, 2)
	}
	s.Malformed[reason]++
}

// ProcessTraces prices every LLM span of td in place and returns what it did. It never fails: a span
// it cannot price passes through unchanged (or marked), and is counted.
func (p *Pricer) ProcessTraces(ctx context.Context, td ptrace.Traces) Stats {
	var st Stats
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		res := genai.ReadResource(rs.Resource().Attributes())
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			spans := ss.Spans()
			for k := 0; k < spans.Len(); k++ {
				p.span(ctx, rs, ss, spans.At(k), &res, &st)
			}
		}
	}
	return st
}

func (p *Pricer) span(ctx context.Context, rs ptrace.ResourceSpans, ss ptrace.ScopeSpans, span ptrace.Span, res *genai.Resource, st *Stats) {
	attrs := span.Attributes()
	c := p.Extractor.Extract(attrs, span.Name(), res)
	if c.AlreadyPriced {
		return // priced by an agentcost processor earlier in the pipeline; never priced twice
	}
	if p.Overrides != nil {
		tCtx := ottlspan.NewTransformContext(rs, ss, span)
		selected, err := p.Overrides.Selects(ctx, tCtx)
		if err == nil && selected {
			err = p.Overrides.Apply(ctx, tCtx, &c)
		}
		tCtx.Close()
		if err != nil {
			st.OverrideErrors++
		}
		if !selected {
			return
		}
	}
	if !c.HasUsage {
		return // not a provider call (or a model named without usage): nothing to price
	}
	if c.Aggregate {
		attrs.PutBool(genai.KeyAggregate, true)
		st.Aggregates++
		return
	}
	if c.Malformed != 0 {
		st.malformed(c.Malformed.First())
		return
	}
	if p.Normalize {
		genai.Normalize(attrs, &c)
	}
	entry, ok := p.Table.Lookup(c.Model, c.Provider)
	if !ok {
		attrs.PutBool(genai.KeyPriceUnknown, true)
		st.Unpriced++
		return
	}
	cost, err := entry.Cost(c.Usage)
	if err != nil {
		reason := "inconsistent_usage"
		if errors.Is(err, pricing.ErrCostOverflow) {
			reason = "cost_overflow"
		}
		st.malformed(reason)
		return
	}
	agent := c.Agent
	if agent == "" {
		agent = UnknownAgent
	}
	model := entry.Model
	if entry.Fallback {
		model = c.Model
	}
	writes := 3
	if c.Team != "" {
		writes++
	}
	if p.Detailed {
		writes += 6
	}
	attrs.EnsureCapacity(attrs.Len() + writes) // one slice growth for all the attributes written
	attrs.PutDouble(genai.KeyCostUSD, cost.Total.USD())
	attrs.PutStr(genai.KeyAgent, agent)
	attrs.PutStr(genai.KeyModel, model)
	if c.Team != "" {
		attrs.PutStr(genai.KeyTeam, c.Team)
	}
	if p.Detailed {
		attrs.PutDouble(genai.KeyCostInputUSD, cost.Input.USD())
		attrs.PutDouble(genai.KeyCostOutputUSD, cost.Output.USD())
		attrs.PutDouble(genai.KeyCostCacheRead, cost.CacheRead.USD())
		attrs.PutDouble(genai.KeyCostCacheWrite, cost.CacheWrite.USD())
		attrs.PutStr(genai.KeyPriceSource, entry.Source)
		if c.Tenant != "" {
			attrs.PutStr(genai.KeyTenant, c.Tenant)
		}
	}
	st.Priced++
	st.Cost += cost.Total
	if p.Baselines != nil {
		if r := p.observe(agent, model, cost.Total); r.Anomalous {
			st.Anomalies++
			markAnomaly(span, r)
		}
	}
}

// observe feeds the (agent, model) baseline. The key is built in a stack buffer and passed without a
// copy: baseline.Store.Observe never retains the key string it is given (it clones it on insert).
func (p *Pricer) observe(agent, model string, cost money.Nanos) baseline.Result {
	var buf [192]byte
	key := append(append(append(buf[:0], agent...), 0), model...)
	return p.Baselines.Observe(unsafe.String(unsafe.SliceData(key), len(key)), cost)
}

func markAnomaly(span ptrace.Span, r baseline.Result) {
	attrs := span.Attributes()
	attrs.PutBool(genai.KeyAnomaly, true)
	attrs.PutDouble(genai.KeyAnomalyRatio, r.Ratio)
	attrs.PutDouble(genai.KeyBaselineUSD, r.Baseline.USD())
	ev := span.Events().AppendEmpty()
	ev.SetName(genai.EventAnomaly)
	ev.SetTimestamp(span.EndTimestamp())
	ev.Attributes().PutDouble(genai.KeyAnomalyRatio, r.Ratio)
	ev.Attributes().PutDouble(genai.KeyBaselineUSD, r.Baseline.USD())
}

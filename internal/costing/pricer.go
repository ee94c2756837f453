// Package costing prices the LLM spans of a trace batch: it reads each span's call (internal/genai),
// matches its price (internal/pricing), writes the cost and attribution attributes, and observes the
// per-(agent, model) baseline (internal/baseline). The agentcost processor is a thin shell around it.
package costing

import (
	"context"
	"errors"
	"slices"
	"strings"
	"unsafe"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl/contexts/ottlspan"
	"go.opentelemetry.io/collector/pdata/pcommon"
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
	// Limits are the plausibility bounds of one span; a span beyond them is not priced.
	Limits Limits
	// DenyMatch are the match kinds that may not price a span (the complement of the processor's
	// prices.allow_match): a span whose price was found by one of them is left unpriced, marked
	// agentcost.price.unknown and counted. Zero allows every kind.
	DenyMatch pricing.MatchKind
	// ReportedCost says when a cost the span reports itself (gen_ai.usage.cost.amount, OpenLIT's
	// gen_ai.usage.cost, OpenInference's llm.cost.total) is booked instead of the table's price.
	// The zero value ignores it: a reported cost is the sender's word.
	ReportedCost ReportedCostMode
}

// ReportedCostMode is the processor's prices.reported_cost.
type ReportedCostMode string

// The ReportedCost modes.
const (
	// ReportedCostIgnore never books a reported cost (the default).
	ReportedCostIgnore ReportedCostMode = "ignore"
	// ReportedCostPrefer books a span's reported dollar cost whenever it has one, the table's
	// price otherwise.
	ReportedCostPrefer ReportedCostMode = "prefer"
	// ReportedCostWhenUnpriced books a span's reported dollar cost only when the table cannot
	// price it (no entry, a match kind not allowed, or no token usage).
	ReportedCostWhenUnpriced ReportedCostMode = "only_when_unpriced"
)

// CostSourceReported is the agentcost.cost.source of a span booked at the cost it reported.
const CostSourceReported = "reported"

// ToolOperation is the gen_ai.operation.name of a tool or MCP call span.
const ToolOperation = "execute_tool"

// KeyToolName is the GenAI key naming the tool an execute_tool span called.
const KeyToolName = "gen_ai.tool.name"

// ToolModelPrefix prefixes the tool name in the agentcost.model of a priced tool call
// ("tool:web_search"), so tool spend is booked beside model spend without colliding with a model.
const ToolModelPrefix = "tool:"

// The malformed reasons of tool spans and reported costs.
const (
	// ReasonToolUnits: the unit attribute of a per-unit tool price is not a whole, non-negative count.
	ReasonToolUnits = "tool_units"
	// ReasonReportedCurrency: a reported cost in another currency than USD (not booked).
	ReasonReportedCurrency = "reported_cost_currency"
)

// MatchCount keys Stats.Matches: spans priced, or refused, by a non-exact match.
type MatchCount struct {
	// Model is the matched table entry (bounded by the table, unlike raw span model names).
	Model string
	// Kind is one match kind (a span matched by several kinds counts once under each).
	Kind pricing.MatchKind
	// Allowed is false when DenyMatch refused the span.
	Allowed bool
}

// Limits are the plausibility bounds of one span. A span whose usage or cost is beyond them is
// counted as malformed (reason ReasonTokensOverLimit or ReasonCostOverLimit), passes through
// unpriced, and is therefore never booked. Zero fields set no bound.
type Limits struct {
	// MaxTokensPerCount bounds each token count of a span (input, output, cache read, cache
	// write, reasoning) and its seconds, pixels and characters.
	MaxTokensPerCount int64
	// MaxCostPerSpan bounds a span's priced cost.
	MaxCostPerSpan money.Nanos
}

// The malformed reasons of spans beyond Limits.
const (
	ReasonTokensOverLimit = "tokens_over_limit"
	ReasonCostOverLimit   = "cost_over_limit"
)

// overTokens reports whether a count of u is above limit (0: no bound): a token count, or a
// per-second, per-pixel or per-character count (seconds compared whole, rounded up).
func overTokens(u pricing.Usage, limit int64) bool {
	return limit > 0 && (max(u.InputTokens, u.OutputTokens, u.CacheReadTokens, u.CacheWriteTokens, u.ReasoningTokens) > limit ||
		max(u.InputPixels, u.OutputPixels, u.InputCharacters, u.OutputCharacters) > limit ||
		(max(u.InputMillis, u.OutputMillis)+999)/1000 > limit)
}

// Stats counts what one batch did, for the processor's telemetry.
type Stats struct {
	Priced, Unpriced, Aggregates, Anomalies int64
	// Escalations counts spans flagged as escalating; LevelShifts the level shifts their baselines learned.
	Escalations, LevelShifts int64
	// Malformed counts spans whose usage could not be read, by the first reason.
	Malformed map[string]int64
	// OverrideErrors counts spans where an OTTL override or condition failed to evaluate.
	OverrideErrors int64
	// Matches counts the spans whose price was found by a non-exact match, per model and kind.
	Matches map[MatchCount]int64
	// Cost is the total priced.
	Cost money.Nanos
	// AgentOverridden counts spans booked to another agent than the one they claimed, because the
	// authenticated sender decides (see Attribution).
	AgentOverridden int64
	// Claimed is the agent the first overridden span claimed, and BookedTo the agent it was booked
	// to, for the log line.
	Claimed, BookedTo string
	// TeamOverridden counts spans booked to their sender's default team instead of the team they
	// claimed, because the authenticated agent token lists its teams (see Attribution.Teams).
	TeamOverridden int64
	// ClaimedTeam is the team the first of them claimed, and TeamBookedTo the team it was booked
	// to, for the log line.
	ClaimedTeam, TeamBookedTo string
	// OverLimit counts spans beyond the Limits (also counted in Malformed by their reason).
	OverLimit int64
	// OverLimitAgent, OverLimitService and OverLimitReason describe the first of them, for the
	// log line: the agent it claimed, its resource's service.name, and the reason.
	OverLimitAgent, OverLimitService, OverLimitReason string
	// sameCall holds the spans that repeat a direct child's call in the batch (samecall.go); they
	// are marked as aggregates and counted in Aggregates.
	sameCall map[spanRef]struct{}
	// Tools counts the tool and MCP call spans priced from the price file's tools.
	Tools int64
	// Reported counts the spans booked at the cost they reported (prices.reported_cost).
	Reported int64
	// UnpricedUnits counts priced spans that reported units (web-search queries, images, a tool's
	// units) without a price for them; they carry agentcost.price.unpriced_units.
	UnpricedUnits int64
}

// Attribution is what the authenticated sender of a resource's spans decides about their agent.
type Attribution struct {
	// Agent, when set, is the agent of every span: the authenticated sender's subject. It wins over
	// span and resource attributes and over fields.agent overrides.
	Agent string
	// Allowed, when set (and Agent is not), restricts the agents spans may claim; a span claiming
	// another is booked to Fallback.
	Allowed func(agent string) bool
	// Fallback is the agent of spans claiming an agent Allowed refuses.
	Fallback string
	// Untrusted removes the processor's own outputs (agentcost.cost_usd, agentcost.agent, ...) the
	// sender wrote, so that its spans are priced here from their usage, never from its claims.
	Untrusted bool
	// Teams, when set, are the teams the spans may be booked to, the first the default: a span
	// whose team (after fields.team overrides) is not listed is booked to the first and counted,
	// a span naming none gets the first. Empty leaves each span its own team.
	Teams []string
}

// team returns the team a span claiming claimed (empty: none) is booked to, and whether a claimed
// team was replaced.
func (a *Attribution) team(claimed string) (string, bool) {
	if a == nil || len(a.Teams) == 0 || slices.Contains(a.Teams, claimed) {
		return claimed, false
	}
	return a.Teams[0], claimed != ""
}

func (s *Stats) teamOverridden(claimed, bookedTo string) {
	if s.TeamOverridden == 0 {
		s.ClaimedTeam, s.TeamBookedTo = claimed, bookedTo
	}
	s.TeamOverridden++
}

// resolve returns the agent a span claiming claimed is booked to, and whether it differs.
func (a *Attribution) resolve(claimed string) (string, bool) {
	switch {
	case a.Agent != "":
		return a.Agent, claimed != a.Agent
	case a.Allowed != nil && !a.Allowed(claimed):
		return a.Fallback, true
	}
	return claimed, false
}

func (s *Stats) overridden(claimed, bookedTo string) {
	if s.AgentOverridden == 0 {
		s.Claimed, s.BookedTo = claimed, bookedTo
	}
	s.AgentOverridden++
}

// untrustedKeys are the span attributes only an agentcost processor writes; a sender that is not a
// trusted forwarder may not set them.
var untrustedKeys = [...]string{genai.KeyCostUSD, genai.KeyAgent, genai.KeyModel, genai.KeyPriceUnknown,
	genai.KeyAnomaly, genai.KeyAnomalyRatio, genai.KeyBaselineUSD, genai.KeyAggregate, genai.KeyCostInputUSD,
	genai.KeyCostOutputUSD, genai.KeyCostCacheRead, genai.KeyCostCacheWrite, genai.KeyPriceSource, genai.KeyPriceMatch,
	KeyClaimedAgent, KeyClaimedTeam, genai.KeyCostSource, genai.KeyUnpricedUnits, genai.KeyCostUnitsUSD,
	genai.KeyUsageConvention}

// KeyClaimedAgent is the span attribute that keeps the agent a span claimed when its authenticated
// sender decided another.
const KeyClaimedAgent = "agentcost.auth.claimed_agent"

// KeyClaimedTeam is the span attribute that keeps the team a span claimed when its authenticated
// agent token may not charge it (the span is booked to the token's default team).
const KeyClaimedTeam = "agentcost.auth.claimed_team"

func (s *Stats) matched(model string, kind pricing.MatchKind, allowed bool) {
	if s.Matches == nil {
		s.Matches = make(map[MatchCount]int64, 2)
	}
	for k := pricing.MatchKind(1); k != 0 && k <= pricing.AllMatchKinds; k <<= 1 {
		if kind&k != 0 {
			s.Matches[MatchCount{Model: model, Kind: k, Allowed: allowed}]++
		}
	}
}

// matchModel is the model a match is counted under: the table entry, or "<provider>/*" for a
// provider's fallback price, so that the label never takes a raw span model name.
func matchModel(e *pricing.Entry) string {
	if e.Fallback {
		return e.Provider + "/*"
	}
	return e.Model
}

// overLimit counts a span beyond the plausibility limits and marks it with the reason
// (agentcost.malformed), like a span whose usage could not be read.
func (s *Stats) overLimit(attrs pcommon.Map, reason, agent string, rs ptrace.ResourceSpans) {
	attrs.PutStr(genai.KeyMalformed, reason)
	s.malformed(reason)
	if s.OverLimit == 0 {
		s.OverLimitReason, s.OverLimitAgent = reason, agent
		if v, ok := rs.Resource().Attributes().Get("service.name"); ok {
			s.OverLimitService = v.AsString()
		}
	}
	s.OverLimit++
}

// malformedSpan counts a span whose usage could not be read and marks it with the reason
// (agentcost.malformed), so that the span in a tracing backend, and the processor's warning, say why
// it carries no cost.
func (s *Stats) malformedSpan(attrs pcommon.Map, reason string) {
	attrs.PutStr(genai.KeyMalformed, reason)
	s.malformed(reason)
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
	return p.ProcessTracesFor(ctx, td, nil)
}

// ProcessTracesFor prices like ProcessTraces, with the attribution attribution returns for each
// resource (nil attribution, or a nil result: the spans' own attribution, as ProcessTraces).
func (p *Pricer) ProcessTracesFor(ctx context.Context, td ptrace.Traces, attribution func(ptrace.ResourceSpans) *Attribution) Stats {
	var st Stats
	st.sameCall = p.sameCalls(td)
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		var a *Attribution
		if attribution != nil {
			a = attribution(rs)
		}
		res := genai.ReadResource(rs.Resource().Attributes())
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			sres := res.InScope(ss.Scope().Name()) // the scope's token semantics (genai)
			spans := ss.Spans()
			for k := 0; k < spans.Len(); k++ {
				p.span(ctx, rs, ss, spans.At(k), &sres, a, &st)
			}
		}
	}
	return st
}

func (p *Pricer) span(ctx context.Context, rs ptrace.ResourceSpans, ss ptrace.ScopeSpans, span ptrace.Span, res *genai.Resource, a *Attribution, st *Stats) {
	attrs := span.Attributes()
	if a != nil && a.Untrusted {
		attrs.RemoveIf(func(k string, _ pcommon.Value) bool {
			return strings.HasPrefix(k, "agentcost.") && slices.Contains(untrustedKeys[:], k)
		})
	}
	c := p.Extractor.Extract(attrs, span.Name(), res)
	if st.isSameCall(span) {
		c.Aggregate = true // the same call as a child span in this batch: the child is priced
	}
	if c.AlreadyPriced {
		// Priced by an agentcost processor earlier in the pipeline (a trusted forwarder's): never
		// priced twice, but its agent obeys the sender's attribution.
		if a != nil {
			if v, ok := attrs.Get(genai.KeyAgent); ok {
				if agent, changed := a.resolve(v.AsString()); changed {
					st.overridden(v.AsString(), agent)
					attrs.PutStr(KeyClaimedAgent, v.AsString())
					attrs.PutStr(genai.KeyAgent, agent)
				}
			}
			if len(a.Teams) > 0 {
				claimed := ""
				if v, ok := attrs.Get(genai.KeyTeam); ok {
					claimed = v.AsString()
				}
				if team, changed := a.team(claimed); team != claimed {
					if changed {
						st.teamOverridden(claimed, team)
						attrs.PutStr(KeyClaimedTeam, claimed)
					}
					attrs.PutStr(genai.KeyTeam, team)
				}
			}
		}
		return
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
		if p.Table.HasTools() && p.tool(rs, span, attrs, &c, a, st) {
			return
		}
		if c.Model == "" || !p.reportedAllowed(&c) {
			return // not a provider call (or a model named without usage): nothing to price
		}
		// A model call without token usage but with a reported cost the configuration books.
	}
	if c.Aggregate {
		attrs.PutBool(genai.KeyAggregate, true)
		st.Aggregates++
		return
	}
	if c.Malformed != 0 {
		st.malformedSpan(attrs, c.Malformed.First())
		return
	}
	if overTokens(c.Usage, p.Limits.MaxTokensPerCount) {
		st.overLimit(attrs, ReasonTokensOverLimit, c.Agent, rs)
		return
	}
	if p.Normalize {
		genai.Normalize(attrs, &c)
	}
	hit := p.Table.LookupHit(c.Model, c.Provider)
	entry := hit.Entry
	var cost pricing.Cost
	priced := false // priced by the table
	// An entry priced only per second, pixel or character prices nothing of a span with only
	// tokens: that span is unpriced, not $0.
	pricesAny := entry != nil && entry.PricesAny(c.Usage)
	if entry != nil && hit.Kind&p.DenyMatch == 0 && c.HasUsage && pricesAny {
		var err error
		if cost, err = entry.Cost(c.Usage); err != nil {
			reason := "inconsistent_usage"
			if errors.Is(err, pricing.ErrCostOverflow) {
				reason = "cost_overflow"
			}
			st.malformedSpan(attrs, reason)
			return
		}
		priced = true
	}
	source := ""
	if rep, ok := p.reported(&c, st); ok && (p.ReportedCost == ReportedCostPrefer || !priced) {
		cost, source = pricing.Cost{Total: rep}, CostSourceReported
	} else if !priced {
		switch {
		case entry == nil || !c.HasUsage || !pricesAny:
			attrs.PutBool(genai.KeyPriceUnknown, true)
			st.Unpriced++
		default:
			// Found only by a kind of match the configuration does not trust: never a silent guess.
			attrs.PutBool(genai.KeyPriceUnknown, true)
			attrs.PutStr(genai.KeyPriceMatch, hit.Kind.String())
			st.Unpriced++
			st.matched(matchModel(entry), hit.Kind, false)
		}
		return
	}
	if p.Limits.MaxCostPerSpan > 0 && cost.Total > p.Limits.MaxCostPerSpan {
		st.overLimit(attrs, ReasonCostOverLimit, c.Agent, rs)
		return
	}
	b := booked{cost: cost, source: source}
	switch {
	case source == CostSourceReported && (entry == nil || hit.Kind&p.DenyMatch != 0):
		b.model = c.Model // no table entry to name it by: the span's own model name
	case source == CostSourceReported:
		b.model, b.priceSource = entry.Model, entry.Source
		if entry.Fallback {
			b.model = c.Model
		}
	default:
		b.model, b.priceSource, b.kind, b.matchModel = entry.Model, entry.Source, hit.Kind, matchModel(entry)
		if entry.Fallback {
			b.model = c.Model
		}
	}
	p.book(rs, span, &c, a, st, b)
}

// booked is what a priced span is booked as.
type booked struct {
	cost pricing.Cost
	// model is the agentcost.model written; priceSource the price file label (detailed level).
	model, priceSource string
	// kind is the non-exact match that found the price, counted under matchModel.
	kind       pricing.MatchKind
	matchModel string
	// source is the agentcost.cost.source, "" for the price table.
	source string
}

// reportedAllowed reports whether the configuration books c's reported cost at all.
func (p *Pricer) reportedAllowed(c *genai.Call) bool {
	return c.HasReportedCost && (p.ReportedCost == ReportedCostPrefer || p.ReportedCost == ReportedCostWhenUnpriced)
}

// reported returns the span's reported cost when the configuration may book it: a finite,
// non-negative dollar amount. A cost in another currency is counted and never booked (there is
// no exchange rate here to guess with).
func (p *Pricer) reported(c *genai.Call, st *Stats) (money.Nanos, bool) {
	if !p.reportedAllowed(c) {
		return 0, false
	}
	if !c.ReportedCostInUSD() {
		st.malformed(ReasonReportedCurrency)
		return 0, false
	}
	return c.ReportedCost()
}

// tool prices an execute_tool span whose gen_ai.tool.name the price file's tools price, and
// reports whether the span was a priced tool call (priced, or refused and counted).
func (p *Pricer) tool(rs ptrace.ResourceSpans, span ptrace.Span, attrs pcommon.Map, c *genai.Call, a *Attribution, st *Stats) bool {
	op, ok := attrs.Get("gen_ai.operation.name")
	if !ok || op.Type() != pcommon.ValueTypeStr || op.Str() != ToolOperation {
		return false
	}
	nv, ok := attrs.Get(KeyToolName)
	if !ok || nv.Type() != pcommon.ValueTypeStr {
		return false
	}
	tp, ok := p.Table.Tool(nv.Str())
	if !ok {
		return false // a tool without a price is free (most are local functions)
	}
	var units int64
	unpriced := false
	if tp.UnitAttribute != "" && tp.PerUnit != 0 {
		uv, present := attrs.Get(tp.UnitAttribute)
		if present {
			var bad genai.Malformed
			if units, bad = genai.TokenCount(uv); bad != 0 {
				st.malformedSpan(attrs, ReasonToolUnits)
				return true
			}
			// The unit count is the sender's word, held to the same bound as a token count.
			if p.Limits.MaxTokensPerCount > 0 && units > p.Limits.MaxTokensPerCount {
				st.overLimit(attrs, ReasonTokensOverLimit, c.Agent, rs)
				return true
			}
		} else {
			unpriced = true
		}
	}
	n, err := tp.Cost(units)
	if err != nil {
		st.malformed(ReasonToolUnits)
		return true
	}
	if unpriced && tp.PerCall == 0 {
		// Priced only per unit and the span does not count them: never a silent $0.
		attrs.PutBool(genai.KeyPriceUnknown, true)
		attrs.PutStr(genai.KeyUnpricedUnits, "tool_units")
		st.Unpriced++
		return true
	}
	if p.Limits.MaxCostPerSpan > 0 && n > p.Limits.MaxCostPerSpan {
		st.overLimit(attrs, ReasonCostOverLimit, c.Agent, rs)
		return true
	}
	if unpriced {
		attrs.PutStr(genai.KeyUnpricedUnits, "tool_units")
		st.UnpricedUnits++
	}
	st.Tools++
	p.book(rs, span, c, a, st, booked{cost: pricing.Cost{Units: n, Total: n}, model: ToolModelPrefix + tp.Name, priceSource: tp.Source})
	return true
}

// book writes a priced span's cost and attribution and observes its baseline.
func (p *Pricer) book(rs ptrace.ResourceSpans, span ptrace.Span, c *genai.Call, a *Attribution, st *Stats, b booked) {
	attrs := span.Attributes()
	cost, model := b.cost, b.model
	agent := c.Agent
	if agent == "" {
		agent = UnknownAgent
	}
	if a != nil {
		if booked, changed := a.resolve(agent); changed {
			// Only a span (or resource) that named an agent claimed one.
			if c.Agent != "" {
				st.overridden(c.Agent, booked)
				attrs.PutStr(KeyClaimedAgent, c.Agent)
			}
			agent = booked
		}
	}
	team, teamChanged := a.team(c.Team)
	if teamChanged {
		st.teamOverridden(c.Team, team)
		attrs.PutStr(KeyClaimedTeam, c.Team)
	}
	writes := 3
	if team != "" {
		writes++
	}
	if p.Detailed {
		writes += 7
	}
	if b.kind != 0 || b.source != "" || cost.Unpriced != 0 {
		writes++
	}
	attrs.EnsureCapacity(attrs.Len() + writes) // one slice growth for all the attributes written
	attrs.PutDouble(genai.KeyCostUSD, cost.Total.USD())
	attrs.PutStr(genai.KeyAgent, agent)
	attrs.PutStr(genai.KeyModel, model)
	if team != "" {
		attrs.PutStr(genai.KeyTeam, team)
	}
	if b.kind != 0 {
		attrs.PutStr(genai.KeyPriceMatch, b.kind.String())
		st.matched(b.matchModel, b.kind, true)
	}
	if b.source != "" {
		attrs.PutStr(genai.KeyCostSource, b.source)
		st.Reported++
	}
	if cost.Unpriced != 0 && b.source == "" {
		attrs.PutStr(genai.KeyUnpricedUnits, cost.Unpriced.String())
		st.UnpricedUnits++
	}
	if p.Detailed {
		attrs.PutDouble(genai.KeyCostInputUSD, cost.Input.USD())
		attrs.PutDouble(genai.KeyCostOutputUSD, cost.Output.USD())
		attrs.PutDouble(genai.KeyCostCacheRead, cost.CacheRead.USD())
		attrs.PutDouble(genai.KeyCostCacheWrite, cost.CacheWrite.USD())
		if cost.Units != 0 {
			attrs.PutDouble(genai.KeyCostUnitsUSD, cost.Units.USD())
		}
		if b.priceSource != "" {
			attrs.PutStr(genai.KeyPriceSource, b.priceSource)
		}
		if c.Tenant != "" {
			attrs.PutStr(genai.KeyTenant, c.Tenant)
		}
	}
	st.Priced++
	st.Cost += cost.Total
	if p.Baselines != nil {
		r := p.observe(agent, model, cost.Total)
		if r.Anomalous {
			st.Anomalies++
			markAnomaly(span, r)
		}
		if r.Escalating {
			st.Escalations++
			span.Attributes().PutBool(genai.KeyEscalating, true)
		}
		if r.LevelShift {
			st.LevelShifts++
			markLevelShift(span, r)
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

// markLevelShift records, as a span event, that this call completed a sustained change of its
// (agent, model) cost level: the baseline moved from the old level to the new one.
func markLevelShift(span ptrace.Span, r baseline.Result) {
	ev := span.Events().AppendEmpty()
	ev.SetName(genai.EventLevelShift)
	ev.SetTimestamp(span.EndTimestamp())
	ev.Attributes().PutDouble(genai.KeyBaselineUSD, r.Baseline.USD())
	ev.Attributes().PutDouble(genai.KeyNewBaselineUSD, r.NewBaseline.USD())
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

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
}

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
	// write, reasoning).
	MaxTokensPerCount int64
	// MaxCostPerSpan bounds a span's priced cost.
	MaxCostPerSpan money.Nanos
}

// The malformed reasons of spans beyond Limits.
const (
	ReasonTokensOverLimit = "tokens_over_limit"
	ReasonCostOverLimit   = "cost_over_limit"
)

// overTokens reports whether a count of u is above limit (0: no bound).
func overTokens(u pricing.Usage, limit int64) bool {
	return limit > 0 && max(u.InputTokens, u.OutputTokens, u.CacheReadTokens, u.CacheWriteTokens, u.ReasoningTokens) > limit
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
	KeyClaimedAgent, KeyClaimedTeam}

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

func (s *Stats) overLimit(reason, agent string, rs ptrace.ResourceSpans) {
	s.malformed(reason)
	if s.OverLimit == 0 {
		s.OverLimitReason, s.OverLimitAgent = reason, agent
		if v, ok := rs.Resource().Attributes().Get("service.name"); ok {
			s.OverLimitService = v.AsString()
		}
	}
	s.OverLimit++
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
			spans := ss.Spans()
			for k := 0; k < spans.Len(); k++ {
				p.span(ctx, rs, ss, spans.At(k), &res, a, &st)
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
	if overTokens(c.Usage, p.Limits.MaxTokensPerCount) {
		st.overLimit(ReasonTokensOverLimit, c.Agent, rs)
		return
	}
	if p.Normalize {
		genai.Normalize(attrs, &c)
	}
	hit := p.Table.LookupHit(c.Model, c.Provider)
	entry := hit.Entry
	if entry == nil {
		attrs.PutBool(genai.KeyPriceUnknown, true)
		st.Unpriced++
		return
	}
	if hit.Kind&p.DenyMatch != 0 {
		// Found only by a kind of match the configuration does not trust: never a silent guess.
		attrs.PutBool(genai.KeyPriceUnknown, true)
		attrs.PutStr(genai.KeyPriceMatch, hit.Kind.String())
		st.Unpriced++
		st.matched(matchModel(entry), hit.Kind, false)
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
	if p.Limits.MaxCostPerSpan > 0 && cost.Total > p.Limits.MaxCostPerSpan {
		st.overLimit(ReasonCostOverLimit, c.Agent, rs)
		return
	}
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
	model := entry.Model
	if entry.Fallback {
		model = c.Model
	}
	writes := 3
	if team != "" {
		writes++
	}
	if p.Detailed {
		writes += 6
	}
	if hit.Kind != 0 {
		writes++
	}
	attrs.EnsureCapacity(attrs.Len() + writes) // one slice growth for all the attributes written
	attrs.PutDouble(genai.KeyCostUSD, cost.Total.USD())
	attrs.PutStr(genai.KeyAgent, agent)
	attrs.PutStr(genai.KeyModel, model)
	if team != "" {
		attrs.PutStr(genai.KeyTeam, team)
	}
	if hit.Kind != 0 {
		attrs.PutStr(genai.KeyPriceMatch, hit.Kind.String())
		st.matched(matchModel(entry), hit.Kind, true)
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

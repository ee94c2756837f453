// Package genai reads what an LLM span says about its provider call — model, provider, token
// usage, service tier — and who it is attributed to (agent, team, tenant, run, action), from every
// instrumentation dialect agentcost understands: the current OpenTelemetry GenAI semantic
// conventions, their legacy names, OpenLLMetry, OpenInference, the Vercel AI SDK and OpenLIT.
//
// The standard keys are read natively in one pass over a span's attributes without allocating;
// users override or extend any field with OTTL value expressions (see Overrides). Normalize writes
// the GenAI convention's keys onto dialect spans so that everything downstream reads one convention.
package genai

import (
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/pricing"
)

// Call is what one span says about its provider call and its attribution.
type Call struct {
	// Model is the model name as the span gives it (not yet matched against a price table).
	Model string
	// ModelKey is the attribute key Model came from, or the OTTL expression that gave it.
	ModelKey string
	// Provider is the provider normalised to gen_ai.provider.name values ("openai", "aws.bedrock").
	Provider string
	// Usage is the token usage; counts that were Malformed in themselves are 0.
	Usage pricing.Usage
	// HasUsage is set when the span carries any token-count key, valid or not.
	HasUsage bool
	// ReportedCostUSD is a cost the instrumentation computed itself (OpenLIT's gen_ai.usage.cost).
	// It is kept for comparison and never trusted over the price table.
	ReportedCostUSD float64
	// HasReportedCost is set when ReportedCostUSD holds a finite, non-negative value.
	HasReportedCost bool
	// ReportedCostCurrency is gen_ai.usage.cost.currency as the span gives it ("" when absent:
	// OpenLIT's and OpenInference's costs are dollars).
	ReportedCostCurrency string
	// unitBad is the Malformed reason of the modality and per-unit counts' own values (modes.go).
	unitBad Malformed
	// hasUnits is set when the span carries a per-unit count (web-search queries, images).
	hasUnits bool

	// Agent is the canonical agent key: span gen_ai.agent.name, span gen_ai.agent.id, resource
	// gen_ai.agent.name, resource gen_ai.agent.id, resource service.name.
	Agent string
	// Team is agentcost.team (span, then resource), else resource team, else resource service.namespace.
	Team string
	// Tenant is agentcost.tenant, else tenant.id (span before resource for each).
	Tenant string
	// RunID is agentcost.run_id; empty means the caller falls back to the trace id.
	RunID string
	// Action is agentcost.action, else gen_ai.operation.name.
	Action string
	// DecisionID is agentcost.decision_id, linking the span to a budget decision.
	DecisionID string

	// Dialect is the instrumentation convention the span follows.
	Dialect Dialect
	// Aggregate marks a span that repeats its children's usage (Vercel AI SDK generateText and
	// friends): the processor marks it and never prices it.
	Aggregate bool
	// AlreadyPriced is set when the span carries agentcost.cost_usd from an earlier agentcost processor.
	AlreadyPriced bool
	// Malformed lists why the usage cannot be trusted; zero when it can.
	Malformed Malformed

	// rank is, per field, the rank of the key the value came from (0 none, rankOTTL an override).
	rank [numFields]uint8
	// fieldBad is the Malformed reason of each usage field's own value (usageFields order).
	fieldBad [len(usageFields)]Malformed
	// modelResponse marks a Model that came from a key naming the responding model.
	modelResponse bool
	// scope and scopeKnown are the span's instrumentation scope rules (Resource.InScope); total the
	// reported total token count (hasTotal); outputAdded the reasoning tokens semantics added to an
	// output that left them out (semantics.go).
	scope       []scopeRule
	scopeKnown  bool
	total       int64
	hasTotal    bool
	outputAdded int64
	// inputRaw is set when the scope or the total said the input leaves out the cache.
	inputRaw bool
}

// rankOTTL is the rank recorded for a field an OTTL override set.
const rankOTTL = 255

// IsLLM reports whether the span describes a provider call: it has usage or a model.
func (c *Call) IsLLM() bool { return c.HasUsage || c.Model != "" }

// ReportedCost returns ReportedCostUSD in nano-dollars, for comparison with the table's price.
func (c *Call) ReportedCost() (money.Nanos, bool) {
	if !c.HasReportedCost {
		return 0, false
	}
	n, err := money.FromUSD(c.ReportedCostUSD)
	if err != nil {
		return 0, false
	}
	return n, true
}

// Resource holds the attribution a resource gives all of its spans; read it once per resource
// with ReadResource.
type Resource struct {
	agent    string // gen_ai.agent.name, gen_ai.agent.id, service.name
	team     string // agentcost.team, team, service.namespace
	tenant   string // agentcost.tenant
	tenantID string // tenant.id
	runID    string // agentcost.run_id
	openLIT  bool   // telemetry.sdk.name = openlit
	// scope holds the token-semantics rules of the spans' instrumentation scope (InScope);
	// scopeKnown is set when the scope is a known one (its counts' meaning is not guessed).
	scope      []scopeRule
	scopeKnown bool
}

// Agent is the agent key the resource gives spans that name none themselves.
func (r *Resource) Agent() string { return r.agent }

// Team is the team the resource gives spans that name none themselves.
func (r *Resource) Team() string { return r.team }

// ReadResource reads a resource's attribution attributes in one pass, without allocating.
func ReadResource(attrs pcommon.Map) Resource {
	var agent, team [3]string
	var r Resource
	attrs.Range(func(k string, v pcommon.Value) bool {
		if v.Type() != pcommon.ValueTypeStr || v.Str() == "" {
			return true
		}
		s := v.Str()
		switch k {
		case "gen_ai.agent.name":
			agent[0] = s
		case "gen_ai.agent.id":
			agent[1] = s
		case "service.name":
			agent[2] = s
		case KeyTeam:
			team[0] = s
		case "team":
			team[1] = s
		case "service.namespace":
			team[2] = s
		case KeyTenant:
			r.tenant = s
		case "tenant.id":
			r.tenantID = s
		case KeyRunID:
			r.runID = s
		case "telemetry.sdk.name":
			r.openLIT = strings.EqualFold(s, "openlit")
		}
		return true
	})
	r.agent = firstNonEmpty(agent[:])
	r.team = firstNonEmpty(team[:])
	return r
}

func firstNonEmpty(ss []string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// Options configure an Extractor.
type Options struct {
	// InputExcludesCache lists where a span's input token count excludes the cached tokens
	// (Anthropic's raw API usage), as "dialect" or "dialect/provider" entries; the dialect may
	// be "*" ("vercel/anthropic", "*/anthropic"). Default: none (input includes cache, as the
	// GenAI convention says).
	InputExcludesCache []string
	// AggregateOperations are the Vercel AI SDK operations (ai.operationId, else the span name)
	// whose spans repeat their children's usage. Nil means DefaultAggregateOperations; an empty,
	// non-nil slice marks no span as an aggregate.
	AggregateOperations []string
}

// DefaultAggregateOperations returns the Vercel AI SDK parent operations that repeat the usage of
// their ai.*.doGenerate / ai.*.doStream children.
func DefaultAggregateOperations() []string {
	return []string{"ai.generateText", "ai.streamText", "ai.generateObject", "ai.streamObject"}
}

type cacheRule struct {
	anyDialect bool
	dialect    Dialect
	provider   string // normalised; "" matches any provider
}

// Extractor reads Calls from spans. It is immutable after NewExtractor and safe for concurrent use.
type Extractor struct {
	cacheRules []cacheRule
	aggregates map[string]struct{}
}

// NewExtractor validates opts and returns an Extractor.
func NewExtractor(opts Options) (*Extractor, error) {
	e := &Extractor{aggregates: map[string]struct{}{}}
	for _, entry := range opts.InputExcludesCache {
		r, err := parseCacheRule(entry)
		if err != nil {
			return nil, err
		}
		e.cacheRules = append(e.cacheRules, r)
	}
	ops := opts.AggregateOperations
	if ops == nil {
		ops = DefaultAggregateOperations()
	}
	for _, op := range ops {
		if op == "" {
			return nil, fmt.Errorf("aggregate_operations: empty operation name")
		}
		e.aggregates[op] = struct{}{}
	}
	return e, nil
}

func parseCacheRule(entry string) (cacheRule, error) {
	dialectName, provider, _ := strings.Cut(entry, "/")
	var r cacheRule
	if dialectName == "*" {
		r.anyDialect = true
	} else {
		d, ok := ParseDialect(dialectName)
		if !ok || d == DialectNone {
			return r, fmt.Errorf("input_excludes_cache: entry %q: unknown dialect %q (want one of genai, genai_legacy, openllmetry, openinference, vercel, openlit, *)", entry, dialectName)
		}
		r.dialect = d
	}
	if strings.Contains(provider, "/") {
		return r, fmt.Errorf("input_excludes_cache: entry %q: want \"dialect\" or \"dialect/provider\"", entry)
	}
	if r.anyDialect && provider == "" {
		return r, fmt.Errorf("input_excludes_cache: entry %q: \"*\" needs a provider (\"*/anthropic\")", entry)
	}
	r.provider = NormalizeProvider(provider)
	return r, nil
}

var defaultExtractor, _ = NewExtractor(Options{})

// Extract reads a span with the default options (no cache exclusion, the default aggregates).
func Extract(attrs pcommon.Map, name string, res *Resource) Call {
	return defaultExtractor.Extract(attrs, name, res)
}

// Extract reads a span's attributes (one pass), its name and its resource's attribution (res may
// be nil) into a Call. It never panics and does not allocate.
func (e *Extractor) Extract(attrs pcommon.Map, name string, res *Resource) Call {
	var c Call
	var slots [numFields]pcommon.Value
	hints := c.collect(attrs, &slots)
	c.readUsage(&slots)
	if c.rank[fSDKName] != 0 && strings.EqualFold(slots[fSDKName].Str(), "openlit") && hints != 0 {
		hints |= hOpenLIT
	}
	if res != nil && res.openLIT && hints != 0 {
		hints |= hOpenLIT
	}
	c.Dialect = hints.dialect()
	c.AlreadyPriced = c.rank[fPriced] != 0

	// Only a span that carries usage can repeat its children's usage; skip the lookup otherwise.
	if c.HasUsage {
		op := name
		if c.rank[fOperationID] != 0 {
			op = slots[fOperationID].Str()
		}
		_, c.Aggregate = e.aggregates[op]
	}
	c.attribute(&slots, res)
	e.finish(&c)
	return c
}

// collect is the one pass over the attributes: it keeps, per field, the value of its
// best-ranked key in slots (c.rank records the rank), and returns the dialect hints of the keys.
func (c *Call) collect(attrs pcommon.Map, slots *[numFields]pcommon.Value) hint {
	var hints hint
	attrs.Range(func(k string, v pcommon.Value) bool {
		if len(k) == 0 || !keyFirstByte[k[0]] {
			return true // most keys of non-LLM spans end here, without hashing
		}
		ref, ok := keyIndex[k]
		if !ok {
			if strings.HasPrefix(k, "traceloop.") {
				hints |= hOpenLLMetry
			}
			return true
		}
		hints |= ref.hint
		if isStringField(ref.field) && (v.Type() != pcommon.ValueTypeStr || v.Str() == "") {
			return true // an empty or non-string name is no name; a later key may give one
		}
		if cur := c.rank[ref.field]; cur == 0 || ref.rank < cur {
			c.rank[ref.field] = ref.rank
			slots[ref.field] = v
			if ref.field == fModel {
				c.modelResponse = ref.response
			}
		}
		return true
	})
	return hints
}

// readUsage reads the model, the provider, the token usage, the service tier, the reported cost
// and the modes from the collected values.
func (c *Call) readUsage(slots *[numFields]pcommon.Value) {
	if c.rank[fModel] != 0 {
		c.Model = slots[fModel].Str()
		c.ModelKey = fieldKeys[fModel][c.rank[fModel]-1].key
	}
	if c.rank[fProvider] != 0 {
		c.Provider = NormalizeProvider(slots[fProvider].Str())
	}
	for i, f := range usageFields {
		if c.rank[f] == 0 {
			continue
		}
		c.HasUsage = true
		n, bad := tokenValue(slots[f])
		c.fieldBad[i] = bad
		c.setUsage(f, n)
	}
	if c.rank[fTier] != 0 {
		c.Usage.Tier = pricing.ParseServiceTier(slots[fTier].Str())
	}
	c.total, c.hasTotal = totalValue(slots[fTotal], c.rank[fTotal])
	if c.rank[fCost] != 0 {
		c.ReportedCostUSD, c.HasReportedCost = AmountUSD(slots[fCost])
	}
	c.readModes(slots)
}

// attribute reads the span's attribution (decision, action, agent, team, run, tenant), falling
// back to its resource's (res may be nil) where the span names none.
func (c *Call) attribute(slots *[numFields]pcommon.Value, res *Resource) {
	c.DecisionID = str(slots[fDecisionID], c.rank[fDecisionID])
	c.Action = str(slots[fAction], c.rank[fAction])
	c.Agent = str(slots[fAgent], c.rank[fAgent])
	c.Team = str(slots[fTeam], c.rank[fTeam])
	c.RunID = str(slots[fRunID], c.rank[fRunID])
	if c.rank[fTenant] == 1 {
		c.Tenant = slots[fTenant].Str()
	}
	if res != nil {
		c.scope, c.scopeKnown = res.scope, res.scopeKnown
		if c.Agent == "" {
			c.Agent = res.agent
		}
		if c.Team == "" {
			c.Team = res.team
		}
		if c.Tenant == "" {
			c.Tenant = res.tenant
		}
		if c.RunID == "" {
			c.RunID = res.runID
		}
	}
	if c.Tenant == "" && c.rank[fTenant] == 2 {
		c.Tenant = slots[fTenant].Str()
	}
	if c.Tenant == "" && res != nil {
		c.Tenant = res.tenantID
	}
}

// isStringField reports whether a field holds a name, so that only non-empty strings count.
func isStringField(f field) bool {
	switch f {
	case fModel, fProvider, fTier, fAgent, fTeam, fTenant, fRunID, fAction, fDecisionID, fOperationID, fSDKName,
		fSearchContext, fCostCurrency:
		return true
	}
	return false
}

func str(v pcommon.Value, rank uint8) string {
	if rank == 0 {
		return ""
	}
	return v.Str()
}

// AmountUSD reads a dollar amount attribute (an int or a double): false for any other type, NaN,
// a negative or infinite value, or one beyond what money can hold.
func AmountUSD(v pcommon.Value) (float64, bool) {
	var f float64
	switch v.Type() {
	case pcommon.ValueTypeDouble:
		f = v.Double()
	case pcommon.ValueTypeInt:
		f = float64(v.Int())
	default:
		return 0, false
	}
	if f != f || f < 0 || f > float64(money.MaxNanos)/money.NanosPerUSD {
		return 0, false // NaN, negative, infinite or beyond any amount money can hold
	}
	return f, true
}

func (c *Call) setUsage(f field, n int64) {
	switch f {
	case fInput:
		c.Usage.InputTokens = n
	case fOutput:
		c.Usage.OutputTokens = n
	case fCacheRead:
		c.Usage.CacheReadTokens = n
	case fCacheWrite:
		c.Usage.CacheWriteTokens = n
	case fReasoning:
		c.Usage.ReasoningTokens = n
	}
}

// finish derives what depends on several fields: the cache rule, HasUsage and the relational
// Malformed reasons. It runs again after OTTL overrides changed fields.
func (e *Extractor) finish(c *Call) {
	e.semantics(c, c.total, c.hasTotal)
	c.HasUsage = false
	c.Malformed = 0
	for i, f := range usageFields {
		if c.rank[f] != 0 {
			c.HasUsage = true
			c.Malformed |= c.fieldBad[i]
		}
	}
	c.finishModes()
	u := &c.Usage
	if !u.InputExcludesCache && u.CacheReadTokens+u.CacheWriteTokens > u.InputTokens {
		c.Malformed |= MalformedCacheExceedsInput
	}
	if u.ReasoningTokens > u.OutputTokens {
		c.Malformed |= MalformedReasoningExceedsOutput
	}
	if c.HasUsage && c.Model == "" {
		c.Malformed |= MalformedNoModel
	}
}

func (e *Extractor) inputExcludesCache(d Dialect, provider string) bool {
	for _, r := range e.cacheRules {
		if (r.anyDialect || r.dialect == d) && (r.provider == "" || r.provider == provider) {
			return true
		}
	}
	return false
}

// Package policy is agentcost's policy as code: it parses and validates the policy YAML (the
// article's safety.yaml, extended with budgets, derived tags and topic overlays), compiles it,
// and decides pre-execution requests with a pure function (Evaluate) that the budget receiver
// enforces atomically through the ledger afterwards. Explain shows how a decision came about;
// Watcher hot-reloads the files.
package policy

import (
	"math/bits"
	"slices"
	"time"

	"github.com/agentcost/agentcost/internal/money"
)

// Policy is a compiled, validated policy. It is immutable and safe for concurrent use.
type Policy struct {
	name            string
	version         string
	hash            string
	sha256          string
	defaultDecision Decision
	defaultReason   string

	derive []deriveRule
	rules  []rule

	fleet        fleetBudget
	agentBudgets map[string]Budget
	defaultAgent Budget
	teamBudgets  map[string]Budget
	defaultTeam  Budget
	runBudget    Budget
	perActionMax money.Nanos // 0: no cap
	hasActionMax bool

	critical map[string]bool

	topics     map[string]TopicSettings
	topicGlobs []topicGlob // later declarations first

	evidenceMin money.Nanos // 0: only non-allow decisions write evidence

	reportedMultiple money.Nanos // settlement.reported_cost_max_multiple scaled by 1e9
	reportedFloor    money.Nanos // settlement.reported_cost_floor_usd

	maxPending int64 // approvals.max_pending_per_agent; 0: no cap

	degrade []degradeRule // `degrade:` entries in order; the first that applies swaps the model
}

// Budget is a spending limit over a window. The zero Budget is unconfigured.
type Budget struct {
	// Limit is the most that spent + reserved may reach in one window.
	Limit money.Nanos
	// Window is the calendar window (Lifetime for runs).
	Window Window
	// WarnAt is the budget's warn_at: the fraction of Limit (scaled by 1e9) from which the
	// scope's level is warn; zero means none. It changes no decision: it tells a person (the API,
	// metrics, alerts and notifications) before the limit bites.
	WarnAt money.Nanos
}

// Warned reports whether used (spent + reserved) reached the budget's warn_at.
func (b Budget) Warned(used money.Nanos) bool {
	return b.WarnAt > 0 && used >= scaleCeil(b.Limit, b.WarnAt)
}

// Configured reports whether the budget is set.
func (b Budget) Configured() bool { return b.Window != WindowNone }

type fleetBudget struct {
	Budget
	throttleAt, pauseAt money.Nanos // ratios scaled by 1e9
	// throttleUsed and pauseUsed are the smallest spent+reserved at the thresholds:
	// ceil(limit * ratio).
	throttleUsed, pauseUsed money.Nanos
	throttleRate            RateLimit
}

// TopicSettings are the per-topic settings of `topics:` (the article's timeouts overlay).
type TopicSettings struct {
	// TimeoutSeconds kills the action after this many seconds; the stricter of it and a rule's
	// max_runtime_sec applies.
	TimeoutSeconds Limit `json:"timeout_seconds,omitzero"`
	// MaxRetries is returned as the max_retries constraint.
	MaxRetries Limit `json:"max_retries,omitzero"`
}

type topicGlob struct {
	glob
	settings TopicSettings
}

type deriveRule struct {
	tag      string
	minCost  money.Nanos
	maxCost  money.Nanos
	hasMin   bool
	hasMax   bool
	minItems int64
	topics   globSet
	agents   []string
}

type tagRequirement struct {
	tag string
	// derivedBy has bit i set when derive_tags[i] produces the tag.
	derivedBy uint64
}

type rule struct {
	id            string
	line          int
	topics        globSet
	riskTags      []tagRequirement
	agents        []string
	teams         []string
	minCost       money.Nanos
	maxCost       money.Nanos
	hasMin        bool
	hasMax        bool
	minItems      int64
	anomalyWithin time.Duration
	decision      Decision
	constraints   Constraints
	per           Per
	reason        string
}

// Name returns the policy file's name as given to Load or Parse.
func (p *Policy) Name() string { return p.name }

// Version returns policy_version, or the content hash when the file sets none.
func (p *Policy) Version() string { return p.version }

// Hash returns "sha256:" and the first 12 hex digits of the SHA-256 of the policy file and its
// overlays, whatever policy_version says.
func (p *Policy) Hash() string { return p.hash }

// SHA256 returns the policy's identity: the 64 lowercase hex digits of the SHA-256 over the policy
// file's content and then each overlay's content in order, each part framed by its length as an
// 8-byte big-endian integer. It changes whenever any byte of the content changes, whatever
// policy_version says; file names do not enter it, so the same content has the same identity on
// every replica.
func (p *Policy) SHA256() string { return p.sha256 }

// DefaultDecision returns the decision when no rule matches.
func (p *Policy) DefaultDecision() Decision { return p.defaultDecision }

// EvidenceThreshold returns the estimate at or above which even a plain allow writes cost
// evidence; 0 means only decisions other than allow do.
func (p *Policy) EvidenceThreshold() money.Nanos { return p.evidenceMin }

// RuleIDs returns the rule ids in evaluation order.
func (p *Policy) RuleIDs() []string {
	ids := make([]string, len(p.rules))
	for i := range p.rules {
		ids[i] = p.rules[i].id
	}
	return ids
}

// Critical reports whether the agent is exempt from the fleet's throttle and pause levels.
func (p *Policy) Critical(agentID string) bool { return p.critical[agentID] }

// Budget returns the budget of a scope: the fleet's (id ignored), a team's (its own, else
// default_team), an agent's (its own, else default_agent) or the per-run budget (id ignored).
// The receiver reads State for exactly these windows.
func (p *Policy) Budget(scope Scope, id string) (Budget, bool) {
	var b Budget
	switch scope {
	case ScopeFleet:
		b = p.fleet.Budget
	case ScopeTeam:
		if id == "" {
			return Budget{}, false
		}
		var ok bool
		if b, ok = p.teamBudgets[id]; !ok {
			b = p.defaultTeam
		}
	case ScopeAgent:
		var ok bool
		if b, ok = p.agentBudgets[id]; !ok {
			b = p.defaultAgent
		}
	case ScopeRun:
		if id == "" {
			return Budget{}, false
		}
		b = p.runBudget
	}
	return b, b.Configured()
}

// BudgetIDs returns, sorted, the ids that have a budget of their own in scope: the agents of
// `budgets.agents` or the teams of `budgets.teams` (nil for the fleet and runs). Other ids fall
// under default_agent or default_team.
func (p *Policy) BudgetIDs(scope Scope) []string {
	var m map[string]Budget
	switch scope {
	case ScopeAgent:
		m = p.agentBudgets
	case ScopeTeam:
		m = p.teamBudgets
	}
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// FleetLevel returns the fleet's level at the given usage of its current window (normal without
// a fleet budget), as Evaluate computes it.
func (p *Policy) FleetLevel(u Usage) FleetLevel {
	if !p.fleet.Configured() {
		return FleetNormal
	}
	return p.fleetLevel(BudgetCheck{Spent: u.Spent, Reserved: u.Reserved})
}

// DefaultMaxPendingPerAgent is approvals.max_pending_per_agent when the policy does not set it.
const DefaultMaxPendingPerAgent = 20

// MaxPendingApprovals returns approvals.max_pending_per_agent: the most approvals one agent may
// have pending at once (0: no cap).
func (p *Policy) MaxPendingApprovals() int64 { return p.maxPending }

// PerActionMax returns per_action_max_usd and whether it is set.
func (p *Policy) PerActionMax() (money.Nanos, bool) { return p.perActionMax, p.hasActionMax }

// Defaults of the `settlement:` block.
const (
	// DefaultReportedCostMaxMultiple is settlement.reported_cost_max_multiple's default.
	DefaultReportedCostMaxMultiple = 3
	// DefaultReportedCostFloorUSD is settlement.reported_cost_floor_usd's default.
	DefaultReportedCostFloorUSD = 1
)

// ReportedCostLimit returns the most of an agent's self-reported actual_cost_usd that a release
// may book for an action whose decision reserved estimate: reported_cost_max_multiple times the
// estimate, at least reported_cost_floor_usd (so a $0 estimate still settles small real costs),
// and never above per_action_max_usd when that is set. A larger report is clipped to it.
func (p *Policy) ReportedCostLimit(estimate money.Nanos) money.Nanos {
	limit := money.MaxNanos
	if hi, lo := bits.Mul64(uint64(max(estimate, 0)), uint64(p.reportedMultiple)); hi < ratioScale {
		// hi < 1e9 keeps the quotient below 2^64; it is clamped to the largest amount.
		if q, _ := bits.Div64(hi, lo, ratioScale); q < uint64(money.MaxNanos) {
			limit = money.Nanos(q)
		}
	}
	limit = max(limit, p.reportedFloor)
	if p.hasActionMax {
		limit = min(limit, p.perActionMax)
	}
	return limit
}

// Topic returns the settings for an action topic: an exact key wins, else the last declared
// matching pattern.
func (p *Policy) Topic(topic string) (TopicSettings, bool) {
	if ts, ok := p.topics[topic]; ok {
		return ts, true
	}
	for i := range p.topicGlobs {
		if p.topicGlobs[i].match(topic) {
			return p.topicGlobs[i].settings, true
		}
	}
	return TopicSettings{}, false
}

// Package policy is agentcost's policy as code: it parses and validates the policy YAML (the
// article's safety.yaml, extended with budgets, derived tags and topic overlays), compiles it,
// and decides pre-execution requests with a pure function (Evaluate) that the budget receiver
// enforces atomically through the ledger afterwards. Explain shows how a decision came about;
// Watcher hot-reloads the files.
package policy

import (
	"slices"
	"time"

	"github.com/agentcost/agentcost/internal/money"
)

// Policy is a compiled, validated policy. It is immutable and safe for concurrent use.
type Policy struct {
	name            string
	version         string
	hash            string
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
}

// Budget is a spending limit over a window. The zero Budget is unconfigured.
type Budget struct {
	// Limit is the most that spent + reserved may reach in one window.
	Limit money.Nanos
	// Window is the calendar window (Lifetime for runs).
	Window Window
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

// PerActionMax returns per_action_max_usd and whether it is set.
func (p *Policy) PerActionMax() (money.Nanos, bool) { return p.perActionMax, p.hasActionMax }

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

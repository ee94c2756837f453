package policy

import (
	"slices"
	"strconv"
	"time"

	"github.com/agentcost/agentcost/internal/money"
)

// Request is a pre-execution decision request as the receiver validated it.
type Request struct {
	// RunID is the run the action belongs to; empty skips the run budget.
	RunID string
	// AgentID is the canonical agent key (the same key the processor attributes spans to).
	AgentID string
	// Action is the action topic, e.g. "job.research.company".
	Action string
	// RiskTags are the tags the agent declared; derived tags are added server-side.
	RiskTags []string
	// EstimatedCost is the agent's estimate of the action's cost.
	EstimatedCost money.Nanos
	// Items is the number of items a batch action processes.
	Items int64
	// Team is the agent's team; empty skips the team budget.
	Team string
	// ApprovalID is the approval the request refers to, if any.
	ApprovalID string
	// Approval is set by the receiver when ApprovalID names an approval that a reviewer approved
	// and that is still valid for this request; nil otherwise.
	Approval *ApprovedApproval
	// Model is the model the action intends to call; empty, `degrade:` does not apply.
	Model string
	// Prices re-estimates the cost for a degraded model; nil, `degrade:` does not apply.
	Prices Repricer
}

// ApprovedApproval is a reviewer's approval as the receiver found it in the ledger.
type ApprovedApproval struct {
	// ID is the approval id.
	ID string
	// Constraints are the reviewer's modified constraints, merged tighter-of into the result.
	Constraints Constraints
	// CostCap is the reviewer's cost cap: an estimate above it is denied. 0 means no cap.
	CostCap money.Nanos
}

// Usage is the spend of one budget scope in its current window.
type Usage struct {
	Spent    money.Nanos `json:"spent"`
	Reserved money.Nanos `json:"reserved"`
}

// State is what the receiver read from the ledger for a request: each scope's usage in the
// window Policy.Budget names, and the agent's last anomaly times.
type State struct {
	// Usage is indexed by Scope.
	Usage [NumScopes]Usage
	// LastCallAnomaly is the agent's last per-call anomaly (zero: none).
	LastCallAnomaly time.Time
	// LastActionAnomaly is the agent's last per-action anomaly, at settlement or mid-flight
	// (zero: none).
	LastActionAnomaly time.Time
	// LastRunAnomaly is the agent's last per-run anomaly: a run whose running total crossed the
	// agent's baseline of completed runs (zero: none).
	LastRunAnomaly time.Time
}

// FleetLevel is the fleet's degradation level.
type FleetLevel uint8

// The fleet levels, as the agentcost_fleet_level metric reports them.
const (
	FleetNormal    FleetLevel = 0
	FleetThrottled FleetLevel = 1
	FleetPaused    FleetLevel = 2
)

// String returns normal, throttle or pause.
func (l FleetLevel) String() string {
	switch l {
	case FleetNormal:
		return "normal"
	case FleetThrottled:
		return "throttle"
	case FleetPaused:
		return "pause"
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

// BudgetCheck is one scope's budget as it applies to a request: the receiver reserves the
// estimate against every configured scope, atomically failing when an enforced one would pass
// its limit.
type BudgetCheck struct {
	// Configured reports whether the scope has a budget; the other fields are zero otherwise.
	Configured bool `json:"configured"`
	// Scope is the budget scope.
	Scope Scope `json:"scope"`
	// ID is the team, agent or run id (empty for the fleet).
	ID string `json:"id,omitzero"`
	// Window is the window the limit applies to.
	Window Window `json:"window,omitzero"`
	// Limit is the budget's limit.
	Limit money.Nanos `json:"limit"`
	// Spent and Reserved are the State the decision saw.
	Spent    money.Nanos `json:"spent"`
	Reserved money.Nanos `json:"reserved"`
	// Enforce reports whether spent + reserved + estimate must stay within Limit. The fleet is
	// not enforced this way; its throttle and pause levels govern it.
	Enforce bool `json:"enforce"`
	// Exhausted reports spent + reserved + estimate > Limit.
	Exhausted bool `json:"exhausted"`
	// Utilization is (spent + reserved) / limit, for display only.
	Utilization float64 `json:"utilization"`
	// ResetsAt is the end of the current window (zero for lifetime budgets).
	ResetsAt time.Time `json:"resets_at,omitzero"`
}

// ConcurrencyLimit is a concurrency slot the receiver must take through a lease.
type ConcurrencyLimit struct {
	// Key is the counter, per the rule's `per`.
	Key LimitKey `json:"key"`
	// Max is the number of concurrent leases; 0 means no concurrency limit applies.
	Max int64 `json:"max,omitzero"`
	// TTL is the lease lifetime, max_runtime_sec (0: the receiver's default).
	TTL time.Duration `json:"ttl,omitzero"`
}

// RateCheck is a rate limit the receiver must count the request in; past it the answer is
// throttle.
type RateCheck struct {
	// Key is the counter.
	Key LimitKey `json:"key"`
	// Limit is the rate; zero means no check.
	Limit RateLimit `json:"limit,omitzero"`
	// Reason explains a throttle when the limit trips.
	Reason string `json:"reason,omitzero"`
}

// Outcome is a decision and everything the receiver must enforce through the ledger afterwards.
// When Decision is Allowed, the receiver takes the Concurrency slot, counts RuleRate and
// FleetRate, and reserves EstimatedCost against Budgets, all atomically; a failed check turns
// the answer into throttle (rate, concurrency) or deny (budget).
type Outcome struct {
	// Decision is the strictest result of the rule and the budget layers.
	Decision Decision `json:"decision"`
	// RuleID is the id of what decided: a rule, a budget layer (the Rule* constants), or ""
	// for default_decision.
	RuleID string `json:"rule_id"`
	// Reason is the deciding rule's or layer's reason.
	Reason string `json:"reason"`
	// PolicyVersion is the policy's Version.
	PolicyVersion string `json:"policy_version"`
	// Constraints are the merged constraints the agent must obey (none with deny).
	Constraints Constraints `json:"constraints"`
	// RetryAfter hints when asking again can succeed: the window end of an exhausted budget or of
	// a paused fleet, or when an anomaly leaves anomaly_within. 0 with deny means waiting does
	// not help (per-action cap, lifetime run budget).
	RetryAfter time.Duration `json:"retry_after,omitzero"`
	// Budgets is each scope's budget check, indexed by Scope.
	Budgets [NumScopes]BudgetCheck `json:"budgets"`
	// FleetLevel is the fleet's level before this request (normal without a fleet budget).
	FleetLevel FleetLevel `json:"fleet_level"`
	// Concurrency is the slot to take when allowed (Max 0: none).
	Concurrency ConcurrencyLimit `json:"concurrency,omitzero"`
	// RuleRate is the matched rule's rate_limit (merged with an approval's), counted per `per`.
	RuleRate RateCheck `json:"rule_rate,omitzero"`
	// FleetRate is the fleet throttle_rate, counted per agent, at the throttle level.
	FleetRate RateCheck `json:"fleet_rate,omitzero"`
	// Evidence reports whether a decision record must be written: every decision other than a
	// plain allow, and any estimate at or above the policy's evidence threshold.
	Evidence bool `json:"evidence"`
	// ApprovalUsed reports that the request's approval lifted require_approval or the fleet pause.
	ApprovalUsed bool `json:"approval_used"`
	// Degraded is the model swap a `degrade:` entry made (zero: none). When set, the request
	// was decided with the re-estimate, which is what the receiver reserves.
	Degraded Degraded `json:"degraded,omitzero"`
}

// Reasons of the budget layers; constant so Evaluate does not allocate.
const (
	reasonActionCap      = "estimated cost exceeds per_action_max_usd"
	reasonApprovalCap    = "estimated cost exceeds the approval's cost cap"
	reasonApproved       = "approved by a reviewer"
	reasonRunBudget      = "run budget exhausted"
	reasonAgentBudget    = "agent budget exhausted until the window resets"
	reasonTeamBudget     = "team budget exhausted until the window resets"
	reasonRunOverLimit   = "estimated cost exceeds the run budget's whole limit: no retry can fit it"
	reasonAgentOverLimit = "estimated cost exceeds the agent budget's whole limit: no retry can fit it"
	reasonTeamOverLimit  = "estimated cost exceeds the team budget's whole limit: no retry can fit it"
	reasonFleetPaused    = "fleet budget at pause_at: only critical agents and approved actions run"
	reasonFleetThrottled = "fleet budget at throttle_at: non-critical agents are throttled"
	reasonFleetRate      = "fleet budget at throttle_at: per-agent throttle_rate exceeded"
	reasonNoPolicy       = "no policy loaded"
)

// verdict is one layer's result.
type verdict struct {
	decision Decision
	ruleID   string
	reason   string
	retry    time.Duration
}

// strictest keeps the strictest verdict; on a tie the first one offered stays.
type strictest struct {
	v   verdict
	set bool
}

func (s *strictest) offer(v verdict) {
	if !s.set || v.decision > s.v.decision {
		s.v, s.set = v, true
	}
}

// Evaluate decides a request. It is a pure function of its arguments (no I/O, no clock) and
// does not allocate; now must be in the ledger's time zone, which aligns the budget windows.
//
// The rule result is the first matching rule's (else default_decision), with derived tags
// added to the request's. A topic's timeout_seconds and max_retries merge into its constraints
// tighter-of; an approved approval merges its constraints the same way and turns
// require_approval into allow. The budget layers always run and the strictest result wins
// (deny > require_approval > throttle > allow_with_constraints > allow; budget layers first on
// ties): an estimate above per_action_max_usd or the approval's cost cap is denied; so is one
// that does not fit an enforced run, agent or team budget (spent + reserved + estimate >
// limit), with the window end as RetryAfter; at the fleet's throttle_at, non-critical agents
// without an approval are limited to throttle_rate (FleetRate; throttle outright without one),
// and at pause_at they are denied. An approval passes the fleet levels, never a budget or a cap.
// An allow that carries constraints is reported as allow_with_constraints; a deny carries none.
func Evaluate(p *Policy, req Request, state State, now time.Time) (o Outcome) {
	evaluate(p, &req, &state, now, &o)
	return o
}

// evaluate fills the zero Outcome o.
func evaluate(p *Policy, req *Request, st *State, now time.Time, o *Outcome) {
	if p == nil {
		o.Decision, o.Reason, o.Evidence = Deny, reasonNoPolicy, true
		return
	}
	o.PolicyVersion = p.version
	p.degradeRequest(req, st, o)
	est := req.EstimatedCost
	r, ruleV, cons := p.ruleLayer(req, st, now, o)

	// The budget layers always run; the strictest result wins, budget layers first on ties.
	var best strictest
	if p.hasActionMax && est > p.perActionMax {
		best.offer(verdict{decision: Deny, ruleID: RulePerActionCap, reason: reasonActionCap})
	}
	if approval := req.Approval; approval != nil && approval.CostCap > 0 && est > approval.CostCap {
		best.offer(verdict{decision: Deny, ruleID: RuleApprovalCap, reason: reasonApprovalCap})
	}
	p.fillBudgets(o, req, st, now)
	if v, ok := budgetVerdict(o, est, now); ok {
		best.offer(v)
	}
	p.fleetLayer(req, now, o, &best)
	best.offer(ruleV)

	o.Decision, o.RuleID, o.Reason, o.RetryAfter = best.v.decision, best.v.ruleID, best.v.reason, best.v.retry
	switch {
	case o.Decision == Deny:
		cons = Constraints{}
	case o.Decision == Allow && (!cons.IsZero() || !o.Degraded.IsZero()):
		o.Decision = AllowWithConstraints
	}
	o.Constraints = cons
	if o.Decision.Allowed() {
		counters(r, ruleV, req, cons, o)
	} else {
		o.FleetRate = RateCheck{}
	}
	o.Evidence = o.Decision != Allow || (p.evidenceMin > 0 && est >= p.evidenceMin)
}

// ruleLayer gives the rule layer's verdict: the first matching rule (nil when default_decision
// applied) and its verdict, and the constraints of the rule tightened by the topic's settings and
// merged with an approval's. An approval turns require_approval into allow (o.ApprovalUsed).
func (p *Policy) ruleLayer(req *Request, st *State, now time.Time, o *Outcome) (*rule, verdict, Constraints) {
	var r *rule
	var v verdict
	var cons Constraints
	if ri := p.firstMatch(req, st, p.derivedTags(req), now); ri >= 0 {
		r = &p.rules[ri]
		v = verdict{decision: r.decision, ruleID: r.id, reason: r.reason}
		cons = r.constraints
		if r.decision == Throttle && r.anomalyWithin > 0 {
			v.retry = positive(lastAnomaly(st).Add(r.anomalyWithin).Sub(now))
		}
	} else {
		v = verdict{decision: p.defaultDecision, reason: p.defaultReason}
	}
	if ts, ok := p.Topic(req.Action); ok {
		cons.MaxRuntimeSec = cons.MaxRuntimeSec.Tighter(ts.TimeoutSeconds)
		cons.MaxRetries = cons.MaxRetries.Tighter(ts.MaxRetries)
	}
	if approval := req.Approval; approval != nil {
		cons = cons.Merge(approval.Constraints)
		if v.decision == RequireApproval {
			v = verdict{decision: Allow, ruleID: v.ruleID, reason: reasonApproved}
			o.ApprovalUsed = true
		}
	}
	return r, v, cons
}

// fleetLayer offers the fleet's verdict at its degradation level (o.Budgets is filled): pause
// denies, throttle throttles or, with a throttle rate, asks for a fleet rate check (o.FleetRate).
// Critical agents and approved requests are exempt.
func (p *Policy) fleetLayer(req *Request, now time.Time, o *Outcome, best *strictest) {
	if !p.fleet.Configured() {
		return
	}
	approval := req.Approval
	o.FleetLevel = p.fleetLevel(o.Budgets[ScopeFleet])
	exempt := p.critical[req.AgentID] || approval != nil
	retry := positive(o.Budgets[ScopeFleet].ResetsAt.Sub(now))
	switch {
	case o.FleetLevel == FleetNormal:
	case exempt:
		if o.FleetLevel == FleetPaused && approval != nil && !p.critical[req.AgentID] {
			o.ApprovalUsed = true
		}
	case o.FleetLevel == FleetPaused:
		best.offer(verdict{decision: Deny, ruleID: RuleFleet, reason: reasonFleetPaused, retry: retry})
	case p.fleet.throttleRate.IsZero():
		best.offer(verdict{decision: Throttle, ruleID: RuleFleet, reason: reasonFleetThrottled, retry: retry})
	default:
		o.FleetRate = RateCheck{
			Key:    LimitKey{Fleet: true, AgentID: req.AgentID},
			Limit:  p.fleet.throttleRate,
			Reason: reasonFleetRate,
		}
	}
}

// counters sets the concurrency slot and the rule's rate check an allowed action must pass, from
// its constraints, counted per the rule's key.
func counters(r *rule, ruleV verdict, req *Request, cons Constraints, o *Outcome) {
	key := limitKey(r, req)
	if n, ok := cons.MaxConcurrent.Value(); ok {
		ttl, _ := cons.MaxRuntimeSec.Value()
		o.Concurrency = ConcurrencyLimit{Key: key, Max: n, TTL: time.Duration(ttl) * time.Second}
	}
	if !cons.RateLimit.IsZero() {
		reason := ruleV.reason
		if r != nil {
			reason = r.reason
		}
		o.RuleRate = RateCheck{Key: key, Limit: cons.RateLimit, Reason: reason}
	}
}

// derivedTags returns a bit per derive_tags entry whose conditions the request meets.
func (p *Policy) derivedTags(req *Request) uint64 {
	var mask uint64
	for i := range p.derive {
		d := &p.derive[i]
		if (d.hasMin && req.EstimatedCost < d.minCost) ||
			(d.hasMax && req.EstimatedCost > d.maxCost) ||
			(d.minItems > 0 && req.Items < d.minItems) ||
			(len(d.agents) > 0 && !slices.Contains(d.agents, req.AgentID)) ||
			!d.topics.match(req.Action) {
			continue
		}
		mask |= 1 << i
	}
	return mask
}

// firstMatch returns the index of the first matching rule, or -1.
func (p *Policy) firstMatch(req *Request, st *State, derived uint64, now time.Time) int {
	for i := range p.rules {
		if p.rules[i].failed(req, st, derived, now, false) == 0 {
			return i
		}
	}
	return -1
}

// matcher bits name the rule matchers a request failed.
type matcher uint16

const (
	failMinCost matcher = 1 << iota
	failMaxCost
	failMinItems
	failAgents
	failTeams
	failAnomaly
	failTopics
	failRiskTags
)

// failed returns the matchers the request fails; with all unset it stops at the first.
// Cheap matchers run first.
func (r *rule) failed(req *Request, st *State, derived uint64, now time.Time, all bool) matcher {
	var f matcher
	est := req.EstimatedCost
	if r.hasMin && est < r.minCost {
		if f |= failMinCost; !all {
			return f
		}
	}
	if r.hasMax && est > r.maxCost {
		if f |= failMaxCost; !all {
			return f
		}
	}
	if r.minItems > 0 && req.Items < r.minItems {
		if f |= failMinItems; !all {
			return f
		}
	}
	if len(r.agents) > 0 && !slices.Contains(r.agents, req.AgentID) {
		if f |= failAgents; !all {
			return f
		}
	}
	if len(r.teams) > 0 && !slices.Contains(r.teams, req.Team) {
		if f |= failTeams; !all {
			return f
		}
	}
	if r.anomalyWithin > 0 && !anomalous(st, r.anomalyWithin, now) {
		if f |= failAnomaly; !all {
			return f
		}
	}
	if !r.topics.match(req.Action) {
		if f |= failTopics; !all {
			return f
		}
	}
	if missingTag(r.riskTags, req.RiskTags, derived) >= 0 {
		f |= failRiskTags
	}
	return f
}

// missingTag returns the index of the first required tag the request lacks, or -1.
func missingTag(reqs []tagRequirement, tags []string, derived uint64) int {
	for i := range reqs {
		if reqs[i].derivedBy&derived == 0 && !slices.Contains(tags, reqs[i].tag) {
			return i
		}
	}
	return -1
}

func lastAnomaly(st *State) time.Time {
	last := st.LastCallAnomaly
	for _, t := range [...]time.Time{st.LastActionAnomaly, st.LastRunAnomaly} {
		if t.After(last) {
			last = t
		}
	}
	return last
}

func anomalous(st *State, within time.Duration, now time.Time) bool {
	last := lastAnomaly(st)
	return !last.IsZero() && now.Sub(last) <= within
}

func positive(d time.Duration) time.Duration { return max(d, 0) }

// scopeID returns the request's id for a scope.
func scopeID(req *Request, s Scope) string {
	switch s {
	case ScopeTeam:
		return req.Team
	case ScopeAgent:
		return req.AgentID
	case ScopeRun:
		return req.RunID
	}
	return ""
}

func (p *Policy) fillBudgets(o *Outcome, req *Request, st *State, now time.Time) {
	for s := range Scope(NumScopes) {
		id := scopeID(req, s)
		b, ok := p.Budget(s, id)
		if !ok {
			o.Budgets[s] = BudgetCheck{Scope: s}
			continue
		}
		u := st.Usage[s]
		used := money.AddSat(u.Spent, u.Reserved)
		bc := BudgetCheck{
			Configured:  true,
			Scope:       s,
			ID:          id,
			Window:      b.Window,
			Limit:       b.Limit,
			Spent:       u.Spent,
			Reserved:    u.Reserved,
			Enforce:     s != ScopeFleet,
			Exhausted:   money.AddSat(used, req.EstimatedCost) > b.Limit,
			Utilization: 1,
		}
		if b.Limit > 0 {
			bc.Utilization = float64(used) / float64(b.Limit)
		}
		bc.ResetsAt = b.Window.End(now)
		o.Budgets[s] = bc
	}
}

// budgetVerdict denies when an enforced budget is exhausted (run, agent, team, in that order of
// reasons), with the latest window end as the retry hint, none when a lifetime budget is out. An
// estimate above a budget's whole limit can never fit, whatever the window: that scope's
// over-limit reason wins and there is no retry hint.
func budgetVerdict(o *Outcome, est money.Nanos, now time.Time) (verdict, bool) {
	var v verdict
	found, forever, never := false, false, false
	for _, s := range [...]Scope{ScopeRun, ScopeAgent, ScopeTeam} {
		bc := &o.Budgets[s]
		if !bc.Configured || !bc.Enforce || !bc.Exhausted {
			continue
		}
		if !found {
			v.decision, v.ruleID, v.reason = Deny, budgetRuleIDs[s], budgetReasons[s]
			found = true
		}
		if est > bc.Limit && !never {
			v.ruleID, v.reason = budgetRuleIDs[s], overLimitReasons[s]
			never = true
		}
		if bc.ResetsAt.IsZero() {
			forever = true
		} else if d := bc.ResetsAt.Sub(now); d > v.retry {
			v.retry = d
		}
	}
	if forever || never {
		v.retry = 0
	}
	return v, found
}

var (
	budgetRuleIDs = [NumScopes]string{ScopeTeam: RuleTeamBudget, ScopeAgent: RuleAgentBudget, ScopeRun: RuleRunBudget}
	budgetReasons = [NumScopes]string{ScopeTeam: reasonTeamBudget, ScopeAgent: reasonAgentBudget, ScopeRun: reasonRunBudget}
	// overLimitReasons say an estimate exceeds a scope's whole limit, so no retry can fit it.
	overLimitReasons = [NumScopes]string{ScopeTeam: reasonTeamOverLimit, ScopeAgent: reasonAgentOverLimit, ScopeRun: reasonRunOverLimit}
)

func (p *Policy) fleetLevel(bc BudgetCheck) FleetLevel {
	used := money.AddSat(bc.Spent, bc.Reserved)
	switch {
	case used >= p.fleet.pauseUsed:
		return FleetPaused
	case used >= p.fleet.throttleUsed:
		return FleetThrottled
	}
	return FleetNormal
}

// limitKey is the counter of a rule's max_concurrent and rate_limit, per its `per`.
func limitKey(r *rule, req *Request) LimitKey {
	k := LimitKey{}
	per := PerAgent
	if r != nil {
		k.RuleID, per = r.id, r.per
	}
	switch per {
	case PerAgent:
		k.AgentID = req.AgentID
	case PerAgentTopic:
		k.AgentID, k.Topic = req.AgentID, req.Action
	}
	return k
}

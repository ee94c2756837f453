package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentcost/agentcost/internal/money"
)

// Explanation shows how a decision came about: every rule in order and why it matched or not,
// the derived tags, each budget layer's verdict, and the outcome Evaluate returns.
type Explanation struct {
	// PolicyVersion is the policy's Version.
	PolicyVersion string `json:"policy_version"`
	// PolicySHA256 is the policy's SHA256, the identity of its content.
	PolicySHA256 string `json:"policy_sha256"`
	// DerivedTags are the tags derive_tags added to the request's own.
	DerivedTags []string `json:"derived_tags"`
	// Rules lists every rule in evaluation order.
	Rules []RuleTrace `json:"rules"`
	// SelectedRule is the first matching rule's id; empty when default_decision applied.
	SelectedRule string `json:"selected_rule"`
	// Topic is the topic settings that applied to the action, if any.
	Topic *TopicSettings `json:"topic,omitempty"`
	// Layers lists the budget layers: per_action_cap, approval, run, agent, team, fleet.
	Layers []LayerTrace `json:"budget_layers"`
	// Outcome is exactly what Evaluate returns for the same input.
	Outcome Outcome `json:"outcome"`
}

// RuleTrace is one rule as the request met it.
type RuleTrace struct {
	// ID is the rule's id.
	ID string `json:"id"`
	// Line is the rule's line in the policy file.
	Line int `json:"line"`
	// Decision is the rule's decision.
	Decision Decision `json:"decision"`
	// Matched reports whether every matcher passed.
	Matched bool `json:"matched"`
	// Selected marks the first matching rule, the one that gave the rule result.
	Selected bool `json:"selected"`
	// Why lists each failed matcher, or notes that an earlier rule was selected.
	Why []string `json:"why,omitempty"`
}

// LayerTrace is one budget layer's verdict: Allow when it let the request pass.
type LayerTrace struct {
	// Layer is per_action_cap, approval, run, agent, team or fleet.
	Layer string `json:"layer"`
	// Verdict is the layer's own result.
	Verdict Decision `json:"verdict"`
	// Detail shows the numbers behind the verdict.
	Detail string `json:"detail"`
}

// Explain evaluates a request like Evaluate and reports how every rule and layer saw it.
func Explain(p *Policy, req Request, state State, now time.Time) Explanation {
	var out Outcome
	evaluate(p, &req, &state, now, &out)
	ex := Explanation{Outcome: out, PolicyVersion: out.PolicyVersion, DerivedTags: []string{}}
	if p == nil {
		return ex
	}
	ex.PolicySHA256 = p.sha256
	derived := p.derivedTags(&req)
	for i := range p.derive {
		if derived&(1<<i) != 0 && !slices.Contains(ex.DerivedTags, p.derive[i].tag) {
			ex.DerivedTags = append(ex.DerivedTags, p.derive[i].tag)
		}
	}
	selected := -1
	for i := range p.rules {
		r := &p.rules[i]
		f := r.failed(&req, &state, derived, now, true)
		tr := RuleTrace{ID: r.id, Line: r.line, Decision: r.decision, Matched: f == 0}
		switch {
		case f == 0 && selected < 0:
			selected, tr.Selected = i, true
			ex.SelectedRule = r.id
		case f == 0:
			tr.Why = []string{"matched, but rule " + strconv.Quote(p.rules[selected].id) + " came first"}
		default:
			tr.Why = r.describe(f, &req, &state, ex.DerivedTags, now)
		}
		ex.Rules = append(ex.Rules, tr)
	}
	if ts, ok := p.Topic(req.Action); ok {
		ex.Topic = &ts
	}
	ex.Layers = p.layers(&req, &out)
	return ex
}

func usd(n money.Nanos) string { return "$" + n.String() }

func (r *rule) describe(f matcher, req *Request, st *State, derived []string, now time.Time) []string {
	var why []string
	if f&failMinCost != 0 {
		why = append(why, fmt.Sprintf("min_estimated_cost_usd: estimate %s is below %s", usd(req.EstimatedCost), usd(r.minCost)))
	}
	if f&failMaxCost != 0 {
		why = append(why, fmt.Sprintf("max_estimated_cost_usd: estimate %s is above %s", usd(req.EstimatedCost), usd(r.maxCost)))
	}
	if f&failMinItems != 0 {
		why = append(why, fmt.Sprintf("min_items: %d items is below %d", req.Items, r.minItems))
	}
	if f&failAgents != 0 {
		why = append(why, fmt.Sprintf("agents: %q is not one of %q", req.AgentID, r.agents))
	}
	if f&failTeams != 0 {
		why = append(why, fmt.Sprintf("teams: %q is not one of %q", req.Team, r.teams))
	}
	if f&failAnomaly != 0 {
		last := "never"
		if t := lastAnomaly(st); !t.IsZero() {
			last = now.Sub(t).Round(time.Second).String() + " ago"
		}
		why = append(why, fmt.Sprintf("anomaly_within: no anomaly within %s (last: %s)", r.anomalyWithin, last))
	}
	if f&failTopics != 0 {
		why = append(why, fmt.Sprintf("topics: %q matches none of %q", req.Action, r.topics.patterns()))
	}
	if f&failRiskTags != 0 {
		var missing []string
		for _, tr := range r.riskTags {
			if !slices.Contains(req.RiskTags, tr.tag) && !slices.Contains(derived, tr.tag) {
				missing = append(missing, tr.tag)
			}
		}
		why = append(why, fmt.Sprintf("risk_tags: missing %q (request tags %q, derived %q)", missing, req.RiskTags, derived))
	}
	return why
}

func (p *Policy) layers(req *Request, o *Outcome) []LayerTrace {
	est := req.EstimatedCost
	var ls []LayerTrace
	if len(p.degrade) > 0 {
		ls = append(ls, p.degradeLayer(req, o))
	}

	l := LayerTrace{Layer: "per_action_cap", Detail: "not configured"}
	if p.hasActionMax {
		if est > p.perActionMax {
			l.Verdict, l.Detail = Deny, fmt.Sprintf("estimate %s is above per_action_max_usd %s", usd(est), usd(p.perActionMax))
		} else {
			l.Detail = fmt.Sprintf("estimate %s is within per_action_max_usd %s", usd(est), usd(p.perActionMax))
		}
	}
	ls = append(ls, l)

	l = LayerTrace{Layer: "approval", Detail: "no approved approval"}
	if a := req.Approval; a != nil {
		var parts []string
		if a.CostCap > 0 && est > a.CostCap {
			l.Verdict = Deny
			parts = append(parts, fmt.Sprintf("estimate %s is above the cost cap %s", usd(est), usd(a.CostCap)))
		} else if a.CostCap > 0 {
			parts = append(parts, fmt.Sprintf("estimate %s is within the cost cap %s", usd(est), usd(a.CostCap)))
		}
		if o.ApprovalUsed {
			parts = append(parts, "lifts require_approval or the fleet pause")
		}
		if !a.Constraints.IsZero() {
			parts = append(parts, "its constraints merge tighter-of")
		}
		l.Detail = "approval " + strconv.Quote(a.ID)
		if len(parts) > 0 {
			l.Detail += ": " + strings.Join(parts, "; ")
		}
	}
	ls = append(ls, l)

	for _, s := range [...]Scope{ScopeRun, ScopeAgent, ScopeTeam} {
		bc := o.Budgets[s]
		l := LayerTrace{Layer: s.String(), Detail: p.unconfiguredDetail(s, bc.ID)}
		if bc.Configured {
			total := money.AddSat(money.AddSat(bc.Spent, bc.Reserved), est)
			window := bc.Window.String()
			if !bc.ResetsAt.IsZero() {
				window += " until " + bc.ResetsAt.Format(time.RFC3339)
			}
			cmp := "within"
			if bc.Exhausted {
				l.Verdict, cmp = Deny, "above"
			}
			l.Detail = fmt.Sprintf("%s %q: spent %s + reserved %s + estimate %s = %s is %s the limit %s (%s)",
				s, bc.ID, usd(bc.Spent), usd(bc.Reserved), usd(est), usd(total), cmp, usd(bc.Limit), window)
		}
		ls = append(ls, l)
	}

	l = LayerTrace{Layer: "fleet", Detail: "not configured"}
	if bc := o.Budgets[ScopeFleet]; bc.Configured {
		used := money.AddSat(bc.Spent, bc.Reserved)
		l.Detail = fmt.Sprintf("spent %s + reserved %s = %s of %s per %s (throttle_at %s, pause_at %s): level %s",
			usd(bc.Spent), usd(bc.Reserved), usd(used), usd(bc.Limit), bc.Window, p.fleet.throttleAt, p.fleet.pauseAt, o.FleetLevel)
		switch {
		case o.FleetLevel == FleetNormal:
		case p.critical[req.AgentID]:
			l.Detail += "; agent is critical: exempt"
		case req.Approval != nil:
			l.Detail += "; approved action: exempt"
		case o.FleetLevel == FleetPaused:
			l.Verdict = Deny
		case p.fleet.throttleRate.IsZero():
			l.Verdict = Throttle
			l.Detail += "; no throttle_rate: throttled"
		default:
			l.Detail += "; limited to " + p.fleet.throttleRate.String() + " per agent"
		}
	}
	ls = append(ls, l)
	return ls
}

// unconfiguredDetail says why a run, agent or team budget does not apply to a request: the
// request names no such scope although the policy budgets it, or the policy has no budget for it.
func (p *Policy) unconfiguredDetail(s Scope, id string) string {
	budgeted := false
	switch s {
	case ScopeRun:
		budgeted = p.runBudget.Configured()
	case ScopeAgent:
		budgeted = len(p.agentBudgets) > 0 || p.defaultAgent.Configured()
	case ScopeTeam:
		budgeted = len(p.teamBudgets) > 0 || p.defaultTeam.Configured()
	}
	switch {
	case budgeted && id == "":
		return fmt.Sprintf("the request names no %s, so no %s budget applies", s, s)
	case budgeted:
		return fmt.Sprintf("%s %q has no budget in this policy", s, id)
	}
	return "not configured"
}

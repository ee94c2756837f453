package policy

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/yamldoc"
)

// Repricer re-estimates an action's cost for another model, from the same price table the
// processor prices spans with. The receiver passes its table (pricing.Table.Reprice).
type Repricer interface {
	// Reprice scales estimate, made for model from, to model to: false when either model is
	// not priced per token.
	Reprice(estimate money.Nanos, from, to string) (money.Nanos, bool)
}

// Degraded is the model swap a `degrade:` entry made: the request named model From, the decision
// tells the agent to use To instead, and Estimate (re-priced from Original) is what is reserved.
// The zero Degraded means no swap.
type Degraded struct {
	// Model is the cheaper model the agent must use (constraints.model on the wire).
	Model string `json:"model,omitzero"`
	// From is the model the request named.
	From string `json:"from,omitzero"`
	// Scope is the budget scope whose level triggered the swap.
	Scope Scope `json:"scope"`
	// Line is the degrade entry's line in the policy file.
	Line int `json:"line,omitzero"`
	// Original is the request's estimate for From.
	Original money.Nanos `json:"original_estimate"`
	// Estimate is the re-estimate for Model: what the decision reserves.
	Estimate money.Nanos `json:"estimate"`
}

// IsZero reports whether no swap was made.
func (d Degraded) IsZero() bool { return d.Model == "" }

// degradeRule is one entry of `degrade:`.
type degradeRule struct {
	line  int
	scope Scope
	at    money.Nanos // fraction scaled by 1e9, in (0, 1]
	maps  []modelMap  // declaration order: the first matching pattern wins
}

// modelMap maps the models matching a pattern to a cheaper one.
type modelMap struct {
	pattern string   // lowercase; '*' matches any run of characters
	parts   []string // pattern split at '*', so matching allocates nothing
	to      string
	line    int
}

// DegradeTarget is a model a degrade entry swaps to, with its line, for checking against a price
// table.
type DegradeTarget struct {
	// Model is the target model as the policy spells it.
	Model string
	// Line is its line in the policy file.
	Line int
	// Field is its YAML path, e.g. degrade[0].models["gpt-4o*"].
	Field string
}

// DegradeTargets returns every model the policy's degrade entries swap to.
func (p *Policy) DegradeTargets() []DegradeTarget {
	var out []DegradeTarget
	for i := range p.degrade {
		for _, m := range p.degrade[i].maps {
			out = append(out, DegradeTarget{Model: m.to, Line: m.line,
				Field: yamldoc.Entry(yamldoc.Join(yamldoc.Index("degrade", i), "models"), m.pattern)})
		}
	}
	return out
}

// HasDegrade reports whether the policy has degrade entries.
func (p *Policy) HasDegrade() bool { return p != nil && len(p.degrade) > 0 }

// matchModel matches a lowercase pattern whose '*' stands for any run of characters (slashes and
// dots included) against a model name, ignoring case.
func matchModel(pattern, model string) bool {
	return matchParts(strings.Split(pattern, "*"), model)
}

// matchParts is matchModel with the pattern already split at '*'.
func matchParts(parts []string, model string) bool {
	model = strings.ToLower(model)
	if len(parts) == 1 {
		return parts[0] == model
	}
	if !strings.HasPrefix(model, parts[0]) {
		return false
	}
	model = model[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(model, part)
		if i < 0 {
			return false
		}
		model = model[i+len(part):]
	}
	return len(model) >= len(last) && strings.HasSuffix(model, last)
}

// degradeRequest applies the first degrade entry whose scope reached its level and that maps the
// request's model: it re-prices the estimate into req.EstimatedCost and records the swap in o.
// A scope reaches the level when spent + reserved + the request's original estimate is at least
// `at` of its limit, so `at: 1` degrades exactly the requests the expensive model would be
// denied for. Without a model, a repricer, or prices for both models, nothing changes.
func (p *Policy) degradeRequest(req *Request, st *State, o *Outcome) {
	if len(p.degrade) == 0 || req.Model == "" || req.Prices == nil {
		return
	}
	for i := range p.degrade {
		dr := &p.degrade[i]
		if !p.degradeLevel(dr, req, st) {
			continue
		}
		for _, m := range dr.maps {
			if !matchParts(m.parts, req.Model) {
				continue
			}
			if strings.EqualFold(m.to, req.Model) {
				return
			}
			est, ok := req.Prices.Reprice(req.EstimatedCost, req.Model, m.to)
			if !ok {
				return
			}
			o.Degraded = Degraded{Model: m.to, From: req.Model, Scope: dr.scope, Line: m.line,
				Original: req.EstimatedCost, Estimate: est}
			req.EstimatedCost = est
			return
		}
	}
}

// degradeLevel reports whether the entry's scope, configured for the request, is at its level.
func (p *Policy) degradeLevel(dr *degradeRule, req *Request, st *State) bool {
	b, ok := p.Budget(dr.scope, scopeID(req, dr.scope))
	if !ok {
		return false
	}
	u := st.Usage[dr.scope]
	used := money.AddSat(money.AddSat(u.Spent, u.Reserved), req.EstimatedCost)
	return used >= scaleCeil(b.Limit, dr.at)
}

const degradeKeys = "when, models"

// degrade reads the `degrade:` list.
func (b *builder) degrade(d decoder, n *yaml.Node) {
	d.Sequence(n, "degrade", func(i int, item *yaml.Node) {
		field := yamldoc.Index("degrade", i)
		dr := degradeRule{line: item.Line}
		sawWhen, sawModels, entries := false, false, 0
		if !d.Object(item, field, degradeKeys, func(key string, k, v *yaml.Node) {
			kf := yamldoc.Join(field, key)
			switch key {
			case "when":
				sawWhen = true
				b.degradeWhen(d, v, kf, &dr)
			case "models":
				sawModels = true
				d.Object(v, kf, `"model pattern": cheaper-model`, func(pat string, pk, tv *yaml.Node) {
					mf := yamldoc.Entry(kf, pat)
					entries++
					if strings.TrimSpace(pat) == "" {
						d.Fail(pk, mf, "the model pattern must not be empty")
						return
					}
					to, ok := d.Name(tv, mf)
					if !ok {
						return
					}
					if strings.Contains(to, "*") {
						d.Fail(tv, mf, "%q: the cheaper model must be a model name, not a pattern", to)
						return
					}
					if matchModel(strings.ToLower(pat), to) && !strings.Contains(pat, "*") {
						d.Fail(tv, mf, "%q maps a model to itself", to)
						return
					}
					lp := strings.ToLower(pat)
					dr.maps = append(dr.maps, modelMap{pattern: lp, parts: strings.Split(lp, "*"), to: to, line: tv.Line})
				})
			default:
				d.Unknown(k, field, key, degradeKeys)
			}
		}) {
			return
		}
		if !sawWhen {
			d.Fail(item, yamldoc.Join(field, "when"), "missing (want {scope: fleet|team|agent|run, at: fraction})")
		}
		if !sawModels {
			d.Fail(item, yamldoc.Join(field, "models"), "missing (want a mapping of model pattern to cheaper model)")
		} else if entries == 0 {
			d.Fail(item, yamldoc.Join(field, "models"), "must map at least one model")
		}
		b.p.degrade = append(b.p.degrade, dr)
	})
}

// degradeWhen reads an entry's `when: {scope, at}`.
func (b *builder) degradeWhen(d decoder, n *yaml.Node, field string, dr *degradeRule) {
	sawScope, sawAt := false, false
	if !d.Object(n, field, "scope and at", func(key string, k, v *yaml.Node) {
		kf := yamldoc.Join(field, key)
		switch key {
		case "scope":
			sawScope = true
			s, ok := d.Scalar(v, kf)
			if !ok {
				return
			}
			for sc := range Scope(NumScopes) {
				if sc.String() == s {
					dr.scope = sc
					return
				}
			}
			d.Fail(v, kf, "%q is not fleet|team|agent|run", s)
		case "at":
			sawAt = true
			dr.at, _ = d.ratio(v, kf)
		default:
			d.Unknown(k, field, key, "scope, at")
		}
	}) {
		return
	}
	if !sawScope {
		d.Fail(n, yamldoc.Join(field, "scope"), "missing (want fleet|team|agent|run)")
	}
	if !sawAt {
		d.Fail(n, yamldoc.Join(field, "at"), "missing (want a fraction in (0, 1] of the scope's limit)")
	}
}

// degradeLayer explains the `degrade:` entries: the swap made, or why none applied. It runs on
// the request as evaluate left it, so a swap's re-estimate is already in req.EstimatedCost.
func (p *Policy) degradeLayer(req *Request, o *Outcome) LayerTrace {
	l := LayerTrace{Layer: "degrade"}
	switch d := o.Degraded; {
	case !d.IsZero():
		l.Verdict = AllowWithConstraints
		l.Detail = fmt.Sprintf("%s budget at its degrade level (line %d): model %q -> %q, estimate %s re-priced to %s",
			d.Scope, d.Line, d.From, d.Model, usd(d.Original), usd(d.Estimate))
	case req.Model == "":
		l.Detail = "the request names no model, so degrade does not apply"
	case req.Prices == nil:
		l.Detail = "no price table to re-estimate with, so degrade does not apply"
	default:
		l.Detail = fmt.Sprintf("model %q: no degrade entry applies (scope below its level, no matching pattern, or a model the price table does not know)", req.Model)
	}
	return l
}

// CheckModels reports, as a *ValidationError with file, line and field, every degrade target the
// price table does not know (knows is the table's check, e.g. pricing.Table.Knows): a swap to an
// unpriced model could not be re-estimated, so the receiver refuses such a policy at start and
// on reload, and `agentcostctl policy lint` reports it.
func (p *Policy) CheckModels(knows func(model string) bool) error {
	var ve ValidationError
	for _, t := range p.DegradeTargets() {
		if !knows(t.Model) {
			ve.Errors = append(ve.Errors, &FieldError{File: p.name, Line: t.Line, Field: t.Field,
				Msg: fmt.Sprintf("%q is not in the price table (the embedded prices and prices.files)", t.Model)})
		}
	}
	if len(ve.Errors) == 0 {
		return nil
	}
	return &ve
}

// checkDegradeScopes reports a degrade entry whose scope the policy has no budget for: it could
// never apply, which an operator would rather hear at load than find out under a tight budget.
func (b *builder) checkDegradeScopes(d decoder) {
	p := b.p
	for i := range p.degrade {
		dr := &p.degrade[i]
		var budgeted bool
		switch dr.scope {
		case ScopeFleet:
			budgeted = p.fleet.Configured()
		case ScopeTeam:
			budgeted = len(p.teamBudgets) > 0 || p.defaultTeam.Configured()
		case ScopeAgent:
			budgeted = len(p.agentBudgets) > 0 || p.defaultAgent.Configured()
		case ScopeRun:
			budgeted = p.runBudget.Configured()
		}
		if !budgeted && dr.at > 0 {
			d.FailAt(dr.line, yamldoc.Join(yamldoc.Index("degrade", i), "when.scope"), "%s has no budget in this policy, so the entry could never apply", dr.scope)
		}
	}
}

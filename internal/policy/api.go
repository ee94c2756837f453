package policy

import (
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// This file is the policy's side of the decision API's wire boundary: the one place where its
// typed values become the wire types of pkg/decisionapi and back.

// API returns the decision's wire form.
func (d Decision) API() decisionapi.Decision { return decisionapi.Decision(d.String()) }

// limitPair is one integer constraint: its policy value and its wire field.
type limitPair struct {
	limit *Limit
	wire  **int64
}

// limitPairs pairs each integer constraint of c with its wire field in w, in the API's order.
func limitPairs(c *Constraints, w *decisionapi.Constraints) [6]limitPair {
	return [...]limitPair{
		{&c.MaxRuntimeSec, &w.MaxRuntimeSec}, {&c.MaxRetries, &w.MaxRetries}, {&c.MaxConcurrent, &w.MaxConcurrent},
		{&c.MaxTokens, &w.MaxTokens}, {&c.MaxToolCalls, &w.MaxToolCalls}, {&c.MaxDepth, &w.MaxDepth},
	}
}

// API returns the constraints in the decision API's wire form (Model stays empty: only a
// decision's degrade sets it).
func (c Constraints) API() decisionapi.Constraints {
	var out decisionapi.Constraints
	for _, f := range limitPairs(&c, &out) {
		if n, ok := f.limit.Value(); ok {
			*f.wire = decisionapi.Limit(n)
		}
	}
	if !c.RateLimit.IsZero() {
		out.RateLimit = c.RateLimit.String()
	}
	return out
}

// ConstraintsFromAPI converts wire constraints (a reviewer's, a policy test case's) to the
// policy's; the wire Model is not a policy constraint and is ignored. The error is the rate
// limit's when it does not parse.
func ConstraintsFromAPI(c decisionapi.Constraints) (Constraints, error) {
	var out Constraints
	for _, f := range limitPairs(&out, &c) {
		if *f.wire != nil {
			*f.limit = LimitOf(**f.wire)
		}
	}
	if c.RateLimit != "" {
		r, err := ParseRateLimit(c.RateLimit)
		if err != nil {
			return Constraints{}, err
		}
		out.RateLimit = r
	}
	return out, nil
}

// API returns the explanation as POST /v1/explain answers it, except the budget map, which the
// caller fills from its ledger (or its offline state). An allowed outcome carries its degrade's
// model and no retry hint.
func (ex Explanation) API() decisionapi.ExplainResponse {
	o := ex.Outcome
	out := decisionapi.ExplainResponse{
		Decision:      o.Decision.API(),
		RuleID:        o.RuleID,
		Reason:        o.Reason,
		PolicyVersion: ex.PolicyVersion,
		PolicySHA256:  ex.PolicySHA256,
		Constraints:   o.Constraints.API(),
		DerivedTags:   ex.DerivedTags,
		SelectedRule:  ex.SelectedRule,
	}
	if o.Decision.Allowed() {
		out.Constraints.Model = o.Degraded.Model
	} else {
		out.RetryAfterSec = decisionapi.RetryAfterSec(o.RetryAfter)
	}
	for _, r := range ex.Rules {
		out.Rules = append(out.Rules, decisionapi.RuleTrace{
			RuleID: r.ID, Decision: r.Decision.API(), Matched: r.Matched, Selected: r.Selected, Why: r.Why,
		})
	}
	for _, l := range ex.Layers {
		out.BudgetLayers = append(out.BudgetLayers, decisionapi.LayerTrace{Layer: l.Layer, Verdict: l.Verdict.API(), Detail: l.Detail})
	}
	return out
}

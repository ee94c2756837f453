package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// apiConstraints converts policy constraints to the wire form.
func apiConstraints(c policy.Constraints) decisionapi.Constraints {
	ptr := func(l policy.Limit) *int64 {
		if v, ok := l.Value(); ok {
			return &v
		}
		return nil
	}
	out := decisionapi.Constraints{
		MaxRuntimeSec: ptr(c.MaxRuntimeSec),
		MaxRetries:    ptr(c.MaxRetries),
		MaxConcurrent: ptr(c.MaxConcurrent),
		MaxTokens:     ptr(c.MaxTokens),
		MaxToolCalls:  ptr(c.MaxToolCalls),
		MaxDepth:      ptr(c.MaxDepth),
	}
	if !c.RateLimit.IsZero() {
		out.RateLimit = c.RateLimit.String()
	}
	return out
}

// formatConstraints lists the set constraints as "name=value" in the API's order, or "-".
func formatConstraints(c decisionapi.Constraints) string {
	var parts []string
	for _, f := range [...]struct {
		name string
		v    *int64
	}{
		{"max_runtime_sec", c.MaxRuntimeSec}, {"max_retries", c.MaxRetries}, {"max_concurrent", c.MaxConcurrent},
		{"rate_limit", nil}, {"max_tokens", c.MaxTokens}, {"max_tool_calls", c.MaxToolCalls}, {"max_depth", c.MaxDepth},
	} {
		switch {
		case f.name == "rate_limit" && c.RateLimit != "":
			parts = append(parts, "rate_limit="+c.RateLimit)
		case f.v != nil:
			parts = append(parts, fmt.Sprintf("%s=%d", f.name, *f.v))
		}
	}
	if c.Model != "" {
		parts = append(parts, "model="+c.Model)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// retryAfterSec rounds a retry hint up to whole seconds, as the API sends it.
func retryAfterSec(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// apiBudgets converts an outcome's budget checks to the API's per-scope map; the forecast needs
// the ledger's history and is left at zero offline.
func apiBudgets(o policy.Outcome, now time.Time) map[string]decisionapi.BudgetStatus {
	m := map[string]decisionapi.BudgetStatus{}
	for _, bc := range o.Budgets {
		if !bc.Configured {
			continue
		}
		st := decisionapi.BudgetStatus{
			ID:          bc.ID,
			Window:      bc.Window.String(),
			SpentUSD:    bc.Spent.USD(),
			ReservedUSD: bc.Reserved.USD(),
			LimitUSD:    bc.Limit.USD(),
			Utilization: bc.Utilization,
			Level:       decisionapi.LevelNormal,
		}
		if bc.Window != policy.Lifetime {
			st.WindowStart, st.WindowEnd = bc.Window.Bounds(now)
		}
		switch {
		case bc.Scope == policy.ScopeFleet:
			st.Level = decisionapi.BudgetLevel(o.FleetLevel.String())
		case bc.Exhausted:
			st.Level = decisionapi.LevelExhausted
		}
		m[bc.Scope.String()] = st
	}
	return m
}

// apiExplanation converts an offline explanation to the body POST /v1/explain answers with, so
// that both print the same JSON.
func apiExplanation(ex policy.Explanation, now time.Time) decisionapi.ExplainResponse {
	o := ex.Outcome
	r := decisionapi.ExplainResponse{
		Decision:      decisionapi.Decision(o.Decision.String()),
		RuleID:        o.RuleID,
		Reason:        o.Reason,
		PolicyVersion: o.PolicyVersion,
		PolicySHA256:  ex.PolicySHA256,
		Constraints:   apiConstraints(o.Constraints),
		RetryAfterSec: retryAfterSec(o.RetryAfter),
		DerivedTags:   ex.DerivedTags,
		SelectedRule:  ex.SelectedRule,
		Budget:        apiBudgets(o, now),
	}
	if o.Decision.Allowed() {
		r.Constraints.Model = o.Degraded.Model
	}
	for _, rt := range ex.Rules {
		r.Rules = append(r.Rules, decisionapi.RuleTrace{
			RuleID: rt.ID, Decision: decisionapi.Decision(rt.Decision.String()),
			Matched: rt.Matched, Selected: rt.Selected, Why: rt.Why,
		})
	}
	for _, l := range ex.Layers {
		r.BudgetLayers = append(r.BudgetLayers, decisionapi.LayerTrace{
			Layer: l.Layer, Verdict: decisionapi.Decision(l.Verdict.String()), Detail: l.Detail,
		})
	}
	return r
}

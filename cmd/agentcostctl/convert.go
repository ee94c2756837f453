package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

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
	r := ex.API()
	r.Budget = apiBudgets(ex.Outcome, now)
	return r
}

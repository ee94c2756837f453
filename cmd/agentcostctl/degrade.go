package main

import (
	"fmt"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/internal/pricing"
)

// degradePrices returns the price table a policy's degrade entries re-estimate with offline: the
// embedded table under the given price files, as the receiver's `prices` builds it. A policy
// without degrade entries needs none (nil), so the table is not built for it.
func degradePrices(p *policy.Policy, files []string) (policy.Repricer, error) {
	if !p.HasDegrade() {
		return nil, nil
	}
	t, err := pricing.LoadLimit(true, 0, files...)
	if err != nil {
		return nil, ioErr(fmt.Errorf("prices: %w", err))
	}
	return t, nil
}

// checkDegradeModels reports the degrade targets the table does not know, as the receiver does at
// start and on reload (a *policy.ValidationError).
func checkDegradeModels(p *policy.Policy, files []string) error {
	if !p.HasDegrade() {
		return nil
	}
	t, err := pricing.LoadLimit(true, 0, files...)
	if err != nil {
		return fmt.Errorf("prices: %w", err)
	}
	return p.CheckModels(t.Knows)
}

// compareDegrade checks a case's expected constraints.model and reserved_usd.
func compareDegrade(o policy.Outcome, req policy.Request, x caseExpect) []string {
	var fails []string
	got := ""
	if o.Decision.Allowed() {
		got = o.Degraded.Model
	}
	if x.Constraints.Model != "" && got != x.Constraints.Model {
		fails = append(fails, fmt.Sprintf("constraints.model: got %q, want %q", got, x.Constraints.Model))
	}
	if x.ReservedUSD != "" {
		want, _ := money.ParseUSD(x.ReservedUSD) // validated with the file
		reserved := req.EstimatedCost
		if !o.Degraded.IsZero() {
			reserved = o.Degraded.Estimate
		}
		if !o.Decision.Allowed() {
			reserved = 0
		}
		if reserved != want {
			fails = append(fails, fmt.Sprintf("reserved_usd: got %s, want %s", reserved, want))
		}
	}
	return fails
}

package decide

import "github.com/agentcost/agentcost/internal/money"

// reprice makes the action's estimate the outcome's: when a policy `degrade:` entry swapped the
// request's model for a cheaper one, Evaluate decided with the re-estimate for that model, and
// that re-estimate is what the reservation holds, the approval records and settlement measures
// against.
func (a *action) reprice() {
	if !a.out.Degraded.IsZero() {
		a.preq.EstimatedCost = a.out.Degraded.Estimate
	}
}

// original is the request's own estimate, before any degrade re-estimate: what a second
// evaluation (the fail mode's) must start from so the price ratio is not applied twice.
func (a *action) original() money.Nanos {
	if !a.out.Degraded.IsZero() {
		return a.out.Degraded.Original
	}
	return a.preq.EstimatedCost
}

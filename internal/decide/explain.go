package decide

import (
	"context"
	"errors"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Explain shows what a decision request would get now and how every rule and budget layer saw it;
// it reserves, counts and records nothing. An agent explains only requests for itself (agent_id
// is its token's subject), as it decides only for itself. An approval_id is taken into account
// when it names an approval that the request could use.
func (e *Engine) Explain(ctx context.Context, c Caller, req decisionapi.DecisionRequest) (decisionapi.ExplainResponse, error) {
	if err := req.Validate(); err != nil {
		return decisionapi.ExplainResponse{}, err
	}
	if c.Role == access.RoleAgent && req.AgentID != c.Subject {
		return decisionapi.ExplainResponse{}, decisionapi.NewError(decisionapi.CodeForbidden,
			"agent_id %q is not the token's subject: an agent explains only its own decisions", req.AgentID)
	}
	team, err := c.team(req.Team)
	if err != nil {
		return decisionapi.ExplainResponse{}, err
	}
	req.Team = team
	a := &action{caller: c, req: &req, p: e.cfg.Policy(), now: e.now(), preq: requestOf(&req)}
	a.preq.Prices = e.cfg.Prices
	if req.ApprovalID != "" {
		if err := e.attachApproval(ctx, a); err != nil {
			var le *ledgerError
			if errors.As(err, &le) {
				e.warnLedger(le.op, le.err)
				return decisionapi.ExplainResponse{}, e.unavailableError(err)
			}
			a.preq.Approval = nil // explained as if it had none
		}
	}
	rs, err := e.gather(ctx, a.p, &a.preq, a.now)
	if err != nil {
		e.warnLedger("gather", err)
		return decisionapi.ExplainResponse{}, e.unavailableError(err)
	}
	out := policy.Explain(a.p, a.preq, rs.policy, a.now).API()
	out.Budget = rs.budgetMap(a.p)
	// A freeze is a layer above the policy and the budgets: it is listed first and decides.
	if f, ok := firstApplying(rs.freezes, a.preq.AgentID, a.preq.Team, a.preq.RunID); ok {
		freeze := decisionapi.LayerTrace{Layer: layerFreeze, Verdict: decisionapi.DecisionDeny, Detail: freezeReason(f)}
		out.BudgetLayers = append([]decisionapi.LayerTrace{freeze}, out.BudgetLayers...)
		out.Decision, out.RuleID, out.Reason = decisionapi.DecisionDeny, RuleFreeze, freezeReason(f)
		out.Constraints, out.RetryAfterSec = decisionapi.Constraints{}, 0
	}
	return out, nil
}

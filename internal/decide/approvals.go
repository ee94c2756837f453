package decide

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/notify"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// RuleApprovalPendingCap is the rule id of a deny because the agent already has
// approvals.max_pending_per_agent approvals pending.
const RuleApprovalPendingCap = "approval.pending_cap"

// pendingCap is the policy's approvals.max_pending_per_agent as the ledger takes it.
func pendingCap(p *policy.Policy) int {
	return int(min(p.MaxPendingApprovals(), math.MaxInt32))
}

func pendingCapReason(err *ledger.PendingCapError) string {
	return fmt.Sprintf("agent %q already has %d approvals pending (approvals.max_pending_per_agent); wait for a reviewer to answer one or for one to expire", err.Agent, err.Max)
}

// Approval returns one approval. An agent may read only its own.
func (e *Engine) Approval(ctx context.Context, c Caller, id string) (decisionapi.Approval, error) {
	if err := decisionapi.ValidateID("id", id); err != nil {
		return decisionapi.Approval{}, err
	}
	ap, err := e.ledger.GetApproval(ctx, id, e.now())
	if err != nil {
		return decisionapi.Approval{}, e.approvalError(id, err)
	}
	if c.Role == access.RoleAgent && ap.Agent != c.Subject {
		return decisionapi.Approval{}, decisionapi.NewError(decisionapi.CodeForbidden, "approval %q was requested by another agent", id)
	}
	return wireApproval(ap), nil
}

// ListApprovals lists one page of the approvals in a state (every state when empty), oldest
// first; NextCursor continues the list. Reviewers only.
func (e *Engine) ListApprovals(ctx context.Context, c Caller, state string, page decisionapi.ListParams) (decisionapi.ApprovalList, error) {
	if c.Role == access.RoleAgent {
		return decisionapi.ApprovalList{}, decisionapi.NewError(decisionapi.CodeForbidden, "only reviewers list approvals")
	}
	st, err := decisionapi.ParseApprovalState(state)
	if err != nil {
		return decisionapi.ApprovalList{}, err
	}
	after, err := parseApprovalCursor(page.Cursor)
	if err != nil {
		return decisionapi.ApprovalList{}, err
	}
	limit := page.PageSize()
	// One more than the page tells whether another page follows.
	aps, err := e.ledger.ListApprovals(ctx, st, after, limit+1, e.now())
	if err != nil {
		e.warnLedger("list approvals", err)
		return decisionapi.ApprovalList{}, e.unavailableError(err)
	}
	var out decisionapi.ApprovalList
	if len(aps) > limit {
		aps = aps[:limit]
		out.NextCursor = approvalCursor(aps[limit-1].Cursor())
	}
	out.Approvals = make([]decisionapi.Approval, 0, len(aps))
	for _, ap := range aps {
		out.Approvals = append(out.Approvals, wireApproval(ap))
	}
	return out, nil
}

// Approve approves a pending approval, optionally with modified constraints and a cost cap at or
// below the approval's estimate (a higher one is a 400 naming cost_cap_usd); the reviewer is the
// caller's subject. Reviewers only; agents can never approve.
func (e *Engine) Approve(ctx context.Context, c Caller, id string, req decisionapi.ApproveRequest) (decisionapi.Approval, error) {
	if err := e.mayResolve(c, id); err != nil {
		return decisionapi.Approval{}, err
	}
	if err := req.Validate(); err != nil {
		return decisionapi.Approval{}, err
	}
	res := ledger.Resolution{Approve: true, Reviewer: reviewer(c), Comment: req.Comment, Time: e.now()}
	if !req.Constraints.IsZero() {
		res.Constraints, _ = json.Marshal(req.Constraints)
	}
	res.CostCap, res.HasCostCap = optionalNanos(req.CostCapUSD)
	if res.HasCostCap {
		// The cap only lowers what was asked: the estimate is fixed at creation, so reading it
		// before resolving cannot race.
		ap, err := e.ledger.GetApproval(ctx, id, res.Time)
		if err != nil {
			return decisionapi.Approval{}, e.approvalError(id, err)
		}
		if res.CostCap > ap.Estimate {
			return decisionapi.Approval{}, (&decisionapi.FieldError{Field: "cost_cap_usd",
				Message: fmt.Sprintf("%s is above the approval's estimated cost %s: a cost cap can only lower it", usdString(res.CostCap), usdString(ap.Estimate))}).APIError()
		}
	}
	return e.resolve(ctx, id, res, evidenceConstraints(req.Constraints))
}

// Deny denies a pending approval with an optional reason. Reviewers only.
func (e *Engine) Deny(ctx context.Context, c Caller, id string, req decisionapi.DenyRequest) (decisionapi.Approval, error) {
	if err := e.mayResolve(c, id); err != nil {
		return decisionapi.Approval{}, err
	}
	if err := req.Validate(); err != nil {
		return decisionapi.Approval{}, err
	}
	return e.resolve(ctx, id, ledger.Resolution{Reviewer: reviewer(c), Comment: req.Reason, Time: e.now()}, nil)
}

func (e *Engine) mayResolve(c Caller, id string) error {
	if c.Role == access.RoleAgent {
		return decisionapi.NewError(decisionapi.CodeForbidden, "agents cannot approve or deny")
	}
	return decisionapi.ValidateID("id", id)
}

func reviewer(c Caller) string {
	if c.Subject == "" {
		return anonymousReviewer
	}
	return c.Subject
}

// resolve records the reviewer's answer and writes the approval record under the evidence id of
// the decision that asked for it.
func (e *Engine) resolve(ctx context.Context, id string, res ledger.Resolution, modified *decisionapi.Constraints) (decisionapi.Approval, error) {
	ap, err := e.ledger.ResolveApproval(ctx, id, res)
	if err != nil {
		if repeat, ok, rerr := e.repeatedResolve(ctx, id, res, err); ok {
			return repeat, rerr
		}
		return decisionapi.Approval{}, e.approvalError(id, err)
	}
	out := wireApproval(ap)
	outcome := "denied"
	if res.Approve {
		outcome = "approved"
	}
	var payload approvalPayload
	_ = json.Unmarshal(ap.Payload, &payload)
	evidenceID := payload.EvidenceID
	if evidenceID == "" {
		evidenceID = ap.ID
	}
	rec := evidence.Record{
		Kind: evidence.KindApproval, EvidenceID: evidenceID, Time: res.Time,
		RunID: payload.RunID, AgentID: ap.Agent, Team: payload.Team, Action: ap.Action,
		DecisionID: payload.DecisionID, TraceID: payload.TraceID, ApprovalID: ap.ID,
		EstimatedCostUSD: evidence.USD(ap.Estimate), RuleID: ap.Rule, Reason: res.Comment,
		Reviewer: res.Reviewer, Outcome: outcome, ModifiedConstraints: modified,
	}
	if res.HasCostCap {
		rec.CostCapUSD = evidence.USD(res.CostCap)
	}
	if e.appendEvidence(rec) {
		out.EvidenceID = evidenceID
	}
	// No answer without its event: the reviewer's retry (the same answer by the same reviewer)
	// finds the approval resolved so, stores the event and answers it (repeatedResolve).
	if err := e.emit(ctx, approvalEvent(notify.TypeApprovalResolved, ap, res.Time)); err != nil {
		return decisionapi.Approval{}, resolvedEventError(id)
	}
	return out, nil
}

// resolvedEventError answers a resolution whose approval.resolved event could not be stored.
func resolvedEventError(id string) error {
	ae := decisionapi.NewError(decisionapi.CodeUnavailable,
		"approval %q is resolved but its notification could not be stored; repeat the same request", id)
	ae.RetryAfterSec = 1
	return ae
}

// repeatedResolve answers a resolution that the approval already has from the same reviewer (the
// retry of an answer whose event could not be stored, or a double click): it stores the
// approval.resolved event again (the outbox keeps one copy; receivers deduplicate delivered ones
// by id) and answers the approval as the first call would have. ok is false for anything else,
// which stays a conflict; err is the answer when the event could still not be stored.
func (e *Engine) repeatedResolve(ctx context.Context, id string, res ledger.Resolution, err error) (_ decisionapi.Approval, ok bool, _ error) {
	var se *ledger.ApprovalStateError
	want := decisionapi.ApprovalDenied
	if res.Approve {
		want = decisionapi.ApprovalApproved
	}
	if !errors.As(err, &se) || se.State != want {
		return decisionapi.Approval{}, false, nil
	}
	ap, gerr := e.ledger.GetApproval(ctx, id, e.now())
	if gerr != nil || ap.State != want || ap.Decision == nil || ap.Decision.Reviewer != res.Reviewer {
		return decisionapi.Approval{}, false, nil
	}
	if e.emit(ctx, approvalEvent(notify.TypeApprovalResolved, ap, ap.Decision.At)) != nil {
		return decisionapi.Approval{}, true, resolvedEventError(id)
	}
	return wireApproval(ap), true, nil
}

func (e *Engine) approvalError(id string, err error) error {
	var se *ledger.ApprovalStateError
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return decisionapi.NewError(decisionapi.CodeNotFound, "no approval %q", id)
	case errors.As(err, &se):
		return decisionapi.NewError(decisionapi.CodeConflict, "approval %q is %s: cannot %s it", id, se.State, se.Op)
	case errors.Is(err, ledger.ErrConflict):
		return decisionapi.NewError(decisionapi.CodeConflict, "approval %q cannot change: %v", id, err)
	}
	e.warnLedger("approval", err)
	return e.unavailableError(err)
}

// wireApproval converts a ledger approval to the API's shape.
func wireApproval(ap ledger.Approval) decisionapi.Approval {
	var payload approvalPayload
	_ = json.Unmarshal(ap.Payload, &payload)
	out := decisionapi.Approval{
		ApprovalID: ap.ID, State: ap.State, AgentID: ap.Agent, Action: ap.Action,
		RunID: payload.RunID, Team: payload.Team, RiskTags: payload.RiskTags,
		EstimatedCostUSD: usd(ap.Estimate), Items: ap.Items, RuleID: ap.Rule, Reason: ap.Reason,
		RequestedBy: ap.Requester, CreatedAt: ap.CreatedAt, ExpiresAt: ap.ExpiresAt,
		EvidenceID: payload.EvidenceID,
	}
	if d := ap.Decision; d != nil {
		out.Reviewer, out.Comment, out.DecidedAt = d.Reviewer, d.Comment, d.At
		if len(d.Constraints) > 0 {
			_ = json.Unmarshal(d.Constraints, &out.Constraints)
		}
		if d.HasCostCap {
			v := usd(d.CostCap)
			out.CostCapUSD = &v
		}
	}
	return out
}

// usdString formats nano-dollars as exact dollars for a message.
func usdString(n money.Nanos) string { return "$" + n.String() }

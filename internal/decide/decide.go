package decide

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/notify"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// RuleLedgerUnavailable is the rule id of a decision the ledger could not back.
const RuleLedgerUnavailable = "ledger.unavailable"

// Reservation metadata keys: what settling an action needs to know about its decision.
const (
	metaEvidenceID       = "evidence_id"
	metaEvidence         = "evidence" // "1" when the decision wrote a record
	metaLeaseID          = "lease_id"
	metaMaxTokens        = "max_tokens"
	metaConcurrencyKey   = "concurrency_key"
	metaConcurrencyLease = "concurrency_lease"
	metaApprovalID       = "approval_id"
)

// errLedgerTimeout is the cause of a decision's ledger deadline (Config.LedgerTimeout).
var errLedgerTimeout = errors.New("the ledger did not answer within the decision's ledger timeout")

// boundLedger bounds ctx by the decision's ledger timeout. A context past that deadline is a
// failing ledger, answered under the fail mode; one its caller canceled is not.
func (e *Engine) boundLedger(ctx context.Context) (context.Context, context.CancelFunc) {
	if e.cfg.LedgerTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, e.cfg.LedgerTimeout, errLedgerTimeout)
}

// ledgerError is a ledger failure on the way to an answer; decisions answer it under the fail
// mode, other operations with 503.
type ledgerError struct {
	op  string
	err error
}

func (e *ledgerError) Error() string { return e.op + ": " + e.err.Error() }
func (e *ledgerError) Unwrap() error { return e.err }

func ledgerErr(op string, err error) error { return &ledgerError{op: op, err: err} }

// unavailableError is the 503 of an operation the ledger failed.
func (e *Engine) unavailableError(error) *decisionapi.APIError {
	ae := decisionapi.NewError(decisionapi.CodeUnavailable, "the budget ledger is unavailable; retry later")
	ae.RetryAfterSec = decisionapi.RetryAfterSec(e.cfg.RetryAfter)
	return ae
}

// action is one decision on its way to an answer.
type action struct {
	caller  Caller
	req     *decisionapi.DecisionRequest
	preq    policy.Request
	p       *policy.Policy
	now     time.Time
	id      string // the decision id, also the reservation id
	traceID string
	// evidenceID links the action's records: the decision id, or the evidence id of the
	// approval the request carries.
	evidenceID string
	approval   *ledger.Approval
	rs         requestState
	out        policy.Outcome

	decision    policy.Decision
	ruleID      string
	reason      string
	retry       time.Duration
	constraints policy.Constraints
	ttl         time.Duration
	leaseID     string
	approvalID  string
	expiresAt   time.Time
	concKey     string
	concLease   string
	reserved    bool
}

func (a *action) set(d policy.Decision, ruleID, reason string, retry time.Duration) {
	a.decision, a.ruleID, a.reason, a.retry = d, ruleID, reason, retry
	if !d.Allowed() {
		a.constraints = policy.Constraints{}
	}
}

// writesEvidence reports whether the decision gets a decision record: every decision other than
// a plain allow, an estimate at or above the policy's threshold, and every approved action.
func (a *action) writesEvidence() bool {
	return a.decision != policy.Allow || a.out.Evidence || a.approval != nil
}

// Decide answers a decision request: validate, authorize, then (with an idempotency key) return
// the key's first answer or decide afresh. traceparent is the request's W3C header. Errors are
// *decisionapi.APIError (or carry one): 400 naming the field, 403, 409; a failing ledger is
// answered under the fail mode, not as an error.
func (e *Engine) Decide(ctx context.Context, c Caller, req decisionapi.DecisionRequest, traceparent string) (decisionapi.DecisionResponse, error) {
	if c.Role == access.RoleReviewer {
		return decisionapi.DecisionResponse{}, decisionapi.NewError(decisionapi.CodeForbidden, "reviewers cannot request decisions")
	}
	if err := req.Validate(); err != nil {
		return decisionapi.DecisionResponse{}, err
	}
	if c.Role == access.RoleAgent && req.AgentID != c.Subject {
		return decisionapi.DecisionResponse{}, decisionapi.NewError(decisionapi.CodeForbidden,
			"agent_id %q is not the token's subject: an agent decides only for itself", req.AgentID)
	}
	team, err := c.team(req.Team)
	if err != nil {
		return decisionapi.DecisionResponse{}, err
	}
	req.Team = team
	traceID := parseTraceparent(traceparent)
	if req.IdempotencyKey != "" {
		return e.idempotent(ctx, c, &req, traceID)
	}
	return e.decide(ctx, c, &req, traceID, newID("dec"))
}

// decide answers a validated request with decision id id, its ledger calls bounded by the
// ledger timeout (Config.LedgerTimeout).
func (e *Engine) decide(ctx context.Context, c Caller, req *decisionapi.DecisionRequest, traceID, id string) (decisionapi.DecisionResponse, error) {
	ctx, cancel := e.boundLedger(ctx)
	defer cancel()
	a := &action{caller: c, req: req, p: e.cfg.Policy(), now: e.now(), id: id, evidenceID: id, traceID: traceID}
	a.preq = requestOf(req)
	a.preq.Prices = e.cfg.Prices
	if req.ApprovalID != "" {
		if err := e.attachApproval(ctx, a); err != nil {
			return e.fail(ctx, a, err)
		}
	}
	rs, err := e.gather(ctx, a.p, &a.preq, a.now)
	if err != nil {
		return e.fail(ctx, a, ledgerErr("gather", err))
	}
	a.rs = rs
	a.out = policy.Evaluate(a.p, a.preq, rs.policy, a.now)
	a.reprice()
	a.constraints = a.out.Constraints
	a.set(a.out.Decision, a.out.RuleID, a.out.Reason, a.out.RetryAfter)
	a.applyFreeze()
	switch {
	case a.decision.Allowed():
		if err := e.enforce(ctx, a); err != nil {
			return e.fail(ctx, a, err)
		}
	case a.decision == policy.RequireApproval:
		if err := e.requestApproval(ctx, a); err != nil {
			return e.fail(ctx, a, err)
		}
	}
	return e.answer(a), nil
}

// fail answers err: an API error as itself, a ledger failure under the fail mode.
func (e *Engine) fail(ctx context.Context, a *action, err error) (decisionapi.DecisionResponse, error) {
	var le *ledgerError
	if !errors.As(err, &le) {
		return decisionapi.DecisionResponse{}, err
	}
	if ctx.Err() != nil && !errors.Is(context.Cause(ctx), errLedgerTimeout) {
		return decisionapi.DecisionResponse{}, ctx.Err()
	}
	e.warnLedger(le.op, le.err)
	mode := e.failMode(a.preq.Action)
	e.rec.LedgerUnavailable(mode)
	e.undo(context.WithoutCancel(ctx), a)
	a.rs, a.leaseID, a.approvalID, a.expiresAt = requestState{}, "", "", time.Time{}
	if mode == FailClosed {
		a.set(policy.Deny, RuleLedgerUnavailable, "budget ledger unavailable: failing closed", e.cfg.RetryAfter)
		return e.answer(a), nil
	}
	preq := a.preq
	preq.Approval = nil
	preq.EstimatedCost = a.original()
	a.approval = nil
	a.out = policy.Evaluate(a.p, preq, policy.State{}, a.now)
	a.reprice()
	a.constraints = a.out.Constraints
	switch a.out.Decision {
	case policy.Deny:
		a.set(policy.Deny, a.out.RuleID, a.out.Reason, a.out.RetryAfter)
	case policy.Throttle:
		a.set(policy.Throttle, a.out.RuleID, a.out.Reason, max(a.out.RetryAfter, e.cfg.RetryAfter))
	case policy.RequireApproval:
		a.set(policy.Throttle, RuleLedgerUnavailable, "budget ledger unavailable: failing open, but approvals need the ledger", e.cfg.RetryAfter)
	default:
		a.set(a.out.Decision, a.out.RuleID, "budget ledger unavailable: failing open, nothing reserved", 0)
	}
	return e.answer(a), nil
}

// failMode is how a decision on topic is answered while the ledger fails.
func (e *Engine) failMode(topic string) FailMode {
	switch {
	case e.cfg.FailMode == FailClosed && e.cfg.FailOpenTopics.Match(topic):
		return FailOpen
	case e.cfg.FailMode == FailOpen && e.cfg.FailClosedTopics.Match(topic):
		return FailClosed
	}
	return e.cfg.FailMode
}

// undo gives back what a failed decision took: its concurrency slot and its reservation.
func (e *Engine) undo(ctx context.Context, a *action) {
	if a.reserved {
		if _, err := e.ledger.Release(ctx, ledger.ReleaseRequest{ID: a.id, Time: a.now}); err != nil {
			e.warnLedger("release", err)
		}
		a.reserved = false
	}
	if a.concLease != "" {
		if err := e.ledger.ReleaseLease(ctx, a.concKey, a.concLease); err != nil {
			e.warnLedger("release lease", err)
		}
		a.concKey, a.concLease = "", ""
	}
}

// enforce takes what an allowed outcome needs through the ledger: the fleet and rule rate limits,
// the concurrency slot, the reservation of the estimate, and the approval. A limit that does not
// admit the action turns the answer into throttle, a budget that does not fit into deny.
func (e *Engine) enforce(ctx context.Context, a *action) error {
	o := &a.out
	for _, rc := range [...]struct {
		check  policy.RateCheck
		ruleID string
	}{{o.FleetRate, policy.RuleFleet}, {o.RuleRate, o.RuleID}} {
		if rc.check.Limit.IsZero() {
			continue
		}
		ok, retry, err := e.ledger.AllowRate(ctx, "rate/"+rc.check.Key.String(), int(rc.check.Limit.Count), rc.check.Limit.Period, a.now)
		if err != nil {
			return ledgerErr("rate limit", err)
		}
		if !ok {
			a.set(policy.Throttle, rc.ruleID, fmt.Sprintf("rate_limit %s exceeded: %s", rc.check.Limit, rc.check.Reason), max(retry, time.Second))
			return nil
		}
	}
	a.ttl = e.cfg.ReservationTTL
	if n, ok := a.constraints.MaxRuntimeSec.Value(); ok && n > 0 {
		a.ttl = time.Duration(n) * time.Second
	}
	if cc := o.Concurrency; cc.Max > 0 {
		key := "concurrency/" + cc.Key.String()
		lease, ok, retry, err := e.ledger.AcquireLease(ctx, key, int(cc.Max), a.ttl, a.now)
		if err != nil {
			return ledgerErr("concurrency lease", err)
		}
		if !ok {
			a.set(policy.Throttle, o.RuleID, fmt.Sprintf("max_concurrent %d reached: %s", cc.Max, o.Reason), max(retry, time.Second))
			return nil
		}
		a.concKey, a.concLease = key, lease
	}
	if err := e.reserve(ctx, a); err != nil || !a.reserved {
		return err
	}
	if a.approval != nil {
		if _, err := e.ledger.ConsumeApproval(ctx, a.approval.ID, a.now); err != nil {
			e.undo(context.WithoutCancel(ctx), a)
			if errors.Is(err, ledger.ErrConflict) || errors.Is(err, ledger.ErrNotFound) {
				return decisionapi.NewError(decisionapi.CodeConflict, "approval %q was used by another decision", a.approval.ID)
			}
			return ledgerErr("consume approval", err)
		}
		a.approvalID = a.approval.ID
	}
	return nil
}

// reserve reserves the estimate against every configured budget; the fleet's is reserved
// without a check (its levels govern it).
func (e *Engine) reserve(ctx context.Context, a *action) error {
	var checks []ledger.Check
	for s, bc := range a.out.Budgets {
		if !bc.Configured {
			continue
		}
		scope := policy.Scope(s)
		checks = append(checks, ledger.Check{
			Scope: ledgerScope(scope), ID: ledgerID(scope, bc.ID), Window: ledgerWindow(bc.Window),
			Limit: bc.Limit, Unlimited: !bc.Enforce,
		})
	}
	lease := e.leaseID(a.id, a.req.AgentID)
	md := map[string]string{metaEvidenceID: a.evidenceID, metaLeaseID: lease}
	if a.writesEvidence() {
		md[metaEvidence] = "1"
	}
	if n, ok := a.constraints.MaxTokens.Value(); ok {
		md[metaMaxTokens] = strconv.FormatInt(n, 10)
	}
	if a.concLease != "" {
		md[metaConcurrencyKey], md[metaConcurrencyLease] = a.concKey, a.concLease
	}
	if a.approval != nil {
		md[metaApprovalID] = a.approval.ID
	}
	res, err := e.ledger.Reserve(ctx, ledger.ReserveRequest{
		ID: a.id, TraceID: a.traceID, Checks: checks, Estimate: a.preq.EstimatedCost, TTL: a.ttl, Time: a.now,
		Agent: a.req.AgentID, Team: a.req.Team, RunID: a.req.RunID, Action: a.req.Action, Metadata: md,
	})
	var ex *ledger.ExhaustedError
	switch {
	case errors.As(err, &ex):
		e.undo(context.WithoutCancel(ctx), a)
		retry := time.Duration(0)
		if ex.Window != ledger.Lifetime {
			_, end := ledger.WindowBounds(ex.Window, a.now, e.loc)
			retry = end.Sub(a.now)
		}
		a.set(policy.Deny, exhaustedRule(ex.Scope), ex.Error(), retry)
		return nil
	case err != nil:
		return ledgerErr("reserve", err)
	}
	a.reserved, a.leaseID = true, lease
	a.expiresAt = res.ExpiresAt
	a.rs.applyUsage(res.Usage)
	return nil
}

func exhaustedRule(s ledger.Scope) string {
	switch s {
	case ledger.ScopeRun:
		return policy.RuleRunBudget
	case ledger.ScopeAgent:
		return policy.RuleAgentBudget
	case ledger.ScopeTeam:
		return policy.RuleTeamBudget
	}
	return policy.RuleFleet
}

// approvalPayload is what an approval keeps of the request that needed it.
type approvalPayload struct {
	RunID      string   `json:"run_id,omitempty"`
	Team       string   `json:"team,omitempty"`
	RiskTags   []string `json:"risk_tags,omitempty"`
	EvidenceID string   `json:"evidence_id,omitempty"`
	DecisionID string   `json:"decision_id,omitempty"`
	TraceID    string   `json:"trace_id,omitempty"`
}

// requestApproval creates the pending approval a require_approval answer names.
func (e *Engine) requestApproval(ctx context.Context, a *action) error {
	payload, _ := json.Marshal(approvalPayload{
		RunID: a.req.RunID, Team: a.req.Team, RiskTags: a.req.RiskTags,
		EvidenceID: a.evidenceID, DecisionID: a.id, TraceID: a.traceID,
	})
	ap, err := e.ledger.CreateApproval(ctx, ledger.Approval{
		ID: newID("apr"), Agent: a.req.AgentID, Action: a.req.Action, Estimate: a.preq.EstimatedCost,
		Items: a.req.Items, Rule: a.ruleID, Reason: a.reason, Requester: a.caller.Subject,
		CreatedAt: a.now, ExpiresAt: a.now.Add(e.cfg.ApprovalTTL), Payload: payload,
	}, pendingCap(a.p))
	var capErr *ledger.PendingCapError
	switch {
	case errors.As(err, &capErr):
		a.set(policy.Deny, RuleApprovalPendingCap, pendingCapReason(capErr), 0)
		return nil
	case err != nil:
		return ledgerErr("create approval", err)
	}
	if err := e.emit(ctx, approvalEvent(notify.TypeApprovalRequested, ap, a.now)); err != nil {
		// No answer without its event: no reviewer would hear of this approval. It is withdrawn
		// (denied by agentcost, so it neither waits for a reviewer nor counts against
		// max_pending_per_agent) and the request is answered 503 whatever the fail mode: a
		// retry asks for a new approval and stores its event.
		if _, werr := e.ledger.ResolveApproval(ctx, ap.ID, ledger.Resolution{Reviewer: withdrawnReviewer,
			Comment: "withdrawn: its approval.requested notification could not be stored", Time: a.now}); werr != nil {
			e.warnLedger("withdraw approval", werr) // it expires unanswered (and is notified then)
		}
		ae := decisionapi.NewError(decisionapi.CodeUnavailable, "the approval request's notification could not be stored; retry later")
		ae.RetryAfterSec = decisionapi.RetryAfterSec(e.cfg.RetryAfter)
		return ae
	}
	a.approvalID, a.expiresAt = ap.ID, ap.ExpiresAt
	return nil
}

// withdrawnReviewer is the reviewer named on an approval agentcost withdrew because its
// approval.requested notification could not be stored.
const withdrawnReviewer = "agentcost"

// attachApproval looks up the approval a re-submitted request names: it must exist, belong to
// the same agent and action, and be approved (not pending, denied, expired or used). Its
// constraints and cost cap (the approved estimate unless the reviewer set a cap) go to Evaluate.
func (e *Engine) attachApproval(ctx context.Context, a *action) error {
	ap, err := e.ledger.GetApproval(ctx, a.req.ApprovalID, a.now)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return (&decisionapi.FieldError{Field: "approval_id", Message: fmt.Sprintf("no approval %q", a.req.ApprovalID)}).APIError()
	case err != nil:
		return ledgerErr("get approval", err)
	case ap.Agent != a.req.AgentID:
		return decisionapi.NewError(decisionapi.CodeForbidden, "approval %q was requested by another agent", ap.ID)
	case ap.Action != a.req.Action:
		return (&decisionapi.FieldError{Field: "approval_id", Message: fmt.Sprintf("approval %q is for action %q, not %q", ap.ID, ap.Action, a.req.Action)}).APIError()
	case ap.State != decisionapi.ApprovalApproved:
		return decisionapi.NewError(decisionapi.CodeConflict, "approval %q is %s, not approved", ap.ID, ap.State)
	}
	approved := &policy.ApprovedApproval{ID: ap.ID, CostCap: ap.Estimate}
	if d := ap.Decision; d != nil {
		if len(d.Constraints) > 0 {
			var wire decisionapi.Constraints
			if err := json.Unmarshal(d.Constraints, &wire); err == nil {
				approved.Constraints, _ = policy.ConstraintsFromAPI(wire)
			}
		}
		if d.HasCostCap {
			// Evaluate reads a zero cap as none; a reviewer's zero cap admits nothing that costs.
			approved.CostCap = max(d.CostCap, 1)
		}
	}
	var payload approvalPayload
	_ = json.Unmarshal(ap.Payload, &payload)
	if payload.EvidenceID != "" {
		a.evidenceID = payload.EvidenceID
	}
	a.preq.Approval = approved
	a.approval = &ap
	return nil
}

// answer writes the decision's evidence, counts it and returns the response.
func (e *Engine) answer(a *action) decisionapi.DecisionResponse {
	resp := decisionapi.DecisionResponse{
		Decision:      decisionapi.Decision(a.decision.String()),
		DecisionID:    a.id,
		RuleID:        a.ruleID,
		Reason:        a.reason,
		PolicyVersion: a.p.Version(),
		PolicySHA256:  a.p.SHA256(),
		LeaseID:       a.leaseID,
		ApprovalID:    a.approvalID,
		Budget:        a.rs.budgetMap(a.p),
		ExpiresAt:     a.expiresAt,
	}
	if a.decision.Allowed() {
		resp.Constraints = a.constraints.API()
		resp.Constraints.Model = a.out.Degraded.Model
	} else {
		resp.RetryAfterSec = decisionapi.RetryAfterSec(a.retry)
	}
	if a.writesEvidence() {
		rec := evidence.Record{
			Kind: evidence.KindDecision, EvidenceID: a.evidenceID, Time: a.now,
			RunID: a.req.RunID, AgentID: a.req.AgentID, Team: a.req.Team, Action: a.req.Action,
			DecisionID: a.id, TraceID: a.traceID, LeaseID: a.leaseID, ApprovalID: a.approvalID,
			EstimatedCostUSD: evidence.USD(a.preq.EstimatedCost), Decision: string(resp.Decision),
			RuleID: a.ruleID, Reason: a.reason, PolicyVersion: resp.PolicyVersion, PolicySHA256: resp.PolicySHA256,
			Constraints: evidenceConstraints(resp.Constraints),
		}
		if e.appendEvidence(rec) {
			resp.EvidenceID = a.evidenceID
		}
	}
	e.rec.Decided(a.decision, a.ruleID)
	return resp
}

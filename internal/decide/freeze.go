package decide

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// RuleFreeze is the rule id of a decision denied because a freeze covers its scope.
const RuleFreeze = decisionapi.RuleFreeze

// FreezeRecorder is told when a reviewer freezes a scope or lifts a freeze: the hook for
// notifications. A Config.Recorder that also implements it is called after the freeze is durable
// in the ledger (and its evidence record written); calls must be cheap and must not block.
type FreezeRecorder interface {
	// Frozen is told about a new freeze.
	Frozen(f decisionapi.Freeze)
	// Unfrozen is told about a lifted freeze.
	Unfrozen(f decisionapi.Freeze)
}

// reviewerName is who the ledger and the evidence record as a reviewer: the token's subject, or
// anonymous on an open API.
func reviewerName(c Caller) string {
	if c.Subject == "" {
		return anonymousReviewer
	}
	return c.Subject
}

// wireFreeze is a ledger freeze as the API shows it at now.
func wireFreeze(f ledger.Freeze, now time.Time) decisionapi.Freeze {
	out := decisionapi.Freeze{
		FreezeID: f.ID, Scope: decisionapi.FreezeScope(f.Scope), ScopeID: f.ScopeID, Reason: f.Reason,
		State: decisionapi.FreezeState(f.StateAt(now)), CreatedBy: f.CreatedBy, CreatedAt: f.CreatedAt.UTC(), LiftedBy: f.LiftedBy,
	}
	if !f.ExpiresAt.IsZero() {
		t := f.ExpiresAt.UTC()
		out.ExpiresAt = &t
	}
	if !f.LiftedAt.IsZero() {
		t := f.LiftedAt.UTC()
		out.LiftedAt = &t
	}
	return out
}

// freezeEvidence writes the freeze or unfreeze record.
func (e *Engine) freezeEvidence(kind evidence.Kind, f ledger.Freeze, reviewer string, at time.Time) {
	rec := evidence.Record{Kind: kind, EvidenceID: f.ID, Time: at, FreezeID: f.ID, Scope: string(f.Scope), ScopeID: f.ScopeID,
		Reviewer: reviewer, Reason: f.Reason}
	switch f.Scope {
	case ledger.FreezeAgent:
		rec.AgentID = f.ScopeID
	case ledger.FreezeTeam:
		rec.Team = f.ScopeID
	case ledger.FreezeRun:
		rec.RunID = f.ScopeID
	}
	e.appendEvidence(rec)
}

// CreateFreeze freezes a scope: from now on every decision in it is denied with rule freeze and
// the reason, and every lease check of a running action in it answers frozen. Reviewers (and an
// open API) only; the freeze is durable in the ledger before it is answered, and written as a
// freeze evidence record. Errors: 400 naming the field, 403, 503.
func (e *Engine) CreateFreeze(ctx context.Context, c Caller, req decisionapi.FreezeRequest) (decisionapi.Freeze, error) {
	if c.Role == access.RoleAgent {
		return decisionapi.Freeze{}, decisionapi.NewError(decisionapi.CodeForbidden, "only reviewers freeze; agents cannot create or lift freezes")
	}
	if err := req.Validate(); err != nil {
		return decisionapi.Freeze{}, err
	}
	now := e.now()
	f := ledger.Freeze{ID: newID("fz"), Scope: ledger.FreezeScope(req.Scope), ScopeID: req.ScopeID, Reason: req.Reason,
		CreatedBy: reviewerName(c), CreatedAt: now}
	if req.ExpiresInSec != nil {
		f.ExpiresAt = now.Add(time.Duration(*req.ExpiresInSec) * time.Second)
	}
	f, err := e.ledger.CreateFreeze(ctx, f)
	if err != nil {
		e.warnLedger("create freeze", err)
		return decisionapi.Freeze{}, e.unavailableError(err)
	}
	e.freezeEvidence(evidence.KindFreeze, f, f.CreatedBy, now)
	e.log.Info("Scope frozen", zap.String("freeze_id", f.ID), zap.String("scope", string(f.Scope)),
		zap.String("scope_id", f.ScopeID), zap.String("by", f.CreatedBy), zap.String("reason", f.Reason))
	out := wireFreeze(f, now)
	if fr, ok := e.rec.(FreezeRecorder); ok {
		fr.Frozen(out)
	}
	e.emit(ctx, freezeEvent(out, true, now))
	return out, nil
}

// LiftFreeze lifts an active freeze; decisions in its scope are decided by the policy again.
// Reviewers (and an open API) only; written as an unfreeze evidence record. Errors: 403, 404
// (unknown freeze), 409 (already lifted or expired), 503.
func (e *Engine) LiftFreeze(ctx context.Context, c Caller, id string) (decisionapi.Freeze, error) {
	if c.Role == access.RoleAgent {
		return decisionapi.Freeze{}, decisionapi.NewError(decisionapi.CodeForbidden, "only reviewers lift freezes; agents cannot create or lift freezes")
	}
	if err := decisionapi.ValidateID("id", id); err != nil {
		return decisionapi.Freeze{}, err
	}
	now := e.now()
	who := reviewerName(c)
	f, err := e.ledger.LiftFreeze(ctx, id, who, now)
	var se *ledger.FreezeStateError
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return decisionapi.Freeze{}, decisionapi.NewError(decisionapi.CodeNotFound, "no freeze %q", id)
	case errors.As(err, &se):
		return decisionapi.Freeze{}, decisionapi.NewError(decisionapi.CodeConflict, "freeze %q is already %s", id, se.State)
	case err != nil:
		e.warnLedger("lift freeze", err)
		return decisionapi.Freeze{}, e.unavailableError(err)
	}
	e.freezeEvidence(evidence.KindUnfreeze, f, who, now)
	e.log.Info("Freeze lifted", zap.String("freeze_id", f.ID), zap.String("scope", string(f.Scope)),
		zap.String("scope_id", f.ScopeID), zap.String("by", who))
	out := wireFreeze(f, now)
	if fr, ok := e.rec.(FreezeRecorder); ok {
		fr.Unfrozen(out)
	}
	e.emit(ctx, freezeEvent(out, false, now))
	return out, nil
}

// Freezes lists one page of freezes, oldest first: the active ones (state "active") or every one
// (state empty). Reviewers (and an open API) only.
func (e *Engine) Freezes(ctx context.Context, c Caller, state string, page decisionapi.ListParams) (decisionapi.FreezeList, error) {
	if c.Role == access.RoleAgent {
		return decisionapi.FreezeList{}, decisionapi.NewError(decisionapi.CodeForbidden, "only reviewers list freezes")
	}
	st, err := decisionapi.ParseFreezeState(state)
	if err != nil {
		return decisionapi.FreezeList{}, err
	}
	after, err := parseFreezeCursor(page.Cursor)
	if err != nil {
		return decisionapi.FreezeList{}, err
	}
	limit := page.PageSize()
	now := e.now()
	fs, err := e.ledger.ListFreezes(ctx, st == decisionapi.FreezeActive, after, limit+1, now)
	if err != nil {
		e.warnLedger("list freezes", err)
		return decisionapi.FreezeList{}, e.unavailableError(err)
	}
	var out decisionapi.FreezeList
	if len(fs) > limit {
		fs = fs[:limit]
		out.NextCursor = freezeCursor(fs[limit-1].Cursor())
	}
	out.Freezes = make([]decisionapi.Freeze, 0, len(fs))
	for _, f := range fs {
		out.Freezes = append(out.Freezes, wireFreeze(f, now))
	}
	return out, nil
}

// ActiveFreezes counts the freezes active now (every replica's: they live in the ledger), for
// the agentcost_freezes_active gauge.
func (e *Engine) ActiveFreezes(ctx context.Context) (int, error) {
	fs, err := e.ledger.ListFreezes(ctx, true, ledger.ApprovalCursor{}, 0, e.now())
	return len(fs), err
}

// Lease answers a lease check (GET /v1/leases/{id}): the lease's state and whether a freeze active
// now covers its fleet, team, agent or run. One ledger read. An agent reads only leases granted
// to it (the lease id's MAC, checked without a lookup); reviewers read any. Errors: 403, 404
// (unknown or long-forgotten lease), 503.
func (e *Engine) Lease(ctx context.Context, c Caller, leaseID string) (decisionapi.LeaseStatus, error) {
	if err := decisionapi.ValidateID("id", leaseID); err != nil {
		return decisionapi.LeaseStatus{}, err
	}
	decisionID, mac, ok := strings.Cut(leaseID, ".")
	if !ok || decisionID == "" {
		return decisionapi.LeaseStatus{}, decisionapi.NewError(decisionapi.CodeNotFound, "no lease %q", leaseID)
	}
	if c.Role == access.RoleAgent && !hmac.Equal([]byte(mac), []byte(e.leaseMAC(decisionID, c.Subject))) {
		return decisionapi.LeaseStatus{}, decisionapi.NewError(decisionapi.CodeForbidden, "lease %q was not granted to agent %q", leaseID, c.Subject)
	}
	now := e.now()
	li, err := e.ledger.LeaseInfo(ctx, decisionID, now)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return decisionapi.LeaseStatus{}, decisionapi.NewError(decisionapi.CodeNotFound, "no lease %q", leaseID)
	case err != nil:
		e.warnLedger("lease check", err)
		return decisionapi.LeaseStatus{}, e.unavailableError(err)
	}
	// A MAC for another agent's decision id passes the check above only for that agent; an open
	// or reviewer caller may read any lease, but the MAC must still be the lease's own.
	if c.Role != access.RoleAgent && !hmac.Equal([]byte(mac), []byte(e.leaseMAC(decisionID, li.Agent))) {
		return decisionapi.LeaseStatus{}, decisionapi.NewError(decisionapi.CodeNotFound, "no lease %q", leaseID)
	}
	out := decisionapi.LeaseStatus{LeaseID: leaseID, DecisionID: decisionID, AgentID: li.Agent, State: decisionapi.LeaseOpen, ExpiresAt: li.ExpiresAt.UTC()}
	switch {
	case li.Settled:
		out.State = decisionapi.LeaseSettled
	case !now.Before(li.ExpiresAt):
		out.State = decisionapi.LeaseExpired
	}
	if f, ok := firstApplying(li.Freezes, li.Agent, li.Team, li.RunID); ok {
		wf := wireFreeze(f, now)
		out.Frozen, out.Freeze = true, &wf
	}
	return out, nil
}

// firstApplying returns the oldest of the active freezes that covers agent, team and run.
func firstApplying(fs []ledger.Freeze, agent, team, run string) (ledger.Freeze, bool) {
	for _, f := range fs {
		if f.Applies(agent, team, run) {
			return f, true
		}
	}
	return ledger.Freeze{}, false
}

// layerFreeze is the explain layer of a freeze covering the request.
const layerFreeze = "freeze"

// freezeReason is the reason of a decision a freeze denied.
func freezeReason(f ledger.Freeze) string {
	scope := string(f.Scope)
	if f.ScopeID != "" {
		scope += " " + f.ScopeID
	}
	return fmt.Sprintf("frozen (%s, %s by %s): %s", scope, f.ID, f.CreatedBy, f.Reason)
}

// applyFreeze denies the action when a freeze read with its state covers it: a layer above the
// policy and the budgets, so nothing is reserved and no approval is asked or consumed.
func (a *action) applyFreeze() bool {
	f, ok := firstApplying(a.rs.freezes, a.preq.AgentID, a.preq.Team, a.preq.RunID)
	if !ok {
		return false
	}
	a.set(policy.Deny, RuleFreeze, freezeReason(f), 0)
	return true
}

package decide

import (
	"context"
	"crypto/hmac"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Release releases an allowed action's lease: it settles the reservation (the matched span spend,
// else the reported actual_cost_usd, clipped to the policy's ReportedCostLimit for the decision's
// estimate), frees the rest, gives the concurrency slot back, and judges the action against its
// per-action baseline. An agent may release only leases granted to it.
// Errors: 400 naming the field, 403, 404 (unknown lease), 409 (already settled), 503.
func (e *Engine) Release(ctx context.Context, c Caller, leaseID string, req decisionapi.ReleaseRequest) (decisionapi.ReleaseResponse, error) {
	if c.Role == access.RoleReviewer {
		return decisionapi.ReleaseResponse{}, decisionapi.NewError(decisionapi.CodeForbidden, "reviewers cannot release leases")
	}
	if err := decisionapi.ValidateID("id", leaseID); err != nil {
		return decisionapi.ReleaseResponse{}, err
	}
	decisionID, mac, ok := strings.Cut(leaseID, ".")
	if !ok || decisionID == "" {
		return decisionapi.ReleaseResponse{}, decisionapi.NewError(decisionapi.CodeNotFound, "no lease %q", leaseID)
	}
	if c.Role == access.RoleAgent && !hmac.Equal([]byte(mac), []byte(e.leaseMAC(decisionID, c.Subject))) {
		return decisionapi.ReleaseResponse{}, decisionapi.NewError(decisionapi.CodeForbidden, "lease %q was not granted to agent %q", leaseID, c.Subject)
	}
	if err := req.Validate(); err != nil {
		return decisionapi.ReleaseResponse{}, err
	}
	cost, hasCost := optionalNanos(req.ActualCostUSD)
	s, err := e.ledger.Release(ctx, ledger.ReleaseRequest{ID: decisionID, ReportedCost: cost, HasReported: hasCost,
		ReportedLimit: e.cfg.Policy().ReportedCostLimit, Time: e.now()})
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return decisionapi.ReleaseResponse{}, decisionapi.NewError(decisionapi.CodeNotFound, "no lease %q", leaseID)
	case err != nil:
		e.warnLedger("release", err)
		return decisionapi.ReleaseResponse{}, e.unavailableError(err)
	case s.AlreadySettled:
		return decisionapi.ReleaseResponse{}, decisionapi.NewError(decisionapi.CodeConflict,
			"lease %q was already settled (%s at %s)", leaseID, s.Reason, s.SettledAt.UTC().Format(time.RFC3339))
	}
	return decisionapi.ReleaseResponse{LeaseID: leaseID, DecisionID: decisionID, Settlement: e.settle(ctx, s)}, nil
}

// ExpireDue settles every reservation whose TTL has passed, like a release without a reported
// cost, and returns how many it settled.
func (e *Engine) ExpireDue(ctx context.Context) (int, error) {
	settled, err := e.ledger.ExpireDue(ctx, e.now())
	for _, s := range settled {
		e.settle(ctx, s)
	}
	return len(settled), err
}

// baselineKey is the per-action baseline's key: agent and action topic.
func baselineKey(agent, action string) string { return agent + "\x00" + action }

// settle judges a settled action: it gives the concurrency slot back, observes the cost against
// the (agent, action) baseline, records an anomaly at 3x or for a clipped reported cost (for
// anomaly_within), notes a token-cap breach, and writes the settlement record when the decision
// wrote one, the release carried an actual_cost_usd, or the action stands out.
func (e *Engine) settle(ctx context.Context, s ledger.Settlement) decisionapi.Settlement {
	md := s.Metadata
	if key, lease := md[metaConcurrencyKey], md[metaConcurrencyLease]; key != "" && lease != "" {
		if err := e.ledger.ReleaseLease(ctx, key, lease); err != nil {
			e.warnLedger("release lease", err)
		}
	}
	out := decisionapi.Settlement{
		ActualCostUSD:    usd(s.Cost),
		EstimatedCostUSD: usd(s.Estimate),
		FreedUSD:         usd(s.Estimate - min(s.MatchedCost, s.Estimate)),
		Source:           s.Source,
		SpansMatched:     s.SpansMatched,
		InputTokens:      s.Tokens.Input,
		OutputTokens:     s.Tokens.Output,
	}
	rec := evidence.Record{
		Kind: evidence.KindSettlement, EvidenceID: md[metaEvidenceID], Time: s.SettledAt,
		RunID: s.RunID, AgentID: s.Agent, Team: s.Team, Action: s.Action, DecisionID: s.ID, TraceID: s.TraceID,
		LeaseID: md[metaLeaseID], ApprovalID: md[metaApprovalID], Reason: string(s.Reason),
		EstimatedCostUSD: evidence.USD(s.Estimate), ActualCostUSD: evidence.USD(s.Cost), SpansMatched: s.SpansMatched,
	}
	if s.Source != decisionapi.SourceNone {
		rec.CostSource = s.Source // a settlement without cost records no source
	}
	if s.SpansMatched > 0 {
		rec.Tokens = &evidence.Tokens{Input: s.Tokens.Input, Output: s.Tokens.Output, CacheRead: s.Tokens.CacheRead,
			CacheWrite: s.Tokens.CacheWrite, Reasoning: s.Tokens.Reasoning}
	}

	if s.HasReported && !s.AlreadySettled {
		claimed := usd(s.ReportedClaimed)
		out.ReportedCostUSD, out.Clipped = &claimed, s.ReportedClipped
		rc := evidence.USD(s.ReportedClaimed)
		rec.ReportedCostUSD, rec.Clipped = &rc, s.ReportedClipped
	}

	// An action that reported nothing and matched nothing has no known cost: it would only drag
	// the baseline down; nor is a clipped report a measured cost. A clipped report is an anomaly
	// of its own.
	anomalous := s.ReportedClipped
	if s.ReportedClipped {
		out.Anomaly = true
		rec.Anomaly = &evidence.Anomaly{Anomalous: true}
		e.rec.ReportedCostClipped(s.Agent)
	}
	if s.Source != decisionapi.SourceNone && !(s.Source == decisionapi.SourceReported && s.ReportedClipped) && s.Agent != "" && s.Action != "" {
		r := e.cfg.Baselines.Observe(baselineKey(s.Agent, s.Action), s.Cost)
		if r.Count > 1 {
			out.BaselineUSD = usd(r.Baseline)
			rec.Anomaly = &evidence.Anomaly{Anomalous: r.Anomalous || anomalous, BaselineUSD: evidence.USD(r.Baseline)}
		}
		if r.Anomalous {
			anomalous = true
			out.Anomaly, out.AnomalyRatio = true, r.Ratio
			rec.Anomaly.Ratio = r.Ratio
		}
	}
	if anomalous && s.Agent != "" {
		// An action flagged mid-flight was counted then: its marker is taken, so count it once.
		if created, err := e.flagOnce(ctx, ledger.LevelAction, s.ID); created || err != nil {
			e.rec.ActionAnomaly(s.Agent)
			e.emit(ctx, anomalyEvent(s.ID, s.Agent, s.Action, s.Cost, "settled cost above the action's baseline", s.SettledAt))
		}
		if err := e.ledger.RecordAnomaly(ctx, s.Agent, ledger.LevelAction, s.SettledAt); err != nil {
			e.warnLedger("record anomaly", err)
		}
	}
	if s.Source != decisionapi.SourceNone {
		e.noteRun(s.RunID, s.Agent, md[metaEvidenceID])
	}
	if capText, ok := md[metaMaxTokens]; ok {
		if limit, err := strconv.ParseInt(capText, 10, 64); err == nil && s.MaxOutputTokens > limit {
			// The ledger keeps the largest output of the matched spans, so this says whether any
			// span breached the cap, not how many.
			out.TokenCapBreaches = 1
			rec.TokenCapBreach = true
			e.rec.TokenCapBreach(s.Agent)
		}
	}
	if rec.EvidenceID != "" && (md[metaEvidence] == "1" || anomalous || rec.TokenCapBreach || rec.ReportedCostUSD != nil) {
		if e.appendEvidence(rec) {
			out.EvidenceID = rec.EvidenceID
		}
	}
	return out
}

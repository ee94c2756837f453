package budgetreceiver

import (
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// budgets returns GET /v1/budgets' scope (fleet, team or agent) with the id.
func (e *env) budget(scope, id string) decisionapi.ScopeBudget {
	e.t.Helper()
	status, body := e.do(http.MethodGet, decisionapi.PathBudgets, reviewerTokenOrNone(e), nil)
	if status != http.StatusOK {
		e.t.Fatalf("budgets: %d %s", status, body)
	}
	var resp decisionapi.BudgetsResponse
	mustUnmarshal(e.t, body, &resp)
	for _, sc := range resp.Scopes {
		if sc.Scope == scope && sc.ID == id {
			return sc
		}
	}
	e.t.Fatalf("budgets has no %s %q: %s", scope, id, body)
	return decisionapi.ScopeBudget{}
}

func reviewerTokenOrNone(e *env) string {
	if e.r.cfg.Access == nil {
		return ""
	}
	return reviewerToken
}

func research(action string, cost float64) decisionapi.DecisionRequest {
	return decisionapi.DecisionRequest{AgentID: "research-agent", Action: action, EstimatedCostUSD: cost}
}

// TestIdempotency: a retried request with the same idempotency_key gets the first answer and
// reserves once, also when the retries race; another body with the key is a conflict.
func TestIdempotency(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	req := research("job.research", 1.25)
	req.IdempotencyKey = "step-1"
	first := e.decide(researchToken, req)
	second := e.decide(researchToken, req)
	if first.Decision != decisionapi.DecisionAllow || second.DecisionID != first.DecisionID || second.LeaseID != first.LeaseID {
		t.Fatalf("first %+v\nsecond %+v: want the same allowed decision", first, second)
	}
	if got := e.budget("agent", "research-agent").ReservedUSD; got != 1.25 {
		t.Errorf("reserved $%v after a retry, want the one estimate $1.25", got)
	}

	changed := req
	changed.EstimatedCostUSD = 2
	status, body := e.do(http.MethodPost, decisionapi.PathDecisions, researchToken, changed)
	if status != http.StatusConflict || !strings.Contains(apiError(t, body).Message, "different request") {
		t.Errorf("same key, other body: %d %s; want 409", status, body)
	}

	// Another agent's key of the same name is its own.
	other := decisionapi.DecisionRequest{AgentID: "drafting-agent", Action: "job.research", EstimatedCostUSD: 0.5, IdempotencyKey: "step-1"}
	if d := e.decide(draftingToken, other); d.DecisionID == first.DecisionID {
		t.Errorf("drafting-agent got research-agent's decision %s", d.DecisionID)
	}

	// Eight racing retries of a new key: one decision, one reservation.
	req.IdempotencyKey = "step-2"
	req.EstimatedCostUSD = 0.75
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() { ids[i] = e.decide(researchToken, req).DecisionID })
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("racing retries got decisions %q", ids)
		}
	}
	if got := e.budget("agent", "research-agent").ReservedUSD; got != 1.25+0.75 {
		t.Errorf("reserved $%v after racing retries, want $2 (1.25 + 0.75 once)", got)
	}
}

// TestApprovalFlow: require_approval creates a pending approval; a reviewer approves it with
// modified constraints and a cost cap; the re-submission is allowed once under them; the records
// share one evidence id.
func TestApprovalFlow(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	req := research("job.batch", 2)
	req.RunID, req.Items = "run-7", 40
	d := e.decide(researchToken, req)
	if d.Decision != decisionapi.DecisionRequireApproval || d.RuleID != "approve-batch" || d.ApprovalID == "" || d.LeaseID != "" {
		t.Fatalf("decision %+v, want require_approval by approve-batch with an approval and no lease", d)
	}
	if time.Until(d.ExpiresAt) < 23*time.Hour {
		t.Errorf("approval expires at %v, want about 24h ahead (approval_ttl)", d.ExpiresAt)
	}
	evID := d.EvidenceID
	e.waitEvidence("require_approval decision", func(r evidence.Record) bool {
		return r.Kind == evidence.KindDecision && r.EvidenceID == evID && r.Decision == "require_approval"
	})

	// The reviewer's queue holds it; the agent polls it.
	status, body := e.do(http.MethodGet, decisionapi.PathApprovals+"?state=pending", reviewerToken, nil)
	var list decisionapi.ApprovalList
	mustUnmarshal(t, body, &list)
	if status != 200 || len(list.Approvals) != 1 || list.Approvals[0].ApprovalID != d.ApprovalID || list.Approvals[0].RunID != "run-7" || list.Approvals[0].Items != 40 {
		t.Fatalf("pending approvals: %d %s", status, body)
	}
	resubmit := req
	resubmit.ApprovalID = d.ApprovalID
	if status, body := e.do(http.MethodPost, decisionapi.PathDecisions, researchToken, resubmit); status != http.StatusConflict {
		t.Errorf("re-submission while pending: %d %s; want 409", status, body)
	}

	// Approve with tighter constraints and a cost cap of $1.50.
	status, body = e.do(http.MethodPost, "/v1/approvals/"+d.ApprovalID+"/approve", reviewerToken, decisionapi.ApproveRequest{
		Constraints: decisionapi.Constraints{MaxRuntimeSec: decisionapi.Limit(30), MaxTokens: decisionapi.Limit(500)},
		CostCapUSD:  ptr(1.5), Comment: "ok, but small",
	})
	var ap decisionapi.Approval
	mustUnmarshal(t, body, &ap)
	if status != 200 || ap.State != decisionapi.ApprovalApproved || ap.Reviewer != "alice@example.com" || ap.EvidenceID != evID ||
		ap.CostCapUSD == nil || *ap.CostCapUSD != 1.5 || ap.Constraints.MaxTokens == nil || *ap.Constraints.MaxTokens != 500 {
		t.Fatalf("approve: %d %s", status, body)
	}
	rec := e.waitEvidence("approval record", func(r evidence.Record) bool { return r.Kind == evidence.KindApproval })
	if rec.EvidenceID != evID || rec.Reviewer != "alice@example.com" || rec.Outcome != "approved" || rec.CostCapUSD.Nanos() != usd(t, "1.5") ||
		rec.ModifiedConstraints == nil || *rec.ModifiedConstraints.MaxRuntimeSec != 30 {
		t.Errorf("approval record %+v", rec)
	}
	if status, _ := e.do(http.MethodPost, "/v1/approvals/"+d.ApprovalID+"/deny", reviewerToken, nil); status != http.StatusConflict {
		t.Errorf("resolving twice: %d, want 409", status)
	}

	// The re-submission above the cap ($2 > $1.50) is denied and does not use the approval up.
	if got := e.decide(researchToken, resubmit); got.Decision != decisionapi.DecisionDeny || got.RuleID != policy.RuleApprovalCap {
		t.Errorf("estimate above the cost cap: %+v, want deny by %s", got, policy.RuleApprovalCap)
	}
	resubmit.EstimatedCostUSD = 1.5
	allowed := e.decide(researchToken, resubmit)
	if allowed.Decision != decisionapi.DecisionAllowWithConstraints || allowed.ApprovalID != d.ApprovalID || allowed.LeaseID == "" ||
		allowed.EvidenceID != evID || *allowed.Constraints.MaxTokens != 500 || *allowed.Constraints.MaxRuntimeSec != 30 {
		t.Fatalf("approved re-submission: %+v", allowed)
	}
	if time.Until(allowed.ExpiresAt) > 31*time.Second {
		t.Errorf("lease expires at %v, want within max_runtime_sec 30", allowed.ExpiresAt)
	}
	status, body = e.do(http.MethodPost, decisionapi.PathDecisions, researchToken, resubmit)
	if status != http.StatusConflict || !strings.Contains(apiError(t, body).Message, "consumed") {
		t.Errorf("second use of the approval: %d %s; want 409", status, body)
	}
	_, body = e.do(http.MethodGet, "/v1/approvals/"+d.ApprovalID, researchToken, nil)
	mustUnmarshal(t, body, &ap)
	if ap.State != decisionapi.ApprovalConsumed {
		t.Errorf("approval state %q after use, want consumed", ap.State)
	}

	// A denial is recorded with the reviewer and the reason; the approval cannot be used.
	d2 := e.decide(researchToken, research("job.batch", 1))
	status, body = e.do(http.MethodPost, "/v1/approvals/"+d2.ApprovalID+"/deny", reviewerToken, decisionapi.DenyRequest{Reason: "not this week"})
	mustUnmarshal(t, body, &ap)
	if status != 200 || ap.State != decisionapi.ApprovalDenied || ap.Comment != "not this week" || ap.Reviewer != "alice@example.com" {
		t.Fatalf("deny: %d %s", status, body)
	}
	again := research("job.batch", 1)
	again.ApprovalID = d2.ApprovalID
	if status, _ := e.do(http.MethodPost, decisionapi.PathDecisions, researchToken, again); status != http.StatusConflict {
		t.Errorf("using a denied approval: %d, want 409", status)
	}
	again.Action = "job.other"
	if status, body := e.do(http.MethodPost, decisionapi.PathDecisions, researchToken, again); status != 400 || apiError(t, body).Field != "approval_id" {
		t.Errorf("approval for another action: %d %s; want 400 naming approval_id", status, body)
	}
}

func ptr[T any](v T) *T { return &v }

// TestConcurrencyLimit: max_concurrent 2 admits two running actions; the third is throttled
// until a lease is released.
func TestConcurrencyLimit(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	var leases []string
	for i := range 2 {
		d := e.decide(researchToken, research("job.concurrent", 0.1))
		if d.Decision != decisionapi.DecisionAllowWithConstraints || *d.Constraints.MaxConcurrent != 2 {
			t.Fatalf("action %d: %+v", i, d)
		}
		leases = append(leases, d.LeaseID)
	}
	d := e.decide(researchToken, research("job.concurrent", 0.1))
	// Both leases live max_runtime_sec (60s): the retry hint is their remaining life.
	if d.Decision != decisionapi.DecisionThrottle || d.RuleID != "limit-concurrency" || d.RetryAfterSec < 1 || d.RetryAfterSec > 60 || d.LeaseID != "" {
		t.Fatalf("third concurrent action: %+v, want throttle by limit-concurrency with retry_after_sec in [1, 60]", d)
	}
	if got := e.budget("agent", "research-agent").ReservedUSD; math.Abs(got-0.2) > 1e-9 {
		t.Errorf("reserved $%v, want $0.20: the throttled action reserves nothing", got)
	}
	// Another agent counts on its own (per: agent).
	if d := e.decide(draftingToken, decisionapi.DecisionRequest{AgentID: "drafting-agent", Action: "job.concurrent"}); !d.Decision.Allowed() {
		t.Errorf("drafting-agent: %+v", d)
	}
	e.release(researchToken, leases[0], decisionapi.ReleaseRequest{})
	if d := e.decide(researchToken, research("job.concurrent", 0.1)); !d.Decision.Allowed() {
		t.Errorf("after a release: %+v, want allowed", d)
	}
}

// TestRateLimit: rate_limit 2/hour admits a burst of two, then throttles with the time until the
// next one is admitted (half an hour: one every 3600s / 2).
func TestRateLimit(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	for i := range 2 {
		if d := e.decide(researchToken, research("job.rated", 0)); !d.Decision.Allowed() {
			t.Fatalf("action %d: %+v", i, d)
		}
	}
	d := e.decide(researchToken, research("job.rated", 0))
	if d.Decision != decisionapi.DecisionThrottle || d.RuleID != "limit-rate" || d.RetryAfterSec < 1799 || d.RetryAfterSec > 1800 {
		t.Fatalf("third action within the hour: %+v, want throttle by limit-rate with retry_after_sec 1800", d)
	}
	if !strings.Contains(d.Reason, "2/hour") {
		t.Errorf("reason %q does not name the limit", d.Reason)
	}
}

// TestBudgetExhausted: a budget that the estimate does not fit denies, naming the scope, until
// the window resets; concurrent callers never overrun a limit.
func TestBudgetExhausted(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	e.book(ledger.Spend{Agent: "research-agent", Cost: usd(t, "9.5")})
	d := e.decide(researchToken, research("job.research", 1))
	_, monthEnd := ledger.WindowBounds(ledger.Month, time.Now(), time.UTC)
	wantRetry := int64(math.Ceil(time.Until(monthEnd).Seconds()))
	if d.Decision != decisionapi.DecisionDeny || d.RuleID != policy.RuleAgentBudget || !strings.Contains(d.Reason, "agent budget") ||
		d.RetryAfterSec < wantRetry-5 || d.RetryAfterSec > wantRetry {
		t.Fatalf("decision %+v, want deny by %s until the month ends (%ds)", d, policy.RuleAgentBudget, wantRetry)
	}
	if b := d.Budget["agent"]; b.SpentUSD != 9.5 || b.LimitUSD != 10 || b.Level != decisionapi.LevelNormal {
		t.Errorf("agent budget in the answer: %+v", b)
	}
	if d := e.decide(researchToken, research("job.research", 0.5)); !d.Decision.Allowed() {
		t.Errorf("$0.50 fits the $0.50 left: %+v", d)
	}
	if sc := e.budget("agent", "research-agent"); sc.Level != decisionapi.LevelExhausted || sc.Utilization != 1 {
		t.Errorf("full budget: %+v, want exhausted at utilization 1", sc)
	}

	// The run budget ($3, lifetime): no reset, so no retry hint.
	run := decisionapi.DecisionRequest{AgentID: "drafting-agent", Action: "job.research", EstimatedCostUSD: 2, RunID: "run-1"}
	if d := e.decide(draftingToken, run); !d.Decision.Allowed() {
		t.Fatalf("first $2 of the run: %+v", d)
	}
	if d := e.decide(draftingToken, run); d.Decision != decisionapi.DecisionDeny || d.RuleID != policy.RuleRunBudget || d.RetryAfterSec != 0 {
		t.Errorf("second $2 of a $3 run: %+v, want deny by %s without retry", d, policy.RuleRunBudget)
	}
	// per_action_max_usd $8.
	if d := e.decide(draftingToken, decisionapi.DecisionRequest{AgentID: "drafting-agent", Action: "job.x", EstimatedCostUSD: 8.01}); d.RuleID != policy.RulePerActionCap {
		t.Errorf("above the per-action cap: %+v", d)
	}

	// 20 concurrent $1 actions of an agent with the $5 default budget: exactly five fit.
	open := startEnv(t, testPolicy)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
		rules   = map[string]int{}
	)
	for range 20 {
		wg.Go(func() {
			d := open.decide("", decisionapi.DecisionRequest{AgentID: "racer", Action: "job.race", EstimatedCostUSD: 1})
			mu.Lock()
			defer mu.Unlock()
			if d.Decision.Allowed() {
				allowed++
			} else {
				rules[d.RuleID]++
			}
		})
	}
	wg.Wait()
	if allowed != 5 || rules[policy.RuleAgentBudget] != 15 {
		t.Errorf("%d of 20 allowed (denials %v); want 5 allowed and 15 denied by %s", allowed, rules, policy.RuleAgentBudget)
	}
	if sc := open.budget("agent", "racer"); sc.ReservedUSD != 5 {
		t.Errorf("racer reserved $%v, want exactly the $5 limit", sc.ReservedUSD)
	}
}

// TestFleetLevels: at throttle_at (80%) non-critical agents are throttled, at pause_at (95%)
// they are denied; a critical agent passes both. With throttle_rate set, the throttle level
// admits that many per agent.
func TestFleetLevels(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	e.book(ledger.Spend{Agent: "other-agent", Cost: usd(t, "79.99")})
	if d := e.decide(researchToken, research("job.research", 0)); !d.Decision.Allowed() || d.Budget["fleet"].Level != decisionapi.LevelNormal {
		t.Fatalf("fleet at 79.99%%: %+v", d)
	}
	e.book(ledger.Spend{Agent: "other-agent", Cost: usd(t, "0.01")})
	d := e.decide(researchToken, research("job.research", 0))
	if d.Decision != decisionapi.DecisionThrottle || d.RuleID != policy.RuleFleet || d.Budget["fleet"].Level != decisionapi.LevelThrottle || d.RetryAfterSec < 1 {
		t.Fatalf("fleet at 80%%: %+v, want throttle by %s", d, policy.RuleFleet)
	}
	open := decisionapi.DecisionRequest{AgentID: "billing-agent", Action: "job.invoice", EstimatedCostUSD: 1}
	if d := e.decideOpen(open); !d.Decision.Allowed() {
		t.Errorf("critical agent at 80%%: %+v", d)
	}
	e.waitMetric("agentcost_fleet_level", func(v float64) bool { return v == 1 })
	if sc := e.budget("fleet", ""); sc.Level != decisionapi.LevelThrottle {
		t.Errorf("fleet budget %+v, want level throttle", sc)
	}

	e.book(ledger.Spend{Agent: "other-agent", Cost: usd(t, "14")}) // 95.00 spent + 1 reserved by billing-agent
	d = e.decide(researchToken, research("job.research", 0))
	if d.Decision != decisionapi.DecisionDeny || d.RuleID != policy.RuleFleet || d.Budget["fleet"].Level != decisionapi.LevelPause {
		t.Fatalf("fleet at 95%%: %+v, want deny by %s", d, policy.RuleFleet)
	}
	if d := e.decideOpen(open); !d.Decision.Allowed() {
		t.Errorf("critical agent at 95%%: %+v", d)
	}
	e.waitMetric("agentcost_fleet_level", func(v float64) bool { return v == 2 })

	// throttle_rate: one per minute per agent at the throttle level.
	rated := startEnv(t, strings.Replace(testPolicy, "pause_at: 0.95}", `pause_at: 0.95, throttle_rate: "1/minute"}`, 1))
	rated.book(ledger.Spend{Agent: "other-agent", Cost: usd(t, "85")})
	if d := rated.decideOpen(research("job.research", 0)); !d.Decision.Allowed() {
		t.Fatalf("first action at the throttle level: %+v", d)
	}
	d = rated.decideOpen(research("job.research", 0))
	if d.Decision != decisionapi.DecisionThrottle || d.RuleID != policy.RuleFleet || d.RetryAfterSec < 59 || d.RetryAfterSec > 60 {
		t.Errorf("second action within the minute: %+v, want throttle by %s, retry in 60s", d, policy.RuleFleet)
	}
}

// decideOpen decides with the agent's own token when access is configured, without one otherwise.
func (e *env) decideOpen(req decisionapi.DecisionRequest) decisionapi.DecisionResponse {
	e.t.Helper()
	if e.r.cfg.Access != nil {
		switch req.AgentID {
		case "research-agent":
			return e.decide(researchToken, req)
		case "drafting-agent":
			return e.decide(draftingToken, req)
		case "billing-agent":
			return e.decide(billingToken, req)
		}
		e.t.Fatalf("no token for %s", req.AgentID)
	}
	return e.decide("", req)
}

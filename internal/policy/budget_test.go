package policy

import (
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/money"
)

// The design policy's budgets (testdata/design.yaml, DESIGN.md's example):
// fleet $2000/day, throttle_at 0.80 ($1600), pause_at 0.95 ($1900), throttle_rate 6/minute;
// research-agent $50/hour, drafting-agent $20/hour, default_agent $10/hour;
// team growth $500/day; runs $25 lifetime; per_action_max_usd $100; billing-agent critical.

func fleetUsage(t testing.TB, spent, reserved string) State {
	var st State
	st.Usage[ScopeFleet] = Usage{Spent: usdOf(t, spent), Reserved: usdOf(t, reserved)}
	return st
}

func TestBudgetLayers(t *testing.T) {
	p := mustLoad(t, designPolicy)
	now := time.Date(2026, time.March, 11, 10, 40, 0, 0, time.UTC)
	nextHour := time.Date(2026, time.March, 11, 11, 0, 0, 0, time.UTC).Sub(now)
	midnight := time.Date(2026, time.March, 12, 0, 0, 0, 0, time.UTC).Sub(now)
	approved := &ApprovedApproval{ID: "ap-1"}

	with := func(s Scope, spent, reserved string, st State) State {
		st.Usage[s] = Usage{Spent: usdOf(t, spent), Reserved: usdOf(t, reserved)}
		return st
	}
	cases := []struct {
		name   string
		req    Request
		state  State
		want   Decision
		rule   string
		retry  time.Duration
		level  FleetLevel
		rated  bool // a fleet throttle_rate check is returned
		usedAp bool
	}{
		{name: "per-action cap exactly", req: Request{AgentID: "research-agent", EstimatedCost: usdOf(t, "100")},
			want: Deny, rule: RuleAgentBudget, retry: 0}, // $100 fits the cap but can never fit the $50 agent budget
		{name: "per-action cap exceeded by a nano-dollar", req: Request{AgentID: "billing-agent", EstimatedCost: usdOf(t, "100.000000001")},
			want: Deny, rule: RulePerActionCap},
		{name: "approval never passes the per-action cap", req: Request{AgentID: "a", EstimatedCost: usdOf(t, "101"), Approval: approved},
			want: Deny, rule: RulePerActionCap},

		{name: "run budget fills exactly", req: Request{AgentID: "research-agent", RunID: "r", EstimatedCost: usdOf(t, "1")},
			state: with(ScopeRun, "20", "4", State{}), want: Allow},
		{name: "run budget exhausted: no reset", req: Request{AgentID: "research-agent", RunID: "r", EstimatedCost: usdOf(t, "1.000000001")},
			state: with(ScopeRun, "20", "4", State{}), want: Deny, rule: RuleRunBudget, retry: 0},
		{name: "no run id, no run budget", req: Request{AgentID: "research-agent", EstimatedCost: usdOf(t, "30")},
			state: with(ScopeRun, "25", "0", State{}), want: Allow},

		{name: "agent's own budget fits", req: Request{AgentID: "research-agent", EstimatedCost: usdOf(t, "5")},
			state: with(ScopeAgent, "40", "5", State{}), want: Allow},
		{name: "agent's own budget exhausted until the hour", req: Request{AgentID: "research-agent", EstimatedCost: usdOf(t, "5.01")},
			state: with(ScopeAgent, "40", "5", State{}), want: Deny, rule: RuleAgentBudget, retry: nextHour},
		{name: "default_agent applies to unknown agents", req: Request{AgentID: "new-agent", EstimatedCost: usdOf(t, "2")},
			state: with(ScopeAgent, "9", "0", State{}), want: Deny, rule: RuleAgentBudget, retry: nextHour},
		{name: "approval never passes an agent budget", req: Request{AgentID: "research-agent", EstimatedCost: usdOf(t, "11"), Approval: approved},
			state: with(ScopeAgent, "40", "0", State{}), want: Deny, rule: RuleAgentBudget, retry: nextHour},

		{name: "team budget exhausted until midnight", req: Request{AgentID: "billing-agent", Team: "growth", EstimatedCost: usdOf(t, "2")},
			state: with(ScopeTeam, "499", "0", State{}), want: Deny, rule: RuleTeamBudget, retry: midnight},
		{name: "unknown team has no budget", req: Request{AgentID: "billing-agent", Team: "ops", EstimatedCost: usdOf(t, "2")},
			state: with(ScopeTeam, "100000", "0", State{}), want: Allow},
		{name: "agent and team exhausted: the later reset", req: Request{AgentID: "research-agent", Team: "growth", EstimatedCost: usdOf(t, "10")},
			state: with(ScopeTeam, "495", "0", with(ScopeAgent, "45", "0", State{})), want: Deny, rule: RuleAgentBudget, retry: midnight},

		{name: "fleet just below throttle_at", req: Request{AgentID: "a"}, state: fleetUsage(t, "1599", "0.999999999"), want: Allow},
		{name: "fleet at throttle_at: rate limited", req: Request{AgentID: "a"}, state: fleetUsage(t, "1500", "100"),
			want: Allow, level: FleetThrottled, rated: true},
		{name: "critical agent not throttled", req: Request{AgentID: "billing-agent"}, state: fleetUsage(t, "1700", "0"),
			want: Allow, level: FleetThrottled},
		{name: "approved action not throttled", req: Request{AgentID: "a", Approval: approved}, state: fleetUsage(t, "1700", "0"),
			want: Allow, level: FleetThrottled},
		{name: "fleet at pause_at denies", req: Request{AgentID: "a"}, state: fleetUsage(t, "1899", "1"),
			want: Deny, rule: RuleFleet, retry: midnight, level: FleetPaused},
		{name: "critical agent passes pause", req: Request{AgentID: "billing-agent"}, state: fleetUsage(t, "1950", "0"),
			want: Allow, level: FleetPaused},
		{name: "approval passes pause", req: Request{AgentID: "a", Approval: approved}, state: fleetUsage(t, "1950", "0"),
			want: Allow, level: FleetPaused, usedAp: true},
		{name: "approval passes pause but not the agent budget", req: Request{AgentID: "drafting-agent", EstimatedCost: usdOf(t, "3"), Approval: approved},
			state: with(ScopeAgent, "18", "0", fleetUsage(t, "1950", "0")), want: Deny, rule: RuleAgentBudget, retry: nextHour, level: FleetPaused, usedAp: true},
		{name: "fleet over its limit is a level, not a budget deny, for critical agents",
			req: Request{AgentID: "billing-agent", EstimatedCost: usdOf(t, "5")}, state: fleetUsage(t, "2100", "0"), want: Allow, level: FleetPaused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := Evaluate(p, tc.req, tc.state, now)
			if o.Decision != tc.want || o.RuleID != tc.rule {
				t.Fatalf("got %v %q (%s), want %v %q", o.Decision, o.RuleID, o.Reason, tc.want, tc.rule)
			}
			if o.RetryAfter != tc.retry {
				t.Errorf("retry after %v, want %v", o.RetryAfter, tc.retry)
			}
			if o.FleetLevel != tc.level {
				t.Errorf("fleet level %v, want %v", o.FleetLevel, tc.level)
			}
			wantRate := RateCheck{}
			if tc.rated {
				wantRate = RateCheck{Key: LimitKey{Fleet: true, AgentID: tc.req.AgentID}, Limit: RateLimit{6, time.Minute}, Reason: reasonFleetRate}
			}
			if o.FleetRate != wantRate {
				t.Errorf("fleet rate %+v, want %+v", o.FleetRate, wantRate)
			}
			if o.ApprovalUsed != tc.usedAp {
				t.Errorf("approval used %v, want %v", o.ApprovalUsed, tc.usedAp)
			}
			if o.Evidence != (o.Decision != Allow) {
				t.Errorf("evidence %v for %v (no evidence threshold set)", o.Evidence, o.Decision)
			}
		})
	}
}

// TestEstimateAboveWholeLimit: an estimate larger than a scope's whole limit can never fit, so the
// deny says so and gives no retry hint (issue 13: "retry after 614s" with nothing spent), while an
// estimate that fits the limit but not what is left keeps the window end as its hint.
func TestEstimateAboveWholeLimit(t *testing.T) {
	p := mustLoad(t, designPolicy)
	now := time.Date(2026, time.March, 11, 10, 49, 46, 0, time.UTC)
	cases := []struct {
		name   string
		req    Request
		state  State
		rule   string
		reason string
		retry  time.Duration
	}{
		{name: "agent: $60 against $20 with nothing spent", req: Request{AgentID: "drafting-agent", EstimatedCost: usdOf(t, "60")},
			rule: RuleAgentBudget, reason: reasonAgentOverLimit},
		{name: "agent: a nano-dollar over the whole limit", req: Request{AgentID: "drafting-agent", EstimatedCost: usdOf(t, "20.000000001")},
			rule: RuleAgentBudget, reason: reasonAgentOverLimit},
		{name: "agent: exactly the limit with some spent waits for the window", req: Request{AgentID: "drafting-agent", EstimatedCost: usdOf(t, "20")},
			state: func() State { var st State; st.Usage[ScopeAgent] = Usage{Spent: usdOf(t, "0.01")}; return st }(),
			rule:  RuleAgentBudget, reason: reasonAgentBudget, retry: 10*time.Minute + 14*time.Second},
		{name: "run over its lifetime limit", req: Request{AgentID: "billing-agent", RunID: "r", EstimatedCost: usdOf(t, "26")},
			rule: RuleRunBudget, reason: reasonRunOverLimit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := Evaluate(p, tc.req, tc.state, now)
			if o.Decision != Deny || o.RuleID != tc.rule || o.Reason != tc.reason {
				t.Fatalf("got %v %q %q, want deny %q %q", o.Decision, o.RuleID, o.Reason, tc.rule, tc.reason)
			}
			if o.RetryAfter != tc.retry {
				t.Errorf("retry after %v, want %v", o.RetryAfter, tc.retry)
			}
		})
	}
}

func TestBudgetChecksForTheReceiver(t *testing.T) {
	p := mustLoad(t, designPolicy)
	now := time.Date(2026, time.March, 11, 10, 40, 0, 0, time.UTC)
	var st State
	st.Usage[ScopeFleet] = Usage{Spent: usdOf(t, "500"), Reserved: usdOf(t, "300")}
	st.Usage[ScopeAgent] = Usage{Spent: usdOf(t, "10"), Reserved: usdOf(t, "2.5")}
	st.Usage[ScopeRun] = Usage{Spent: usdOf(t, "1")}
	o := Evaluate(p, Request{AgentID: "research-agent", RunID: "run-7", EstimatedCost: usdOf(t, "1")}, st, now)

	want := [NumScopes]BudgetCheck{
		ScopeFleet: {Configured: true, Scope: ScopeFleet, Window: Day, Limit: usdOf(t, "2000"), Spent: usdOf(t, "500"), Reserved: usdOf(t, "300"),
			Utilization: 800.0 / 2000, ResetsAt: time.Date(2026, time.March, 12, 0, 0, 0, 0, time.UTC)},
		ScopeTeam: {Scope: ScopeTeam},
		ScopeAgent: {Configured: true, Scope: ScopeAgent, ID: "research-agent", Window: Hour, Limit: usdOf(t, "50"), Spent: usdOf(t, "10"),
			Reserved: usdOf(t, "2.5"), Enforce: true, Utilization: 12.5 / 50, ResetsAt: time.Date(2026, time.March, 11, 11, 0, 0, 0, time.UTC)},
		ScopeRun: {Configured: true, Scope: ScopeRun, ID: "run-7", Window: Lifetime, Limit: usdOf(t, "25"), Spent: usdOf(t, "1"), Enforce: true, Utilization: 1.0 / 25},
	}
	for s := range Scope(NumScopes) {
		if o.Budgets[s] != want[s] {
			t.Errorf("%v: %+v\nwant %+v", s, o.Budgets[s], want[s])
		}
		if b, ok := p.Budget(s, want[s].ID); ok != want[s].Configured || b.Limit != want[s].Limit || b.Window != want[s].Window {
			t.Errorf("Policy.Budget(%v) = %+v %v", s, b, ok)
		}
	}
}

func TestFleetWithoutThrottleRate(t *testing.T) {
	p := mustParse(t, `
version: v1
budgets:
  fleet: {limit_usd: 100, window: week, throttle_at: 0.5, pause_at: 0.9}
`)
	now := time.Date(2026, time.March, 11, 12, 0, 0, 0, time.UTC) // Wednesday; the week resets Monday 16th
	o := Evaluate(p, Request{AgentID: "a"}, fleetUsage(t, "50", "0"), now)
	wantRetry := time.Date(2026, time.March, 16, 0, 0, 0, 0, time.UTC).Sub(now)
	if o.Decision != Throttle || o.RuleID != RuleFleet || o.RetryAfter != wantRetry {
		t.Fatalf("got %v %q retry %v; want throttle %q %v", o.Decision, o.RuleID, o.RetryAfter, RuleFleet, wantRetry)
	}
	if o := Evaluate(p, Request{AgentID: "a"}, fleetUsage(t, "49.999999999", "0"), now); o.Decision != Allow {
		t.Fatalf("below throttle_at: %v", o.Decision)
	}
}

// TestFleetThresholdsExact checks the thresholds are exact in nano-dollars, not float ratios.
func TestFleetThresholdsExact(t *testing.T) {
	p := mustParse(t, `
version: v1
budgets:
  fleet: {limit_usd: 0.000000003, window: day, throttle_at: 0.5, pause_at: 0.7}
`)
	// ceil(3 × 0.5) = 2 nano-dollars throttles; ceil(3 × 0.7) = 3 pauses.
	for _, tc := range []struct {
		used money.Nanos
		want FleetLevel
	}{{1, FleetNormal}, {2, FleetThrottled}, {3, FleetPaused}} {
		var st State
		st.Usage[ScopeFleet].Spent = tc.used
		if o := Evaluate(p, Request{AgentID: "a"}, st, noon); o.FleetLevel != tc.want {
			t.Errorf("used %d: level %v, want %v", tc.used, o.FleetLevel, tc.want)
		}
	}
}

func TestApprovals(t *testing.T) {
	batch := Request{AgentID: "research-agent", Action: "job.leads.batch-generate"}
	p := mustParse(t, `
version: v1
budgets: {per_action_max_usd: 100}
rules:
  - id: approve-expensive-batch
    match: {topics: ["job.*.batch-generate"], min_estimated_cost_usd: 50}
    decision: require_approval
    constraints: {max_concurrent: 3, max_runtime_sec: 600, rate_limit: "10/hour"}
`)
	cases := []struct {
		name     string
		approval *ApprovedApproval
		est      string
		want     Decision
		rule     string
		cons     Constraints
	}{
		{"no approval", nil, "60", RequireApproval, "approve-expensive-batch",
			Constraints{MaxConcurrent: LimitOf(3), MaxRuntimeSec: LimitOf(600), RateLimit: RateLimit{10, time.Hour}}},
		{"approved: allowed with the rule's constraints", &ApprovedApproval{ID: "ap"}, "60", AllowWithConstraints, "approve-expensive-batch",
			Constraints{MaxConcurrent: LimitOf(3), MaxRuntimeSec: LimitOf(600), RateLimit: RateLimit{10, time.Hour}}},
		{"approved with tighter constraints merged", &ApprovedApproval{ID: "ap", Constraints: Constraints{
			MaxConcurrent: LimitOf(1), MaxRuntimeSec: LimitOf(900), RateLimit: RateLimit{1, time.Minute}, MaxTokens: LimitOf(2000)}},
			"60", AllowWithConstraints, "approve-expensive-batch",
			// 1/minute is 60/hour, looser than 10/hour; 900 s is looser than 600 s.
			Constraints{MaxConcurrent: LimitOf(1), MaxRuntimeSec: LimitOf(600), RateLimit: RateLimit{10, time.Hour}, MaxTokens: LimitOf(2000)}},
		{"cost cap holds", &ApprovedApproval{ID: "ap", CostCap: usdOf(t, "60")}, "60", AllowWithConstraints, "approve-expensive-batch",
			Constraints{MaxConcurrent: LimitOf(3), MaxRuntimeSec: LimitOf(600), RateLimit: RateLimit{10, time.Hour}}},
		{"estimate above the cost cap", &ApprovedApproval{ID: "ap", CostCap: usdOf(t, "60")}, "60.000000001", Deny, RuleApprovalCap, Constraints{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := batch
			req.EstimatedCost = usdOf(t, tc.est)
			req.Approval = tc.approval
			o := Evaluate(p, req, State{}, noon)
			if o.Decision != tc.want || o.RuleID != tc.rule {
				t.Fatalf("got %v %q (%s), want %v %q", o.Decision, o.RuleID, o.Reason, tc.want, tc.rule)
			}
			if o.Constraints != tc.cons {
				t.Errorf("constraints %+v\nwant %+v", o.Constraints, tc.cons)
			}
			if o.Decision.Allowed() {
				if o.Reason != reasonApproved || !o.ApprovalUsed {
					t.Errorf("reason %q, approval used %v", o.Reason, o.ApprovalUsed)
				}
				mc, _ := tc.cons.MaxConcurrent.Value()
				if o.Concurrency.Max != mc || o.RuleRate.Limit != tc.cons.RateLimit {
					t.Errorf("enforcement %+v %+v does not follow the merged constraints", o.Concurrency, o.RuleRate)
				}
			}
		})
	}
	// An approval does not soften a deny rule.
	p = mustParse(t, "version: v1\nrules: [{id: no, match: {topics: [\"x.**\"]}, decision: deny}]\n")
	if o := Evaluate(p, Request{Action: "x.y", Approval: &ApprovedApproval{ID: "ap"}}, State{}, noon); o.Decision != Deny {
		t.Errorf("approval lifted a deny rule: %v", o.Decision)
	}
}

func TestEvidenceThreshold(t *testing.T) {
	p := mustParse(t, "version: v1\nevidence: {min_estimated_cost_usd: 10}\n")
	if p.EvidenceThreshold() != usdOf(t, "10") {
		t.Fatalf("threshold %v", p.EvidenceThreshold())
	}
	for _, tc := range []struct {
		est  string
		want bool
	}{{"9.999999999", false}, {"10", true}, {"11", true}} {
		o := Evaluate(p, Request{AgentID: "a", EstimatedCost: usdOf(t, tc.est)}, State{}, noon)
		if o.Decision != Allow || o.Evidence != tc.want {
			t.Errorf("estimate %s: %v evidence %v, want allow %v", tc.est, o.Decision, o.Evidence, tc.want)
		}
	}
}

func TestNilPolicyDenies(t *testing.T) {
	o := Evaluate(nil, Request{AgentID: "a"}, State{}, noon)
	if o.Decision != Deny || !o.Evidence {
		t.Fatalf("nil policy: %+v", o)
	}
}

// Package decisionapi holds the wire types of agentcost's decision API, the JSON-over-HTTP API the
// budget receiver serves and agents call before each action: decisions, lease releases, budgets,
// approvals and explanations. It also validates requests and decodes bounded, strict JSON bodies,
// so the server and its clients share one definition of what is valid.
//
// Amounts of money cross the wire as JSON numbers in dollars (display precision); inside agentcost
// the server converts them once, after validation, to exact nano-dollars.
package decisionapi

import (
	"encoding/json"
	"time"
)

// The API's paths, in net/http ServeMux pattern form ({id} is a path parameter).
const (
	PathDecisions    = "/v1/decisions"
	PathLeaseRelease = "/v1/leases/{id}/release"
	PathBudgets      = "/v1/budgets"
	PathApprovals    = "/v1/approvals"
	PathApproval     = "/v1/approvals/{id}"
	PathApprove      = "/v1/approvals/{id}/approve"
	PathDeny         = "/v1/approvals/{id}/deny"
	PathExplain      = "/v1/explain"
)

// Decision is the answer to a decision request.
type Decision string

// The five decisions, from the most permissive to the strictest.
const (
	// DecisionAllow lets the action run.
	DecisionAllow Decision = "allow"
	// DecisionAllowWithConstraints lets the action run under the returned constraints.
	DecisionAllowWithConstraints Decision = "allow_with_constraints"
	// DecisionThrottle asks the agent to ask again after retry_after_sec.
	DecisionThrottle Decision = "throttle"
	// DecisionRequireApproval parks the action until a reviewer approves approval_id.
	DecisionRequireApproval Decision = "require_approval"
	// DecisionDeny refuses the action.
	DecisionDeny Decision = "deny"
)

// Decisions returns every decision, from the most permissive to the strictest.
func Decisions() []Decision {
	return []Decision{DecisionAllow, DecisionAllowWithConstraints, DecisionThrottle, DecisionRequireApproval, DecisionDeny}
}

// Valid reports whether d is one of the five decisions.
func (d Decision) Valid() bool {
	switch d {
	case DecisionAllow, DecisionAllowWithConstraints, DecisionThrottle, DecisionRequireApproval, DecisionDeny:
		return true
	}
	return false
}

// Allowed reports whether the action may run now (allow or allow_with_constraints).
func (d Decision) Allowed() bool { return d == DecisionAllow || d == DecisionAllowWithConstraints }

// DecisionRequest is the body of POST /v1/decisions and POST /v1/explain: an agent asks whether it
// may run an action. The W3C traceparent header of the request ties the decision to the action's
// trace.
type DecisionRequest struct {
	// RunID is the run the action belongs to; empty skips the run budget.
	RunID string `json:"run_id,omitempty"`
	// AgentID is the canonical agent key, the same key the processor attributes spans to.
	AgentID string `json:"agent_id"`
	// Action is the action topic, e.g. "job.research.company".
	Action string `json:"action"`
	// RiskTags are the risk tags the agent declares; the policy derives more server-side.
	RiskTags []string `json:"risk_tags,omitempty"`
	// EstimatedCostUSD is the agent's estimate of the action's cost in dollars; it is reserved
	// against the budgets when the action is allowed.
	EstimatedCostUSD float64 `json:"estimated_cost_usd"`
	// Items is the number of items a batch action processes.
	Items int64 `json:"items,omitempty"`
	// Team is the agent's team; empty skips the team budget. When the agent's token lists teams,
	// Team must be one of them (else 403), and empty means the first.
	Team string `json:"team,omitempty"`
	// ApprovalID names an approval a reviewer granted for this action.
	ApprovalID string `json:"approval_id,omitempty"`
	// IdempotencyKey makes a retried request return the first request's decision instead of
	// reserving twice.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Model is the model the action intends to call, as the price table names it (e.g.
	// "gpt-4o"). With it, a policy's `degrade:` entries may answer a tight budget with
	// allow_with_constraints and a cheaper constraints.model instead of a refusal; without it,
	// degrade does not apply.
	Model string `json:"model,omitempty"`
	// Metadata is free-form context recorded with the decision's evidence.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// DecisionResponse is the answer to POST /v1/decisions.
type DecisionResponse struct {
	// Decision is the answer.
	Decision Decision `json:"decision"`
	// DecisionID identifies the decision; spans carrying it as agentcost.decision_id settle its
	// reservation.
	DecisionID string `json:"decision_id"`
	// RuleID is the rule or budget layer (budget.*) that gave the answer; empty when the policy's
	// default_decision applied.
	RuleID string `json:"rule_id,omitempty"`
	// Reason explains the decision to a human.
	Reason string `json:"reason,omitempty"`
	// PolicyVersion is the version of the policy that decided.
	PolicyVersion string `json:"policy_version"`
	// PolicySHA256 is the hex SHA-256 of the policy content (file and overlays) that decided; it
	// changes with any content change even when policy_version does not. The budget receiver
	// always sets it.
	PolicySHA256 string `json:"policy_sha256,omitempty"`
	// Constraints are the limits an allowed action runs under.
	Constraints Constraints `json:"constraints,omitzero"`
	// RetryAfterSec is when asking again can succeed (throttle, and deny of an exhausted
	// windowed budget); 0 with deny means waiting does not help.
	RetryAfterSec int64 `json:"retry_after_sec,omitempty"`
	// LeaseID is the lease of an allowed action, to release once it finished.
	LeaseID string `json:"lease_id,omitempty"`
	// ApprovalID is the approval to wait for (require_approval), or the approval consumed by
	// this allowed action.
	ApprovalID string `json:"approval_id,omitempty"`
	// Budget is the state of each configured budget scope (fleet, team, agent, run) the
	// decision saw.
	Budget map[string]BudgetStatus `json:"budget,omitempty"`
	// EvidenceID links the action's cost-evidence records.
	EvidenceID string `json:"evidence_id,omitempty"`
	// ExpiresAt is when the lease of an allowed action expires and its reservation is freed,
	// or when a pending approval expires.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Constraints are the limits an allowed action runs under. A nil field imposes nothing; a set
// field may be 0 (max_retries: 0 forbids retries). It is the one wire form of constraints: the
// decision API's bodies, the evidence records and the policy test cases (YAML) all use it.
type Constraints struct {
	// MaxRuntimeSec is the action's deadline in seconds.
	MaxRuntimeSec *int64 `json:"max_runtime_sec,omitempty" yaml:"max_runtime_sec,omitempty"`
	// MaxRetries is the number of retries the action may make.
	MaxRetries *int64 `json:"max_retries,omitempty" yaml:"max_retries,omitempty"`
	// MaxConcurrent is the number of such actions that may run at once.
	MaxConcurrent *int64 `json:"max_concurrent,omitempty" yaml:"max_concurrent,omitempty"`
	// RateLimit is the number of such actions per period, "N/second|minute|hour|day".
	RateLimit string `json:"rate_limit,omitempty" yaml:"rate_limit,omitempty"`
	// MaxTokens is the output tokens per LLM call: what the agent passes as the model API's
	// max_tokens.
	MaxTokens *int64 `json:"max_tokens,omitempty" yaml:"max_tokens,omitempty"`
	// MaxToolCalls is the tool calls per run.
	MaxToolCalls *int64 `json:"max_tool_calls,omitempty" yaml:"max_tool_calls,omitempty"`
	// MaxDepth is the agent recursion depth per run.
	MaxDepth *int64 `json:"max_depth,omitempty" yaml:"max_depth,omitempty"`
	// Model is the cheaper model the agent must call instead of the request's model: set when a
	// policy `degrade:` entry swapped it, and the reserved estimate is re-priced for it. Only
	// decisions set it; an approval's constraints cannot.
	Model string `json:"model,omitempty" yaml:"model,omitempty"`
}

// RetryAfterSec rounds a retry hint up to whole seconds, as retry_after_sec carries it; 0 for none.
func RetryAfterSec(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// Limit returns a pointer to n, for filling Constraints.
func Limit(n int64) *int64 { return &n }

// IsZero reports whether no constraint is set.
func (c Constraints) IsZero() bool {
	return c.MaxRuntimeSec == nil && c.MaxRetries == nil && c.MaxConcurrent == nil && c.RateLimit == "" &&
		c.MaxTokens == nil && c.MaxToolCalls == nil && c.MaxDepth == nil && c.Model == ""
}

// MaxRuntime returns max_runtime_sec as a duration, and whether it is set.
func (c Constraints) MaxRuntime() (time.Duration, bool) {
	if c.MaxRuntimeSec == nil {
		return 0, false
	}
	return time.Duration(*c.MaxRuntimeSec) * time.Second, true
}

// BudgetLevel is where a budget scope stands.
type BudgetLevel string

// The budget levels. The fleet is normal, throttle or pause (its throttle_at and pause_at); the
// other scopes are normal or exhausted. Any scope below those is warn from its warn_at, which
// changes no decision.
const (
	LevelNormal    BudgetLevel = "normal"
	LevelWarn      BudgetLevel = "warn"
	LevelThrottle  BudgetLevel = "throttle"
	LevelPause     BudgetLevel = "pause"
	LevelExhausted BudgetLevel = "exhausted"
)

// BudgetLevels returns every budget level.
func BudgetLevels() []BudgetLevel {
	return []BudgetLevel{LevelNormal, LevelWarn, LevelThrottle, LevelPause, LevelExhausted}
}

// BudgetStatus is one budget scope in its current window. Amounts are dollars, for display.
type BudgetStatus struct {
	// ID is the team, agent or run id; empty for the fleet.
	ID string `json:"id,omitempty"`
	// Window is minute, hour, day, week, month or lifetime (runs).
	Window string `json:"window"`
	// SpentUSD is the spend booked in the window.
	SpentUSD float64 `json:"spent_usd"`
	// ReservedUSD is the estimates of running actions not yet settled.
	ReservedUSD float64 `json:"reserved_usd"`
	// LimitUSD is the budget's limit.
	LimitUSD float64 `json:"limit_usd"`
	// Utilization is (spent + reserved) / limit.
	Utilization float64 `json:"utilization"`
	// Level is where the scope stands.
	Level BudgetLevel `json:"level"`
	// ForecastUSD is the spend projected at the window's end at the current pace.
	ForecastUSD float64 `json:"forecast_usd"`
	// WindowStart and WindowEnd bound the current window; both are absent for lifetime windows.
	WindowStart time.Time `json:"window_start,omitzero"`
	WindowEnd   time.Time `json:"window_end,omitzero"`
}

// SettlementStatus is how the guarded action ended, as the client reports it on release.
type SettlementStatus string

// The action outcomes a client reports.
const (
	StatusOK       SettlementStatus = "ok"
	StatusError    SettlementStatus = "error"
	StatusTimeout  SettlementStatus = "timeout"
	StatusCanceled SettlementStatus = "canceled"
	StatusPanic    SettlementStatus = "panic"
)

// SettlementStatuses returns every action outcome.
func SettlementStatuses() []SettlementStatus {
	return []SettlementStatus{StatusOK, StatusError, StatusTimeout, StatusCanceled, StatusPanic}
}

// ReleaseRequest is the body of POST /v1/leases/{id}/release. An empty body is valid.
type ReleaseRequest struct {
	// ActualCostUSD is the action's cost as the agent measured it. It is used only when no span
	// matched the decision (an agent without tracing), never added to matched spend.
	ActualCostUSD *float64 `json:"actual_cost_usd,omitempty"`
	// Status is how the action ended.
	Status SettlementStatus `json:"status,omitempty"`
}

// CostSource is where a settled cost comes from.
type CostSource string

// The settlement cost sources.
const (
	// SourceSpans is spend of spans matched to the decision.
	SourceSpans CostSource = "spans"
	// SourceReported is the actual_cost_usd of the release request (no span matched).
	SourceReported CostSource = "reported"
	// SourceNone means no span matched and no cost was reported: the action settles at zero.
	SourceNone CostSource = "none"
)

// CostSources returns every settlement cost source.
func CostSources() []CostSource { return []CostSource{SourceSpans, SourceReported, SourceNone} }

// ReleaseResponse is the answer to POST /v1/leases/{id}/release.
type ReleaseResponse struct {
	// LeaseID is the released lease.
	LeaseID string `json:"lease_id"`
	// DecisionID is the decision the lease was granted by.
	DecisionID string `json:"decision_id"`
	// Settlement is the action's settled cost.
	Settlement Settlement `json:"settlement"`
}

// Settlement is an action's settled cost: its matched span spend, else its reported cost. Spans
// exported after the release still commit against the decision's scopes.
type Settlement struct {
	// ActualCostUSD is the settled cost.
	ActualCostUSD float64 `json:"actual_cost_usd"`
	// EstimatedCostUSD is the estimate the decision reserved.
	EstimatedCostUSD float64 `json:"estimated_cost_usd"`
	// FreedUSD is the part of the reservation the release freed.
	FreedUSD float64 `json:"freed_usd"`
	// Source is where ActualCostUSD comes from.
	Source CostSource `json:"source"`
	// SpansMatched is the number of priced spans matched to the decision.
	SpansMatched int64 `json:"spans_matched"`
	// InputTokens and OutputTokens total the matched spans' usage.
	InputTokens  int64 `json:"input_tokens,omitempty"`
	OutputTokens int64 `json:"output_tokens,omitempty"`
	// TokenCapBreaches counts matched spans whose output tokens exceeded the decision's
	// max_tokens.
	TokenCapBreaches int64 `json:"token_cap_breaches,omitempty"`
	// ReportedCostUSD is the actual_cost_usd the release carried, as reported (before clipping).
	ReportedCostUSD *float64 `json:"reported_cost_usd,omitempty"`
	// Clipped reports that ReportedCostUSD was above the policy's bound on a reported cost
	// (settlement.reported_cost_max_multiple times the estimate, at least
	// settlement.reported_cost_floor_usd, at most budgets.per_action_max_usd) and was cut to it:
	// the bound is what was booked. A clipped report is also an anomaly. A report ignored because
	// spans matched is never clipped.
	Clipped bool `json:"clipped,omitempty"`
	// Anomaly reports an action costing at least 3x its per-action baseline, or a clipped report.
	Anomaly bool `json:"anomaly"`
	// AnomalyRatio is the actual cost over the baseline, when Anomaly.
	AnomalyRatio float64 `json:"anomaly_ratio,omitempty"`
	// BaselineUSD is the per-action baseline the cost was compared with, once one exists.
	BaselineUSD float64 `json:"baseline_usd,omitempty"`
	// EvidenceID links the settlement record to the decision's evidence.
	EvidenceID string `json:"evidence_id,omitempty"`
}

// ApprovalState is where an approval is in its lifecycle: pending → approved → consumed,
// pending → denied, and pending or approved → expired.
type ApprovalState string

// The approval states.
const (
	ApprovalPending  ApprovalState = "pending"
	ApprovalApproved ApprovalState = "approved"
	ApprovalDenied   ApprovalState = "denied"
	ApprovalExpired  ApprovalState = "expired"
	ApprovalConsumed ApprovalState = "consumed"
)

// ApprovalStates returns every approval state.
func ApprovalStates() []ApprovalState {
	return []ApprovalState{ApprovalPending, ApprovalApproved, ApprovalDenied, ApprovalExpired, ApprovalConsumed}
}

// Approval is a request for a reviewer's decision on one action, and its outcome: the body of
// GET /v1/approvals/{id} and of the approve and deny answers.
type Approval struct {
	// ApprovalID identifies the approval.
	ApprovalID string `json:"approval_id"`
	// State is where the approval is.
	State ApprovalState `json:"state"`
	// AgentID, Action, RunID, Team, RiskTags, EstimatedCostUSD and Items repeat the request that
	// needed the approval.
	AgentID          string   `json:"agent_id"`
	Action           string   `json:"action"`
	RunID            string   `json:"run_id,omitempty"`
	Team             string   `json:"team,omitempty"`
	RiskTags         []string `json:"risk_tags,omitempty"`
	EstimatedCostUSD float64  `json:"estimated_cost_usd"`
	Items            int64    `json:"items,omitempty"`
	// RuleID and Reason are the rule that required the approval and why.
	RuleID string `json:"rule_id,omitempty"`
	Reason string `json:"reason,omitempty"`
	// RequestedBy is the authenticated subject that asked.
	RequestedBy string `json:"requested_by,omitempty"`
	// Reviewer is the reviewer who approved or denied.
	Reviewer string `json:"reviewer,omitempty"`
	// Comment is the reviewer's comment, or the reason given with a denial.
	Comment string `json:"comment,omitempty"`
	// CreatedAt, ExpiresAt and DecidedAt time the approval's life.
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	// Constraints are the reviewer's modified constraints, merged tighter-of into the decision.
	Constraints Constraints `json:"constraints,omitzero"`
	// CostCapUSD is the reviewer's cost cap: an estimate above it is denied.
	CostCapUSD *float64 `json:"cost_cap_usd,omitempty"`
	// EvidenceID links the approval record to the action's evidence.
	EvidenceID string `json:"evidence_id,omitempty"`
}

// ApprovalList is the answer to GET /v1/approvals.
type ApprovalList struct {
	// Approvals are the approvals in the asked state, oldest first: one page of at most limit.
	Approvals []Approval `json:"approvals"`
	// NextCursor, when set, is the cursor of the next page; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// ApproveRequest is the body of POST /v1/approvals/{id}/approve. An empty body approves as
// asked.
type ApproveRequest struct {
	// Constraints are modified constraints the approved action runs under.
	Constraints Constraints `json:"constraints,omitzero"`
	// CostCapUSD is a cost cap for the approved action, at or below the approval's estimate (a cap
	// only lowers what was asked; the server answers a higher one with a 400 naming it).
	CostCapUSD *float64 `json:"cost_cap_usd,omitempty"`
	// Comment is recorded with the approval.
	Comment string `json:"comment,omitempty"`
}

// DenyRequest is the body of POST /v1/approvals/{id}/deny.
type DenyRequest struct {
	// Reason is recorded with the denial and shown to the agent.
	Reason string `json:"reason,omitempty"`
}

// BudgetsResponse is the answer to GET /v1/budgets.
type BudgetsResponse struct {
	// PolicyVersion is the version of the policy whose limits apply.
	PolicyVersion string `json:"policy_version"`
	// Fleet is the fleet's degradation level.
	Fleet FleetStatus `json:"fleet"`
	// Scopes lists the configured budgets the caller may see with their spend in the current
	// window, fleet first, then teams and agents by id: one page of at most limit.
	Scopes []ScopeBudget `json:"scopes"`
	// NextCursor, when set, is the cursor of the next page; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// FleetStatus is the fleet's degradation level, as the agentcost_fleet_level metric reports it.
type FleetStatus struct {
	// Level is 0 (normal), 1 (throttle) or 2 (pause).
	Level int `json:"level"`
	// Name is normal, throttle or pause.
	Name BudgetLevel `json:"name"`
}

// ScopeBudget is one budget scope in the budgets listing.
type ScopeBudget struct {
	// Scope is fleet, team, agent or run.
	Scope string `json:"scope"`
	BudgetStatus
}

// Scopes returns the budget scope names, the keys of DecisionResponse.Budget.
func Scopes() []string { return []string{"fleet", "team", "agent", "run"} }

// ExplainResponse is the answer to POST /v1/explain: the decision the request would get (nothing
// is reserved) and how every rule and budget layer saw it.
type ExplainResponse struct {
	// Decision, RuleID, Reason, PolicyVersion, PolicySHA256, Constraints and RetryAfterSec are what POST
	// /v1/decisions would answer now.
	Decision      Decision    `json:"decision"`
	RuleID        string      `json:"rule_id,omitempty"`
	Reason        string      `json:"reason,omitempty"`
	PolicyVersion string      `json:"policy_version"`
	PolicySHA256  string      `json:"policy_sha256,omitempty"`
	Constraints   Constraints `json:"constraints,omitzero"`
	RetryAfterSec int64       `json:"retry_after_sec,omitempty"`
	// DerivedTags are the tags the policy's derive_tags added to the request's own.
	DerivedTags []string `json:"derived_tags"`
	// SelectedRule is the first matching rule; empty when default_decision applied.
	SelectedRule string `json:"selected_rule,omitempty"`
	// Rules lists every rule in evaluation order.
	Rules []RuleTrace `json:"rules"`
	// BudgetLayers lists each budget layer's verdict.
	BudgetLayers []LayerTrace `json:"budget_layers"`
	// Budget is the state of each configured budget scope.
	Budget map[string]BudgetStatus `json:"budget,omitempty"`
}

// RuleTrace is one policy rule as the request met it.
type RuleTrace struct {
	// RuleID is the rule's id.
	RuleID string `json:"rule_id"`
	// Decision is the rule's decision when it matches.
	Decision Decision `json:"decision"`
	// Matched reports whether every matcher of the rule accepted the request.
	Matched bool `json:"matched"`
	// Selected marks the first matching rule, the one that gave the rule result.
	Selected bool `json:"selected"`
	// Why lists each failed matcher, or notes that an earlier rule was selected.
	Why []string `json:"why,omitempty"`
}

// LayerTrace is one budget layer's verdict.
type LayerTrace struct {
	// Layer is per_action_cap, approval, run, agent, team or fleet; degrade comes first when the
	// policy has degrade entries, and freeze before it when a freeze covers the request (it decides).
	Layer string `json:"layer"`
	// Verdict is allow when the layer let the request pass.
	Verdict Decision `json:"verdict"`
	// Detail shows the numbers the layer compared.
	Detail string `json:"detail"`
}

// MarshalJSON encodes the list with an empty array, never null, for no approvals.
func (l ApprovalList) MarshalJSON() ([]byte, error) {
	type plain ApprovalList
	if l.Approvals == nil {
		l.Approvals = []Approval{}
	}
	return json.Marshal(plain(l))
}

// MarshalJSON encodes the response with an empty array, never null, for no scopes.
func (r BudgetsResponse) MarshalJSON() ([]byte, error) {
	type plain BudgetsResponse
	if r.Scopes == nil {
		r.Scopes = []ScopeBudget{}
	}
	return json.Marshal(plain(r))
}

// MarshalJSON encodes the response with empty arrays, never null, for no derived tags, rules or
// layers.
func (r ExplainResponse) MarshalJSON() ([]byte, error) {
	type plain ExplainResponse
	if r.DerivedTags == nil {
		r.DerivedTags = []string{}
	}
	if r.Rules == nil {
		r.Rules = []RuleTrace{}
	}
	if r.BudgetLayers == nil {
		r.BudgetLayers = []LayerTrace{}
	}
	return json.Marshal(plain(r))
}

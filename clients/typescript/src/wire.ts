// Wire types of the decision API, field for field the schemas of api/openapi.yaml: each interface
// is named after its schema in components.schemas and each property after the JSON property, so
// that clients/drift_test.go can check them against the document (a misspelt or removed property
// fails it). Responses may carry properties a newer server added; they are ignored.

/** The five decisions, from the most permissive to the strictest (schema Decision). */
export type DecisionKind = "allow" | "allow_with_constraints" | "throttle" | "require_approval" | "deny";

/** States of an approval (schema ApprovalState). */
export type ApprovalState = "pending" | "approved" | "denied" | "expired" | "consumed";

/** How a guarded action ended, sent on release (schema SettlementStatus). */
export type SettlementStatus = "ok" | "error" | "timeout" | "canceled" | "panic";

/** Limits an allowed action runs under; an absent field imposes nothing, 0 is a limit. */
export interface Constraints {
  max_runtime_sec?: number;
  max_retries?: number;
  max_concurrent?: number;
  rate_limit?: string;
  max_tokens?: number;
  max_tool_calls?: number;
  max_depth?: number;
  model?: string;
}

/** The body of POST /v1/decisions. */
export interface DecisionRequest {
  run_id?: string;
  agent_id: string;
  action: string;
  risk_tags?: string[];
  estimated_cost_usd: number;
  items?: number;
  team?: string;
  approval_id?: string;
  idempotency_key?: string;
  metadata?: Record<string, string>;
  model?: string;
}

/** One budget scope a decision saw. */
export interface BudgetStatus {
  id?: string;
  window: string;
  spent_usd: number;
  reserved_usd: number;
  limit_usd: number;
  utilization: number;
  level: string;
  forecast_usd: number;
  window_start?: string;
  window_end?: string;
}

/** The answer of POST /v1/decisions. */
export interface DecisionResponse {
  decision: DecisionKind;
  decision_id: string;
  rule_id?: string;
  reason?: string;
  policy_version: string;
  policy_sha256?: string;
  constraints?: Constraints;
  retry_after_sec?: number;
  lease_id?: string;
  approval_id?: string;
  budget?: Record<string, BudgetStatus>;
  evidence_id?: string;
  expires_at?: string;
}

/** The body of POST /v1/leases/{id}/release. */
export interface ReleaseRequest {
  actual_cost_usd?: number;
  status?: SettlementStatus;
}

/** How a released action was settled. */
export interface Settlement {
  actual_cost_usd: number;
  estimated_cost_usd: number;
  freed_usd: number;
  source: "spans" | "reported" | "none";
  spans_matched: number;
  input_tokens?: number;
  output_tokens?: number;
  token_cap_breaches?: number;
  reported_cost_usd?: number;
  clipped?: boolean;
  anomaly: boolean;
  anomaly_ratio?: number;
  baseline_usd?: number;
  evidence_id?: string;
}

/** The answer of POST /v1/leases/{id}/release. */
export interface ReleaseResponse {
  lease_id: string;
  decision_id: string;
  settlement: Settlement;
}

/** An approval, as GET /v1/approvals/{id} returns it. */
export interface Approval {
  approval_id: string;
  state: ApprovalState;
  agent_id: string;
  action: string;
  run_id?: string;
  team?: string;
  risk_tags?: string[];
  estimated_cost_usd: number;
  items?: number;
  rule_id?: string;
  reason?: string;
  requested_by?: string;
  reviewer?: string;
  comment?: string;
  created_at: string;
  expires_at: string;
  decided_at?: string;
  constraints?: Constraints;
  cost_cap_usd?: number;
  evidence_id?: string;
}

/** One page of GET /v1/approvals. */
export interface ApprovalList {
  approvals: Approval[];
  next_cursor?: string;
}

/** The body of POST /v1/approvals/{id}/approve. */
export interface ApproveRequest {
  constraints?: Constraints;
  cost_cap_usd?: number;
  comment?: string;
}

/** The body of POST /v1/approvals/{id}/deny. */
export interface DenyRequest {
  reason?: string;
}

/** The error of a non-2xx answer. */
export interface Error {
  code: string;
  field?: string;
  message: string;
}

/** The body of a non-2xx answer. */
export interface ErrorResponse {
  error: Error;
}

/** The body of POST /v1/freezes (reviewer role): scope is fleet, team, agent or run. */
export interface FreezeRequest {
  scope: string;
  scope_id?: string;
  reason: string;
  expires_in_sec?: number;
}

/** A freeze (the emergency brake), as POST /v1/freezes and GET /v1/leases/{id} return it. */
export interface Freeze {
  freeze_id: string;
  scope: string;
  scope_id?: string;
  reason: string;
  state: string;
  created_by: string;
  created_at: string;
  expires_at?: string;
  lifted_by?: string;
  lifted_at?: string;
}

/** The answer of GET /v1/leases/{id}: the lease's state and whether its scope is frozen. */
export interface LeaseStatus {
  lease_id: string;
  decision_id: string;
  agent_id: string;
  state: string;
  expires_at: string;
  frozen: boolean;
  freeze?: Freeze;
}

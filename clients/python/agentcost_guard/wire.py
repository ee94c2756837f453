"""Wire types of the decision API, field for field the schemas of api/openapi.yaml.

Each class is named after its schema in ``components.schemas`` and each field after the JSON
property, so that a Go test (``clients/drift_test.go``) can check them against the document: a
misspelt or removed property fails it. Responses are decoded leniently (unknown fields are
ignored, a newer server may add some); requests are encoded without their ``None`` fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional

# The decisions, approval states and settlement statuses of the API (schemas Decision,
# ApprovalState and SettlementStatus).
ALLOW = "allow"
ALLOW_WITH_CONSTRAINTS = "allow_with_constraints"
THROTTLE = "throttle"
REQUIRE_APPROVAL = "require_approval"
DENY = "deny"

PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
EXPIRED = "expired"
CONSUMED = "consumed"

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_TIMEOUT = "timeout"
STATUS_CANCELED = "canceled"
STATUS_PANIC = "panic"


class _Wire:
    """Encoding and lenient decoding shared by the wire types."""

    # Fields holding another wire type: name -> (type, "one" | "list" | "map").
    _nested: ClassVar[Dict[str, Any]] = {}

    def to_json(self) -> Dict[str, Any]:
        """Returns the JSON object of the request, without fields that are None."""
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            if isinstance(v, _Wire):
                v = v.to_json()
            out[f.name] = v
        return out

    @classmethod
    def from_json(cls, data: Any):
        """Decodes a JSON object, ignoring properties this client does not know."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: want a JSON object, got {type(data).__name__}")
        kwargs: Dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            v = data[f.name]
            nested = cls._nested.get(f.name)
            if nested is not None and v is not None:
                typ, shape = nested
                if shape == "one":
                    v = typ.from_json(v)
                elif shape == "list":
                    v = [typ.from_json(x) for x in v]
                else:
                    v = {k: typ.from_json(x) for k, x in v.items()}
            kwargs[f.name] = v
        return cls(**kwargs)


@dataclass
class Constraints(_Wire):
    """Limits an allowed action runs under; None imposes nothing, 0 is a limit."""

    max_runtime_sec: Optional[int] = None
    max_retries: Optional[int] = None
    max_concurrent: Optional[int] = None
    rate_limit: Optional[str] = None
    max_tokens: Optional[int] = None
    max_tool_calls: Optional[int] = None
    max_depth: Optional[int] = None
    model: Optional[str] = None


@dataclass
class DecisionRequest(_Wire):
    """The body of POST /v1/decisions."""

    agent_id: str = ""
    action: str = ""
    estimated_cost_usd: float = 0.0
    run_id: Optional[str] = None
    risk_tags: Optional[List[str]] = None
    items: Optional[int] = None
    team: Optional[str] = None
    approval_id: Optional[str] = None
    idempotency_key: Optional[str] = None
    metadata: Optional[Dict[str, str]] = None
    model: Optional[str] = None


@dataclass
class BudgetStatus(_Wire):
    """One budget scope a decision saw."""

    window: str = ""
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    limit_usd: float = 0.0
    utilization: float = 0.0
    level: str = ""
    forecast_usd: float = 0.0
    id: Optional[str] = None
    window_start: Optional[str] = None
    window_end: Optional[str] = None


@dataclass
class DecisionResponse(_Wire):
    """The answer of POST /v1/decisions."""

    decision: str = ""
    decision_id: str = ""
    policy_version: str = ""
    policy_sha256: Optional[str] = None
    rule_id: Optional[str] = None
    reason: Optional[str] = None
    constraints: Optional[Constraints] = None
    retry_after_sec: Optional[int] = None
    lease_id: Optional[str] = None
    approval_id: Optional[str] = None
    budget: Optional[Dict[str, BudgetStatus]] = None
    evidence_id: Optional[str] = None
    expires_at: Optional[str] = None


DecisionResponse._nested = {"constraints": (Constraints, "one"), "budget": (BudgetStatus, "map")}


@dataclass
class ReleaseRequest(_Wire):
    """The body of POST /v1/leases/{id}/release."""

    status: Optional[str] = None
    actual_cost_usd: Optional[float] = None


@dataclass
class Settlement(_Wire):
    """How a released action was settled."""

    actual_cost_usd: float = 0.0
    estimated_cost_usd: float = 0.0
    freed_usd: float = 0.0
    source: str = ""
    spans_matched: int = 0
    anomaly: bool = False
    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    token_cap_breaches: Optional[int] = None
    reported_cost_usd: Optional[float] = None
    clipped: Optional[bool] = None
    anomaly_ratio: Optional[float] = None
    baseline_usd: Optional[float] = None
    evidence_id: Optional[str] = None


@dataclass
class ReleaseResponse(_Wire):
    """The answer of POST /v1/leases/{id}/release."""

    lease_id: str = ""
    decision_id: str = ""
    settlement: Optional[Settlement] = None


ReleaseResponse._nested = {"settlement": (Settlement, "one")}


@dataclass
class Approval(_Wire):
    """An approval, as GET /v1/approvals/{id} returns it."""

    approval_id: str = ""
    state: str = ""
    agent_id: str = ""
    action: str = ""
    estimated_cost_usd: float = 0.0
    created_at: str = ""
    expires_at: str = ""
    run_id: Optional[str] = None
    team: Optional[str] = None
    risk_tags: Optional[List[str]] = None
    items: Optional[int] = None
    rule_id: Optional[str] = None
    reason: Optional[str] = None
    requested_by: Optional[str] = None
    reviewer: Optional[str] = None
    comment: Optional[str] = None
    decided_at: Optional[str] = None
    constraints: Optional[Constraints] = None
    cost_cap_usd: Optional[float] = None
    evidence_id: Optional[str] = None


Approval._nested = {"constraints": (Constraints, "one")}


@dataclass
class ApprovalList(_Wire):
    """One page of GET /v1/approvals."""

    approvals: List[Approval] = field(default_factory=list)
    next_cursor: Optional[str] = None


ApprovalList._nested = {"approvals": (Approval, "list")}


@dataclass
class ApproveRequest(_Wire):
    """The body of POST /v1/approvals/{id}/approve."""

    constraints: Optional[Constraints] = None
    cost_cap_usd: Optional[float] = None
    comment: Optional[str] = None


ApproveRequest._nested = {"constraints": (Constraints, "one")}


@dataclass
class DenyRequest(_Wire):
    """The body of POST /v1/approvals/{id}/deny."""

    reason: Optional[str] = None


@dataclass
class Error(_Wire):
    """The error of a non-2xx answer."""

    code: str = ""
    message: str = ""
    field: Optional[str] = None


@dataclass
class ErrorResponse(_Wire):
    """The body of a non-2xx answer."""

    error: Optional[Error] = None


ErrorResponse._nested = {"error": (Error, "one")}


@dataclass
class FreezeRequest(_Wire):
    """The body of POST /v1/freezes (reviewer role): scope is fleet, team, agent or run."""

    scope: str = ""
    reason: str = ""
    scope_id: Optional[str] = None
    expires_in_sec: Optional[int] = None


@dataclass
class Freeze(_Wire):
    """A freeze (the emergency brake), as POST /v1/freezes and GET /v1/leases/{id} return it."""

    freeze_id: str = ""
    scope: str = ""
    reason: str = ""
    state: str = ""
    created_by: str = ""
    created_at: str = ""
    scope_id: Optional[str] = None
    expires_at: Optional[str] = None
    lifted_by: Optional[str] = None
    lifted_at: Optional[str] = None


@dataclass
class LeaseStatus(_Wire):
    """The answer of GET /v1/leases/{id}: the lease's state and whether its scope is frozen."""

    lease_id: str = ""
    decision_id: str = ""
    agent_id: str = ""
    state: str = ""
    expires_at: str = ""
    frozen: bool = False
    freeze: Optional[Freeze] = None


LeaseStatus._nested = {"freeze": (Freeze, "one")}

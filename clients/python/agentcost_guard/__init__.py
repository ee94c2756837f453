"""Python client of agentcost's decision API (standard library only).

Before each expensive action it asks the budget receiver, obeys the answer (throttle: wait and ask
again; require_approval: wait for a reviewer; deny: raise DeniedError), runs the action under its
max_runtime_sec with ``agentcost.decision_id`` in OpenTelemetry baggage (when opentelemetry-api
is importable), and releases the lease afterwards, also when the action fails::

    from agentcost_guard import Guard
    guard = Guard("http://localhost:4320", agent="research-agent")  # token: AGENTCOST_TOKEN

    @guard.guarded("job.research.company", estimated_cost_usd=0.40)
    def research(company): ...
"""

from ._otel import BAGGAGE_ACTION, BAGGAGE_DECISION_ID, BAGGAGE_RUN_ID
from .client import (
    AgentcostError,
    APIError,
    ApprovalError,
    Decision,
    DeniedError,
    FrozenError,
    Guard,
    MaxRuntimeExceeded,
    ThrottledError,
    current_decision,
)
from . import wire

__all__ = [
    "Guard",
    "Decision",
    "current_decision",
    "AgentcostError",
    "APIError",
    "DeniedError",
    "ThrottledError",
    "ApprovalError",
    "MaxRuntimeExceeded",
    "FrozenError",
    "BAGGAGE_DECISION_ID",
    "BAGGAGE_RUN_ID",
    "BAGGAGE_ACTION",
    "wire",
]

__version__ = "0.1.0"

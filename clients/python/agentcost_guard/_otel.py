"""OpenTelemetry, used only when ``opentelemetry-api`` is importable.

Sets the decision's baggage while an action runs (so that a baggage span processor copies
``agentcost.decision_id`` onto its spans) and writes the W3C ``traceparent`` of the current span
into the decision request. Without the package both do nothing.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

BAGGAGE_DECISION_ID = "agentcost.decision_id"
BAGGAGE_RUN_ID = "agentcost.run_id"
BAGGAGE_ACTION = "agentcost.action"

_UNSET = object()
_api: Any = _UNSET


def api() -> Optional[Any]:
    """Returns the loaded OpenTelemetry API (baggage, context, propagator), or None."""
    global _api
    if _api is _UNSET:
        try:
            from opentelemetry import baggage, context
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            _api = (baggage, context, TraceContextTextMapPropagator())
        except ImportError:
            _api = None
    return _api


def reset() -> None:
    """Forgets whether OpenTelemetry is importable (tests install and remove a stub)."""
    global _api
    _api = _UNSET


def inject_traceparent(headers: Dict[str, str]) -> None:
    """Writes the current span's W3C trace context into headers."""
    otel = api()
    if otel is not None:
        otel[2].inject(headers)


def attach_baggage(members: Dict[str, str]) -> Optional[object]:
    """Makes members part of the current baggage; returns the token for detach_baggage."""
    otel = api()
    if otel is None:
        return None
    baggage, context, _ = otel
    ctx = context.get_current()
    for key, value in members.items():
        if value:
            ctx = baggage.set_baggage(key, value, context=ctx)
    return context.attach(ctx)


def detach_baggage(token: Optional[object]) -> None:
    """Restores the baggage attach_baggage replaced."""
    otel = api()
    if otel is not None and token is not None:
        otel[1].detach(token)

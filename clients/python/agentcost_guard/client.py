"""The decision API client: decide, obey, run under the deadline, release."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import inspect
import json
import logging
import math
import os
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, TypeVar

from . import _otel
from .wire import (
    ALLOW,
    ALLOW_WITH_CONSTRAINTS,
    APPROVED,
    DENY,
    PENDING,
    REQUIRE_APPROVAL,
    STATUS_CANCELED,
    STATUS_ERROR,
    STATUS_OK,
    STATUS_TIMEOUT,
    THROTTLE,
    Approval,
    ApprovalList,
    ApproveRequest,
    Constraints,
    DecisionRequest,
    DecisionResponse,
    DenyRequest,
    ErrorResponse,
    Freeze,
    FreezeRequest,
    LeaseStatus,
    ReleaseRequest,
    ReleaseResponse,
    Settlement,
)

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
]

T = TypeVar("T")

DEFAULT_ENDPOINT = "http://localhost:4320"
DEFAULT_HTTP_TIMEOUT = 30.0
DEFAULT_MAX_APPROVAL_WAIT = 15 * 60.0
DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_MAX_THROTTLE_RETRIES = 10
DEFAULT_MAX_THROTTLE_WAIT = 120.0
# How often a running action's lease is checked for a freeze: one GET /v1/leases/{id} per running
# action per interval (a single ledger read, apart from the agent's share of the API).
DEFAULT_LEASE_WATCH = 2.0

_MAX_ATTEMPTS = 3  # attempts of one HTTP call (network errors, 429, 502, 503, 504)
_MAX_RETRY_WAIT = 30.0
_MAX_RESPONSE_BYTES = 1 << 20
_MAX_ID_BYTES = 256
_MAX_APPROVAL_ROUNDS = 3
_RELEASE_TIMEOUT = 10.0
_NANOS = 10**9
_MAX_NANOS = 10**9 * _NANOS  # one billion dollars, the API's maximum amount
_USER_AGENT = "agentcost-guard-python/1"

_current: contextvars.ContextVar[Optional["Decision"]] = contextvars.ContextVar("agentcost_decision", default=None)


def current_decision() -> Optional["Decision"]:
    """Returns the decision of the guarded action the caller runs in, or None."""
    return _current.get()


class AgentcostError(Exception):
    """Base of the errors of this package."""


class APIError(AgentcostError):
    """The decision API refused a request (a non-2xx answer)."""

    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None,
                 retry_after_sec: int = 0):
        self.status, self.code, self.message, self.field = status, code, message, field
        self.retry_after_sec = retry_after_sec
        text = f"agentcost: {status} {code}: {message}"
        if field:
            text += f" (field {field})"
        super().__init__(text)


class DeniedError(AgentcostError):
    """The decision is deny; the action did not run."""

    def __init__(self, resp: DecisionResponse):
        self.decision = resp.decision
        self.decision_id = resp.decision_id
        self.rule_id = resp.rule_id or ""
        self.reason = resp.reason or ""
        self.evidence_id = resp.evidence_id or ""
        # When asking again can succeed (an exhausted windowed budget); 0: waiting does not help.
        self.retry_after_sec = resp.retry_after_sec or 0
        text = "agentcost: action denied"
        if self.rule_id:
            text += f" by {self.rule_id}"
        if self.reason:
            text += f": {self.reason}"
        if self.retry_after_sec:
            text += f" (retry after {self.retry_after_sec}s)"
        super().__init__(text)


class ThrottledError(AgentcostError):
    """The decision stayed throttle past max_throttle_retries or max_throttle_wait."""

    def __init__(self, resp: DecisionResponse, attempts: int):
        self.decision = resp.decision
        self.decision_id = resp.decision_id
        self.rule_id = resp.rule_id or ""
        self.reason = resp.reason or ""
        self.evidence_id = resp.evidence_id or ""
        self.retry_after_sec = resp.retry_after_sec or 0
        self.attempts = attempts
        text = f"agentcost: action still throttled after {attempts} attempts"
        if self.rule_id:
            text += f" by {self.rule_id}"
        if self.reason:
            text += f": {self.reason}"
        super().__init__(text)


class ApprovalError(AgentcostError):
    """The action's approval did not come: denied, expired, consumed, or still pending when the
    client stopped waiting (timed_out). The action did not run."""

    def __init__(self, approval_id: str, state: str, reason: str = "", reviewer: str = "",
                 timed_out: bool = False):
        self.approval_id, self.state, self.reason = approval_id, state, reason
        self.reviewer, self.timed_out = reviewer, timed_out
        text = f"agentcost: approval {approval_id} " + ("still pending" if timed_out else f"is {state}")
        if reviewer:
            text += f" by {reviewer}"
        if reason:
            text += f": {reason}"
        super().__init__(text)


class MaxRuntimeExceeded(AgentcostError):
    """The action failed after its max_runtime_sec passed (or was cancelled at it, for async
    actions); the lease was released with status timeout. The action's own error is __cause__."""

    def __init__(self, action: str, max_runtime_sec: int):
        self.action, self.max_runtime_sec = action, max_runtime_sec
        super().__init__(f"agentcost: action {action!r} ran past max_runtime_sec {max_runtime_sec}")


class FrozenError(AgentcostError):
    """A reviewer froze the running action's fleet, team, agent or run. Async actions are
    cancelled (this is raised from the CancelledError); synchronous ones see it from
    Decision.check(). The lease was released with status canceled."""

    def __init__(self, freeze: Freeze, decision_id: str = ""):
        self.freeze, self.decision_id = freeze, decision_id
        scope = freeze.scope + (" " + freeze.scope_id if freeze.scope_id else "")
        super().__init__(f"agentcost: action stopped: {scope} frozen by {freeze.created_by} "
                         f"({freeze.freeze_id}): {freeze.reason}")


class Decision:
    """An allowed decision, handed to the guarded action. Wire fields (decision_id, lease_id,
    constraints, budget, policy_version, ...) read through to the server's answer."""

    def __init__(self, response: DecisionResponse, run_id: Optional[str], action: str, attempts: int):
        self.response = response
        self.run_id = run_id
        self.action = action
        # How often the decision was asked (more than 1 after throttle or an approval).
        self.attempts = attempts
        self.constraints: Constraints = response.constraints or Constraints()
        self._started = time.monotonic()
        self._reported: Optional[int] = None
        self._lock = threading.Lock()
        self.settlement: Optional[Settlement] = None
        # The freeze that stopped the action, once the lease watch saw one.
        self.frozen: Optional[Freeze] = None

    def check(self) -> None:
        """Raises FrozenError once a reviewer froze the action's scope. Synchronous actions cannot
        be interrupted: call it between steps (model calls, tool calls) to stop at the next one."""
        if self.frozen is not None:
            raise FrozenError(self.frozen, self.response.decision_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["response"], name)

    @property
    def model(self) -> Optional[str]:
        """The model to call: the cheaper constraints.model when the policy degraded the request
        (pass model= to run/action), else the requested model (None when none was named)."""
        return self.constraints.model or self.__dict__.get("requested_model")

    @property
    def max_runtime_sec(self) -> Optional[int]:
        """The deadline the action runs under, in seconds from the decision; None: none."""
        return self.constraints.max_runtime_sec

    @property
    def deadline(self) -> Optional[float]:
        """The deadline as a time.monotonic() value, or None."""
        if self.max_runtime_sec is None:
            return None
        return self._started + self.max_runtime_sec

    def remaining(self) -> Optional[float]:
        """Seconds left until max_runtime_sec (never negative), or None without a deadline: pass
        it as the timeout of model and tool calls."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def expired(self) -> bool:
        """Whether max_runtime_sec has passed."""
        rem = self.remaining()
        return rem is not None and rem <= 0

    def report_cost(self, usd: float) -> None:
        """Adds usd to the action's reported cost, sent as actual_cost_usd on release. Only agents
        without tracing need it: the server settles on the spend of the action's spans and uses a
        reported cost only when no span matched. Amounts add up exactly (nano-dollars)."""
        n = _to_nanos(usd, "reported cost")
        with self._lock:
            total = (self._reported or 0) + n
            if total > _MAX_NANOS:
                raise ValueError("agentcost: reported cost exceeds 1e9 USD")
            self._reported = total

    @property
    def reported_cost_usd(self) -> Optional[float]:
        """The cost reported so far, or None when none was."""
        with self._lock:
            return None if self._reported is None else self._reported / _NANOS

    def __repr__(self) -> str:
        return f"Decision({self.response.decision!r}, decision_id={self.response.decision_id!r}, action={self.action!r})"


def _to_nanos(usd: float, what: str) -> int:
    if isinstance(usd, bool) or not isinstance(usd, (int, float)) or not math.isfinite(usd) or usd < 0:
        raise ValueError(f"agentcost: {what} must be a finite non-negative number, got {usd!r}")
    return int((Decimal(repr(float(usd))) * _NANOS).to_integral_value(ROUND_HALF_EVEN))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would resend the bearer token to wherever it points: refuse it.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None


class Guard:
    """Client of agentcost's decision API, safe for use from several threads.

    Arguments mirror the Go client's options (pkg/guard): token (else token_file, else the
    AGENTCOST_TOKEN or AGENTCOST_TOKEN_FILE environment variable), agent (else AGENTCOST_AGENT, else
    OTEL_SERVICE_NAME), team, run_id, max_approval_wait, poll_interval, max_throttle_retries,
    max_throttle_wait (seconds), timeout (of one HTTP call) and logger. The endpoint defaults to
    AGENTCOST_ENDPOINT, else http://localhost:4320.
    """

    def __init__(self, endpoint: Optional[str] = None, *, token: Optional[str] = None,
                 token_file: Optional[str] = None, agent: Optional[str] = None,
                 team: Optional[str] = None, run_id: Optional[str] = None,
                 timeout: float = DEFAULT_HTTP_TIMEOUT,
                 max_approval_wait: float = DEFAULT_MAX_APPROVAL_WAIT,
                 poll_interval: float = DEFAULT_POLL_INTERVAL,
                 max_throttle_retries: int = DEFAULT_MAX_THROTTLE_RETRIES,
                 max_throttle_wait: float = DEFAULT_MAX_THROTTLE_WAIT,
                 logger: Optional[logging.Logger] = None,
                 lease_watch: float = DEFAULT_LEASE_WATCH):
        endpoint = endpoint or os.environ.get("AGENTCOST_ENDPOINT") or DEFAULT_ENDPOINT
        u = urllib.parse.urlsplit(endpoint)
        if u.scheme not in ("http", "https") or not u.netloc or u.query or u.fragment:
            raise ValueError(f"agentcost: endpoint {endpoint!r} is not an http(s)://host[:port][/prefix] URL")
        self.endpoint = endpoint.rstrip("/")
        if token is None:
            token_file = token_file or os.environ.get("AGENTCOST_TOKEN_FILE")
            if token_file:
                with open(token_file, encoding="utf-8") as f:
                    token = f.read().strip()
            else:
                token = os.environ.get("AGENTCOST_TOKEN") or None
        self._token = token
        self.agent = agent or os.environ.get("AGENTCOST_AGENT") or os.environ.get("OTEL_SERVICE_NAME") or ""
        self.team = team
        self.run_id = run_id
        if poll_interval <= 0 or timeout <= 0 or max_approval_wait < 0 or max_throttle_retries < 0 or max_throttle_wait < 0:
            raise ValueError("agentcost: poll_interval and timeout must be positive, waits and retries not negative")
        self.timeout = timeout
        self.max_approval_wait = max_approval_wait
        self.poll_interval = poll_interval
        self.max_throttle_retries = max_throttle_retries
        self.max_throttle_wait = max_throttle_wait
        if lease_watch < 0:
            raise ValueError("agentcost: lease_watch must not be negative (0 turns the watch off)")
        self.lease_watch = lease_watch
        self.logger = logger or logging.getLogger("agentcost_guard")
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:  # never shows the token
        return f"Guard({self.endpoint!r}, agent={self.agent!r}, token={'set' if self._token else 'unset'})"

    # -- guarded actions ---------------------------------------------------------------------

    def run(self, action: str, fn: Callable[[Decision], T], **kw: Any) -> T:
        """Asks whether action may run, obeys the answer and, when allowed, calls fn(decision)
        with the decision in OpenTelemetry baggage and current_decision(), then releases the lease
        however fn ends. Returns fn's result; raises DeniedError, ThrottledError or ApprovalError
        when the action did not run, APIError when the API refused the request, fn's exception,
        or MaxRuntimeExceeded (from fn's exception) when fn failed after max_runtime_sec.

        Keyword arguments: estimated_cost_usd, items, risk_tags, run_id, team, idempotency_key,
        approval_id, metadata."""
        with self.action(action, **kw) as d:
            return fn(d)

    @contextlib.contextmanager
    def action(self, action: str, **kw: Any) -> Iterator[Decision]:
        """The context-manager form of run: ``with guard.action("job.x", estimated_cost_usd=1) as d:``.
        max_runtime_sec is cooperative for synchronous code: use d.remaining() as the timeout of
        the calls the block makes."""
        d = self._obtain(self._request(action, **kw))
        with self._running(d):
            yield d

    async def arun(self, action: str, fn: Callable[[Decision], Awaitable[T]], **kw: Any) -> T:
        """run for coroutines: the HTTP calls run in a worker thread and fn is cancelled at
        max_runtime_sec (MaxRuntimeExceeded, the lease released with status timeout)."""
        d = await asyncio.to_thread(self._obtain, self._request(action, **kw))
        status = STATUS_ERROR
        token, ctoken = _otel.attach_baggage(self._baggage(d)), _current.set(d)
        try:
            if d.max_runtime_sec is None:
                result = await self._watched(d, fn(d))
            else:
                try:
                    result = await self._watched(d, asyncio.wait_for(fn(d), timeout=d.max_runtime_sec))
                except asyncio.TimeoutError as exc:
                    status = STATUS_TIMEOUT
                    raise MaxRuntimeExceeded(d.action, d.max_runtime_sec) from exc
            status = STATUS_OK
            return result
        except BaseException as exc:
            if status != STATUS_TIMEOUT:
                status = _status_of(exc, d)
                if status == STATUS_TIMEOUT:
                    raise MaxRuntimeExceeded(d.action, d.max_runtime_sec or 0) from exc
            raise
        finally:
            _current.reset(ctoken)
            _otel.detach_baggage(token)
            await asyncio.shield(asyncio.to_thread(self._release_decision, d, status))

    def guarded(self, action: str, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: every call of the function is a guarded action. estimated_cost_usd may be a
        callable of the function's arguments. The function reads its decision with
        current_decision(). Coroutine functions are guarded with arun."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            def opts(args: Any, kwargs: Any) -> Dict[str, Any]:
                o = dict(kw)
                if callable(o.get("estimated_cost_usd")):
                    o["estimated_cost_usd"] = o["estimated_cost_usd"](*args, **kwargs)
                return o

            if inspect.iscoroutinefunction(fn):
                @functools.wraps(fn)
                async def awrapper(*args: Any, **kwargs: Any) -> Any:
                    return await self.arun(action, lambda d: fn(*args, **kwargs), **opts(args, kwargs))

                return awrapper

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return self.run(action, lambda d: fn(*args, **kwargs), **opts(args, kwargs))

            return wrapper

        return decorate

    # -- single API calls --------------------------------------------------------------------

    def decide(self, action: str, **kw: Any) -> DecisionResponse:
        """Asks once and returns the raw answer without obeying it. An allowed answer holds a
        reservation and a lease: release it with release()."""
        return self._decide(self._request(action, **kw))

    def release(self, lease_id: str, status: Optional[str] = None,
                actual_cost_usd: Optional[float] = None, timeout: Optional[float] = None) -> ReleaseResponse:
        """Releases a lease (POST /v1/leases/{id}/release) and returns the settlement."""
        if actual_cost_usd is not None:
            actual_cost_usd = _to_nanos(actual_cost_usd, "actual_cost_usd") / _NANOS
        body = ReleaseRequest(status=status, actual_cost_usd=actual_cost_usd)
        data = self._call("POST", "/v1/leases/" + _path_id("lease_id", lease_id) + "/release", body.to_json(), timeout)
        return ReleaseResponse.from_json(data)

    def lease(self, lease_id: str) -> LeaseStatus:
        """Returns a lease's state and whether a freeze covers it (GET /v1/leases/{id})."""
        return LeaseStatus.from_json(self._call("GET", "/v1/leases/" + _path_id("lease_id", lease_id)))

    def freeze(self, scope: str, reason: str, scope_id: Optional[str] = None,
               expires_in_sec: Optional[int] = None) -> Freeze:
        """Freezes the fleet, a team, an agent or a run (reviewer role): the emergency brake."""
        body = FreezeRequest(scope=scope, reason=reason, scope_id=scope_id, expires_in_sec=expires_in_sec)
        return Freeze.from_json(self._call("POST", "/v1/freezes", body.to_json()))

    def unfreeze(self, freeze_id: str) -> Freeze:
        """Lifts a freeze (reviewer role)."""
        return Freeze.from_json(self._call("DELETE", "/v1/freezes/" + _path_id("freeze_id", freeze_id)))

    def approval(self, approval_id: str) -> Approval:
        """Returns an approval's current state (GET /v1/approvals/{id})."""
        return Approval.from_json(self._call("GET", "/v1/approvals/" + _path_id("approval_id", approval_id)))

    def approvals(self, state: Optional[str] = None, limit: Optional[int] = None) -> List[Approval]:
        """Lists approvals (reviewer role), following next_cursor over every page."""
        out: List[Approval] = []
        cursor: Optional[str] = None
        while True:
            q = {k: v for k, v in (("state", state), ("limit", limit), ("cursor", cursor)) if v is not None}
            page = ApprovalList.from_json(self._call("GET", "/v1/approvals" + ("?" + urllib.parse.urlencode(q) if q else "")))
            out.extend(page.approvals)
            if not page.next_cursor:
                return out
            cursor = page.next_cursor

    def approve(self, approval_id: str, comment: Optional[str] = None,
                constraints: Optional[Constraints] = None, cost_cap_usd: Optional[float] = None) -> Approval:
        """Approves a pending approval (reviewer role)."""
        body = ApproveRequest(constraints=constraints, cost_cap_usd=cost_cap_usd, comment=comment)
        return Approval.from_json(self._call("POST", "/v1/approvals/" + _path_id("approval_id", approval_id) + "/approve", body.to_json()))

    def deny(self, approval_id: str, reason: Optional[str] = None) -> Approval:
        """Denies a pending approval (reviewer role)."""
        body = DenyRequest(reason=reason)
        return Approval.from_json(self._call("POST", "/v1/approvals/" + _path_id("approval_id", approval_id) + "/deny", body.to_json()))

    # -- the loop ------------------------------------------------------------------------------

    def _request(self, action: str, *, estimated_cost_usd: float = 0.0, items: Optional[int] = None,
                 risk_tags: Optional[List[str]] = None, run_id: Optional[str] = None,
                 team: Optional[str] = None, idempotency_key: Optional[str] = None,
                 approval_id: Optional[str] = None, metadata: Optional[Dict[str, str]] = None,
                 model: Optional[str] = None) -> DecisionRequest:
        if not action:
            raise ValueError("agentcost: action must not be empty")
        if not self.agent:
            raise ValueError("agentcost: no agent id: pass agent= or set AGENTCOST_AGENT or OTEL_SERVICE_NAME")
        _to_nanos(estimated_cost_usd, "estimated_cost_usd")
        return DecisionRequest(agent_id=self.agent, action=action, estimated_cost_usd=estimated_cost_usd,
                               run_id=run_id or self.run_id, risk_tags=list(risk_tags) if risk_tags else None,
                               items=items, team=team or self.team, approval_id=approval_id,
                               idempotency_key=idempotency_key, metadata=metadata, model=model)

    def _decide(self, req: DecisionRequest) -> DecisionResponse:
        return DecisionResponse.from_json(self._call("POST", "/v1/decisions", req.to_json(), trace=True))

    def _obtain(self, req: DecisionRequest) -> Decision:
        """Asks until the answer allows the action or stops it."""
        base_key = req.idempotency_key or secrets.token_hex(16)
        throttles, throttle_waited, approval_rounds = 0, 0.0, 0
        approval_deadline: Optional[float] = None
        attempt = 0
        while True:
            attempt += 1
            req.idempotency_key = _attempt_key(base_key, attempt)
            resp = self._decide(req)
            if resp.decision in (ALLOW, ALLOW_WITH_CONSTRAINTS):
                d = Decision(resp, req.run_id, req.action, attempt)
                d.requested_model = req.model
                return d
            if resp.decision == DENY:
                raise DeniedError(resp)
            if resp.decision == THROTTLE:
                wait = float(resp.retry_after_sec or 0) or self.poll_interval
                if throttles >= self.max_throttle_retries or throttle_waited + wait > self.max_throttle_wait:
                    raise ThrottledError(resp, attempt)
                throttles += 1
                throttle_waited += wait
                self.logger.info("action %s throttled by %s; asking again in %.1fs", req.action, resp.rule_id, wait)
                time.sleep(wait)
            elif resp.decision == REQUIRE_APPROVAL:
                if not resp.approval_id:
                    raise AgentcostError(f"agentcost: decision {resp.decision_id} requires approval but names no approval_id")
                if approval_rounds >= _MAX_APPROVAL_ROUNDS:
                    raise ApprovalError(resp.approval_id, PENDING, f"still requires approval after {approval_rounds} approvals")
                approval_rounds += 1
                if approval_deadline is None:
                    approval_deadline = time.monotonic() + self.max_approval_wait
                self.logger.info("action %s requires approval %s (%s); waiting for a reviewer", req.action, resp.approval_id, resp.rule_id)
                self._await_approval(resp.approval_id, approval_deadline)
                req.approval_id = resp.approval_id
            else:
                raise AgentcostError(f"agentcost: unknown decision {str(resp.decision)[:64]!r}; not running the action")

    def _await_approval(self, approval_id: str, deadline: float) -> None:
        while True:
            try:
                ap = self.approval(approval_id)
            except APIError as exc:
                if exc.status < 500 and exc.status != 429:
                    raise
                self.logger.warning("polling approval %s failed; polling on: %s", approval_id, exc)
            except OSError as exc:
                self.logger.warning("polling approval %s failed; polling on: %s", approval_id, exc)
            else:
                if ap.state == APPROVED:
                    return
                if ap.state != PENDING:
                    raise ApprovalError(approval_id, ap.state, ap.comment or "", ap.reviewer or "")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ApprovalError(approval_id, PENDING, f"no reviewer answered within {self.max_approval_wait:g}s",
                                    timed_out=True)
            time.sleep(min(self.poll_interval, remaining))

    def _baggage(self, d: Decision) -> Dict[str, str]:
        return {_otel.BAGGAGE_DECISION_ID: d.decision_id, _otel.BAGGAGE_RUN_ID: d.run_id or "",
                _otel.BAGGAGE_ACTION: d.action}

    def _frozen(self, d: Decision) -> Optional[Freeze]:
        """One lease check: the freeze covering d's lease, or None (also when the check failed:
        a server that cannot answer does not stop the action)."""
        try:
            st = self.lease(d.lease_id)
        except (AgentcostError, OSError, ValueError) as exc:
            self.logger.warning("checking lease %s failed; checking on: %s", d.lease_id, exc)
            return None
        return st.freeze if st.frozen and st.freeze is not None else None

    def _watch_thread(self, d: Decision) -> Callable[[], None]:
        """Starts the lease watch of a synchronous action (it sets d.frozen); returns its stop."""
        if self.lease_watch <= 0 or not d.lease_id:
            return lambda: None
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(self.lease_watch):
                f = self._frozen(d)
                if f is not None:
                    d.frozen = f
                    self.logger.warning("scope frozen (%s); the action stops at its next check: %s", f.freeze_id, f.reason)
                    return

        threading.Thread(target=watch, name="agentcost-lease-watch", daemon=True).start()
        return stop.set

    async def _watched(self, d: Decision, aw: Awaitable[T]) -> T:
        """Awaits aw while the lease watch runs; a freeze cancels it and raises FrozenError."""
        if self.lease_watch <= 0 or not d.lease_id:
            return await aw
        task = asyncio.ensure_future(aw)

        async def watch() -> None:
            while True:
                await asyncio.sleep(self.lease_watch)
                f = await asyncio.to_thread(self._frozen, d)
                if f is not None:
                    d.frozen = f
                    task.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            return await task
        except asyncio.CancelledError as exc:
            if d.frozen is not None and task.cancelled():
                raise FrozenError(d.frozen, d.decision_id) from exc
            raise
        finally:
            watcher.cancel()

    @contextlib.contextmanager
    def _running(self, d: Decision) -> Iterator[None]:
        status = STATUS_ERROR
        token, ctoken = _otel.attach_baggage(self._baggage(d)), _current.set(d)
        stop_watch = self._watch_thread(d)
        try:
            yield
            status = STATUS_OK
        except BaseException as exc:
            status = _status_of(exc, d)
            if status == STATUS_TIMEOUT:
                raise MaxRuntimeExceeded(d.action, d.max_runtime_sec or 0) from exc
            raise
        finally:
            stop_watch()
            _current.reset(ctoken)
            _otel.detach_baggage(token)
            self._release_decision(d, status)

    def _release_decision(self, d: Decision, status: str) -> None:
        """Releases d's lease; a failure is logged, not raised: the server frees it when it expires."""
        if not d.lease_id:
            self.logger.warning("allowed decision %s carries no lease_id; nothing to release", d.decision_id)
            return
        try:
            resp = self.release(d.lease_id, status=status, actual_cost_usd=d.reported_cost_usd, timeout=_RELEASE_TIMEOUT)
        except (AgentcostError, OSError, ValueError) as exc:
            self.logger.warning("releasing lease %s of decision %s failed; the server frees it when it expires: %s",
                                d.lease_id, d.decision_id, exc)
            return
        d.settlement = resp.settlement

    # -- HTTP ----------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None,
              timeout: Optional[float] = None, trace: bool = False) -> Any:
        """Sends one API call, retrying network errors, 429, 502, 503 and 504 with the same body
        (decision requests carry an idempotency key, so a retry never reserves twice)."""
        data = None if body is None else json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        backoff = 0.25
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                return self._once(method, path, data, timeout, trace)
            except APIError as exc:
                if exc.status not in (429, 502, 503, 504) or attempt == _MAX_ATTEMPTS:
                    raise
                wait = float(exc.retry_after_sec) or backoff
                err: Exception = exc
            except (urllib.error.URLError, OSError) as exc:
                if attempt == _MAX_ATTEMPTS:
                    raise AgentcostError(f"agentcost: {method} {path}: {exc}") from exc
                wait, err = backoff, exc
            if wait > _MAX_RETRY_WAIT:
                raise err
            backoff *= 2
            self.logger.debug("retrying %s %s in %.2fs: %s", method, path, wait, err)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, data: Optional[bytes], timeout: Optional[float], trace: bool) -> Any:
        headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = "Bearer " + self._token
        if trace:
            _otel.inject_traceparent(headers)
        req = urllib.request.Request(self.endpoint + path, data=data, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=timeout or self.timeout) as resp:
                raw = resp.read(_MAX_RESPONSE_BYTES + 1)
                status, retry_after = resp.status, None
        except urllib.error.HTTPError as exc:
            raw = exc.read(_MAX_RESPONSE_BYTES + 1) if exc.fp is not None else b""
            status, retry_after = exc.code, exc.headers.get("Retry-After") if exc.headers else None
            exc.close()
        if len(raw) > _MAX_RESPONSE_BYTES:
            raise AgentcostError(f"agentcost: {method} {path} response exceeds {_MAX_RESPONSE_BYTES} bytes")
        if 200 <= status < 300:
            try:
                return json.loads(raw) if raw else {}
            except ValueError as exc:
                raise AgentcostError(f"agentcost: decoding {method} {path} response: {exc}") from exc
        raise _api_error(status, raw, retry_after)


def _api_error(status: int, raw: bytes, retry_after: Optional[str]) -> APIError:
    code, message, field = "", "", None
    try:
        err = ErrorResponse.from_json(json.loads(raw)).error
        if err is not None:
            code, message, field = err.code, err.message, err.field
    except (ValueError, AttributeError, TypeError):
        pass
    if not code:  # not the API's error shape: a proxy's answer
        code = {400: "invalid_field", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 408: "request_timeout", 409: "conflict", 413: "body_too_large",
                415: "unsupported_media_type", 429: "rate_limited", 503: "unavailable"}.get(status, "internal")
        message = raw[:64].decode("utf-8", "replace").strip() or f"HTTP {status}"
    try:
        ra = int(retry_after) if retry_after else 0
    except ValueError:
        ra = 0
    return APIError(status, code, message, field, max(ra, 0))


def _status_of(exc: BaseException, d: Decision) -> str:
    if isinstance(exc, FrozenError):
        return STATUS_CANCELED
    if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)):
        return STATUS_CANCELED
    if d.expired():
        return STATUS_TIMEOUT
    return STATUS_ERROR


def _path_id(name: str, value: str) -> str:
    if not value or len(value.encode()) > _MAX_ID_BYTES:
        raise ValueError(f"agentcost: {name} must be 1 to {_MAX_ID_BYTES} bytes")
    return urllib.parse.quote(value, safe="")


def _attempt_key(base: str, attempt: int) -> str:
    """The idempotency key of the attempt-th ask of one action: later asks are new requests (a
    throttle must not be replayed), each with its own stable key."""
    if attempt == 1:
        return base
    suffix = f"-r{attempt}"
    if len(base.encode()) + len(suffix) > _MAX_ID_BYTES:
        base = hashlib.sha256(base.encode()).hexdigest()[:32]
    return base + suffix


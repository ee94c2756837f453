"""The client against the real collector: allow, throttle wait, approval wait, deny, deadline,
release and bearer tokens (policy: clients/testdata/policy.yaml)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
import unittest
from unittest import mock

from agentcost_guard import (
    APIError,
    ApprovalError,
    DeniedError,
    FrozenError,
    Guard,
    MaxRuntimeExceeded,
    ThrottledError,
    _otel,
    current_decision,
)
from agentcost_guard.wire import Constraints

from . import collector as coll

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTOR: coll.Collector


def setUpModule() -> None:
    global COLLECTOR
    COLLECTOR = coll.Collector()


def tearDownModule() -> None:
    COLLECTOR.stop()


def agent(**kw) -> Guard:
    kw.setdefault("token", coll.AGENT_TOKEN)
    kw.setdefault("poll_interval", 0.05)
    return Guard(COLLECTOR.endpoint, agent=coll.AGENT, **kw)


def reviewer() -> Guard:
    return Guard(COLLECTOR.endpoint, token=coll.REVIEWER_TOKEN, agent="reviewer")


def in_thread(fn):
    """Runs fn in a thread; returns a function that joins it and returns fn's result or raises
    its exception."""
    out: dict = {}

    def target():
        try:
            out["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()

    def join():
        t.join(60)
        if t.is_alive():
            raise AssertionError("guarded call did not finish within 60s")
        if "error" in out:
            raise out["error"]
        return out["result"]

    return join


def pending_approval(action: str):
    """Waits (bounded) until the review queue holds an approval of action; returns it."""
    rev = reviewer()
    for _ in range(600):
        for ap in rev.approvals(state="pending"):
            if ap.action == action:
                return ap
        time.sleep(0.05)
    raise AssertionError(f"no pending approval of {action}")


class AllowAndRelease(unittest.TestCase):
    def test_run_returns_the_result_and_releases_with_the_reported_cost(self):
        g = agent()
        seen = []

        def work(d):
            seen.append(d)
            self.assertIs(current_decision(), d)
            self.assertIn(d.decision, ("allow", "allow_with_constraints"))
            self.assertTrue(d.lease_id)
            self.assertRegex(d.policy_sha256, r"^[0-9a-f]{64}$")
            for _ in range(3):
                d.report_cost(0.1)  # 0.1 + 0.1 + 0.1 is 0.30000000000000004 in floats
            return "done"

        self.assertEqual(g.run("job.test.read", work, estimated_cost_usd=0.5, run_id="run-allow"), "done")
        d = seen[0]
        self.assertEqual(d.reported_cost_usd, 0.3)
        self.assertIsNotNone(d.settlement, "the lease was not released")
        self.assertEqual(d.settlement.source, "reported")
        self.assertEqual(d.settlement.actual_cost_usd, 0.3)
        self.assertEqual(d.settlement.estimated_cost_usd, 0.5)
        self.assertIsNone(current_decision())
        with self.assertRaises(APIError) as cm:  # released once: a second release is refused
            g.release(d.lease_id)
        self.assertIn(cm.exception.status, (404, 409))

    def test_context_manager_releases_when_the_block_fails(self):
        g = agent()
        with self.assertRaises(KeyError):
            with g.action("job.test.write", estimated_cost_usd=0.2) as d:
                raise KeyError("boom")
        self.assertIsNotNone(d.settlement)
        self.assertEqual(d.settlement.source, "none")
        self.assertEqual(d.settlement.freed_usd, 0.2)

    def test_decorator_prices_from_the_arguments(self):
        g = agent()

        @g.guarded("job.test.enrich", estimated_cost_usd=lambda n: 0.01 * n, risk_tags=["batch"])
        def enrich(n):
            d = current_decision()
            return d.response.decision_id, d

        decision_id, d = enrich(7)
        self.assertTrue(decision_id.startswith("dec_"))
        self.assertEqual(d.settlement.estimated_cost_usd, 0.07)
        self.assertEqual(enrich.__name__, "enrich")

    def test_decide_and_release_by_hand(self):
        g = agent()
        resp = g.decide("job.test.manual", estimated_cost_usd=1.25, idempotency_key="manual-1")
        again = g.decide("job.test.manual", estimated_cost_usd=1.25, idempotency_key="manual-1")
        self.assertEqual(again.decision_id, resp.decision_id, "the idempotency key did not make the retry safe")
        out = g.release(resp.lease_id, status="ok", actual_cost_usd=0.5)
        self.assertEqual(out.lease_id, resp.lease_id)
        self.assertEqual(out.settlement.actual_cost_usd, 0.5)

    def test_bad_request_names_the_field(self):
        with self.assertRaises(APIError) as cm:
            agent().decide("job.test.read", estimated_cost_usd=2e9)
        self.assertEqual(cm.exception.status, 400)
        self.assertEqual(cm.exception.field, "estimated_cost_usd")


class Throttle(unittest.TestCase):
    def test_waits_retry_after_and_asks_again(self):
        g = agent()
        held = g.decide("job.concurrent.wait", estimated_cost_usd=0.1)  # takes the one slot for 2 s (its max_runtime_sec)
        self.assertEqual(held.decision, "allow_with_constraints")
        ran = []
        g.run("job.concurrent.wait", ran.append, estimated_cost_usd=0.1)
        self.assertEqual(len(ran), 1)
        self.assertGreaterEqual(ran[0].attempts, 2, "the action ran without being throttled first")

    def test_gives_up_after_max_throttle_retries(self):
        g = agent(max_throttle_retries=0)
        held = g.decide("job.concurrent.giveup", estimated_cost_usd=0.1)
        try:
            ran = []
            with self.assertRaises(ThrottledError) as cm:
                g.run("job.concurrent.giveup", ran.append, estimated_cost_usd=0.1)
            self.assertEqual(ran, [])
            self.assertEqual(cm.exception.rule_id, "one-at-a-time")
            self.assertEqual(cm.exception.attempts, 1)
            self.assertGreaterEqual(cm.exception.retry_after_sec, 1)
        finally:
            g.release(held.lease_id)


class Approval(unittest.TestCase):
    def test_waits_for_the_reviewer_then_runs_with_the_approval(self):
        g = agent()
        join = in_thread(lambda: g.run("job.approve.granted", lambda d: d, estimated_cost_usd=2))
        ap = pending_approval("job.approve.granted")
        self.assertEqual(ap.requested_by, coll.AGENT)
        reviewer().approve(ap.approval_id, comment="fine", constraints=Constraints(max_runtime_sec=5))
        d = join()
        self.assertEqual(d.approval_id, ap.approval_id)
        self.assertEqual(d.attempts, 2)
        self.assertEqual(d.max_runtime_sec, 5)
        self.assertIsNotNone(d.settlement)

    def test_denied_approval_raises_with_the_reviewer_and_reason(self):
        g = agent()
        ran = []
        join = in_thread(lambda: g.run("job.approve.refused", ran.append, estimated_cost_usd=2))
        ap = pending_approval("job.approve.refused")
        reviewer().deny(ap.approval_id, reason="too expensive")
        with self.assertRaises(ApprovalError) as cm:
            join()
        self.assertEqual(ran, [])
        self.assertEqual((cm.exception.state, cm.exception.reviewer, cm.exception.reason),
                         ("denied", "alice", "too expensive"))
        self.assertFalse(cm.exception.timed_out)

    def test_stops_waiting_at_max_approval_wait(self):
        with self.assertRaises(ApprovalError) as cm:
            agent(max_approval_wait=0.2).run("job.approve.nobody", lambda d: None, estimated_cost_usd=2)
        self.assertTrue(cm.exception.timed_out)
        self.assertEqual(cm.exception.state, "pending")


class Deny(unittest.TestCase):
    def test_raises_with_rule_reason_and_evidence(self):
        ran = []
        with self.assertRaises(DeniedError) as cm:
            agent().run("job.test.deny", ran.append, estimated_cost_usd=1)
        e = cm.exception
        self.assertEqual(ran, [])
        self.assertEqual((e.decision, e.rule_id, e.reason), ("deny", "deny-test", "denied for the test"))
        self.assertTrue(e.decision_id.startswith("dec_"))
        self.assertTrue(e.evidence_id)


class Deadline(unittest.TestCase):
    def test_sync_failure_past_max_runtime_is_a_timeout(self):
        with self.assertRaises(MaxRuntimeExceeded) as cm:
            with agent().action("job.test.deadline", estimated_cost_usd=0.1) as d:
                self.assertEqual(d.max_runtime_sec, 1)
                self.assertEqual(d.constraints.max_tokens, 100)
                time.sleep(d.remaining() + 0.05)  # a cooperative action uses remaining() as its timeout
                self.assertTrue(d.expired())
                raise TimeoutError("model call timed out")
        self.assertIsInstance(cm.exception.__cause__, TimeoutError)
        self.assertIsNotNone(d.settlement, "not released after the timeout")

    def test_async_action_is_cancelled_at_max_runtime(self):
        g = agent()
        finished = []

        async def slow(d):
            await asyncio.sleep(30)
            finished.append(d)

        with self.assertRaises(MaxRuntimeExceeded):
            asyncio.run(g.arun("job.test.deadline", slow, estimated_cost_usd=0.1))
        self.assertEqual(finished, [])

    def test_async_decorator_runs_and_releases(self):
        g = agent()

        @g.guarded("job.test.async")
        async def step(x):
            await asyncio.sleep(0)
            return x * 2, current_decision()

        value, d = asyncio.run(step(21))
        self.assertEqual(value, 42)
        self.assertIsNotNone(d.settlement)


class BearerTokens(unittest.TestCase):
    def test_wrong_or_missing_token_is_401(self):
        for token in ("wrong-token-of-sufficient-length", ""):
            with self.subTest(token=token), mock.patch.dict(os.environ, {}, clear=False):
                os.environ.pop("AGENTCOST_TOKEN", None)
                os.environ.pop("AGENTCOST_TOKEN_FILE", None)
                with self.assertRaises(APIError) as cm:
                    agent(token=token or None).decide("job.test.read")
                self.assertEqual((cm.exception.status, cm.exception.code), (401, "unauthorized"))

    def test_token_from_file_and_environment(self):
        with mock.patch.dict(os.environ, {"AGENTCOST_TOKEN_FILE": COLLECTOR.agent_token_file}):
            os.environ.pop("AGENTCOST_TOKEN", None)
            g = Guard(COLLECTOR.endpoint, agent=coll.AGENT)
            self.assertEqual(g.run("job.test.read", lambda d: "ok"), "ok")
        with mock.patch.dict(os.environ, {"AGENTCOST_TOKEN": coll.AGENT_TOKEN}):
            os.environ.pop("AGENTCOST_TOKEN_FILE", None)
            self.assertEqual(Guard(COLLECTOR.endpoint, agent=coll.AGENT).run("job.test.read", lambda d: "ok"), "ok")
        self.assertNotIn(coll.AGENT_TOKEN, repr(g))

    def test_agent_token_cannot_review(self):
        with self.assertRaises(APIError) as cm:
            agent().approvals(state="pending")
        self.assertEqual(cm.exception.status, 403)


class OpenTelemetryBaggage(unittest.TestCase):
    """The OpenTelemetry branch, with the stub of opentelemetry-api in tests/otelstub."""

    def setUp(self):
        sys.path.insert(0, os.path.join(HERE, "otelstub"))
        _otel.reset()
        self.addCleanup(self._remove_stub)

    def _remove_stub(self):
        sys.path.remove(os.path.join(HERE, "otelstub"))
        for name in [n for n in sys.modules if n == "opentelemetry" or n.startswith("opentelemetry.")]:
            del sys.modules[name]
        _otel.reset()

    def test_decision_is_in_baggage_while_the_action_runs(self):
        from opentelemetry import baggage

        self.assertIsNotNone(_otel.api(), "the stub was not picked up")
        inside = {}

        def work(d):
            inside.update(baggage.get_all())
            return d

        d = agent().run("job.test.traced", work, run_id="run-otel")
        self.assertEqual(inside, {"agentcost.decision_id": d.decision_id, "agentcost.run_id": "run-otel",
                                  "agentcost.action": "job.test.traced"})
        self.assertEqual(baggage.get_all(), {}, "baggage not restored after the action")


class Freeze(unittest.TestCase):
    """A reviewer freezes a run while its action runs: the lease watch stops the action. Only the
    test's own run is frozen, so the other tests are not affected."""

    def test_async_action_is_cancelled_when_its_run_is_frozen(self):
        g, rev, seen = agent(lease_watch=0.05), reviewer(), []

        async def work(d):
            seen.append(d)
            await asyncio.to_thread(rev.freeze, "run", "runaway loop", scope_id="run-frozen-async")
            await asyncio.sleep(30)  # a long action, until the freeze stops it
            return "finished"

        with self.assertRaises(FrozenError) as cm:
            asyncio.run(g.arun("job.test.read", work, run_id="run-frozen-async"))
        f = cm.exception.freeze
        self.assertEqual((f.scope, f.scope_id, f.reason), ("run", "run-frozen-async", "runaway loop"))
        self.assertIsInstance(cm.exception.__cause__, asyncio.CancelledError)
        st = g.lease(seen[0].lease_id)
        self.assertEqual(st.state, "settled", "the stopped action's lease was not released")
        self.assertTrue(st.frozen)
        resp = agent().decide("job.test.read", run_id="run-frozen-async")
        self.assertEqual((resp.decision, resp.rule_id), ("deny", "freeze"))
        self.assertEqual(rev.unfreeze(f.freeze_id).state, "lifted")
        self.assertNotEqual(agent().decide("job.test.read", run_id="run-frozen-async").rule_id, "freeze")

    def test_sync_action_stops_at_its_next_check(self):
        g, rev = agent(lease_watch=0.05), reviewer()
        steps = []

        def work(d):
            f = rev.freeze("run", "stop the crawler", scope_id="run-frozen-sync")
            try:
                for _ in range(3000):  # bounded: 60s
                    d.check()
                    steps.append(1)
                    time.sleep(0.02)
            finally:
                rev.unfreeze(f.freeze_id)
            return "finished"

        with self.assertRaises(FrozenError) as cm:
            g.run("job.test.read", work, run_id="run-frozen-sync")
        self.assertEqual(cm.exception.freeze.reason, "stop the crawler")
        self.assertLess(len(steps), 3000)

    def test_agents_cannot_freeze(self):
        with self.assertRaises(APIError) as cm:
            agent().freeze("fleet", "not mine to pull")
        self.assertEqual(cm.exception.status, 403)

    def test_watch_off(self):
        with self.assertRaises(ValueError):
            agent(lease_watch=-1)
        self.assertEqual(agent(lease_watch=0).run("job.test.read", lambda d: d.check() or "ran"), "ran")


class ReadmeAgent(unittest.TestCase):
    def test_the_readme_agent_runs(self):
        with open(os.path.join(HERE, "..", "README.md"), encoding="utf-8") as f:
            block = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
        env = dict(os.environ, AGENTCOST_ENDPOINT=COLLECTOR.endpoint, AGENTCOST_TOKEN=coll.AGENT_TOKEN,
                   AGENTCOST_AGENT=coll.AGENT, PYTHONPATH=os.path.join(HERE, ".."))
        out = subprocess.run([sys.executable, "-c", block], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("research done", out.stdout)


if __name__ == "__main__":
    unittest.main()

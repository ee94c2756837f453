"""The client's HTTP behaviour against a scripted local server: headers, retries, redirects,
unknown fields and bounded bodies."""

from __future__ import annotations

import json
import os
import sys
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agentcost_guard import AgentcostError, APIError, Guard, _otel

HERE = os.path.dirname(os.path.abspath(__file__))

ALLOW = {"decision": "allow", "decision_id": "dec_1", "policy_version": "v1", "policy_sha256": "0" * 64,
         "lease_id": "dec_1.lease", "a_field_from_a_newer_server": {"x": 1}}
RELEASED = {"lease_id": "dec_1.lease", "decision_id": "dec_1", "later_field": True,
            "settlement": {"actual_cost_usd": 0, "estimated_cost_usd": 0, "freed_usd": 0, "source": "none",
                           "spans_matched": 0, "anomaly": False, "brand_new": 3}}


class Scripted:
    """A local HTTP server answering from a list of (status, headers, body) and recording requests."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                n = int(self.headers.get("Content-Length") or 0)
                outer.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                       self.rfile.read(n)))
                status, headers, body = outer.answers.pop(0)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class HTTPTest(unittest.TestCase):
    def serve(self, *answers) -> Scripted:
        s = Scripted(answers)
        self.addCleanup(s.close)
        return s

    def test_headers_of_posts_and_gets(self):
        sys.path.insert(0, os.path.join(HERE, "otelstub"))
        _otel.reset()
        try:
            s = self.serve((200, {}, ALLOW), (200, {}, RELEASED),
                           (200, {}, {"approval_id": "apr_1", "state": "pending", "agent_id": "a", "action": "x",
                                      "estimated_cost_usd": 0, "created_at": "", "expires_at": ""}))
            g = Guard(s.endpoint, token="secret-token-0123456789", agent="a", poll_interval=0.01)
            d = g.run("job.x", lambda d: d, estimated_cost_usd=1)
            g.approval("apr_1")
        finally:
            sys.path.remove(os.path.join(HERE, "otelstub"))
            for name in [n for n in sys.modules if n.startswith("opentelemetry")]:
                del sys.modules[name]
            _otel.reset()
        self.assertEqual(d.settlement.source, "none")  # unknown fields were ignored
        (m1, p1, h1, b1), (m2, p2, h2, b2), (m3, p3, h3, b3) = s.requests
        self.assertEqual((m1, p1, m2, p2, m3, p3), ("POST", "/v1/decisions", "POST", "/v1/leases/dec_1.lease/release",
                                                    "GET", "/v1/approvals/apr_1"))
        for h in (h1, h2):
            self.assertEqual(h["content-type"], "application/json")
        self.assertNotIn("content-type", h3)
        for h in (h1, h2, h3):
            self.assertEqual(h["authorization"], "Bearer secret-token-0123456789")
        self.assertEqual(h1["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        req = json.loads(b1)
        self.assertEqual(req["agent_id"], "a")
        self.assertEqual(req["estimated_cost_usd"], 1)
        self.assertEqual(len(req["idempotency_key"]), 32)
        self.assertEqual(json.loads(b2), {"status": "ok"})

    def test_retries_503_with_the_same_body(self):
        s = self.serve((503, {"Retry-After": "0"}, {"error": {"code": "unavailable", "message": "busy"}}),
                       (200, {}, ALLOW))
        resp = Guard(s.endpoint, agent="a").decide("job.x", idempotency_key="k1")
        self.assertEqual(resp.decision_id, "dec_1")
        self.assertEqual(s.requests[0][3], s.requests[1][3])

    def test_degraded_model(self):
        degraded = dict(ALLOW, decision="allow_with_constraints", constraints={"model": "gpt-4o-mini"})
        s = self.serve((200, {}, degraded), (200, {}, RELEASED), (200, {}, ALLOW), (200, {}, RELEASED))
        g = Guard(s.endpoint, agent="a", poll_interval=0.01)
        self.assertEqual(g.run("job.x", lambda d: d.model, model="gpt-4o"), "gpt-4o-mini")
        self.assertEqual(g.run("job.x", lambda d: d.model, model="gpt-4o"), "gpt-4o")
        self.assertEqual(json.loads(s.requests[0][3])["model"], "gpt-4o")

    def test_throttle_then_allow_uses_a_new_idempotency_key(self):
        throttle = {"decision": "throttle", "decision_id": "dec_0", "policy_version": "v1", "policy_sha256": "0" * 64,
                    "retry_after_sec": 0}
        s = self.serve((200, {}, throttle), (200, {}, ALLOW), (200, {}, RELEASED))
        d = Guard(s.endpoint, agent="a", poll_interval=0.01).run("job.x", lambda d: d, idempotency_key="key")
        keys = [json.loads(r[3])["idempotency_key"] for r in s.requests[:2]]
        self.assertEqual(keys, ["key", "key-r2"])
        self.assertEqual(d.attempts, 2)

    def test_error_body_and_proxy_answers(self):
        s = self.serve((400, {}, {"error": {"code": "invalid_field", "field": "action", "message": "bad"}}),
                       (502, {}, b"<html>bad gateway</html>"), (502, {}, b""), (502, {}, b"x"))
        g = Guard(s.endpoint, agent="a")
        with self.assertRaises(APIError) as cm:
            g.decide("job.x")
        self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.field), (400, "invalid_field", "action"))
        with self.assertRaises(APIError) as cm:
            g.decide("job.x")
        self.assertEqual((cm.exception.status, cm.exception.code), (502, "internal"))
        self.assertEqual(len(s.requests), 4, "502 was not retried up to 3 attempts")

    def test_redirects_are_not_followed(self):
        s = self.serve((307, {"Location": "http://127.0.0.1:1/v1/decisions"}, b""))
        with self.assertRaises(APIError) as cm:
            Guard(s.endpoint, token="secret-token-0123456789", agent="a").decide("job.x")
        self.assertEqual(cm.exception.status, 307)

    def test_response_body_is_bounded(self):
        s = self.serve((200, {}, b"[" + b"1," * (1 << 20) + b"1]"))
        with self.assertRaises(AgentcostError):
            Guard(s.endpoint, agent="a").decide("job.x")

    def test_invalid_arguments(self):
        for kw in ({"endpoint": "localhost:4320"}, {"endpoint": "ftp://h"}, {"poll_interval": 0}):
            with self.subTest(kw=kw), self.assertRaises(ValueError):
                Guard(**{"endpoint": "http://h", "agent": "a", **kw})
        g = Guard("http://h", agent="a")
        for cost in (-1, float("nan"), float("inf"), "1"):
            with self.subTest(cost=cost), self.assertRaises(ValueError):
                g.decide("job.x", estimated_cost_usd=cost)


if __name__ == "__main__":
    unittest.main()

// The client's HTTP behaviour against a scripted local server: headers, retries, redirects,
// unknown fields and bounded bodies.

import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";

import { context, trace, TraceFlags } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";

import { AgentcostError, APIError, Guard } from "../src/index.js";

type Answer = [status: number, headers: Record<string, string>, body: unknown];
interface Seen { method: string; url: string; headers: IncomingHttpHeaders; body: string }

const ALLOW = { decision: "allow", decision_id: "dec_1", policy_version: "v1", policy_sha256: "0".repeat(64),
  lease_id: "dec_1.lease", a_field_from_a_newer_server: { x: 1 } };
const RELEASED = { lease_id: "dec_1.lease", decision_id: "dec_1", later: true,
  settlement: { actual_cost_usd: 0, estimated_cost_usd: 0, freed_usd: 0, source: "none", spans_matched: 0, anomaly: false, brand_new: 3 } };

async function scripted(answers: Answer[], fn: (endpoint: string, seen: Seen[]) => Promise<void>) {
  const seen: Seen[] = [];
  const srv = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      const [status, headers, out] = answers.shift()!;
      const data = typeof out === "string" ? out : JSON.stringify(out);
      res.writeHead(status, { ...headers, "Content-Length": Buffer.byteLength(data) });
      res.end(data);
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  try {
    await fn(`http://127.0.0.1:${(srv.address() as AddressInfo).port}`, seen);
  } finally {
    srv.closeAllConnections();
    await new Promise((r) => srv.close(r));
  }
}

describe("HTTP", () => {
  it("sends the JSON content type on POSTs, the bearer token and the traceparent", async () => {
    await scripted([[200, {}, ALLOW], [200, {}, RELEASED]], async (endpoint, seen) => {
      context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
      try {
        const g = new Guard({ endpoint, token: "secret-token-0123456789", agent: "a" });
        const sc = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", traceFlags: TraceFlags.SAMPLED };
        const d = await context.with(trace.setSpanContext(context.active(), sc), () => g.run({ name: "job.x", estimatedCostUsd: 1 }, (d) => d));
        assert.equal(d.settlement?.source, "none"); // unknown fields were ignored
      } finally {
        context.disable();
      }
      const [dec, rel] = seen;
      assert.deepEqual([dec.method, dec.url, rel.method, rel.url], ["POST", "/v1/decisions", "POST", "/v1/leases/dec_1.lease/release"]);
      for (const s of seen) {
        assert.equal(s.headers["content-type"], "application/json");
        assert.equal(s.headers.authorization, "Bearer secret-token-0123456789");
      }
      assert.equal(dec.headers.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
      const req = JSON.parse(dec.body);
      assert.equal(req.agent_id, "a");
      assert.equal(req.idempotency_key.length, 32);
      assert.deepEqual(JSON.parse(rel.body), { status: "ok" });
    });
  });

  it("GETs carry no content type", async () => {
    const ap = { approval_id: "apr_1", state: "pending", agent_id: "a", action: "x", estimated_cost_usd: 0, created_at: "", expires_at: "" };
    await scripted([[200, {}, ap]], async (endpoint, seen) => {
      await new Guard({ endpoint, token: "secret-token-0123456789", agent: "a", openTelemetry: false }).approval("apr_1");
      assert.equal(seen[0].headers["content-type"], undefined);
      assert.equal(seen[0].url, "/v1/approvals/apr_1");
    });
  });

  it("a caller's signal aborts the running action, released as canceled", async () => {
    await scripted([[200, {}, ALLOW], [200, {}, RELEASED]], async (endpoint, seen) => {
      const ctl = new AbortController();
      const g = new Guard({ endpoint, agent: "a", openTelemetry: false });
      await assert.rejects(g.run({ name: "job.x", signal: ctl.signal }, (d) => new Promise((_, reject) => {
        d.signal.addEventListener("abort", () => reject(new Error("model call aborted")));
        ctl.abort();
      })), { message: "model call aborted" });
      assert.deepEqual(JSON.parse(seen[1].body), { status: "canceled" });
    });
  });

  it("retries 503 with the same body", async () => {
    await scripted([[503, { "Retry-After": "0" }, { error: { code: "unavailable", message: "busy" } }], [200, {}, ALLOW]], async (endpoint, seen) => {
      const resp = await new Guard({ endpoint, agent: "a", openTelemetry: false }).decide({ name: "job.x", idempotencyKey: "k1" });
      assert.equal(resp.decision_id, "dec_1");
      assert.equal(seen[0].body, seen[1].body);
    });
  });

  it("asks again after throttle with a new idempotency key", async () => {
    const throttle = { decision: "throttle", decision_id: "dec_0", policy_version: "v1", policy_sha256: "0".repeat(64), retry_after_sec: 0 };
    await scripted([[200, {}, throttle], [200, {}, ALLOW], [200, {}, RELEASED]], async (endpoint, seen) => {
      const d = await new Guard({ endpoint, agent: "a", pollIntervalMs: 10, openTelemetry: false }).run({ name: "job.x", idempotencyKey: "key" }, (d) => d);
      assert.deepEqual(seen.slice(0, 2).map((s) => JSON.parse(s.body).idempotency_key), ["key", "key-r2"]);
      assert.equal(d.attempts, 2);
    });
  });

  it("maps error bodies and proxy answers", async () => {
    await scripted([[400, {}, { error: { code: "invalid_field", field: "action", message: "bad" } }],
      [502, {}, "<html>bad gateway</html>"], [502, {}, ""], [502, {}, "x"]], async (endpoint, seen) => {
      const g = new Guard({ endpoint, agent: "a", openTelemetry: false });
      await assert.rejects(g.decide("job.x"), (e: unknown) => e instanceof APIError && e.status === 400 && e.field === "action");
      await assert.rejects(g.decide("job.x"), (e: unknown) => e instanceof APIError && e.status === 502 && e.code === "internal");
      assert.equal(seen.length, 4, "502 was not retried up to 3 attempts");
    });
  });

  it("does not follow redirects", async () => {
    await scripted([[307, { Location: "http://127.0.0.1:1/v1/decisions" }, ""]], async (endpoint) => {
      await assert.rejects(new Guard({ endpoint, token: "secret-token-0123456789", agent: "a", openTelemetry: false }).decide("job.x"),
        (e: unknown) => e instanceof APIError && e.status === 307);
    });
  });

  it("bounds the response body", async () => {
    await scripted([[200, {}, "[" + "1,".repeat(1 << 20) + "1]"]], async (endpoint) => {
      await assert.rejects(new Guard({ endpoint, agent: "a", openTelemetry: false }).decide("job.x"), AgentcostError);
    });
  });

  it("refuses invalid options and amounts", async () => {
    for (const endpoint of ["localhost:4320", "ftp://h", "http://h/?q=1"]) {
      assert.throws(() => new Guard({ endpoint, agent: "a" }), TypeError);
    }
    assert.throws(() => new Guard({ endpoint: "http://h", agent: "a", pollIntervalMs: 0 }), RangeError);
    const g = new Guard({ endpoint: "http://h", agent: "a", openTelemetry: false });
    for (const cost of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await assert.rejects(g.decide({ name: "job.x", estimatedCostUsd: cost }), RangeError);
    }
  });
});

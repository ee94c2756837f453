// The client against the real collector: allow, throttle wait, approval wait, deny, deadline,
// release and bearer tokens (policy: clients/testdata/policy.yaml).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";

import { context, propagation } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";

import {
  APIError,
  ApprovalError,
  currentDecision,
  type Decision,
  DeniedError,
  FrozenError,
  Guard,
  type GuardOptions,
  MaxRuntimeError,
  ThrottledError,
} from "../src/index.js";
import { AGENT, AGENT_TOKEN, Collector, REVIEWER_TOKEN } from "./collector.js";

let c: Collector;

before(async () => {
  c = await Collector.start();
});
after(async () => {
  await c?.stop();
});

const agent = (o: GuardOptions = {}) =>
  new Guard({ endpoint: c.endpoint, agent: AGENT, token: AGENT_TOKEN, pollIntervalMs: 50, openTelemetry: false, ...o });
const reviewer = () => new Guard({ endpoint: c.endpoint, agent: "reviewer", token: REVIEWER_TOKEN, openTelemetry: false });

async function pendingApproval(action: string) {
  for (let i = 0; i < 600; i++) { // bounded: 30 s
    const ap = (await reviewer().approvals("pending")).find((a) => a.action === action);
    if (ap) return ap;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no pending approval of ${action}`);
}

describe("allow and release", () => {
  it("runs the action and releases the lease with the reported cost", async () => {
    let seen: Decision | undefined;
    const out = await agent().run({ name: "job.test.read", estimatedCostUsd: 0.5, runId: "run-allow" }, (d) => {
      seen = d;
      assert.equal(currentDecision(), d);
      assert.ok(d.leaseId);
      assert.match(d.response.policy_sha256 ?? "", /^[0-9a-f]{64}$/);
      for (let i = 0; i < 3; i++) d.reportCost(0.1); // 0.1+0.1+0.1 is 0.30000000000000004 in doubles
      return "done";
    });
    assert.equal(out, "done");
    assert.ok(seen);
    assert.equal(seen.reportedCostUsd, 0.3);
    assert.ok(seen.settlement, "the lease was not released");
    assert.equal(seen.settlement.source, "reported");
    assert.equal(seen.settlement.actual_cost_usd, 0.3);
    assert.equal(seen.settlement.estimated_cost_usd, 0.5);
    assert.equal(currentDecision(), undefined);
    await assert.rejects(agent().release(seen.leaseId!), (e: unknown) => e instanceof APIError && [404, 409].includes(e.status));
  });

  it("releases when the action fails", async () => {
    let seen: Decision | undefined;
    await assert.rejects(
      agent().run({ name: "job.test.write", estimatedCostUsd: 0.2 }, (d) => {
        seen = d;
        throw new RangeError("boom");
      }),
      RangeError,
    );
    assert.equal(seen?.settlement?.source, "none");
    assert.equal(seen?.settlement?.freed_usd, 0.2);
  });

  it("wrap prices each call from its arguments", async () => {
    const enrich = agent().wrap({ name: "job.test.enrich", estimatedCostUsd: (n: number) => 0.01 * n }, async (n: number) => {
      await Promise.resolve();
      return { n, d: currentDecision() };
    });
    const { n, d } = await enrich(7);
    assert.equal(n, 7);
    assert.equal(d?.settlement?.estimated_cost_usd, 0.07);
  });

  it("decide is idempotent by key and release settles by hand", async () => {
    const g = agent();
    const first = await g.decide({ name: "job.test.manual", estimatedCostUsd: 1.25, idempotencyKey: "ts-manual-1" });
    const again = await g.decide({ name: "job.test.manual", estimatedCostUsd: 1.25, idempotencyKey: "ts-manual-1" });
    assert.equal(again.decision_id, first.decision_id);
    const out = await g.release(first.lease_id!, { status: "ok", actual_cost_usd: 0.5 });
    assert.equal(out.settlement.actual_cost_usd, 0.5);
  });

  it("a bad request names the field", async () => {
    await assert.rejects(agent().decide({ name: "job.test.read", estimatedCostUsd: 2e9 }),
      (e: unknown) => e instanceof APIError && e.status === 400 && e.field === "estimated_cost_usd");
  });
});

describe("throttle", () => {
  it("waits retry_after_sec and asks again", async () => {
    const g = agent();
    const held = await g.decide({ name: "job.concurrent.tswait", estimatedCostUsd: 0.1 }); // the one slot, for 2 s (its max_runtime_sec)
    assert.equal(held.decision, "allow_with_constraints");
    const d = await g.run({ name: "job.concurrent.tswait", estimatedCostUsd: 0.1 }, (d) => d);
    assert.ok(d.attempts >= 2, "the action ran without being throttled first");
  });

  it("gives up after maxThrottleRetries", async () => {
    const g = agent({ maxThrottleRetries: 0 });
    const held = await g.decide({ name: "job.concurrent.tsgiveup", estimatedCostUsd: 0.1 });
    try {
      let ran = false;
      await assert.rejects(g.run({ name: "job.concurrent.tsgiveup", estimatedCostUsd: 0.1 }, () => { ran = true; }),
        (e: unknown) => e instanceof ThrottledError && e.ruleId === "one-at-a-time" && e.attempts === 1 && e.retryAfterSec >= 1);
      assert.equal(ran, false);
    } finally {
      await g.release(held.lease_id!);
    }
  });
});

describe("approval", () => {
  it("waits for the reviewer, then runs with the approval", async () => {
    const running = agent().run({ name: "job.approve.tsgranted", estimatedCostUsd: 2 }, (d) => d);
    const ap = await pendingApproval("job.approve.tsgranted");
    assert.equal(ap.requested_by, AGENT);
    await reviewer().approve(ap.approval_id, { comment: "fine", constraints: { max_runtime_sec: 5 } });
    const d = await running;
    assert.equal(d.approvalId, ap.approval_id);
    assert.equal(d.attempts, 2);
    assert.equal(d.constraints.max_runtime_sec, 5);
    assert.ok(d.settlement);
  });

  it("a denied approval rejects with the reviewer and reason", async () => {
    let ran = false;
    const running = agent().run({ name: "job.approve.tsrefused", estimatedCostUsd: 2 }, () => { ran = true; });
    const ap = await pendingApproval("job.approve.tsrefused");
    await reviewer().deny(ap.approval_id, "too expensive");
    await assert.rejects(running, (e: unknown) =>
      e instanceof ApprovalError && e.state === "denied" && e.reviewer === "alice" && e.reason === "too expensive" && !e.timedOut);
    assert.equal(ran, false);
  });

  it("a caller's signal stops the wait", async () => {
    const ctl = new AbortController();
    let ran = false;
    const running = agent().run({ name: "job.approve.tscancel", estimatedCostUsd: 2, signal: ctl.signal }, () => { ran = true; });
    await pendingApproval("job.approve.tscancel");
    ctl.abort(new Error("caller gave up"));
    await assert.rejects(running, { message: "caller gave up" });
    assert.equal(ran, false);
  });

  it("stops waiting at maxApprovalWaitMs", async () => {
    await assert.rejects(agent({ maxApprovalWaitMs: 200 }).run({ name: "job.approve.tsnobody", estimatedCostUsd: 2 }, () => 1),
      (e: unknown) => e instanceof ApprovalError && e.timedOut && e.state === "pending");
  });
});

describe("deny", () => {
  it("rejects with rule, reason and evidence; the action does not run", async () => {
    let ran = false;
    await assert.rejects(agent().run({ name: "job.test.deny", estimatedCostUsd: 1 }, () => { ran = true; }), (e: unknown) => {
      assert.ok(e instanceof DeniedError);
      assert.deepEqual([e.decision, e.ruleId, e.reason], ["deny", "deny-test", "denied for the test"]);
      assert.match(e.decisionId, /^dec_/);
      assert.ok(e.evidenceId);
      return true;
    });
    assert.equal(ran, false);
  });
});

describe("deadline", () => {
  it("aborts the signal at max_runtime_sec and reports a timeout", async () => {
    let seen: Decision | undefined;
    await assert.rejects(
      agent().run({ name: "job.test.deadline", estimatedCostUsd: 0.1 }, async (d) => {
        seen = d;
        assert.equal(d.constraints.max_runtime_sec, 1);
        assert.equal(d.constraints.max_tokens, 100);
        // What a model call does with the signal: reject once it aborts.
        await new Promise((_, reject) => d.signal.addEventListener("abort", () => reject(new Error("aborted"))));
      }),
      (e: unknown) => e instanceof MaxRuntimeError && (e.cause as Error).message === "aborted",
    );
    assert.ok(seen?.signal.aborted);
    assert.ok(seen?.settlement, "not released after the timeout");
  });
});

describe("bearer tokens", () => {
  it("a wrong or missing token is 401", async () => {
    const saved = { t: process.env.AGENTCOST_TOKEN, f: process.env.AGENTCOST_TOKEN_FILE };
    delete process.env.AGENTCOST_TOKEN;
    delete process.env.AGENTCOST_TOKEN_FILE;
    try {
      for (const token of ["wrong-token-of-sufficient-length", ""]) {
        await assert.rejects(agent({ token }).decide("job.test.read"),
          (e: unknown) => e instanceof APIError && e.status === 401 && e.code === "unauthorized");
      }
    } finally {
      if (saved.t !== undefined) process.env.AGENTCOST_TOKEN = saved.t;
      if (saved.f !== undefined) process.env.AGENTCOST_TOKEN_FILE = saved.f;
    }
  });

  it("reads the token from a file and from the environment", async () => {
    const viaFile = new Guard({ endpoint: c.endpoint, agent: AGENT, tokenFile: c.agentTokenFile, openTelemetry: false });
    assert.equal(await viaFile.run("job.test.read", () => "ok"), "ok");
    process.env.AGENTCOST_TOKEN = AGENT_TOKEN;
    try {
      const viaEnv = new Guard({ endpoint: c.endpoint, agent: AGENT, openTelemetry: false });
      assert.equal(await viaEnv.run("job.test.read", () => "ok"), "ok");
      assert.ok(!JSON.stringify(viaEnv).includes(AGENT_TOKEN));
    } finally {
      delete process.env.AGENTCOST_TOKEN;
    }
  });

  it("an agent token cannot review", async () => {
    await assert.rejects(agent().approvals("pending"), (e: unknown) => e instanceof APIError && e.status === 403);
  });
});

describe("OpenTelemetry baggage", () => {
  it("the decision is in the active baggage while the action runs", async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    try {
      const g = agent({ openTelemetry: undefined }); // the installed @opentelemetry/api
      let inside: Record<string, string> = {};
      const d = await g.run({ name: "job.test.traced", runId: "run-otel" }, async (d) => {
        await new Promise((r) => setTimeout(r, 1)); // across an await
        for (const [k, v] of propagation.getActiveBaggage()?.getAllEntries() ?? []) inside[k] = v.value;
        return d;
      });
      assert.deepEqual(inside, { "agentcost.decision_id": d.decisionId, "agentcost.run_id": "run-otel", "agentcost.action": "job.test.traced" });
      assert.equal(propagation.getActiveBaggage(), undefined, "baggage leaked out of the action");
    } finally {
      context.disable();
    }
  });
});

describe("README agent", () => {
  it("the README's agent runs against the collector", async () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    assert.match(readme, /```ts\n[\s\S]*?```/);
    // scripts/extract-docs.mjs writes the block to test/readme-agent.ts before tsc; run its compiled form.
    process.env.AGENTCOST_ENDPOINT = c.endpoint;
    process.env.AGENTCOST_TOKEN = AGENT_TOKEN;
    process.env.AGENTCOST_AGENT = AGENT;
    const logs: string[] = [];
    const orig = console.log;
    console.log = (...a: unknown[]) => { logs.push(a.join(" ")); };
    try {
      await import("./readme-agent.js"); // resolves once its top-level await finished
    } finally {
      console.log = orig;
      delete process.env.AGENTCOST_ENDPOINT;
      delete process.env.AGENTCOST_TOKEN;
      delete process.env.AGENTCOST_AGENT;
    }
    assert.ok(logs.some((l) => l.includes("research done")), logs.join("\n"));
  });
});

describe("freeze", () => {
  it("a freeze of the action's run aborts d.signal and rejects with FrozenError; the lease is released", async () => {
    const g = agent({ leaseWatchMs: 50 });
    let seen: Decision | undefined;
    const err = await g.run({ name: "job.test.read", runId: "run-frozen-ts" }, async (d) => {
      seen = d;
      await reviewer().freeze({ scope: "run", scope_id: "run-frozen-ts", reason: "runaway loop" });
      await new Promise((resolve, reject) => {
        const t = setTimeout(resolve, 30_000); // a long action, until the freeze stops it
        d.signal.addEventListener("abort", () => { clearTimeout(t); reject(d.signal.reason); }, { once: true });
      });
      return "finished";
    }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof FrozenError, `rejected with ${String(err)}`);
    assert.equal(err.freeze.reason, "runaway loop");
    assert.equal(err.freeze.scope_id, "run-frozen-ts");
    const st = await g.lease(seen!.leaseId!);
    assert.equal(st.state, "settled");
    assert.equal(st.frozen, true);
    const denied = await agent().decide({ name: "job.test.read", runId: "run-frozen-ts" });
    assert.equal(denied.decision, "deny");
    assert.equal(denied.rule_id, "freeze");
    assert.equal((await reviewer().unfreeze(err.freeze.freeze_id)).state, "lifted");
  });

  it("agents cannot freeze, and the watch can be turned off", async () => {
    await assert.rejects(agent().freeze({ scope: "fleet", reason: "not mine" }), (e: unknown) => e instanceof APIError && e.status === 403);
    assert.throws(() => agent({ leaseWatchMs: -1 }), RangeError);
    assert.equal(await agent({ leaseWatchMs: 0 }).run("job.test.read", () => "ran"), "ran");
  });
});

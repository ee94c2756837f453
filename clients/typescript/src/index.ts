// The TypeScript client of agentcost's decision API (Node 18+, built-in fetch): decide, obey, run
// the action under its deadline with the decision in OpenTelemetry baggage, release the lease.

import { randomBytes, createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { AsyncLocalStorage } from "node:async_hooks";

import {
  BAGGAGE_ACTION,
  BAGGAGE_DECISION_ID,
  BAGGAGE_RUN_ID,
  loadOtel,
  traceparent,
  withBaggage,
  type OtelApi,
} from "./otel.js";
import type {
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
  SettlementStatus,
} from "./wire.js";

export type * from "./wire.js";
export { BAGGAGE_ACTION, BAGGAGE_DECISION_ID, BAGGAGE_RUN_ID, type OtelApi } from "./otel.js";

const DEFAULT_ENDPOINT = "http://localhost:4320";
const MAX_ATTEMPTS = 3; // of one HTTP call (network errors, 429, 502, 503, 504)
const MAX_RETRY_WAIT_MS = 30_000;
const MAX_RESPONSE_BYTES = 1 << 20;
const MAX_ID_BYTES = 256;
const MAX_APPROVAL_ROUNDS = 3;
const DEFAULT_LEASE_WATCH_MS = 2_000;
const RELEASE_TIMEOUT_MS = 10_000;
const NANOS = 1_000_000_000n;
const MAX_NANOS = 1_000_000_000n * NANOS; // one billion dollars, the API's maximum amount
const USER_AGENT = "agentcost-guard-ts/1";

/** Where the client logs waits, retries and failed releases (default: nothing). */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

/** Options of a Guard; they mirror the Go client's (pkg/guard), durations in milliseconds. */
export interface GuardOptions {
  /** The decision API, default $AGENTCOST_ENDPOINT, else http://localhost:4320. */
  endpoint?: string;
  /** Bearer token; default: tokenFile, else $AGENTCOST_TOKEN, else $AGENTCOST_TOKEN_FILE. */
  token?: string;
  /** A file holding the bearer token. */
  tokenFile?: string;
  /** agent_id of every decision; default $AGENTCOST_AGENT, else $OTEL_SERVICE_NAME. */
  agent?: string;
  /** Default team and run_id of every decision. */
  team?: string;
  runId?: string;
  /** Timeout of one HTTP call (default 30 s). */
  timeoutMs?: number;
  /** How long run waits for a reviewer (default 15 min) and how often it polls (2 s). */
  maxApprovalWaitMs?: number;
  pollIntervalMs?: number;
  /** How often run asks again after throttle (default 10) and for how long in total (2 min). */
  maxThrottleRetries?: number;
  maxThrottleWaitMs?: number;
  /**
   * How often run checks a running action's lease for a freeze (default 2 s; 0: never): one
   * GET /v1/leases/{id} per running action per interval, a single ledger read on the server,
   * outside the agent's share of the API. A freeze aborts d.signal with a FrozenError.
   */
  leaseWatchMs?: number;
  logger?: Logger;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** The OpenTelemetry API, or false for none; default: @opentelemetry/api when installed. */
  openTelemetry?: OtelApi | false;
}

/** An action to guard. */
export interface Action {
  /** The action topic the policy matches, e.g. "job.research.company". */
  name: string;
  /** The estimate reserved against the budgets while the action runs (dollars). */
  estimatedCostUsd?: number;
  items?: number;
  riskTags?: string[];
  runId?: string;
  team?: string;
  /** Makes retried requests safe; generated when absent. Later asks add "-r2", "-r3"…. */
  idempotencyKey?: string;
  /** An approval already granted for this action. */
  approvalId?: string;
  metadata?: Record<string, string>;
  /** The model the action intends to call; with it a policy may degrade to a cheaper one (Decision.model). */
  model?: string;
  /**
   * Cancels the action: stops waiting on throttle or approval and aborts d.signal; the lease is
   * still released (status canceled). Go's context, in JavaScript.
   */
  signal?: AbortSignal;
}

/** Base of the errors of this package. */
export class AgentcostError extends Error {
  override name = "AgentcostError";
}

/** The decision API refused a request (a non-2xx answer). */
export class APIError extends AgentcostError {
  override name = "APIError";
  constructor(
    readonly status: number,
    readonly code: string,
    readonly apiMessage: string,
    readonly field?: string,
    readonly retryAfterSec = 0,
  ) {
    super(`agentcost: ${status} ${code}: ${apiMessage}${field ? ` (field ${field})` : ""}`);
  }
}

/** The decision is deny; the action did not run. */
export class DeniedError extends AgentcostError {
  override name = "DeniedError";
  readonly decision: string;
  readonly decisionId: string;
  readonly ruleId: string;
  readonly reason: string;
  readonly evidenceId: string;
  /** When asking again can succeed (an exhausted windowed budget); 0: waiting does not help. */
  readonly retryAfterSec: number;
  constructor(resp: DecisionResponse) {
    super(`agentcost: action denied${resp.rule_id ? ` by ${resp.rule_id}` : ""}${resp.reason ? `: ${resp.reason}` : ""}`);
    this.decision = resp.decision;
    this.decisionId = resp.decision_id;
    this.ruleId = resp.rule_id ?? "";
    this.reason = resp.reason ?? "";
    this.evidenceId = resp.evidence_id ?? "";
    this.retryAfterSec = resp.retry_after_sec ?? 0;
  }
}

/** The decision stayed throttle past maxThrottleRetries or maxThrottleWaitMs. */
export class ThrottledError extends AgentcostError {
  override name = "ThrottledError";
  readonly decisionId: string;
  readonly ruleId: string;
  readonly reason: string;
  readonly evidenceId: string;
  readonly retryAfterSec: number;
  constructor(resp: DecisionResponse, readonly attempts: number) {
    super(`agentcost: action still throttled after ${attempts} attempts${resp.rule_id ? ` by ${resp.rule_id}` : ""}${resp.reason ? `: ${resp.reason}` : ""}`);
    this.decisionId = resp.decision_id;
    this.ruleId = resp.rule_id ?? "";
    this.reason = resp.reason ?? "";
    this.evidenceId = resp.evidence_id ?? "";
    this.retryAfterSec = resp.retry_after_sec ?? 0;
  }
}

/** The approval did not come: denied, expired, consumed, or still pending at the maximum wait. */
export class ApprovalError extends AgentcostError {
  override name = "ApprovalError";
  constructor(
    readonly approvalId: string,
    readonly state: string,
    readonly reason = "",
    readonly reviewer = "",
    readonly timedOut = false,
  ) {
    super(`agentcost: approval ${approvalId} ${timedOut ? "still pending" : `is ${state}`}${reviewer ? ` by ${reviewer}` : ""}${reason ? `: ${reason}` : ""}`);
  }
}

/** The action failed after its max_runtime_sec passed; its own error is `cause`. */
export class MaxRuntimeError extends AgentcostError {
  override name = "MaxRuntimeError";
  constructor(readonly action: string, readonly maxRuntimeSec: number, cause: unknown) {
    super(`agentcost: action "${action}" ran past max_runtime_sec ${maxRuntimeSec}`, { cause });
  }
}

/**
 * A reviewer froze the running action's fleet, team, agent or run: d.signal is aborted with it,
 * and run rejects with it (cause: fn's error); the lease is released as canceled.
 */
export class FrozenError extends AgentcostError {
  override name = "FrozenError";
  constructor(readonly freeze: Freeze, readonly decisionId: string, cause?: unknown) {
    const scope = freeze.scope + (freeze.scope_id ? ` ${freeze.scope_id}` : "");
    super(`agentcost: action stopped: ${scope} frozen by ${freeze.created_by} (${freeze.freeze_id}): ${freeze.reason}`, { cause });
  }
}

/** An allowed decision, handed to the guarded function. */
export class Decision {
  /** The constraints (never undefined; an absent field imposes nothing). */
  readonly constraints: Constraints;
  /** Aborted at max_runtime_sec: pass it to fetch and model clients. */
  readonly signal: AbortSignal;
  /** The server's settlement, once the lease was released. */
  settlement?: Settlement;
  /** The model the action named (Action.model). */
  requestedModel?: string;
  private reported?: bigint;

  constructor(
    /** The server's answer. */
    readonly response: DecisionResponse,
    readonly runId: string | undefined,
    readonly action: string,
    /** How often the decision was asked (more than 1 after throttle or an approval). */
    readonly attempts: number,
    signal: AbortSignal,
  ) {
    this.constraints = response.constraints ?? {};
    this.signal = signal;
  }

  get decisionId(): string {
    return this.response.decision_id;
  }
  get leaseId(): string | undefined {
    return this.response.lease_id;
  }
  get approvalId(): string | undefined {
    return this.response.approval_id;
  }
  /** The model to call: the cheaper constraints.model when the policy degraded, else Action.model. */
  get model(): string | undefined {
    return this.constraints.model ?? this.requestedModel;
  }

  /** Adds usd to the reported cost, sent as actual_cost_usd on release (agents without tracing). */
  reportCost(usd: number): void {
    const total = (this.reported ?? 0n) + toNanos(usd, "reported cost");
    if (total > MAX_NANOS) throw new RangeError("agentcost: reported cost exceeds 1e9 USD");
    this.reported = total;
  }

  /** The cost reported so far, or undefined. */
  get reportedCostUsd(): number | undefined {
    return this.reported === undefined ? undefined : nanosToUsd(this.reported);
  }
}

const current = new AsyncLocalStorage<Decision>();
// The controller aborting each decision's signal at max_runtime_sec.
const controllers = new WeakMap<Decision, AbortController>();

/** The decision of the guarded action the caller runs in, or undefined. */
export function currentDecision(): Decision | undefined {
  return current.getStore();
}

/** Client of agentcost's decision API. */
export class Guard {
  readonly endpoint: string;
  readonly agent: string;
  readonly #token?: string;
  readonly #o: Required<Pick<GuardOptions, "timeoutMs" | "maxApprovalWaitMs" | "pollIntervalMs" | "maxThrottleRetries" | "maxThrottleWaitMs">>;
  readonly #opts: GuardOptions;
  readonly #fetch: typeof fetch;

  constructor(opts: GuardOptions = {}) {
    const env = process.env;
    const endpoint = opts.endpoint ?? env.AGENTCOST_ENDPOINT ?? DEFAULT_ENDPOINT;
    let u: URL;
    try {
      u = new URL(endpoint);
    } catch {
      throw new TypeError(`agentcost: endpoint "${endpoint}" is not an http(s)://host[:port][/prefix] URL`);
    }
    if ((u.protocol !== "http:" && u.protocol !== "https:") || !u.host || u.search || u.hash) {
      throw new TypeError(`agentcost: endpoint "${endpoint}" is not an http(s)://host[:port][/prefix] URL`);
    }
    this.endpoint = endpoint.replace(/\/+$/, "");
    let token = opts.token;
    if (token === undefined) {
      const file = opts.tokenFile ?? env.AGENTCOST_TOKEN_FILE;
      token = file ? readFileSync(file, "utf8").trim() : env.AGENTCOST_TOKEN;
    }
    this.#token = token || undefined;
    this.agent = opts.agent ?? env.AGENTCOST_AGENT ?? env.OTEL_SERVICE_NAME ?? "";
    this.#o = {
      timeoutMs: opts.timeoutMs ?? 30_000,
      maxApprovalWaitMs: opts.maxApprovalWaitMs ?? 15 * 60_000,
      pollIntervalMs: opts.pollIntervalMs ?? 2_000,
      maxThrottleRetries: opts.maxThrottleRetries ?? 10,
      maxThrottleWaitMs: opts.maxThrottleWaitMs ?? 120_000,
    };
    const o = this.#o;
    if (!(o.pollIntervalMs > 0 && o.timeoutMs > 0) || o.maxApprovalWaitMs < 0 || o.maxThrottleRetries < 0 || o.maxThrottleWaitMs < 0) {
      throw new RangeError("agentcost: pollIntervalMs and timeoutMs must be positive, waits and retries not negative");
    }
    if ((opts.leaseWatchMs ?? 0) < 0) throw new RangeError("agentcost: leaseWatchMs must not be negative (0 turns the watch off)");
    this.#opts = opts;
    this.#fetch = opts.fetch ?? globalThis.fetch;
  }

  /** Never shows the token. */
  toJSON(): Record<string, unknown> {
    return { endpoint: this.endpoint, agent: this.agent, token: this.#token ? "set" : "unset" };
  }

  /**
   * Asks whether the action may run, obeys the answer and, when allowed, calls fn with the
   * decision in OpenTelemetry baggage and currentDecision(), then releases the lease however fn
   * ends. Resolves to fn's result; rejects with DeniedError, ThrottledError or ApprovalError when
   * the action did not run, APIError when the API refused, fn's error, or MaxRuntimeError (cause:
   * fn's error) when fn failed after max_runtime_sec (d.signal is aborted then).
   */
  async run<T>(action: Action | string, fn: (d: Decision) => Promise<T> | T): Promise<T> {
    const a = typeof action === "string" ? { name: action } : action;
    const otel = await this.#otel();
    const d = await this.#obtain(this.#request(a), otel, a.signal);
    const maxRuntime = d.constraints.max_runtime_sec;
    const ctl = controllers.get(d);
    const timer = maxRuntime === undefined ? undefined : setTimeout(() => ctl?.abort(new MaxRuntimeError(d.action, maxRuntime, undefined)), maxRuntime * 1000);
    const cancel = () => ctl?.abort(a.signal?.reason);
    a.signal?.addEventListener("abort", cancel, { once: true });
    const stopWatch = this.#watchLease(d, ctl);
    let status: SettlementStatus = "error";
    try {
      const members = { [BAGGAGE_DECISION_ID]: d.decisionId, [BAGGAGE_RUN_ID]: d.runId ?? "", [BAGGAGE_ACTION]: d.action };
      const result = await withBaggage(otel, members, () => current.run(d, () => fn(d)));
      status = "ok";
      return result;
    } catch (err) {
      if (a.signal?.aborted) {
        status = "canceled";
      } else if (d.signal.reason instanceof FrozenError) {
        status = "canceled";
        throw new FrozenError(d.signal.reason.freeze, d.decisionId, err);
      } else if (d.signal.aborted) {
        status = "timeout";
        throw new MaxRuntimeError(d.action, maxRuntime ?? 0, err);
      }
      throw err;
    } finally {
      clearTimeout(timer);
      stopWatch();
      a.signal?.removeEventListener("abort", cancel);
      await this.#releaseDecision(d, status);
    }
  }

  /** Returns fn guarded: every call is a run of action (estimatedCostUsd may be computed from the arguments). */
  wrap<A extends unknown[], T>(
    action: Omit<Action, "estimatedCostUsd"> & { estimatedCostUsd?: number | ((...args: A) => number) },
    fn: (...args: A) => Promise<T> | T,
  ): (...args: A) => Promise<T> {
    return (...args: A) => {
      const est = action.estimatedCostUsd;
      return this.run({ ...action, estimatedCostUsd: typeof est === "function" ? est(...args) : est }, () => fn(...args));
    };
  }

  /** Asks once and returns the raw answer. An allowed answer holds a lease: release it. */
  async decide(action: Action | string): Promise<DecisionResponse> {
    const a = typeof action === "string" ? { name: action } : action;
    return this.#decide(this.#request(a), await this.#otel(), a.signal);
  }

  /** Releases a lease and returns the settlement. */
  async release(leaseId: string, req: ReleaseRequest = {}, timeoutMs?: number): Promise<ReleaseResponse> {
    const body: ReleaseRequest = { ...req };
    if (body.actual_cost_usd !== undefined) body.actual_cost_usd = nanosToUsd(toNanos(body.actual_cost_usd, "actual_cost_usd"));
    return (await this.#call("POST", `/v1/leases/${pathId("lease_id", leaseId)}/release`, body, undefined, timeoutMs)) as ReleaseResponse;
  }

  /** An approval's current state. */
  /** A lease's state and whether a freeze covers it (GET /v1/leases/{id}). */
  async lease(leaseId: string, signal?: AbortSignal): Promise<LeaseStatus> {
    return (await this.#call("GET", `/v1/leases/${pathId("lease_id", leaseId)}`, undefined, undefined, undefined, signal)) as LeaseStatus;
  }

  /** Freezes the fleet, a team, an agent or a run (reviewer role): the emergency brake. */
  async freeze(req: FreezeRequest): Promise<Freeze> {
    return (await this.#call("POST", "/v1/freezes", req)) as Freeze;
  }

  /** Lifts a freeze (reviewer role). */
  async unfreeze(freezeId: string): Promise<Freeze> {
    return (await this.#call("DELETE", `/v1/freezes/${pathId("freeze_id", freezeId)}`)) as Freeze;
  }

  async approval(approvalId: string, signal?: AbortSignal): Promise<Approval> {
    return (await this.#call("GET", `/v1/approvals/${pathId("approval_id", approvalId)}`, undefined, undefined, undefined, signal)) as Approval;
  }

  /** Every approval (reviewer role), following next_cursor. */
  async approvals(state?: string): Promise<Approval[]> {
    const out: Approval[] = [];
    let cursor: string | undefined;
    for (;;) {
      const q = new URLSearchParams();
      if (state) q.set("state", state);
      if (cursor) q.set("cursor", cursor);
      const qs = q.toString();
      const page = (await this.#call("GET", `/v1/approvals${qs ? `?${qs}` : ""}`)) as ApprovalList;
      out.push(...page.approvals);
      if (!page.next_cursor) return out;
      cursor = page.next_cursor;
    }
  }

  /** Approves a pending approval (reviewer role). */
  async approve(approvalId: string, req: ApproveRequest = {}): Promise<Approval> {
    return (await this.#call("POST", `/v1/approvals/${pathId("approval_id", approvalId)}/approve`, req)) as Approval;
  }

  /** Denies a pending approval (reviewer role). */
  async deny(approvalId: string, reason?: string): Promise<Approval> {
    const req: DenyRequest = reason === undefined ? {} : { reason };
    return (await this.#call("POST", `/v1/approvals/${pathId("approval_id", approvalId)}/deny`, req)) as Approval;
  }

  // -- the loop ----------------------------------------------------------------------------

  async #otel(): Promise<OtelApi | undefined> {
    if (this.#opts.openTelemetry === false) return undefined;
    return this.#opts.openTelemetry ?? (await loadOtel());
  }

  #request(a: Action): DecisionRequest {
    if (!a.name) throw new TypeError("agentcost: the action needs a name");
    if (!this.agent) throw new TypeError("agentcost: no agent id: pass agent or set AGENTCOST_AGENT or OTEL_SERVICE_NAME");
    const estimated = a.estimatedCostUsd ?? 0;
    toNanos(estimated, "estimated_cost_usd");
    const req: DecisionRequest = { agent_id: this.agent, action: a.name, estimated_cost_usd: estimated };
    const runId = a.runId ?? this.#opts.runId;
    const team = a.team ?? this.#opts.team;
    if (runId) req.run_id = runId;
    if (team) req.team = team;
    if (a.riskTags?.length) req.risk_tags = [...a.riskTags];
    if (a.items !== undefined) req.items = a.items;
    if (a.approvalId) req.approval_id = a.approvalId;
    if (a.idempotencyKey) req.idempotency_key = a.idempotencyKey;
    if (a.metadata) req.metadata = a.metadata;
    if (a.model) req.model = a.model;
    return req;
  }

  async #decide(req: DecisionRequest, otel: OtelApi | undefined, signal?: AbortSignal): Promise<DecisionResponse> {
    return (await this.#call("POST", "/v1/decisions", req, traceparent(otel), undefined, signal)) as DecisionResponse;
  }

  async #obtain(req: DecisionRequest, otel: OtelApi | undefined, signal?: AbortSignal): Promise<Decision> {
    const o = this.#o;
    const log = this.#opts.logger;
    const baseKey = req.idempotency_key ?? randomBytes(16).toString("hex");
    let throttles = 0;
    let throttleWaited = 0;
    let approvalRounds = 0;
    let approvalDeadline: number | undefined;
    for (let attempt = 1; ; attempt++) {
      req.idempotency_key = attemptKey(baseKey, attempt);
      const resp = await this.#decide(req, otel, signal);
      switch (resp.decision) {
        case "allow":
        case "allow_with_constraints": {
          const ctl = new AbortController();
          const d = new Decision(resp, req.run_id, req.action, attempt, ctl.signal);
          d.requestedModel = req.model;
          controllers.set(d, ctl);
          return d;
        }
        case "deny":
          throw new DeniedError(resp);
        case "throttle": {
          const wait = (resp.retry_after_sec ?? 0) * 1000 || o.pollIntervalMs;
          if (throttles >= o.maxThrottleRetries || throttleWaited + wait > o.maxThrottleWaitMs) {
            throw new ThrottledError(resp, attempt);
          }
          throttles++;
          throttleWaited += wait;
          log?.info("action throttled; asking again", { action: req.action, rule_id: resp.rule_id, wait_ms: wait });
          await sleep(wait, signal);
          break;
        }
        case "require_approval": {
          const id = resp.approval_id;
          if (!id) throw new AgentcostError(`agentcost: decision ${resp.decision_id} requires approval but names no approval_id`);
          if (approvalRounds >= MAX_APPROVAL_ROUNDS) {
            throw new ApprovalError(id, "pending", `still requires approval after ${approvalRounds} approvals`);
          }
          approvalRounds++;
          approvalDeadline ??= Date.now() + o.maxApprovalWaitMs;
          log?.info("action requires approval; waiting for a reviewer", { action: req.action, approval_id: id, rule_id: resp.rule_id });
          await this.#awaitApproval(id, approvalDeadline, signal);
          req.approval_id = id;
          break;
        }
        default:
          throw new AgentcostError(`agentcost: unknown decision "${String(resp.decision).slice(0, 64)}"; not running the action`);
      }
    }
  }

  async #awaitApproval(id: string, deadline: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      try {
        const ap = await this.approval(id, signal);
        if (ap.state === "approved") return;
        if (ap.state !== "pending") throw new ApprovalError(id, ap.state, ap.comment ?? "", ap.reviewer ?? "");
      } catch (err) {
        if (signal?.aborted || err instanceof ApprovalError || (err instanceof APIError && err.status < 500 && err.status !== 429)) throw err;
        this.#opts.logger?.warn("polling approval failed; polling on", { approval_id: id, error: String(err) });
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new ApprovalError(id, "pending", `no reviewer answered within ${this.#o.maxApprovalWaitMs} ms`, "", true);
      }
      await sleep(Math.min(this.#o.pollIntervalMs, remaining), signal);
    }
  }

  /** Polls d's lease while it runs and aborts ctl with a FrozenError once its scope is frozen; returns the stop. */
  #watchLease(d: Decision, ctl: AbortController | undefined): () => void {
    const every = this.#opts.leaseWatchMs ?? DEFAULT_LEASE_WATCH_MS;
    if (!(every > 0) || !d.leaseId || !ctl) return () => {};
    const leaseId = d.leaseId;
    const stop = new AbortController();
    const loop = async () => {
      while (!stop.signal.aborted && !d.signal.aborted) {
        try {
          await sleep(every, stop.signal);
        } catch {
          return;
        }
        try {
          const st = await this.lease(leaseId, stop.signal);
          if (st.frozen && st.freeze) {
            this.#opts.logger?.warn("scope frozen; stopping the action", { lease_id: leaseId, freeze_id: st.freeze.freeze_id });
            ctl.abort(new FrozenError(st.freeze, d.decisionId));
            return;
          }
        } catch (err) {
          if (stop.signal.aborted) return;
          this.#opts.logger?.warn("checking the lease failed; checking on", { lease_id: leaseId, error: String(err) });
        }
      }
    };
    void loop();
    return () => stop.abort();
  }

  async #releaseDecision(d: Decision, status: SettlementStatus): Promise<void> {
    if (!d.leaseId) {
      this.#opts.logger?.warn("allowed decision carries no lease_id; nothing to release", { decision_id: d.decisionId });
      return;
    }
    const req: ReleaseRequest = { status };
    if (d.reportedCostUsd !== undefined) req.actual_cost_usd = d.reportedCostUsd;
    try {
      d.settlement = (await this.release(d.leaseId, req, RELEASE_TIMEOUT_MS)).settlement;
    } catch (err) {
      this.#opts.logger?.warn("releasing lease failed; the server frees it when it expires", {
        lease_id: d.leaseId, decision_id: d.decisionId, error: String(err),
      });
    }
  }

  // -- HTTP ---------------------------------------------------------------------------------

  /** One API call, retrying network errors, 429, 502, 503 and 504 with the same body. */
  async #call(method: string, path: string, body?: object, tp?: string, timeoutMs?: number, signal?: AbortSignal): Promise<unknown> {
    const data = body === undefined ? undefined : JSON.stringify(body);
    let backoff = 250;
    for (let attempt = 1; ; attempt++) {
      let wait: number;
      let error: unknown;
      try {
        return await this.#once(method, path, data, tp, timeoutMs ?? this.#o.timeoutMs, signal);
      } catch (err) {
        error = err;
        if (signal?.aborted) throw signal.reason;
        if (err instanceof APIError) {
          if (![429, 502, 503, 504].includes(err.status) || attempt === MAX_ATTEMPTS) throw err;
          wait = err.retryAfterSec * 1000 || backoff;
        } else if (err instanceof AgentcostError || attempt === MAX_ATTEMPTS) {
          throw err instanceof AgentcostError ? err : new AgentcostError(`agentcost: ${method} ${path}: ${String(err)}`, { cause: err });
        } else {
          wait = backoff;
        }
      }
      if (wait > MAX_RETRY_WAIT_MS) throw error;
      backoff *= 2;
      await sleep(wait, signal);
    }
  }

  async #once(method: string, path: string, data: string | undefined, tp: string | undefined, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
    const headers: Record<string, string> = { Accept: "application/json", "User-Agent": USER_AGENT };
    if (data !== undefined) headers["Content-Type"] = "application/json";
    if (this.#token) headers.Authorization = `Bearer ${this.#token}`;
    if (tp) headers.traceparent = tp;
    // redirect "manual": a redirect would resend the bearer token to wherever it points.
    const res = await this.#fetch(this.endpoint + path, {
      method, headers, body: data, redirect: "manual",
      signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
    });
    const raw = await readBounded(res, `${method} ${path}`);
    if (res.status >= 200 && res.status < 300) {
      try {
        return raw ? JSON.parse(raw) : {};
      } catch (err) {
        throw new AgentcostError(`agentcost: decoding ${method} ${path} response: ${String(err)}`);
      }
    }
    throw apiError(res, raw);
  }
}

async function readBounded(res: Response, what: string): Promise<string> {
  if (!res.body) return "";
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    n += chunk.length;
    if (n > MAX_RESPONSE_BYTES) {
      await res.body.cancel().catch(() => undefined);
      throw new AgentcostError(`agentcost: ${what} response exceeds ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

const CODES: Record<number, string> = {
  400: "invalid_field", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
  408: "request_timeout", 409: "conflict", 413: "body_too_large", 415: "unsupported_media_type",
  429: "rate_limited", 503: "unavailable",
};

function apiError(res: Response, raw: string): APIError {
  let e: Partial<ErrorResponse["error"]> = {};
  try {
    e = (JSON.parse(raw) as ErrorResponse).error ?? {};
  } catch {
    // not the API's error shape: a proxy's answer
  }
  const ra = Number.parseInt(res.headers.get("Retry-After") ?? "", 10);
  if (typeof e.code === "string" && e.code) {
    return new APIError(res.status, e.code, e.message ?? "", e.field, ra > 0 ? ra : 0);
  }
  return new APIError(res.status, CODES[res.status] ?? "internal", raw.slice(0, 64).trim() || `HTTP ${res.status}`, undefined, ra > 0 ? ra : 0);
}

function toNanos(usd: number, what: string): bigint {
  if (typeof usd !== "number" || !Number.isFinite(usd) || usd < 0 || usd >= 1e21) {
    throw new RangeError(`agentcost: ${what} must be a finite non-negative number, got ${String(usd)}`);
  }
  // toFixed(9) rounds the double's exact decimal value: 0.1 -> "0.100000000".
  const [whole, frac] = usd.toFixed(9).split(".");
  return BigInt(whole) * NANOS + BigInt(frac);
}

function nanosToUsd(n: bigint): number {
  return Number(`${n / NANOS}.${(n % NANOS).toString().padStart(9, "0")}`);
}

function pathId(name: string, value: string): string {
  if (!value || Buffer.byteLength(value) > MAX_ID_BYTES) throw new TypeError(`agentcost: ${name} must be 1 to ${MAX_ID_BYTES} bytes`);
  return encodeURIComponent(value);
}

function attemptKey(base: string, attempt: number): string {
  if (attempt === 1) return base;
  const suffix = `-r${attempt}`;
  if (Buffer.byteLength(base) + suffix.length > MAX_ID_BYTES) {
    base = createHash("sha256").update(base).digest("hex").slice(0, 32);
  }
  return base + suffix;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      done();
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      done();
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

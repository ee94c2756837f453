// OpenTelemetry, used only when @opentelemetry/api can be imported: the decision's baggage while
// the action runs, and the W3C traceparent of the active span on the decision request. The
// interface below is the part of @opentelemetry/api (1.x) the client uses, so that the package
// stays an optional peer dependency.

/** Baggage keys set while a guarded action runs (the same as the Go client's). */
export const BAGGAGE_DECISION_ID = "agentcost.decision_id";
export const BAGGAGE_RUN_ID = "agentcost.run_id";
export const BAGGAGE_ACTION = "agentcost.action";

interface BaggageLike {
  setEntry(key: string, entry: { value: string }): BaggageLike;
}

interface SpanContextLike {
  traceId: string;
  spanId: string;
  traceFlags: number;
}

/** The parts of @opentelemetry/api the client uses. */
export interface OtelApi {
  context: { active(): unknown; with<T>(ctx: unknown, fn: () => T): T };
  propagation: {
    getBaggage(ctx: unknown): BaggageLike | undefined;
    setBaggage(ctx: unknown, baggage: BaggageLike): unknown;
    createBaggage(): BaggageLike;
  };
  trace: { getSpanContext(ctx: unknown): SpanContextLike | undefined };
}

let loaded: Promise<OtelApi | undefined> | undefined;

/** Imports @opentelemetry/api once; undefined when it is not installed. */
export function loadOtel(): Promise<OtelApi | undefined> {
  loaded ??= import("@opentelemetry/api" as string).then(
    (m: { default?: OtelApi } & OtelApi) => (m.context ? m : m.default),
    () => undefined,
  );
  return loaded;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;

/** The W3C traceparent of the active span, or undefined. */
export function traceparent(api: OtelApi | undefined): string | undefined {
  const sc = api?.trace.getSpanContext(api.context.active());
  if (!sc || !HEX32.test(sc.traceId) || !HEX16.test(sc.spanId) || /^0+$/.test(sc.traceId) || /^0+$/.test(sc.spanId)) {
    return undefined;
  }
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
}

/** Runs fn with members added to the active baggage. */
export function withBaggage<T>(api: OtelApi | undefined, members: Record<string, string>, fn: () => T): T {
  if (!api) return fn();
  const ctx = api.context.active();
  let bag = api.propagation.getBaggage(ctx) ?? api.propagation.createBaggage();
  for (const [key, value] of Object.entries(members)) {
    if (value) bag = bag.setEntry(key, { value });
  }
  return api.context.with(api.propagation.setBaggage(ctx, bag), fn);
}

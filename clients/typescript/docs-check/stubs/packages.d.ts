// Stubs of the signatures docs/instrumenting.md uses from packages this machine cannot install
// for the test (the guide's TypeScript blocks are type-checked against these, see
// scripts/extract-docs.mjs). Each mirrors the package's public API at the version the guide names;
// only the members the guide calls are declared.

declare module "@opentelemetry/sdk-node" {
  // @opentelemetry/sdk-node 0.20x (SDK 2.x)
  export namespace tracing {
    interface SpanProcessor {
      forceFlush(): Promise<void>;
      shutdown(): Promise<void>;
    }
    interface SpanExporter {
      shutdown(): Promise<void>;
    }
    class BatchSpanProcessor implements SpanProcessor {
      constructor(exporter: SpanExporter, config?: { maxExportBatchSize?: number; scheduledDelayMillis?: number });
      forceFlush(): Promise<void>;
      shutdown(): Promise<void>;
    }
  }
  export interface NodeSDKConfiguration {
    serviceName: string;
    spanProcessors: tracing.SpanProcessor[];
    instrumentations: object[];
    traceExporter: tracing.SpanExporter;
  }
  export class NodeSDK {
    constructor(configuration?: Partial<NodeSDKConfiguration>);
    start(): void;
    shutdown(): Promise<void>;
  }
}

declare module "@opentelemetry/exporter-trace-otlp-proto" {
  // 0.20x: url and headers default to OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT / _HEADERS.
  import type { tracing } from "@opentelemetry/sdk-node";
  export class OTLPTraceExporter implements tracing.SpanExporter {
    constructor(config?: { url?: string; headers?: Record<string, string>; timeoutMillis?: number });
    shutdown(): Promise<void>;
  }
}

declare module "@opentelemetry/baggage-span-processor" {
  // 0.4+: the predicate selects the baggage keys copied onto spans.
  import type { tracing } from "@opentelemetry/sdk-node";
  export type BaggageKeyPredicate = (baggageKey: string) => boolean;
  export const ALLOW_ALL_BAGGAGE_KEYS: BaggageKeyPredicate;
  export class BaggageSpanProcessor implements tracing.SpanProcessor {
    constructor(keyPredicate: BaggageKeyPredicate);
    forceFlush(): Promise<void>;
    shutdown(): Promise<void>;
  }
}

declare module "@opentelemetry/instrumentation-openai" {
  export class OpenAIInstrumentation {
    constructor(config?: { enabled?: boolean; captureMessageContent?: boolean });
  }
}

declare module "@traceloop/instrumentation-openai" {
  export class OpenAIInstrumentation {
    constructor(config?: { enabled?: boolean; traceContent?: boolean; enrichTokens?: boolean });
  }
}

declare module "ai" {
  // Vercel AI SDK 5.x
  export interface LanguageModel {
    readonly modelId: string;
  }
  export interface TelemetrySettings {
    isEnabled?: boolean;
    functionId?: string;
    metadata?: Record<string, string | number | boolean>;
  }
  export function generateText(options: {
    model: LanguageModel;
    prompt?: string;
    system?: string;
    maxOutputTokens?: number;
    abortSignal?: AbortSignal;
    experimental_telemetry?: TelemetrySettings;
  }): Promise<{ text: string; usage: { inputTokens?: number; outputTokens?: number } }>;
}

declare module "@ai-sdk/openai" {
  import type { LanguageModel } from "ai";
  export function openai(modelId: string): LanguageModel;
}

declare module "openai" {
  // openai 4.x / 5.x
  interface ChatCompletion {
    choices: { message: { content: string | null } }[];
  }
  export default class OpenAI {
    constructor(options?: { apiKey?: string; baseURL?: string });
    chat: {
      completions: {
        create(
          body: { model: string; messages: { role: "system" | "user" | "assistant"; content: string }[]; max_tokens?: number },
          options?: { signal?: AbortSignal; timeout?: number },
        ): Promise<ChatCompletion>;
      };
    };
  }
}

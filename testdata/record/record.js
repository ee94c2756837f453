// Records the OTLP/JSON span trees in ../otlp from real npm instrumentations. Each scenario runs in
// its own process (node record.js <scenario>; no argument runs them all): a loopback mock of the
// provider API answers with fixed usage, the instrumented client makes one call inside an
// application span "agent.step", and the finished spans are written as one OTLP/JSON request.
// Versions: package-lock.json. See ../README.md for what each fixture shows.
'use strict';

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const OUT = path.join(__dirname, '..', 'otlp');

// The usage every mock answers with. Anthropic: input_tokens excludes the cache (1000 of a
// 1300-token prompt, 200 read from and 100 written to the cache). Gemini: 300 visible output
// tokens plus 150 thinking tokens.
const anthropicUsage = { input_tokens: 1000, output_tokens: 200, cache_read_input_tokens: 200, cache_creation_input_tokens: 100 };
const geminiUsage = { promptTokenCount: 1000, candidatesTokenCount: 300, thoughtsTokenCount: 150, totalTokenCount: 1450 };

function anthropicMessage(model) {
  return {
    id: 'msg_01fixture', type: 'message', role: 'assistant', model,
    content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', stop_sequence: null, usage: anthropicUsage,
  };
}

function mock() {
  return new Promise((resolve) => {
    const srv = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        let out;
        if (req.url.startsWith('/v1/messages')) {
          out = anthropicMessage(JSON.parse(body).model);
        } else if (req.url.includes(':generateContent')) {
          out = { candidates: [{ content: { role: 'model', parts: [{ text: 'ok' }] }, finishReason: 'STOP', index: 0 }],
            usageMetadata: geminiUsage, modelVersion: 'gemini-2.5-flash' };
        } else if (req.url.startsWith('/model/')) {
          out = anthropicMessage('claude-sonnet-4-5-20250929');
        } else {
          res.writeHead(404); res.end(); return;
        }
        res.writeHead(200, { 'content-type': 'application/json', 'request-id': 'req_fixture' });
        res.end(JSON.stringify(out));
      });
    });
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

const scenarios = {
  // The Anthropic SDK's own gen_ai span, alone (a tracer provider is registered, nothing else).
  'anthropic-sdk': async (base) => {
    const { default: Anthropic } = require('@anthropic-ai/sdk');
    return () => anthropicCall(new Anthropic({ apiKey: 'test', baseURL: base }));
  },
  // OpenLLMetry's Anthropic instrumentation over the SDK's own span.
  'openllmetry-anthropic-over-sdk': async (base) => {
    const mod = require('anthropic-sdk-0137'); // 0.137: OpenLLMetry 0.27 patches Completions, gone in 1.x
    const { AnthropicInstrumentation } = require('@traceloop/instrumentation-anthropic');
    const inst = new AnthropicInstrumentation({ traceContent: false });
    inst.manuallyInstrument(mod);
    return () => anthropicCall(new mod.Anthropic({ apiKey: 'test', baseURL: base }));
  },
  // OpenLLMetry's Anthropic instrumentation alone (the SDK's own spans turned off).
  'openllmetry-anthropic': async (base) => {
    process.env.ANTHROPIC_OPEN_TELEMETRY = 'false';
    const mod = require('anthropic-sdk-0137'); // 0.137: OpenLLMetry 0.27 patches Completions, gone in 1.x
    const { AnthropicInstrumentation } = require('@traceloop/instrumentation-anthropic');
    const inst = new AnthropicInstrumentation({ traceContent: false });
    inst.manuallyInstrument(mod);
    return () => anthropicCall(new mod.Anthropic({ apiKey: 'test', baseURL: base }));
  },
  // OpenInference's Anthropic instrumentation over the SDK's own span.
  'openinference-anthropic-over-sdk': async (base) => {
    const mod = require('@anthropic-ai/sdk');
    const { AnthropicInstrumentation } = require('@arizeai/openinference-instrumentation-anthropic');
    const inst = new AnthropicInstrumentation();
    inst.manuallyInstrument(mod);
    return () => anthropicCall(new mod.Anthropic({ apiKey: 'test', baseURL: base }));
  },
  // OpenLLMetry's Google GenAI instrumentation on a Gemini call with thinking tokens.
  'openllmetry-gemini': async (base) => {
    const mod = require('@google/genai');
    const { GenAIInstrumentation } = require('@traceloop/instrumentation-google-generativeai');
    const inst = new GenAIInstrumentation({ traceContent: false });
    inst.manuallyInstrument(mod);
    return async () => {
      const ai = new mod.GoogleGenAI({ apiKey: 'test', httpOptions: { baseUrl: base } });
      await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hi' });
    };
  },
  // The Vercel AI SDK (ai 5, @ai-sdk/anthropic 2) with telemetry on: ai.generateText over
  // ai.generateText.doGenerate, both carrying the usage (the aggregate case, already handled).
  'vercel-ai-anthropic': async (base) => {
    const { generateText } = require('ai');
    const { createAnthropic } = require('@ai-sdk/anthropic');
    const anthropic = createAnthropic({ apiKey: 'test', baseURL: `${base}/v1` });
    return () => generateText({ model: anthropic('claude-sonnet-4-5-20250929'), prompt: 'hi',
      experimental_telemetry: { isEnabled: true, recordInputs: false, recordOutputs: false } });
  },
  // OpenInference's Bedrock instrumentation on InvokeModel with an Anthropic model.
  'openinference-bedrock-invokemodel': async (base) => {
    const mod = require('@aws-sdk/client-bedrock-runtime');
    const { BedrockInstrumentation } = require('@arizeai/openinference-instrumentation-bedrock');
    const inst = new BedrockInstrumentation();
    inst.manuallyInstrument(mod);
    return async () => {
      const { NodeHttpHandler } = require('@smithy/node-http-handler'); // HTTP/1.1 to the mock
      const client = new mod.BedrockRuntimeClient({ region: 'us-east-1', endpoint: base, requestHandler: new NodeHttpHandler(),
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
      await client.send(new mod.InvokeModelCommand({ modelId: 'anthropic.claude-sonnet-4-5-20250929-v1:0',
        contentType: 'application/json', accept: 'application/json',
        body: JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 300, messages: [{ role: 'user', content: 'hi' }] }) }));
    };
  },
};

async function anthropicCall(client) {
  await client.messages.create({ model: 'claude-sonnet-4-5-20250929', max_tokens: 300, messages: [{ role: 'user', content: 'hi' }] });
}

async function record(name) {
  const api = require('@opentelemetry/api');
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
  const { InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
  const { Resource } = require('@opentelemetry/resources');
  const { JsonTraceSerializer } = require('@opentelemetry/otlp-transformer');

  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({
    resource: new Resource({ 'service.name': 'fixture-agent', 'telemetry.sdk.language': 'nodejs' }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  provider.register();
  const srv = await mock();
  const base = `http://127.0.0.1:${srv.address().port}`;
  const call = await scenarios[name](base);
  const tracer = api.trace.getTracer('fixture-app');
  await tracer.startActiveSpan('agent.step', async (span) => {
    try { await call(); } finally { span.end(); }
  });
  await provider.forceFlush();
  srv.close();
  const spans = exporter.getFinishedSpans(); // in the order they ended: children first
  const body = JSON.parse(Buffer.from(JsonTraceSerializer.serializeRequest(spans)).toString('utf8'));
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, `${name}.json`), JSON.stringify(body, null, 1) + '\n');
  console.log(`${name}: ${spans.length} spans: ${spans.map((s) => `${s.instrumentationLibrary.name}:${s.name}`).join(', ')}`);
}

if (process.argv[2]) {
  record(process.argv[2]).catch((e) => { console.error(e); process.exit(1); });
} else {
  for (const name of Object.keys(scenarios)) {
    execFileSync(process.execPath, [__filename, name], { stdio: 'inherit' });
  }
}

package genai

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// llmSpan is a current-convention chat span with cache and reasoning detail and some of the
// other attributes real spans carry.
func llmSpan(tb testing.TB) pcommon.Map {
	return attrMap(tb, map[string]any{
		"gen_ai.operation.name":                "chat",
		"gen_ai.provider.name":                 "openai",
		"gen_ai.request.model":                 "gpt-4.1-mini",
		"gen_ai.response.model":                "gpt-4.1-mini-2025-04-14",
		"gen_ai.response.id":                   "chatcmpl-AbC123",
		"gen_ai.request.max_tokens":            int64(1024),
		"gen_ai.request.temperature":           0.2,
		"gen_ai.usage.input_tokens":            int64(5200),
		"gen_ai.usage.output_tokens":           int64(900),
		"gen_ai.usage.cache_read.input_tokens": int64(4096),
		"gen_ai.usage.reasoning.output_tokens": int64(256),
		"openai.response.service_tier":         "default",
		"gen_ai.agent.name":                    "research-agent",
		"agentcost.run_id":                     "run-7f3a",
		"agentcost.action":                     "job.research.company",
		"server.address":                       "api.openai.com",
		"server.port":                          int64(443),
	})
}

// vercelSpan is an AI SDK v5 doGenerate span: ai.* keys, gen_ai.system as the Vercel provider id.
func vercelSpan(tb testing.TB) pcommon.Map {
	return attrMap(tb, map[string]any{
		"operation.name":             "ai.generateText.doGenerate summarise",
		"ai.operationId":             "ai.generateText.doGenerate",
		"ai.model.id":                "gpt-4o-mini",
		"ai.model.provider":          "openai.chat",
		"gen_ai.system":              "openai.chat",
		"ai.response.model":          "gpt-4o-mini-2024-07-18",
		"ai.usage.inputTokens":       int64(900),
		"ai.usage.outputTokens":      int64(150),
		"ai.usage.totalTokens":       int64(1050),
		"ai.usage.cachedInputTokens": int64(512),
		"ai.response.finishReason":   "stop",
		"ai.settings.maxRetries":     int64(2),
	})
}

// httpSpan is a non-LLM span.
func httpSpan(tb testing.TB) pcommon.Map {
	return attrMap(tb, map[string]any{
		"http.request.method":       "POST",
		"url.full":                  "https://internal.example.com/v1/orders",
		"http.response.status_code": int64(201),
		"server.address":            "internal.example.com",
		"server.port":               int64(443),
		"network.protocol.version":  "1.1",
		"user_agent.original":       "Go-http-client/1.1",
	})
}

func resource(tb testing.TB) Resource {
	return ReadResource(attrMap(tb, map[string]any{
		"service.name": "agents", "service.namespace": "growth", "service.version": "1.4.2",
		"telemetry.sdk.language": "go", "host.name": "node-3",
	}))
}

var sink Call

func BenchmarkExtractLLM(b *testing.B) {
	attrs, res := llmSpan(b), resource(b)
	b.ReportAllocs()
	for b.Loop() {
		sink = Extract(attrs, "chat gpt-4.1-mini", &res)
	}
}

func BenchmarkExtractVercel(b *testing.B) {
	attrs, res := vercelSpan(b), resource(b)
	b.ReportAllocs()
	for b.Loop() {
		sink = Extract(attrs, "ai.generateText.doGenerate", &res)
	}
}

func BenchmarkExtractNonLLM(b *testing.B) {
	attrs, res := httpSpan(b), resource(b)
	b.ReportAllocs()
	for b.Loop() {
		sink = Extract(attrs, "POST /v1/orders", &res)
	}
}

func BenchmarkReadResource(b *testing.B) {
	attrs := attrMap(b, map[string]any{
		"service.name": "agents", "service.namespace": "growth", "gen_ai.agent.name": "research-agent",
		"telemetry.sdk.language": "go", "host.name": "node-3",
	})
	b.ReportAllocs()
	for b.Loop() {
		r := ReadResource(attrs)
		sink.Agent = r.agent
	}
}

func BenchmarkNormalizeConvention(b *testing.B) {
	attrs, res := llmSpan(b), resource(b)
	c := Extract(attrs, "chat", &res)
	b.ReportAllocs()
	for b.Loop() {
		Normalize(attrs, &c)
	}
}

// BenchmarkNormalizeDialect measures the writes on a fresh copy of a Vercel span each time (the
// copy is outside the timer).
func BenchmarkNormalizeDialect(b *testing.B) {
	src, res := vercelSpan(b), resource(b)
	c := Extract(src, "ai.generateText.doGenerate", &res)
	attrs := pcommon.NewMap()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		src.CopyTo(attrs)
		b.StartTimer()
		Normalize(attrs, &c)
	}
}

package genai

import (
	"reflect"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/agentcost/agentcost/internal/pricing"
)

// fixture is one span as an instrumentation emits it, with what Extract and Normalize must make of it.
type fixture struct {
	name     string
	opts     Options
	spanName string
	attrs    map[string]any
	resource map[string]any
	want     Call // compared on its exported fields
	// written is what Normalize must add to the span (key → value); nil means nothing.
	written map[string]any
}

func attrMap(t testing.TB, raw map[string]any) pcommon.Map {
	t.Helper()
	m := pcommon.NewMap()
	if err := m.FromRaw(raw); err != nil {
		t.Fatalf("building attributes: %v", err)
	}
	return m
}

// exported returns c with its unexported bookkeeping cleared, for comparison.
func exported(c Call) Call {
	c.rank = [numFields]uint8{}
	c.fieldBad = [len(usageFields)]Malformed{}
	c.modelResponse = false
	c.scope, c.scopeKnown, c.total, c.hasTotal, c.outputAdded, c.inputRaw = nil, false, 0, false, 0, false
	return c
}

// added returns the attributes of after that before lacks.
func added(before, after pcommon.Map) map[string]any {
	out := map[string]any{}
	after.Range(func(k string, v pcommon.Value) bool {
		if _, ok := before.Get(k); !ok {
			out[k] = v.AsRaw()
		}
		return true
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

func runFixtures(t *testing.T, fixtures []fixture) {
	t.Helper()
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			ex, err := NewExtractor(fx.opts)
			if err != nil {
				t.Fatal(err)
			}
			attrs := attrMap(t, fx.attrs)
			res := ReadResource(attrMap(t, fx.resource))
			got := ex.Extract(attrs, fx.spanName, &res)
			if !reflect.DeepEqual(exported(got), fx.want) {
				t.Errorf("Extract:\n got  %+v\n want %+v", exported(got), fx.want)
			}

			before := pcommon.NewMap()
			attrs.CopyTo(before)
			Normalize(attrs, &got)
			if w := added(before, attrs); !reflect.DeepEqual(w, fx.written) {
				t.Errorf("Normalize wrote %v, want %v", w, fx.written)
			}
			for k, v := range before.All() {
				if now, _ := attrs.Get(k); !now.Equal(v) {
					t.Errorf("Normalize changed %s from %v to %v", k, v.AsRaw(), now.AsRaw())
				}
			}

			// A normalised span reads the same: the convention keys now agree with the dialect's.
			again := ex.Extract(attrs, fx.spanName, &res)
			if again.Model != got.Model || again.Provider != got.Provider || again.Usage != got.Usage && !got.Usage.InputExcludesCache {
				t.Errorf("re-extract after Normalize: got %+v, want model %q provider %q usage %+v",
					exported(again), got.Model, got.Provider, got.Usage)
			}
		})
	}
}

func TestExtractGenAICurrent(t *testing.T) {
	runFixtures(t, []fixture{
		{
			// OpenAI through the current GenAI conventions: cache and reasoning detail, flex tier.
			name:     "openai chat with cache and reasoning",
			spanName: "chat o4-mini",
			attrs: map[string]any{
				"gen_ai.operation.name":                "chat",
				"gen_ai.provider.name":                 "openai",
				"gen_ai.request.model":                 "o4-mini",
				"gen_ai.response.model":                "o4-mini-2025-04-16",
				"gen_ai.response.id":                   "chatcmpl-123",
				"gen_ai.response.finish_reasons":       []any{"stop"},
				"gen_ai.usage.input_tokens":            int64(5200),
				"gen_ai.usage.output_tokens":           int64(900),
				"gen_ai.usage.cache_read.input_tokens": int64(4096),
				"gen_ai.usage.reasoning.output_tokens": int64(640),
				"openai.response.service_tier":         "flex",
				"openai.request.service_tier":          "auto",
				"server.address":                       "api.openai.com",
			},
			resource: map[string]any{"service.name": "research-agent", "service.namespace": "growth"},
			want: Call{
				Model: "o4-mini-2025-04-16", ModelKey: "gen_ai.response.model", Provider: "openai",
				Usage: pricing.Usage{InputTokens: 5200, OutputTokens: 900, CacheReadTokens: 4096,
					ReasoningTokens: 640, Tier: pricing.TierFlex},
				HasUsage: true, Agent: "research-agent", Team: "growth", Action: "chat",
				Dialect: DialectGenAI,
			},
		},
		{
			// Anthropic through the current conventions: input includes the cache; the convention
			// names cache writes cache_creation, which counts as convention: no extra write.
			name:     "anthropic chat with cache creation",
			spanName: "chat claude-sonnet-4-5",
			attrs: map[string]any{
				"gen_ai.operation.name":                    "chat",
				"gen_ai.provider.name":                     "anthropic",
				"gen_ai.request.model":                     "claude-sonnet-4-5",
				"gen_ai.usage.input_tokens":                int64(12000),
				"gen_ai.usage.output_tokens":               int64(350),
				"gen_ai.usage.cache_read.input_tokens":     int64(8000),
				"gen_ai.usage.cache_creation.input_tokens": int64(3000),
				"gen_ai.agent.name":                        "drafting-agent",
			},
			resource: map[string]any{"service.name": "agents"},
			want: Call{
				Model: "claude-sonnet-4-5", ModelKey: "gen_ai.request.model", Provider: "anthropic",
				Usage:    pricing.Usage{InputTokens: 12000, OutputTokens: 350, CacheReadTokens: 8000, CacheWriteTokens: 3000},
				HasUsage: true, Agent: "drafting-agent", Action: "chat", Dialect: DialectGenAI,
			},
		},
		{
			// An agent invocation span carries no usage: attribution only, nothing to price.
			name:     "invoke_agent span",
			spanName: "invoke_agent research-agent",
			attrs: map[string]any{
				"gen_ai.operation.name": "invoke_agent",
				"gen_ai.agent.name":     "research-agent",
				"gen_ai.agent.id":       "asst_5j66",
				"agentcost.run_id":      "run-42",
				"agentcost.action":      "job.research.company",
				"agentcost.decision_id": "dec-7",
				"agentcost.tenant":      "acme",
				"agentcost.team":        "research",
			},
			resource: map[string]any{"service.name": "agents", "team": "platform"},
			want: Call{
				Agent: "research-agent", Team: "research", Tenant: "acme", RunID: "run-42",
				Action: "job.research.company", DecisionID: "dec-7", Dialect: DialectGenAI,
			},
		},
	})
}

func TestExtractGenAILegacy(t *testing.T) {
	runFixtures(t, []fixture{
		{
			// Semantic conventions up to 1.26: gen_ai.system and prompt/completion token names.
			name:     "openai",
			spanName: "chat gpt-4o-mini",
			attrs: map[string]any{
				"gen_ai.system":                       "openai",
				"gen_ai.operation.name":               "chat",
				"gen_ai.request.model":                "gpt-4o-mini",
				"gen_ai.response.model":               "gpt-4o-mini-2024-07-18",
				"gen_ai.usage.prompt_tokens":          int64(1500),
				"gen_ai.usage.completion_tokens":      int64(220),
				"gen_ai.openai.response.service_tier": "default",
			},
			resource: map[string]any{"service.name": "support-bot"},
			want: Call{
				Model: "gpt-4o-mini-2024-07-18", ModelKey: "gen_ai.response.model", Provider: "openai",
				Usage:    pricing.Usage{InputTokens: 1500, OutputTokens: 220, Tier: pricing.TierStandard},
				HasUsage: true, Agent: "support-bot", Action: "chat", Dialect: DialectGenAILegacy,
			},
			written: map[string]any{
				KeyProviderName: "openai", KeyInputTokens: int64(1500), KeyOutputTokens: int64(220),
			},
		},
		{
			// Azure AI Inference's gen_ai.system value is normalised to the current provider name.
			name:     "azure ai inference",
			spanName: "chat",
			attrs: map[string]any{
				"gen_ai.system":                  "az.ai.inference",
				"gen_ai.operation.name":          "chat",
				"gen_ai.request.model":           "Phi-4",
				"gen_ai.usage.prompt_tokens":     int64(40),
				"gen_ai.usage.completion_tokens": int64(12),
			},
			want: Call{
				Model: "Phi-4", ModelKey: "gen_ai.request.model", Provider: "azure.ai.inference",
				Usage:    pricing.Usage{InputTokens: 40, OutputTokens: 12},
				HasUsage: true, Action: "chat", Dialect: DialectGenAILegacy,
			},
			written: map[string]any{
				KeyProviderName: "azure.ai.inference", KeyInputTokens: int64(40), KeyOutputTokens: int64(12),
			},
		},
		{
			name:     "aws bedrock",
			spanName: "chat anthropic.claude-3-5-haiku-20241022-v1:0",
			attrs: map[string]any{
				"gen_ai.system":                  "aws.bedrock",
				"gen_ai.request.model":           "anthropic.claude-3-5-haiku-20241022-v1:0",
				"gen_ai.usage.input_tokens":      int64(300),
				"gen_ai.usage.output_tokens":     int64(80),
				"gen_ai.operation.name":          "chat",
				"gen_ai.request.max_tokens":      int64(512),
				"gen_ai.response.finish_reasons": []any{"end_turn"},
			},
			want: Call{
				Model: "anthropic.claude-3-5-haiku-20241022-v1:0", ModelKey: "gen_ai.request.model",
				Provider: "aws.bedrock", Usage: pricing.Usage{InputTokens: 300, OutputTokens: 80},
				HasUsage: true, Action: "chat", Dialect: DialectGenAILegacy,
			},
			written: map[string]any{KeyProviderName: "aws.bedrock"},
		},
		{
			name:     "vertex ai",
			spanName: "chat gemini-2.5-flash",
			attrs: map[string]any{
				"gen_ai.system":              "gcp.vertex_ai",
				"gen_ai.request.model":       "gemini-2.5-flash",
				"gen_ai.usage.input_tokens":  int64(2000),
				"gen_ai.usage.output_tokens": int64(100),
			},
			want: Call{
				Model: "gemini-2.5-flash", ModelKey: "gen_ai.request.model", Provider: "gcp.vertex_ai",
				Usage: pricing.Usage{InputTokens: 2000, OutputTokens: 100}, HasUsage: true,
				Dialect: DialectGenAILegacy,
			},
			written: map[string]any{KeyProviderName: "gcp.vertex_ai"},
		},
	})
}

func TestExtractOpenLLMetry(t *testing.T) {
	runFixtures(t, []fixture{
		{
			// opentelemetry-instrumentation-openai: span "openai.chat", gen_ai.system "OpenAI",
			// legacy token names, cached prompt tokens under the Anthropic-style name.
			name:     "openai chat",
			spanName: "openai.chat",
			attrs: map[string]any{
				"llm.request.type":                     "chat",
				"gen_ai.system":                        "OpenAI",
				"gen_ai.request.model":                 "gpt-4o",
				"gen_ai.response.model":                "gpt-4o-2024-08-06",
				"llm.is_streaming":                     false,
				"gen_ai.openai.api_base":               "https://api.openai.com/v1/",
				"gen_ai.usage.prompt_tokens":           int64(2100),
				"gen_ai.usage.completion_tokens":       int64(180),
				"llm.usage.total_tokens":               int64(2280),
				"gen_ai.usage.cache_read_input_tokens": int64(1024),
				"traceloop.workflow.name":              "lead-enrichment",
			},
			resource: map[string]any{"service.name": "enrichment-agent"},
			want: Call{
				Model: "gpt-4o-2024-08-06", ModelKey: "gen_ai.response.model", Provider: "openai",
				Usage:    pricing.Usage{InputTokens: 2100, OutputTokens: 180, CacheReadTokens: 1024},
				HasUsage: true, Agent: "enrichment-agent", Dialect: DialectOpenLLMetry,
			},
			written: map[string]any{
				KeyProviderName: "openai", KeyInputTokens: int64(2100), KeyOutputTokens: int64(180),
				KeyCacheReadTokens: int64(1024),
			},
		},
		{
			// opentelemetry-instrumentation-anthropic sums input + cache read + cache creation into
			// prompt_tokens, so the convention's semantics hold with the default options.
			name:     "anthropic chat",
			spanName: "anthropic.chat",
			attrs: map[string]any{
				"llm.request.type":                         "chat",
				"gen_ai.system":                            "Anthropic",
				"gen_ai.request.model":                     "claude-3-7-sonnet-latest",
				"gen_ai.response.model":                    "claude-3-7-sonnet-20250219",
				"gen_ai.usage.prompt_tokens":               int64(15 + 9000 + 1200),
				"gen_ai.usage.completion_tokens":           int64(410),
				"gen_ai.usage.cache_read_input_tokens":     int64(9000),
				"gen_ai.usage.cache_creation_input_tokens": int64(1200),
				"llm.usage.total_tokens":                   int64(15 + 9000 + 1200 + 410),
			},
			want: Call{
				Model: "claude-3-7-sonnet-20250219", ModelKey: "gen_ai.response.model", Provider: "anthropic",
				Usage: pricing.Usage{InputTokens: 10215, OutputTokens: 410, CacheReadTokens: 9000,
					CacheWriteTokens: 1200},
				HasUsage: true, Dialect: DialectOpenLLMetry,
			},
			written: map[string]any{
				KeyProviderName: "anthropic", KeyInputTokens: int64(10215), KeyOutputTokens: int64(410),
				KeyCacheReadTokens: int64(9000), KeyCacheWriteTokens: int64(1200),
			},
		},
		{
			// Early OpenLLMetry releases used llm.* names throughout.
			name:     "early llm.* names",
			spanName: "openai.chat",
			attrs: map[string]any{
				"llm.request.type":            "chat",
				"llm.vendor":                  "OpenAI",
				"llm.request.model":           "gpt-3.5-turbo",
				"llm.response.model":          "gpt-3.5-turbo-0125",
				"llm.usage.prompt_tokens":     int64(90),
				"llm.usage.completion_tokens": int64(30),
				"llm.usage.total_tokens":      int64(120),
			},
			want: Call{
				Model: "gpt-3.5-turbo-0125", ModelKey: "llm.response.model",
				Usage: pricing.Usage{InputTokens: 90, OutputTokens: 30}, HasUsage: true,
				Dialect: DialectOpenLLMetry,
			},
			written: map[string]any{
				KeyResponseModel: "gpt-3.5-turbo-0125", KeyInputTokens: int64(90), KeyOutputTokens: int64(30),
			},
		},
	})
}

func TestExtractOpenInference(t *testing.T) {
	runFixtures(t, []fixture{
		{
			// openinference-instrumentation-openai: span "ChatCompletion", llm.* names.
			name:     "openai chat completion",
			spanName: "ChatCompletion",
			attrs: map[string]any{
				"openinference.span.kind":                      "LLM",
				"llm.system":                                   "openai",
				"llm.provider":                                 "openai",
				"llm.model_name":                               "gpt-5-mini-2025-08-07",
				"llm.invocation_parameters":                    `{"model": "gpt-5-mini"}`,
				"llm.token_count.prompt":                       int64(3000),
				"llm.token_count.completion":                   int64(1500),
				"llm.token_count.total":                        int64(4500),
				"llm.token_count.prompt_details.cache_read":    int64(2048),
				"llm.token_count.completion_details.reasoning": int64(1024),
				"input.mime_type":                              "application/json",
			},
			resource: map[string]any{"service.name": "phoenix-app", "gen_ai.agent.name": "triage"},
			want: Call{
				Model: "gpt-5-mini-2025-08-07", ModelKey: "llm.model_name", Provider: "openai",
				Usage: pricing.Usage{InputTokens: 3000, OutputTokens: 1500, CacheReadTokens: 2048,
					ReasoningTokens: 1024},
				HasUsage: true, Agent: "triage", Dialect: DialectOpenInference,
			},
			written: map[string]any{
				KeyRequestModel: "gpt-5-mini-2025-08-07", KeyProviderName: "openai",
				KeyInputTokens: int64(3000), KeyOutputTokens: int64(1500),
				KeyCacheReadTokens: int64(2048), KeyReasoningTokens: int64(1024),
			},
		},
		{
			// The dialect/provider option: with "openinference/anthropic" the prompt count is read
			// as excluding the cache, and the written input is the convention's (with cache).
			name:     "anthropic messages, input excludes cache",
			opts:     Options{InputExcludesCache: []string{"openinference/anthropic"}},
			spanName: "Messages",
			attrs: map[string]any{
				"openinference.span.kind":                    "LLM",
				"llm.provider":                               "anthropic",
				"llm.system":                                 "anthropic",
				"llm.model_name":                             "claude-opus-4-1-20250805",
				"llm.token_count.prompt":                     int64(20),
				"llm.token_count.completion":                 int64(700),
				"llm.token_count.prompt_details.cache_read":  int64(30000),
				"llm.token_count.prompt_details.cache_write": int64(5000),
			},
			want: Call{
				Model: "claude-opus-4-1-20250805", ModelKey: "llm.model_name", Provider: "anthropic",
				Usage: pricing.Usage{InputTokens: 20, OutputTokens: 700, CacheReadTokens: 30000,
					CacheWriteTokens: 5000, InputExcludesCache: true},
				HasUsage: true, Dialect: DialectOpenInference,
			},
			written: map[string]any{
				KeyRequestModel: "claude-opus-4-1-20250805", KeyProviderName: "anthropic",
				KeyInputTokens: int64(20 + 30000 + 5000), KeyOutputTokens: int64(700),
				KeyCacheReadTokens: int64(30000), KeyCacheWriteTokens: int64(5000),
			},
		},
	})
}

func TestExtractVercel(t *testing.T) {
	runFixtures(t, []fixture{
		{
			// AI SDK v4: the ai.generateText parent repeats its doGenerate children's usage.
			name:     "v4 generateText parent is an aggregate",
			spanName: "ai.generateText",
			attrs: map[string]any{
				"operation.name":            "ai.generateText summarise",
				"ai.operationId":            "ai.generateText",
				"resource.name":             "summarise",
				"ai.telemetry.functionId":   "summarise",
				"ai.model.id":               "gpt-4o-mini",
				"ai.model.provider":         "openai.chat",
				"ai.settings.maxRetries":    int64(2),
				"ai.response.finishReason":  "stop",
				"ai.usage.promptTokens":     int64(900),
				"ai.usage.completionTokens": int64(150),
			},
			want: Call{
				Model: "gpt-4o-mini", ModelKey: "ai.model.id", Provider: "openai",
				Usage: pricing.Usage{InputTokens: 900, OutputTokens: 150}, HasUsage: true,
				Dialect: DialectVercel, Aggregate: true,
			},
		},
		{
			// AI SDK v4 doGenerate: ai.* and gen_ai.* side by side; gen_ai.system is the Vercel
			// provider id.
			name:     "v4 doGenerate",
			spanName: "ai.generateText.doGenerate",
			attrs: map[string]any{
				"operation.name":             "ai.generateText.doGenerate summarise",
				"ai.operationId":             "ai.generateText.doGenerate",
				"ai.model.id":                "gpt-4o-mini",
				"ai.model.provider":          "openai.chat",
				"gen_ai.system":              "openai.chat",
				"gen_ai.request.model":       "gpt-4o-mini",
				"ai.response.model":          "gpt-4o-mini-2024-07-18",
				"gen_ai.response.model":      "gpt-4o-mini-2024-07-18",
				"ai.response.id":             "chatcmpl-abc",
				"ai.usage.promptTokens":      int64(900),
				"ai.usage.completionTokens":  int64(150),
				"gen_ai.usage.input_tokens":  int64(900),
				"gen_ai.usage.output_tokens": int64(150),
			},
			want: Call{
				Model: "gpt-4o-mini-2024-07-18", ModelKey: "gen_ai.response.model", Provider: "openai",
				Usage: pricing.Usage{InputTokens: 900, OutputTokens: 150}, HasUsage: true,
				Dialect: DialectVercel,
			},
			written: map[string]any{KeyProviderName: "openai"},
		},
		{
			// AI SDK v5 streamText: the parent is an aggregate too.
			name:     "v5 streamText parent",
			spanName: "ai.streamText",
			attrs: map[string]any{
				"ai.operationId":             "ai.streamText",
				"ai.model.id":                "claude-sonnet-4-5",
				"ai.model.provider":          "anthropic.messages",
				"ai.usage.inputTokens":       int64(40),
				"ai.usage.outputTokens":      int64(600),
				"ai.usage.totalTokens":       int64(640),
				"ai.usage.reasoningTokens":   int64(200),
				"ai.usage.cachedInputTokens": int64(12000),
			},
			opts: Options{InputExcludesCache: []string{"vercel/anthropic"}},
			want: Call{
				Model: "claude-sonnet-4-5", ModelKey: "ai.model.id", Provider: "anthropic",
				Usage: pricing.Usage{InputTokens: 40, OutputTokens: 600, ReasoningTokens: 200,
					CacheReadTokens: 12000, InputExcludesCache: true},
				HasUsage: true, Dialect: DialectVercel, Aggregate: true,
			},
		},
		{
			// AI SDK v5 doStream with Anthropic, whose input count excludes the cache: the option
			// flags it, and the v5 ai.usage detail is normalised.
			name:     "v5 doStream anthropic",
			spanName: "ai.streamText.doStream",
			opts:     Options{InputExcludesCache: []string{"vercel/anthropic"}},
			attrs: map[string]any{
				"ai.operationId":             "ai.streamText.doStream",
				"ai.model.id":                "claude-sonnet-4-5",
				"ai.model.provider":          "anthropic.messages",
				"gen_ai.system":              "anthropic.messages",
				"gen_ai.request.model":       "claude-sonnet-4-5",
				"ai.response.model":          "claude-sonnet-4-5-20250929",
				"gen_ai.response.model":      "claude-sonnet-4-5-20250929",
				"ai.response.msToFirstChunk": 412.5,
				"ai.usage.inputTokens":       int64(40),
				"ai.usage.outputTokens":      int64(600),
				"ai.usage.totalTokens":       int64(640),
				"ai.usage.reasoningTokens":   int64(200),
				"ai.usage.cachedInputTokens": int64(12000),
				"gen_ai.usage.input_tokens":  int64(40),
				"gen_ai.usage.output_tokens": int64(600),
			},
			resource: map[string]any{"service.name": "web", "gen_ai.agent.id": "chat-agent"},
			want: Call{
				Model: "claude-sonnet-4-5-20250929", ModelKey: "gen_ai.response.model", Provider: "anthropic",
				Usage: pricing.Usage{InputTokens: 40, OutputTokens: 600, ReasoningTokens: 200,
					CacheReadTokens: 12000, InputExcludesCache: true},
				HasUsage: true, Agent: "chat-agent", Dialect: DialectVercel,
			},
			written: map[string]any{
				KeyProviderName: "anthropic", KeyCacheReadTokens: int64(12000), KeyReasoningTokens: int64(200),
			},
		},
		{
			// AI SDK v6 breaks input down; inputTokens there includes the cache.
			name:     "v6 generateObject doGenerate with input detail",
			spanName: "ai.generateObject.doGenerate",
			attrs: map[string]any{
				"ai.operationId":                              "ai.generateObject.doGenerate",
				"ai.model.id":                                 "gemini-2.5-pro",
				"ai.model.provider":                           "google.vertex.chat",
				"ai.usage.inputTokens":                        int64(9500),
				"ai.usage.inputTokenDetails.noCacheTokens":    int64(1000),
				"ai.usage.inputTokenDetails.cacheReadTokens":  int64(8000),
				"ai.usage.inputTokenDetails.cacheWriteTokens": int64(500),
				"ai.usage.cachedInputTokens":                  int64(8000),
				"ai.usage.outputTokens":                       int64(300),
				"ai.usage.outputTokenDetails.reasoningTokens": int64(100),
			},
			want: Call{
				Model: "gemini-2.5-pro", ModelKey: "ai.model.id", Provider: "gcp.vertex_ai",
				Usage: pricing.Usage{InputTokens: 9500, OutputTokens: 300, CacheReadTokens: 8000,
					CacheWriteTokens: 500, ReasoningTokens: 100},
				HasUsage: true, Dialect: DialectVercel,
			},
			written: map[string]any{
				KeyRequestModel: "gemini-2.5-pro", KeyProviderName: "gcp.vertex_ai",
				KeyInputTokens: int64(9500), KeyOutputTokens: int64(300), KeyCacheReadTokens: int64(8000),
				KeyCacheWriteTokens: int64(500), KeyReasoningTokens: int64(100),
			},
		},
	})
}

func TestExtractOpenLIT(t *testing.T) {
	runFixtures(t, []fixture{
		{
			// OpenLIT: gen_ai.system, current token names, its own cost estimate.
			name:     "openai chat",
			spanName: "chat gpt-4o",
			attrs: map[string]any{
				"telemetry.sdk.name":             "openlit",
				"gen_ai.system":                  "openai",
				"gen_ai.operation.name":          "chat",
				"gen_ai.request.model":           "gpt-4o",
				"gen_ai.response.model":          "gpt-4o-2024-08-06",
				"gen_ai.usage.input_tokens":      int64(1000),
				"gen_ai.usage.output_tokens":     int64(200),
				"gen_ai.usage.total_tokens":      int64(1200),
				"gen_ai.usage.cost":              0.0045,
				"gen_ai.environment":             "production",
				"gen_ai.application_name":        "crm-agent",
				"gen_ai.request.temperature":     0.2,
				"gen_ai.response.finish_reasons": []any{"stop"},
			},
			resource: map[string]any{"service.name": "crm-agent", "telemetry.sdk.name": "openlit"},
			want: Call{
				Model: "gpt-4o-2024-08-06", ModelKey: "gen_ai.response.model", Provider: "openai",
				Usage: pricing.Usage{InputTokens: 1000, OutputTokens: 200}, HasUsage: true,
				ReportedCostUSD: 0.0045, HasReportedCost: true, Agent: "crm-agent", Action: "chat",
				Dialect: DialectOpenLIT,
			},
			written: map[string]any{KeyProviderName: "openai"},
		},
		{
			// OpenLIT's Azure OpenAI system name; the resource alone marks the dialect.
			name:     "azure openai via resource marker",
			spanName: "chat gpt-4.1",
			attrs: map[string]any{
				"gen_ai.system":              "azure_openai",
				"gen_ai.request.model":       "gpt-4.1",
				"gen_ai.usage.input_tokens":  int64(10),
				"gen_ai.usage.output_tokens": int64(5),
			},
			resource: map[string]any{"telemetry.sdk.name": "openlit"},
			want: Call{
				Model: "gpt-4.1", ModelKey: "gen_ai.request.model", Provider: "azure.ai.openai",
				Usage: pricing.Usage{InputTokens: 10, OutputTokens: 5}, HasUsage: true,
				Dialect: DialectOpenLIT,
			},
			written: map[string]any{KeyProviderName: "azure.ai.openai"},
		},
	})
}

func TestReportedCost(t *testing.T) {
	c := Extract(attrMap(t, map[string]any{"gen_ai.usage.cost": 0.0045}), "", nil)
	n, ok := c.ReportedCost()
	if !ok || n != 4_500_000 {
		t.Errorf("ReportedCost() = %v, %v; want 4500000 nano-dollars ($0.0045)", n, ok)
	}
	for _, bad := range []any{-1.0, "0.1", true} {
		c := Extract(attrMap(t, map[string]any{"gen_ai.usage.cost": bad}), "", nil)
		if _, ok := c.ReportedCost(); ok || c.HasReportedCost {
			t.Errorf("gen_ai.usage.cost %v: kept as a reported cost", bad)
		}
	}
}

func TestFirstKeyWins(t *testing.T) {
	tests := []struct {
		name  string
		attrs map[string]any
		check func(Call) bool
		want  string
	}{
		{
			name:  "response model before request model",
			attrs: map[string]any{"gen_ai.request.model": "a", "gen_ai.response.model": "b", "llm.model_name": "c"},
			check: func(c Call) bool { return c.Model == "b" },
			want:  "model b",
		},
		{
			name:  "empty model is skipped for the next key",
			attrs: map[string]any{"gen_ai.response.model": "", "gen_ai.request.model": int64(4), "ai.model.id": "m"},
			check: func(c Call) bool { return c.Model == "m" && c.ModelKey == "ai.model.id" },
			want:  "model m from ai.model.id",
		},
		{
			name:  "provider.name before system",
			attrs: map[string]any{"gen_ai.system": "openai", "gen_ai.provider.name": "azure.ai.openai"},
			check: func(c Call) bool { return c.Provider == "azure.ai.openai" },
			want:  "provider azure.ai.openai",
		},
		{
			name:  "input_tokens before prompt_tokens, even when later in the span",
			attrs: map[string]any{"gen_ai.usage.prompt_tokens": int64(7), "ai.usage.promptTokens": int64(8), "gen_ai.usage.input_tokens": int64(9)},
			check: func(c Call) bool { return c.Usage.InputTokens == 9 },
			want:  "input 9",
		},
		{
			name:  "response service tier before request",
			attrs: map[string]any{"openai.request.service_tier": "flex", "openai.response.service_tier": "priority"},
			check: func(c Call) bool { return c.Usage.Tier == pricing.TierPriority },
			want:  "priority tier",
		},
		{
			name:  "agentcost.action before gen_ai.operation.name",
			attrs: map[string]any{"gen_ai.operation.name": "chat", "agentcost.action": "job.x"},
			check: func(c Call) bool { return c.Action == "job.x" },
			want:  "action job.x",
		},
		{
			name:  "gen_ai.agent.name before gen_ai.agent.id",
			attrs: map[string]any{"gen_ai.agent.id": "id-1", "gen_ai.agent.name": "name-1"},
			check: func(c Call) bool { return c.Agent == "name-1" },
			want:  "agent name-1",
		},
		{
			name:  "integral double token counts are accepted",
			attrs: map[string]any{"gen_ai.usage.input_tokens": 120.0, "gen_ai.usage.output_tokens": 3.0, "gen_ai.request.model": "m"},
			check: func(c Call) bool { return c.Usage.InputTokens == 120 && c.Usage.OutputTokens == 3 && c.Malformed == 0 },
			want:  "input 120, output 3, not malformed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := Extract(attrMap(t, tt.attrs), "", nil); !tt.check(c) {
				t.Errorf("got %+v, want %s", exported(c), tt.want)
			}
		})
	}
}

func TestAttribution(t *testing.T) {
	tests := []struct {
		name                       string
		span, resource             map[string]any
		agent, team, tenant, runID string
	}{
		{
			name:     "resource agent name before id before service.name",
			resource: map[string]any{"service.name": "svc", "gen_ai.agent.id": "aid", "gen_ai.agent.name": "aname"},
			agent:    "aname",
		},
		{
			name:     "resource agent id before service.name",
			resource: map[string]any{"service.name": "svc", "gen_ai.agent.id": "aid"},
			agent:    "aid",
		},
		{
			name:     "span agent id before resource agent name",
			span:     map[string]any{"gen_ai.agent.id": "span-id"},
			resource: map[string]any{"gen_ai.agent.name": "res-name"},
			agent:    "span-id",
		},
		{
			name:     "team: span agentcost.team first",
			span:     map[string]any{"agentcost.team": "t-span"},
			resource: map[string]any{"agentcost.team": "t-res", "team": "t", "service.namespace": "ns"},
			team:     "t-span",
		},
		{
			name:     "team: resource agentcost.team, team, then service.namespace",
			resource: map[string]any{"team": "t", "service.namespace": "ns", "agentcost.team": "t-res"},
			team:     "t-res",
		},
		{
			name:     "team: resource team before service.namespace",
			resource: map[string]any{"service.namespace": "ns", "team": "t"},
			team:     "t",
		},
		{
			name:     "team: service.namespace last",
			resource: map[string]any{"service.namespace": "ns"},
			team:     "ns",
		},
		{
			name:     "tenant: agentcost.tenant on the resource before tenant.id on the span",
			span:     map[string]any{"tenant.id": "span-tid"},
			resource: map[string]any{"agentcost.tenant": "res-tenant", "tenant.id": "res-tid"},
			tenant:   "res-tenant",
		},
		{
			name:     "tenant: span tenant.id before resource tenant.id",
			span:     map[string]any{"tenant.id": "span-tid"},
			resource: map[string]any{"tenant.id": "res-tid"},
			tenant:   "span-tid",
		},
		{
			name:     "tenant: resource tenant.id last",
			resource: map[string]any{"tenant.id": "res-tid"},
			tenant:   "res-tid",
		},
		{
			name:     "run id from the span (guard baggage), else the resource",
			span:     map[string]any{"agentcost.run_id": "r-span"},
			resource: map[string]any{"agentcost.run_id": "r-res"},
			runID:    "r-span",
		},
		{
			name:     "non-string values are no names",
			span:     map[string]any{"gen_ai.agent.name": int64(3), "agentcost.team": ""},
			resource: map[string]any{"service.name": "svc", "team": true},
			agent:    "svc",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := ReadResource(attrMap(t, tt.resource))
			c := Extract(attrMap(t, tt.span), "span", &res)
			if c.Agent != tt.agent || c.Team != tt.team || c.Tenant != tt.tenant || c.RunID != tt.runID {
				t.Errorf("agent %q team %q tenant %q run %q; want %q %q %q %q",
					c.Agent, c.Team, c.Tenant, c.RunID, tt.agent, tt.team, tt.tenant, tt.runID)
			}
		})
	}
	if c := Extract(attrMap(t, map[string]any{"gen_ai.agent.name": "a"}), "", nil); c.Agent != "a" {
		t.Errorf("nil resource: agent %q, want a", c.Agent)
	}
}

func TestAggregates(t *testing.T) {
	usage := map[string]any{"ai.model.id": "m", "ai.usage.inputTokens": int64(1)}
	withOp := func(op string) map[string]any {
		m := map[string]any{"ai.operationId": op}
		for k, v := range usage {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name     string
		opts     Options
		spanName string
		attrs    map[string]any
		want     bool
	}{
		{"generateText by operation id", Options{}, "ai.generateText my-fn", withOp("ai.generateText"), true},
		{"streamText", Options{}, "ai.streamText", withOp("ai.streamText"), true},
		{"generateObject", Options{}, "ai.generateObject", withOp("ai.generateObject"), true},
		{"streamObject", Options{}, "ai.streamObject", withOp("ai.streamObject"), true},
		{"doGenerate is the call itself", Options{}, "ai.generateText.doGenerate", withOp("ai.generateText.doGenerate"), false},
		{"doStream is the call itself", Options{}, "ai.streamText.doStream", withOp("ai.streamText.doStream"), false},
		{"span name when there is no operation id", Options{}, "ai.generateText", usage, true},
		{"operation id wins over the span name", Options{}, "ai.generateText", withOp("ai.generateText.doGenerate"), false},
		{"custom list", Options{AggregateOperations: []string{"agent.run"}}, "agent.run", usage, true},
		{"custom list replaces the default", Options{AggregateOperations: []string{"agent.run"}}, "x", withOp("ai.generateText"), false},
		{"empty list disables", Options{AggregateOperations: []string{}}, "ai.generateText", withOp("ai.generateText"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex, err := NewExtractor(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := ex.Extract(attrMap(t, tt.attrs), tt.spanName, nil).Aggregate; got != tt.want {
				t.Errorf("Aggregate = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAlreadyPriced(t *testing.T) {
	span := map[string]any{"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": int64(10)}
	if Extract(attrMap(t, span), "", nil).AlreadyPriced {
		t.Error("an unpriced span reads as AlreadyPriced")
	}
	span[KeyCostUSD] = 0.00025
	if !Extract(attrMap(t, span), "", nil).AlreadyPriced {
		t.Error("a span with agentcost.cost_usd does not read as AlreadyPriced")
	}
}

func TestNonLLMSpan(t *testing.T) {
	c := Extract(attrMap(t, map[string]any{
		"http.request.method": "GET", "url.full": "https://example.com", "http.response.status_code": int64(200),
	}), "GET /", nil)
	if c.IsLLM() || c.Dialect != DialectNone || c.Malformed != 0 || c.Aggregate || c.AlreadyPriced {
		t.Errorf("HTTP span read as %+v", exported(c))
	}
}

func TestNormalizeProvider(t *testing.T) {
	tests := map[string]string{
		"openai":               "openai",
		"OpenAI":               "openai",
		"openai.chat":          "openai",
		"openai.responses":     "openai",
		"anthropic.messages":   "anthropic",
		"Anthropic":            "anthropic",
		"az.ai.inference":      "azure.ai.inference",
		"az.ai.openai":         "azure.ai.openai",
		"azure_openai":         "azure.ai.openai",
		"aws.bedrock":          "aws.bedrock",
		"amazon-bedrock":       "aws.bedrock",
		"AWS":                  "aws.bedrock",
		"gcp.vertex_ai":        "gcp.vertex_ai",
		"vertex_ai":            "gcp.vertex_ai",
		"google.vertex.chat":   "gcp.vertex_ai",
		"google.generative-ai": "gcp.gemini",
		"mistral.chat":         "mistral_ai",
		"mistralai":            "mistral_ai",
		"xai.chat":             "x_ai",
		"openrouter.chat":      "openrouter",
		"foo.chat.chat":        "foo.chat.chat",
		"Together":             "Together",
		"":                     "",
	}
	for in, want := range tests {
		got := NormalizeProvider(in)
		if got != want {
			t.Errorf("NormalizeProvider(%q) = %q, want %q", in, got, want)
		}
		if again := NormalizeProvider(got); again != got {
			t.Errorf("NormalizeProvider not idempotent on %q: %q then %q", in, got, again)
		}
	}
}

func TestNewExtractorErrors(t *testing.T) {
	tests := []struct {
		opts Options
		want string
	}{
		{Options{InputExcludesCache: []string{"vercell/anthropic"}}, `input_excludes_cache: entry "vercell/anthropic": unknown dialect "vercell"`},
		{Options{InputExcludesCache: []string{"*"}}, `input_excludes_cache: entry "*": "*" needs a provider`},
		{Options{InputExcludesCache: []string{"vercel/a/b"}}, `input_excludes_cache: entry "vercel/a/b": want "dialect" or "dialect/provider"`},
		{Options{InputExcludesCache: []string{"none"}}, `unknown dialect "none"`},
		{Options{AggregateOperations: []string{""}}, "aggregate_operations: empty operation name"},
	}
	for _, tt := range tests {
		_, err := NewExtractor(tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewExtractor(%+v) error = %v, want it to contain %q", tt.opts, err, tt.want)
		}
	}
}

func TestCacheRules(t *testing.T) {
	span := func(provider string) map[string]any {
		return map[string]any{"ai.model.id": "m", "ai.model.provider": provider, "ai.usage.inputTokens": int64(5)}
	}
	tests := []struct {
		rule     string
		provider string
		want     bool
	}{
		{"vercel", "openai.chat", true},
		{"vercel/anthropic", "anthropic.messages", true},
		{"vercel/anthropic", "openai.chat", false},
		{"*/Anthropic", "anthropic.messages", true},
		{"openinference/anthropic", "anthropic.messages", false},
	}
	for _, tt := range tests {
		ex, err := NewExtractor(Options{InputExcludesCache: []string{tt.rule}})
		if err != nil {
			t.Fatal(err)
		}
		if got := ex.Extract(attrMap(t, span(tt.provider)), "", nil).Usage.InputExcludesCache; got != tt.want {
			t.Errorf("rule %q, provider %q: InputExcludesCache = %v, want %v", tt.rule, tt.provider, got, tt.want)
		}
	}
}

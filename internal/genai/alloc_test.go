//go:build !race

package genai

import "testing"

// The processor calls Extract for every span and Normalize for every priced one: reading must not
// allocate, and a span already in the convention must get no write.
func TestZeroAllocations(t *testing.T) {
	llm, vercel, http, res := llmSpan(t), vercelSpan(t), httpSpan(t), resource(t)
	ex, err := NewExtractor(Options{InputExcludesCache: []string{"vercel/anthropic", "*/bedrock"}})
	if err != nil {
		t.Fatal(err)
	}
	convention := ex.Extract(llm, "chat", &res)
	resAttrs := attrMap(t, map[string]any{"service.name": "agents", "gen_ai.agent.name": "a", "team": "t"})
	tests := []struct {
		name string
		fn   func()
	}{
		{"extract LLM span", func() { sink = ex.Extract(llm, "chat gpt-4.1-mini", &res) }},
		{"extract Vercel span", func() { sink = ex.Extract(vercel, "ai.generateText.doGenerate", &res) }},
		{"extract non-LLM span", func() { sink = ex.Extract(http, "POST /v1/orders", &res) }},
		{"read resource", func() { r := ReadResource(resAttrs); sink.Agent = r.agent }},
		{"normalize convention span", func() { Normalize(llm, &convention) }},
		{"normalize provider", func() { sink.Provider = NormalizeProvider("Google.Vertex.chat") }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tt.name, n)
		}
	}
	if got := llm.Len(); got != llmSpan(t).Len() {
		t.Errorf("Normalize wrote onto a convention span: %d attributes, want %d", got, llmSpan(t).Len())
	}
}

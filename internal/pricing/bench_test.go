package pricing

import (
	"runtime"
	"testing"
)

func BenchmarkLookupHit(b *testing.B) {
	table := mustBuild(b, fullLayer(b), embeddedLayer(b))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := table.Lookup("gpt-5.4-mini", "openai"); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkLookupResolved is a name that needs the matching rules, served from the cache.
func BenchmarkLookupResolved(b *testing.B) {
	table := mustBuild(b, fullLayer(b), embeddedLayer(b))
	const model = "bedrock/converse/us.anthropic.claude-haiku-4-5-20251001-v1:0"
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := table.Lookup(model, "aws.bedrock"); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkLookupMiss(b *testing.B) {
	table := mustBuild(b, embeddedLayer(b))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := table.Lookup("in-house-model-7b", "vllm"); ok {
			b.Fatal("hit")
		}
	}
}

func BenchmarkLookupParallel(b *testing.B) {
	table := mustBuild(b, embeddedLayer(b))
	names := []string{"gpt-5.4-mini", "gpt-5.4-mini-2026-09-30", "us.anthropic.claude-opus-4-5-20251101-v1:0", "nope"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			table.Lookup(names[i%len(names)], "")
			i++
		}
	})
}

func BenchmarkCost(b *testing.B) {
	e, ok := mustBuild(b, embeddedLayer(b)).Lookup("claude-sonnet-4-5", "anthropic")
	if !ok {
		b.Fatal("miss")
	}
	u := Usage{InputTokens: 150_000, CacheReadTokens: 60_000, CacheWriteTokens: 2_000, OutputTokens: 900,
		ReasoningTokens: 100, InputExcludesCache: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Cost(u); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadDefault(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseLiteLLM(defaultJSON, "default", DefaultSource); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadFull(b *testing.B) {
	data := fullJSON(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseLiteLLM(data, "full", "full"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDefaultTableStartup is the start-up cost of the embedded upstream map: parse and
// build, as the processor does once; retained-MB is the heap the built table keeps.
func BenchmarkDefaultTableStartup(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(defaultJSON)))
	for b.Loop() {
		l, err := ParseLiteLLM(defaultJSON, "default", DefaultSource)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Build(l); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l, err := ParseLiteLLM(defaultJSON, "default", DefaultSource)
	if err != nil {
		b.Fatal(err)
	}
	t, err := Build(l)
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "retained-MB")
	runtime.KeepAlive(t)
}

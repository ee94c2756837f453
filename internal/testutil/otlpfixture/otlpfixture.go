// Package otlpfixture loads the recorded OTLP/JSON span trees kept in the repository's top-level
// testdata/otlp (see testdata/README.md for the instrumentation and version behind each), shared by
// the processor, exporter and end-to-end tests.
package otlpfixture

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Dir is the absolute path of testdata/otlp.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "otlp")
}

// Names lists the fixtures (file names without .json), sorted.
func Names(t testing.TB) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(Dir(), "*.json"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no fixtures in %s: %v", Dir(), err)
	}
	out := make([]string, len(m))
	for i, p := range m {
		out[i] = filepath.Base(p[:len(p)-len(".json")])
	}
	return out
}

// Raw returns a fixture's OTLP/JSON bytes (an ExportTraceServiceRequest).
func Raw(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(), name+".json"))
	if err != nil {
		t.Fatalf("reading fixture %s: %v", name, err)
	}
	return b
}

// Load returns a fixture as traces.
func Load(t testing.TB, name string) ptrace.Traces {
	t.Helper()
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(Raw(t, name))
	if err != nil {
		t.Fatalf("decoding fixture %s: %v", name, err)
	}
	return td
}

// SplitBySpan returns one batch per span of td, each with the span's resource and scope, in the
// order td holds them (the recorder writes spans in the order they ended): what an SDK's exporter
// sends when each span ends in another export.
func SplitBySpan(td ptrace.Traces) []ptrace.Traces {
	var out []ptrace.Traces
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				one := ptrace.NewTraces()
				nrs := one.ResourceSpans().AppendEmpty()
				rs.Resource().CopyTo(nrs.Resource())
				nss := nrs.ScopeSpans().AppendEmpty()
				ss.Scope().CopyTo(nss.Scope())
				ss.Spans().At(k).CopyTo(nss.Spans().AppendEmpty())
				out = append(out, one)
			}
		}
	}
	return out
}

// Reversed returns batches in the opposite order.
func Reversed(batches []ptrace.Traces) []ptrace.Traces {
	out := make([]ptrace.Traces, len(batches))
	for i, b := range batches {
		out[len(batches)-1-i] = b
	}
	return out
}

// WithTraceID sets every span of td (and every span id, xor-ed with seed, parents included) anew,
// so that one recorded tree can be sent as many distinct calls.
func WithTraceID(td ptrace.Traces, trace pcommon.TraceID, seed byte) ptrace.Traces {
	out := ptrace.NewTraces()
	td.CopyTo(out)
	remap := func(id pcommon.SpanID) pcommon.SpanID {
		if id.IsEmpty() {
			return id
		}
		id[0] ^= seed
		return id
	}
	rss := out.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				s := spans.At(k)
				s.SetTraceID(trace)
				s.SetSpanID(remap(s.SpanID()))
				s.SetParentSpanID(remap(s.ParentSpanID()))
			}
		}
	}
	return out
}

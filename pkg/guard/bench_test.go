package guard

import (
	"context"
	"log/slog"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// BenchmarkSpanStartWithBaggage measures a span start in a guarded action's context with the
// baggage processor registered, the per-span cost the processor adds to an agent.
func BenchmarkSpanStartWithBaggage(b *testing.B) {
	for _, tc := range []struct {
		name  string
		procs []sdktrace.TracerProviderOption
	}{
		{"without", nil},
		{"with", []sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(NewBaggageSpanProcessor())}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(append(tc.procs, sdktrace.WithSpanProcessor(noopProcessor{}))...)
			d := &Decision{RunID: "run-7", Action: "job.research.company"}
			d.DecisionID = "dec-0123456789"
			ctx := withBaggage(context.Background(), d, slog.New(slog.DiscardHandler))
			tr := tp.Tracer("bench")
			b.ReportAllocs()
			for b.Loop() {
				_, s := tr.Start(ctx, "llm.call")
				s.End()
			}
		})
	}
}

// noopProcessor makes the provider record spans without exporting them.
type noopProcessor struct{}

func (noopProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (noopProcessor) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (noopProcessor) Shutdown(context.Context) error                  { return nil }
func (noopProcessor) ForceFlush(context.Context) error                { return nil }

package agentcostprocessor

import (
	"context"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/agentcost/agentcost/processor/agentcostprocessor/internal/metadata"
)

type storageHost struct {
	component.Host
	ext map[component.ID]component.Component
}

func (h storageHost) GetExtensions() map[component.ID]component.Component { return h.ext }

// TestBaselinesSurviveRestart: with baseline.storage set to a real file_storage extension, a
// processor that restarts keeps its warm baselines and flags a 3x call at once.
func TestBaselinesSurviveRestart(t *testing.T) {
	ctx := context.Background()
	fsf := filestorage.NewFactory()
	fsCfg := fsf.CreateDefaultConfig().(*filestorage.Config)
	fsCfg.Directory = t.TempDir()
	storageID := component.MustNewID("file_storage")

	cfg := createDefaultConfig().(*Config)
	cfg.Baseline.Storage = &storageID

	run := func(outTokens ...int64) []ptrace.Span {
		ext, err := fsf.Create(ctx, extensiontest.NewNopSettings(fsf.Type()), fsCfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := ext.Start(ctx, componenttest.NewNopHost()); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = ext.Shutdown(ctx) }()
		host := storageHost{Host: componenttest.NewNopHost(), ext: map[component.ID]component.Component{storageID: ext}}
		sink := new(consumertest.TracesSink)
		p, err := NewFactory().CreateTraces(ctx, processortest.NewNopSettings(metadata.Type), cfg, sink)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx, host); err != nil {
			t.Fatal(err)
		}
		var out []ptrace.Span
		for _, n := range outTokens {
			td := buildTraces(t, spanSpec{name: "chat", resource: map[string]any{"service.name": "research-agent"},
				attrs: map[string]any{"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
					"gen_ai.usage.input_tokens": int64(0), "gen_ai.usage.output_tokens": n}})
			if err := p.ConsumeTraces(ctx, td); err != nil {
				t.Fatal(err)
			}
			out = append(out, spansOf(td)...)
		}
		if err := p.Shutdown(ctx); err != nil { // saves the baselines
			t.Fatal(err)
		}
		return out
	}
	warm := make([]int64, 10)
	for i := range warm {
		warm[i] = 2_000 // $0.02 per call
	}
	run(warm...)
	spans := run(6_000) // 3x, first call after the restart
	if v, ok := spans[0].Attributes().Get("agentcost.anomaly"); !ok || !v.Bool() {
		t.Fatalf("3x call after a restart not flagged: baselines were not restored (%v)", spans[0].Attributes().AsRaw())
	}
}

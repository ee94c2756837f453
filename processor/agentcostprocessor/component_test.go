package agentcostprocessor

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/agentcost/agentcost/internal/testutil/componentdoc"
	"github.com/agentcost/agentcost/processor/agentcostprocessor/internal/metadata"
)

// TestComponentContextPropagation is the check mdatagen v0.165 adds to a processor's generated
// lifecycle test and v0.159 (the generator this project can fetch) does not: the next consumer
// gets the very context the processor was given, so client metadata (the agentauth identity) and
// deadlines reach the exporters.
func TestComponentContextPropagation(t *testing.T) {
	type key struct{}
	var got context.Context
	next, err := consumer.NewTraces(func(ctx context.Context, _ ptrace.Traces) error {
		got = ctx
		return nil
	})
	require.NoError(t, err)
	p, err := NewFactory().CreateTraces(context.Background(), processortest.NewNopSettings(metadata.Type), createDefaultConfig(), next)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	ctx := context.WithValue(context.Background(), key{}, "test-value")
	require.NoError(t, p.ConsumeTraces(ctx, generateLifecycleTestTraces()))
	require.Same(t, ctx, got)
	require.Equal(t, "test-value", got.Value(key{}))
	require.NoError(t, p.Shutdown(context.Background()))
}

// TestREADMEMatchesMetadata: the README's status table and telemetry table say what
// metadata.yaml (and so the generated code and documentation.md) says.
func TestREADMEMatchesMetadata(t *testing.T) {
	componentdoc.Check(t, ".")
}

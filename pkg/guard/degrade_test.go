package guard

import (
	"context"
	"testing"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// TestRunDegradedModel: the action names its model; when the server degrades it, the guarded
// function sees the cheaper model through Decision.Model, else its own.
func TestRunDegradedModel(t *testing.T) {
	f := newFakeAPI(t, allowWith(decisionapi.Constraints{Model: "gpt-4o-mini"}),
		decisionapi.DecisionResponse{Decision: decisionapi.DecisionAllow})
	c, _ := newTestClient(t, f)
	a := researchAction
	a.Model = "gpt-4o"
	var models []string
	var degraded []bool
	for range 2 {
		if err := c.Run(context.Background(), a, func(_ context.Context, d *Decision) error {
			models = append(models, d.Model())
			degraded = append(degraded, d.Degraded())
			return nil
		}); err != nil {
			t.Fatalf("Run = %v", err)
		}
	}
	if models[0] != "gpt-4o-mini" || !degraded[0] || models[1] != "gpt-4o" || degraded[1] {
		t.Fatalf("models %q degraded %v, want the cheaper model first, then the asked one", models, degraded)
	}
	decisions, _, _, _ := f.snapshot()
	for i, d := range decisions {
		if d.Model != "gpt-4o" {
			t.Fatalf("request %d sent model %q, want gpt-4o", i, d.Model)
		}
	}
}

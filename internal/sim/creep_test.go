package sim

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentcost/agentcost/internal/money"
)

func creepOptions(t *testing.T, spans *tracetest.InMemoryExporter) CreepOptions {
	return CreepOptions{Agent: "research-agent", Team: "growth", Topic: "job.research.deep-dive", Warmup: 3, Steps: 15,
		Growth: 0.10, InputTokens: 2000, OutputTokens: 500, RunPrefix: "creep-test", Fleet: testFleet(t, nil, spans)}
}

func TestCreepUngovernedRunsThePlan(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	o := creepOptions(t, spans)
	r, err := RunCreep(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	c := r.Creep
	// Step k reads 2000 × 1.1^k input tokens: 3x the ordinary $0.0375 call first at step 14
	// (2000 × 1.1^14 = 7,595 input + 500 output = 8,095 tokens, $0.121425).
	if c.ThreeXStep != 14 || c.StoppedStep != 0 || c.FlaggedStep != 0 {
		t.Fatalf("creep report %+v; want 3x at step 14, never stopped, not read", c)
	}
	var planned money.Nanos
	for k := 1; k <= o.Steps; k++ {
		in := int64(float64(2000)*pow(1.1, k) + 0.5)
		planned += callCost(in, 500)
	}
	if got := money.Nanos(c.LoopPlannedUSD*1e9 + 0.5); got != planned || c.LoopSpentUSD != c.LoopPlannedUSD {
		t.Fatalf("loop planned %v spent %v; want %s both", c.LoopPlannedUSD, c.LoopSpentUSD, planned)
	}
	if n := len(llmSpans(spans.GetSpans())); n != o.Warmup+o.Steps {
		t.Fatalf("%d LLM spans; want one per call (%d)", n, o.Warmup+o.Steps)
	}
	var text strings.Builder
	if err := r.WriteText(&text); err != nil || !strings.Contains(text.String(), "loop stopped  never: every step ran") {
		t.Fatalf("report text lacks the loop lines (%v):\n%s", err, text.String())
	}
}

func pow(x float64, k int) float64 {
	out := 1.0
	for range k {
		out *= x
	}
	return out
}

func TestCreepOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		edit func(*CreepOptions)
		want string
	}{
		{func(o *CreepOptions) { o.Steps = 0 }, "steps"},
		{func(o *CreepOptions) { o.Growth = 0 }, "growth"},
		{func(o *CreepOptions) { o.Warmup = -1 }, "warmup"},
		{func(o *CreepOptions) { o.Steps, o.Growth = 500, 1 }, "input tokens"},
		{func(o *CreepOptions) { o.Agent = "" }, "agent"},
	} {
		o := creepOptions(t, tracetest.NewInMemoryExporter())
		tc.edit(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v; want an error naming %q", err, tc.want)
		}
	}
}

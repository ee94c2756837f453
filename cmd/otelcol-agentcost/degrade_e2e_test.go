package main

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"

	"github.com/agentcost/agentcost/pkg/decisionapi"
	"github.com/agentcost/agentcost/pkg/guard"
)

// degradePolicy: research-agent may spend $0.50 a month; from 80% of it (its estimate included),
// gpt-4o calls are degraded to gpt-4o-mini.
const degradePolicy = `version: v1
policy_version: degrade-e2e
budgets:
  agents: {research-agent: {limit_usd: 0.5, window: month}}
degrade:
  - when: {scope: agent, at: 0.8}
    models: {"gpt-4o*": gpt-4o-mini}
`

// TestEndToEndDegrade runs degrade through one whole collector: the guard client names gpt-4o,
// the receiver swaps it for gpt-4o-mini once the agent's budget is at 80%, the agent calls the
// model Decision.Model returns, the processor prices that call with the same embedded table and
// the span settles the re-estimated reservation. Where the same fleet without degrade is denied
// after its fifth $0.10 call, here every one of twenty actions runs and the budget still holds.
//
// With 20,000 input and 5,000 output tokens a call costs $0.10 on gpt-4o ($2.50 + $10 per 1M)
// and $0.006 on gpt-4o-mini ($0.15 + $0.60 per 1M); the $0.10 estimate re-prices to $0.006 too
// (the ratio of input + output prices, 0.75 / 12.5).
func TestEndToEndDegrade(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole collector")
	}
	dir := t.TempDir()
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(degradePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	fc := startFullCollector(t, fullOptions{policy: policyPath, publish: 50 * time.Millisecond, settle: 50 * time.Millisecond,
		tokens: []accessToken{{e2eResearchToken, "agent", "research-agent"}}})
	ctx := context.Background()
	research := newAgent(t, ctx, fc.otlp, "research-agent")
	c, err := guard.New("http://"+fc.api, guard.WithAgent("research-agent"), guard.WithToken(e2eResearchToken),
		guard.WithTracerProvider(research.tp), guard.WithPropagator(propagation.TraceContext{}))
	if err != nil {
		t.Fatal(err)
	}
	var models []string
	for i := range 20 {
		var d *guard.Decision
		err := c.Run(ctx, guard.Action{Name: "job.research", EstimatedCostUSD: 0.1, Model: "gpt-4o"}, func(ctx context.Context, dec *guard.Decision) error {
			d = dec
			callModel(research, ctx, dec.Model())
			return nil
		})
		if err != nil {
			t.Fatalf("action %d: %v (models so far %q)", i, err, models)
		}
		models = append(models, d.Model())
		s, ok := d.Settlement()
		want := 0.1
		if d.Degraded() {
			want = 0.006
		}
		if !ok || s.Source != decisionapi.SourceSpans || math.Abs(s.ActualCostUSD-want) > 1e-9 || s.FreedUSD != 0 {
			t.Fatalf("action %d (%s) settled %+v, want its one $%v span and nothing freed", i, d.Model(), s, want)
		}
	}
	// $0 + 0.10, $0.10 + 0.10 and $0.20 + 0.10 are below $0.40; from $0.30 + $0.10 on, degraded.
	for i, m := range models {
		want := "gpt-4o-mini"
		if i < 3 {
			want = "gpt-4o"
		}
		if m != want {
			t.Fatalf("action %d ran %s, want %s (all: %q)", i, m, want, models)
		}
	}
	spent := regexp.MustCompile(`agentcost_budget_spent_usd\{id="research-agent",scope="agent",window="month"\} ([0-9.e+-]+)`)
	want := 0.3 + 17*0.006
	if v := waitScrape(t, fc.metrics, spent, func(v float64) bool { return math.Abs(v-want) < 1e-9 }); math.Abs(v-want) > 1e-9 {
		t.Fatalf("research-agent spent $%v, want $%v: three gpt-4o calls and seventeen gpt-4o-mini ones", v, want)
	}
}

// callModel records one call of model with 20,000 input and 5,000 output tokens.
func callModel(a *agent, ctx context.Context, model string) {
	_, span := a.tp.Tracer("e2e").Start(ctx, "chat "+model)
	span.SetAttributes(
		attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.provider.name", "openai"),
		attribute.String("gen_ai.request.model", model),
		attribute.Int("gen_ai.usage.input_tokens", 20_000),
		attribute.Int("gen_ai.usage.output_tokens", 5_000),
	)
	span.End()
}

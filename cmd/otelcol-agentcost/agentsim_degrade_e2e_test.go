package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/pricing"
	"github.com/agentcost/agentcost/internal/sim"
)

// simDegrade is appended to agentsim's policy: from 70% of the fleet's day (its throttle_at is
// 80%), sim-llm calls are degraded to sim-llm-mini, a tenth of the price.
const simDegrade = `
degrade:
  - when: {scope: fleet, at: 0.7}
    models: {"sim-llm*": sim-llm-mini}
`

// TestAgentsimRunawayDegrade runs agentsim's runaway twice against fresh whole collectors with
// the same policy (the shipped one, a $400 fleet day, plus a degrade entry): once with agents that
// name no model, so degrade never applies, and once with --degrade-to sim-llm-mini. With degrade
// more of the planned work runs, on the cheaper model past 70% of the fleet's day, and the report
// says what those actions cost and would have cost; in both runs the collector settled and booked
// exactly what agentsim says ran.
func TestAgentsimRunawayDegrade(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two whole collectors")
	}
	shipped, err := os.ReadFile("../agentsim/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	policyText := strings.Replace(string(shipped), "fleet: {limit_usd: 1500,", "fleet: {limit_usd: 400,", 1) + simDegrade
	prices, err := filepath.Abs("../agentsim/sim-prices.yaml")
	if err != nil {
		t.Fatal(err)
	}
	layer, err := pricing.LoadFile(prices)
	if err != nil {
		t.Fatal(err)
	}
	table, err := pricing.Build(layer)
	if err != nil {
		t.Fatal(err)
	}
	mini, err := sim.NewPricer(table, "sim-llm-mini", "sim")
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, degradeTo *sim.Pricer) *sim.Report {
		t.Helper()
		dir := t.TempDir()
		policyPath := filepath.Join(dir, "policy.yaml")
		if err := os.WriteFile(policyPath, []byte(policyText), 0o600); err != nil {
			t.Fatal(err)
		}
		tokens := map[string]string{
			"research-agent":   "agentsim-research-token",
			"enrichment-agent": "agentsim-enrichment-token",
			"drafting-agent":   "agentsim-drafting-token",
		}
		const reviewerToken = "agentsim-reviewer-token"
		fc := startFullCollector(t, fullOptions{policy: policyPath, prices: prices, settle: 100 * time.Millisecond,
			budgetExtra: fmt.Sprintf("    prices: {files: [%q]}\n", prices),
			tokens: []accessToken{
				{tokens["research-agent"], "agent", "research-agent"},
				{tokens["enrichment-agent"], "agent", "enrichment-agent"},
				{tokens["drafting-agent"], "agent", "drafting-agent"},
				{reviewerToken, "reviewer", "reviewer@example.com"},
			}})
		exp, err := sim.NewOTLPExporter(context.Background(), fc.otlp)
		if err != nil {
			t.Fatal(err)
		}
		plan := sim.DefaultRunawayConfig()
		plan.Batches, plan.RunPrefix = 3, "e2e"
		metricsURL := "http://" + fc.metrics + "/metrics"
		r, err := sim.RunRunaway(context.Background(), sim.RunawayOptions{
			Plan: plan, Speed: 7200, MetricsURL: metricsURL, ReviewerToken: reviewerToken,
			Fleet: sim.FleetConfig{DecisionURL: "http://" + fc.api, AgentTokens: tokens, Pricer: simPricer(t, prices),
				DegradeTo: degradeTo, Exporter: exp, FlushPerAction: true, PollInterval: 20 * time.Millisecond,
				ApprovalWait: 20 * time.Second, ThrottleWait: 20 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		if r.Errors != 0 || r.SpansFailed != 0 {
			t.Fatalf("degrade to %v: errors %d %q, spans failed %d", degradeTo != nil, r.Errors, r.ErrorSamples, r.SpansFailed)
		}
		if s := r.Settled; s == nil || s.Actions != r.Ran.Actions || s.BySource["spans"] != r.Ran.Actions || s.Cost != r.Ran.Cost {
			t.Fatalf("settled %+v; want all %d actions that ran settled on spans at %s", r.Settled, r.Ran.Actions, r.Ran.Cost)
		}
		if spent := spendOnMetricsNear(t, metricsURL, r.Ran.Cost); spent-r.Ran.Cost > 1000 || r.Ran.Cost-spent > 1000 {
			t.Fatalf("agentcost_spend_usd_total sums to %s, agentsim ran %s", spent, r.Ran.Cost)
		}
		return r
	}

	// One collector per subtest: each is shut down before the next starts.
	var without, with *sim.Report
	t.Run("without", func(t *testing.T) { without = run(t, nil) })
	t.Run("with", func(t *testing.T) { with = run(t, mini) })
	if without == nil || with == nil {
		t.FailNow()
	}
	if without.Degrade != nil {
		t.Fatalf("a fleet naming no model has a degrade report: %+v", without.Degrade)
	}
	d := with.Degrade
	if d == nil || d.Actions == 0 || d.Model != "sim-llm-mini" {
		t.Fatalf("degrade report %+v; want actions run on sim-llm-mini", d)
	}
	// sim-llm-mini is exactly a tenth of sim-llm per token.
	if d.AskedCost != 10*d.Cost {
		t.Errorf("degraded actions cost %s, on sim-llm %s: want exactly ten times", d.Cost, d.AskedCost)
	}
	if with.Ran.Actions <= without.Ran.Actions {
		t.Errorf("with degrade %d actions ran, without %d: want more", with.Ran.Actions, without.Ran.Actions)
	}
	var text bytes.Buffer
	if err := with.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), fmt.Sprintf("%d actions ran on sim-llm-mini", d.Actions)) {
		t.Errorf("the text report lacks the degrade line:\n%s", text.String())
	}
	t.Logf("without degrade: %d of %d actions ran for %s; with: %d ran for %s, %d of them on sim-llm-mini for %s (%s on sim-llm)",
		without.Ran.Actions, without.Plan.Actions, without.Ran.Cost, with.Ran.Actions, with.Ran.Cost, d.Actions, d.Cost, d.AskedCost)
}

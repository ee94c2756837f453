package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/sim"
)

// TestAgentsimCreep runs agentsim's creep scenario against the whole collector with agentsim's
// policy: 30 ordinary calls, then a loop whose every call reads 10% more context than the last.
// The per-call baseline must flag the loop within three calls of its cost reaching 3x an ordinary
// call (an EWMA baseline never did), and the policy's throttle-anomalous rule must stop the next
// step, so the governed loop spends a fraction of the ungoverned plan.
func TestAgentsimCreep(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulated agent against the collector")
	}
	policy, err := filepath.Abs("../agentsim/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	prices, err := filepath.Abs("../agentsim/sim-prices.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fc := startFullCollector(t, fullOptions{policy: policy, prices: prices, settle: 100 * time.Millisecond})
	var ran money.Nanos
	for _, tc := range []struct {
		agent    string
		growth   float64
		steps    int
		maxShare float64
	}{
		// +10% a call: flagged by the 3x rule (or escalation just before it).
		{"research-agent", 0.10, 40, 0.25},
		// +3% a call: too slow to reach 3x for 38 steps; escalation stops it long before.
		{"enrichment-agent", 0.03, 60, 0.6},
	} {
		exp, err := sim.NewOTLPExporter(context.Background(), fc.otlp) // the run closes it
		if err != nil {
			t.Fatal(err)
		}
		r, err := sim.RunCreep(context.Background(), sim.CreepOptions{
			Agent: tc.agent, Team: "growth", Topic: "job.research.deep-dive", Warmup: 30, Steps: tc.steps, Growth: tc.growth,
			InputTokens: 2000, OutputTokens: 500, RunPrefix: "creep-e2e-" + tc.agent, MetricsURL: "http://" + fc.metrics + "/metrics",
			Fleet: sim.FleetConfig{DecisionURL: "http://" + fc.api, Pricer: simPricer(t, prices), Exporter: exp,
				FlushPerAction: true, ThrottleWait: 20 * time.Millisecond, ThrottleRetries: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		ran += r.Ran.Cost
		c := r.Creep
		t.Logf("%s +%.0f%%: 3x at step %d; flagged at step %d (%s, $%.4f); stopped at step %d by %s ($%.4f); loop $%.4f of $%.4f planned",
			tc.agent, 100*tc.growth, c.ThreeXStep, c.FlaggedStep, c.FlaggedLevel, c.FlaggedSpentUSD, c.StoppedStep, c.StoppedRule,
			c.StoppedSpentUSD, c.LoopSpentUSD, c.LoopPlannedUSD)
		if r.Errors != 0 || r.SpansFailed != 0 {
			t.Fatalf("errors %d %q, spans failed %d", r.Errors, r.ErrorSamples, r.SpansFailed)
		}
		if c.FlaggedStep == 0 || c.FlaggedStep > c.ThreeXStep+3 {
			t.Errorf("%s: flagged at step %d; want within 3 steps of reaching 3x at step %d", tc.agent, c.FlaggedStep, c.ThreeXStep)
		}
		if tc.growth < 0.05 && (c.FlaggedLevel != "escalation" || c.FlaggedStep >= c.ThreeXStep) {
			t.Errorf("%s: flagged at step %d (%s); want escalation before 3x at step %d", tc.agent, c.FlaggedStep, c.FlaggedLevel, c.ThreeXStep)
		}
		if c.StoppedStep != c.FlaggedStep+1 || c.StoppedRule != "throttle-anomalous" {
			t.Errorf("%s: stopped at step %d by %q; want the step after the flag (%d) stopped by throttle-anomalous",
				tc.agent, c.StoppedStep, c.StoppedRule, c.FlaggedStep+1)
		}
		// A step that comes after anomaly_within (3 s) runs again and is flagged again: on a slow
		// machine some may, so the bound is on the loop's spend, not on every later step.
		if c.LoopSpentUSD >= c.LoopPlannedUSD*tc.maxShare {
			t.Errorf("%s: the governed loop spent $%.4f of $%.4f planned; want under %.0f%%", tc.agent, c.LoopSpentUSD, c.LoopPlannedUSD, 100*tc.maxShare)
		}
	}
	if spent := spendOnMetricsNear(t, "http://"+fc.metrics+"/metrics", ran); spent-ran > 1000 || ran-spent > 1000 {
		t.Errorf("agentcost_spend_usd_total sums to %s, agentsim ran %s", spent, ran)
	}
}

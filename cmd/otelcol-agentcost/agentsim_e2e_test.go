package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/sim"
)

// TestAgentsimRunaway runs agentsim's runaway scenario against the whole collector: agentsim's
// sim-prices.yaml in the agentcost processor, its policy.yaml in the budget receiver (with the
// fleet budget scaled to a three-batch run), access tokens per agent and a reviewer token for
// the auto-reviewer. Every action that ran must be settled on its own spans, the collector must
// have booked exactly what agentsim says ran, and each of the policy's layers must have acted.
func TestAgentsimRunaway(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulated fleet for a few seconds")
	}
	shipped, err := os.ReadFile("../agentsim/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// $400: throttle from $320, pause from $380 of the three batches' $675 (plus the loop).
	policy := strings.Replace(string(shipped), "fleet: {limit_usd: 1500,", "fleet: {limit_usd: 400,", 1)
	if policy == string(shipped) {
		t.Fatal("policy.yaml's fleet budget line changed; update this test")
	}
	dir := t.TempDir()
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	prices, err := filepath.Abs("../agentsim/sim-prices.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{
		"research-agent":   "agentsim-research-token",
		"enrichment-agent": "agentsim-enrichment-token",
		"drafting-agent":   "agentsim-drafting-token",
	}
	const reviewerToken = "agentsim-reviewer-token"
	fc := startFullCollector(t, fullOptions{policy: policyPath, prices: prices, settle: 100 * time.Millisecond, tokens: []accessToken{
		{tokens["research-agent"], "agent", "research-agent"},
		{tokens["enrichment-agent"], "agent", "enrichment-agent"},
		{tokens["drafting-agent"], "agent", "drafting-agent"},
		{reviewerToken, "reviewer", "reviewer@example.com"},
	}})
	grpcEndpoint, apiEndpoint, promEndpoint := fc.otlp, fc.api, fc.metrics

	pricer := simPricer(t, prices)
	exp, err := sim.NewOTLPExporter(context.Background(), grpcEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	plan := sim.DefaultRunawayConfig()
	plan.Batches, plan.RunPrefix = 3, "e2e"
	const speed = 7200 // a batch (2h24m) in 1.2 s
	metricsURL := "http://" + promEndpoint + "/metrics"
	r, err := sim.RunRunaway(context.Background(), sim.RunawayOptions{
		Plan: plan, Speed: speed, MetricsURL: metricsURL, ReviewerToken: reviewerToken,
		Fleet: sim.FleetConfig{DecisionURL: "http://" + apiEndpoint, AgentTokens: tokens, Pricer: pricer, Exporter: exp,
			FlushPerAction: true, PollInterval: 20 * time.Millisecond, ApprovalWait: 20 * time.Second,
			ThrottleWait: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 0 || r.SpansFailed != 0 {
		t.Fatalf("errors %d %q, spans failed %d", r.Errors, r.ErrorSamples, r.SpansFailed)
	}

	// Every action that ran was settled by the collector on its own spans, at its usage's price.
	if s := r.Settled; s == nil || s.Actions != r.Ran.Actions || s.BySource["spans"] != r.Ran.Actions || s.Cost != r.Ran.Cost {
		t.Errorf("settled %+v; want all %d actions that ran settled on spans at %s", r.Settled, r.Ran.Actions, r.Ran.Cost)
	}
	// The collector booked what ran (the counter is a float sum: within a micro-dollar).
	if spent := spendOnMetricsNear(t, metricsURL, r.Ran.Cost); spent-r.Ran.Cost > 1000 || r.Ran.Cost-spent > 1000 {
		t.Errorf("agentcost_spend_usd_total sums to %s, agentsim ran %s", spent, r.Ran.Cost)
	}
	if r.DeniedByRule["deny-unbounded-loop"] != plan.Loop.Repeats-plan.Loop.DeclareAfter {
		t.Errorf("denied %v; want the %d declared loop repeats denied by deny-unbounded-loop", r.DeniedByRule, plan.Loop.Repeats-plan.Loop.DeclareAfter)
	}
	if a := r.Approvals; a.Requested == 0 || a.ApprovedByReviewer != a.Requested || a.RanAfterApproval != a.Requested {
		t.Errorf("approvals %+v; want every batch-generate that asked approved by the auto-reviewer and run", a)
	}
	if r.Anomalies.ActionAgents["research-agent"] == 0 || r.Anomalies.CallLevel == nil || *r.Anomalies.CallLevel == 0 {
		t.Errorf("anomalies %+v; want the loop's first repeat flagged per action and per call", r.Anomalies)
	}
	if r.ThrottledByRule["throttle-anomalous"] == 0 {
		t.Errorf("throttled %v; want research-agent throttled while anomalous", r.ThrottledByRule)
	}
	th, pa := r.Fleet.ThrottleBeganSimSeconds, r.Fleet.PauseBeganSimSeconds
	if th == nil || pa == nil || *th > *pa || r.DeniedByRule["budget.fleet"] == 0 {
		t.Errorf("fleet throttle %v, pause %v, denied %v; want throttle, then pause denying by budget.fleet", th, pa, r.DeniedByRule)
	}
	// Once paused nothing but approved actions start: the fleet stops within the actions in
	// flight — at most one per agent, each at most its largest allowable estimate — of the pause
	// level.
	full, err := plan.Runaway(pricer)
	if err != nil {
		t.Fatal(err)
	}
	largest := map[string]money.Nanos{}
	for _, a := range full.Actions {
		if a.Repeat <= plan.Loop.DeclareAfter {
			largest[a.Agent] = max(largest[a.Agent], a.Cost)
		}
	}
	limit := money.Nanos(380 * money.NanosPerUSD)
	for _, c := range largest {
		limit += c
	}
	if r.Ran.Cost > limit {
		t.Errorf("governed fleet ran %s, past the pause level plus the actions in flight (%s)", r.Ran.Cost, limit)
	}
	if r.Ran.Cost >= r.Plan.Cost {
		t.Errorf("governed %s is not below the ungoverned plan's %s", r.Ran.Cost, r.Plan.Cost)
	}
	t.Logf("plan %s, governed %s; throttle at %.0fs, pause at %.0fs simulated; %d denied, %d throttled; decision p50 %.2f ms p99 %.2f ms",
		r.Plan.Cost, r.Ran.Cost, *th, *pa, r.Outcomes[sim.StatusDenied], r.Outcomes[sim.StatusThrottled],
		r.DecisionLatency.P50Ms, r.DecisionLatency.P99Ms)
}

// spendOnMetricsNear sums agentcost_spend_usd_total until it is within 1000 nano-dollars of want
// or 5 s have passed (the budget receiver publishes the ledger's totals every publish_interval),
// and returns the last sum.
func spendOnMetricsNear(t *testing.T, url string, want money.Nanos) money.Nanos {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		spent := spendOnMetrics(t, url)
		if (spent-want <= 1000 && want-spent <= 1000) || time.Now().After(deadline) {
			return spent
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// spendOnMetrics sums agentcost_spend_usd_total, in exact nano-dollars per series.
func spendOnMetrics(t *testing.T, url string) money.Nanos {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum money.Nanos
	for _, m := range families["agentcost_spend_usd_total"].GetMetric() {
		n, err := money.FromUSD(m.GetCounter().GetValue())
		if err != nil {
			t.Fatal(err)
		}
		sum += n
	}
	return sum
}

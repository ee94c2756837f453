package budgetreceiver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agentcost/agentcost/internal/costmetrics"
	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/internal/testutil/promtest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// TestMetricsThroughPrometheusExporter feeds a publication, with the ledger's totals of a booked
// call anomaly, into the contrib prometheus exporter as the shipped configs set it up:
// agentcost_anomalies_total is one family with the ledger's level (call) and the receiver's
// (action, run), the names are kept as agentcost names them, and every family gathers without a
// help or type conflict.
func TestMetricsThroughPrometheusExporter(t *testing.T) {
	s := newStats(time.Now().Add(-time.Minute), decide.FailClosed.String())
	s.decided(policy.Deny, policy.RuleAgentBudget)
	s.decided(policy.Allow, "")
	s.decided(policy.Allow, "")
	s.decisionDuration(3 * time.Millisecond)
	s.decisionDuration(700 * time.Millisecond)
	s.actionAnomaly("research-agent")
	s.runAnomaly("research-agent")
	budgets := decisionapi.BudgetsResponse{
		Fleet: decisionapi.FleetStatus{Level: 1, Name: decisionapi.LevelThrottle},
		Scopes: []decisionapi.ScopeBudget{
			{Scope: "fleet", BudgetStatus: decisionapi.BudgetStatus{Window: "day", SpentUSD: 1500, ReservedUSD: 100, LimitUSD: 2000, Utilization: 0.8, ForecastUSD: 1800}},
			{Scope: "agent", BudgetStatus: decisionapi.BudgetStatus{ID: "research-agent", Window: "hour", SpentUSD: 4, LimitUSD: 50, Utilization: 0.08, ForecastUSD: 6}},
		},
	}
	now := time.Now()
	md := s.metrics(now, budgets, true)
	totals := ledger.Totals{Since: now.Add(-time.Hour), Totals: []ledger.Total{
		{Family: ledger.TotalAnomalies, Labels: []string{"research-agent", "call"}, Value: 1},
		{Family: ledger.TotalSpend, Labels: []string{"research-agent", "", "gpt-4o", "openai"}, Value: 1_250_000_001},
	}}
	costmetrics.NewPublisher(100).Append(md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics(), totals, now)
	exp, url := promtest.Exporter(t)
	if err := exp.ConsumeMetrics(context.Background(), md); err != nil {
		t.Fatal(err)
	}
	m := promtest.Gatherer(promtest.Scrape(t, url))

	want := `
# HELP agentcost_anomalies_total ` + costmetrics.HelpAnomalies + `
# TYPE agentcost_anomalies_total counter
agentcost_anomalies_total{agent="research-agent",level="action"} 1
agentcost_anomalies_total{agent="research-agent",level="call"} 1
agentcost_anomalies_total{agent="research-agent",level="run"} 1
# HELP agentcost_budget_spent_usd ` + costmetrics.HelpBudgetSpent + `
# TYPE agentcost_budget_spent_usd gauge
agentcost_budget_spent_usd{id="fleet",scope="fleet",window="day"} 1600
agentcost_budget_spent_usd{id="research-agent",scope="agent",window="hour"} 4
# HELP agentcost_decisions_total ` + costmetrics.HelpDecisions + `
# TYPE agentcost_decisions_total counter
agentcost_decisions_total{decision="allow",rule="default_decision"} 2
agentcost_decisions_total{decision="deny",rule="budget.agent"} 1
# HELP agentcost_fleet_level ` + costmetrics.HelpFleetLevel + `
# TYPE agentcost_fleet_level gauge
agentcost_fleet_level 1
# HELP agentcost_ledger_unavailable_total ` + HelpLedgerUnavailable + `
# TYPE agentcost_ledger_unavailable_total counter
agentcost_ledger_unavailable_total{fail_mode="fail_closed"} 0
agentcost_ledger_unavailable_total{fail_mode="fail_open"} 0
# HELP agentcost_spend_usd_total ` + costmetrics.HelpSpend + `
# TYPE agentcost_spend_usd_total counter
agentcost_spend_usd_total{agent="research-agent",model="gpt-4o",provider="openai",team=""} 1.250000001
`
	names := []string{"agentcost_anomalies_total", "agentcost_budget_spent_usd", "agentcost_decisions_total", "agentcost_fleet_level", NameLedgerUnavailable, costmetrics.NameSpend}
	if err := testutil.GatherAndCompare(m, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	// The latency histogram: 3ms falls in the 0.005 bucket, 700ms in the 1 bucket (cumulative).
	hist := `
# HELP agentcost_decision_duration_seconds ` + costmetrics.HelpDecisionDur + `
# TYPE agentcost_decision_duration_seconds histogram
agentcost_decision_duration_seconds_bucket{le="0.0005"} 0
agentcost_decision_duration_seconds_bucket{le="0.001"} 0
agentcost_decision_duration_seconds_bucket{le="0.0025"} 0
agentcost_decision_duration_seconds_bucket{le="0.005"} 1
agentcost_decision_duration_seconds_bucket{le="0.01"} 1
agentcost_decision_duration_seconds_bucket{le="0.025"} 1
agentcost_decision_duration_seconds_bucket{le="0.05"} 1
agentcost_decision_duration_seconds_bucket{le="0.1"} 1
agentcost_decision_duration_seconds_bucket{le="0.25"} 1
agentcost_decision_duration_seconds_bucket{le="0.5"} 1
agentcost_decision_duration_seconds_bucket{le="1"} 2
agentcost_decision_duration_seconds_bucket{le="2.5"} 2
agentcost_decision_duration_seconds_bucket{le="5"} 2
agentcost_decision_duration_seconds_bucket{le="+Inf"} 2
agentcost_decision_duration_seconds_sum 0.703
agentcost_decision_duration_seconds_count 2
`
	if err := testutil.GatherAndCompare(m, strings.NewReader(hist), "agentcost_decision_duration_seconds"); err != nil {
		t.Error(err)
	}
}

// TestAgentLabelBound folds agents past the bound into the overflow value.
func TestAgentLabelBound(t *testing.T) {
	s := newStats(time.Now(), decide.FailClosed.String())
	for i := range maxAgentLabels + 5 {
		s.actionAnomaly("agent-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26))
	}
	if len(s.anomalies) != maxAgentLabels+1 || s.anomalies[costmetrics.Overflow] != 5 {
		t.Errorf("%d label values, overflow %d; want %d and 5", len(s.anomalies), s.anomalies[costmetrics.Overflow], maxAgentLabels+1)
	}
}

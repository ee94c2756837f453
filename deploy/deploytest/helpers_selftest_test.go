package deploytest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/internal/costmetrics"
)

// TestMetricTablesAgree keeps the label table in step with the known names.
func TestMetricTablesAgree(t *testing.T) {
	known := knownRuleMetrics()
	for name := range known {
		if _, ok := metricLabels[name]; !ok {
			t.Errorf("metricLabels lacks %s", name)
		}
	}
	for name := range metricLabels {
		if !known[name] {
			t.Errorf("metricLabels has %s, which is not a known metric", name)
		}
	}
	for name := range knownMetrics() {
		if !known[name] {
			t.Errorf("knownRuleMetrics lacks %s", name)
		}
	}
	if known[costmetrics.NameDecisionDur] {
		t.Errorf("the bare histogram name %s is no series and must not be known", costmetrics.NameDecisionDur)
	}
}

// TestCheckExpr checks the PromQL checker on expressions with and without mistakes.
func TestCheckExpr(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want []string // substrings of the expected problems, in order
	}{
		{"spend by agent", `sum by (agent) (rate(agentcost_spend_usd_total{agent=~"$agent",team=~"$team"}[5m]))`, nil},
		{"histogram quantile", `histogram_quantile(0.99, sum by (le) (rate(agentcost_decision_duration_seconds_bucket[5m])))`, nil},
		{"scrape labels", `up{job="agentcost"} == 0 or sum by (instance) (agentcost_booking_errors_total{job="agentcost"})`, nil},
		{"typo in a name", `rate(agentcost_spend_usd[5m])`, []string{"unknown metric agentcost_spend_usd"}},
		{"bare histogram", `rate(agentcost_decision_duration_seconds[5m])`, []string{"unknown metric agentcost_decision_duration_seconds"}},
		{"matcher on a missing label", `agentcost_fleet_level{scope="fleet"}`, []string{`agentcost_fleet_level has no label "scope"`}},
		{"grouping on a missing label", `sum by (agnet) (agentcost_anomalies_total)`, []string{`grouping label "agnet"`}},
		{"le without buckets", `sum by (le) (agentcost_decision_duration_seconds_sum)`, []string{`grouping label "le"`}},
		{"single-quoted matcher", `agentcost_budget_limit_usd{scope='agent',id='a'}`, nil},
		{"receiver counter outside the dashboard's names", `agentcost_ledger_unavailable_total`, []string{"unknown metric agentcost_ledger_unavailable_total"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkExpr(tt.expr, knownMetrics())
			if len(got) != len(tt.want) {
				t.Fatalf("checkExpr(%s) = %q, want %d problems %q", tt.expr, got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestSelectorMatchers checks the matcher extraction the scope checks rely on.
func TestSelectorMatchers(t *testing.T) {
	got := selectorMatchers(`agentcost_budget_utilization_ratio{scope="agent", id=~"research-.*"} > on() agentcost_fleet_level`)
	want := []matcher{
		{metric: "agentcost_budget_utilization_ratio", label: "scope", value: "agent"},
		{metric: "agentcost_budget_utilization_ratio", label: "id", value: "research-.*"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("selectorMatchers = %+v, want %+v", got, want)
	}
}

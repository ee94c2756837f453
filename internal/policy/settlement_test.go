package policy

import (
	"slices"
	"testing"

	"github.com/agentcost/agentcost/internal/money"
)

func usdN(t *testing.T, s string) money.Nanos {
	t.Helper()
	n, err := money.ParseUSD(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReportedCostLimit: the bound on a self-reported actual_cost_usd is
// max(multiple x estimate, floor), capped by per_action_max_usd.
func TestReportedCostLimit(t *testing.T) {
	cases := []struct {
		name, yml string
		estimate  string
		want      string
	}{
		{"defaults: 3x the estimate", "version: v1\n", "2", "6"},
		{"defaults: the $1 floor under a small estimate", "version: v1\n", "0.01", "1"},
		{"defaults: a zero estimate settles up to the floor", "version: v1\n", "0", "1"},
		{"per-action cap below the multiple", "version: v1\nbudgets: {per_action_max_usd: 5}\n", "2", "5"},
		{"per-action cap below the floor", "version: v1\nbudgets: {per_action_max_usd: 0.5}\n", "0", "0.5"},
		{"own multiple and floor", "version: v1\nsettlement: {reported_cost_max_multiple: 1.5, reported_cost_floor_usd: 0}\n", "0.01", "0.015"},
		{"zero floor and zero estimate", "version: v1\nsettlement: {reported_cost_floor_usd: 0}\n", "0", "0"},
		{"huge estimate clamps to the largest amount", "version: v1\nsettlement: {reported_cost_max_multiple: 1000}\n", "999999999", "1000000000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse("policy.yaml", []byte(c.yml))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.ReportedCostLimit(usdN(t, c.estimate)); got != usdN(t, c.want) {
				t.Errorf("ReportedCostLimit(%s) = %s, want %s", c.estimate, got, c.want)
			}
		})
	}
}

func TestSettlementValidation(t *testing.T) {
	got := parseErrors(t, `version: v1
settlement:
  reported_cost_max_multiple: 0.5
  reported_cost_floor_usd: -1
  max_multiple: 2
`)
	want := []string{
		`policy.yaml:3: settlement.reported_cost_max_multiple: "0.5" is not a multiple between 1 and 1000`,
		`policy.yaml:4: settlement.reported_cost_floor_usd: -1 is negative`,
	}
	if len(got) != 3 || !slices.Equal(got[:2], want) {
		t.Fatalf("errors:\n%q\nwant these first:\n%q", got, want)
	}
	if got[2][:len("policy.yaml:5: settlement.max_multiple")] != "policy.yaml:5: settlement.max_multiple" {
		t.Errorf("unknown key: %q", got[2])
	}
}

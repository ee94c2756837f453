package policy

import (
	"slices"
	"testing"
)

// TestBudgetIDsAndFleetLevel checks the accessors the budget receiver lists budgets with, against
// the design policy: agents research-agent and drafting-agent, team growth; fleet $2000 with
// throttle_at 0.80 ($1600) and pause_at 0.95 ($1900).
func TestBudgetIDsAndFleetLevel(t *testing.T) {
	p := mustLoad(t, designPolicy)
	for _, tc := range []struct {
		scope Scope
		want  []string
	}{
		{ScopeAgent, []string{"drafting-agent", "research-agent"}},
		{ScopeTeam, []string{"growth"}},
		{ScopeFleet, []string{}},
		{ScopeRun, []string{}},
	} {
		if got := p.BudgetIDs(tc.scope); !slices.Equal(got, tc.want) {
			t.Errorf("BudgetIDs(%s) = %q, want %q", tc.scope, got, tc.want)
		}
	}
	nano := usdOf(t, "0.000000001")
	for _, tc := range []struct {
		spent, reserved string
		less            bool // one nano-dollar less
		want            FleetLevel
	}{
		{"1600", "0", true, FleetNormal},
		{"1600", "0", false, FleetThrottled},
		{"1500", "100", false, FleetThrottled},
		{"1900", "0", true, FleetThrottled},
		{"1000", "900", false, FleetPaused},
	} {
		u := Usage{Spent: usdOf(t, tc.spent), Reserved: usdOf(t, tc.reserved)}
		if tc.less {
			u.Spent -= nano
		}
		if got := p.FleetLevel(u); got != tc.want {
			t.Errorf("FleetLevel(spent %s, reserved %s, less %v) = %s, want %s", tc.spent, tc.reserved, tc.less, got, tc.want)
		}
	}
	if got := mustParse(t, "version: v1\n").FleetLevel(Usage{Spent: usdOf(t, "1e6")}); got != FleetNormal {
		t.Errorf("without a fleet budget: level %s, want normal", got)
	}
}

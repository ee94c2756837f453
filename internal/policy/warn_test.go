package policy

import (
	"strings"
	"testing"

	"github.com/agentcost/agentcost/internal/money"
)

// TestWarnAtOnEveryScope: warn_at is read on the fleet, teams, agents, the defaults and runs, and
// Warned says when spent + reserved reached it.
func TestWarnAtOnEveryScope(t *testing.T) {
	p, err := Parse("policy.yaml", []byte(`version: v1
budgets:
  fleet: {limit_usd: 100, window: month, warn_at: 0.5}
  teams: {growth: {limit_usd: 50, window: month, warn_at: 0.9}}
  agents: {coder: {limit_usd: 10, window: day, warn_at: 0.75}}
  default_agent: {limit_usd: 5, window: day, warn_at: 0.8}
  runs: {limit_usd: 3, warn_at: 0.6}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		scope Scope
		id    string
		warn  string // the least spent that warns
	}{{ScopeFleet, "", "50"}, {ScopeTeam, "growth", "45"}, {ScopeAgent, "coder", "7.5"}, {ScopeAgent, "other", "4"}, {ScopeRun, "r1", "1.8"}} {
		b, ok := p.Budget(c.scope, c.id)
		if !ok {
			t.Fatalf("%v %q: no budget", c.scope, c.id)
		}
		at, _ := money.ParseUSD(c.warn)
		if b.Warned(at - 1) {
			t.Errorf("%v %q warned one nano-dollar below %s", c.scope, c.id, c.warn)
		}
		if !b.Warned(at) {
			t.Errorf("%v %q did not warn at %s", c.scope, c.id, c.warn)
		}
	}
	// Without warn_at nothing warns, even at the limit.
	p, err = Parse("policy.yaml", []byte("version: v1\nbudgets:\n  agents: {coder: {limit_usd: 10, window: day}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := p.Budget(ScopeAgent, "coder"); b.Warned(b.Limit) {
		t.Error("a budget without warn_at warned")
	}
}

func TestWarnAtInvalid(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"agents: {coder: {limit_usd: 10, window: day, warn_at: 1}}", `budgets.agents["coder"].warn_at`},
		{"agents: {coder: {limit_usd: 10, window: day, warn_at: 0}}", `budgets.agents["coder"].warn_at`},
		{"runs: {limit_usd: 3, warn_at: 1.5}", "budgets.runs.warn_at"},
		{"fleet: {limit_usd: 100, window: month, warn_at: 0.85}", "budgets.fleet.warn_at: 0.85 must be below throttle_at 0.8"},
	} {
		_, err := Parse("policy.yaml", []byte("version: v1\nbudgets:\n  "+c.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %s", c.yaml, err, c.want)
		}
	}
}

package policy

import (
	"testing"
	"time"
)

const matcherPolicy = `
version: v1
default_decision: deny
derive_tags:
  - {tag: high-cost, when: {min_estimated_cost_usd: 5}}
  - {tag: batch, when: {min_items: 100, topics: ["job.**"]}}
  - {tag: vip, when: {agents: [ceo-agent], max_estimated_cost_usd: 1}}
rules:
  - {id: by-topic-star, match: {topics: ["job.*.read"]}, decision: allow}
  - {id: by-topic-doublestar, match: {topics: ["ops.**.restart"]}, decision: allow}
  - {id: by-tags, match: {risk_tags: [high-cost, batch]}, decision: require_approval}
  - {id: by-agent, match: {agents: [a1, a2]}, decision: allow}
  - {id: by-team, match: {teams: [growth]}, decision: allow_with_constraints}
  - {id: by-cost-band, match: {min_estimated_cost_usd: 2, max_estimated_cost_usd: 3}, decision: throttle}
  - {id: by-items, match: {min_items: 10}, decision: allow}
  - {id: by-anomaly, match: {anomaly_within: 10m}, decision: throttle}
  - {id: vip, match: {risk_tags: [vip]}, decision: allow}
`

func TestMatchers(t *testing.T) {
	p := mustParse(t, matcherPolicy)
	anomaly := func(call, action time.Duration) State {
		var st State
		if call > 0 {
			st.LastCallAnomaly = noon.Add(-call)
		}
		if action > 0 {
			st.LastActionAnomaly = noon.Add(-action)
		}
		return st
	}
	cases := []struct {
		name  string
		req   Request
		state State
		rule  string // "" is the default decision (deny)
	}{
		{"* one segment", Request{Action: "job.crm.read"}, State{}, "by-topic-star"},
		{"* not two segments", Request{Action: "job.crm.x.read"}, State{}, ""},
		{"* not zero segments", Request{Action: "job.read"}, State{}, ""},
		{"** zero segments", Request{Action: "ops.restart"}, State{}, "by-topic-doublestar"},
		{"** many segments", Request{Action: "ops.eu.db.primary.restart"}, State{}, "by-topic-doublestar"},
		{"** wrong tail", Request{Action: "ops.eu.db.stop"}, State{}, ""},
		{"declared tags", Request{RiskTags: []string{"batch", "high-cost"}}, State{}, "by-tags"},
		{"one tag short", Request{RiskTags: []string{"batch"}}, State{}, ""},
		{"derived high-cost plus declared batch", Request{EstimatedCost: usdOf(t, "5"), RiskTags: []string{"batch"}}, State{}, "by-tags"},
		{"both tags derived", Request{Action: "job.x", EstimatedCost: usdOf(t, "7"), Items: 100}, State{}, "by-tags"},
		{"derive needs every condition", Request{Action: "other.x", EstimatedCost: usdOf(t, "7"), Items: 100}, State{}, "by-items"},
		{"agent listed", Request{AgentID: "a2"}, State{}, "by-agent"},
		{"agent not listed", Request{AgentID: "a3"}, State{}, ""},
		{"team listed", Request{Team: "growth"}, State{}, "by-team"},
		{"min cost inclusive", Request{EstimatedCost: usdOf(t, "2")}, State{}, "by-cost-band"},
		{"max cost inclusive", Request{EstimatedCost: usdOf(t, "3")}, State{}, "by-cost-band"},
		{"above max cost", Request{EstimatedCost: usdOf(t, "3.000000001")}, State{}, ""},
		{"below min cost", Request{EstimatedCost: usdOf(t, "1.999999999")}, State{}, ""},
		{"min items inclusive", Request{Items: 10}, State{}, "by-items"},
		{"below min items", Request{Items: 9}, State{}, ""},
		{"call anomaly at the edge", Request{}, anomaly(10*time.Minute, 0), "by-anomaly"},
		{"action anomaly recent", Request{}, anomaly(0, time.Minute), "by-anomaly"},
		{"anomaly too old", Request{}, anomaly(10*time.Minute+time.Nanosecond, time.Hour), ""},
		{"run anomaly recent", Request{}, State{LastCallAnomaly: noon.Add(-time.Hour), LastRunAnomaly: noon.Add(-time.Minute)}, "by-anomaly"},
		{"derived tag by agent and max cost", Request{AgentID: "ceo-agent", EstimatedCost: usdOf(t, "1")}, State{}, "vip"},
		{"derived tag max cost exceeded", Request{AgentID: "ceo-agent", EstimatedCost: usdOf(t, "1.5")}, State{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := Evaluate(p, tc.req, tc.state, noon)
			if o.RuleID != tc.rule {
				t.Fatalf("rule %q (%v, %s), want %q", o.RuleID, o.Decision, o.Reason, tc.rule)
			}
			if tc.rule == "" && o.Decision != Deny {
				t.Errorf("default decision %v, want deny", o.Decision)
			}
		})
	}
}

func TestAnomalyThrottleRetry(t *testing.T) {
	p := mustParse(t, matcherPolicy)
	st := State{LastCallAnomaly: noon.Add(-4 * time.Minute), LastActionAnomaly: noon.Add(-7 * time.Minute)}
	o := Evaluate(p, Request{}, st, noon)
	// The latest anomaly (4 minutes ago) leaves the 10-minute window in 6 minutes.
	if o.Decision != Throttle || o.RetryAfter != 6*time.Minute {
		t.Fatalf("got %v retry %v, want throttle 6m", o.Decision, o.RetryAfter)
	}
}

func TestStrictestWins(t *testing.T) {
	p := mustParse(t, `
version: v1
budgets:
  per_action_max_usd: 10
  default_agent: {limit_usd: 5, window: hour}
rules:
  - {id: wants-approval, match: {topics: ["a.approve"]}, decision: require_approval}
  - {id: throttles, match: {topics: ["a.throttle"]}, decision: throttle}
  - {id: allows, match: {topics: ["a.allow"]}, decision: allow}
`)
	cases := []struct {
		action, est string
		want        Decision
		rule        string
	}{
		{"a.approve", "1", RequireApproval, "wants-approval"},
		{"a.approve", "6", Deny, RuleAgentBudget},    // budget deny beats require_approval
		{"a.throttle", "11", Deny, RulePerActionCap}, // the cap is offered first among denies
		{"a.throttle", "1", Throttle, "throttles"},
		{"a.allow", "5", Allow, "allows"},
		{"a.allow", "5.000000001", Deny, RuleAgentBudget},
	}
	for _, tc := range cases {
		o := Evaluate(p, Request{AgentID: "x", Action: tc.action, EstimatedCost: usdOf(t, tc.est)}, State{}, noon)
		if o.Decision != tc.want || o.RuleID != tc.rule {
			t.Errorf("%s $%s: %v %q, want %v %q", tc.action, tc.est, o.Decision, o.RuleID, tc.want, tc.rule)
		}
	}
}

func TestPerKeys(t *testing.T) {
	p := mustParse(t, `
version: v1
rules:
  - {id: r-rule, match: {topics: [x.rule]}, decision: allow_with_constraints, per: rule, constraints: {max_concurrent: 2, rate_limit: "5/min"}}
  - {id: r-agent, match: {topics: [x.agent]}, decision: allow_with_constraints, per: agent, constraints: {max_concurrent: 2}}
  - {id: r-topic, match: {topics: ["x.**"]}, decision: allow_with_constraints, per: agent_topic, constraints: {rate_limit: "100/d"}}
  - {id: r-default, match: {topics: ["y"]}, decision: allow_with_constraints, constraints: {max_concurrent: 1}}
`)
	cases := []struct {
		action string
		want   LimitKey
		str    string
	}{
		{"x.rule", LimitKey{RuleID: "r-rule"}, `rule:"r-rule"`},
		{"x.agent", LimitKey{RuleID: "r-agent", AgentID: "ag"}, `rule:"r-agent"/agent:"ag"`},
		{"x.other", LimitKey{RuleID: "r-topic", AgentID: "ag", Topic: "x.other"}, `rule:"r-topic"/agent:"ag"/topic:"x.other"`},
		{"y", LimitKey{RuleID: "r-default", AgentID: "ag"}, `rule:"r-default"/agent:"ag"`},
	}
	for _, tc := range cases {
		o := Evaluate(p, Request{AgentID: "ag", Action: tc.action}, State{}, noon)
		key := o.Concurrency.Key
		if o.Concurrency.Max == 0 {
			key = o.RuleRate.Key
		}
		if key != tc.want || key.String() != tc.str {
			t.Errorf("%s: key %+v %s, want %+v %s", tc.action, key, key, tc.want, tc.str)
		}
	}
	if got := (LimitKey{Fleet: true, AgentID: `a"b`}).String(); got != `fleet/agent:"a\"b"` {
		t.Errorf("fleet key %s", got)
	}
}

func TestGlobs(t *testing.T) {
	cases := []struct {
		pattern string
		topic   string
		want    bool
	}{
		{"job.research.company", "job.research.company", true},
		{"job.research.company", "job.research", false},
		{"job.*", "job.x", true},
		{"job.*", "job", false},
		{"job.*", "job.x.y", false},
		{"*", "", false},
		{"*", "anything", true},
		{"**", "", true},
		{"**", "a.b.c", true},
		{"job.**", "job", true},
		{"job.**", "jobs.x", false},
		{"**.generate", "generate", true},
		{"**.generate", "a.b.generate", true},
		{"**.generate", "a.b.generate.x", false},
		{"a.**.b.**.c", "a.x.b.y.z.c", true},
		{"a.**.b.**.c", "a.b.c", true},
		{"a.**.b.**.c", "a.c", false},
		{"a.**.**.c", "a.c", true},
		{"a.*.*", "a.b.c", true},
		{"a.*.*", "a.b", false},
	}
	for _, tc := range cases {
		g, err := compileGlob(tc.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if got := g.match(tc.topic); got != tc.want {
			t.Errorf("%q ~ %q = %v, want %v", tc.pattern, tc.topic, got, tc.want)
		}
	}
	for _, bad := range []string{"", "job..x", ".job", "job.", "job.gen*", "a.***"} {
		if _, err := compileGlob(bad); err == nil {
			t.Errorf("%q compiled", bad)
		}
	}
}

func TestGlobMatchDoesNotAllocate(t *testing.T) {
	g, _ := compileGlob("job.**.research.*")
	allocs := testing.AllocsPerRun(100, func() { g.match("job.a.b.research.company") })
	if allocs != 0 {
		t.Fatalf("%v allocations per match", allocs)
	}
}

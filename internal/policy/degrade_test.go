package policy

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/money"
)

// fakePrices prices models in arbitrary units per token: the ratio is what matters.
type fakePrices map[string]int64

func (f fakePrices) Reprice(est money.Nanos, from, to string) (money.Nanos, bool) {
	a, ok1 := f[from]
	b, ok2 := f[to]
	if !ok1 || !ok2 {
		return 0, false
	}
	return money.Nanos((int64(est)*b + a - 1) / a), true
}

var testPrices = fakePrices{"gpt-4o": 10, "gpt-4o-2024-08-06": 10, "gpt-4o-mini": 1, "claude-opus-4": 15, "claude-sonnet-4-5": 3}

const degradePolicy = `version: v1
budgets:
  agents: {a: {limit_usd: 10, window: hour}}
  per_action_max_usd: 5
degrade:
  - when: {scope: agent, at: 0.8}
    models:
      "gpt-4o*": gpt-4o-mini
      "claude-opus-*": claude-sonnet-4-5
rules:
  - id: deny-batch
    match: {topics: ["job.batch"]}
    decision: deny
`

func TestDegradeEvaluate(t *testing.T) {
	p := mustParse(t, degradePolicy)
	now := time.Date(2026, time.March, 11, 10, 40, 0, 0, time.UTC)
	agentAt := func(spent string) State {
		var st State
		st.Usage[ScopeAgent] = Usage{Spent: usdOf(t, spent)}
		return st
	}
	req := func(model, est string) Request {
		return Request{AgentID: "a", Action: "job.llm", Model: model, EstimatedCost: usdOf(t, est), Prices: testPrices}
	}
	cases := []struct {
		name     string
		req      Request
		state    State
		want     Decision
		model    string
		estimate string // reserved estimate when degraded
		rule     string
	}{
		{name: "below the level: the asked model", req: req("gpt-4o", "1"), state: agentAt("6"), want: Allow},
		{name: "estimate brings the scope to the level", req: req("gpt-4o", "2"), state: agentAt("6"),
			want: AllowWithConstraints, model: "gpt-4o-mini", estimate: "0.2"},
		{name: "degrade before deny: the expensive call would not fit", req: req("gpt-4o", "3"), state: agentAt("9"),
			want: AllowWithConstraints, model: "gpt-4o-mini", estimate: "0.3"},
		{name: "glob with a dated name", req: req("gpt-4o-2024-08-06", "3"), state: agentAt("9"),
			want: AllowWithConstraints, model: "gpt-4o-mini", estimate: "0.3"},
		{name: "second pattern", req: req("claude-opus-4", "1.5"), state: agentAt("9"),
			want: AllowWithConstraints, model: "claude-sonnet-4-5", estimate: "0.3"},
		{name: "even the cheaper model does not fit: deny", req: req("gpt-4o", "30"), state: agentAt("9.9"),
			want: Deny, rule: RuleAgentBudget, model: "gpt-4o-mini", estimate: "3"},
		{name: "cheaper estimate passes the per-action cap", req: req("gpt-4o", "20"), state: agentAt("7"),
			want: AllowWithConstraints, model: "gpt-4o-mini", estimate: "2"},
		{name: "no model: no degrade, denied", req: req("", "3"), state: agentAt("9"), want: Deny, rule: RuleAgentBudget},
		{name: "unmapped model: denied", req: req("mistral-large", "3"), state: agentAt("9"), want: Deny, rule: RuleAgentBudget},
		{name: "already the cheap model", req: req("gpt-4o-mini", "0.1"), state: agentAt("9"), want: Allow},
		{name: "no price table: no degrade", req: Request{AgentID: "a", Action: "job.llm", Model: "gpt-4o", EstimatedCost: usdOf(t, "3")},
			state: agentAt("9"), want: Deny, rule: RuleAgentBudget},
		{name: "a rule's deny still wins", req: Request{AgentID: "a", Action: "job.batch", Model: "gpt-4o", EstimatedCost: usdOf(t, "3"), Prices: testPrices},
			state: agentAt("9"), want: Deny, rule: "deny-batch", model: "gpt-4o-mini", estimate: "0.3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Evaluate(p, c.req, c.state, now)
			if o.Decision != c.want || (c.rule != "" && o.RuleID != c.rule) {
				t.Fatalf("decision %s rule %q (%s), want %s rule %q", o.Decision, o.RuleID, o.Reason, c.want, c.rule)
			}
			if o.Degraded.Model != c.model {
				t.Fatalf("degraded model %q, want %q", o.Degraded.Model, c.model)
			}
			if c.model != "" {
				if o.Degraded.Estimate != usdOf(t, c.estimate) || o.Degraded.Original != c.req.EstimatedCost {
					t.Fatalf("degraded %+v, want estimate %s from %s", o.Degraded, c.estimate, c.req.EstimatedCost)
				}
				if o.Degraded.Scope != ScopeAgent || o.Degraded.From != c.req.Model {
					t.Fatalf("degraded %+v", o.Degraded)
				}
			}
			if o.Decision == Deny && !o.Constraints.IsZero() {
				t.Fatalf("deny with constraints %+v", o.Constraints)
			}
		})
	}
}

// A degraded allow merges with a rule's constraints: both apply, and the answer is
// allow_with_constraints either way.
func TestDegradeMergesWithRuleConstraints(t *testing.T) {
	p := mustParse(t, strings.Replace(degradePolicy, "    decision: deny\n",
		"    decision: deny\n  - id: cap-tokens\n    match: {topics: [\"job.llm\"]}\n    decision: allow_with_constraints\n    constraints: {max_tokens: 100}\n", 1))
	var st State
	st.Usage[ScopeAgent] = Usage{Spent: usdOf(t, "9")}
	o := Evaluate(p, Request{AgentID: "a", Action: "job.llm", Model: "gpt-4o", EstimatedCost: usdOf(t, "3"), Prices: testPrices}, st, time.Now())
	if o.Decision != AllowWithConstraints || o.Degraded.Model != "gpt-4o-mini" || o.RuleID != "cap-tokens" {
		t.Fatalf("outcome %+v", o)
	}
	if n, _ := o.Constraints.MaxTokens.Value(); n != 100 {
		t.Fatalf("max_tokens %v, want 100", o.Constraints.MaxTokens)
	}
}

func TestDegradeExplain(t *testing.T) {
	p := mustParse(t, degradePolicy)
	var st State
	st.Usage[ScopeAgent] = Usage{Spent: usdOf(t, "9")}
	ex := Explain(p, Request{AgentID: "a", Action: "job.llm", Model: "gpt-4o", EstimatedCost: usdOf(t, "3"), Prices: testPrices}, st, time.Now())
	if ex.Outcome.Degraded.Model != "gpt-4o-mini" || len(ex.Layers) == 0 || ex.Layers[0].Layer != "degrade" {
		t.Fatalf("explanation %+v", ex)
	}
	l := ex.Layers[0]
	for _, want := range []string{`"gpt-4o" -> "gpt-4o-mini"`, "$3", "$0.3", "agent"} {
		if !strings.Contains(l.Detail, want) {
			t.Fatalf("degrade layer %q lacks %q", l.Detail, want)
		}
	}
	// The agent layer shows the re-estimate it checked.
	for _, l := range ex.Layers {
		if l.Layer == "agent" && (!strings.Contains(l.Detail, "estimate $0.3 ") || l.Verdict != Allow) {
			t.Fatalf("agent layer %+v", l)
		}
	}
	ex = Explain(p, Request{AgentID: "a", Action: "job.llm", EstimatedCost: usdOf(t, "3"), Prices: testPrices}, st, time.Now())
	if !strings.Contains(ex.Layers[0].Detail, "names no model") {
		t.Fatalf("degrade layer without a model: %+v", ex.Layers[0])
	}
}

func TestDegradeValidate(t *testing.T) {
	cases := []struct {
		name, yml, want string
	}{
		{"scope", "degrade:\n  - when: {scope: planet, at: 0.8}\n    models: {a: b}\n", `policy.yaml:4: degrade[0].when.scope: "planet" is not fleet|team|agent|run`},
		{"at above 1", "degrade:\n  - when: {scope: agent, at: 1.5}\n    models: {a: b}\n", `policy.yaml:4: degrade[0].when.at: "1.5" is not a fraction in (0, 1]`},
		{"missing at", "degrade:\n  - when: {scope: agent}\n    models: {a: b}\n", `policy.yaml:4: degrade[0].when.at: missing`},
		{"missing models", "degrade:\n  - when: {scope: agent, at: 0.5}\n", `policy.yaml:4: degrade[0].models: missing`},
		{"empty models", "degrade:\n  - when: {scope: agent, at: 0.5}\n    models: {}\n", `policy.yaml:4: degrade[0].models: must map at least one model`},
		{"pattern target", "degrade:\n  - when: {scope: agent, at: 0.5}\n    models: {gpt-4o: \"gpt-*\"}\n", `policy.yaml:5: degrade[0].models["gpt-4o"]: "gpt-*": the cheaper model must be a model name`},
		{"self", "degrade:\n  - when: {scope: agent, at: 0.5}\n    models: {gpt-4o: GPT-4o}\n", `policy.yaml:5: degrade[0].models["gpt-4o"]: "GPT-4o" maps a model to itself`},
		{"unknown key", "degrade:\n  - when: {scope: agent, at: 0.5}\n    models: {a: b}\n    level: throttle\n", `policy.yaml:6: degrade[0].level: unknown key (want one of: when, models)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := parseErrors(t, "version: v1\nbudgets: {default_agent: {limit_usd: 1, window: hour}}\n"+c.yml)
			if !strings.HasPrefix(strings.Join(errs, "\n"), c.want) {
				t.Fatalf("errors %q, want one starting %q", errs, c.want)
			}
		})
	}
}

func TestDegradeCheckModels(t *testing.T) {
	p := mustParse(t, degradePolicy)
	if err := p.CheckModels(func(m string) bool { _, ok := testPrices[m]; return ok }); err != nil {
		t.Fatalf("known targets refused: %v", err)
	}
	err := p.CheckModels(func(m string) bool { return m != "claude-sonnet-4-5" })
	if err == nil || err.Error() != `policy.yaml:9: degrade[0].models["claude-opus-*"]: "claude-sonnet-4-5" is not in the price table (the embedded prices and prices.files)` {
		t.Fatalf("CheckModels: %v", err)
	}
}

func TestMatchModel(t *testing.T) {
	for _, c := range []struct {
		pat, model string
		want       bool
	}{
		{"gpt-4o*", "gpt-4o", true}, {"gpt-4o*", "GPT-4o-2024-08-06", true}, {"gpt-4o*", "gpt-4", false},
		{"*opus*", "anthropic/claude-opus-4", true}, {"claude-*-4", "claude-opus-4", true}, {"claude-*-4", "claude-opus-4-1", false},
		{"a*b*c", "abc", true}, {"a*b*c", "acb", false}, {"a*a", "a", false}, {"gpt-4o", "gpt-4o-mini", false},
	} {
		if got := matchModel(c.pat, c.model); got != c.want {
			t.Errorf("matchModel(%q, %q) = %v, want %v", c.pat, c.model, got, c.want)
		}
	}
}

// TestDesignDocPolicyParses: the policy shown in docs/design.md, degrade block included, is valid.
func TestDesignDocPolicyParses(t *testing.T) {
	data, err := os.ReadFile("../../docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "## Policy as code")
	if !ok {
		t.Fatal("docs/design.md has no Policy as code section")
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	if !ok {
		t.Fatal("the section has no yaml block")
	}
	block, _, _ = strings.Cut(block, "```")
	p := mustParse(t, block)
	if !p.HasDegrade() || len(p.DegradeTargets()) != 2 {
		t.Fatalf("design policy degrade targets %+v", p.DegradeTargets())
	}
}

func TestDegradeScopeWithoutBudget(t *testing.T) {
	errs := parseErrors(t, "version: v1\nbudgets: {default_agent: {limit_usd: 1, window: hour}}\ndegrade:\n  - when: {scope: team, at: 0.5}\n    models: {a: b}\n")
	if len(errs) != 1 || errs[0] != "policy.yaml:4: degrade[0].when.scope: team has no budget in this policy, so the entry could never apply" {
		t.Fatalf("errors %q", errs)
	}
}

// TestDegradeEvaluateAllocs: a degraded evaluation allocates nothing in the policy (the repricer
// here does not either).
func TestDegradeEvaluateAllocs(t *testing.T) {
	p := mustParse(t, degradePolicy)
	var st State
	st.Usage[ScopeAgent] = Usage{Spent: usdOf(t, "9")}
	req := Request{AgentID: "a", Action: "job.llm", Model: "gpt-4o", EstimatedCost: usdOf(t, "3"), Prices: testPrices}
	now := time.Date(2026, time.March, 11, 10, 40, 0, 0, time.UTC)
	if n := testing.AllocsPerRun(100, func() {
		if o := Evaluate(p, req, st, now); o.Degraded.Model == "" {
			t.Fatal("not degraded")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per degraded evaluation", n)
	}
}

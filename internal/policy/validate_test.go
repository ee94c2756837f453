package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/internal/yamldoc"
)

// parseErrors parses a policy expected to be invalid and returns its problems as strings.
func parseErrors(t *testing.T, yml string, overlays ...Source) []string {
	t.Helper()
	p, err := Parse("policy.yaml", []byte(yml), overlays...)
	if err == nil {
		t.Fatalf("invalid policy accepted: %+v", p)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error is %T, want *ValidationError: %v", err, err)
	}
	var out []string
	for _, fe := range ve.Errors {
		out = append(out, fe.Error())
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe != ve.Errors[0] {
		t.Errorf("errors.As does not reach the first FieldError")
	}
	if err.Error() != strings.Join(out, "\n") {
		t.Errorf("Error() = %q, want one problem per line", err.Error())
	}
	return out
}

func TestValidationMessages(t *testing.T) {
	cases := []struct {
		name string
		yml  string
		want []string // every problem, in order
	}{
		{"the rate limit of the brief", `version: v1
rules:
  - id: ok
    decision: allow
  - id: llm
    match: {topics: ["job.*.generate"]}
    decision: allow_with_constraints
    constraints:
      rate_limit: "20/hr"
`, []string{`policy.yaml:9: rules[1].constraints.rate_limit: "20/hr" is not N/second|minute|hour|day`}},

		{"several problems together, in line order", `version: v2
default_decision: maybe
colour: blue
rules:
  - id: a
    decision: deny
  - id: a
    decision: allow
    reason: dup
  - decision: allow
  - id: ""
    decision: allow
`, []string{
			`policy.yaml:1: version: "v2" is not supported (want v1)`,
			`policy.yaml:2: default_decision: "maybe" is not one of allow|allow_with_constraints|throttle|require_approval|deny`,
			`policy.yaml:3: colour: unknown key (want one of: ` + policyKeys + `)`,
			`policy.yaml:7: rules[1].id: duplicate rule id "a" (first used on line 5)`,
			`policy.yaml:10: rules[2].id: missing`,
			`policy.yaml:11: rules[3].id: must not be empty`,
		}},

		{"unknown keys at every level", `version: v1
budgets:
  fleet: {limit_usd: 10, window: day, thottle_at: 0.5}
  agnets: {}
rules:
  - id: r
    decision: allow
    match: {topic: [a]}
    constraints: {max_runtime: 5}
    priority: 1
`, []string{
			`policy.yaml:3: budgets.fleet.thottle_at: unknown key (want one of: limit_usd, window, warn_at, throttle_at, pause_at, throttle_rate)`,
			`policy.yaml:4: budgets.agnets: unknown key (want one of: ` + budgetKeys + `)`,
			`policy.yaml:8: rules[0].match.topic: unknown key (want one of: ` + matchKeys + `)`,
			`policy.yaml:9: rules[0].constraints.max_runtime: unknown key (want one of: ` + constraintKeys + `)`,
			`policy.yaml:10: rules[0].priority: unknown key (want one of: ` + ruleKeys + `)`,
		}},

		{"decisions and per", `version: v1
rules:
  - id: r
    decision: permit
    per: team
  - id: s
`, []string{
			`policy.yaml:4: rules[0].decision: "permit" is not one of allow|allow_with_constraints|throttle|require_approval|deny`,
			`policy.yaml:5: rules[0].per: "team" is not one of rule|agent|agent_topic`,
			`policy.yaml:6: rules[1].decision: missing (want allow|allow_with_constraints|throttle|require_approval|deny)`,
		}},

		{"windows", `version: v1
budgets:
  agents:
    research-agent: {limit_usd: 50, window: 2h}
    drafting-agent: {limit_usd: 20, window: lifetime}
    other-agent: {limit_usd: 20}
  default_team: {window: day}
  runs: {limit_usd: 25, window: day}
`, []string{
			`policy.yaml:4: budgets.agents["research-agent"].window: "2h" is not minute|hour|day|week|month (or 1m, 1h, 24h, 1d, 7d, 1w, 1mo)`,
			`policy.yaml:5: budgets.agents["drafting-agent"].window: "lifetime" is not minute|hour|day|week|month (or 1m, 1h, 24h, 1d, 7d, 1w, 1mo)`,
			`policy.yaml:6: budgets.agents["other-agent"].window: missing (want minute|hour|day|week|month (or 1m, 1h, 24h, 1d, 7d, 1w, 1mo))`,
			`policy.yaml:7: budgets.default_team.limit_usd: missing`,
			`policy.yaml:8: budgets.runs.window: "day" is not lifetime (a run budget spans the whole run)`,
		}},

		{"money and ratios", `version: v1
budgets:
  fleet:
    limit_usd: -5
    window: day
    throttle_at: 0.96
    pause_at: 0.95
  teams:
    growth: {limit_usd: "lots", window: day}
  per_action_max_usd: [100]
`, []string{
			`policy.yaml:4: budgets.fleet.limit_usd: -5 is negative`,
			`policy.yaml:7: budgets.fleet.throttle_at: 0.96 must be below pause_at 0.95`,
			`policy.yaml:9: budgets.teams["growth"].limit_usd: "lots" is not a dollar amount`,
			`policy.yaml:10: budgets.per_action_max_usd: want a single value, got a list`,
		}},

		{"ratios out of range", `version: v1
budgets:
  fleet: {limit_usd: 1, window: day, throttle_at: 0, pause_at: 1.5, throttle_rate: 6}
`, []string{
			`policy.yaml:3: budgets.fleet.throttle_at: "0" is not a fraction in (0, 1]`,
			`policy.yaml:3: budgets.fleet.pause_at: "1.5" is not a fraction in (0, 1]`,
			`policy.yaml:3: budgets.fleet.throttle_rate: "6" is not N/second|minute|hour|day`,
		}},

		{"fleet needs limit and window", `version: v1
budgets:
  fleet: {throttle_at: 0.5}
`, []string{
			`policy.yaml:3: budgets.fleet.limit_usd: missing`,
			`policy.yaml:3: budgets.fleet.window: missing (want minute|hour|day|week|month (or 1m, 1h, 24h, 1d, 7d, 1w, 1mo))`,
		}},

		{"matchers", `version: v1
rules:
  - id: r
    decision: allow
    match:
      topics: ["job.gen*", "job..x", 5]
      risk_tags: high-cost
      min_estimated_cost_usd: 10
      max_estimated_cost_usd: 5
      min_items: 0
      anomaly_within: "10"
`, []string{
			`policy.yaml:6: rules[0].match.topics[0]: topic pattern "job.gen*": segment "gen*" mixes * with text; * and ** stand for whole dot-separated segments`,
			`policy.yaml:6: rules[0].match.topics[1]: topic pattern "job..x": empty segment (leading, trailing or doubled dot)`,
			`policy.yaml:7: rules[0].match.risk_tags: want a list, got "high-cost"`,
			`policy.yaml:8: rules[0].match.min_estimated_cost_usd: 10 is above max_estimated_cost_usd 5`,
			`policy.yaml:10: rules[0].match.min_items: 0 is below the minimum of 1`,
			`policy.yaml:11: rules[0].match.anomaly_within: "10" is not a positive duration like 90s, 10m or 1h`,
		}},

		{"constraints", `version: v1
rules:
  - id: r
    decision: allow_with_constraints
    constraints:
      max_concurrent: 0
      max_retries: -1
      max_runtime_sec: 1.5
      max_tokens: "many"
      max_depth: 0
`, []string{
			`policy.yaml:6: rules[0].constraints.max_concurrent: 0 is below the minimum of 1`,
			`policy.yaml:7: rules[0].constraints.max_retries: -1 is below the minimum of 0`,
			`policy.yaml:8: rules[0].constraints.max_runtime_sec: "1.5" is not an integer`,
			`policy.yaml:9: rules[0].constraints.max_tokens: "many" is not an integer`,
		}},

		{"reserved ids", `version: v1
rules:
  - {id: budget.agent, decision: allow}
  - {id: approval.x, decision: allow}
`, []string{
			`policy.yaml:3: rules[0].id: "budget.agent" uses a reserved prefix (budget., approval.)`,
			`policy.yaml:4: rules[1].id: "approval.x" uses a reserved prefix (budget., approval.)`,
		}},

		{"derive_tags", `version: v1
derive_tags:
  - {tag: high-cost}
  - {when: {min_items: 5}}
  - {tag: x, when: {min_estimated_cost_usd: 5, max_estimated_cost_usd: 1}}
  - {tag: y, when: {colour: red}}
`, []string{
			`policy.yaml:3: derive_tags[0].when: missing (needs at least one condition)`,
			`policy.yaml:4: derive_tags[1].tag: missing`,
			`policy.yaml:5: derive_tags[2].when.min_estimated_cost_usd: 5 is above max_estimated_cost_usd 1`,
			`policy.yaml:6: derive_tags[3].when.colour: unknown key (want one of: min_estimated_cost_usd, max_estimated_cost_usd, min_items, topics, agents)`,
			`policy.yaml:6: derive_tags[3].when: missing (needs at least one condition)`,
		}},

		{"agents and topics", `version: v1
agents:
  billing-agent: {critical: yes}
  other: {critical: true, tier: 1}
topics:
  "job.a": {timeout_seconds: 0}
  "job.b*": {max_retries: 1}
  "job.c": 30
`, []string{
			`policy.yaml:3: agents["billing-agent"].critical: "yes" is not true or false`,
			`policy.yaml:4: agents["other"].tier: unknown key (want one of: critical)`,
			`policy.yaml:6: topics["job.a"].timeout_seconds: 0 is below the minimum of 1`,
			`policy.yaml:7: topics["job.b*"]: topic pattern: segment "b*" mixes * with text; * and ** stand for whole dot-separated segments`,
			`policy.yaml:8: topics["job.c"]: want a mapping, got "30"`,
		}},

		{"duplicate keys", `version: v1
rules:
  - id: r
    decision: allow
    decision: deny
`, []string{`policy.yaml:5: rules[0].decision: duplicate key (first on line 4)`}},

		{"missing mappings", `version: v1
budgets:
  default_agent:
rules:
  -
  - {id: r, decision: allow, match: ~, constraints: null}
`, []string{
			`policy.yaml:3: budgets.default_agent: missing (want a mapping with limit_usd and window)`,
			`policy.yaml:5: rules[0]: missing (want a mapping with id, match and decision)`,
		}},

		{"missing version", `rules: []
`, []string{`policy.yaml:1: version: missing (want v1)`}},

		{"not a mapping", `- a
- b
`, []string{`policy.yaml:1: want a mapping, got a list`}},

		{"yaml syntax", `version: v1
rules:
  - id: [unclosed
`, []string{`policy.yaml:3: invalid YAML: did not find expected ',' or ']'`}},

		{"yaml syntax, flow mapping", "version: v1\nrules: {a: 1\n",
			[]string{`policy.yaml:2: invalid YAML: did not find expected ',' or '}'`}},
		{"yaml syntax, scanner", "version: v1\nrules:\n  - id: a: b\n",
			[]string{`policy.yaml:3: invalid YAML: mapping values are not allowed in this context`}},

		{"empty", ``, []string{`policy.yaml:1: empty document`}},
		{"comments only", "# nothing\n", []string{`policy.yaml:1: empty document`}},

		{"two documents", `version: v1
---
version: v1
`, []string{`policy.yaml:2: a policy file holds one YAML document`}},

		{"merge keys", `version: v1
rules:
  - {id: a, decision: allow, constraints: &c {max_tokens: 5}}
  - id: b
    decision: allow
    constraints:
      <<: *c
`, []string{`policy.yaml:7: rules[1].constraints: merge keys (<<) are not supported`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := parseErrors(t, tc.yml)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestOverlayErrorsNameTheOverlay(t *testing.T) {
	got := parseErrors(t, "version: v1\nrules: [{id: r, decision: alow}]\n",
		Source{Name: "overlays/a.yaml", Data: []byte("topics:\n  job.x: {timeout_seconds: 0}\n")},
		Source{Name: "overlays/b.yaml", Data: []byte("topics: {}\nrules: []\n")},
	)
	want := []string{
		`policy.yaml:2: rules[0].decision: "alow" is not one of allow|allow_with_constraints|throttle|require_approval|deny`,
		`overlays/a.yaml:2: topics["job.x"].timeout_seconds: 0 is below the minimum of 1`,
		`overlays/b.yaml:2: rules: unknown key (want one of: topics, version (an overlay holds topic settings only))`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAliasesResolveAndBombsStop(t *testing.T) {
	p := mustParse(t, `version: v1
rules:
  - {id: a, match: {topics: [a]}, decision: allow_with_constraints, constraints: &lim {max_concurrent: 2}}
  - {id: b, match: {topics: [b]}, decision: allow_with_constraints, constraints: *lim}
`)
	if o := Evaluate(p, Request{Action: "b"}, State{}, noon); o.RuleID != "b" || o.Concurrency.Max != 2 {
		t.Fatalf("alias: %+v", o)
	}
	// A billion-laughs document stops at the node budget with an error, not a hang.
	bomb := "version: v1\nrules:\n  - &a {id: x, decision: allow}\n"
	prev := "a"
	for i := range 20 {
		name := string(rune('b' + i))
		bomb += "  - &" + name + " [*" + prev + ", *" + prev + "]\n"
		prev = name
	}
	if _, err := Parse("bomb.yaml", []byte(bomb)); err == nil {
		t.Fatal("alias bomb accepted")
	}
}

func TestErrorCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: v1\nrules:\n")
	for range yamldoc.MaxErrors + 7 {
		b.WriteString("  - {id: r, decision: nope}\n")
	}
	_, err := Parse("policy.yaml", []byte(b.String()))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("%T %v", err, err)
	}
	// Each rule has a bad decision; all but the first also repeat the id: 2n-1 problems.
	total := 2*(yamldoc.MaxErrors+7) - 1
	if len(ve.Errors) != yamldoc.MaxErrors || ve.Omitted != total-yamldoc.MaxErrors {
		t.Fatalf("%d errors, %d omitted; want %d, %d", len(ve.Errors), ve.Omitted, yamldoc.MaxErrors, total-yamldoc.MaxErrors)
	}
	if want := fmt.Sprintf("\n... and %d more", total-yamldoc.MaxErrors); !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error text does not end with %q", want)
	}
}

func TestLoadReportsUnreadableFiles(t *testing.T) {
	if _, err := Load("testdata/missing.yaml"); err == nil || !strings.Contains(err.Error(), `reading policy file "testdata/missing.yaml"`) {
		t.Errorf("missing policy: %v", err)
	}
	if _, err := Load(articlePolicy, "testdata/overlays/missing.yaml"); err == nil || !strings.Contains(err.Error(), `reading policy overlay "testdata/overlays/missing.yaml"`) {
		t.Errorf("missing overlay: %v", err)
	}
}

package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// testCases exercises each kind of expectation against testPolicy at 10:15, 45 minutes before the
// hour's end.
const testCases = `policy: ./policy.yaml
now: 2026-03-02T10:15:00Z
cases:
  - name: high-cost research is throttled
    request: {agent_id: research-agent, action: job.company.research, estimated_cost_usd: 6}
    expect:
      decision: allow_with_constraints
      rule_id: throttle-llm-calls
      constraints: {max_concurrent: 3, rate_limit: 20/hour, max_tokens: 50000}
  - name: drafting budget exhausted
    request: {agent_id: drafting-agent, action: job.draft.email, estimated_cost_usd: "0.75"}
    state: {spent: {agent: 19.5}}
    expect: {decision: deny, rule_id: budget.agent, retry_after_sec: 2700}
  - name: recent anomaly throttles
    request: {agent_id: drafting-agent, action: job.draft.email, estimated_cost_usd: 0.5}
    state: {last_anomaly: 5m}
    expect: {decision: throttle, rule_id: throttle-anomalous}
  - name: approved batch passes with a cost cap
    request: {agent_id: research-agent, action: job.leads.batch-generate, estimated_cost_usd: 60}
    approval: {id: ap-1, cost_cap_usd: 70}
    expect: {decision: allow_with_constraints, reason_contains: "LLM"}
  - name: plain email is allowed by default
    request: {agent_id: drafting-agent, action: job.draft.email, estimated_cost_usd: 0.5, team: growth}
    state: {spent: {team: 100}, reserved: {team: 1}}
    expect: {decision: allow, rule_id: ""}
`

func TestPolicyTest(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "policy.yaml", testPolicy)
	cases := writeFile(t, dir, "cases.yaml", testCases)

	code, out, errOut := runCLI(t, "policy", "test", cases)
	// The approved batch: $60 does not fit research-agent's $50 hour budget, and an approval never
	// lifts a budget, so the case expecting allow_with_constraints fails; the others pass.
	if code != exitFindings {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitFindings, out, errOut)
	}
	for _, want := range []string{
		"PASS  high-cost research is throttled  (allow_with_constraints by throttle-llm-calls)",
		"PASS  drafting budget exhausted  (deny by budget.agent)",
		"PASS  recent anomaly throttles  (throttle by throttle-anomalous)",
		"FAIL  approved batch passes with a cost cap  (deny by budget.agent)",
		cases + ":18: decision: got deny, want allow_with_constraints",
		cases + `:18: reason: "estimated cost exceeds the agent budget's whole limit: no retry can fit it" does not contain "LLM"`,
		"PASS  plain email is allowed by default  (allow by default_decision)",
		"4 passed, 1 failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	t.Run("run filter", func(t *testing.T) {
		code, out, _ := runCLI(t, "policy", "test", cases, "--run", "^recent|budget")
		if code != exitOK || !strings.Contains(out, "2 passed, 0 failed, 3 skipped") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})

	t.Run("json", func(t *testing.T) {
		_, out, _ := runCLI(t, "policy", "test", cases, "-o", "json")
		var rep testReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Passed != 4 || rep.Failed != 1 || rep.PolicyVersion != "v1.9.0" || len(rep.Cases) != 5 {
			t.Fatalf("got %+v", rep)
		}
		if c := rep.Cases[3]; c.Pass || c.Line != 18 || c.Decision != "deny" || len(c.Failures) != 2 {
			t.Errorf("case 4: %+v, want a failure at line 18 with two findings", c)
		}
	})

	t.Run("policy flag overrides the file", func(t *testing.T) {
		// The same cases against a policy that allows everything: only the default-decision case passes.
		open := writeFile(t, t.TempDir(), "open.yaml", "version: v1\ndefault_decision: allow\n")
		code, out, _ := runCLI(t, "policy", "test", cases, "--policy", open)
		if code != exitFindings || !strings.Contains(out, "1 passed, 4 failed") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
}

func TestPolicyTestBadCasesFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "policy.yaml", testPolicy)
	tests := []struct {
		name     string
		content  string
		wantCode int
		want     []string
	}{
		{"field problems", `policy: ./policy.yaml
cases:
  - name: one
    request: {agent_id: a, action: job.x, estimated_cost_usd: abc, itmes: 3}
    state: {spent: {fleat: 3}, last_anomaly: soon}
    expect: {decision: perhaps, constraints: {rate_limit: 3/fortnight}}
  - request: 5
`, exitUsage, []string{
			`:4: cases[0].request.estimated_cost_usd: invalid decimal "abc"`,
			":4: cases[0].request.itmes: unknown key (want one of: action, agent_id,",
			":5: cases[0].state.spent.fleat: unknown key (want one of: agent, fleet, run, team)",
			`:5: cases[0].state.last_anomaly: "soon" is not a non-negative duration`,
			`:6: cases[0].expect.decision: "perhaps" is not one of`,
			`:6: cases[0].expect.constraints.rate_limit: "3/fortnight"`,
			`:7: cases[1].request: want a mapping, got "5"`,
			":7: cases[1].name: missing",
			":7: cases[1].expect: missing",
		}},
		{"duplicate names", `policy: ./policy.yaml
cases:
  - {name: same, request: {agent_id: a, action: job.x}, expect: {decision: allow}}
  - {name: same, request: {agent_id: a, action: job.y}, expect: {decision: allow}}
`, exitUsage, []string{`:4: cases[1].name: "same" is also the name of the case on line 3`}},
		{"invalid YAML", "cases: [\n", exitUsage, []string{"cases.yaml:2: invalid YAML: did not find expected node content"}},
		{"model in an approval's constraints", `policy: ./policy.yaml
cases:
  - name: a
    request: {agent_id: a, action: job.x}
    approval:
      id: x
      constraints: {model: cheap}
    expect: {decision: allow}
`, exitUsage, []string{`:7: cases[0].approval.constraints.model: unknown key`}},
		{"empty", "# nothing\n", exitUsage, []string{"cases.yaml:1: empty document"}},
		{"no policy", "cases:\n  - {name: a, request: {agent_id: a, action: job.x}, expect: {decision: allow}}\n",
			exitUsage, []string{"names no policy"}},
		{"missing policy file", "policy: ./gone.yaml\ncases: []\n", exitIO, []string{"gone.yaml"}},
		{"request the API would reject", `policy: ./policy.yaml
cases:
  - {name: spaced, request: {agent_id: a, action: "job x"}, expect: {decision: allow}}
`, exitFindings, []string{"the decision API would reject it: action"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := writeFile(t, dir, "cases.yaml", tt.content)
			code, out, errOut := runCLI(t, "policy", "test", f)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.wantCode, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out+errOut, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errOut)
				}
			}
		})
	}
}

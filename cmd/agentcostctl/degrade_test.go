package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

const degradeCtlPolicy = `version: v1
budgets:
  agents: {a: {limit_usd: 10, window: hour}}
degrade:
  - when: {scope: agent, at: 0.8}
    models: {"gpt-4o*": gpt-4o-mini}
`

// gpt-4o is $2.50 + $10 per million input + output tokens, gpt-4o-mini $0.15 + $0.60 in the
// embedded table: a $3 estimate re-prices to $0.18.
const degradeCtlCases = `policy: ./policy.yaml
now: 2026-03-02T10:15:00Z
cases:
  - name: at the level the cheaper model is answered
    request: {agent_id: a, action: job.llm, estimated_cost_usd: 3, model: gpt-4o}
    state: {spent: {agent: 9}}
    expect: {decision: allow_with_constraints, constraints: {model: gpt-4o-mini}, reserved_usd: "0.18"}
  - name: without a model it is denied
    request: {agent_id: a, action: job.llm, estimated_cost_usd: 3}
    state: {spent: {agent: 9}}
    expect: {decision: deny, rule_id: budget.agent}
  - name: below the level the asked model runs
    request: {agent_id: a, action: job.llm, estimated_cost_usd: 1, model: gpt-4o}
    expect: {decision: allow, reserved_usd: 1}
  - name: a wrong expectation fails
    request: {agent_id: a, action: job.llm, estimated_cost_usd: 3, model: gpt-4o}
    state: {spent: {agent: 9}}
    expect: {decision: allow_with_constraints, constraints: {model: gpt-4o}, reserved_usd: 3}
`

func TestPolicyTestDegrade(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "policy.yaml", degradeCtlPolicy)
	cases := writeFile(t, dir, "cases.yaml", degradeCtlCases)
	code, out, errOut := runCLI(t, "policy", "test", cases)
	if code != exitFindings {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitFindings, out, errOut)
	}
	for _, want := range []string{
		"PASS  at the level the cheaper model is answered  (allow_with_constraints by default_decision)",
		"PASS  without a model it is denied  (deny by budget.agent)",
		"PASS  below the level the asked model runs  (allow by default_decision)",
		`constraints.model: got "gpt-4o-mini", want "gpt-4o"`,
		"reserved_usd: got 0.18, want 3",
		"3 passed, 1 failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPolicyExplainDegrade(t *testing.T) {
	dir := t.TempDir()
	pf := writeFile(t, dir, "policy.yaml", degradeCtlPolicy)
	args := []string{"policy", "explain", "--policy", pf, "--agent", "a", "--action", "job.llm", "--estimate", "3",
		"--spent", "agent=9", "--now", "2026-03-02T10:15:00Z", "--model", "gpt-4o"}
	code, out, errOut := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"degrade", `model "gpt-4o" -> "gpt-4o-mini", estimate $3 re-priced to $0.18`, "model=gpt-4o-mini", "allow_with_constraints"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, append(args, "-o", "json")...)
	var ex decisionapi.ExplainResponse
	if err := json.Unmarshal([]byte(out), &ex); err != nil || code != 0 {
		t.Fatalf("json: exit %d %v\n%s", code, err, out)
	}
	if ex.Constraints.Model != "gpt-4o-mini" || ex.BudgetLayers[0].Layer != "degrade" {
		t.Fatalf("json explanation %s", out)
	}
}

func TestPolicyLintDegradeTarget(t *testing.T) {
	dir := t.TempDir()
	pf := writeFile(t, dir, "policy.yaml", strings.Replace(degradeCtlPolicy, "gpt-4o-mini", "no-such-model-xyz", 1))
	code, out, errOut := runCLI(t, "policy", "lint", pf)
	if code != exitFindings || !strings.Contains(out, `policy.yaml:6: degrade[0].models["gpt-4o*"]: "no-such-model-xyz" is not in the price table`) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	pf = writeFile(t, dir, "ok.yaml", degradeCtlPolicy)
	if code, out, errOut := runCLI(t, "policy", "lint", pf); code != 0 {
		t.Fatalf("a known target: exit %d\n%s%s", code, out, errOut)
	}
}

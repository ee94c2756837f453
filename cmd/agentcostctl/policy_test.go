package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// testPolicy is the design's policy example.
const testPolicy = `version: v1
policy_version: v1.9.0
default_decision: allow
derive_tags:
  - {tag: high-cost, when: {min_estimated_cost_usd: 5}}
  - {tag: batch, when: {min_items: 100}}
budgets:
  fleet:   {limit_usd: 2000, window: day, throttle_at: 0.80, pause_at: 0.95, throttle_rate: "6/minute"}
  agents:  {research-agent: {limit_usd: 50, window: hour}, drafting-agent: {limit_usd: 20, window: hour}}
  default_agent: {limit_usd: 10, window: hour}
  teams:   {growth: {limit_usd: 500, window: day}}
  runs:    {limit_usd: 25}
  per_action_max_usd: 100
agents:
  billing-agent: {critical: true}
topics:
  "job.research.company": {timeout_seconds: 120, max_retries: 1}
rules:
  - id: throttle-llm-calls
    match: {topics: ["job.*.generate", "job.*.research"], risk_tags: ["high-cost"]}
    decision: allow_with_constraints
    constraints: {max_concurrent: 3, rate_limit: "20/hour", max_runtime_sec: 120, max_tokens: 50000}
    reason: "LLM calls throttled to prevent runaway spend"
  - id: approve-expensive-batch
    match: {topics: ["job.*.batch-generate"], min_estimated_cost_usd: 50}
    decision: require_approval
  - id: throttle-anomalous
    match: {anomaly_within: 10m}
    decision: throttle
`

func TestPolicyLint(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "policy.yaml", testPolicy)
	bad := writeFile(t, dir, "bad.yaml", `version: v1
default_decision: perhaps
budgets:
  fleet: {limit_usd: 100, window: fortnight}
rules:
  - id: budget.mine
    decision: allow
`)
	overlay := writeFile(t, dir, "timeouts.yaml", "topics:\n  job.draft.email: {timeout_seconds: 60}\n")
	badOverlay := writeFile(t, dir, "bad-overlay.yaml", "topics:\n  job.draft.email: {timeout_seconds: -1}\n")

	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantLines []string // each must appear in stdout
		wantErr   string
	}{
		{"good policy", []string{good}, exitOK,
			[]string{good + ": ok: policy_version v1.9.0", "3 rules, default_decision allow"}, ""},
		{"good policy with overlay", []string{good, "--overlay", overlay}, exitOK, []string{": ok:"}, ""},
		{"bad policy", []string{bad}, exitFindings, []string{
			bad + `:2: default_decision: "perhaps" is not one of`,
			bad + `:4: budgets.fleet.window: "fortnight" is not`,
			bad + `:6: rules[0].id: "budget.mine" uses a reserved prefix`,
			bad + ": 3 problem(s)",
		}, ""},
		{"bad overlay", []string{good, "--overlay", badOverlay}, exitFindings,
			[]string{badOverlay + ":2: topics[\"job.draft.email\"].timeout_seconds"}, ""},
		{"missing file", []string{filepath.Join(dir, "nope.yaml")}, exitIO, nil, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"policy", "lint"}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.wantCode, out, errOut)
			}
			for _, l := range tt.wantLines {
				if !strings.Contains(out, l) {
					t.Errorf("stdout lacks %q:\n%s", l, out)
				}
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, errOut)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		code, out, _ := runCLI(t, "policy", "lint", bad, "-o", "json")
		if code != exitFindings {
			t.Fatalf("exit %d", code)
		}
		var res lintResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		if res.Valid || len(res.Errors) != 3 {
			t.Fatalf("got %+v, want 3 errors", res)
		}
		want := lintError{File: bad, Line: 4, Field: "budgets.fleet.window"}
		got := res.Errors[1]
		if got.File != want.File || got.Line != want.Line || got.Field != want.Field || got.Message == "" {
			t.Errorf("errors[1] = %+v, want %+v with a message", got, want)
		}
	})
}

func TestPolicyExplain(t *testing.T) {
	dir := t.TempDir()
	pol := writeFile(t, dir, "policy.yaml", testPolicy)
	base := []string{"policy", "explain", "--policy", pol, "--now", "2026-03-02T10:15:00Z"}

	t.Run("selected rule and budget layers", func(t *testing.T) {
		// $6 derives high-cost, so throttle-llm-calls matches job.company.research; the agent has
		// $3 spent of its $50 hour and the fleet $1700 of $2000 (throttle_at 0.8 = $1600).
		code, out, errOut := runCLI(t, append(base, "--agent", "research-agent", "--action", "job.company.research",
			"--estimate", "6", "--spent", "agent=3", "--spent", "fleet=1700", "--run", "r-1")...)
		if code != exitOK {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		for _, want := range []string{
			"derived tags:  high-cost",
			`approve-expensive-batch  24    require_approval        no        min_estimated_cost_usd: estimate $6 is below $50`,
			`agent "research-agent": spent $3 + reserved $0 + estimate $6 = $9 is within the limit $50 (hour until 2026-03-02T11:00:00Z)`,
			`run "r-1": spent $0 + reserved $0 + estimate $6 = $6 is within the limit $25 (lifetime)`,
			"level throttle",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		for label, want := range map[string]string{
			"decision":    "allow_with_constraints",
			"decided by":  "throttle-llm-calls",
			"constraints": "max_runtime_sec=120 max_concurrent=3 rate_limit=20/hour max_tokens=50000",
			"fleet rate":  `6/minute, counted per fleet/agent:"research-agent"`,
		} {
			if got := labelled(t, out, label); got != want {
				t.Errorf("%s: %q, want %q", label, got, want)
			}
		}
		if f := lineWith(t, out, "throttle-llm-calls "); f[3] != "selected" {
			t.Errorf("throttle-llm-calls row %q, want selected", f)
		}
	})

	t.Run("budget deny with fail-on-deny", func(t *testing.T) {
		// $45 spent + $8 estimate > $50: denied until the hour ends, 45 minutes after 10:15.
		args := append(base, "--agent", "research-agent", "--action", "job.x.generate", "--estimate", "8",
			"--spent", "agent=45")
		code, out, _ := runCLI(t, args...)
		if code != exitOK || labelled(t, out, "decision") != "deny" || labelled(t, out, "decided by") != "budget.agent" {
			t.Fatalf("exit %d, want 0 and a deny by budget.agent:\n%s", code, out)
		}
		if got, want := labelled(t, out, "retry after"), fmt.Sprintf("%ds", 45*60); got != want {
			t.Errorf("retry after %q, want %q", got, want)
		}
		if code, _, _ := runCLI(t, append(args, "--fail-on-deny")...); code != exitFindings {
			t.Errorf("--fail-on-deny: exit %d, want %d", code, exitFindings)
		}
	})

	t.Run("json has the API's shape", func(t *testing.T) {
		code, out, _ := runCLI(t, append(base, "--agent", "drafting-agent", "--action", "job.draft.email",
			"--estimate", "1", "--last-anomaly", "4m", "-o", "json")...)
		if code != exitOK {
			t.Fatalf("exit %d", code)
		}
		var r decisionapi.ExplainResponse
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		if r.Decision != decisionapi.DecisionThrottle || r.SelectedRule != "throttle-anomalous" || len(r.Rules) != 3 {
			t.Fatalf("got decision %s by %q with %d rules, want throttle by throttle-anomalous", r.Decision, r.SelectedRule, len(r.Rules))
		}
		agent, ok := r.Budget["agent"]
		if !ok || agent.LimitUSD != 20 || agent.Window != "hour" || agent.Level != decisionapi.LevelNormal {
			t.Errorf("agent budget %+v, want the $20 hour budget at level normal", agent)
		}
	})

	usage := []struct {
		name string
		args []string
		want string
	}{
		{"missing agent", []string{"--action", "job.a"}, "--policy, --agent and --action are required"},
		{"bad scope", []string{"--agent", "a", "--action", "job.a", "--spent", "galaxy=1"}, `--spent "galaxy=1"`},
		{"bad amount", []string{"--agent", "a", "--action", "job.a", "--estimate", "lots"}, `--estimate "lots"`},
		{"invalid topic", []string{"--agent", "a", "--action", "job a"}, "invalid request: action"},
		{"bad duration", []string{"--agent", "a", "--action", "job.a", "--last-anomaly", "soon"}, "--last-anomaly"},
	}
	for _, tt := range usage {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, append(base, tt.args...)...)
			if code != exitUsage || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, exitUsage, tt.want)
			}
		})
	}

	t.Run("invalid policy is a finding", func(t *testing.T) {
		bad := writeFile(t, dir, "bad.yaml", "version: v1\ndefault_decision: perhaps\n")
		code, _, errOut := runCLI(t, "policy", "explain", "--policy", bad, "--agent", "a", "--action", "job.a")
		if code != exitFindings || !strings.Contains(errOut, bad+":2: default_decision") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
}

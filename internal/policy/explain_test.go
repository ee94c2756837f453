package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestExplain(t *testing.T) {
	p := mustLoad(t, designPolicy)
	now := time.Date(2026, time.March, 11, 10, 40, 0, 0, time.UTC)
	req := Request{AgentID: "research-agent", Action: "job.leads.generate", EstimatedCost: usdOf(t, "6"), Items: 3, RunID: "r1"}
	var st State
	st.Usage[ScopeAgent] = Usage{Spent: usdOf(t, "40")}
	st.Usage[ScopeFleet] = Usage{Spent: usdOf(t, "1700")}

	ex := Explain(p, req, st, now)
	if ex.Outcome != Evaluate(p, req, st, now) {
		t.Fatalf("Explain's outcome differs from Evaluate's")
	}
	// $6 ≥ $5 derives high-cost; 3 items do not derive batch.
	if strings.Join(ex.DerivedTags, ",") != "high-cost" {
		t.Errorf("derived tags %v", ex.DerivedTags)
	}
	if ex.SelectedRule != "throttle-llm-calls" || len(ex.Rules) != 3 {
		t.Fatalf("selected %q of %d rules", ex.SelectedRule, len(ex.Rules))
	}
	wantRules := []struct {
		id      string
		line    int // in testdata/design.yaml
		matched bool
		why     []string // substrings, one per failed matcher
	}{
		{"throttle-llm-calls", 19, true, nil},
		{"approve-expensive-batch", 24, false, []string{
			"min_estimated_cost_usd: estimate $6 is below $50",
			`topics: "job.leads.generate" matches none of ["job.*.batch-generate"]`,
		}},
		{"throttle-anomalous", 27, false, []string{"anomaly_within: no anomaly within 10m0s (last: never)"}},
	}
	for i, w := range wantRules {
		r := ex.Rules[i]
		if r.ID != w.id || r.Line != w.line || r.Matched != w.matched || r.Selected != (i == 0) || len(r.Why) != len(w.why) {
			t.Errorf("rule %d: %+v, want %+v", i, r, w)
			continue
		}
		for j := range w.why {
			if r.Why[j] != w.why[j] {
				t.Errorf("rule %s why[%d] = %q, want %q", r.ID, j, r.Why[j], w.why[j])
			}
		}
	}
	layers := map[string]LayerTrace{}
	for _, l := range ex.Layers {
		layers[l.Layer] = l
	}
	wantLayers := []struct {
		layer   string
		verdict Decision
		detail  string
	}{
		{"per_action_cap", Allow, "estimate $6 is within per_action_max_usd $100"},
		{"approval", Allow, "no approved approval"},
		{"run", Allow, `run "r1": spent $0 + reserved $0 + estimate $6 = $6 is within the limit $25 (lifetime)`},
		{"agent", Allow, `agent "research-agent": spent $40 + reserved $0 + estimate $6 = $46 is within the limit $50 (hour until 2026-03-11T11:00:00Z)`},
		{"team", Allow, "the request names no team, so no team budget applies"}, // the policy budgets teams (issue 13 item 7)
		{"fleet", Allow, "spent $1700 + reserved $0 = $1700 of $2000 per day (throttle_at 0.8, pause_at 0.95): level throttle; limited to 6/minute per agent"},
	}
	if len(ex.Layers) != len(wantLayers) {
		t.Fatalf("%d layers", len(ex.Layers))
	}
	for _, w := range wantLayers {
		l := layers[w.layer]
		if l.Verdict != w.verdict || l.Detail != w.detail {
			t.Errorf("layer %s: %v %q\nwant %v %q", w.layer, l.Verdict, l.Detail, w.verdict, w.detail)
		}
	}
	if _, err := json.Marshal(ex); err != nil {
		t.Fatalf("explanation does not encode: %v", err)
	}
}

func TestExplainDenials(t *testing.T) {
	p := mustParse(t, `
version: v1
derive_tags: [{tag: big, when: {min_items: 10}}]
budgets:
  per_action_max_usd: 5
  default_agent: {limit_usd: 10, window: day}
  fleet: {limit_usd: 100, window: month}
rules:
  - {id: tagged, match: {risk_tags: [big, pii], agents: [x]}, decision: deny}
  - {id: all, decision: require_approval}
  - {id: later, decision: allow}
`)
	req := Request{AgentID: "a", EstimatedCost: usdOf(t, "6"), Items: 20, Approval: &ApprovedApproval{ID: "ap-9", CostCap: usdOf(t, "5.5")}}
	var st State
	st.Usage[ScopeAgent].Spent = usdOf(t, "5")
	st.Usage[ScopeFleet].Spent = usdOf(t, "96")
	ex := Explain(p, req, st, noon)

	if got := ex.Rules[0].Why; len(got) != 2 ||
		got[0] != `agents: "a" is not one of ["x"]` ||
		got[1] != `risk_tags: missing ["pii"] (request tags [], derived ["big"])` {
		t.Errorf("tagged: %q", got)
	}
	if ex.Rules[2].Matched != true || ex.Rules[2].Selected || !strings.Contains(ex.Rules[2].Why[0], `rule "all" came first`) {
		t.Errorf("later: %+v", ex.Rules[2])
	}
	verdicts := map[string]Decision{}
	for _, l := range ex.Layers {
		verdicts[l.Layer] = l.Verdict
	}
	want := map[string]Decision{"per_action_cap": Deny, "approval": Deny, "run": Allow, "agent": Deny, "team": Allow, "fleet": Allow}
	for k, v := range want {
		if verdicts[k] != v {
			t.Errorf("layer %s: %v, want %v", k, verdicts[k], v)
		}
	}
	if ex.Outcome.Decision != Deny || ex.Outcome.RuleID != RulePerActionCap {
		t.Errorf("outcome %v %q", ex.Outcome.Decision, ex.Outcome.RuleID)
	}
}

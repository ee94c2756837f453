package budgetreceiver

import (
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/internal/pricing"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

const degradeTestPolicy = `version: v1
policy_version: degrade-1
budgets:
  agents: {a: {limit_usd: 10, window: day}}
degrade:
  - when: {scope: agent, at: 0.8}
    models: {"gpt-4o*": gpt-4o-mini}
`

// TestDegradeOverHTTP: with the agent's budget at its degrade level, a request naming gpt-4o is
// answered allow_with_constraints with constraints.model gpt-4o-mini, and the reservation holds
// the estimate re-priced by the embedded price table, not the request's; without a model the
// same request is denied, and the explanation shows the swap.
func TestDegradeOverHTTP(t *testing.T) {
	e := startEnv(t, degradeTestPolicy)
	fill := e.decide("", decisionapi.DecisionRequest{AgentID: "a", Action: "job.fill", EstimatedCostUSD: 9})
	if fill.Decision != decisionapi.DecisionAllow || fill.Constraints.Model != "" {
		t.Fatalf("filling decision: %+v", fill)
	}
	req := decisionapi.DecisionRequest{AgentID: "a", Action: "job.llm", EstimatedCostUSD: 3, Model: "gpt-4o"}

	// Explain first: it reserves nothing.
	status, body := e.do(http.MethodPost, decisionapi.PathExplain, "", req)
	if status != http.StatusOK {
		t.Fatalf("explain: %d %s", status, body)
	}
	var ex decisionapi.ExplainResponse
	mustUnmarshal(t, body, &ex)
	if ex.Decision != decisionapi.DecisionAllowWithConstraints || ex.Constraints.Model != "gpt-4o-mini" ||
		len(ex.BudgetLayers) == 0 || ex.BudgetLayers[0].Layer != "degrade" || !strings.Contains(ex.BudgetLayers[0].Detail, `"gpt-4o" -> "gpt-4o-mini"`) {
		t.Fatalf("explain: %s", body)
	}

	d := e.decide("", req)
	if d.Decision != decisionapi.DecisionAllowWithConstraints || d.Constraints.Model != "gpt-4o-mini" || d.LeaseID == "" {
		t.Fatalf("degraded decision: %+v", d)
	}
	tab, err := pricing.Load(true)
	if err != nil {
		t.Fatal(err)
	}
	want, ok := tab.Reprice(usd(t, "3"), "gpt-4o", "gpt-4o-mini")
	if !ok || want >= usd(t, "1") {
		t.Fatalf("re-estimate %s %v: want a priced swap well below $3", want, ok)
	}
	b := e.budget("agent", "a")
	if got := usd(t, "9") + want; math.Abs(b.ReservedUSD-got.USD()) > 1e-9 {
		t.Fatalf("reserved $%v, want $9 + the re-estimate %s = %s", b.ReservedUSD, want, got)
	}
	e.release("", d.LeaseID, decisionapi.ReleaseRequest{})

	// Without a model, or with one the policy does not map, degrade does not apply: denied.
	for _, model := range []string{"", "mistral-large-latest"} {
		r := req
		r.Model = model
		if d := e.decide("", r); d.Decision != decisionapi.DecisionDeny || d.Constraints.Model != "" {
			t.Fatalf("model %q: %+v, want deny", model, d)
		}
	}

	// A bad model is a 400 naming the field; a reviewer cannot set constraints.model.
	bad := req
	bad.Model = " gpt-4o"
	status, body = e.do(http.MethodPost, decisionapi.PathDecisions, "", bad)
	if status != http.StatusBadRequest || apiError(t, body).Field != "model" {
		t.Fatalf("bad model: %d %s", status, body)
	}
}

// TestDegradeBelowLevel: under the level the asked model runs and its own estimate is reserved.
func TestDegradeBelowLevel(t *testing.T) {
	e := startEnv(t, degradeTestPolicy)
	d := e.decide("", decisionapi.DecisionRequest{AgentID: "a", Action: "job.llm", EstimatedCostUSD: 3, Model: "gpt-4o"})
	if d.Decision != decisionapi.DecisionAllow || d.Constraints.Model != "" {
		t.Fatalf("below the level: %+v", d)
	}
	if b := e.budget("agent", "a"); b.ReservedUSD != 3 {
		t.Fatalf("reserved $%v, want $3", b.ReservedUSD)
	}
}

// TestDegradeUnknownTargetRefused: a policy whose degrade target the price table does not know
// is refused on reload (the policy in force stays), naming the file, line and field.
func TestDegradeUnknownTargetRefused(t *testing.T) {
	e := startEnv(t, degradeTestPolicy)
	tmp := filepath.Join(e.dir, "policy.tmp")
	bad := strings.Replace(strings.Replace(degradeTestPolicy, "gpt-4o-mini", "no-such-model-xyz", 1), "degrade-1", "degrade-2", 1)
	if err := os.WriteFile(tmp, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, e.policyPath); err != nil {
		t.Fatal(err)
	}
	e.waitMetric(NamePolicyReloadErrors, func(v float64) bool { return v >= 1 })
	if d := e.decide("", decisionapi.DecisionRequest{AgentID: "a", Action: "job.llm"}); d.PolicyVersion != "degrade-1" {
		t.Fatalf("policy %q in force, want degrade-1 kept", d.PolicyVersion)
	}
	found := false
	for _, l := range e.logged.FilterMessage("Policy reload failed; the policy in force stays").All() {
		for _, f := range l.Context {
			if f.Key == "error" && strings.Contains(f.Interface.(error).Error(), `:7: degrade[0].models["gpt-4o*"]: "no-such-model-xyz" is not in the price table`) {
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("no reload error naming the line and field: %v", e.logged.All())
	}
}

// TestPricesConfigValidate: the prices key names itself.
func TestPricesConfigValidate(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if !cfg.Prices.Embedded {
		t.Fatal("prices.embedded defaults to false")
	}
	if err := (PricesConfig{}).validate(); err == nil || !strings.Contains(err.Error(), "prices: embedded is false") {
		t.Fatalf("validate without prices: %v", err)
	}
	if err := (PricesConfig{Embedded: true, Files: []string{" "}}).validate(); err == nil || err.Error() != "prices.files[0]: empty path" {
		t.Fatalf("validate with an empty path: %v", err)
	}
	if _, err := (PricesConfig{Files: []string{filepath.Join(t.TempDir(), "missing.yaml")}}).load(0); err == nil || !strings.HasPrefix(err.Error(), "prices: ") {
		t.Fatalf("load of a missing file: %v", err)
	}
}

// TestREADMEDegradeExample: the README's degrade block is a valid policy part whose targets the
// embedded table knows.
func TestREADMEDegradeExample(t *testing.T) {
	_, after, ok := strings.Cut(readme(t), "## Degrade before deny")
	if !ok {
		t.Fatal("README has no Degrade before deny section")
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	if !ok {
		t.Fatal("the section has no yaml block")
	}
	block, _, _ = strings.Cut(block, "```")
	p, err := policy.Parse("README.md", []byte("version: v1\nbudgets: {default_agent: {limit_usd: 10, window: day}}\n"+block))
	if err != nil {
		t.Fatal(err)
	}
	tab, err := pricing.Load(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckModels(tab.Knows); err != nil || len(p.DegradeTargets()) != 2 {
		t.Fatalf("targets %+v: %v", p.DegradeTargets(), err)
	}
}

package sim

import (
	"bytes"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/pricing"
	"github.com/agentcost/agentcost/pkg/decisionapi"
	"github.com/agentcost/agentcost/pkg/guard"
)

// TestSummarizeDegrade: only actions that ran on the cheaper model count in the degrade report,
// with what they cost and would have cost; the text report says so.
func TestSummarizeDegrade(t *testing.T) {
	usd := func(n int64) money.Nanos { return money.Nanos(n * money.NanosPerUSD) }
	acts := []*Action{{Seq: 1, Agent: "x", Cost: usd(10)}, {Seq: 2, Agent: "x", Cost: usd(10)}, {Seq: 3, Agent: "x", Cost: usd(10)}}
	plan := &Plan{Actions: acts, Cost: usd(30)}
	outcomes := []Outcome{
		{Action: acts[0], Status: StatusRan, Cost: usd(10)},
		{Action: acts[1], Status: StatusRan, Cost: usd(1), DegradedTo: "cheap", AskedCost: usd(10)},
		{Action: acts[2], Status: StatusDenied, RuleID: "budget.agent", DegradedTo: "cheap"},
	}
	r := Summarize(plan, outcomes, RunInfo{Scenario: "runaway", Governed: true, DegradeTo: &Pricer{Model: "cheap"}})
	d := r.Degrade
	if d == nil || d.Model != "cheap" || d.Actions != 1 || d.Cost != usd(1) || d.AskedCost != usd(10) || r.Ran.Cost != usd(11) {
		t.Fatalf("degrade %+v, ran %+v", d, r.Ran)
	}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "1 actions ran on cheap for $1.00") {
		t.Fatalf("text report:\n%s", b.String())
	}
	if r := Summarize(plan, outcomes, RunInfo{Scenario: "runaway", Governed: true}); r.Degrade != nil {
		t.Fatalf("a fleet without DegradeTo has a degrade report: %+v", r.Degrade)
	}
}

// TestPricerFor: the fleet calls its own model, the DegradeTo model a decision names, and
// refuses any other.
func TestPricerFor(t *testing.T) {
	tab, err := pricing.Load(true)
	if err != nil {
		t.Fatal(err)
	}
	big, err := NewPricer(tab, "gpt-4o", "openai")
	if err != nil {
		t.Fatal(err)
	}
	small, err := NewPricer(tab, "gpt-4o-mini", "openai")
	if err != nil {
		t.Fatal(err)
	}
	f := &Fleet{cfg: FleetConfig{Pricer: big, DegradeTo: small}}
	for model, want := range map[string]*Pricer{"": big, "gpt-4o": big, "GPT-4o-mini": small} {
		if p, err := f.pricerFor(decisionWithModel(model)); err != nil || p != want {
			t.Errorf("model %q: %v %v", model, p, err)
		}
	}
	if _, err := f.pricerFor(decisionWithModel("o1")); err == nil || !strings.Contains(err.Error(), `"o1"`) {
		t.Errorf("an unknown model: %v", err)
	}
}

func decisionWithModel(model string) *guard.Decision {
	return &guard.Decision{DecisionResponse: decisionapi.DecisionResponse{Constraints: decisionapi.Constraints{Model: model}}}
}

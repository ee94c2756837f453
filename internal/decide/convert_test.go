package decide

import (
	"testing"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// The decision API carries dollars; the engine converts a validated request's amounts to exact
// nano-dollars at the boundary.

func TestEstimatedCostIsExact(t *testing.T) {
	cases := []struct {
		usd  float64
		want money.Nanos
	}{
		{0.1, 100_000_000},
		{1.25, 1_250_000_000},
		{0.000000001, 1},
		{0.0000000015, 2}, // half-even: 1.5 nano-dollars rounds to 2
		{0.0000000025, 2}, // 2.5 rounds to 2
		{999_999_999.5, money.MaxNanos - money.NanosPerUSD/2},
	}
	for _, c := range cases {
		r := decisionapi.DecisionRequest{AgentID: "a", Action: "x", EstimatedCostUSD: c.usd}
		err := r.Validate()
		if got := requestOf(&r).EstimatedCost; err != nil || got != c.want {
			t.Errorf("EstimatedCost(%v) = %d, %v; want %d", c.usd, got, err, c.want)
		}
	}
}

func TestCostAccessors(t *testing.T) {
	cost := 0.3
	rel := decisionapi.ReleaseRequest{ActualCostUSD: &cost}
	err := rel.Validate()
	if n, given := optionalNanos(rel.ActualCostUSD); err != nil || !given || n != 300_000_000 {
		t.Errorf("ActualCost = %d, %v, %v", n, given, err)
	}
	if _, given := optionalNanos((&decisionapi.ReleaseRequest{}).ActualCostUSD); given {
		t.Errorf("absent ActualCost = %v", given)
	}
	ap := decisionapi.ApproveRequest{CostCapUSD: &cost}
	err = ap.Validate()
	if n, given := optionalNanos(ap.CostCapUSD); err != nil || !given || n != 300_000_000 {
		t.Errorf("CostCap = %d, %v, %v", n, given, err)
	}
}

func TestParseFailMode(t *testing.T) {
	for _, m := range []FailMode{FailClosed, FailOpen} {
		if got, ok := ParseFailMode(m.String()); !ok || got != m {
			t.Errorf("ParseFailMode(%q) = %v, %v", m, got, ok)
		}
	}
	if _, ok := ParseFailMode("fail_sideways"); ok {
		t.Error("an unknown fail mode parsed")
	}
}

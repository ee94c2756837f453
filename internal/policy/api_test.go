package policy

import (
	"testing"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

func TestConstraintsRoundTrip(t *testing.T) {
	rate, err := ParseRateLimit("20/hour")
	if err != nil {
		t.Fatal(err)
	}
	in := Constraints{MaxRuntimeSec: LimitOf(120), MaxRetries: LimitOf(0), RateLimit: rate, MaxTokens: LimitOf(5000)}
	wire := in.API()
	if wire.RateLimit != "20/hour" || *wire.MaxRetries != 0 || wire.MaxConcurrent != nil || *wire.MaxRuntimeSec != 120 {
		t.Fatalf("API = %+v", wire)
	}
	back, err := ConstraintsFromAPI(wire)
	if err != nil || back != in {
		t.Errorf("round trip %+v (%v), want %+v", back, err, in)
	}
	if _, err := ConstraintsFromAPI(decisionapi.Constraints{RateLimit: "lots"}); err == nil {
		t.Error("a bad rate limit converted")
	}
}

// TestConstraintsAPIAllocations: the wire form allocates one pointer per set limit and nothing
// else (it runs on every allowed decision).
func TestConstraintsAPIAllocations(t *testing.T) {
	none, two := Constraints{}, Constraints{MaxRetries: LimitOf(0), MaxTokens: LimitOf(100)}
	if n := testing.AllocsPerRun(100, func() { _ = none.API() }); n != 0 {
		t.Errorf("no constraints: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = two.API() }); n != 2 {
		t.Errorf("two limits: %v allocations, want 2", n)
	}
}

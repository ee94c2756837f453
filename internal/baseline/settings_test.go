package baseline

import (
	"strings"
	"testing"

	"github.com/agentcost/agentcost/internal/money"
)

// TestSettingsConvert: the defaults convert to DefaultConfig with the component's warm-up, the
// older warmup spelling wins when set, and every bad value is named by its YAML key.
func TestSettingsConvert(t *testing.T) {
	c, err := DefaultSettings(5).Config()
	want := DefaultConfig()
	want.WarmUp, want.MaxKeys = 5, 10000
	if err != nil || c != want {
		t.Fatalf("defaults convert to %+v, %v; want %+v", c, err, want)
	}
	s := DefaultSettings(5)
	s.Warmup = 7
	if c, err := s.Config(); err != nil || c.WarmUp != 7 {
		t.Errorf("warmup 7 over warmup_calls 5: %d, %v; want 7", c.WarmUp, err)
	}
	s = DefaultSettings(5)
	s.MinCostUSD = 0.25
	if c, _ := s.Config(); c.Floor != money.NanosPerUSD/4 {
		t.Errorf("min_cost_usd 0.25 is a floor of %s", c.Floor)
	}
	for _, tc := range []struct {
		key string
		bad func(*Settings)
	}{
		{"baseline.multiplier:", func(s *Settings) { s.Multiplier = 1 }},
		{"baseline.warmup_calls:", func(s *Settings) { s.WarmupCalls = 0 }},
		{"baseline.warmup:", func(s *Settings) { s.Warmup = -1 }},
		{"baseline.min_cost_usd:", func(s *Settings) { s.MinCostUSD = -1 }},
		{"baseline.alpha:", func(s *Settings) { s.Alpha = 0 }},
		{"baseline.max_keys:", func(s *Settings) { s.MaxKeys = 0 }},
		{"baseline.clip:", func(s *Settings) { s.Clip = 2 }},
		{"baseline.shift_calls:", func(s *Settings) { s.ShiftCalls = 0 }},
		{"baseline.escalation_calls:", func(s *Settings) { s.EscalationCalls = 2 }},
		{"baseline.escalation_growth:", func(s *Settings) { s.EscalationGrowth = 0 }},
		{"baseline.escalation_ratio:", func(s *Settings) { s.EscalationRatio = 0.5 }},
	} {
		s := DefaultSettings(5)
		tc.bad(&s)
		if _, err := s.Config(); err == nil || !strings.HasPrefix(err.Error(), tc.key) {
			t.Errorf("%s: error %v does not name the key", tc.key, err)
		}
	}
	s = DefaultSettings(5)
	s.EscalationCalls, s.EscalationGrowth = 0, 0 // off: the growth is not checked
	if _, err := s.Config(); err != nil {
		t.Errorf("escalation off: %v", err)
	}
}

// TestCheckDoesNotObserve: Check judges a running total against the baseline without moving it,
// and only once the key is warm.
func TestCheckDoesNotObserve(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WarmUp = 3
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const dime = money.NanosPerUSD / 10
	if r := s.Check("k", 10*dime); r.Anomalous || r.Count != 0 {
		t.Errorf("unknown key: %+v", r)
	}
	for range 2 {
		s.Observe("k", dime)
	}
	if r := s.Check("k", 10*dime); r.Anomalous || r.Warm {
		t.Errorf("cold key flagged: %+v", r)
	}
	s.Observe("k", dime)
	if r := s.Check("k", 3*dime-1); r.Anomalous || !r.Warm {
		t.Errorf("just under 3x: %+v", r)
	}
	if r := s.Check("k", 3*dime); !r.Anomalous || r.Baseline != dime || r.Ratio != 3 {
		t.Errorf("at 3x: %+v", r)
	}
	if b, n, _ := s.Lookup("k"); b != dime || n != 3 {
		t.Errorf("Check moved the baseline: %s after %d observations", b, n)
	}
}

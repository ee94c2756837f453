package baseline

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/agentcost/agentcost/internal/money"
)

// The estimator's targets, asserted on fixed-seed cost sequences: a creeping loop is flagged within
// 3 calls of its cost reaching 3x the key's pre-loop baseline and escalating before it; a single
// spike is flagged; a genuine level shift stops being flagged within 20 calls and is reported as a
// level shift; ordinary variance (lognormal, sigma 0.35) is flagged at most 0.2% of the time; a slow
// drift over a day is not flagged.

const cent = money.NanosPerUSD / 100

// lognormal returns a multiplicative noise factor exp(N(0, sigma²)).
func lognormal(rng *rand.Rand, sigma float64) float64 {
	return math.Exp(rng.NormFloat64() * sigma)
}

func nanos(usdAmount float64) money.Nanos {
	return money.Nanos(math.Round(usdAmount * money.NanosPerUSD))
}

func TestCreepingLoopIsFlaggedEarly(t *testing.T) {
	for _, tc := range []struct {
		name   string
		growth float64 // per call
		sigma  float64 // noise on each call
		seed   uint64
	}{
		{"10% per call, exact", 0.10, 0, 1},
		{"10% per call, noisy", 0.10, 0.05, 2},
		{"5% per call", 0.05, 0, 3},
		{"20% per call", 0.20, 0, 4},
		{"50% per call", 0.50, 0.05, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tc.seed, 0))
			s := mustNew(t, DefaultConfig())
			for range 30 {
				s.Observe("agent\x00model", nanos(0.01*lognormal(rng, tc.sigma)))
			}
			pre, _, _ := s.Lookup("agent\x00model")
			reached, flagged, escalated := -1, -1, -1
			level := 0.01
			for call := 1; call <= 200 && flagged < 0; call++ {
				level *= 1 + tc.growth
				cost := nanos(level * lognormal(rng, tc.sigma))
				r := s.Observe("agent\x00model", cost)
				if reached < 0 && nanos(level) >= 3*pre {
					reached = call
				}
				if r.Escalating && escalated < 0 {
					escalated = call
				}
				if r.Anomalous {
					flagged = call
				}
				if r.LevelShift {
					t.Fatalf("call %d: a creep was learned as a level shift", call)
				}
			}
			t.Logf("pre-loop baseline %s: 3x reached at call %d, escalating at %d, flagged at %d", pre, reached, escalated, flagged)
			if flagged < 0 || flagged > reached+3 {
				t.Fatalf("flagged at call %d, want within 3 calls of reaching 3x at call %d", flagged, reached)
			}
			// A climb that reaches 3x within three calls can be caught no earlier than the 3x rule.
			if escalated < 0 || escalated > reached || (reached > 3 && escalated == reached) {
				t.Fatalf("escalating at call %d, want before reaching 3x at call %d", escalated, reached)
			}
		})
	}
}

func TestSlowCreepEscalatesBeforeThreeX(t *testing.T) {
	// A creep too slow for the 3x rule alone (3% per call) is reported as escalating before 3x.
	s := mustNew(t, DefaultConfig())
	warm(s, "k", cent, 30)
	level, escalated, reached := 0.01, -1, -1
	for call := 1; call <= 100 && (escalated < 0 || reached < 0); call++ {
		level *= 1.03
		if r := s.Observe("k", nanos(level)); r.Escalating && escalated < 0 {
			escalated = call
		}
		if reached < 0 && nanos(level) >= 3*cent {
			reached = call
		}
	}
	if escalated < 0 || escalated >= reached {
		t.Fatalf("escalating at call %d, want before 3x at call %d", escalated, reached)
	}
}

func TestSpikeIsFlaggedAndForgotten(t *testing.T) {
	s := mustNew(t, DefaultConfig())
	warm(s, "k", cent, 30)
	if r := s.Observe("k", nanos(0.035)); !r.Anomalous {
		t.Fatalf("a 3.5x spike after warm-up = %+v, want anomalous", r)
	}
	for i := range 20 {
		if r := s.Observe("k", cent); r.Anomalous || r.Escalating || r.LevelShift {
			t.Fatalf("ordinary call %d after the spike = %+v", i, r)
		}
	}
	if r := s.Observe("k", nanos(0.035)); !r.Anomalous {
		t.Fatalf("a second 3.5x spike = %+v, want anomalous: one spike must not raise the baseline", r)
	}
}

func TestLevelShiftIsLearned(t *testing.T) {
	for _, tc := range []struct {
		name   string
		factor float64
		seed   uint64
	}{
		{"bigger model, 5x", 5, 11},
		{"longer prompts, 2.5x", 2.5, 12},
		{"10x", 10, 13},
		{"100x", 100, 14},
		{"cheaper model, 0.2x", 0.2, 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tc.seed, 0))
			cfg := DefaultConfig()
			cfg.Floor = 0
			s := mustNew(t, cfg)
			for range 50 {
				s.Observe("k", nanos(0.01*lognormal(rng, 0.35)))
			}
			shiftAt, lastFlag, lateFlags := -1, 0, 0
			for call := 1; call <= 120; call++ {
				r := s.Observe("k", nanos(0.01*tc.factor*lognormal(rng, 0.35)))
				if r.LevelShift && shiftAt < 0 {
					shiftAt = call
				}
				if r.Anomalous {
					lastFlag = call
					if call > 20 {
						lateFlags++
					}
				}
			}
			t.Logf("level shift at call %d; last flag at call %d", shiftAt, lastFlag)
			if tc.factor > 1.5 || tc.factor < 1/1.5 {
				if shiftAt < 0 || shiftAt > 20 {
					t.Fatalf("level shift recorded at call %d, want within 20", shiftAt)
				}
			}
			if lateFlags > 0 {
				t.Fatalf("%d calls flagged after call 20 (last at %d), want none", lateFlags, lastFlag)
			}
		})
	}
}

func TestOrdinaryVarianceFalsePositives(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Floor = 0
	s := mustNew(t, cfg)
	rng := rand.New(rand.NewPCG(42, 0))
	const draws = 100_000
	anomalies, escalations, shifts := 0, 0, 0
	for range draws {
		r := s.Observe("k", nanos(0.01*lognormal(rng, 0.35)))
		if r.Anomalous {
			anomalies++
		}
		if r.Escalating {
			escalations++
		}
		if r.LevelShift {
			shifts++
		}
	}
	t.Logf("lognormal sigma 0.35, %d draws: %.3f%% anomalous, %.3f%% escalating, %d level shifts",
		draws, 100*float64(anomalies)/draws, 100*float64(escalations)/draws, shifts)
	if anomalies > draws*2/1000 || escalations > draws*2/1000 {
		t.Fatalf("%d anomalies and %d escalations in %d draws, want at most 0.2%% each", anomalies, escalations, draws)
	}
}

func TestSlowDriftOverADayIsLearned(t *testing.T) {
	for _, sigma := range []float64{0, 0.35} {
		cfg := DefaultConfig()
		cfg.Floor = 0
		s := mustNew(t, cfg)
		rng := rand.New(rand.NewPCG(7, 0))
		// One call every 30 s for a day, the cost tripling steadily from $0.01 to $0.03.
		const calls = 2880
		flagged := 0
		for i := range calls {
			level := 0.01 * (1 + 2*float64(i)/calls)
			if r := s.Observe("k", nanos(level*lognormal(rng, sigma))); r.Anomalous || r.Escalating {
				flagged++
			}
		}
		// With noise, the ordinary-variance rate applies; without, nothing may be flagged.
		limit := 0
		if sigma > 0 {
			limit = calls * 4 / 1000
		}
		if flagged > limit {
			t.Fatalf("sigma %v: a slow drift flagged %d of %d calls, want at most %d", sigma, flagged, calls, limit)
		}
	}
}

func TestEscalationOff(t *testing.T) {
	cfg := DefaultConfig()
	cfg.EscalationCalls = 0
	s := mustNew(t, cfg)
	warm(s, "k", cent, 30)
	level := 0.01
	for range 40 {
		level *= 1.05
		if r := s.Observe("k", nanos(level)); r.Escalating {
			t.Fatal("escalation reported with escalation_calls 0")
		}
	}
}

package sim

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/pricing"
)

// simPricesFile is the price file agentsim ships for the collector.
const simPricesFile = "../../cmd/agentsim/sim-prices.yaml"

// loadPricer prices model from the given price files alone (no embedded table).
func loadPricer(t testing.TB, model, provider string, files ...string) *Pricer {
	t.Helper()
	var layers []*pricing.Layer
	for _, f := range files {
		l, err := pricing.LoadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	table, err := pricing.Build(layers...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPricer(table, model, provider)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func simPricer(t testing.TB) *Pricer { return loadPricer(t, "sim-llm", "sim", simPricesFile) }

func usdOf(t testing.TB, s string) money.Nanos {
	t.Helper()
	n, err := money.ParseUSD(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// perMillion returns the cost of tokens at an integral dollar price per million tokens: a dollar
// per million tokens is 1,000 nano-dollars per token.
func perMillion(tokens, dollars int64) money.Nanos { return money.Nanos(tokens * dollars * 1000) }

func TestArithmeticFromPriceFile(t *testing.T) {
	other := filepath.Join(t.TempDir(), "prices.yaml")
	if err := os.WriteFile(other, []byte("models:\n  my-llm: {provider: acme, input_per_million: 3, output_per_million: 12}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultRunawayConfig() // 3 agents, 5 sub-calls of 40K in + 10K out, 20 rounds, 10 batches a day
	otherCall := perMillion(40_000, 3) + perMillion(10_000, 12)
	tests := []struct {
		name                          string
		pricer                        *Pricer
		call, round, batch, day       money.Nanos
		wantInPerMillion, wantOutPerM float64
	}{
		{
			// The article: 3 agents x 5 sub-calls x 50K tokens x $0.015/1K = $11.25 per round,
			// $225 per 20-round batch, $2,250 per day of 10 batches.
			name: "the article's sim-llm", pricer: simPricer(t),
			call: usdOf(t, "0.75"), round: usdOf(t, "11.25"), batch: usdOf(t, "225"), day: usdOf(t, "2250"),
			wantInPerMillion: 15, wantOutPerM: 15,
		},
		{
			name: "another price file", pricer: loadPricer(t, "my-llm", "acme", other),
			call: otherCall, round: otherCall * 15, batch: otherCall * 15 * 20, day: otherCall * 15 * 20 * 10,
			wantInPerMillion: 3, wantOutPerM: 12,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := cfg.Arithmetic(tt.pricer)
			if err != nil {
				t.Fatal(err)
			}
			if a.CallCost != tt.call || a.RoundCost != tt.round || a.BatchCost != tt.batch || a.DayCost != tt.day {
				t.Errorf("call %s, round %s, batch %s, day %s; want %s, %s, %s, %s",
					a.CallCost, a.RoundCost, a.BatchCost, a.DayCost, tt.call, tt.round, tt.batch, tt.day)
			}
			if a.CallsPerRound != 15 {
				t.Errorf("calls per round %d, want 3 agents x 5", a.CallsPerRound)
			}
			if in, out := tt.pricer.PerMillion(); in != tt.wantInPerMillion || out != tt.wantOutPerM {
				t.Errorf("per million %v / %v, want %v / %v", in, out, tt.wantInPerMillion, tt.wantOutPerM)
			}
		})
	}
}

func TestRunawayPlan(t *testing.T) {
	p := simPricer(t)
	cfg := DefaultRunawayConfig()
	cfg.Batches = 2
	plan, err := cfg.Runaway(p)
	if err != nil {
		t.Fatal(err)
	}
	a, err := cfg.Arithmetic(p)
	if err != nil {
		t.Fatal(err)
	}
	normal := usdOf(t, "3.75") // 5 sub-calls x $0.75
	// Repeat j re-reads the five transcripts of the previous attempt: 40K + j x 5 x 50K input.
	var loopCost money.Nanos
	for j := int64(1); j <= 5; j++ {
		loopCost += 5 * perMillion(40_000+j*250_000+10_000, 15)
	}
	if want := 2*a.BatchCost + loopCost; plan.Cost != want {
		t.Errorf("plan cost %s, want 2 batches %s + loop %s", plan.Cost, 2*a.BatchCost, loopCost)
	}
	// Per batch: research and enrichment 20 actions each, drafting one; plus 5 loop repeats.
	if got, want := len(plan.Actions), 2*41+5; got != want {
		t.Fatalf("%d actions, want %d", got, want)
	}
	if got, want := plan.AgentCost("research-agent"), 2*20*normal+loopCost; got != want {
		t.Errorf("research-agent plans %s, want %s", got, want)
	}

	var repeats []*Action
	for i, act := range plan.Actions {
		if act.Seq != i+1 {
			t.Fatalf("action %d has seq %d", i, act.Seq)
		}
		var sum money.Nanos
		for _, c := range act.Calls {
			sum += c.Cost
		}
		if sum != act.Cost {
			t.Errorf("action %d: cost %s, calls sum to %s", act.Seq, act.Cost, sum)
		}
		wantRun := "sim-" + act.Agent + "-b" + string(rune('0'+act.Batch))
		if act.RunID != wantRun {
			t.Errorf("action %d: run %q, want %q", act.Seq, act.RunID, wantRun)
		}
		batchStart := time.Duration(act.Batch-1) * 144 * time.Minute // a day / 10 batches
		switch {
		case act.Repeat > 0:
			repeats = append(repeats, act)
		case act.Agent == "drafting-agent":
			fiftyUSD := usdOf(t, "50")
			if act.Topic != "job.draft.batch-generate" || act.Items != 100 || len(act.Calls) != 100 || act.At != batchStart || act.Cost < fiftyUSD {
				t.Errorf("drafting action %+v: want one batch-generate of 100 calls above $50 at the batch's start", act)
			}
		default:
			if act.Cost != normal || len(act.Calls) != 5 || len(act.RiskTags) != 0 {
				t.Errorf("action %d: %d calls costing %s with tags %v, want 5 calls of $3.75 and no tags", act.Seq, len(act.Calls), act.Cost, act.RiskTags)
			}
			if want := batchStart + time.Duration(act.Round-1)*432*time.Second; act.At != want { // 2h24m / 20 rounds
				t.Errorf("action %d (batch %d round %d) due at %s, want %s", act.Seq, act.Batch, act.Round, act.At, want)
			}
		}
	}
	if len(repeats) != 5 {
		t.Fatalf("%d loop repeats, want 5", len(repeats))
	}
	for i, r := range repeats {
		if r.Agent != "research-agent" || r.Batch != 2 || r.Round != 1 || r.Repeat != i+1 || r.At != 144*time.Minute {
			t.Errorf("repeat %d: %+v, want research-agent's batch 2 round 1 at 2h24m", i+1, r)
		}
		declared := r.Topic == "job.research.agent-loop" && slices.Equal(r.RiskTags, []string{"unbounded"})
		if plain := r.Topic == "job.research.company" && len(r.RiskTags) == 0; i == 0 && !plain || i > 0 && !declared {
			t.Errorf("repeat %d: topic %q tags %v; want the first as the ordinary topic, the rest declared unbounded loops", i+1, r.Topic, r.RiskTags)
		}
		if i == 0 && r.Cost < 3*normal {
			t.Errorf("first repeat costs %s, less than 3x the normal action's %s", r.Cost, normal)
		}
		if i > 0 && r.Cost <= repeats[i-1].Cost {
			t.Errorf("repeat %d costs %s, not more than repeat %d's %s", i+1, r.Cost, i, repeats[i-1].Cost)
		}
	}
}

func TestRunawayHorizon(t *testing.T) {
	p := simPricer(t)
	tests := []struct {
		name    string
		batches int
		horizon time.Duration
		want    int
	}{
		// Batch 1 (41 actions) ends at 2h24m; by 3h batch 2 has its drafting action, the loop's
		// 5 repeats and rounds 1-5 (due at 2h24m + 0..4 x 7m12s) of research and enrichment.
		{"cut inside batch 2", 0, 3 * time.Hour, 41 + 1 + 5 + 2*5},
		{"batches bound first", 1, 3 * time.Hour, 41},
		{"horizon bound first", 5, 3 * time.Hour, 41 + 1 + 5 + 2*5},
		{"a full day", 0, 24 * time.Hour, 10*41 + 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultRunawayConfig()
			cfg.Batches, cfg.Horizon = tt.batches, tt.horizon
			plan, err := cfg.Runaway(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Actions) != tt.want {
				t.Errorf("%d actions, want %d", len(plan.Actions), tt.want)
			}
			for _, a := range plan.Actions {
				if a.At >= tt.horizon {
					t.Errorf("action %d due at %s, at or past the horizon %s", a.Seq, a.At, tt.horizon)
				}
			}
		})
	}
}

func TestRunawayConfigErrors(t *testing.T) {
	p := simPricer(t)
	tests := []struct {
		name   string
		modify func(*RunawayConfig)
		want   string
	}{
		{"no bound", func(c *RunawayConfig) { c.Batches = 0 }, "one bound is required"},
		{"no fan-out", func(c *RunawayConfig) { c.FanOut = 0 }, "fan-out must be at least 1"},
		{"no tokens", func(c *RunawayConfig) { c.InputTokens, c.OutputTokens = 0, 0 }, "nor both zero"},
		{"negative tokens", func(c *RunawayConfig) { c.InputTokens = -1 }, "must not be negative"},
		{"no rounds", func(c *RunawayConfig) { c.RoundsPerBatch = 0 }, "rounds per batch"},
		{"no batches per day", func(c *RunawayConfig) { c.BatchesPerDay = 0 }, "batches per day"},
		{"unknown loop agent", func(c *RunawayConfig) { c.Loop.Agent = "billing-agent" }, `loop agent "billing-agent" is not one of`},
		{"per-batch loop agent", func(c *RunawayConfig) { c.Loop.Agent = "drafting-agent" }, "runs one action per batch"},
		{"loop without repeats", func(c *RunawayConfig) { c.Loop.Repeats = 0 }, "repeats must be at least 1"},
		{"duplicate agent", func(c *RunawayConfig) { c.Roles = append(c.Roles, c.Roles[0]) }, "appears twice"},
		{"loop past the token bound", func(c *RunawayConfig) { c.Loop.Repeats = 1000 }, "more than 100000000 input tokens"},
		{"plan too large", func(c *RunawayConfig) { c.Batches = 1 << 30 }, "more than 2000000 actions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultRunawayConfig()
			tt.modify(&cfg)
			_, err := cfg.Runaway(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestNewPricerUnknownModel(t *testing.T) {
	l, err := pricing.LoadFile(simPricesFile)
	if err != nil {
		t.Fatal(err)
	}
	table, err := pricing.Build(l)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPricer(table, "gpt-unknown", "openai"); err == nil || !strings.Contains(err.Error(), `"gpt-unknown"`) {
		t.Errorf("error %v, want one naming the model", err)
	}
	// The file's alias prices like the model.
	p, err := NewPricer(table, "sim-llm-latest", "sim")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := p.Cost(50_000, 0); c != usdOf(t, "0.75") {
		t.Errorf("alias prices 50K tokens at %s, want $0.75", c)
	}
}

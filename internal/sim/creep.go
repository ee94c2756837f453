package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/agentcost/agentcost/internal/money"
)

// CreepOptions configures the creep scenario: one agent stuck in a loop whose context grows, so each
// call costs a little more than the last — the runaway the article is about, which a moving average
// follows instead of flagging.
type CreepOptions struct {
	// Fleet is how the agent acts.
	Fleet FleetConfig
	// Agent, Team and Topic attribute the agent's actions (one LLM call each).
	Agent string
	Team  string
	Topic string
	// Warmup is the number of ordinary calls before the loop.
	Warmup int
	// Steps is the number of loop steps planned (the loop's own iteration cap).
	Steps int
	// Growth is how much dearer each loop step's input is than the previous one (0.10: 10%).
	Growth float64
	// InputTokens and OutputTokens are an ordinary call's usage; a loop step's input grows.
	InputTokens  int64
	OutputTokens int64
	// RunPrefix prefixes the idempotency keys and names the run.
	RunPrefix string
	// MetricsURL is the collector's Prometheus endpoint, read after every loop step to find the
	// call that was first flagged; empty skips it.
	MetricsURL string
}

// maxCreepTokens bounds one call's input, which keeps the loop's total in the money range.
const maxCreepTokens = 100_000_000

// Validate reports the first unusable setting.
func (o *CreepOptions) Validate() error {
	switch {
	case o.Agent == "" || o.Topic == "":
		return errors.New("agent and topic are required")
	case o.Warmup < 0:
		return fmt.Errorf("warmup must not be negative, got %d", o.Warmup)
	case o.Steps < 1:
		return fmt.Errorf("steps must be at least 1, got %d", o.Steps)
	case math.IsNaN(o.Growth) || o.Growth <= 0 || o.Growth > 10:
		return fmt.Errorf("growth must be in (0, 10] per step, got %v", o.Growth)
	case o.InputTokens < 1 || o.OutputTokens < 0:
		return errors.New("input tokens must be positive and output tokens not negative")
	case float64(o.InputTokens)*math.Pow(1+o.Growth, float64(o.Steps)) > maxCreepTokens:
		return fmt.Errorf("the loop's last step would read more than %d input tokens; fewer steps or less growth", maxCreepTokens)
	case o.Fleet.Pricer == nil:
		return errors.New("creep: a pricer is required")
	}
	return nil
}

// CreepReport is what the creep scenario adds to a report: where the loop was caught.
type CreepReport struct {
	// NormalCallUSD is an ordinary call's cost; Growth the loop's growth per step.
	NormalCallUSD float64 `json:"normal_call_usd"`
	Growth        float64 `json:"growth_per_step"`
	// ThreeXStep is the first loop step planned at 3x an ordinary call or more.
	ThreeXStep int `json:"three_x_step"`
	// FlaggedStep is the first loop step after which the collector's anomaly counter for the agent
	// rose, at FlaggedLevel escalation or call (0: not flagged, or the metrics were not read);
	// FlaggedSpentUSD is what the loop had spent up to and including it.
	FlaggedStep     int     `json:"flagged_step,omitempty"`
	FlaggedLevel    string  `json:"flagged_level,omitempty"`
	FlaggedSpentUSD float64 `json:"flagged_spent_usd,omitempty"`
	// StoppedStep is the first loop step the decision API did not let run (0: every step ran);
	// StoppedRule its rule and StoppedSpentUSD the loop's spend before it.
	StoppedStep     int     `json:"stopped_step,omitempty"`
	StoppedRule     string  `json:"stopped_rule,omitempty"`
	StoppedSpentUSD float64 `json:"stopped_spent_usd,omitempty"`
	// LoopPlannedUSD and LoopSpentUSD are the loop's cost planned (ungoverned) and run.
	LoopPlannedUSD float64 `json:"loop_planned_usd"`
	LoopSpentUSD   float64 `json:"loop_spent_usd"`
}

// creepPlan returns the scenario's actions: Warmup ordinary calls, then Steps loop steps.
func (o *CreepOptions) creepPlan() (*Plan, error) {
	plan := &Plan{}
	add := func(in int64, repeat int) error {
		cost, err := o.Fleet.Pricer.Cost(in, o.OutputTokens)
		if err != nil {
			return err
		}
		seq := len(plan.Actions) + 1
		a := &Action{Seq: seq, Agent: o.Agent, Team: o.Team, Topic: o.Topic, Repeat: repeat,
			RunID: o.RunPrefix + "-" + o.Agent, Key: fmt.Sprintf("%s-%d", o.RunPrefix, seq),
			Calls: []Call{{Step: fmt.Sprintf("step %d", seq), InputTokens: in, OutputTokens: o.OutputTokens, Cost: cost}}, Cost: cost}
		plan.Actions = append(plan.Actions, a)
		plan.Cost += cost
		return nil
	}
	for range o.Warmup {
		if err := add(o.InputTokens, 0); err != nil {
			return nil, err
		}
	}
	for step := 1; step <= o.Steps; step++ {
		in := int64(math.Round(float64(o.InputTokens) * math.Pow(1+o.Growth, float64(step))))
		if err := add(in, step); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// RunCreep runs the creep scenario: the agent's ordinary calls, then its loop, one action per call
// and in order, through the guard unless the fleet is ungoverned. The report says at which step and
// dollar figure the loop was flagged and then stopped, against the ungoverned plan.
func RunCreep(ctx context.Context, o CreepOptions) (*Report, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	plan, err := o.creepPlan()
	if err != nil {
		return nil, err
	}
	clock, fleet, metrics, err := startRealTime(ctx, o.Fleet, o.MetricsURL)
	if err != nil {
		return nil, err
	}
	stepMetrics := &http.Client{Timeout: 10 * time.Second}
	baseEscalations := map[string]float64{"call": metrics.base[o.Agent]}
	var published float64 // the agent's spend as last read from the metrics
	if o.MetricsURL != "" {
		if m, err := ReadSpend(ctx, stepMetrics, o.MetricsURL); err == nil {
			published = m[o.Agent]
		}
		if m, err := ReadAnomalies(ctx, stepMetrics, o.MetricsURL, "escalation"); err == nil {
			baseEscalations["escalation"] = m[o.Agent]
		}
	}

	normal := plan.Actions[0].Cost
	if o.Warmup == 0 {
		normal, _ = o.Fleet.Pricer.Cost(o.InputTokens, o.OutputTokens)
	}
	cr := &CreepReport{NormalCallUSD: normal.USD(), Growth: o.Growth}
	var loopSpent, loopPlanned money.Nanos
	outcomes := make([]Outcome, len(plan.Actions))
	for i, a := range plan.Actions {
		if a.Repeat > 0 {
			loopPlanned += a.Cost
			if cr.ThreeXStep == 0 && a.Cost >= 3*normal {
				cr.ThreeXStep = a.Repeat
			}
		}
		if ctx.Err() != nil {
			outcomes[i] = Outcome{Action: a, Status: StatusNotRun}
			continue
		}
		outcomes[i] = fleet.Do(ctx, a)
		out := outcomes[i]
		if a.Repeat == 0 {
			continue
		}
		if out.Status != StatusRan && cr.StoppedStep == 0 {
			cr.StoppedStep, cr.StoppedRule, cr.StoppedSpentUSD = a.Repeat, out.RuleID, loopSpent.USD()
		}
		loopSpent += out.Cost
		if cr.FlaggedStep == 0 && o.MetricsURL != "" && out.Status == StatusRan {
			if !o.Fleet.Governed() {
				// Governed actions export their spans before the release; ungoverned ones are
				// exported here so that the counter can show which step was flagged.
				_ = fleet.Flush(ctx, o.Agent, o.Team)
			}
			// The counters show the step once the budget receiver has published its spend.
			if out.Cost > 0 {
				published = WaitSpend(ctx, stepMetrics, o.MetricsURL, o.Agent, published, 2*time.Second)
			}
			for _, level := range []string{"escalation", "call"} {
				if m, err := ReadAnomalies(ctx, stepMetrics, o.MetricsURL, level); err == nil && m[o.Agent] > baseEscalations[level] {
					cr.FlaggedStep, cr.FlaggedLevel, cr.FlaggedSpentUSD = a.Repeat, level, loopSpent.USD()
					break
				}
			}
		}
	}
	cr.LoopPlannedUSD, cr.LoopSpentUSD = loopPlanned.USD(), loopSpent.USD()

	info := RunInfo{Scenario: "creep", Governed: o.Fleet.Governed(), Wall: clock.RealElapsed(), Pricer: o.Fleet.Pricer}
	finish(ctx, fleet, metrics, &info)
	r := Summarize(plan, outcomes, info)
	r.Creep = cr
	return r, nil
}

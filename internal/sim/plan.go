package sim

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/pricing"
)

// Pricer prices the simulated model's calls with one entry of a price table.
type Pricer struct {
	// Model and Provider are the names the spans carry (gen_ai.request.model,
	// gen_ai.provider.name).
	Model    string
	Provider string
	entry    *pricing.Entry
}

// NewPricer looks model up in table the way the collector's processor does.
func NewPricer(table *pricing.Table, model, provider string) (*Pricer, error) {
	e, ok := table.Lookup(model, provider)
	if !ok {
		return nil, fmt.Errorf("model %q (provider %q) has no price in the price table", model, provider)
	}
	return &Pricer{Model: model, Provider: provider, entry: e}, nil
}

// Cost returns the exact cost of one call.
func (p *Pricer) Cost(input, output int64) (money.Nanos, error) {
	c, err := p.entry.Cost(pricing.Usage{InputTokens: input, OutputTokens: output})
	if err != nil {
		return 0, fmt.Errorf("pricing %d input and %d output tokens of %q: %w", input, output, p.Model, err)
	}
	return c.Total, nil
}

// PerMillion returns the standard input and output prices per million tokens, for display.
func (p *Pricer) PerMillion() (input, output float64) {
	r := p.entry.Effective(0, pricing.TierStandard)
	return r.Input.PerMillionUSD(), r.Output.PerMillionUSD()
}

// Call is one planned LLM call.
type Call struct {
	// Step names the sub-call ("company scrape", ...).
	Step string
	// InputTokens and OutputTokens are the call's usage.
	InputTokens  int64
	OutputTokens int64
	// Cost is the call's exact price.
	Cost money.Nanos
}

// Action is one planned guarded action: a decision, then its LLM calls.
type Action struct {
	// Seq numbers the actions of a plan from 1, in plan order.
	Seq int
	// Agent and Team attribute the action.
	Agent string
	Team  string
	// Topic is the action topic the policy matches.
	Topic string
	// RiskTags are the tags the agent declares.
	RiskTags []string
	// Items is the number of items a batch action processes (0: not a batch).
	Items int64
	// At is when the action is due, in simulated time since the start.
	At time.Duration
	// Batch and Round place the action in the runaway plan (1-based; Round 0 for a per-batch
	// action); Repeat numbers the repeats of a stuck loop (0: regular work).
	Batch, Round, Repeat int
	// RunID is the run the action belongs to.
	RunID string
	// Key is the action's idempotency key, unique per simulator process.
	Key string
	// Calls are the action's LLM calls.
	Calls []Call
	// Cost is the sum of the calls' costs: the estimate the agent declares.
	Cost money.Nanos
}

// Tokens returns the action's input and output tokens.
func (a *Action) Tokens() (input, output int64) {
	for _, c := range a.Calls {
		input += c.InputTokens
		output += c.OutputTokens
	}
	return input, output
}

// Role is what a runaway agent does each round or batch.
type Role struct {
	// Agent is the agent's canonical key (service.name, gen_ai.agent.name, agent_id).
	Agent string
	// Topic is its action topic.
	Topic string
	// PerBatch makes the agent run one action per batch that does every round's calls at once
	// (a batch-generate); otherwise it runs one action per round.
	PerBatch bool
	// Steps name its fan-out's sub-calls, cycled.
	Steps []string
}

// DefaultRoles returns the article's three agents.
func DefaultRoles() []Role {
	return []Role{
		{Agent: "research-agent", Topic: "job.research.company",
			Steps: []string{"company scrape", "people lookup", "tech stack analysis", "signal detection", "brief generation"}},
		{Agent: "enrichment-agent", Topic: "job.enrich.contacts",
			Steps: []string{"contact lookup", "email verification", "title normalisation", "firmographics", "dedupe"}},
		{Agent: "drafting-agent", Topic: "job.draft.batch-generate", PerBatch: true,
			Steps: []string{"outline", "first draft", "personalisation", "tone check", "final edit"}},
	}
}

// LoopConfig makes one agent get stuck in a loop.
type LoopConfig struct {
	// Agent is the stuck agent; it must run one action per round. Empty disables the loop.
	Agent string
	// Batch is the batch (1-based) in whose first round the agent gets stuck.
	Batch int
	// Repeats is how often it repeats the round before its framework's iteration cap stops it.
	Repeats int
	// DeclareAfter is how many repeats the agent sends as its ordinary topic before its
	// orchestrator notices the re-entry and declares the rest as "<domain>.agent-loop" with risk
	// tag "unbounded".
	DeclareAfter int
}

// RunawayConfig is the plan of the runaway scenario: the article's arithmetic.
type RunawayConfig struct {
	// Roles are the agents; Team is their team.
	Roles []Role
	Team  string
	// FanOut is the sub-calls per round and agent (5).
	FanOut int
	// InputTokens and OutputTokens are one sub-call's usage (together 50,000).
	InputTokens  int64
	OutputTokens int64
	// RoundsPerBatch is the rounds of fan-out per batch run (20).
	RoundsPerBatch int
	// BatchesPerDay paces the batches back to back: a batch takes a day divided by this (10).
	BatchesPerDay int
	// Batches bounds the plan; 0 leaves only Horizon.
	Batches int
	// Horizon bounds the plan in simulated time: actions due at or after it are not planned; 0
	// leaves only Batches.
	Horizon time.Duration
	// RunPrefix prefixes the run ids ("<prefix>-<agent>-b<batch>"), one run per agent and batch.
	RunPrefix string
	// Loop is the stuck agent.
	Loop LoopConfig
}

// DefaultRunawayConfig returns the article's fleet: three agents, five sub-calls of 50,000 tokens
// per round, 20 rounds per batch, 10 batches a day, research-agent stuck in batch 2.
func DefaultRunawayConfig() RunawayConfig {
	return RunawayConfig{
		Roles:          DefaultRoles(),
		Team:           "growth",
		FanOut:         5,
		InputTokens:    40_000,
		OutputTokens:   10_000,
		RoundsPerBatch: 20,
		BatchesPerDay:  10,
		Batches:        10,
		RunPrefix:      "sim",
		Loop:           LoopConfig{Agent: "research-agent", Batch: 2, Repeats: 5, DeclareAfter: 1},
	}
}

// BatchPeriod is the simulated time one batch takes.
func (c *RunawayConfig) BatchPeriod() time.Duration {
	return 24 * time.Hour / time.Duration(c.BatchesPerDay)
}

// RoundPeriod is the simulated time one round takes.
func (c *RunawayConfig) RoundPeriod() time.Duration {
	return c.BatchPeriod() / time.Duration(c.RoundsPerBatch)
}

// Validate reports the first unusable setting, naming its flag-like field.
func (c *RunawayConfig) Validate() error {
	var errs []error
	if len(c.Roles) == 0 {
		errs = append(errs, errors.New("roles: no agents"))
	}
	seen := map[string]bool{}
	for i, r := range c.Roles {
		if r.Agent == "" || r.Topic == "" {
			errs = append(errs, fmt.Errorf("roles[%d]: agent and topic are required", i))
		}
		if seen[r.Agent] {
			errs = append(errs, fmt.Errorf("roles[%d]: agent %q appears twice", i, r.Agent))
		}
		seen[r.Agent] = true
	}
	if c.FanOut < 1 {
		errs = append(errs, fmt.Errorf("fan-out must be at least 1, got %d", c.FanOut))
	}
	if c.InputTokens < 0 || c.OutputTokens < 0 || c.InputTokens+c.OutputTokens == 0 {
		errs = append(errs, fmt.Errorf("tokens per call: input %d and output %d must not be negative nor both zero", c.InputTokens, c.OutputTokens))
	}
	if c.RoundsPerBatch < 1 {
		errs = append(errs, fmt.Errorf("rounds per batch must be at least 1, got %d", c.RoundsPerBatch))
	}
	if c.BatchesPerDay < 1 {
		errs = append(errs, fmt.Errorf("batches per day must be at least 1, got %d", c.BatchesPerDay))
	}
	if c.Batches < 0 || c.Horizon < 0 || c.Batches == 0 && c.Horizon == 0 {
		errs = append(errs, errors.New("batches or duration: one bound is required and neither may be negative"))
	}
	if c.Loop.Agent != "" {
		role, ok := c.role(c.Loop.Agent)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("loop agent %q is not one of the fleet's agents", c.Loop.Agent))
		case role.PerBatch:
			errs = append(errs, fmt.Errorf("loop agent %q runs one action per batch; pick an agent that runs one per round", c.Loop.Agent))
		case loopTopic(role.Topic) == "":
			errs = append(errs, fmt.Errorf("loop agent %q: topic %q has no domain segment (job.<domain>.<verb>)", c.Loop.Agent, role.Topic))
		}
		if c.Loop.Batch < 1 || c.Loop.Repeats < 1 || c.Loop.DeclareAfter < 0 {
			errs = append(errs, fmt.Errorf("loop: batch and repeats must be at least 1 and declare-after not negative (got %d, %d, %d)",
				c.Loop.Batch, c.Loop.Repeats, c.Loop.DeclareAfter))
		}
	}
	return errors.Join(errs...)
}

func (c *RunawayConfig) role(agent string) (Role, bool) {
	for _, r := range c.Roles {
		if r.Agent == agent {
			return r, true
		}
	}
	return Role{}, false
}

// loopTopic returns "job.<domain>.agent-loop" for "job.<domain>.<verb>", or "" when topic has no
// domain segment.
func loopTopic(topic string) string {
	i := strings.LastIndexByte(topic, '.')
	if i <= 0 {
		return ""
	}
	return topic[:i] + ".agent-loop"
}

// Arithmetic is the article's arithmetic, computed from the price table.
type Arithmetic struct {
	// CallCost is one sub-call.
	CallCost money.Nanos
	// CallsPerRound is agents × fan-out.
	CallsPerRound int
	// RoundCost, BatchCost and DayCost are the fleet's spend per round, batch and day.
	RoundCost money.Nanos
	BatchCost money.Nanos
	DayCost   money.Nanos
}

// Arithmetic returns the fleet's spend per call, round, batch and day without any loop: the
// article's 3 agents × 5 sub-calls × 50K tokens × $0.015/1K = $11.25 per round, $225 per batch,
// $2,250 per day.
func (c *RunawayConfig) Arithmetic(p *Pricer) (Arithmetic, error) {
	call, err := p.Cost(c.InputTokens, c.OutputTokens)
	if err != nil {
		return Arithmetic{}, err
	}
	perRound := len(c.Roles) * c.FanOut
	a := Arithmetic{CallCost: call, CallsPerRound: perRound}
	var ok bool
	if a.RoundCost, ok = mul(call, int64(perRound)); ok {
		if a.BatchCost, ok = mul(a.RoundCost, int64(c.RoundsPerBatch)); ok {
			a.DayCost, ok = mul(a.BatchCost, int64(c.BatchesPerDay))
		}
	}
	if !ok {
		return Arithmetic{}, errors.New("plan arithmetic overflows the money range")
	}
	return a, nil
}

// Plan is a scenario's planned actions and their total.
type Plan struct {
	Actions []*Action
	// Cost is what the fleet spends if every planned action runs ungoverned.
	Cost money.Nanos
}

// AgentCost returns the planned spend of one agent.
func (p *Plan) AgentCost(agent string) money.Nanos {
	var n money.Nanos
	for _, a := range p.Actions {
		if a.Agent == agent {
			n += a.Cost
		}
	}
	return n
}

// maxPlannedActions bounds a plan so that a huge --batches or --duration fails clearly instead of
// exhausting memory.
const maxPlannedActions = 2_000_000

// Runaway plans the runaway scenario: per batch and round, each per-round agent runs one action
// of FanOut calls; each per-batch agent runs one action per batch of FanOut × RoundsPerBatch
// calls; the stuck agent repeats its first round of batch Loop.Batch Loop.Repeats times, each
// repeat re-reading every transcript of the previous attempt, so a repeat's calls grow by FanOut ×
// (input + output) tokens each.
func (c *RunawayConfig) Runaway(p *Pricer) (*Plan, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	batches := c.Batches
	if c.Horizon > 0 {
		// Batches due before the horizon (a partial last batch is cut by the At check below).
		h := int((c.Horizon + c.BatchPeriod() - 1) / c.BatchPeriod())
		if batches == 0 || h < batches {
			batches = h
		}
	}
	perBatch := len(c.Roles)*c.RoundsPerBatch + c.Loop.Repeats
	if batches > maxPlannedActions/perBatch {
		return nil, fmt.Errorf("the plan would hold more than %d actions; lower --batches or --duration", maxPlannedActions)
	}
	plan := &Plan{}
	add := func(a *Action) error {
		if c.Horizon > 0 && a.At >= c.Horizon {
			return nil
		}
		for _, call := range a.Calls {
			a.Cost += call.Cost
		}
		if a.Cost < 0 || plan.Cost > money.MaxNanos-a.Cost {
			return errors.New("the plan's cost exceeds the money range; lower --batches or the loop")
		}
		plan.Cost += a.Cost
		a.Seq = len(plan.Actions) + 1
		plan.Actions = append(plan.Actions, a)
		return nil
	}
	base, err := p.Cost(c.InputTokens, c.OutputTokens)
	if err != nil {
		return nil, err
	}
	calls := func(role Role, n int) []Call {
		out := make([]Call, n)
		for i := range out {
			out[i] = Call{Step: step(role, i), InputTokens: c.InputTokens, OutputTokens: c.OutputTokens, Cost: base}
		}
		return out
	}
	for b := 1; b <= batches; b++ {
		start := time.Duration(b-1) * c.BatchPeriod()
		for _, role := range c.Roles {
			if !role.PerBatch {
				continue
			}
			n := c.FanOut * c.RoundsPerBatch
			if err := add(&Action{Agent: role.Agent, Team: c.Team, Topic: role.Topic, Items: int64(n), At: start,
				Batch: b, RunID: c.runID(role.Agent, b), Calls: calls(role, n)}); err != nil {
				return nil, err
			}
		}
		for r := 1; r <= c.RoundsPerBatch; r++ {
			at := start + time.Duration(r-1)*c.RoundPeriod()
			for _, role := range c.Roles {
				if role.PerBatch {
					continue
				}
				if err := add(&Action{Agent: role.Agent, Team: c.Team, Topic: role.Topic, At: at, Batch: b, Round: r,
					RunID: c.runID(role.Agent, b), Calls: calls(role, c.FanOut)}); err != nil {
					return nil, err
				}
				if role.Agent != c.Loop.Agent || b != c.Loop.Batch || r != 1 {
					continue
				}
				for j := 1; j <= c.Loop.Repeats; j++ {
					a, err := c.repeat(p, role, j)
					if err != nil {
						return nil, err
					}
					a.At, a.Batch, a.Round, a.RunID = at, b, r, c.runID(role.Agent, b)
					if err := add(a); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return plan, nil
}

// repeat plans the j-th repeat of the stuck agent's round.
func (c *RunawayConfig) repeat(p *Pricer, role Role, j int) (*Action, error) {
	growth := int64(c.FanOut) * (c.InputTokens + c.OutputTokens)
	if growth > 0 && int64(j) > (pricing.MaxTokensPerPart-c.InputTokens)/growth {
		return nil, fmt.Errorf("loop repeat %d would send more than %d input tokens per call; lower --loop-repeats", j, pricing.MaxTokensPerPart)
	}
	input := c.InputTokens + int64(j)*growth
	cost, err := p.Cost(input, c.OutputTokens)
	if err != nil {
		return nil, err
	}
	a := &Action{Agent: role.Agent, Team: c.Team, Topic: role.Topic, Repeat: j, Calls: make([]Call, c.FanOut)}
	if j > c.Loop.DeclareAfter {
		a.Topic, a.RiskTags = loopTopic(role.Topic), []string{"unbounded"}
	}
	for i := range a.Calls {
		a.Calls[i] = Call{Step: step(role, i), InputTokens: input, OutputTokens: c.OutputTokens, Cost: cost}
	}
	return a, nil
}

func (c *RunawayConfig) runID(agent string, batch int) string {
	return fmt.Sprintf("%s-%s-b%d", c.RunPrefix, agent, batch)
}

func step(r Role, i int) string {
	if len(r.Steps) == 0 {
		return fmt.Sprintf("step %d", i+1)
	}
	return r.Steps[i%len(r.Steps)]
}

// mul multiplies an amount, reporting overflow of the money range.
func mul(n money.Nanos, k int64) (money.Nanos, bool) {
	if k < 0 || n < 0 || k != 0 && int64(n) > math.MaxInt64/k {
		return 0, false
	}
	r := money.Nanos(int64(n) * k)
	return r, r <= money.MaxNanos
}

package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// SteadyOptions configures the steady scenario: mixed normal traffic at a fixed rate, for load
// tests of the decision API and the span pipeline.
type SteadyOptions struct {
	// Fleet is how the agents act.
	Fleet FleetConfig
	// Agents is the number of agents ("steady-agent-001", ...).
	Agents int
	// Team is their team.
	Team string
	// Rate is the actions per second asked of the whole fleet.
	Rate float64
	// Duration is how long actions are started.
	Duration time.Duration
	// Concurrency bounds the actions in flight; when all are busy the rate achieved drops.
	Concurrency int
	// Seed makes the mix of agents and topics reproducible.
	Seed uint64
	// InputTokens and OutputTokens are one call's usage.
	InputTokens  int64
	OutputTokens int64
	// RunPrefix prefixes the idempotency keys.
	RunPrefix string
	// MetricsURL is read before and after for the per-call anomaly count; empty skips it.
	MetricsURL string
}

// steadyMix is the normal traffic: topic, LLM calls per action, weight.
var steadyMix = []struct {
	topic  string
	calls  int
	weight int
}{
	{"job.research.company", 3, 3},
	{"job.enrich.contacts", 2, 3},
	{"job.draft.email", 1, 3},
	{"job.crm.read", 0, 1},
}

// maxSteadyActions bounds the actions one steady run starts (its report keeps each outcome).
const maxSteadyActions = 5_000_000

// maxSteadyCallTokens bounds one steady call's usage, which keeps the run's total in the money
// range.
const maxSteadyCallTokens = 1_000_000

// Validate reports the first unusable setting.
func (o *SteadyOptions) Validate() error {
	switch {
	case o.Agents < 1:
		return fmt.Errorf("agents must be at least 1, got %d", o.Agents)
	case math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) || o.Rate <= 0:
		return fmt.Errorf("rate must be a positive number of actions per second, got %v", o.Rate)
	case o.Duration <= 0:
		return errors.New("duration must be positive")
	case o.Rate*o.Duration.Seconds() > maxSteadyActions:
		return fmt.Errorf("rate × duration asks for more than %d actions", maxSteadyActions)
	case o.Concurrency < 1:
		return fmt.Errorf("concurrency must be at least 1, got %d", o.Concurrency)
	case o.InputTokens < 0 || o.OutputTokens < 0 || o.InputTokens+o.OutputTokens > maxSteadyCallTokens:
		return fmt.Errorf("tokens per call must not be negative nor exceed %d together", maxSteadyCallTokens)
	case o.Fleet.Pricer == nil:
		return errors.New("steady: a pricer is required")
	}
	return nil
}

// startRealTime starts a fleet on the real clock (speed 1) and reads the anomaly counter at
// metricsURL (empty: not read) before the run.
func startRealTime(ctx context.Context, cfg FleetConfig, metricsURL string) (*Clock, *Fleet, *anomalyReader, error) {
	clock, err := NewClock(1)
	if err != nil {
		return nil, nil, nil, err
	}
	fleet, err := NewFleet(ctx, cfg, clock)
	if err != nil {
		return nil, nil, nil, err
	}
	metrics := newAnomalyReader(metricsURL)
	metrics.before(ctx)
	return clock, fleet, metrics, nil
}

// RunSteady starts actions at Rate per second for Duration, each as a random agent doing a
// random topic of the mix, waits for those in flight, and reports the throughput achieved, the
// decision latency, the spans sent and the errors.
func RunSteady(ctx context.Context, o SteadyOptions) (*Report, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	cost, err := o.Fleet.Pricer.Cost(o.InputTokens, o.OutputTokens)
	if err != nil {
		return nil, err
	}
	clock, fleet, metrics, err := startRealTime(ctx, o.Fleet, o.MetricsURL)
	if err != nil {
		return nil, err
	}

	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	total := 0
	for _, m := range steadyMix {
		total += m.weight
	}
	next := func(seq int) *Action {
		pick := rng.IntN(total)
		mix := steadyMix[0]
		for _, m := range steadyMix {
			if pick < m.weight {
				mix = m
				break
			}
			pick -= m.weight
		}
		a := &Action{Seq: seq, Key: fmt.Sprintf("%s-%d", o.RunPrefix, seq), Agent: fmt.Sprintf("steady-agent-%03d", rng.IntN(o.Agents)+1),
			Team: o.Team, Topic: mix.topic, At: clock.Elapsed(), Calls: make([]Call, mix.calls)}
		for i := range a.Calls {
			a.Calls[i] = Call{Step: fmt.Sprintf("call %d", i+1), InputTokens: o.InputTokens, OutputTokens: o.OutputTokens, Cost: cost}
			a.Cost += cost
		}
		return a
	}

	var (
		mu       sync.Mutex
		plan     = &Plan{}
		outcomes []Outcome
	)
	jobs := make(chan *Action, o.Concurrency)
	var workers sync.WaitGroup
	for range o.Concurrency {
		workers.Go(func() {
			for a := range jobs {
				out := fleet.Do(ctx, a)
				mu.Lock()
				outcomes = append(outcomes, out)
				mu.Unlock()
			}
		})
	}
	interval := time.Duration(float64(time.Second) / o.Rate)
	deadline := time.Now().Add(o.Duration)
	due := time.Now()
dispatch:
	for seq := 1; ; seq++ {
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				break dispatch
			case <-t.C:
			}
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
		a := next(seq)
		select {
		case jobs <- a:
		case <-ctx.Done():
			break dispatch
		}
		plan.Actions = append(plan.Actions, a)
		plan.Cost += a.Cost
		due = due.Add(interval)
		// After a stall (every worker busy) resume at the rate rather than in a burst.
		if time.Since(due) > time.Second {
			due = time.Now()
		}
	}
	close(jobs)
	workers.Wait()

	info := RunInfo{Scenario: "steady", Governed: o.Fleet.Governed(), Wall: clock.RealElapsed(), Pricer: o.Fleet.Pricer,
		TargetRate: o.Rate}
	finish(ctx, fleet, metrics, &info)
	return Summarize(plan, outcomes, info), nil
}

package sim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Report is the result of a scenario run. Dollar amounts are for display; the exact amounts are
// kept in the fields tagged json:"-".
type Report struct {
	Scenario string `json:"scenario"`
	// Mode is governed or ungoverned.
	Mode             string  `json:"mode"`
	Speed            float64 `json:"speed,omitempty"`
	WallSeconds      float64 `json:"wall_seconds"`
	SimulatedSeconds float64 `json:"simulated_seconds,omitempty"`

	Model               string  `json:"model"`
	Provider            string  `json:"provider"`
	InputPerMillionUSD  float64 `json:"input_per_million_usd"`
	OutputPerMillionUSD float64 `json:"output_per_million_usd"`
	// Arithmetic is the runaway plan's arithmetic (per call, round, batch, day).
	Arithmetic *ArithmeticReport `json:"arithmetic,omitempty"`

	// Plan is every planned action as if it ran ungoverned; Ran is the actions that ran, from
	// their usage.
	Plan   Totals        `json:"plan"`
	Ran    Totals        `json:"ran"`
	Agents []AgentReport `json:"agents"`
	// Outcomes counts the planned actions by status.
	Outcomes map[Status]int `json:"outcomes"`
	// DeniedByRule and ThrottledByRule count the actions not run, by deciding rule.
	DeniedByRule    map[string]int `json:"denied_by_rule,omitempty"`
	ThrottledByRule map[string]int `json:"throttled_by_rule,omitempty"`
	// Decisions counts every decision answer (a throttled action asks more than once), and
	// DecisionRules every answer by "<decision> <rule_id>".
	Decisions     map[string]int `json:"decisions,omitempty"`
	DecisionRules map[string]int `json:"decision_rules,omitempty"`
	// Settled is what the collector settled the released leases at.
	Settled   *SettledReport  `json:"settled,omitempty"`
	Fleet     FleetReport     `json:"fleet"`
	Approvals ApprovalsReport `json:"approvals"`
	Anomalies AnomaliesReport `json:"anomalies"`
	// Creep is where the creep scenario's loop was flagged and stopped; nil for other scenarios.
	Creep *CreepReport `json:"creep,omitempty"`
	// Degrade is what ran on a cheaper model because a policy degrade entry answered with it;
	// nil when the fleet named no model (--degrade-to unset).
	Degrade *DegradeReport `json:"degrade,omitempty"`

	DecisionLatency  *LatencyReport `json:"decision_latency,omitempty"`
	TargetRate       float64        `json:"target_rate,omitempty"`
	ActionsPerSecond float64        `json:"actions_per_second"`
	SpansSent        int64          `json:"spans_sent"`
	SpansFailed      int64          `json:"spans_failed"`
	Errors           int            `json:"errors"`
	ErrorSamples     []string       `json:"error_samples,omitempty"`
}

// DegradeReport is the degraded part of a run: the actions the decision API answered with a
// cheaper model, what they cost on it, and what the same calls would have cost on the asked one.
type DegradeReport struct {
	// Model is the cheaper model (--degrade-to).
	Model string `json:"model"`
	// Actions is the number of actions that ran on it.
	Actions int `json:"actions"`
	// Cost and CostUSD are what they cost; AskedCost and AskedCostUSD what the same calls would
	// have cost on the asked model.
	Cost         money.Nanos `json:"cost_nanos"`
	CostUSD      float64     `json:"cost_usd"`
	AskedCost    money.Nanos `json:"asked_cost_nanos"`
	AskedCostUSD float64     `json:"asked_cost_usd"`
}

// ArithmeticReport is Arithmetic for display.
type ArithmeticReport struct {
	CallUSD       float64 `json:"call_usd"`
	CallsPerRound int     `json:"calls_per_round"`
	RoundUSD      float64 `json:"round_usd"`
	BatchUSD      float64 `json:"batch_usd"`
	BatchesPerDay int     `json:"batches_per_day"`
	DayUSD        float64 `json:"day_usd"`
}

// Totals sums actions.
type Totals struct {
	Actions      int         `json:"actions"`
	Calls        int         `json:"calls"`
	InputTokens  int64       `json:"input_tokens"`
	OutputTokens int64       `json:"output_tokens"`
	CostUSD      float64     `json:"cost_usd"`
	Cost         money.Nanos `json:"-"`
}

func (t *Totals) add(calls int, input, output int64, cost money.Nanos) {
	t.Actions++
	t.Calls += calls
	t.InputTokens += input
	t.OutputTokens += output
	t.Cost += cost
	t.CostUSD = t.Cost.USD()
}

// AgentReport is one agent's share.
type AgentReport struct {
	Agent string `json:"agent"`
	// PlannedUSD is what it would have spent ungoverned; SpentUSD what its actions that ran used.
	PlannedUSD float64     `json:"planned_usd"`
	SpentUSD   float64     `json:"spent_usd"`
	Planned    money.Nanos `json:"-"`
	Spent      money.Nanos `json:"-"`
	// Outcomes counts its actions by status.
	Outcomes map[Status]int `json:"outcomes"`
}

// SettledReport sums the settlements of released leases.
type SettledReport struct {
	Actions int         `json:"actions"`
	CostUSD float64     `json:"cost_usd"`
	Cost    money.Nanos `json:"-"`
	// BySource counts the settlements by cost source (spans, reported, none).
	BySource map[decisionapi.CostSource]int `json:"by_source"`
}

// FleetReport is when the decision answers first showed the fleet's budget at each level, in
// simulated seconds since the start (real seconds in steady, which has no compressed clock).
type FleetReport struct {
	ThrottleBeganSimSeconds *float64 `json:"throttle_began_sim_seconds,omitempty"`
	PauseBeganSimSeconds    *float64 `json:"pause_began_sim_seconds,omitempty"`
}

// ApprovalsReport counts the approvals the fleet waited for.
type ApprovalsReport struct {
	// Requested is the distinct approvals actions waited for.
	Requested int `json:"requested"`
	// AutoReviewer reports whether the auto-reviewer ran; ApprovedByReviewer is how many it
	// approved.
	AutoReviewer       bool `json:"auto_reviewer"`
	ApprovedByReviewer int  `json:"approved_by_reviewer"`
	// RanAfterApproval counts actions that ran after waiting for an approval.
	RanAfterApproval int `json:"ran_after_approval"`
	// Denied and TimedOut count actions whose approval was denied (or expired) or never came.
	Denied   int `json:"denied"`
	TimedOut int `json:"timed_out"`
}

// AnomaliesReport counts the anomalies flagged for the fleet.
type AnomaliesReport struct {
	// CallLevel is the increase of agentcost_anomalies_total{level="call"} for the fleet's agents
	// over the run, read from the collector's /metrics; nil when not read.
	CallLevel *int64 `json:"call_level,omitempty"`
	// ActionLevel counts the settlements flagged anomalous (cost ≥ 3x the per-action baseline).
	ActionLevel int `json:"action_level"`
	// ActionAgents counts them per agent.
	ActionAgents map[string]int `json:"action_agents,omitempty"`
}

// LatencyReport summarises the decision round trips.
type LatencyReport struct {
	Count int     `json:"count"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// RunInfo is what a scenario run knows besides its plan and outcomes.
type RunInfo struct {
	Scenario string
	Governed bool
	// Speed is simulated seconds per real second (0: not a simulated-clock scenario).
	Speed     float64
	Wall      time.Duration
	Simulated time.Duration
	Pricer    *Pricer
	// DegradeTo is the fleet's cheaper model when it named its model for degrade (nil: not).
	DegradeTo *Pricer
	// Arithmetic and BatchesPerDay describe a runaway plan.
	Arithmetic    *Arithmetic
	BatchesPerDay int
	// Decisions is what the fleet saw of the decision API (zero when ungoverned).
	Decisions DecisionStats
	// AutoReviewer reports whether the auto-reviewer ran; Approved is what it approved.
	AutoReviewer bool
	Approved     []string
	// CallAnomalies is the per-agent increase of the call-level anomaly counter; nil when not read.
	CallAnomalies map[string]float64
	SpansSent     int64
	SpansFailed   int64
	TargetRate    float64
	// Problems are failures outside the actions (span export, metrics, reviewer).
	Problems []error
}

// maxAgentRows is the most agents the text report lists one by one (the JSON lists all).
const maxAgentRows = 12

// maxErrorSamples bounds the distinct error messages a report lists.
const maxErrorSamples = 5

// Summarize builds the report of a run from its plan, the outcome of each planned action and the
// run's other facts.
func Summarize(plan *Plan, outcomes []Outcome, info RunInfo) *Report {
	r := &Report{
		Scenario: info.Scenario, Mode: "ungoverned", Speed: info.Speed,
		WallSeconds: info.Wall.Seconds(), SimulatedSeconds: info.Simulated.Seconds(),
		Outcomes:  map[Status]int{},
		SpansSent: info.SpansSent, SpansFailed: info.SpansFailed, TargetRate: info.TargetRate,
	}
	if info.Governed {
		r.Mode = "governed"
	}
	if p := info.Pricer; p != nil {
		r.Model, r.Provider = p.Model, p.Provider
		r.InputPerMillionUSD, r.OutputPerMillionUSD = p.PerMillion()
	}
	if a := info.Arithmetic; a != nil {
		r.Arithmetic = &ArithmeticReport{CallUSD: a.CallCost.USD(), CallsPerRound: a.CallsPerRound, RoundUSD: a.RoundCost.USD(),
			BatchUSD: a.BatchCost.USD(), BatchesPerDay: info.BatchesPerDay, DayUSD: a.DayCost.USD()}
	}

	agents := map[string]*AgentReport{}
	agent := func(name string) *AgentReport {
		ar, ok := agents[name]
		if !ok {
			ar = &AgentReport{Agent: name, Outcomes: map[Status]int{}}
			agents[name] = ar
		}
		return ar
	}
	for _, a := range plan.Actions {
		in, out := a.Tokens()
		r.Plan.add(len(a.Calls), in, out, a.Cost)
		ar := agent(a.Agent)
		ar.Planned += a.Cost
		ar.PlannedUSD = ar.Planned.USD()
	}

	if info.DegradeTo != nil {
		r.Degrade = &DegradeReport{Model: info.DegradeTo.Model}
	}
	approvals := map[string]bool{}
	errSeen := map[string]bool{}
	sample := func(msg string) {
		if !errSeen[msg] && len(r.ErrorSamples) < maxErrorSamples {
			r.ErrorSamples = append(r.ErrorSamples, msg)
		}
		errSeen[msg] = true
	}
	for _, o := range outcomes {
		r.Outcomes[o.Status]++
		ar := agent(o.Action.Agent)
		ar.Outcomes[o.Status]++
		for _, id := range o.Approvals {
			approvals[id] = true
		}
		if d := r.Degrade; d != nil && o.Status == StatusRan && o.DegradedTo != "" {
			d.Actions++
			d.Cost += o.Cost
			d.AskedCost += o.AskedCost
			d.CostUSD, d.AskedCostUSD = d.Cost.USD(), d.AskedCost.USD()
		}
		switch o.Status {
		case StatusRan:
			r.Ran.add(o.Calls, o.InputTokens, o.OutputTokens, o.Cost)
			ar.Spent += o.Cost
			ar.SpentUSD = ar.Spent.USD()
			if len(o.Approvals) > 0 {
				r.Approvals.RanAfterApproval++
			}
		case StatusDenied:
			r.DeniedByRule = inc(r.DeniedByRule, ruleName(o.RuleID))
		case StatusThrottled:
			r.ThrottledByRule = inc(r.ThrottledByRule, ruleName(o.RuleID))
		case StatusApprovalDenied:
			r.Approvals.Denied++
		case StatusApprovalTimeout:
			r.Approvals.TimedOut++
		case StatusError:
			r.Errors++
			if o.Err != nil {
				sample(o.Err.Error())
			}
		}
		if s := o.Settlement; s != nil {
			if r.Settled == nil {
				r.Settled = &SettledReport{BySource: map[decisionapi.CostSource]int{}}
			}
			r.Settled.Actions++
			r.Settled.BySource[s.Source]++
			if n, err := money.FromUSD(s.ActualCostUSD); err == nil {
				r.Settled.Cost += n
				r.Settled.CostUSD = r.Settled.Cost.USD()
			}
			if s.Anomaly {
				r.Anomalies.ActionLevel++
				r.Anomalies.ActionAgents = inc(r.Anomalies.ActionAgents, o.Action.Agent)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(agents)) {
		r.Agents = append(r.Agents, *agents[name])
	}

	r.Approvals.Requested = len(approvals)
	r.Approvals.AutoReviewer = info.AutoReviewer
	r.Approvals.ApprovedByReviewer = len(info.Approved)
	if info.CallAnomalies != nil {
		var n float64
		for name, v := range info.CallAnomalies {
			if _, ours := agents[name]; ours {
				n += v
			}
		}
		calls := int64(n)
		r.Anomalies.CallLevel = &calls
	}

	d := info.Decisions
	for dec, n := range d.Answers {
		r.Decisions = incBy(r.Decisions, string(dec), n)
	}
	for k, n := range d.Rules {
		r.DecisionRules = incBy(r.DecisionRules, k, n)
	}
	if at, ok := d.Levels[decisionapi.LevelThrottle]; ok {
		s := at.Seconds()
		r.Fleet.ThrottleBeganSimSeconds = &s
	}
	if at, ok := d.Levels[decisionapi.LevelPause]; ok {
		s := at.Seconds()
		r.Fleet.PauseBeganSimSeconds = &s
	}
	if len(d.Latencies) > 0 {
		r.DecisionLatency = latency(d.Latencies)
	}
	r.Errors += d.Failures
	if d.Failures > 0 {
		sample(fmt.Sprintf("%d decision requests failed or got no valid answer", d.Failures))
	}
	for _, err := range info.Problems {
		r.Errors++
		sample(err.Error())
	}
	if info.Wall > 0 {
		done := len(outcomes) - r.Outcomes[StatusNotRun]
		r.ActionsPerSecond = float64(done) / info.Wall.Seconds()
	}
	return r
}

func ruleName(id string) string { return cmp.Or(id, "(default)") }

func inc(m map[string]int, k string) map[string]int { return incBy(m, k, 1) }

func incBy(m map[string]int, k string, n int) map[string]int {
	if m == nil {
		m = map[string]int{}
	}
	m[k] += n
	return m
}

// latency returns nearest-rank percentiles of ds.
func latency(ds []time.Duration) *LatencyReport {
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return &LatencyReport{Count: len(s), P50Ms: ms(rank(0.50)), P99Ms: ms(rank(0.99)), MaxMs: ms(s[len(s)-1])}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report as a human-readable table.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "agentsim %s, %s", r.Scenario, r.Mode)
	if r.Speed > 0 {
		fmt.Fprintf(&b, ", speed %sx: simulated %s in %.1fs", strconv.FormatFloat(r.Speed, 'f', -1, 64), simTime(r.SimulatedSeconds), r.WallSeconds)
	} else {
		fmt.Fprintf(&b, ", %.1fs", r.WallSeconds)
	}
	fmt.Fprintf(&b, "\nmodel %s (%s) at $%s / $%s per 1M input / output tokens\n", r.Model, r.Provider,
		trimFloat(r.InputPerMillionUSD), trimFloat(r.OutputPerMillionUSD))
	if a := r.Arithmetic; a != nil {
		fmt.Fprintf(&b, "plan: %d calls of $%s per round = %s per round, %s per batch, %s per day (%d batches)\n",
			a.CallsPerRound, trimFloat(a.CallUSD), usd(a.RoundUSD), usd(a.BatchUSD), usd(a.DayUSD), a.BatchesPerDay)
	}
	b.WriteString("\n")

	ranHead := "governed (ran)"
	if r.Mode == "ungoverned" {
		ranHead = "ungoverned (ran)"
	}
	row := func(label, plan, ran string) { fmt.Fprintf(&b, "%-22s %18s %18s\n", label, plan, ran) }
	row("", "ungoverned (plan)", ranHead)
	row("actions", count(int64(r.Plan.Actions)), count(int64(r.Ran.Actions)))
	row("LLM calls", count(int64(r.Plan.Calls)), count(int64(r.Ran.Calls)))
	row("tokens", count(r.Plan.InputTokens+r.Plan.OutputTokens), count(r.Ran.InputTokens+r.Ran.OutputTokens))
	row("spend", usd(r.Plan.CostUSD), usd(r.Ran.CostUSD))
	if len(r.Agents) <= maxAgentRows {
		for _, a := range r.Agents {
			row("  "+a.Agent, usd(a.PlannedUSD), usd(a.SpentUSD))
		}
	}
	b.WriteString("\n")

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	if s := r.Settled; s != nil {
		fmt.Fprintf(tw, "settled by agentcost\t%s over %d actions (%s)\n", usd(s.CostUSD), s.Actions, counts(s.BySource))
	}
	fmt.Fprintf(tw, "actions\t%s\n", counts(r.Outcomes))
	if r.Mode == "governed" {
		fmt.Fprintf(tw, "fleet throttle began\t%s\n", r.at(r.Fleet.ThrottleBeganSimSeconds))
		fmt.Fprintf(tw, "fleet pause began\t%s\n", r.at(r.Fleet.PauseBeganSimSeconds))
		fmt.Fprintf(tw, "decision answers\t%s\n", counts(r.Decisions))
		fmt.Fprintf(tw, "denied\t%d%s\n", r.Outcomes[StatusDenied], paren(counts(r.DeniedByRule)))
		fmt.Fprintf(tw, "throttled, not run\t%d%s\n", r.Outcomes[StatusThrottled], paren(counts(r.ThrottledByRule)))
		ap := r.Approvals
		reviewer := "no auto-reviewer (--auto-approve-as)"
		if ap.AutoReviewer {
			reviewer = fmt.Sprintf("%d approved by the auto-reviewer", ap.ApprovedByReviewer)
		}
		fmt.Fprintf(tw, "approvals\t%d waited; %s; %d ran after approval, %d denied, %d timed out\n",
			ap.Requested, reviewer, ap.RanAfterApproval, ap.Denied, ap.TimedOut)
	}
	calls := "not read (--metrics-url)"
	if r.Anomalies.CallLevel != nil {
		calls = fmt.Sprintf("%d (collector /metrics)", *r.Anomalies.CallLevel)
	}
	action := "-"
	if r.Mode == "governed" {
		action = fmt.Sprintf("%d (settlements)%s", r.Anomalies.ActionLevel, paren(counts(r.Anomalies.ActionAgents)))
	}
	fmt.Fprintf(tw, "anomalies\tper call %s; per action %s\n", calls, action)
	if d := r.Degrade; d != nil {
		fmt.Fprintf(tw, "degraded\t%d actions ran on %s for %s; on %s they would have cost %s\n",
			d.Actions, d.Model, usd(d.CostUSD), r.Model, usd(d.AskedCostUSD))
	}
	if c := r.Creep; c != nil {
		fmt.Fprintf(tw, "loop\t+%s per step from %s a call: 3x at step %d; spent %s of %s planned\n",
			strconv.FormatFloat(100*c.Growth, 'f', -1, 64)+"%", "$"+trimFloat(c.NormalCallUSD), c.ThreeXStep, usd(c.LoopSpentUSD), usd(c.LoopPlannedUSD))
		flagged := "not seen (--metrics-url)"
		if c.FlaggedStep > 0 {
			flagged = fmt.Sprintf("at step %d (%s), the loop having spent %s", c.FlaggedStep, c.FlaggedLevel, usd(c.FlaggedSpentUSD))
		}
		fmt.Fprintf(tw, "loop flagged\t%s\n", flagged)
		stopped := "never: every step ran"
		if c.StoppedStep > 0 {
			stopped = fmt.Sprintf("at step %d by %s, the loop having spent %s", c.StoppedStep, ruleName(c.StoppedRule), usd(c.StoppedSpentUSD))
		}
		fmt.Fprintf(tw, "loop stopped\t%s\n", stopped)
	}
	if l := r.DecisionLatency; l != nil {
		fmt.Fprintf(tw, "decision latency\tp50 %.2f ms, p99 %.2f ms, max %.2f ms over %d requests\n", l.P50Ms, l.P99Ms, l.MaxMs, l.Count)
	}
	if r.TargetRate > 0 {
		fmt.Fprintf(tw, "throughput\t%.1f actions/s achieved of %.1f/s asked\n", r.ActionsPerSecond, r.TargetRate)
	}
	fmt.Fprintf(tw, "spans sent\t%s (%s failed)\n", count(r.SpansSent), count(r.SpansFailed))
	fmt.Fprintf(tw, "errors\t%d\n", r.Errors)
	for _, s := range r.ErrorSamples {
		fmt.Fprintf(tw, "\t%s\n", s)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// paren returns " (s)", or "" for the empty count list "-".
func paren(s string) string {
	if s == "-" {
		return ""
	}
	return " (" + s + ")"
}

// counts formats a count map as "k1 n1, k2 n2" in key order, or "-".
func counts[K ~string](m map[K]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := slices.Collect(maps.Keys(m))
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// usd formats dollars with thousands separators and cents.
func usd(v float64) string {
	cents := int64(v*100 + 0.5)
	return "$" + count(cents/100) + fmt.Sprintf(".%02d", cents%100)
}

// count formats n with thousands separators.
func count(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + count(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func trimFloat(v float64) string { return strings.TrimSuffix(fmt.Sprintf("%.6g", v), ".") }

// simTime formats simulated seconds as "2d 04h07m" or "4h07m12s".
func simTime(sec float64) string {
	d := time.Duration(sec * float64(time.Second)).Round(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h, m, s := d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	if days > 0 {
		return fmt.Sprintf("%dd %02dh%02dm", days, h, m)
	}
	return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
}

// at formats when a fleet level began: in simulated time on a compressed clock, else in seconds.
func (r *Report) at(sec *float64) string {
	switch {
	case sec == nil:
		return "never"
	case r.Speed == 0:
		return fmt.Sprintf("%.1fs after the start", *sec)
	}
	return "simulated " + simTime(*sec) + " after the start"
}

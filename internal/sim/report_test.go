package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

func TestSummarize(t *testing.T) {
	dollars := func(n int64) money.Nanos { return money.Nanos(n * money.NanosPerUSD) }
	call := func(cost money.Nanos) []Call { return []Call{{InputTokens: 100, OutputTokens: 10, Cost: cost}} }
	acts := []*Action{
		{Seq: 1, Agent: "x", Calls: call(dollars(1)), Cost: dollars(1)},
		{Seq: 2, Agent: "x", Calls: call(dollars(2)), Cost: dollars(2)},
		{Seq: 3, Agent: "y", Calls: call(dollars(4)), Cost: dollars(4)},
		{Seq: 4, Agent: "y", Calls: call(dollars(8)), Cost: dollars(8)},
		{Seq: 5, Agent: "y", Calls: call(dollars(16)), Cost: dollars(16)},
		{Seq: 6, Agent: "y", Calls: call(dollars(32)), Cost: dollars(32)},
	}
	plan := &Plan{Actions: acts, Cost: dollars(63)}
	outcomes := []Outcome{
		{Action: acts[0], Status: StatusRan, Calls: 1, InputTokens: 100, OutputTokens: 10, Cost: dollars(1),
			Settlement: &decisionapi.Settlement{ActualCostUSD: 1, Source: decisionapi.SourceSpans}},
		{Action: acts[1], Status: StatusDenied, RuleID: "deny-unbounded-loop"},
		// Ran after an approval, output capped: it used $3 of its $4 plan.
		{Action: acts[2], Status: StatusRan, Calls: 1, InputTokens: 100, OutputTokens: 5, Cost: dollars(3), CappedCalls: 1,
			Approvals: []string{"ap-1"}, Settlement: &decisionapi.Settlement{ActualCostUSD: 3, Source: decisionapi.SourceReported, Anomaly: true}},
		{Action: acts[3], Status: StatusThrottled},
		{Action: acts[4], Status: StatusError, Err: errors.New("boom")},
		{Action: acts[5], Status: StatusNotRun},
	}
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	info := RunInfo{
		Scenario: "runaway", Governed: true, Speed: 3600, Wall: 2 * time.Second, Simulated: 2 * time.Hour,
		Pricer: simPricer(t), BatchesPerDay: 10,
		Decisions: DecisionStats{Latencies: lat, Answers: map[decisionapi.Decision]int{decisionapi.DecisionAllow: 2, decisionapi.DecisionDeny: 1},
			Levels: map[decisionapi.BudgetLevel]time.Duration{decisionapi.LevelThrottle: time.Hour, decisionapi.LevelPause: 90 * time.Minute}},
		AutoReviewer: true, Approved: []string{"ap-1"},
		CallAnomalies: map[string]float64{"x": 2, "not-ours": 5},
		SpansSent:     9, Problems: []error{errors.New("export failed")},
	}
	r := Summarize(plan, outcomes, info)

	if r.Plan.Cost != dollars(63) || r.Plan.Actions != 6 || r.Plan.Calls != 6 || r.Plan.InputTokens != 600 {
		t.Errorf("plan %+v, want the 6 planned actions worth $63", r.Plan)
	}
	if r.Ran.Cost != dollars(4) || r.Ran.Actions != 2 || r.Ran.OutputTokens != 15 {
		t.Errorf("ran %+v, want the 2 actions that ran: $1 + $3, 10 + 5 output tokens", r.Ran)
	}
	if len(r.Agents) != 2 || r.Agents[0].Agent != "x" || r.Agents[0].Planned != dollars(3) || r.Agents[0].Spent != dollars(1) ||
		r.Agents[1].Planned != dollars(60) || r.Agents[1].Spent != dollars(3) {
		t.Errorf("agents %+v, want x $3 planned $1 spent, y $60 planned $3 spent", r.Agents)
	}
	for st, want := range map[Status]int{StatusRan: 2, StatusDenied: 1, StatusThrottled: 1, StatusError: 1, StatusNotRun: 1} {
		if r.Outcomes[st] != want {
			t.Errorf("outcome %s: %d, want %d", st, r.Outcomes[st], want)
		}
	}
	if r.DeniedByRule["deny-unbounded-loop"] != 1 || r.ThrottledByRule["(default)"] != 1 {
		t.Errorf("denied %v, throttled %v", r.DeniedByRule, r.ThrottledByRule)
	}
	if s := r.Settled; s == nil || s.Cost != dollars(4) || s.Actions != 2 || s.BySource[decisionapi.SourceSpans] != 1 || s.BySource[decisionapi.SourceReported] != 1 {
		t.Errorf("settled %+v", r.Settled)
	}
	if want := (ApprovalsReport{Requested: 1, AutoReviewer: true, ApprovedByReviewer: 1, RanAfterApproval: 1}); r.Approvals != want {
		t.Errorf("approvals %+v, want %+v", r.Approvals, want)
	}
	if r.Anomalies.CallLevel == nil || *r.Anomalies.CallLevel != 2 || r.Anomalies.ActionLevel != 1 || r.Anomalies.ActionAgents["y"] != 1 {
		t.Errorf("anomalies %+v, want 2 per call (the fleet's agents only) and y's 1 per action", r.Anomalies)
	}
	if th, pa := r.Fleet.ThrottleBeganSimSeconds, r.Fleet.PauseBeganSimSeconds; th == nil || *th != 3600 || pa == nil || *pa != 5400 {
		t.Errorf("fleet %+v, want throttle at 3600 s and pause at 5400 s", r.Fleet)
	}
	// Nearest rank over 1..100 ms.
	if l := r.DecisionLatency; l == nil || l.Count != 100 || l.P50Ms != 50 || l.P99Ms != 99 || l.MaxMs != 100 {
		t.Errorf("latency %+v, want p50 50, p99 99, max 100 over 100", r.DecisionLatency)
	}
	if r.Errors != 2 || strings.Join(r.ErrorSamples, "|") != "boom|export failed" {
		t.Errorf("errors %d %q, want the failed action and the export problem", r.Errors, r.ErrorSamples)
	}
	if r.ActionsPerSecond != 2.5 { // 5 actions got an answer in 2 s; the not-run one does not count
		t.Errorf("actions/s %v, want 2.5", r.ActionsPerSecond)
	}

	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"agentsim runaway, governed, speed 3600x: simulated 2h00m00s in 2.0s",
		"model sim-llm (sim) at $15 / $15 per 1M input / output tokens",
		"fleet throttle began  simulated 1h00m00s after the start",
		"fleet pause began     simulated 1h30m00s after the start",
		"denied                1 (deny-unbounded-loop 1)",
		"approvals             1 waited; 1 approved by the auto-reviewer; 1 ran after approval, 0 denied, 0 timed out",
		"anomalies             per call 2 (collector /metrics); per action 1 (settlements) (y 1)",
		"decision latency      p50 50.00 ms, p99 99.00 ms, max 100.00 ms over 100 requests",
		"errors                2",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}

	for _, row := range [][]string{{"spend", "$63.00", "$4.00"}, {"y", "$60.00", "$3.00"}, {"tokens", "660", "215"}} {
		if !hasRow(text.String(), row...) {
			t.Errorf("text report lacks the row %q:\n%s", row, text.String())
		}
	}

	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Plan struct {
			CostUSD float64 `json:"cost_usd"`
		} `json:"plan"`
		Outcomes  map[string]int `json:"outcomes"`
		Anomalies struct {
			CallLevel *int64 `json:"call_level"`
		} `json:"anomalies"`
		Fleet struct {
			Pause *float64 `json:"pause_began_sim_seconds"`
		} `json:"fleet"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Plan.CostUSD != 63 || back.Outcomes["denied"] != 1 || back.Anomalies.CallLevel == nil || *back.Anomalies.CallLevel != 2 ||
		back.Fleet.Pause == nil || *back.Fleet.Pause != 5400 {
		t.Errorf("JSON report %s", js.String())
	}
}

func TestSummarizeUngovernedText(t *testing.T) {
	a := &Action{Seq: 1, Agent: "x", Calls: []Call{{Cost: 5}}, Cost: 5}
	r := Summarize(&Plan{Actions: []*Action{a}, Cost: 5}, []Outcome{{Action: a, Status: StatusRan, Calls: 1, Cost: 5}},
		RunInfo{Scenario: "steady", Wall: time.Second, TargetRate: 10})
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	s := text.String()
	for _, want := range []string{"ungoverned (ran)", "per call not read (--metrics-url); per action -", "1.0 actions/s achieved of 10.0/s asked"} {
		if !strings.Contains(s, want) {
			t.Errorf("text lacks %q:\n%s", want, s)
		}
	}
	for _, absent := range []string{"fleet throttle", "approvals", "decision latency", "settled"} {
		if strings.Contains(s, absent) {
			t.Errorf("ungoverned text shows %q:\n%s", absent, s)
		}
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct{ got, want string }{
		{usd(0), "$0.00"},
		{usd(11.25), "$11.25"},
		{usd(2250), "$2,250.00"},
		{usd(1234567.891), "$1,234,567.89"},
		{count(0), "0"},
		{count(999), "999"},
		{count(1000), "1,000"},
		{count(-1234567), "-1,234,567"},
		{simTime(0), "0h00m00s"},
		{simTime(17*3600 + 2*60 + 5), "17h02m05s"},
		{simTime(4*86400 + 12*3600 + 30*60), "4d 12h30m"},
		{counts(map[string]int{"b": 2, "a": 1, "z": 0}), "a 1, b 2"},
		{counts(map[string]int{}), "-"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// hasRow reports whether a line of text consists of exactly the given fields.
func hasRow(text string, fields ...string) bool {
	for _, line := range strings.Split(text, "\n") {
		if slices.Equal(strings.Fields(line), fields) {
			return true
		}
	}
	return false
}

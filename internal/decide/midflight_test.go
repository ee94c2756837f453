package decide

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/ledger/ledgertest"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

const midFlightPolicy = `version: v1
policy_version: midflight-1
default_decision: allow
budgets:
  default_agent: {limit_usd: 100, window: day}
rules:
  - id: throttle-anomalous
    match: {anomaly_within: 10m}
    decision: throttle
`

// countingRecorder counts the anomalies it is told about.
type countingRecorder struct {
	NopRecorder
	mu            sync.Mutex
	actions, runs int
}

func (c *countingRecorder) ActionAnomaly(string) { c.mu.Lock(); c.actions++; c.mu.Unlock() }
func (c *countingRecorder) RunAnomaly(string)    { c.mu.Lock(); c.runs++; c.mu.Unlock() }

func (c *countingRecorder) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.actions, c.runs
}

// midEngine is an engine over l with a warm-up of 3 for both baselines and a run_idle of 1m.
func midEngine(t testing.TB, l ledger.Ledger, clock *testClock) (*Engine, *memEvidence, *countingRecorder) {
	t.Helper()
	p, err := policy.Parse("policy.yaml", []byte(midFlightPolicy))
	if err != nil {
		t.Fatal(err)
	}
	bcfg := baseline.DefaultConfig()
	bcfg.WarmUp = 3
	actions, err := baseline.New(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := baseline.New(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	ev, rec := &memEvidence{}, &countingRecorder{}
	e, err := New(context.Background(), Config{Policy: func() *policy.Policy { return p }, Ledger: l, Evidence: ev,
		Baselines: actions, RunBaselines: runs, RunIdle: time.Minute, Recorder: rec, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	return e, ev, rec
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var midAgent = Caller{Role: access.RoleAgent, Subject: "a"}

// midAction decides one action of agent a in run, books spends of cost (USD) against it and returns
// the decision.
func midAction(t *testing.T, e *Engine, l ledger.Ledger, clock *testClock, run string, costs ...string) decisionapi.DecisionResponse {
	t.Helper()
	ctx := context.Background()
	d, err := e.Decide(ctx, midAgent, decisionapi.DecisionRequest{AgentID: "a", Action: "job.loop", RunID: run, EstimatedCostUSD: 0.1}, "")
	if err != nil || !d.Decision.Allowed() {
		t.Fatalf("decision: %+v %v", d, err)
	}
	for i, c := range costs {
		cost, err := money.ParseUSD(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Book(ctx, []ledger.Spend{{TraceID: "tr-" + d.DecisionID, SpanID: string(rune('a' + i)), Time: clock.now(),
			Agent: "a", RunID: run, DecisionID: d.DecisionID, Cost: cost}}); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func check(t *testing.T, e *Engine) MidFlight {
	t.Helper()
	m, err := e.CheckMidFlight(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// warmUp settles three $0.10 actions of agent a, each in its own run, and lets each run complete,
// so that both the (a, job.loop) action baseline and a's run baseline are warm at $0.10.
func warmUp(t *testing.T, engines []*Engine, l ledger.Ledger, clock *testClock, prefix string) {
	t.Helper()
	for i := range 3 {
		run := prefix + string(rune('0'+i))
		d := midAction(t, engines[0], l, clock, run, "0.04", "0.06")
		for _, e := range engines {
			if m := check(t, e); m.Actions+m.Runs != 0 {
				t.Fatalf("warm-up %d flagged %+v", i, m)
			}
		}
		r, err := engines[0].Release(context.Background(), midAgent, d.LeaseID, decisionapi.ReleaseRequest{})
		if err != nil || r.Settlement.ActualCostUSD != 0.1 {
			t.Fatalf("release: %+v %v", r, err)
		}
		for _, e := range engines[1:] { // every replica learns the action (each keeps its own baselines)
			e.cfg.Baselines.Observe(baselineKey("a", "job.loop"), money.NanosPerUSD/10)
		}
		for _, e := range engines {
			if m := check(t, e); m.RunsCompleted != 0 {
				t.Fatalf("warm-up run %d complete before run_idle: %+v", i, m)
			}
		}
		clock.advance(2 * time.Minute)
		for _, e := range engines {
			if m := check(t, e); m.RunsCompleted != 1 {
				t.Fatalf("warm-up run %d: %+v, want it complete after run_idle", i, m)
			}
		}
	}
}

// TestMidFlightActionFlag: an open action whose booked spend crosses 3x its baseline is flagged
// by the next check, before its release: anomaly_within throttles the agent's next decision, an
// anomaly evidence record is written, and the settlement later does not count it again.
func TestMidFlightActionFlag(t *testing.T) {
	ctx := context.Background()
	l := ledgertest.NewEmbedded(t)
	clock := &testClock{t: time.Date(2026, time.March, 11, 10, 0, 0, 0, time.UTC)}
	e, ev, rec := midEngine(t, l, clock)
	warmUp(t, []*Engine{e}, l, clock, "warm-")

	loop := midAction(t, e, l, clock, "loop-run", "0.1", "0.1")
	if m := check(t, e); m.Actions != 0 {
		t.Fatalf("flagged at 2x: %+v", m)
	}
	if _, err := l.Book(ctx, []ledger.Spend{{TraceID: "tr-loop", SpanID: "3", Time: clock.now(), Agent: "a", RunID: "loop-run",
		DecisionID: loop.DecisionID, Cost: money.NanosPerUSD / 10}}); err != nil {
		t.Fatal(err)
	}
	if m := check(t, e); m.Actions != 1 {
		t.Fatalf("check at 3x: %+v, want the action flagged", m)
	}
	if m := check(t, e); m.Actions != 0 {
		t.Errorf("second check: %+v, want no second flag", m)
	}
	next, err := e.Decide(ctx, midAgent, decisionapi.DecisionRequest{AgentID: "a", Action: "job.loop", EstimatedCostUSD: 0.1}, "")
	if err != nil || next.Decision != decisionapi.DecisionThrottle || next.RuleID != "throttle-anomalous" {
		t.Errorf("next decision while the loop's lease is open: %+v %v, want throttle-anomalous", next, err)
	}
	var anomalies []evidence.Record
	for _, r := range ev.recs {
		if r.Kind == evidence.KindAnomaly && r.Level == "action" { // the run, $0.30 too, is flagged beside it
			anomalies = append(anomalies, r)
		}
	}
	if len(anomalies) != 1 || anomalies[0].Level != "action" || anomalies[0].DecisionID != loop.DecisionID ||
		anomalies[0].ActualCostUSD != evidence.USD(3*money.NanosPerUSD/10) || anomalies[0].Anomaly == nil || anomalies[0].Anomaly.BaselineUSD != evidence.USD(money.NanosPerUSD/10) || anomalies[0].EvidenceID == "" {
		t.Errorf("anomaly records %+v, want one for the loop at $0.30 against $0.10", anomalies)
	}
	r, err := e.Release(ctx, midAgent, loop.LeaseID, decisionapi.ReleaseRequest{})
	if err != nil || !r.Settlement.Anomaly {
		t.Fatalf("release: %+v %v", r, err)
	}
	if actions, _ := rec.counts(); actions != 1 {
		t.Errorf("action anomalies counted %d, want 1 (mid-flight, not again at settlement)", actions)
	}
}

// TestMidFlightRunFlag: a run whose total crosses 3x its agent's baseline of completed runs is
// flagged while it runs (each of its actions is ordinary), at level run.
func TestMidFlightRunFlag(t *testing.T) {
	ctx := context.Background()
	l := ledgertest.NewEmbedded(t)
	clock := &testClock{t: time.Date(2026, time.March, 11, 10, 0, 0, 0, time.UTC)}
	e, ev, rec := midEngine(t, l, clock)
	warmUp(t, []*Engine{e}, l, clock, "warm-")
	for i := range 3 { // three ordinary $0.10 actions of one run: $0.30 is 3x the run baseline
		d := midAction(t, e, l, clock, "long-run", "0.1")
		m := check(t, e)
		if m.Actions != 0 || (i < 2 && m.Runs != 0) || (i == 2 && m.Runs != 1) {
			t.Fatalf("action %d: %+v", i, m)
		}
		if _, err := e.Release(ctx, midAgent, d.LeaseID, decisionapi.ReleaseRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, runs := rec.counts(); runs != 1 {
		t.Errorf("run anomalies %d, want 1", runs)
	}
	if last, ok, err := l.LastAnomaly(ctx, "a", ledger.LevelRun); err != nil || !ok || !last.Equal(clock.now()) {
		t.Errorf("run anomaly in the ledger %v %v %v", last, ok, err)
	}
	found := false
	for _, r := range ev.recs {
		found = found || (r.Kind == evidence.KindAnomaly && r.Level == "run" && r.RunID == "long-run" && r.ActualCostUSD == evidence.USD(3*money.NanosPerUSD/10))
	}
	if !found {
		t.Errorf("no run anomaly record in %+v", ev.recs)
	}
	next, err := e.Decide(ctx, midAgent, decisionapi.DecisionRequest{AgentID: "a", Action: "job.loop", EstimatedCostUSD: 0.1}, "")
	if err != nil || next.Decision != decisionapi.DecisionThrottle {
		t.Errorf("next decision after the run flag: %+v %v, want throttle", next, err)
	}
}

// TestMidFlightOnceAcrossReplicas: two engines over one Redis ledger, both warm, both check the
// crossing action and run: each is flagged once, with one evidence record.
func TestMidFlightOnceAcrossReplicas(t *testing.T) {
	l := ledgertest.NewRedis(t, redistest.Start(t))
	clock := &testClock{t: time.Date(2026, time.March, 11, 10, 0, 0, 0, time.UTC)}
	e1, ev1, rec1 := midEngine(t, l, clock)
	e2, ev2, rec2 := midEngine(t, l, clock)
	warmUp(t, []*Engine{e1, e2}, l, clock, "warm-")
	midAction(t, e1, l, clock, "loop-run", "0.2", "0.2")
	var wg sync.WaitGroup
	var m1, m2 MidFlight
	wg.Add(2)
	go func() { defer wg.Done(); m1, _ = e1.CheckMidFlight(context.Background()) }()
	go func() { defer wg.Done(); m2, _ = e2.CheckMidFlight(context.Background()) }()
	wg.Wait()
	if m1.Actions+m2.Actions != 1 || m1.Runs+m2.Runs != 1 {
		t.Errorf("flags: replica 1 %+v, replica 2 %+v; want one action and one run flag in all", m1, m2)
	}
	a1, r1 := rec1.counts()
	a2, r2 := rec2.counts()
	if a1+a2 != 1 || r1+r2 != 1 {
		t.Errorf("counted actions %d+%d, runs %d+%d; want 1 and 1", a1, a2, r1, r2)
	}
	n := 0
	for _, recs := range [][]evidence.Record{ev1.recs, ev2.recs} {
		for _, r := range recs {
			if r.Kind == evidence.KindAnomaly {
				n++
			}
		}
	}
	if n != 2 {
		t.Errorf("%d anomaly records, want 2 (one action, one run)", n)
	}
}

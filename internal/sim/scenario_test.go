package sim

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
	"github.com/agentcost/agentcost/pkg/guard"
)

// instant is a speed at which the whole plan is due at once.
const instant = 1e12

func testFleet(t *testing.T, f *fakeDecisionAPI, spans *tracetest.InMemoryExporter) FleetConfig {
	cfg := FleetConfig{Token: agentToken, Pricer: simPricer(t), Exporter: keptExporter{spans}, FlushPerAction: true,
		PollInterval: 2 * time.Millisecond, ApprovalWait: 10 * time.Second}
	if f != nil {
		cfg.DecisionURL = f.srv.URL
	}
	return cfg
}

func testPlan(prefix string, batches int) RunawayConfig {
	cfg := DefaultRunawayConfig()
	cfg.Batches, cfg.RunPrefix = batches, prefix
	return cfg
}

// llmSpans returns the chat spans.
func llmSpans(spans tracetest.SpanStubs) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range spans {
		if attrMap(s.Attributes)["gen_ai.operation.name"].AsString() == "chat" {
			out = append(out, s)
		}
	}
	return out
}

// callCost prices one call the way the fake does: sim-llm's $15 per million tokens.
func callCost(in, out int64) money.Nanos { return money.Nanos((in + out) * simNanosPerToken) }

func TestRunawayGoverned(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	api := newFakeDecisionAPI(t, spans)
	api.addForeignApproval("ap-foreign")
	metrics := fakeMetrics(t,
		`agentcost_anomalies_total{agent="research-agent",level="call"} 2
agentcost_anomalies_total{agent="other-agent",level="call"} 7
`,
		`# HELP agentcost_anomalies_total Anomalies flagged.
# TYPE agentcost_anomalies_total counter
agentcost_anomalies_total{agent="research-agent",level="call"} 5
agentcost_anomalies_total{agent="research-agent",level="action"} 1
agentcost_anomalies_total{agent="other-agent",level="call"} 9
`)
	plan := testPlan("t1", 2)
	r, err := RunRunaway(context.Background(), RunawayOptions{Plan: plan, Fleet: testFleet(t, api, spans), Speed: instant,
		MetricsURL: metrics, ReviewerToken: reviewerToken})
	if err != nil {
		t.Fatal(err)
	}

	// What the run must have spent, worked out from the plan: everything but the four declared
	// loop repeats, research-agent's calls capped at the fake's max_tokens.
	full, err := plan.Runaway(simPricer(t))
	if err != nil {
		t.Fatal(err)
	}
	var wantRan money.Nanos
	wantActions, wantCalls := 0, 0
	for _, a := range full.Actions {
		if a.Repeat > plan.Loop.DeclareAfter {
			continue
		}
		wantActions++
		for _, c := range a.Calls {
			out := c.OutputTokens
			if a.Agent == "research-agent" {
				out = min(out, api.researchMaxTokens)
			}
			wantRan += callCost(c.InputTokens, out)
			wantCalls++
		}
	}
	if r.Plan.Cost != full.Cost || r.Plan.Actions != len(full.Actions) {
		t.Errorf("plan %d actions %s, want %d actions %s", r.Plan.Actions, r.Plan.Cost, len(full.Actions), full.Cost)
	}
	if r.Ran.Cost != wantRan || r.Ran.Actions != wantActions || r.Ran.Calls != wantCalls {
		t.Errorf("ran %d actions, %d calls, %s; want %d, %d, %s", r.Ran.Actions, r.Ran.Calls, r.Ran.Cost, wantActions, wantCalls, wantRan)
	}
	if r.Outcomes[StatusDenied] != 4 || r.DeniedByRule["deny-unbounded-loop"] != 4 || len(r.DeniedByRule) != 1 {
		t.Errorf("denied %d by %v, want the 4 declared loop repeats by deny-unbounded-loop", r.Outcomes[StatusDenied], r.DeniedByRule)
	}
	if r.Decisions["require_approval"] != 2 || r.Decisions["deny"] != 4 {
		t.Errorf("decision answers %v, want 2 require_approval and 4 deny", r.Decisions)
	}
	if want := (ApprovalsReport{Requested: 2, AutoReviewer: true, ApprovedByReviewer: 2, RanAfterApproval: 2}); r.Approvals != want {
		t.Errorf("approvals %+v, want %+v", r.Approvals, want)
	}
	if got := api.approvalState("ap-foreign"); got != decisionapi.ApprovalPending {
		t.Errorf("the reviewer touched another client's approval: %s", got)
	}
	// Every action that ran was settled on its own spans, exported before its release.
	if s := r.Settled; s == nil || s.Actions != wantActions || s.BySource[decisionapi.SourceSpans] != wantActions || s.Cost != wantRan {
		t.Errorf("settled %+v, want %d actions settled on spans at %s", r.Settled, wantActions, wantRan)
	}
	// The first repeat (sent as an ordinary research action) costs 6x research's baseline.
	if r.Anomalies.ActionLevel != 1 || r.Anomalies.ActionAgents["research-agent"] != 1 {
		t.Errorf("action anomalies %d %v, want research-agent's loop repeat", r.Anomalies.ActionLevel, r.Anomalies.ActionAgents)
	}
	if r.Anomalies.CallLevel == nil || *r.Anomalies.CallLevel != 3 {
		t.Errorf("call anomalies %v, want research-agent's 5 - 2 (other agents and the action level not counted)", r.Anomalies.CallLevel)
	}
	if r.Fleet.ThrottleBeganSimSeconds != nil || r.Fleet.PauseBeganSimSeconds != nil {
		t.Errorf("fleet levels %+v without a fleet budget", r.Fleet)
	}
	if r.Errors != 0 || r.DecisionLatency == nil || r.DecisionLatency.Count != api.requestCount() {
		t.Errorf("errors %d %v, latency %+v for %d requests", r.Errors, r.ErrorSamples, r.DecisionLatency, api.requestCount())
	}

	got := spans.GetSpans()
	if want := int64(len(full.Actions) + wantCalls); r.SpansSent != want || int64(len(got)) != want || r.SpansFailed != 0 {
		t.Errorf("spans sent %d (failed %d), exporter holds %d; want one per planned action plus one per call: %d",
			r.SpansSent, r.SpansFailed, len(got), want)
	}
	calls := llmSpans(got)
	if len(calls) != wantCalls {
		t.Fatalf("%d LLM spans, want %d", len(calls), wantCalls)
	}
	tc := propagation.TraceContext{}
	for _, s := range calls {
		a := attrMap(s.Attributes)
		res := attrMap(s.Resource.Attributes())
		agent := res["service.name"].AsString()
		if s.SpanKind != trace.SpanKindClient || s.Name != "chat sim-llm" || a["gen_ai.provider.name"].AsString() != "sim" ||
			a["gen_ai.request.model"].AsString() != "sim-llm" || a["gen_ai.usage.input_tokens"].AsInt64() <= 0 ||
			a["gen_ai.usage.output_tokens"].AsInt64() <= 0 {
			t.Fatalf("span %q kind %v attributes %v: not a GenAI chat span with usage", s.Name, s.SpanKind, s.Attributes)
		}
		if res["gen_ai.agent.name"].AsString() != agent || res["team"].AsString() != "growth" {
			t.Fatalf("resource %v: want gen_ai.agent.name = service.name and team growth", s.Resource.Attributes())
		}
		d, ok := api.decision(a[guard.BaggageDecisionID].AsString())
		if !ok {
			t.Fatalf("span attributes %v: no decision id the API gave", s.Attributes)
		}
		if d.req.AgentID != agent || a[guard.BaggageRunID].AsString() != d.req.RunID || a[guard.BaggageAction].AsString() != d.req.Action {
			t.Fatalf("span of %s run %q action %q carries decision %+v", agent, a[guard.BaggageRunID].AsString(), a[guard.BaggageAction].AsString(), d.req)
		}
		// The decision request carried the trace of the action's spans.
		parent := trace.SpanContextFromContext(tc.Extract(context.Background(), propagation.MapCarrier{"traceparent": d.traceparent}))
		if parent.TraceID() != s.SpanContext.TraceID() {
			t.Fatalf("decision traceparent %q is not the trace %s of its spans", d.traceparent, s.SpanContext.TraceID())
		}
		if agent == "research-agent" && a["gen_ai.usage.output_tokens"].AsInt64() != api.researchMaxTokens {
			t.Fatalf("research-agent call reports %d output tokens, want the decision's max_tokens %d",
				a["gen_ai.usage.output_tokens"].AsInt64(), api.researchMaxTokens)
		}
	}
}

func TestRunawayFleetBudget(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	api := newFakeDecisionAPI(t, spans)
	api.limit = usdOf(t, "300") // throttle from $240, pause from $285 of the plan's $450
	plan := testPlan("t2", 2)
	plan.Loop.Agent = ""
	fleet := testFleet(t, api, spans)
	r, err := RunRunaway(context.Background(), RunawayOptions{Plan: plan, Fleet: fleet, Speed: instant, ReviewerToken: reviewerToken})
	if err != nil {
		t.Fatal(err)
	}
	th, pa := r.Fleet.ThrottleBeganSimSeconds, r.Fleet.PauseBeganSimSeconds
	if th == nil || pa == nil || *th > *pa {
		t.Fatalf("fleet throttle began %v, pause %v; want both, throttle first", th, pa)
	}
	if r.DeniedByRule["budget.fleet"] == 0 || r.ThrottledByRule["budget.fleet"] == 0 {
		t.Errorf("denied %v, throttled %v; want both by budget.fleet", r.DeniedByRule, r.ThrottledByRule)
	}
	total := 0
	for _, n := range r.Outcomes {
		total += n
	}
	if total != r.Plan.Actions || r.Plan.Cost != usdOf(t, "450") {
		t.Errorf("outcomes %v for %d planned actions costing %s, want every one of 2 batches ($450) accounted for", r.Outcomes, r.Plan.Actions, r.Plan.Cost)
	}
	// Levels count settled plus reserved spend: once paused nothing more is allowed, so the
	// fleet stops within one action (at most the $75 batch-generate) of the pause level.
	if limit := usdOf(t, "285") + usdOf(t, "75"); r.Ran.Cost > limit || r.Ran.Cost < usdOf(t, "240") {
		t.Errorf("ran %s, want between the throttle level $240 and $285 + one action", r.Ran.Cost)
	}
	if s := r.Settled; s == nil || s.Cost != r.Ran.Cost || s.Actions != r.Ran.Actions {
		t.Errorf("settled %+v, want the %d actions that ran at %s", r.Settled, r.Ran.Actions, r.Ran.Cost)
	}
}

func TestRunawayUngoverned(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	api := newFakeDecisionAPI(t, spans) // running, but an ungoverned fleet must not call it
	plan := testPlan("t3", 2)
	r, err := RunRunaway(context.Background(), RunawayOptions{Plan: plan, Fleet: testFleet(t, nil, spans), Speed: instant,
		ReviewerToken: reviewerToken})
	if err != nil {
		t.Fatal(err)
	}
	if n := api.requestCount(); n != 0 {
		t.Errorf("an ungoverned fleet asked the decision API %d times", n)
	}
	if r.Mode != "ungoverned" || r.Ran != r.Plan || r.Outcomes[StatusRan] != r.Plan.Actions {
		t.Errorf("mode %s ran %+v of plan %+v (%v); want every planned action run", r.Mode, r.Ran, r.Plan, r.Outcomes)
	}
	if r.Settled != nil || r.DecisionLatency != nil || r.Approvals.AutoReviewer {
		t.Errorf("ungoverned report has settlements %+v, latency %+v, reviewer %v", r.Settled, r.DecisionLatency, r.Approvals.AutoReviewer)
	}
	var sum money.Nanos
	for _, s := range llmSpans(spans.GetSpans()) {
		a := attrMap(s.Attributes)
		if _, ok := a[guard.BaggageDecisionID]; ok {
			t.Fatalf("ungoverned span carries a decision id: %v", s.Attributes)
		}
		if !strings.HasPrefix(a[guard.BaggageRunID].AsString(), "t3-") || a[guard.BaggageAction].AsString() == "" {
			t.Fatalf("ungoverned span lacks its run and action: %v", s.Attributes)
		}
		sum += callCost(a["gen_ai.usage.input_tokens"].AsInt64(), a["gen_ai.usage.output_tokens"].AsInt64())
	}
	if sum != r.Plan.Cost {
		t.Errorf("spans report usage worth %s, want the plan's %s", sum, r.Plan.Cost)
	}
}

func TestRunawayApprovalTimesOut(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	api := newFakeDecisionAPI(t, spans)
	plan := testPlan("t4", 2)
	plan.Loop.Agent = ""
	fleet := testFleet(t, api, spans)
	fleet.ApprovalWait = 20 * time.Millisecond
	r, err := RunRunaway(context.Background(), RunawayOptions{Plan: plan, Fleet: fleet, Speed: instant})
	if err != nil {
		t.Fatal(err)
	}
	if want := (ApprovalsReport{Requested: 2, TimedOut: 2}); r.Approvals != want {
		t.Errorf("approvals %+v, want %+v", r.Approvals, want)
	}
	for _, a := range r.Agents {
		want := a.Planned
		if a.Agent == "drafting-agent" {
			want = 0
		}
		if a.Agent != "research-agent" && a.Spent != want { // research's output is capped
			t.Errorf("%s spent %s, want %s", a.Agent, a.Spent, want)
		}
	}
	if r.Outcomes[StatusApprovalTimeout] != 2 {
		t.Errorf("outcomes %v, want the 2 batch-generates timed out waiting", r.Outcomes)
	}
}

func TestRunawayDecisionAPIFails(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	api := newFakeDecisionAPI(t, spans)
	api.failDecisions = true
	plan := testPlan("t5", 1)
	plan.Loop.Agent = ""
	r, err := RunRunaway(context.Background(), RunawayOptions{Plan: plan, Fleet: testFleet(t, api, spans), Speed: instant})
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcomes[StatusError] != 41 || r.Ran.Actions != 0 || len(llmSpans(spans.GetSpans())) != 0 {
		t.Errorf("outcomes %v, ran %+v; want all 41 actions failed and no LLM call made", r.Outcomes, r.Ran)
	}
	if r.Errors != 41*2 || len(r.ErrorSamples) == 0 || !strings.Contains(strings.Join(r.ErrorSamples, "\n"), "policy store unavailable") {
		t.Errorf("errors %d %q, want each action's error and each failed request, with the server's message", r.Errors, r.ErrorSamples)
	}
}

func TestRunawayDurationBoundsThePlan(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	plan := testPlan("t6", 0)
	// 2s at 90x is 3 simulated minutes: only the first round (due at 0) is planned.
	r, err := RunRunaway(context.Background(), RunawayOptions{Plan: plan, Fleet: testFleet(t, nil, spans), Speed: 90, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Plan.Actions != 3 || r.Outcomes[StatusRan] != 3 {
		t.Errorf("planned %d, outcomes %v; want the first round's 3 actions run", r.Plan.Actions, r.Outcomes)
	}
}

func TestRunawayCanceled(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, err := RunRunaway(ctx, RunawayOptions{Plan: testPlan("t7", 1), Fleet: testFleet(t, nil, spans), Speed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcomes[StatusNotRun] != r.Plan.Actions || r.Ran.Actions != 0 {
		t.Errorf("outcomes %v of %d planned; want none run after an interrupt", r.Outcomes, r.Plan.Actions)
	}
}

func TestSteady(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	api := newFakeDecisionAPI(t, spans)
	fleet := testFleet(t, api, spans)
	fleet.FlushPerAction = false
	r, err := RunSteady(context.Background(), SteadyOptions{Fleet: fleet, Agents: 3, Team: "load", Rate: 400, Duration: 250 * time.Millisecond,
		Concurrency: 8, Seed: 7, InputTokens: 2000, OutputTokens: 500, RunPrefix: "t8"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Plan.Actions == 0 || r.Outcomes[StatusRan] != r.Plan.Actions || r.Errors != 0 {
		t.Fatalf("planned %d, outcomes %v, errors %d %v", r.Plan.Actions, r.Outcomes, r.Errors, r.ErrorSamples)
	}
	if r.DecisionLatency == nil || r.DecisionLatency.Count != api.requestCount() || r.DecisionLatency.Count != r.Plan.Actions ||
		r.DecisionLatency.P50Ms > r.DecisionLatency.P99Ms {
		t.Errorf("latency %+v for %d requests and %d actions", r.DecisionLatency, api.requestCount(), r.Plan.Actions)
	}
	if want := int64(r.Plan.Actions + r.Ran.Calls); r.SpansSent != want || int64(len(spans.GetSpans())) != want {
		t.Errorf("spans sent %d, exporter holds %d; want %d", r.SpansSent, len(spans.GetSpans()), want)
	}
	if r.ActionsPerSecond <= 0 || r.TargetRate != 400 || r.Scenario != "steady" {
		t.Errorf("report %+v", r)
	}
	for _, a := range r.Agents {
		if !strings.HasPrefix(a.Agent, "steady-agent-00") {
			t.Errorf("agent %q", a.Agent)
		}
	}
	for _, s := range llmSpans(spans.GetSpans()) {
		if team := attrMap(s.Resource.Attributes())["team"]; team != attribute.StringValue("load") {
			t.Fatalf("steady span's team %v, want load", team)
		}
	}
}

func TestSteadyOptionsErrors(t *testing.T) {
	base := SteadyOptions{Fleet: FleetConfig{Pricer: simPricer(t)}, Agents: 1, Rate: 1, Duration: time.Second, Concurrency: 1}
	tests := []struct {
		name   string
		modify func(*SteadyOptions)
		want   string
	}{
		{"no agents", func(o *SteadyOptions) { o.Agents = 0 }, "agents must be at least 1"},
		{"zero rate", func(o *SteadyOptions) { o.Rate = 0 }, "rate must be a positive"},
		{"no duration", func(o *SteadyOptions) { o.Duration = 0 }, "duration must be positive"},
		{"too many actions", func(o *SteadyOptions) { o.Rate, o.Duration = 1e6, time.Hour }, "more than 5000000 actions"},
		{"no concurrency", func(o *SteadyOptions) { o.Concurrency = 0 }, "concurrency"},
		{"huge calls", func(o *SteadyOptions) { o.InputTokens = 2_000_000 }, "tokens per call"},
		{"no pricer", func(o *SteadyOptions) { o.Fleet.Pricer = nil }, "pricer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.modify(&o)
			if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

package guard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

var researchAction = Action{Name: "job.research.company", EstimatedCostUSD: 0.4, Items: 2, RiskTags: []string{"high-cost"}}

func allowWith(c decisionapi.Constraints) decisionapi.DecisionResponse {
	return decisionapi.DecisionResponse{Decision: decisionapi.DecisionAllowWithConstraints, RuleID: "throttle-llm-calls",
		Reason: "LLM calls throttled", Constraints: c}
}

func traceparent(sc trace.SpanContext) string {
	return fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID())
}

func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

// TestAllowRunsUnderConstraintsWithBaggage covers the whole allowed path: the request the agent
// sends, the constraints and deadline fn runs under, the baggage in its context, the span
// attributes the processor copies from it, and the release.
func TestAllowRunsUnderConstraintsWithBaggage(t *testing.T) {
	f := newFakeAPI(t, allowWith(decisionapi.Constraints{MaxTokens: decisionapi.Limit(500), MaxRuntimeSec: decisionapi.Limit(30),
		MaxRetries: decisionapi.Limit(0)}))
	c, _ := newTestClient(t, f)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(NewBaggageSpanProcessor()), sdktrace.WithSyncer(exp))
	tracer := tp.Tracer("agent")

	upstream, _ := baggage.Parse("user.id=u-42,agentcost.cost_usd=0")
	ctx := baggage.ContextWithBaggage(context.Background(), upstream)
	ctx, step := tracer.Start(ctx, "agent.step")
	var ran *Decision
	start := time.Now()
	err := c.Run(ctx, researchAction, func(ctx context.Context, d *Decision) error {
		ran = d
		if d.Constraints.MaxTokens == nil || *d.Constraints.MaxTokens != 500 {
			t.Errorf("max_tokens %v, want 500", d.Constraints.MaxTokens)
		}
		if d.Constraints.MaxRetries == nil || *d.Constraints.MaxRetries != 0 {
			t.Errorf("max_retries %v, want a set 0", d.Constraints.MaxRetries)
		}
		deadline, ok := ctx.Deadline()
		if !ok || deadline.Before(start.Add(29*time.Second)) || deadline.After(time.Now().Add(30*time.Second)) {
			t.Errorf("deadline %v (set %v), want 30s from the start", deadline, ok)
		}
		bag := baggage.FromContext(ctx)
		for k, want := range map[string]string{BaggageDecisionID: d.DecisionID, BaggageRunID: "run-7",
			BaggageAction: "job.research.company", "user.id": "u-42"} {
			if got := bag.Member(k).Value(); got != want {
				t.Errorf("baggage %s = %q, want %q", k, got, want)
			}
		}
		if DecisionFromContext(ctx) != d {
			t.Error("DecisionFromContext does not return the decision")
		}
		_, llm := tracer.Start(ctx, "llm.call")
		llm.End()
		return nil
	})
	step.End()
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if ran == nil {
		t.Fatal("fn did not run")
	}

	decisions, tps, _, releases := f.snapshot()
	if len(decisions) != 1 {
		t.Fatalf("%d decision requests, want 1", len(decisions))
	}
	got := decisions[0]
	if got.AgentID != "research-agent" || got.Team != "growth" || got.RunID != "run-7" || got.Action != "job.research.company" ||
		got.EstimatedCostUSD != 0.4 || got.Items != 2 || !slices.Equal(got.RiskTags, []string{"high-cost"}) || len(got.IdempotencyKey) != 32 {
		t.Errorf("decision request %+v", got)
	}
	if want := traceparent(step.SpanContext()); tps[0] != want {
		t.Errorf("traceparent %q, want the caller's span %q", tps[0], want)
	}
	if len(releases) != 1 || releases[0].leaseID != ran.LeaseID || releases[0].req.Status != decisionapi.StatusOK ||
		strings.Contains(releases[0].raw, "actual_cost_usd") {
		t.Errorf("releases %+v, want one of %s with status ok and no cost", releases, ran.LeaseID)
	}
	if s, ok := ran.Settlement(); !ok || s.Source != decisionapi.SourceNone {
		t.Errorf("settlement %+v, %v", s, ok)
	}

	spans := map[string]map[attribute.Key]string{}
	for _, s := range exp.GetSpans().Snapshots() {
		spans[s.Name()] = spanAttrs(s)
	}
	llm := spans["llm.call"]
	if llm[BaggageDecisionID] != ran.DecisionID || llm[BaggageRunID] != "run-7" || llm[BaggageAction] != "job.research.company" {
		t.Errorf("llm.call attributes %v", llm)
	}
	if _, ok := llm["agentcost.cost_usd"]; ok {
		t.Error("an upstream agentcost.cost_usd baggage member was copied onto the span")
	}
	if _, ok := llm["user.id"]; ok {
		t.Error("a non-agentcost baggage member was copied onto the span")
	}
	if len(spans["agent.step"]) != 0 {
		t.Errorf("the span started before the decision got attributes %v", spans["agent.step"])
	}
}

func TestTracerProviderWrapsTheAction(t *testing.T) {
	f := newFakeAPI(t, decisionapi.DecisionResponse{Decision: decisionapi.DecisionAllow})
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	c, _ := newTestClient(t, f, WithTracerProvider(tp))
	var inner trace.SpanContext
	if err := c.Run(context.Background(), researchAction, func(ctx context.Context, d *Decision) error {
		inner = trace.SpanContextFromContext(ctx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans().Snapshots()
	if len(spans) != 1 || spans[0].Name() != "guard job.research.company" {
		t.Fatalf("spans %v", spans)
	}
	_, tps, _, _ := f.snapshot()
	if tps[0] != traceparent(spans[0].SpanContext()) || inner.SpanID() != spans[0].SpanContext().SpanID() {
		t.Errorf("traceparent %s, fn span %s; want the guard span %s", tps[0], inner.SpanID(), spans[0].SpanContext().SpanID())
	}
	if a := spanAttrs(spans[0]); a[BaggageDecisionID] != "dec-1" || a["agentcost.decision"] != "allow" {
		t.Errorf("guard span attributes %v", a)
	}
}

func TestThrottleWaitsThenAsksAgain(t *testing.T) {
	throttle := func(sec int64) decisionapi.DecisionResponse {
		return decisionapi.DecisionResponse{Decision: decisionapi.DecisionThrottle, RuleID: "throttle-llm-calls", Reason: "rate", RetryAfterSec: sec}
	}
	f := newFakeAPI(t, throttle(2), throttle(0), throttle(3), decisionapi.DecisionResponse{Decision: decisionapi.DecisionAllow})
	c, clock := newTestClient(t, f, WithPollInterval(time.Second))
	a := researchAction
	a.IdempotencyKey = "job-17"
	runs := 0
	if err := c.Run(context.Background(), a, func(context.Context, *Decision) error { runs++; return nil }); err != nil {
		t.Fatal(err)
	}
	// retry_after_sec 2, then 0 (the poll interval, 1s), then 3.
	if want := []time.Duration{2 * time.Second, time.Second, 3 * time.Second}; !slices.Equal(clock.Sleeps(), want) {
		t.Errorf("waits %v, want %v", clock.Sleeps(), want)
	}
	decisions, _, _, releases := f.snapshot()
	var keys []string
	for _, d := range decisions {
		keys = append(keys, d.IdempotencyKey)
	}
	if want := []string{"job-17", "job-17-r2", "job-17-r3", "job-17-r4"}; !slices.Equal(keys, want) {
		t.Errorf("idempotency keys %v, want %v", keys, want)
	}
	if runs != 1 || len(releases) != 1 {
		t.Errorf("fn ran %d times, %d releases; want 1 and 1", runs, len(releases))
	}
}

func TestThrottleGivesUp(t *testing.T) {
	cases := []struct {
		name      string
		retryAft  int64
		opts      []Option
		wantAsks  int
		wantSleep time.Duration
	}{
		{"retries exhausted", 1, []Option{WithMaxThrottleRetries(2)}, 3, 2 * time.Second},
		{"total wait exhausted", 20, []Option{WithMaxThrottleWait(50 * time.Second)}, 3, 40 * time.Second},
		{"retry_after beyond the wait", 3600, nil, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, decisionapi.DecisionResponse{Decision: decisionapi.DecisionThrottle, RuleID: "fleet", Reason: "busy", RetryAfterSec: tc.retryAft})
			c, clock := newTestClient(t, f, tc.opts...)
			err := c.Run(context.Background(), researchAction, func(context.Context, *Decision) error {
				t.Error("fn ran")
				return nil
			})
			var te *ThrottledError
			if !errors.As(err, &te) || !errors.Is(err, ErrThrottled) {
				t.Fatalf("Run = %v, want a *ThrottledError", err)
			}
			if te.Attempts != tc.wantAsks || te.RuleID != "fleet" || te.RetryAfter != time.Duration(tc.retryAft)*time.Second {
				t.Errorf("error %+v", te)
			}
			var slept time.Duration
			for _, s := range clock.Sleeps() {
				slept += s
			}
			decisions, _, _, releases := f.snapshot()
			if len(decisions) != tc.wantAsks || slept != tc.wantSleep || len(releases) != 0 {
				t.Errorf("%d asks, slept %v, %d releases; want %d asks, %v, no release", len(decisions), slept, len(releases), tc.wantAsks, tc.wantSleep)
			}
		})
	}
}

func TestThrottleWaitHonoursContext(t *testing.T) {
	f := newFakeAPI(t, decisionapi.DecisionResponse{Decision: decisionapi.DecisionThrottle, RetryAfterSec: 1})
	c, err := New(f.srv.URL, WithToken(testToken), WithAgent("a"), WithMaxThrottleRetries(1000), WithMaxThrottleWait(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = c.Run(ctx, researchAction, func(context.Context, *Decision) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want the context's deadline", err)
	}
}

func TestApprovalPolledThenResubmitted(t *testing.T) {
	f := newFakeAPI(t,
		decisionapi.DecisionResponse{Decision: decisionapi.DecisionRequireApproval, RuleID: "approve-expensive-batch", ApprovalID: "ap-1"},
		decisionapi.DecisionResponse{Decision: decisionapi.DecisionAllow, ApprovalID: "ap-1"})
	f.approvalStates = []decisionapi.ApprovalState{decisionapi.ApprovalPending, decisionapi.ApprovalPending, decisionapi.ApprovalApproved}
	c, clock := newTestClient(t, f, WithPollInterval(5*time.Second))
	runs := 0
	a := Action{Name: "job.research.batch-generate", EstimatedCostUSD: 75, Items: 200}
	if err := c.Run(context.Background(), a, func(context.Context, *Decision) error { runs++; return nil }); err != nil {
		t.Fatal(err)
	}
	decisions, _, polls, releases := f.snapshot()
	if !slices.Equal(polls, []string{"ap-1", "ap-1", "ap-1"}) {
		t.Errorf("polls %v", polls)
	}
	if want := []time.Duration{5 * time.Second, 5 * time.Second}; !slices.Equal(clock.Sleeps(), want) {
		t.Errorf("waits %v, want %v", clock.Sleeps(), want)
	}
	if len(decisions) != 2 || decisions[0].ApprovalID != "" || decisions[1].ApprovalID != "ap-1" {
		t.Fatalf("decision requests %+v, want a second one with approval_id ap-1", decisions)
	}
	if decisions[1].IdempotencyKey == decisions[0].IdempotencyKey {
		t.Error("the re-submitted decision reuses the first request's idempotency key")
	}
	if runs != 1 || len(releases) != 1 {
		t.Errorf("fn ran %d times, %d releases", runs, len(releases))
	}
}

func TestApprovalNotGranted(t *testing.T) {
	requireApproval := decisionapi.DecisionResponse{Decision: decisionapi.DecisionRequireApproval, ApprovalID: "ap-9"}
	pending := decisionapi.ApprovalPending
	cases := []struct {
		name      string
		states    []decisionapi.ApprovalState
		sentinel  error
		state     decisionapi.ApprovalState
		reviewer  string
		wantPolls int
		wantWait  time.Duration
	}{
		{"denied", []decisionapi.ApprovalState{pending, decisionapi.ApprovalDenied}, ErrApprovalDenied, decisionapi.ApprovalDenied, "alice@example.com", 2, 2 * time.Second},
		{"expired", []decisionapi.ApprovalState{decisionapi.ApprovalExpired}, ErrApprovalExpired, decisionapi.ApprovalExpired, "alice@example.com", 1, 0},
		// Max wait 5s, polls every 2s: at 0, 2, 4 and (the last, shortened wait) 5.
		{"timed out", []decisionapi.ApprovalState{pending}, ErrApprovalTimeout, pending, "", 4, 5 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, requireApproval)
			f.approvalStates = tc.states
			c, clock := newTestClient(t, f, WithPollInterval(2*time.Second), WithMaxApprovalWait(5*time.Second))
			err := c.Run(context.Background(), researchAction, func(context.Context, *Decision) error {
				t.Error("fn ran")
				return nil
			})
			var ae *ApprovalError
			if !errors.As(err, &ae) || !errors.Is(err, tc.sentinel) {
				t.Fatalf("Run = %v, want an *ApprovalError matching %v", err, tc.sentinel)
			}
			if ae.ApprovalID != "ap-9" || ae.State != tc.state || ae.Reviewer != tc.reviewer {
				t.Errorf("error %+v", ae)
			}
			if tc.state == decisionapi.ApprovalDenied && ae.Reason != "too expensive this week" {
				t.Errorf("reason %q, want the reviewer's", ae.Reason)
			}
			var waited time.Duration
			for _, s := range clock.Sleeps() {
				waited += s
			}
			decisions, _, polls, releases := f.snapshot()
			if len(polls) != tc.wantPolls || waited != tc.wantWait || len(decisions) != 1 || len(releases) != 0 {
				t.Errorf("%d polls, waited %v, %d decisions, %d releases; want %d polls, %v, 1, 0",
					len(polls), waited, len(decisions), len(releases), tc.wantPolls, tc.wantWait)
			}
		})
	}
}

func TestApprovalUnknownStopsPolling(t *testing.T) {
	f := newFakeAPI(t, decisionapi.DecisionResponse{Decision: decisionapi.DecisionRequireApproval, ApprovalID: "ap-gone"})
	c, _ := newTestClient(t, f)
	err := c.Run(context.Background(), researchAction, func(context.Context, *Decision) error { return nil })
	var ae *decisionapi.APIError
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Code != decisionapi.CodeNotFound {
		t.Fatalf("Run = %v, want the 404", err)
	}
	if _, _, polls, _ := f.snapshot(); len(polls) != 1 {
		t.Errorf("%d polls after a 404, want 1", len(polls))
	}
}

func TestApprovalLoopIsBounded(t *testing.T) {
	f := newFakeAPI(t, decisionapi.DecisionResponse{Decision: decisionapi.DecisionRequireApproval, ApprovalID: "ap-1"})
	f.approvalStates = []decisionapi.ApprovalState{decisionapi.ApprovalApproved}
	c, _ := newTestClient(t, f)
	err := c.Run(context.Background(), researchAction, func(context.Context, *Decision) error { return nil })
	var ae *ApprovalError
	if !errors.As(err, &ae) {
		t.Fatalf("Run = %v, want an *ApprovalError", err)
	}
	if decisions, _, _, _ := f.snapshot(); len(decisions) != maxApprovalRounds+1 {
		t.Errorf("%d decision requests, want %d", len(decisions), maxApprovalRounds+1)
	}
}

func TestDenyStopsWithoutRunning(t *testing.T) {
	f := newFakeAPI(t, decisionapi.DecisionResponse{Decision: decisionapi.DecisionDeny, RuleID: "budget.agent",
		Reason: "agent budget exhausted until the window resets", RetryAfterSec: 1200})
	c, _ := newTestClient(t, f)
	err := c.Run(context.Background(), researchAction, func(context.Context, *Decision) error {
		t.Error("fn ran")
		return nil
	})
	var de *DeniedError
	if !errors.As(err, &de) || !errors.Is(err, ErrDenied) {
		t.Fatalf("Run = %v, want a *DeniedError", err)
	}
	if de.RuleID != "budget.agent" || de.Reason != "agent budget exhausted until the window resets" ||
		de.RetryAfter != 20*time.Minute || de.DecisionID != "dec-1" {
		t.Errorf("error %+v", de)
	}
	if _, _, _, releases := f.snapshot(); len(releases) != 0 {
		t.Errorf("%d releases after deny", len(releases))
	}
}

func TestUnknownDecisionDoesNotRun(t *testing.T) {
	f := newFakeAPI(t)
	f.rawDecision = `{"decision":"maybe","decision_id":"d","policy_version":"v","lease_id":"l"}`
	c, _ := newTestClient(t, f)
	err := c.Run(context.Background(), researchAction, func(context.Context, *Decision) error {
		t.Error("fn ran")
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), `unknown decision "maybe"`) {
		t.Fatalf("Run = %v, want an unknown decision error", err)
	}
}

// TestDeadlineEnforced runs fn under a real one-second max_runtime_sec.
func TestDeadlineEnforced(t *testing.T) {
	f := newFakeAPI(t, allowWith(decisionapi.Constraints{MaxRuntimeSec: decisionapi.Limit(1)}))
	c, _ := newTestClient(t, f)
	err := c.Run(context.Background(), researchAction, func(ctx context.Context, d *Decision) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return nil
		}
	})
	if !errors.Is(err, ErrMaxRuntime) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want ErrMaxRuntime and context.DeadlineExceeded", err)
	}
	if _, _, _, releases := f.snapshot(); len(releases) != 1 || releases[0].req.Status != decisionapi.StatusTimeout {
		t.Errorf("releases %+v, want one with status timeout", releases)
	}
}

func TestReleaseAlwaysSent(t *testing.T) {
	boom := errors.New("provider 500")
	cases := []struct {
		name       string
		fn         func(ctx context.Context, d *Decision) error
		cancel     bool // cancel the caller's context inside fn
		wantErr    error
		wantPanic  bool
		wantStatus decisionapi.SettlementStatus
		wantCost   *float64
	}{
		{name: "ok", fn: func(context.Context, *Decision) error { return nil }, wantStatus: decisionapi.StatusOK},
		{name: "error", fn: func(context.Context, *Decision) error { return boom }, wantErr: boom, wantStatus: decisionapi.StatusError},
		{name: "panic", fn: func(context.Context, *Decision) error { panic("tool crashed") }, wantPanic: true, wantStatus: decisionapi.StatusPanic},
		{name: "canceled", cancel: true, fn: func(ctx context.Context, _ *Decision) error { <-ctx.Done(); return ctx.Err() },
			wantErr: context.Canceled, wantStatus: decisionapi.StatusCanceled},
		{name: "reported cost", fn: func(_ context.Context, d *Decision) error {
			// 0.1 + 0.2 is 0.30000000000000004 in float64; exact nano-dollars sum to 0.3.
			if err := d.ReportCost(0.1); err != nil {
				return err
			}
			return d.ReportCost(0.2)
		}, wantStatus: decisionapi.StatusOK, wantCost: ptr(0.3)},
		{name: "reported cost and error", fn: func(_ context.Context, d *Decision) error {
			_ = d.ReportCost(1.5)
			return boom
		}, wantErr: boom, wantStatus: decisionapi.StatusError, wantCost: ptr(1.5)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, decisionapi.DecisionResponse{Decision: decisionapi.DecisionAllow, LeaseID: "lease-x"})
			c, _ := newTestClient(t, f)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fn := tc.fn
			if tc.cancel {
				fn = func(ctx context.Context, d *Decision) error { cancel(); return tc.fn(ctx, d) }
			}
			var err error
			panicked := func() (p any) {
				defer func() { p = recover() }()
				err = c.Run(ctx, researchAction, fn)
				return nil
			}()
			if (panicked != nil) != tc.wantPanic || tc.wantPanic && panicked != "tool crashed" {
				t.Errorf("panic %v, want panic %v", panicked, tc.wantPanic)
			}
			if !tc.wantPanic && !errors.Is(err, tc.wantErr) || tc.wantErr == nil && err != nil {
				t.Errorf("Run = %v, want %v", err, tc.wantErr)
			}
			_, _, _, releases := f.snapshot()
			if len(releases) != 1 {
				t.Fatalf("%d releases, want 1", len(releases))
			}
			r := releases[0]
			if r.leaseID != "lease-x" || r.req.Status != tc.wantStatus {
				t.Errorf("release of %s with status %s, want lease-x and %s", r.leaseID, r.req.Status, tc.wantStatus)
			}
			switch {
			case tc.wantCost == nil && r.req.ActualCostUSD != nil:
				t.Errorf("actual_cost_usd %v sent without a report", *r.req.ActualCostUSD)
			case tc.wantCost != nil && (r.req.ActualCostUSD == nil || *r.req.ActualCostUSD != *tc.wantCost):
				t.Errorf("actual_cost_usd %v, want %v (body %s)", r.req.ActualCostUSD, *tc.wantCost, r.raw)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestReportCostRejectsBadAmounts(t *testing.T) {
	var d Decision
	for _, bad := range []float64{-1, 2e9} {
		if err := d.ReportCost(bad); err == nil {
			t.Errorf("ReportCost(%v) accepted", bad)
		}
	}
	if _, ok := d.ReportedCostUSD(); ok {
		t.Error("rejected reports count as reported")
	}
	if err := d.ReportCost(999_999_999); err != nil {
		t.Fatal(err)
	}
	if err := d.ReportCost(1.5); err == nil {
		t.Error("a sum above the maximum was accepted")
	}
}

func TestReleaseFailureDoesNotFailTheAction(t *testing.T) {
	f := newFakeAPI(t, decisionapi.DecisionResponse{Decision: decisionapi.DecisionAllow})
	f.releaseStatus = 500
	c, _ := newTestClient(t, f)
	var dec *Decision
	if err := c.Run(context.Background(), researchAction, func(_ context.Context, d *Decision) error { dec = d; return nil }); err != nil {
		t.Fatalf("Run = %v, want nil despite the failed release", err)
	}
	if _, ok := dec.Settlement(); ok {
		t.Error("a failed release left a settlement")
	}
	if _, _, _, releases := f.snapshot(); len(releases) != 1 {
		t.Errorf("%d release attempts, want 1 (500 is not retried)", len(releases))
	}
}

func TestTransientFailuresAreRetried(t *testing.T) {
	for _, status := range []int{429, 503} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := newFakeAPI(t, decisionapi.DecisionResponse{Decision: decisionapi.DecisionAllow})
			f.failDecisions, f.failStatus = 2, status
			c, clock := newTestClient(t, f)
			if err := c.Run(context.Background(), researchAction, func(context.Context, *Decision) error { return nil }); err != nil {
				t.Fatal(err)
			}
			decisions, _, _, _ := f.snapshot()
			if len(decisions) != 3 || decisions[0].IdempotencyKey != decisions[2].IdempotencyKey {
				t.Errorf("%d attempts, keys %q and %q; want 3 with one key", len(decisions), decisions[0].IdempotencyKey, decisions[len(decisions)-1].IdempotencyKey)
			}
			if want := []time.Duration{time.Second, time.Second}; !slices.Equal(clock.Sleeps(), want) {
				t.Errorf("waits %v, want Retry-After %v", clock.Sleeps(), want)
			}
		})
	}
	f := newFakeAPI(t, decisionapi.DecisionResponse{Decision: decisionapi.DecisionAllow})
	f.failDecisions, f.failStatus = maxAttempts, 503
	c, _ := newTestClient(t, f)
	err := c.Run(context.Background(), researchAction, func(context.Context, *Decision) error { return nil })
	var ae *decisionapi.APIError
	if !errors.As(err, &ae) || ae.Status != 503 || ae.RetryAfterSec != 1 || ae.Code != decisionapi.CodeUnavailable {
		t.Fatalf("Run = %v, want the last 503", err)
	}
}

func TestInvalidActionFailsBeforeAnyRequest(t *testing.T) {
	f := newFakeAPI(t)
	c, _ := newTestClient(t, f)
	cases := []struct {
		a     Action
		field string
	}{
		{Action{}, "action"},
		{Action{Name: "job.x", EstimatedCostUSD: -1}, "estimated_cost_usd"},
		{Action{Name: "job.x", RiskTags: []string{"bad tag"}}, "risk_tags[0]"},
	}
	for _, tc := range cases {
		err := c.Run(context.Background(), tc.a, func(context.Context, *Decision) error { return nil })
		var fe *decisionapi.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("Run(%+v) = %v, want a field error for %s", tc.a, err, tc.field)
		}
	}
	noAgent, _ := New(f.srv.URL)
	if _, err := noAgent.Decide(context.Background(), researchAction); err == nil || !strings.Contains(err.Error(), "agent_id") {
		t.Errorf("Decide without an agent = %v", err)
	}
	if decisions, _, _, _ := f.snapshot(); len(decisions) != 0 {
		t.Errorf("%d requests sent for invalid actions", len(decisions))
	}
}

func TestDecideReturnsTheRawAnswer(t *testing.T) {
	f := newFakeAPI(t, decisionapi.DecisionResponse{Decision: decisionapi.DecisionThrottle, RetryAfterSec: 9})
	c, clock := newTestClient(t, f)
	got, err := c.Decide(context.Background(), researchAction)
	if err != nil || got.Decision != decisionapi.DecisionThrottle || got.RetryAfterSec != 9 {
		t.Fatalf("Decide = %+v, %v", got, err)
	}
	if len(clock.Sleeps()) != 0 {
		t.Error("Decide waited")
	}
	if decisions, _, _, _ := f.snapshot(); len(decisions) != 1 {
		t.Errorf("%d requests, want 1", len(decisions))
	}
}

func TestNewValidatesEndpoint(t *testing.T) {
	for _, bad := range []string{"", "localhost:4320", "ftp://h", "http://", "http://h/?q=1", "://x"} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	c, err := New("https://agentcost.example.com/prefix/")
	if err != nil || c.base != "https://agentcost.example.com/prefix" {
		t.Errorf("New = %v, %v", c, err)
	}
	if _, err := New("http://h", WithPollInterval(0)); err == nil {
		t.Error("a zero poll interval was accepted")
	}
}

func TestBaggageSpanProcessor(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(NewBaggageSpanProcessor("agentcost.tenant", "tenant.id", "agentcost.")),
		sdktrace.WithSyncer(exp))
	bag, err := baggage.Parse("agentcost.decision_id=d%201,agentcost.run_id=r1,agentcost.tenant=acme,agentcost.team=x,tenant.id=t,agentcost.action=")
	if err != nil {
		t.Fatal(err)
	}
	ctx := baggage.ContextWithBaggage(context.Background(), bag)
	_, s := tp.Tracer("t").Start(ctx, "with")
	s.End()
	_, s = tp.Tracer("t").Start(context.Background(), "without")
	s.End()
	got := map[string]map[attribute.Key]string{}
	for _, sp := range exp.GetSpans().Snapshots() {
		got[sp.Name()] = spanAttrs(sp)
	}
	want := map[attribute.Key]string{"agentcost.decision_id": "d 1", "agentcost.run_id": "r1", "agentcost.tenant": "acme"}
	if fmt.Sprint(got["with"]) != fmt.Sprint(want) {
		t.Errorf("attributes %v, want %v", got["with"], want)
	}
	if len(got["without"]) != 0 {
		t.Errorf("span without baggage got %v", got["without"])
	}
	p := NewBaggageSpanProcessor()
	if p.Shutdown(context.Background()) != nil || p.ForceFlush(context.Background()) != nil {
		t.Error("no-op methods failed")
	}
}

func TestConcurrentRuns(t *testing.T) {
	f := newFakeAPI(t, decisionapi.DecisionResponse{Decision: decisionapi.DecisionAllow})
	c, _ := newTestClient(t, f)
	var ran atomic.Int32
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			errs <- c.Run(context.Background(), researchAction, func(context.Context, *Decision) error { ran.Add(1); return nil })
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	decisions, _, _, releases := f.snapshot()
	keys := map[string]bool{}
	for _, d := range decisions {
		keys[d.IdempotencyKey] = true
	}
	if ran.Load() != 8 || len(releases) != 8 || len(keys) != 8 {
		t.Errorf("ran %d, %d releases, %d distinct keys; want 8 each", ran.Load(), len(releases), len(keys))
	}
}

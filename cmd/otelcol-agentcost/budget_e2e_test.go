package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"

	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
	"github.com/agentcost/agentcost/pkg/guard"
)

// e2ePolicy: research-agent may spend $0.50 a month; the fleet $2 (throttle at $1.60, pause at
// $1.90); billing-agent is critical.
const e2ePolicy = `version: v1
policy_version: e2e-1
default_decision: allow
budgets:
  fleet: {limit_usd: 2, window: month, throttle_at: 0.80, pause_at: 0.95}
  agents: {research-agent: {limit_usd: 0.5, window: month}}
  default_agent: {limit_usd: 5, window: month}
agents:
  billing-agent: {critical: true}
`

// Access tokens of the e2e collector.
const (
	e2eResearchToken = "e2e-research-agent-token"
	e2eDraftingToken = "e2e-drafting-agent-token"
	e2eBillingToken  = "e2e-billing-agent-token!"
)

// TestEndToEndBudgetLoop runs the whole loop in one collector: agents instrumented with the
// otel-go SDK send GenAI spans over OTLP; the agentcost processor prices them and the costledger
// exporter books them into the budgetledger extension; the budget receiver decides on that spend
// (its guard client puts the decision id on the action's spans, so they settle it) and publishes
// budget state through a metrics pipeline into the exporter's /metrics.
//
// Each LLM span below costs $0.10 with gpt-4o ($2.50 per 1M input, $10 per 1M output):
// 20,000 × $0.0000025 + 5,000 × $0.00001.
func TestEndToEndBudgetLoop(t *testing.T) {
	dir := t.TempDir()
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(e2ePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	fc := startFullCollector(t, fullOptions{policy: policyPath, publish: 50 * time.Millisecond, settle: 50 * time.Millisecond,
		evidenceLogs: true, tokens: []accessToken{
			{e2eResearchToken, "agent", "research-agent"},
			{e2eDraftingToken, "agent", "drafting-agent"},
			{e2eBillingToken, "agent", "billing-agent"},
		}})
	grpcEndpoint, apiEndpoint, promEndpoint := fc.otlp, fc.api, fc.metrics

	ctx := context.Background()
	research := newAgent(t, ctx, grpcEndpoint, "research-agent")
	worker := newAgent(t, ctx, grpcEndpoint, "worker-agent")
	client := func(agent, token string) *guard.Client {
		c, err := guard.New("http://"+apiEndpoint, guard.WithAgent(agent), guard.WithToken(token),
			guard.WithTracerProvider(research.tp), guard.WithPropagator(propagation.TraceContext{}))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	researchClient := client("research-agent", e2eResearchToken)

	// research-agent runs guarded $0.05-estimate actions, each making one $0.10 call, until its
	// $0.50 budget is gone: after five calls $0.50 + $0.05 no longer fits.
	var runs int
	var denied *guard.DeniedError
	for runs = 0; runs < 10; runs++ {
		var decision *guard.Decision
		err := researchClient.Run(ctx, guard.Action{Name: "job.research", EstimatedCostUSD: 0.05}, func(ctx context.Context, d *guard.Decision) error {
			decision = d
			research.llmCall(ctx)
			return nil
		})
		if errors.As(err, &denied) {
			break
		}
		if err != nil {
			t.Fatalf("run %d: %v", runs, err)
		}
		// The call's span carried the decision id (baggage): it settled the action.
		if s, ok := decision.Settlement(); !ok || s.Source != decisionapi.SourceSpans || s.SpansMatched != 1 || s.ActualCostUSD != 0.1 || s.FreedUSD != 0 {
			t.Fatalf("run %d settled %+v (%v), want the one $0.10 span", runs, s, ok)
		}
	}
	if runs != 5 || denied.RuleID != policy.RuleAgentBudget {
		t.Fatalf("denied after %d runs by %v, want after 5 by %s", runs, denied, policy.RuleAgentBudget)
	}
	agentMetric := regexp.MustCompile(`agentcost_budget_spent_usd\{id="research-agent",scope="agent",window="month"\} ([0-9.e+-]+)`)
	if v := waitScrape(t, promEndpoint, agentMetric, func(v float64) bool { return v == 0.5 }); v != 0.5 {
		t.Errorf("research-agent spent $%v on /metrics, want $0.50 (five matched calls, nothing reserved)", v)
	}

	drafting, billing := client("drafting-agent", e2eDraftingToken), client("billing-agent", e2eBillingToken)
	decide := func(c *guard.Client) *decisionapi.DecisionResponse {
		t.Helper()
		d, err := c.Decide(ctx, guard.Action{Name: "job.draft", EstimatedCostUSD: 0})
		if err != nil {
			t.Fatal(err)
		}
		if d.LeaseID != "" {
			if _, err := c.Release(ctx, d.LeaseID, decisionapi.ReleaseRequest{}); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	// The fleet is at $0.50. Ten worker calls bring it to $1.50, still normal; one more to $1.60,
	// its throttle_at.
	for range 10 {
		worker.llmCall(ctx)
	}
	if d := decide(drafting); d.Decision != decisionapi.DecisionAllow {
		t.Fatalf("fleet at $1.50: %+v, want allow", d)
	}
	worker.llmCall(ctx)
	if d := decide(drafting); d.Decision != decisionapi.DecisionThrottle || d.RuleID != policy.RuleFleet {
		t.Fatalf("fleet at $1.60: %+v, want throttle by %s", d, policy.RuleFleet)
	}
	if d := decide(billing); d.Decision != decisionapi.DecisionAllow {
		t.Errorf("critical agent at $1.60: %+v, want allow", d)
	}
	fleetLevel := regexp.MustCompile(`agentcost_fleet_level ([0-9]+)`)
	waitScrape(t, promEndpoint, fleetLevel, func(v float64) bool { return v == 1 })

	// Three more calls: $1.90, pause_at. Non-critical agents are denied, the critical one runs.
	for range 3 {
		worker.llmCall(ctx)
	}
	if d := decide(drafting); d.Decision != decisionapi.DecisionDeny || d.RuleID != policy.RuleFleet {
		t.Fatalf("fleet at $1.90: %+v, want deny by %s", d, policy.RuleFleet)
	}
	if d := decide(billing); d.Decision != decisionapi.DecisionAllow {
		t.Errorf("critical agent at $1.90: %+v, want allow", d)
	}
	waitScrape(t, promEndpoint, fleetLevel, func(v float64) bool { return v == 2 })
}

// agent is one simulated agent: a tracer provider exporting synchronously over OTLP gRPC, so a
// call's span is booked once llmCall returns.
type agent struct {
	t  *testing.T
	tp *sdktrace.TracerProvider
}

func newAgent(t *testing.T, ctx context.Context, endpoint, name string) *agent {
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSyncer(exp),
		sdktrace.WithSpanProcessor(guard.NewBaggageSpanProcessor()),
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(name))),
	)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &agent{t: t, tp: tp}
}

// llmCall records one $0.10 gpt-4o call.
func (a *agent) llmCall(ctx context.Context) {
	_, span := a.tp.Tracer("e2e").Start(ctx, "chat gpt-4o")
	span.SetAttributes(
		attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.provider.name", "openai"),
		attribute.String("gen_ai.request.model", "gpt-4o"),
		attribute.Int("gen_ai.usage.input_tokens", 20_000),
		attribute.Int("gen_ai.usage.output_tokens", 5_000),
	)
	span.End()
}

// waitScrape scrapes the costledger endpoint until re's first group parses to a value fn accepts.
func waitScrape(t *testing.T, endpoint string, re *regexp.Regexp, fn func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for {
		resp, err := http.Get("http://" + endpoint + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(body)
			if m := re.FindStringSubmatch(last); m != nil {
				if v, err := strconv.ParseFloat(m[1], 64); err == nil && fn(v) {
					return v
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never matched %s acceptably:\n%s", re, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

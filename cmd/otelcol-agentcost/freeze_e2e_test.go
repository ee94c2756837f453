package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/agentcost/agentcost/pkg/decisionapi"
	"github.com/agentcost/agentcost/pkg/guard"
)

const e2eFreezeReviewerToken = "e2e-freeze-reviewer-alice-token"

// reviewerCall sends a reviewer's request to the decision API and decodes a 200 answer.
func reviewerCall(t *testing.T, method, url string, in, out any) {
	t.Helper()
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e2eFreezeReviewerToken)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: status %d", method, url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// TestEndToEndFreeze pulls the emergency brake on a whole collector: research-agent's guarded
// action is running (its LLM call booked over OTLP) when a reviewer freezes the agent; the guard's
// lease watch stops the action and releases its lease, the next decision is denied with rule
// freeze, /metrics shows agentcost_freezes_active 1, and lifting the freeze restores the policy.
func TestEndToEndFreeze(t *testing.T) {
	dir := t.TempDir()
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(e2ePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	fc := startFullCollector(t, fullOptions{policy: policyPath, publish: 50 * time.Millisecond, settle: 50 * time.Millisecond,
		tokens: []accessToken{{e2eResearchToken, "agent", "research-agent"}, {e2eFreezeReviewerToken, "reviewer", "alice@example.com"}}})
	ctx := context.Background()
	research := newAgent(t, ctx, fc.otlp, "research-agent")
	c, err := guard.New("http://"+fc.api, guard.WithAgent("research-agent"), guard.WithToken(e2eResearchToken),
		guard.WithTracerProvider(research.tp), guard.WithPropagator(propagation.TraceContext{}), guard.WithLeaseWatch(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	api := "http://" + fc.api

	called := make(chan *guard.Decision, 1)
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, guard.Action{Name: "job.research", EstimatedCostUSD: 0.05}, func(ctx context.Context, d *guard.Decision) error {
			research.llmCall(ctx)
			called <- d
			<-ctx.Done() // a long action, until something stops it
			return ctx.Err()
		})
	}()
	d := <-called
	var f decisionapi.Freeze
	reviewerCall(t, http.MethodPost, api+decisionapi.PathFreezes,
		decisionapi.FreezeRequest{Scope: decisionapi.FreezeAgent, ScopeID: "research-agent", Reason: "runaway research loop"}, &f)
	err = <-done
	var fe *guard.FrozenError
	if !errors.As(err, &fe) || fe.Freeze.FreezeID != f.FreezeID {
		t.Fatalf("running action ended with %v; want stopped by freeze %s", err, f.FreezeID)
	}
	if s, ok := d.Settlement(); !ok || s.Source != decisionapi.SourceSpans || s.SpansMatched != 1 {
		t.Fatalf("the stopped action's settlement = %+v (%v); want its one booked call", s, ok)
	}
	resp, err := c.Decide(ctx, guard.Action{Name: "job.research", EstimatedCostUSD: 0.05})
	if err != nil || resp.Decision != decisionapi.DecisionDeny || resp.RuleID != decisionapi.RuleFreeze {
		t.Fatalf("decision while frozen = %+v, %v; want deny by rule freeze", resp, err)
	}
	active := regexp.MustCompile(`(?m)^agentcost_freezes_active(?:\{[^}]*\})? ([0-9.e+-]+)`)
	waitScrape(t, fc.metrics, active, func(v float64) bool { return v == 1 })

	var lifted decisionapi.Freeze
	reviewerCall(t, http.MethodDelete, api+"/v1/freezes/"+f.FreezeID, nil, &lifted)
	if lifted.State != decisionapi.FreezeLifted {
		t.Fatalf("lift = %+v", lifted)
	}
	resp, err = c.Decide(ctx, guard.Action{Name: "job.research", EstimatedCostUSD: 0.05})
	if err != nil || resp.Decision != decisionapi.DecisionAllow {
		t.Fatalf("decision after the lift = %+v, %v; want allow", resp, err)
	}
	if _, err := c.Release(ctx, resp.LeaseID, decisionapi.ReleaseRequest{}); err != nil {
		t.Fatal(err)
	}
	waitScrape(t, fc.metrics, active, func(v float64) bool { return v == 0 })
}

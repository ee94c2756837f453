package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// postAPI posts v to the open decision API and decodes a 200 answer into out.
func postAPI(t *testing.T, url string, v, out any) {
	t.Helper()
	body, _ := json.Marshal(v)
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: status %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// TestEndToEndSpanPlausibility sends, over OTLP through the whole collector: a span of
// drafting-agent carrying research-agent's agentcost.decision_id, a span with a token count above
// the processor's default limit (the longest context in the price table), and a span priced above
// the default $500 per-span cap. The first is booked as drafting-agent's spend and never settles
// research-agent's action (counted as mismatched); the other two are booked nowhere.
func TestEndToEndSpanPlausibility(t *testing.T) {
	dir := t.TempDir()
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte("version: v1\ndefault_decision: allow\nbudgets: {fleet: {limit_usd: 10000, window: month}, default_agent: {limit_usd: 1000, window: month}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pricesPath := filepath.Join(dir, "prices.yaml")
	if err := os.WriteFile(pricesPath, []byte("source: e2e\nmodels:\n  pricey-llm: {provider: openai, input_per_million: 1000, output_per_million: 1000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fc := startFullCollector(t, fullOptions{policy: policyPath, prices: pricesPath})
	api := "http://" + fc.api

	var d decisionapi.DecisionResponse
	postAPI(t, api+decisionapi.PathDecisions, decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.research",
		RunID: "run-a", EstimatedCostUSD: 1}, &d)
	if !d.Decision.Allowed() || d.DecisionID == "" {
		t.Fatalf("decision %+v", d)
	}

	td := ptrace.NewTraces()
	now := time.Now()
	add := func(agent string, seed byte, attrs map[string]any) {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", agent)
		s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		s.SetName("chat")
		s.SetTraceID(pcommon.TraceID([16]byte{0xe2, seed}))
		s.SetSpanID(pcommon.SpanID([8]byte{0xe2, seed}))
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Second)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
		_ = s.Attributes().FromRaw(attrs)
		s.Attributes().PutStr("gen_ai.agent.name", agent)
		s.Attributes().PutStr("gen_ai.provider.name", "openai")
	}
	// $0.10 of gpt-4o by drafting-agent, claiming research-agent's decision and run.
	add("drafting-agent", 1, map[string]any{"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 20_000,
		"gen_ai.usage.output_tokens": 5_000, "agentcost.decision_id": d.DecisionID, "agentcost.run_id": "run-a"})
	// 50M input tokens: above the longest context of any model in the table.
	add("research-agent", 2, map[string]any{"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 50_000_000,
		"gen_ai.usage.output_tokens": 10, "agentcost.decision_id": d.DecisionID, "agentcost.run_id": "run-a"})
	// $600 in one call.
	add("research-agent", 3, map[string]any{"gen_ai.request.model": "pricey-llm", "gen_ai.usage.input_tokens": 100_000,
		"gen_ai.usage.output_tokens": 500_000, "agentcost.decision_id": d.DecisionID, "agentcost.run_id": "run-a"})

	conn, err := grpc.NewClient(fc.otlp, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The export returns once the booking is durable (no batch processor in front of costledger).
	if _, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td)); err != nil {
		t.Fatal(err)
	}

	var rel decisionapi.ReleaseResponse
	postAPI(t, api+"/v1/leases/"+d.LeaseID+"/release", decisionapi.ReleaseRequest{}, &rel)
	if s := rel.Settlement; s.SpansMatched != 0 || s.ActualCostUSD != 0 || s.Source != decisionapi.SourceNone {
		t.Errorf("research-agent's action settled %+v, want no span matched", s)
	}
	resp, err := http.Get(api + decisionapi.PathBudgets)
	if err != nil {
		t.Fatal(err)
	}
	var budgets decisionapi.BudgetsResponse
	err = json.NewDecoder(resp.Body).Decode(&budgets)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	spent := map[string]float64{}
	for _, sc := range budgets.Scopes {
		if sc.Scope == "fleet" {
			sc.ID = ""
		}
		spent[sc.Scope+"/"+sc.ID] = sc.SpentUSD + sc.ReservedUSD
	}
	if spent["agent/drafting-agent"] != 0.1 || spent["agent/research-agent"] != 0 || spent["fleet/"] != 0.1 {
		t.Errorf("spent + reserved by scope %v, want $0.10 for drafting-agent and the fleet, nothing for research-agent", spent)
	}
	waitScrape(t, fc.metrics, regexp.MustCompile(`(?m)^agentcost_mismatched_decision_spans_total ([0-9.e+]+)$`), func(v float64) bool { return v == 1 })
}

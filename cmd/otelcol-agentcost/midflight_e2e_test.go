package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

const midFlightE2EPolicy = `version: v1
default_decision: allow
budgets:
  default_agent: {limit_usd: 100, window: day}
rules:
  - id: throttle-anomalous
    match: {anomaly_within: 10m}
    decision: throttle
`

// actionSpan is one gpt-4o call ($0.035: 10,000 input and 1,000 output tokens) of agent within
// the decision's action and run, as the guard client marks it.
func actionSpan(id string, end time.Time, agent, decisionID, runID string) sdktrace.ReadOnlySpan {
	var tid trace.TraceID
	var sid trace.SpanID
	copy(tid[:], fmt.Sprintf("%-16.16s", "mf-"+id))
	copy(sid[:], fmt.Sprintf("%-8.8s", id))
	return tracetest.SpanStub{
		Name:        "chat gpt-4o",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}),
		SpanKind:    trace.SpanKindClient,
		StartTime:   end.Add(-time.Second),
		EndTime:     end,
		Attributes: []attribute.KeyValue{
			attribute.String("gen_ai.provider.name", "openai"),
			attribute.String("gen_ai.request.model", "gpt-4o"),
			attribute.Int("gen_ai.usage.input_tokens", 10_000),
			attribute.Int("gen_ai.usage.output_tokens", 1_000),
			attribute.String("agentcost.decision_id", decisionID),
			attribute.String("agentcost.run_id", runID),
		},
		Resource: resource.NewSchemaless(attribute.String("service.name", agent)),
	}.Snapshot()
}

// exportSpans sends spans to an OTLP/gRPC endpoint.
func exportSpans(t *testing.T, endpoint string, spans []sdktrace.ReadOnlySpan, opts ...otlptracegrpc.Option) {
	t.Helper()
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, append([]otlptracegrpc.Option{otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = exp.Shutdown(ctx) }()
	if err := exp.ExportSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
}

// anomaliesOnMetrics reads agentcost_anomalies_total of agent at level from a /metrics page.
func anomaliesOnMetrics(t *testing.T, url, agent, level string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, m := range families["agentcost_anomalies_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["agent"] == agent && labels["level"] == level {
			n += m.GetCounter().GetValue()
		}
	}
	return n
}

// waitFor polls cond every 50ms until it holds or timeout passes, and reports whether it held.
func waitFor(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestMidFlightWholeCollector runs the whole collector (OTLP → agentcost → costledger, the budget
// receiver, the embedded ledger) with a 200ms mid-flight check and a 1s run_idle:
//   - an action whose spans cross 3x its (agent, action) baseline is flagged while its lease is
//     open, and the agent's next decision is throttled by anomaly_within;
//   - a run of ordinary actions whose total crosses 3x its agent's run baseline is flagged at
//     level run, and the agent's next decision is throttled too.
func TestMidFlightWholeCollector(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole collector")
	}
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(midFlightE2EPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	fc := startFullCollector(t, fullOptions{policy: policy, publish: 200 * time.Millisecond,
		budgetExtra: "    midflight_interval: 200ms\n    run_idle: 1s\n    baseline: {warmup_calls: 3}\n"})
	api, metrics := "http://"+fc.api, "http://"+fc.metrics+"/metrics"
	decide := func(agent, action, run string) decisionapi.DecisionResponse {
		t.Helper()
		var d decisionapi.DecisionResponse
		if code := postJSONAs(t, api+decisionapi.PathDecisions, "", decisionapi.DecisionRequest{AgentID: agent, Action: action,
			RunID: run, EstimatedCostUSD: 0.05}, &d); code != http.StatusOK {
			t.Fatalf("decision: HTTP %d", code)
		}
		return d
	}
	release := func(d decisionapi.DecisionResponse) decisionapi.ReleaseResponse {
		t.Helper()
		var r decisionapi.ReleaseResponse
		if code := postJSONAs(t, api+"/v1/leases/"+d.LeaseID+"/release", "", map[string]any{}, &r); code != http.StatusOK {
			t.Fatalf("release: HTTP %d", code)
		}
		return r
	}
	spent := spendOnMetrics(t, metrics)
	span := 0
	// runAction decides one action, sends n $0.035 spans for it and waits until they are booked.
	runAction := func(agent, run string, n int) decisionapi.DecisionResponse {
		t.Helper()
		d := decide(agent, "job.loop", run)
		if !d.Decision.Allowed() {
			t.Fatalf("%s in %s: %+v", agent, run, d)
		}
		var spans []sdktrace.ReadOnlySpan
		for range n {
			span++
			spans = append(spans, actionSpan(fmt.Sprint(span), time.Now(), agent, d.DecisionID, run))
		}
		exportSpans(t, fc.otlp, spans)
		spent += money.Nanos(n) * spanCost
		if !waitFor(20*time.Second, func() bool { return spendOnMetrics(t, metrics) == spent }) {
			t.Fatalf("spans not booked: %s of %s", spendOnMetrics(t, metrics), spent)
		}
		return d
	}
	// Warm-up: three $0.035 actions per agent, each its own run, settled from their spans; then
	// the runs go idle and complete.
	for i := range 3 {
		for _, agent := range []string{"action-loop-agent", "run-loop-agent"} {
			d := runAction(agent, fmt.Sprintf("%s-warm-%d", agent, i), 1)
			if r := release(d); r.Settlement.Source != decisionapi.SourceSpans || r.Settlement.Anomaly {
				t.Fatalf("warm-up settlement %+v", r.Settlement)
			}
		}
	}
	time.Sleep(2500 * time.Millisecond) // > run_idle + one check: the six warm-up runs complete

	throttled := func(agent string) bool {
		d := decide(agent, "job.other", "")
		return d.Decision == decisionapi.DecisionThrottle && d.RuleID == "throttle-anomalous"
	}
	t.Run("action", func(t *testing.T) {
		start := time.Now()
		loop := runAction("action-loop-agent", "action-loop-run", 4) // $0.14: 4x the $0.035 baseline
		if !waitFor(10*time.Second, func() bool { return throttled("action-loop-agent") }) {
			t.Fatal("the agent's next decision was not throttled while its loop's lease was open")
		}
		t.Logf("throttled %v after the spans were sent", time.Since(start).Round(10*time.Millisecond))
		if !waitFor(5*time.Second, func() bool { return anomaliesOnMetrics(t, metrics, "action-loop-agent", "action") == 1 }) {
			t.Errorf("agentcost_anomalies_total{level=action} = %v, want 1", anomaliesOnMetrics(t, metrics, "action-loop-agent", "action"))
		}
		if r := release(loop); !r.Settlement.Anomaly {
			t.Errorf("the loop's settlement %+v is not an anomaly", r.Settlement)
		}
		time.Sleep(500 * time.Millisecond) // two publishes
		if n := anomaliesOnMetrics(t, metrics, "action-loop-agent", "action"); n != 1 {
			t.Errorf("after the release agentcost_anomalies_total{level=action} = %v, want 1 (counted once)", n)
		}
	})
	t.Run("run", func(t *testing.T) {
		// Three ordinary actions of one run: the third takes the run to 3x the run baseline.
		for i := range 3 {
			d := runAction("run-loop-agent", "long-run", 1)
			if i < 2 {
				release(d)
				if throttled("run-loop-agent") {
					t.Fatalf("throttled after action %d: the run was flagged below 3x", i)
				}
				continue
			}
			if !waitFor(10*time.Second, func() bool { return throttled("run-loop-agent") }) {
				t.Fatal("the agent's next decision was not throttled after its run crossed 3x")
			}
			release(d)
		}
		if !waitFor(5*time.Second, func() bool { return anomaliesOnMetrics(t, metrics, "run-loop-agent", "run") == 1 }) {
			t.Errorf("agentcost_anomalies_total{level=run} = %v, want 1", anomaliesOnMetrics(t, metrics, "run-loop-agent", "run"))
		}
		if n := anomaliesOnMetrics(t, metrics, "run-loop-agent", "action"); n != 0 {
			t.Errorf("an ordinary action of the run was flagged: %v", n)
		}
	})
}

// anomalyRecords counts the anomaly evidence records of decisionID in an evidence directory.
func anomalyRecords(t *testing.T, dir, decisionID string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line := sc.Text(); strings.Contains(line, `"kind":"anomaly"`) && strings.Contains(line, `"decision_id":"`+decisionID+`"`) {
				n++
			}
		}
		_ = fh.Close()
	}
	return n
}

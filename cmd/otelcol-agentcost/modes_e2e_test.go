package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"

	"github.com/agentcost/agentcost/internal/testutil/collectortest"
)

// TestEndToEndModes sends, with the otel-go SDK over OTLP/gRPC, the spans of an agent's bill beyond
// chat: an embedding call, a paid tool call (execute_tool, priced from the user's price file) and a
// call through a router that reports its own charge for a model the table does not know
// (prices.reported_cost: only_when_unpriced). Each is priced by the processor and booked by the
// costledger exporter into the same budgets as chat spend: the spend counter on /metrics carries
// each under the agent, the tool under model "tool:web_search".
func TestEndToEndModes(t *testing.T) {
	dir := t.TempDir()
	prices := filepath.Join(dir, "tools.yaml")
	if err := os.WriteFile(prices, []byte("tools:\n  web_search: {per_call_usd: 0.01}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	capture := &collectortest.Capture{}
	grpcEndpoint, metricsEndpoint := collectortest.Endpoint(t), collectortest.Endpoint(t)
	collectortest.Run(t, withCapture(capture), fmt.Sprintf(`
extensions:
  budgetledger: {directory: %[1]s/ledger, evidence: {directory: %[1]s/evidence}}
receivers:
  otlp: {protocols: {grpc: {endpoint: %[2]s}}}
  %[5]s
processors:
  agentcost:
    prices: {files: [%[3]q], reported_cost: only_when_unpriced}
exporters:
  capture: {}
  costledger: {}
  prometheus: {endpoint: %[4]s, translation_strategy: UnderscoreEscapingWithoutSuffixes, without_scope_info: true, metric_expiration: 1h}
service:
  telemetry: {metrics: {level: none}}
  extensions: [budgetledger]
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [costledger, capture]}
    metrics: {receivers: [budget], exporters: [prometheus]}
`, dir, grpcEndpoint, prices, metricsEndpoint, publishingBudget(t)))

	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcEndpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName("rag-agent"))))
	tracer := tp.Tracer("e2e-modes")
	for _, attrs := range [][]attribute.KeyValue{
		// text-embedding-3-small: $0.02 per 1M input tokens → 250,000 tokens = $0.005.
		{attribute.String("gen_ai.operation.name", "embeddings"), attribute.String("gen_ai.provider.name", "openai"),
			attribute.String("gen_ai.request.model", "text-embedding-3-small"), attribute.Int("gen_ai.usage.input_tokens", 250_000)},
		// A paid search API: $0.01 per call from the price file.
		{attribute.String("gen_ai.operation.name", "execute_tool"), attribute.String("gen_ai.tool.name", "web_search")},
		// A router's model the table does not know, with the router's own charge of $0.0375.
		{attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.request.model", "router/house-blend"),
			attribute.Int("gen_ai.usage.input_tokens", 1_000), attribute.Int("gen_ai.usage.output_tokens", 100),
			attribute.Float64("gen_ai.usage.cost.amount", 0.0375), attribute.String("gen_ai.usage.cost.currency", "USD")},
	} {
		_, span := tracer.Start(ctx, "call")
		span.SetAttributes(attrs...)
		span.End()
	}
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(capture.Spans()) < 3 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	spans := capture.Spans()
	if len(spans) != 3 {
		t.Fatalf("exporter received %d spans, want 3", len(spans))
	}
	want := []struct {
		cost          float64
		model, source string
	}{{0.005, "text-embedding-3-small", ""}, {0.01, "tool:web_search", ""}, {0.0375, "router/house-blend", "reported"}}
	for i, s := range spans {
		cost, _ := s.Attributes().Get("agentcost.cost_usd")
		model, _ := s.Attributes().Get("agentcost.model")
		agent, _ := s.Attributes().Get("agentcost.agent")
		source := ""
		if v, ok := s.Attributes().Get("agentcost.cost.source"); ok {
			source = v.Str()
		}
		if cost.Double() != want[i].cost || model.Str() != want[i].model || agent.Str() != "rag-agent" || source != want[i].source {
			t.Errorf("span %d: %v, want cost %v model %q source %q", i, s.Attributes().AsRaw(), want[i].cost, want[i].model, want[i].source)
		}
	}
	// Booked: every mode under the agent's spend, the tool under its own model label.
	for _, w := range want {
		re := regexp.MustCompile(`agentcost_spend_usd_total\{agent="rag-agent",model="` + regexp.QuoteMeta(w.model) + `"[^}]*\} (\S+)`)
		waitScrape(t, metricsEndpoint, re, func(v float64) bool { return v == w.cost })
	}
}

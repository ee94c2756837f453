package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"

	"github.com/agentcost/agentcost/internal/testutil/collectortest"
)

// withCapture is the distribution's factories plus the test's capture exporter.
func withCapture(c *collectortest.Capture) func() (otelcol.Factories, error) {
	return func() (otelcol.Factories, error) {
		f, err := components()
		if err != nil {
			return f, err
		}
		f.Exporters[collectortest.CaptureType] = collectortest.CaptureFactory(c)
		return f, nil
	}
}

// TestEndToEndPricing starts the real collector with the distribution's factories, sends GenAI spans
// with the otel-go SDK's OTLP exporter to its otlp receiver, and checks the priced spans at an exporter.
func TestEndToEndPricing(t *testing.T) {
	capture := &collectortest.Capture{}
	grpcEndpoint := collectortest.Endpoint(t)
	collectortest.Run(t, withCapture(capture), fmt.Sprintf(`
receivers:
  otlp:
    protocols:
      grpc: {endpoint: %s}
processors:
  agentcost: {}
exporters:
  capture: {}
service:
  telemetry:
    metrics: {level: none}
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [capture]}
`, grpcEndpoint))

	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcEndpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL,
			semconv.ServiceName("research-agent"), attribute.String("team", "growth"))),
	)
	tracer := tp.Tracer("e2e")
	_, span := tracer.Start(ctx, "chat gpt-4o")
	span.SetAttributes(
		attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.provider.name", "openai"),
		attribute.String("gen_ai.request.model", "gpt-4o"),
		attribute.Int("gen_ai.usage.input_tokens", 10_000),
		attribute.Int("gen_ai.usage.output_tokens", 1_000),
	)
	span.End()
	_, plain := tracer.Start(ctx, "GET /health")
	plain.End()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for len(capture.Spans()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	spans := capture.Spans()
	if len(spans) != 2 {
		t.Fatalf("exporter received %d spans, want 2", len(spans))
	}
	for _, s := range spans {
		cost, priced := s.Attributes().Get("agentcost.cost_usd")
		switch s.Name() {
		case "chat gpt-4o":
			// gpt-4o: $2.50 per 1M input, $10 per 1M output → 10,000 × 2.5e-6 + 1,000 × 1e-5 = $0.035.
			if !priced || cost.Double() != 0.035 {
				t.Errorf("LLM span cost = %v (priced %v), want 0.035", cost.AsRaw(), priced)
			}
			agent, _ := s.Attributes().Get("agentcost.agent")
			team, _ := s.Attributes().Get("agentcost.team")
			if agent.Str() != "research-agent" || team.Str() != "growth" {
				t.Errorf("attribution agent=%q team=%q", agent.Str(), team.Str())
			}
		default:
			if priced {
				t.Errorf("non-LLM span %q priced", s.Name())
			}
		}
	}
}

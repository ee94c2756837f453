package sim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentcost/agentcost/pkg/guard"
)

// NewOTLPExporter returns an OTLP/gRPC span exporter for endpoint: "host:port" (plaintext, as a
// collector on the same host listens) or a URL ("https://collector:4317").
func NewOTLPExporter(ctx context.Context, endpoint string) (sdktrace.SpanExporter, error) {
	opts := []otlptracegrpc.Option{
		otlptracegrpc.WithTimeout(5 * time.Second),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 200 * time.Millisecond,
			MaxInterval: 2 * time.Second, MaxElapsedTime: 5 * time.Second}),
	}
	if strings.Contains(endpoint, "://") {
		opts = append(opts, otlptracegrpc.WithEndpointURL(endpoint))
	} else {
		opts = append(opts, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating the OTLP exporter for %q: %w", endpoint, err)
	}
	return exp, nil
}

// Telemetry holds one tracer provider per agent (each with its own resource: service.name and
// gen_ai.agent.name are the agent, team its team), all exporting through one exporter with a
// batch span processor, and the guard's baggage span processor in front.
type Telemetry struct {
	exp *countingExporter

	mu        sync.Mutex
	providers map[string]*sdktrace.TracerProvider
	closed    bool
}

// NewTelemetry returns a Telemetry exporting to exp; Shutdown shuts exp down.
func NewTelemetry(exp sdktrace.SpanExporter) *Telemetry {
	return &Telemetry{exp: &countingExporter{next: exp}, providers: map[string]*sdktrace.TracerProvider{}}
}

// Provider returns the agent's tracer provider, creating it on first use.
func (t *Telemetry) Provider(agent, team string) *sdktrace.TracerProvider {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tp, ok := t.providers[agent]; ok {
		return tp
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(agent), semconv.GenAIAgentName(agent)}
	if team != "" {
		attrs = append(attrs, attribute.String("team", team))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, attrs...)),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSpanProcessor(guard.NewBaggageSpanProcessor()),
		// Blocking: a load generator must not drop the spans it claims to have sent.
		sdktrace.WithBatcher(sharedExporter{t.exp}, sdktrace.WithBlocking(), sdktrace.WithMaxExportBatchSize(512)),
	)
	t.providers[agent] = tp
	return tp
}

// Sent returns the spans exported successfully, the spans whose export failed, and the last
// export error.
func (t *Telemetry) Sent() (sent, failed int64, last error) {
	return t.exp.sent.Load(), t.exp.failed.Load(), t.exp.lastErr()
}

// Shutdown flushes and stops every provider, then the exporter.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	providers := t.providers
	t.mu.Unlock()
	var errs []error
	for agent, tp := range providers {
		if err := tp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flushing the spans of %s: %w", agent, err))
		}
	}
	if err := t.exp.next.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stopping the span exporter: %w", err))
	}
	return errors.Join(errs...)
}

// countingExporter counts what the wrapped exporter accepted and refused.
type countingExporter struct {
	next   sdktrace.SpanExporter
	sent   atomic.Int64
	failed atomic.Int64

	mu  sync.Mutex
	err error
}

func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.next.ExportSpans(ctx, spans)
	if err != nil {
		e.failed.Add(int64(len(spans)))
		e.mu.Lock()
		e.err = err
		e.mu.Unlock()
		return err
	}
	e.sent.Add(int64(len(spans)))
	return nil
}

func (e *countingExporter) lastErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// sharedExporter is the exporter as each provider's batch processor sees it: a provider's
// shutdown must not stop the exporter the other providers still use.
type sharedExporter struct{ *countingExporter }

func (sharedExporter) Shutdown(context.Context) error { return nil }

// The GenAI semantic-convention keys of an LLM call span.
var (
	keyOperation = semconv.GenAIOperationNameKey
	keyProvider  = semconv.GenAIProviderNameKey
	keyModel     = semconv.GenAIRequestModelKey
	keyRespModel = semconv.GenAIResponseModelKey
	keyInput     = semconv.GenAIUsageInputTokensKey
	keyOutput    = semconv.GenAIUsageOutputTokensKey
	keyMaxTokens = semconv.GenAIRequestMaxTokensKey
	// keyStep names the fan-out step; not a convention key.
	keyStep = attribute.Key("agentsim.step")
)

// emitCall records one LLM call as a GenAI client span ("chat <model>") under ctx with its actual
// usage.
func emitCall(ctx context.Context, tracer trace.Tracer, model, provider string, c Call, maxTokens int64) {
	attrs := []attribute.KeyValue{
		keyOperation.String("chat"), keyProvider.String(provider), keyModel.String(model), keyRespModel.String(model),
		keyInput.Int64(c.InputTokens), keyOutput.Int64(c.OutputTokens), keyStep.String(c.Step),
	}
	if maxTokens > 0 {
		attrs = append(attrs, keyMaxTokens.Int64(maxTokens))
	}
	_, span := tracer.Start(ctx, "chat "+model, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	span.End()
}

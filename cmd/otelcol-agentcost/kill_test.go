package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// TestMain removes the collector binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinary builds the distribution, once per test process, for the tests that run it as a child.
func buildBinary(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds the collector binary; skipped with -short")
	}
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "otelcol-agentcost-test-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "otelcol-agentcost")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	if buildErr != nil {
		tb.Fatalf("building the collector: %v", buildErr)
	}
	return binPath
}

func startChild(t *testing.T, bin, config string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "--config", config)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	return cmd
}

func waitListening(tb testing.TB, endpoint string) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", endpoint); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("collector did not listen on %s", endpoint)
}

// llmSpan is one gpt-4o call of research-agent with 10,000 input and 1,000 output tokens: $0.035.
func llmSpan(i int, end time.Time) sdktrace.ReadOnlySpan {
	return agentSpan(i, end, "research-agent", 10_000, 1_000)
}

// agentSpan is one gpt-4o call of the agent ($2.50 per 1M input, $10 per 1M output tokens).
func agentSpan(i int, end time.Time, agent string, in, out int) sdktrace.ReadOnlySpan {
	var tid trace.TraceID
	var sid trace.SpanID
	copy(tid[:], fmt.Sprintf("kill-%011d", i))
	copy(sid[:], fmt.Sprintf("%08d", i))
	return tracetest.SpanStub{
		Name:        "chat gpt-4o",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}),
		SpanKind:    trace.SpanKindClient,
		StartTime:   end.Add(-time.Second),
		EndTime:     end,
		Attributes: []attribute.KeyValue{
			attribute.String("gen_ai.provider.name", "openai"),
			attribute.String("gen_ai.request.model", "gpt-4o"),
			attribute.Int("gen_ai.usage.input_tokens", in),
			attribute.Int("gen_ai.usage.output_tokens", out),
		},
		Resource: resource.NewSchemaless(attribute.String("service.name", agent)),
	}.Snapshot()
}

const spanCost money.Nanos = 35_000_000

// TestKill9KeepsAcknowledgedSpend: a child collector acknowledges spans over OTLP one request at a
// time, is killed with SIGKILL in the middle of the stream, and restarts; the spend booked in the
// ledger is exactly the acknowledged spans (plus at most the one request in flight at the kill,
// which the ledger may have committed without the client seeing the answer). Acknowledged spend is
// never lost, and nothing is booked twice when the client re-sends after the restart.
func TestKill9KeepsAcknowledgedSpend(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	grpcEndpoint := collectortest.Endpoint(t)
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`
extensions:
  budgetledger: {directory: %[1]s/ledger, evidence: {directory: %[1]s/evidence}}
receivers:
  otlp: {protocols: {grpc: {endpoint: %[2]s}}}
processors:
  agentcost: {}
exporters:
  costledger: {}
  prometheus: {endpoint: %[3]s, translation_strategy: UnderscoreEscapingWithoutSuffixes, without_scope_info: true, metric_expiration: 1h}
service:
  telemetry: {metrics: {level: none}}
  extensions: [budgetledger]
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [costledger]}
`, dir, grpcEndpoint, collectortest.Endpoint(t))), 0o600); err != nil {
		t.Fatal(err)
	}

	child := startChild(t, bin, config)
	waitListening(t, grpcEndpoint)
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcEndpoint), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}), otlptracegrpc.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().UTC()
	acked := 0
	sent := 0
	killAt := 150
	for i := 0; ; i++ {
		if i == killAt {
			go func() { _ = child.Process.Signal(syscall.SIGKILL) }() // kill while requests are in flight
		}
		sent++
		if err := exp.ExportSpans(ctx, []sdktrace.ReadOnlySpan{llmSpan(i, end)}); err != nil {
			break
		}
		acked++
		if i > killAt+1000 {
			t.Fatal("the collector kept acknowledging after SIGKILL")
		}
	}
	_, _ = child.Process.Wait()
	_ = exp.Shutdown(ctx)
	if acked < killAt {
		t.Fatalf("only %d spans acknowledged before the kill", acked)
	}

	// Restart on the same directory: the ledger opens (bbolt recovers) and the client re-sends every
	// span it sent, as an OTLP client retrying unacknowledged work would; nothing counts twice.
	child2 := startChild(t, bin, config)
	waitListening(t, grpcEndpoint)
	exp2, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcEndpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	// Before re-sending, read what the killed process had booked: at least every acknowledged span.
	_ = child2.Process.Signal(syscall.SIGTERM)
	_, _ = child2.Process.Wait()
	booked := fleetSpend(t, filepath.Join(dir, "ledger"), end)
	if booked < money.Nanos(acked)*spanCost || booked > money.Nanos(acked+1)*spanCost {
		t.Fatalf("after kill -9: booked %s USD for %d acknowledged spans of %s USD (want %s, or one more in flight)",
			booked, acked, spanCost, money.Nanos(acked)*spanCost)
	}
	t.Logf("kill -9 after %d acknowledged spans: booked %s USD", acked, booked)

	child3 := startChild(t, bin, config)
	waitListening(t, grpcEndpoint)
	for i := 0; i < sent; i++ {
		if err := exp2.ExportSpans(ctx, []sdktrace.ReadOnlySpan{llmSpan(i, end)}); err != nil {
			t.Fatalf("re-send %d: %v", i, err)
		}
	}
	_ = exp2.Shutdown(ctx)
	_ = child3.Process.Signal(syscall.SIGTERM)
	_, _ = child3.Process.Wait()
	if got, want := fleetSpend(t, filepath.Join(dir, "ledger"), end), money.Nanos(sent)*spanCost; got != want {
		t.Fatalf("after re-sending all %d spans: booked %s USD, want exactly %s USD", sent, got, want)
	}
}

func fleetSpend(t *testing.T, dir string, at time.Time) money.Nanos {
	t.Helper()
	l := openLedger(t, dir, "", "")
	defer l.Close() // release the file now: the test opens it again after the next run
	st, err := l.State(context.Background(), ledger.ScopeFleet, ledger.FleetID, ledger.Day, at)
	if err != nil {
		t.Fatal(err)
	}
	return st.Spent
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
)

// TestRedisOutageLosesNoSpend: with the Redis ledger and costledger's persistent sending queue, Redis
// stalls for 10 s (SIGSTOP) while agents keep sending spans. The collector keeps acknowledging (the
// spans wait in the file_storage queue), and once Redis is back the queue drains: the booked spend
// is exactly the spend of every acknowledged span, none lost and none counted twice.
func TestRedisOutageLosesNoSpend(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10 s Redis outage; skipped with -short")
	}
	redis := redistest.Start(t)
	dir := t.TempDir()
	grpcEndpoint := collectortest.Endpoint(t)
	capture := &collectortest.Capture{}
	collectortest.Run(t, withCapture(capture), fmt.Sprintf(`
extensions:
  file_storage: {directory: %[1]s}
  budgetledger:
    backend: redis
    redis: {endpoint: %[2]s, key_prefix: "outage:", read_timeout: 500ms, write_timeout: 500ms, dial_timeout: 500ms}
    evidence: {directory: %[1]s/evidence}
receivers:
  otlp: {protocols: {grpc: {endpoint: %[3]s}}}
processors:
  agentcost: {}
exporters:
  costledger:
    endpoint: %[4]s
    sending_queue: {storage: file_storage, queue_size: 100000}
    retry_on_failure: {initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0}
service:
  telemetry: {metrics: {level: none}}
  extensions: [file_storage, budgetledger]
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [costledger]}
`, dir, redis.Addr, grpcEndpoint, collectortest.Endpoint(t)))

	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcEndpoint), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = exp.Shutdown(ctx) }()
	end := time.Now().UTC()
	acked := 0
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if err := exp.ExportSpans(ctx, []sdktrace.ReadOnlySpan{llmSpan(i, end)}); err != nil {
				t.Fatalf("span %d not acknowledged: %v", i, err)
			}
			acked++
		}
	}
	send(0, 50)
	if err := redis.Pause(); err != nil {
		t.Fatal(err)
	}
	outage := time.Now()
	i := 50
	for time.Since(outage) < 10*time.Second {
		send(i, i+10)
		i += 10
		time.Sleep(100 * time.Millisecond)
	}
	if err := redis.Resume(); err != nil {
		t.Fatal(err)
	}
	send(i, i+50)

	cfg := ledger.NewDefaultConfig()
	cfg.Backend = ledger.BackendRedis
	cfg.Redis.Endpoint = redis.Addr
	cfg.Redis.KeyPrefix = "outage:"
	l, err := ledger.Open(ctx, cfg, ledger.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := money.Nanos(acked) * spanCost
	var got money.Nanos
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, err := l.State(ctx, ledger.ScopeFleet, ledger.FleetID, ledger.Day, end)
		if err == nil {
			got = st.Spent
			if got == want {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got != want {
		t.Fatalf("after the outage the ledger holds %s USD for %d acknowledged spans, want exactly %s USD", got, acked, want)
	}
	t.Logf("%d spans acknowledged across a 10 s Redis stall; %s USD booked", acked, got)
}

// TestQueuedSpendSurvivesKillDuringOutage: Redis is stalled, the collector acknowledges spans into
// its file_storage queue and is then killed with SIGKILL; a new collector on the same queue
// directory books every acknowledged span once Redis is back.
func TestQueuedSpendSurvivesKillDuringOutage(t *testing.T) {
	bin := buildBinary(t)
	redis := redistest.Start(t)
	dir := t.TempDir()
	grpcEndpoint := collectortest.Endpoint(t)
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`
extensions:
  file_storage: {directory: %[1]s}
  budgetledger:
    backend: redis
    redis: {endpoint: %[2]s, key_prefix: "killq:", read_timeout: 500ms, write_timeout: 500ms, dial_timeout: 500ms}
    evidence: {directory: %[1]s/evidence}
receivers:
  otlp: {protocols: {grpc: {endpoint: %[3]s}}}
processors:
  agentcost: {}
exporters:
  costledger:
    endpoint: %[4]s
    sending_queue: {storage: file_storage}
    retry_on_failure: {initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0}
service:
  telemetry: {metrics: {level: none}}
  extensions: [file_storage, budgetledger]
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [costledger]}
`, dir, redis.Addr, grpcEndpoint, collectortest.Endpoint(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	child := startChild(t, bin, config)
	waitListening(t, grpcEndpoint)
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcEndpoint), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().UTC()
	if err := redis.Pause(); err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := 0; i < n; i++ {
		if err := exp.ExportSpans(ctx, []sdktrace.ReadOnlySpan{llmSpan(i, end)}); err != nil {
			t.Fatalf("span %d not acknowledged during the outage: %v", i, err)
		}
	}
	_ = exp.Shutdown(ctx)
	_ = child.Process.Signal(syscall.SIGKILL)
	_, _ = child.Process.Wait()
	if err := redis.Resume(); err != nil {
		t.Fatal(err)
	}

	child2 := startChild(t, bin, config)
	waitListening(t, grpcEndpoint)
	cfg := ledger.NewDefaultConfig()
	cfg.Backend = ledger.BackendRedis
	cfg.Redis.Endpoint = redis.Addr
	cfg.Redis.KeyPrefix = "killq:"
	l, err := ledger.Open(ctx, cfg, ledger.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := money.Nanos(n) * spanCost
	var got money.Nanos
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if st, err := l.State(ctx, ledger.ScopeFleet, ledger.FleetID, ledger.Day, end); err == nil {
			if got = st.Spent; got == want {
				break
			}
		}
	}
	_ = child2.Process.Signal(syscall.SIGTERM)
	_, _ = child2.Process.Wait()
	if got != want {
		t.Fatalf("after kill -9 during the outage and a restart: %s USD booked for %d acknowledged spans, want %s USD", got, n, want)
	}
}

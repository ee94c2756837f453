package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
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
	collectortest.Run(t, withCapture(capture), queuedRedisConfig(dir, redis.Addr, "outage:", grpcEndpoint, collectortest.Endpoint(t), ", queue_size: 100000"))

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

	l := openLedger(t, "", redis.Addr, "outage:")
	want := money.Nanos(acked) * spanCost
	got := waitSpent(l, ledger.ScopeFleet, ledger.FleetID, end, want, 60*time.Second)
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
	if err := os.WriteFile(config, []byte(queuedRedisConfig(dir, redis.Addr, "killq:", grpcEndpoint, collectortest.Endpoint(t), "")), 0o600); err != nil {
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
	l := openLedger(t, "", redis.Addr, "killq:")
	want := money.Nanos(n) * spanCost
	got := waitSpent(l, ledger.ScopeFleet, ledger.FleetID, end, want, 60*time.Second)
	_ = child2.Process.Signal(syscall.SIGTERM)
	_, _ = child2.Process.Wait()
	if got != want {
		t.Fatalf("after kill -9 during the outage and a restart: %s USD booked for %d acknowledged spans, want %s USD", got, n, want)
	}
}

// TestDecisionsDuringRedisOutage: while Redis stalls, decisions follow the configured fail mode —
// a risky topic fails closed (deny, rule ledger.unavailable), a read topic listed in
// fail_open_topics fails open — and both are counted in agentcost_ledger_unavailable_total; once
// Redis is back, decisions are normal again.
func TestDecisionsDuringRedisOutage(t *testing.T) {
	redis := redistest.Start(t)
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte("version: v1\nbudgets:\n  default_agent: {limit_usd: 100, window: hour}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	api, metrics := collectortest.Endpoint(t), collectortest.Endpoint(t)
	collectortest.Run(t, withCapture(&collectortest.Capture{}), fmt.Sprintf(`
extensions:
  budgetledger:
    backend: redis
    redis: {endpoint: %[1]s, key_prefix: "failmode:", read_timeout: 300ms, write_timeout: 300ms, dial_timeout: 300ms}
    evidence: {directory: %[2]s/evidence}
receivers:
  budget:
    endpoint: %[3]s
    policy_file: %[4]s
    publish_interval: 100ms
    ledger_unavailable:
      decisions: fail_closed
      fail_open_topics: ["job.*.read"]
      retry_after: 2s
exporters:
  costledger: {}
  prometheus: {endpoint: %[5]s, translation_strategy: UnderscoreEscapingWithoutSuffixes, without_scope_info: true, metric_expiration: 1h}
service:
  telemetry: {metrics: {level: none}}
  extensions: [budgetledger]
  pipelines:
    metrics: {receivers: [budget], exporters: [prometheus]}
`, redis.Addr, dir, api, policy, metrics))
	r := &replica{api: "http://" + api}
	risky := decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.research.batch-generate", EstimatedCostUSD: 5}
	read := decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.crm.read", EstimatedCostUSD: 0.01}
	if resp, _ := r.decide(t, risky); resp.Decision != decisionapi.DecisionAllow {
		t.Fatalf("before the outage: %+v", resp)
	}
	if err := redis.Pause(); err != nil {
		t.Fatal(err)
	}
	closed, code := r.decide(t, risky)
	open, _ := r.decide(t, read)
	if err := redis.Resume(); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK || closed.Decision != decisionapi.DecisionDeny || closed.RuleID != "ledger.unavailable" || closed.RetryAfterSec != 2 {
		t.Errorf("risky topic during the outage: HTTP %d %+v, want deny by ledger.unavailable", code, closed)
	}
	if open.Decision != decisionapi.DecisionAllow {
		t.Errorf("read topic during the outage: %+v, want allow (fail open)", open)
	}
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if body = string(b); strings.Contains(body, `agentcost_ledger_unavailable_total{fail_mode="fail_closed"} 1`) &&
			strings.Contains(body, `agentcost_ledger_unavailable_total{fail_mode="fail_open"} 1`) {
			break
		}
	}
	if !strings.Contains(body, `agentcost_ledger_unavailable_total{fail_mode="fail_closed"} 1`) || !strings.Contains(body, `agentcost_ledger_unavailable_total{fail_mode="fail_open"} 1`) {
		t.Errorf("the fail modes are not visible in metrics:\n%s", grepLines(body, "ledger_unavailable"))
	}
	if resp, _ := r.decide(t, risky); resp.Decision != decisionapi.DecisionAllow {
		t.Fatalf("after the outage: %+v", resp)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

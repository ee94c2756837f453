package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusexporter"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/agentcost/agentcost/exporter/costledgerexporter"
	"github.com/agentcost/agentcost/extension/budgetledgerextension"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
	"github.com/agentcost/agentcost/receiver/budgetreceiver"
)

func factories() (otelcol.Factories, error) {
	f := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}
	var err error
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](budgetreceiver.NewFactory()); err != nil {
		return f, err
	}
	if f.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](budgetledgerextension.NewFactory()); err != nil {
		return f, err
	}
	f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](costledgerexporter.NewFactory(), prometheusexporter.NewFactory())
	return f, err
}

// startCollector runs a collector whose budget receiver applies policy, and returns the API's URL.
func startCollector(tb testing.TB, policy string) string {
	return startCollectorOn(tb, policy, "")
}

// startCollectorOn starts the collector with the budget receiver on the embedded ledger, or on the
// Redis server at redisAddr when it is not empty.
func startCollectorOn(tb testing.TB, policy, redisAddr string) string {
	tb.Helper()
	dir := tb.TempDir()
	backend := ""
	if redisAddr != "" {
		backend = fmt.Sprintf("backend: redis, redis: {endpoint: %q}, ", redisAddr)
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(policy), 0o600); err != nil {
		tb.Fatal(err)
	}
	api := collectortest.Endpoint(tb)
	collectortest.Run(tb, factories, fmt.Sprintf(`
extensions:
  budgetledger: {%[4]sdirectory: %[1]s/ledger, evidence: {directory: %[1]s/evidence, sync: interval}}
receivers:
  budget: {endpoint: %[2]s, policy_file: %[1]s/policy.yaml}
exporters:
  costledger: {}
  prometheus: {endpoint: %[3]s, translation_strategy: UnderscoreEscapingWithoutSuffixes, without_scope_info: true, metric_expiration: 1h}
service:
  telemetry:
    metrics: {level: none}
    logs: {level: warn}
  extensions: [budgetledger]
  pipelines:
    metrics: {receivers: [budget], exporters: [prometheus]}
`, dir, api, collectortest.Endpoint(tb), backend))
	return "http://" + api
}

// TestLoadKeepsBudgets drives 20 agents with a $1 budget each at concurrency 16 with $0.25
// estimates that are never released: each agent gets exactly four allows, whatever the
// interleaving, and every other request is denied.
func TestLoadKeepsBudgets(t *testing.T) {
	url := startCollector(t, "version: v1\nbudgets: {default_agent: {limit_usd: 1, window: month}}\n")
	res, err := Run(context.Background(), Config{URL: url, Agents: 20, Action: "job.load", EstimatedCostUSD: 0.25,
		Concurrency: 16, Requests: 200})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || len(res.Latencies) != 200 || res.Decisions[decisionapi.DecisionAllow] != 80 || res.Decisions[decisionapi.DecisionDeny] != 120 {
		t.Errorf("result %s; want 80 allow and 120 deny", res)
	}
	if res.Quantile(0.5) > res.Quantile(0.99) || res.Quantile(0.99) <= 0 {
		t.Errorf("quantiles p50 %s p99 %s", res.Quantile(0.5), res.Quantile(0.99))
	}
}

func TestRunFlags(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-bare", "-n", "50", "-c", "4"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "50 decisions in ") || !strings.Contains(out.String(), "allow 50") {
		t.Errorf("report %q", out.String())
	}
	if err := run(context.Background(), []string{"-c", "0", "-bare", "-n", "1"}, &out); err == nil {
		t.Error("concurrency 0 accepted")
	}
}

// BenchmarkDecisionEndpoint measures decisions per second and the p50 and p99 latency of the
// receiver's decision endpoint (embedded ledger, evidence fsync per interval; with each lease
// released, untimed, and without) next to a bare net/http JSON handler measured the same way, at 8
// requests in flight.
func BenchmarkDecisionEndpoint(b *testing.B) {
	const policy = `version: v1
budgets:
  fleet: {limit_usd: 1000000, window: day, throttle_at: 0.8, pause_at: 0.95}
  default_agent: {limit_usd: 1000000, window: day}
rules:
  - id: constrained
    match: {topics: ["job.load"]}
    decision: allow_with_constraints
    constraints: {max_tokens: 4000, max_runtime_sec: 60}
`
	bench := func(b *testing.B, url string, release bool) {
		res, err := Run(context.Background(), Config{URL: url, Agents: 100, Action: "job.load", EstimatedCostUSD: 0.01,
			Concurrency: benchConcurrency, Requests: b.N, Release: release})
		if err != nil {
			b.Fatal(err)
		}
		if res.Errors > 0 {
			b.Fatalf("%d errors: %v", res.Errors, res.FirstError)
		}
		b.ReportMetric(res.Rate(), "decisions/s")
		b.ReportMetric(float64(res.Quantile(0.5).Microseconds()), "p50-µs")
		b.ReportMetric(float64(res.Quantile(0.99).Microseconds()), "p99-µs")
	}
	b.Run("receiver", func(b *testing.B) { bench(b, startCollector(b, policy), true) })
	b.Run("receiver-no-release", func(b *testing.B) { bench(b, startCollector(b, policy), false) })
	b.Run("receiver-redis", func(b *testing.B) { bench(b, startCollectorOn(b, policy, redistest.Start(b).Addr), true) })
	b.Run("receiver-redis-no-release", func(b *testing.B) { bench(b, startCollectorOn(b, policy, redistest.Start(b).Addr), false) })
	b.Run("bare", func(b *testing.B) {
		srv, ln, err := bareServer("127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		bench(b, "http://"+ln.Addr().String(), false)
	})
}

// benchConcurrency is the number of decision requests in flight in BenchmarkDecisionEndpoint.
var benchConcurrency = func() int {
	if n, err := strconv.Atoi(os.Getenv("AGENTLOAD_CONCURRENCY")); err == nil && n > 0 {
		return n
	}
	return 8
}()

// -serve-bare serves the comparison handler as a process of its own until interrupted.
func TestServeBare(t *testing.T) {
	addr := collectortest.Endpoint(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- run(ctx, []string{"-serve-bare", addr}, &out) }()
	var res Result
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if res, err = Run(context.Background(), Config{URL: "http://" + addr, Agents: 2, Action: "job.load", Concurrency: 2, Requests: 20}); err == nil && res.Errors == 0 {
			break
		}
	}
	if err != nil || res.Errors != 0 || res.Decisions[decisionapi.DecisionAllow] != 20 {
		t.Fatalf("against -serve-bare: %s %v", res, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("-serve-bare ended with %v", err)
	}
}

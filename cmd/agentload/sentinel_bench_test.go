package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
)

// BenchmarkDecisionEndpointSentinel measures the decision endpoint on a Sentinel-managed Redis
// (primary and one replica on loopback) with redis.wait_for_replicas 0 and 1 (issue 18): with 1,
// every reservation and release waits for the replica's acknowledgement.
func BenchmarkDecisionEndpointSentinel(b *testing.B) {
	const policy = `version: v1
budgets:
  fleet: {limit_usd: 1000000, window: day}
  default_agent: {limit_usd: 1000000, window: day}
rules:
  - id: constrained
    match: {topics: ["job.load"]}
    decision: allow_with_constraints
    constraints: {max_tokens: 4000, max_runtime_sec: 60}
`
	s := redistest.StartSentinel(b)
	for _, wait := range []int{0, 1} {
		for _, release := range []bool{true, false} {
			name := fmt.Sprintf("wait%d", wait)
			if !release {
				name += "-no-release"
			}
			b.Run(name, func(b *testing.B) {
				url := startSentinelCollector(b, policy, s, wait)
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
			})
		}
	}
}

// startSentinelCollector starts a collector whose ledger is on the sentinel setup s, under a key
// prefix of its own, and returns the decision API's URL.
func startSentinelCollector(tb testing.TB, policy string, s *redistest.SentinelSetup, wait int) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(policy), 0o600); err != nil {
		tb.Fatal(err)
	}
	api := collectortest.Endpoint(tb)
	collectortest.Run(tb, factories, fmt.Sprintf(`
extensions:
  budgetledger:
    backend: redis
    redis: {mode: sentinel, master_name: %[4]s, sentinel_addresses: [%[5]s], key_prefix: %[6]q, wait_for_replicas: {replicas: %[7]d, timeout: 500ms}}
    evidence: {directory: %[1]s/evidence, sync: interval}
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
`, dir, api, collectortest.Endpoint(tb), s.MasterName, strings.Join(s.Sentinels, ", "), filepath.Base(dir)+":", wait))
	return "http://" + api
}

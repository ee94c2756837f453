package main

import (
	"fmt"
	"math"
	"regexp"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/internal/testutil/otlpfixture"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
)

// oneAnthropicCall is the cost of the call every recorded Anthropic fixture made (testdata/otlp):
// claude-sonnet-4-5-20250929, 1000 uncached input tokens at $3/M, 200 cache reads at $0.30/M, 100
// cache writes at $3.75/M and 200 output tokens at $15/M: $0.003 + $0.00006 + $0.000375 + $0.003.
const oneAnthropicCall = money.Nanos(6_435_000)

// sameCallFixtures are the recorded trees where an instrumentation library's span wraps the
// Anthropic SDK's own span of the same call.
var sameCallFixtures = []string{"openllmetry-anthropic-over-sdk", "openinference-anthropic-over-sdk"}

// sameCallConfig is a collector receiving OTLP/HTTP, pricing with the zero-config processor and
// booking through costledger exporter id into the ledger extension's config; the budget receiver
// publishes the ledger's totals to a prometheus exporter on metrics.
func sameCallConfig(t *testing.T, http, metrics, exporterID, ledgerCfg string) string {
	return fmt.Sprintf(`
extensions:
  budgetledger:
%[4]s
receivers:
  otlp: {protocols: {http: {endpoint: %[1]s}}}
  %[5]s
processors:
  agentcost: {}
exporters:
  %[3]s: {}
  prometheus: {endpoint: %[2]s, translation_strategy: UnderscoreEscapingWithoutSuffixes, without_scope_info: true, metric_expiration: 1h}
service:
  telemetry: {metrics: {level: none}, logs: {level: warn}}
  extensions: [budgetledger]
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [%[3]s]}
    metrics: {receivers: [budget], exporters: [prometheus]}
`, http, metrics, exporterID, ledgerCfg, publishingBudget(t))
}

// callBatches returns the recorded fixture as n distinct calls (trace ids of their own), each split
// into one OTLP request per span in the order the spans ended; reverse sends the parent first.
func callBatches(t *testing.T, fixture string, n int, seed byte, reverse bool) [][]ptrace.Traces {
	td := otlpfixture.Load(t, fixture)
	out := make([][]ptrace.Traces, n)
	for i := range n {
		call := otlpfixture.WithTraceID(td, pcommon.TraceID([16]byte{0xca, seed, byte(i >> 8), byte(i)}), seed)
		out[i] = otlpfixture.SplitBySpan(call)
		if reverse {
			out[i] = otlpfixture.Reversed(out[i])
		}
	}
	return out
}

// TestEndToEndSameCallAcrossRequests sends each recorded "instrumentation span over the SDK's span"
// tree through the whole collector with every span in its own OTLP request — the child first, as
// the SDK exports it when it ends, and also the parent first — and reads the costledger metrics:
// each call is booked once at its exact cost, and every repeated span is counted with its dollars
// in agentcost_duplicate_calls_total / agentcost_duplicate_call_usd_total.
func TestEndToEndSameCallAcrossRequests(t *testing.T) {
	http, metrics := collectortest.Endpoint(t), collectortest.Endpoint(t)
	dir := t.TempDir()
	collectortest.Run(t, components, sameCallConfig(t, http, metrics, "costledger",
		fmt.Sprintf("    directory: %[1]s/ledger\n    evidence: {directory: %[1]s/evidence}", dir)))
	calls := 0
	for i, fixture := range sameCallFixtures {
		for _, reverse := range []bool{false, true} {
			seed := byte(2*i + 1)
			if reverse {
				seed++
			}
			for _, call := range callBatches(t, fixture, 3, seed, reverse) {
				calls++
				for _, req := range call {
					if code := postTraces(t, http, "", req); code != 200 {
						t.Fatalf("%s: OTLP request answered %d", fixture, code)
					}
				}
			}
		}
	}
	want := float64(oneAnthropicCall*money.Nanos(calls)) / 1e9
	near := func(w float64) func(float64) bool { return func(v float64) bool { return math.Abs(v-w) < 1e-9 } }
	waitScrape(t, metrics, regexp.MustCompile(`(?m)^agentcost_spend_usd_total\{[^}]*agent="fixture-agent"[^}]*\} (\S+)`), near(want))
	waitScrape(t, metrics, regexp.MustCompile(`(?m)^agentcost_duplicate_calls_total\{[^}]*\} (\S+)`), near(float64(calls)))
	waitScrape(t, metrics, regexp.MustCompile(`(?m)^agentcost_duplicate_call_usd_total\{[^}]*\} (\S+)`), near(want))
}

// TestReplicasBookOneCallOnce runs two collectors on one Redis ledger and sends, for each of many
// calls, the child span to one replica and its parent to the other at the same time: the Redis
// book script applies the same-call rule atomically, so each call is booked once.
func TestReplicasBookOneCallOnce(t *testing.T) {
	redis := redistest.Start(t)
	const prefix = "samecall:"
	var https [2]string
	for i, id := range []string{"costledger/a", "costledger/b"} {
		https[i] = collectortest.Endpoint(t)
		ledgerCfg := fmt.Sprintf("    backend: redis\n    redis: {endpoint: %s, key_prefix: %q}\n    evidence: {directory: %s}",
			redis.Addr, prefix, t.TempDir())
		collectortest.Run(t, components, sameCallConfig(t, https[i], collectortest.Endpoint(t), id, ledgerCfg))
	}
	const n = 20
	var at time.Time
	var wg sync.WaitGroup
	calls := 0
	for i, fixture := range sameCallFixtures {
		for _, call := range callBatches(t, fixture, n, byte(0x10+i), false) {
			calls++
			if len(call) != 3 {
				t.Fatalf("%s: %d spans, want the SDK's, the instrumentation's and the application's", fixture, len(call))
			}
			at = call[0].ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).EndTimestamp().AsTime()
			for r, req := range call[:2] { // the two LLM spans, one per replica, concurrently
				wg.Go(func() {
					if code := postTraces(t, https[r], "", req); code != 200 {
						t.Errorf("replica %d answered %d", r, code)
					}
				})
			}
		}
	}
	wg.Wait()
	l := openLedger(t, "", redis.Addr, prefix)
	want := oneAnthropicCall * money.Nanos(calls)
	if got := waitSpent(l, ledger.ScopeAgent, "fixture-agent", at, want, 10*time.Second); got != want {
		t.Errorf("agent spent %s for %d calls sent as child and parent to two replicas, want %s (each once)", got, calls, want)
	}
}

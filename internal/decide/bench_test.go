package decide

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger/ledgertest"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// BenchmarkDecide measures the engine alone (no HTTP) on the embedded ledger and a real evidence
// writer (fsync per interval), with the request mix of cmd/agentload's BenchmarkDecisionEndpoint:
// every decision is allow_with_constraints, so each one reserves and writes evidence. 32
// goroutines decide at once.
func BenchmarkDecide(b *testing.B) {
	p, err := policy.Parse("policy.yaml", []byte(`version: v1
budgets:
  fleet: {limit_usd: 1000000, window: day, throttle_at: 0.8, pause_at: 0.95}
  default_agent: {limit_usd: 1000000, window: day}
rules:
  - id: constrained
    match: {topics: ["job.load"]}
    decision: allow_with_constraints
    constraints: {max_tokens: 4000, max_runtime_sec: 60}
`))
	if err != nil {
		b.Fatal(err)
	}
	ev, _, err := evidence.Open(b.TempDir(), evidence.Options{Sync: evidence.SyncInterval})
	if err != nil {
		b.Fatal(err)
	}
	defer ev.Close()
	bl, err := baseline.New(baseline.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(context.Background(), Config{Policy: func() *policy.Policy { return p }, Ledger: ledgertest.NewEmbedded(b), Evidence: ev, Baselines: bl})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := decisionapi.DecisionRequest{AgentID: "agent-" + strconv.Itoa(int(n.Add(1)%100)), Action: "job.load", EstimatedCostUSD: 0.01}
			d, err := e.Decide(context.Background(), Caller{}, req, "")
			if err != nil || d.Decision != decisionapi.DecisionAllowWithConstraints {
				b.Fatalf("%+v %v", d, err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

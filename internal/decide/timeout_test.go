package decide

import (
	"context"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/ledger/ledgertest"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// TestLedgerTimeoutFailsClosedPromptly: Redis stalls (SIGSTOP) with its own command timeouts at
// 30 s. With a 200 ms ledger timeout every decision, plain or idempotent, is still answered (deny,
// rule ledger.unavailable) instead of waiting on the backend; once Redis is back decisions are
// allowed again. The bound asserted is far from the backend's 30 s, not a latency target; the
// measured latency is logged.
func TestLedgerTimeoutFailsClosedPromptly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	srv := redistest.Start(t)
	l := ledgertest.NewRedis(t, srv, func(c *ledger.Config) {
		c.Redis.ReadTimeout, c.Redis.WriteTimeout = 30*time.Second, 30*time.Second
	})
	p, err := policy.Parse("policy.yaml", []byte(enginePolicy))
	if err != nil {
		t.Fatal(err)
	}
	bl, err := baseline.New(baseline.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(t.Context(), Config{
		Policy: func() *policy.Policy { return p }, Ledger: l, Baselines: bl, FailMode: FailClosed,
		LedgerTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	agent := Caller{Role: access.RoleAgent, Subject: "a"}
	req := decisionapi.DecisionRequest{AgentID: "a", Action: "job.x", EstimatedCostUSD: 0.01}
	if d, err := e.Decide(t.Context(), agent, req, ""); err != nil || d.Decision != decisionapi.DecisionAllow {
		t.Fatalf("before the stall: %+v %v", d, err)
	}

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := srv.Resume(); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume)
	for _, key := range []string{"", "idem-1"} {
		req.IdempotencyKey = key
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a third of the backend's timeout
		begin := time.Now()
		d, err := e.Decide(ctx, agent, req, "")
		took := time.Since(begin)
		cancel()
		if err != nil || d.Decision != decisionapi.DecisionDeny || d.RuleID != RuleLedgerUnavailable {
			t.Fatalf("stalled ledger, idempotency_key %q: %+v %v (after %v); want deny by %s", key, d, err, took, RuleLedgerUnavailable)
		}
		t.Logf("stalled ledger, idempotency_key %q: denied after %v", key, took)
	}

	// A caller that gives up is not answered under the fail mode: its context's error comes back.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	req.IdempotencyKey = ""
	if d, err := e.Decide(ctx, agent, req, ""); err == nil {
		t.Errorf("canceled request answered %+v", d)
	}

	resume()
	req.IdempotencyKey = ""
	if d, err := e.Decide(t.Context(), agent, req, ""); err != nil || d.Decision != decisionapi.DecisionAllow {
		t.Fatalf("after the stall: %+v %v", d, err)
	}
}

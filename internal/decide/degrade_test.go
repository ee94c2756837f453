package decide

import (
	"context"
	"testing"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/ledger/ledgertest"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

const degradeEnginePolicy = `version: v1
policy_version: degrade-1
budgets:
  default_agent: {limit_usd: 10, window: day}
degrade:
  - when: {scope: agent, at: 0.8}
    models: {"big-*": small}
`

// tenthPrices prices "small" at a tenth of any "big-*" model.
type tenthPrices struct{}

func (tenthPrices) Reprice(est money.Nanos, from, to string) (money.Nanos, bool) {
	if to != "small" {
		return 0, false
	}
	return (est + 9) / 10, true
}

func newDegradeEngine(t *testing.T, l ledger.Ledger, mode FailMode) *testEngine {
	t.Helper()
	return newTestEngineWith(t, l, mode, degradeEnginePolicy, func(c *Config) { c.Prices = tenthPrices{} })
}

// TestDegradeReservesReestimate: on both ledger backends, a request for big-1 at the agent's
// degrade level is allowed with constraints.model small and the ledger holds the re-estimate;
// the decision's evidence names the model; releasing it settles the re-estimate's reservation.
func TestDegradeReservesReestimate(t *testing.T) {
	backends := map[string]func(t *testing.T) ledger.Ledger{
		"embedded": func(t *testing.T) ledger.Ledger { return ledgertest.NewEmbedded(t) },
		"redis":    func(t *testing.T) ledger.Ledger { return ledgertest.NewRedis(t, redistest.Start(t)) },
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			te := newDegradeEngine(t, open(t), FailClosed)
			agent := Caller{Role: access.RoleAgent, Subject: "a"}
			fill, err := te.Decide(ctx, agent, decisionapi.DecisionRequest{AgentID: "a", Action: "job.fill", EstimatedCostUSD: 8}, "")
			if err != nil || fill.Decision != decisionapi.DecisionAllow {
				t.Fatalf("fill: %+v %v", fill, err)
			}
			req := decisionapi.DecisionRequest{AgentID: "a", Action: "job.llm", EstimatedCostUSD: 5, Model: "big-1", IdempotencyKey: "k"}
			d, err := te.Decide(ctx, agent, req, "")
			if err != nil || d.Decision != decisionapi.DecisionAllowWithConstraints || d.Constraints.Model != "small" || d.LeaseID == "" {
				t.Fatalf("degraded: %+v %v", d, err)
			}
			// The repeat of the idempotency key answers the same swap.
			if again, err := te.Decide(ctx, agent, req, ""); err != nil || again.DecisionID != d.DecisionID || again.Constraints.Model != "small" {
				t.Fatalf("repeat: %+v %v", again, err)
			}
			st, err := te.ledger.State(ctx, ledger.ScopeAgent, "a", ledger.Day, te.clock)
			if want := money.Nanos(8_500_000_000); err != nil || st.Reserved != want {
				t.Fatalf("agent state %+v %v, want $8 + the $0.50 re-estimate reserved", st, err)
			}
			rec := te.ev.recs[len(te.ev.recs)-1]
			if rec.Constraints == nil || rec.Constraints.Model != "small" || rec.EstimatedCostUSD != evidence.USD(500_000_000) {
				t.Fatalf("evidence %+v, want model small and the $0.50 re-estimate", rec)
			}
			if _, err := te.Release(ctx, agent, d.LeaseID, decisionapi.ReleaseRequest{}); err != nil {
				t.Fatal(err)
			}
			st, _ = te.ledger.State(ctx, ledger.ScopeAgent, "a", ledger.Day, te.clock)
			if st.Reserved != 8*money.NanosPerUSD {
				t.Fatalf("after the release: %+v, want the $8 fill only", st)
			}
			// Without a model the same request does not fit: denied.
			req.Model, req.IdempotencyKey = "", ""
			if d, _ := te.Decide(ctx, agent, req, ""); d.Decision != decisionapi.DecisionDeny || d.Constraints.Model != "" {
				t.Fatalf("no model: %+v, want deny", d)
			}
		})
	}
}

// TestDegradeFailOpenPricesOnce: a reservation failure answered fail_open evaluates again from
// the request's own estimate, so the ratio is not applied twice.
func TestDegradeFailOpenPricesOnce(t *testing.T) {
	ctx := context.Background()
	te := newDegradeEngine(t, ledgertest.NewEmbedded(t), FailOpen)
	// An estimate of $9 alone is 90% of the empty agent budget: at the level even on empty state.
	te.ledger.fail["reserve"] = true
	d, err := te.Decide(ctx, Caller{}, decisionapi.DecisionRequest{AgentID: "a", Action: "job.llm", EstimatedCostUSD: 9, Model: "big-1"}, "")
	if err != nil || d.Decision != decisionapi.DecisionAllowWithConstraints || d.Constraints.Model != "small" || d.LeaseID != "" {
		t.Fatalf("fail_open: %+v %v", d, err)
	}
	rec := te.ev.recs[len(te.ev.recs)-1]
	if rec.EstimatedCostUSD != evidence.USD(900_000_000) {
		t.Fatalf("evidence estimate %v, want the $0.90 re-estimate (priced once)", rec.EstimatedCostUSD)
	}
}

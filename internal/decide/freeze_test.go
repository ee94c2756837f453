package decide

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// freezeRec records the freeze hook's calls.
type freezeRec struct {
	NopRecorder
	mu               sync.Mutex
	frozen, unfrozen []string
}

func (r *freezeRec) Frozen(f decisionapi.Freeze) {
	r.mu.Lock()
	r.frozen = append(r.frozen, f.FreezeID)
	r.mu.Unlock()
}

func (r *freezeRec) Unfrozen(f decisionapi.Freeze) {
	r.mu.Lock()
	r.unfrozen = append(r.unfrozen, f.FreezeID)
	r.mu.Unlock()
}

func TestFreezeLayer(t *testing.T) {
	te := newTestEngine(t, FailClosed)
	rec := &freezeRec{}
	te.rec = rec
	ctx := context.Background()
	reviewer := Caller{Role: access.RoleReviewer, Subject: "alice"}
	agent := Caller{Role: access.RoleAgent, Subject: "a1"}
	req := decisionapi.DecisionRequest{AgentID: "a1", Action: "job.x", EstimatedCostUSD: 0.1}

	if _, err := te.CreateFreeze(ctx, agent, decisionapi.FreezeRequest{Scope: decisionapi.FreezeFleet, Reason: "x"}); !isCode(err, decisionapi.CodeForbidden) {
		t.Fatalf("agent creating a freeze: %v; want 403", err)
	}
	ttl := int64(60)
	f, err := te.CreateFreeze(ctx, reviewer, decisionapi.FreezeRequest{Scope: decisionapi.FreezeAgent, ScopeID: "a1", Reason: "loop", ExpiresInSec: &ttl})
	if err != nil || f.ExpiresAt == nil || !f.ExpiresAt.Equal(te.clock.Add(time.Minute)) {
		t.Fatalf("CreateFreeze = %+v, %v", f, err)
	}
	d, err := te.Decide(ctx, agent, req, "")
	if err != nil || d.Decision != decisionapi.DecisionDeny || d.RuleID != RuleFreeze || !strings.Contains(d.Reason, "loop") {
		t.Fatalf("frozen decision = %+v, %v", d, err)
	}
	// Explain shows the freeze as the first layer, deciding.
	ex, err := te.Explain(ctx, agent, req)
	if err != nil || ex.Decision != decisionapi.DecisionDeny || ex.RuleID != RuleFreeze || len(ex.BudgetLayers) == 0 ||
		ex.BudgetLayers[0].Layer != "freeze" || !strings.Contains(ex.BudgetLayers[0].Detail, "loop") {
		t.Fatalf("explain while frozen = %+v, %v", ex, err)
	}
	// Nothing was reserved: the budget is untouched.
	if st, err := te.Budgets(ctx, reviewer, decisionapi.ListParams{}); err != nil || len(st.Scopes) != 0 {
		t.Fatalf("budgets after a frozen decision = %+v, %v; want no active scope", st, err)
	}
	// The freeze expires on its own.
	te.advance(time.Minute)
	if d, _ := te.Decide(ctx, agent, req, ""); d.Decision != decisionapi.DecisionAllow {
		t.Fatalf("after expiry: %+v", d)
	}
	if _, err := te.LiftFreeze(ctx, reviewer, f.FreezeID); !isCode(err, decisionapi.CodeConflict) {
		t.Fatalf("lifting an expired freeze: %v; want 409", err)
	}
	g, _ := te.CreateFreeze(ctx, reviewer, decisionapi.FreezeRequest{Scope: decisionapi.FreezeFleet, Reason: "incident"})
	if _, err := te.LiftFreeze(ctx, agent, g.FreezeID); !isCode(err, decisionapi.CodeForbidden) {
		t.Fatalf("agent lifting: %v; want 403", err)
	}
	if _, err := te.LiftFreeze(ctx, reviewer, g.FreezeID); err != nil {
		t.Fatal(err)
	}
	if n, err := te.ActiveFreezes(ctx); err != nil || n != 0 {
		t.Fatalf("ActiveFreezes = %d, %v", n, err)
	}
	rec.mu.Lock()
	if len(rec.frozen) != 2 || len(rec.unfrozen) != 1 || rec.unfrozen[0] != g.FreezeID {
		t.Errorf("hook calls: frozen %v, unfrozen %v", rec.frozen, rec.unfrozen)
	}
	rec.mu.Unlock()
	var kinds []evidence.Kind
	te.ev.mu.Lock()
	for _, r := range te.ev.recs {
		if r.Kind == evidence.KindFreeze || r.Kind == evidence.KindUnfreeze {
			kinds = append(kinds, r.Kind)
		}
	}
	te.ev.mu.Unlock()
	if len(kinds) != 3 {
		t.Errorf("freeze evidence kinds %v; want freeze, freeze, unfreeze", kinds)
	}
}

// TestFreezeFailsClosedWithTheLedger: a freeze is read with the budget state, so a ledger that
// cannot be read cannot be answered past a freeze under fail_closed.
func TestFreezeReadWithTheState(t *testing.T) {
	te := newTestEngine(t, FailClosed)
	ctx := context.Background()
	if _, err := te.CreateFreeze(ctx, Caller{Role: access.RoleOpen}, decisionapi.FreezeRequest{Scope: decisionapi.FreezeFleet, Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	te.ledger.mu.Lock()
	te.ledger.fail["read"] = true
	te.ledger.mu.Unlock()
	d, err := te.Decide(ctx, Caller{Role: access.RoleOpen}, decisionapi.DecisionRequest{AgentID: "a1", Action: "job.x"}, "")
	if err != nil || d.Decision != decisionapi.DecisionDeny || d.RuleID != RuleLedgerUnavailable {
		t.Fatalf("decision with the ledger down = %+v, %v", d, err)
	}
}

func isCode(err error, code decisionapi.Code) bool {
	var ae *decisionapi.APIError
	return errors.As(err, &ae) && ae.Code == code
}

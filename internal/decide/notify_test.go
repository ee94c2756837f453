package decide

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/notify"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// recordingNotifier keeps what the engine emitted.
type recordingNotifier struct {
	mu  sync.Mutex
	evs []notify.Event
}

func (r *recordingNotifier) Emit(_ context.Context, ev notify.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
	return nil
}

func (r *recordingNotifier) of(typ string) []notify.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []notify.Event
	for _, ev := range r.evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// TestAnomalyNotifiedOnce: an action settled at many times its baseline emits anomaly.action,
// naming agent, action, decision and cost, once however often it is settled.
func TestAnomalyNotifiedOnce(t *testing.T) {
	te := newTestEngine(t, FailClosed)
	rec := &recordingNotifier{}
	te.cfg.Notifier = rec
	ctx := context.Background()
	for i := range 12 {
		te.settle(ctx, ledger.Settlement{ID: fmt.Sprintf("dec_%d", i), Agent: "a", Action: "job.x", Source: decisionapi.SourceReported,
			Cost: money.NanosPerUSD, ReportedCost: money.NanosPerUSD, HasReported: true})
	}
	if n := len(rec.of(notify.TypeActionAnomaly)); n != 0 {
		t.Fatalf("%d anomalies for steady actions", n)
	}
	big := ledger.Settlement{ID: "dec_big", Agent: "a", Action: "job.x", Source: decisionapi.SourceReported,
		Cost: 10 * money.NanosPerUSD, ReportedCost: 10 * money.NanosPerUSD, HasReported: true}
	te.settle(ctx, big)
	te.settle(ctx, big)
	evs := rec.of(notify.TypeActionAnomaly)
	if len(evs) != 1 {
		t.Fatalf("%d anomaly events, want 1", len(evs))
	}
	a := evs[0].Anomaly
	if evs[0].ID != "anomaly.action:dec_big" || a.Agent != "a" || a.Action != "job.x" || a.DecisionID != "dec_big" || a.CostUSD != "10" {
		t.Fatalf("anomaly event %+v %+v", evs[0], a)
	}
}

// TestFreezeNotified: a freeze and its lifting each emit a freeze event naming scope, reviewer
// and reason, stored before the call answers.
func TestFreezeNotified(t *testing.T) {
	te := newTestEngine(t, FailClosed)
	rec := &recordingNotifier{}
	te.cfg.Notifier = rec
	ctx := context.Background()
	alice := Caller{Role: access.RoleReviewer, Subject: "alice"}
	f, err := te.CreateFreeze(ctx, alice, decisionapi.FreezeRequest{Scope: decisionapi.FreezeAgent, ScopeID: "a", Reason: "runaway loop"})
	if err != nil {
		t.Fatal(err)
	}
	evs := rec.of(notify.TypeFreeze)
	if len(evs) != 1 || !evs[0].Freeze.Frozen || evs[0].Freeze.ID != "a" || evs[0].Freeze.Scope != "agent" ||
		evs[0].Freeze.By != "alice" || evs[0].Freeze.Reason != "runaway loop" || evs[0].Freeze.FreezeID != f.FreezeID {
		t.Fatalf("freeze events %+v", evs)
	}
	if _, err := te.LiftFreeze(ctx, Caller{Role: access.RoleReviewer, Subject: "bob"}, f.FreezeID); err != nil {
		t.Fatal(err)
	}
	evs = rec.of(notify.TypeFreeze)
	if len(evs) != 2 || evs[1].Freeze.Frozen || evs[1].Freeze.By != "bob" || evs[1].ID == evs[0].ID {
		t.Fatalf("unfreeze event %+v", evs[len(evs)-1])
	}
}

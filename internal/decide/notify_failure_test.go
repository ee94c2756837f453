package decide

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/ledger/ledgertest"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/notify"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// faultyOutbox is the ledger's outbox whose EnqueueOutbox fails while fail is set.
type faultyOutbox struct {
	ledger.Outbox
	fail atomic.Bool
}

func (f *faultyOutbox) EnqueueOutbox(ctx context.Context, events []ledger.OutboxEvent, maxEvents int) (int, error) {
	if f.fail.Load() {
		return 0, errInjected
	}
	return f.Outbox.EnqueueOutbox(ctx, events, maxEvents)
}

const notifyFailurePolicy = `version: v1
default_decision: allow
budgets:
  agents: {a: {limit_usd: 1, window: day, warn_at: 0.5}}
rules:
  - id: ask
    match: {topics: ["job.ask"]}
    decision: require_approval
    reason: a person decides
`

// newNotifyEngine returns an engine whose notifier stores events in an embedded ledger's outbox
// through a faultyOutbox.
func newNotifyEngine(t *testing.T) (*Engine, *ledger.Embedded, *faultyOutbox) {
	t.Helper()
	p, err := policy.Parse("policy.yaml", []byte(notifyFailurePolicy))
	if err != nil {
		t.Fatal(err)
	}
	bl, err := baseline.New(baseline.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	l := ledgertest.NewEmbedded(t)
	ob := &faultyOutbox{Outbox: l}
	n, err := notify.New(notify.Settings{Outbox: ob, Webhooks: []notify.Webhook{{Name: "ops", URL: "http://127.0.0.1:1/"}}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), Config{Policy: func() *policy.Policy { return p }, Ledger: l, Baselines: bl,
		FailMode: FailOpen, Notifier: n})
	if err != nil {
		t.Fatal(err)
	}
	return e, l, ob
}

// outboxIDs returns the ids of the events waiting in the outbox (claimed for a moment).
func outboxIDs(t *testing.T, l *ledger.Embedded) []string {
	t.Helper()
	evs, err := l.ClaimOutbox(context.Background(), 1000, time.Millisecond, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	return ids
}

func countPrefix(ids []string, prefix string) int {
	n := 0
	for _, id := range ids {
		if strings.HasPrefix(id, prefix) {
			n++
		}
	}
	return n
}

// TestApprovalRequestAnswersUnavailableWithoutItsEvent: when the approval.requested event cannot
// be stored the decision answers 503 (even under fail_open) and names no approval, and the
// approval it created is withdrawn, not left pending for nobody; the retry stores its event.
func TestApprovalRequestAnswersUnavailableWithoutItsEvent(t *testing.T) {
	e, l, ob := newNotifyEngine(t)
	ctx := context.Background()
	req := decisionapi.DecisionRequest{AgentID: "a", Action: "job.ask", EstimatedCostUSD: 0.1}
	ob.fail.Store(true)
	resp, err := e.Decide(ctx, Caller{Role: access.RoleOpen}, req, "")
	if ae := decisionapi.AsAPIError(err); err == nil || ae.Status != 503 || resp.ApprovalID != "" {
		t.Fatalf("decision with the outbox failing: %+v %v, want 503", resp, err)
	}
	pending, err := l.ListApprovals(ctx, decisionapi.ApprovalPending, ledger.ApprovalCursor{}, 0, time.Now())
	if err != nil || len(pending) != 0 {
		t.Fatalf("pending approvals after the failed request: %d %v, want 0 (withdrawn)", len(pending), err)
	}
	ob.fail.Store(false)
	resp, err = e.Decide(ctx, Caller{Role: access.RoleOpen}, req, "")
	if err != nil || resp.ApprovalID == "" {
		t.Fatalf("retry: %+v %v", resp, err)
	}
	if ids := outboxIDs(t, l); len(ids) != 1 || ids[0] != "ops|approval.requested:"+resp.ApprovalID {
		t.Fatalf("outbox %v, want the retry's approval.requested only", ids)
	}
}

// TestResolveAnswersUnavailableWithoutItsEvent: an approve whose approval.resolved event cannot
// be stored answers 503; the reviewer's repeat stores the event and answers the approval, while
// a contrary answer stays a conflict.
func TestResolveAnswersUnavailableWithoutItsEvent(t *testing.T) {
	e, l, ob := newNotifyEngine(t)
	ctx := context.Background()
	resp, err := e.Decide(ctx, Caller{Role: access.RoleOpen}, decisionapi.DecisionRequest{AgentID: "a", Action: "job.ask", EstimatedCostUSD: 0.1}, "")
	if err != nil || resp.ApprovalID == "" {
		t.Fatal(resp, err)
	}
	alice := Caller{Role: access.RoleReviewer, Subject: "alice"}
	ob.fail.Store(true)
	if _, err := e.Approve(ctx, alice, resp.ApprovalID, decisionapi.ApproveRequest{}); decisionapi.AsAPIError(err).Status != 503 {
		t.Fatalf("approve with the outbox failing: %v, want 503", err)
	}
	// The repeat while the outbox still fails is 503 again, not a conflict.
	if _, err := e.Approve(ctx, alice, resp.ApprovalID, decisionapi.ApproveRequest{}); decisionapi.AsAPIError(err).Status != 503 {
		t.Fatalf("repeated approve with the outbox failing: %v, want 503", err)
	}
	ob.fail.Store(false)
	ap, err := e.Approve(ctx, alice, resp.ApprovalID, decisionapi.ApproveRequest{})
	if err != nil || ap.State != decisionapi.ApprovalApproved || ap.Reviewer != "alice" {
		t.Fatalf("repeated approve: %+v %v", ap, err)
	}
	if n := countPrefix(outboxIDs(t, l), "ops|approval.resolved:"+resp.ApprovalID); n != 1 {
		t.Fatalf("%d approval.resolved events stored, want 1", n)
	}
	if _, err := e.Deny(ctx, alice, resp.ApprovalID, decisionapi.DenyRequest{}); decisionapi.AsAPIError(err).Status != 409 {
		t.Fatalf("deny after approve: %v, want 409", err)
	}
	if _, err := e.Approve(ctx, Caller{Role: access.RoleReviewer, Subject: "bob"}, resp.ApprovalID, decisionapi.ApproveRequest{}); decisionapi.AsAPIError(err).Status != 409 {
		t.Fatalf("another reviewer's approve: %v, want 409", err)
	}
}

// TestNotifyBookedRetriesAfterStoreFailure: booked spend past the agent's warn_at emits budget.level
// when NotifyBooked runs; when the event cannot be stored NotifyBooked fails (so the exporter's
// retry runs it again) and no marker hides the crossing: the next call stores the event, and
// later calls store nothing more.
func TestNotifyBookedRetriesAfterStoreFailure(t *testing.T) {
	e, l, ob := newNotifyEngine(t)
	ctx := context.Background()
	spends := []ledger.Spend{{TraceID: "t1", SpanID: "s1", Time: time.Now(), Agent: "a", Cost: 60 * money.NanosPerUSD / 100}}
	if _, err := l.Book(ctx, spends); err != nil {
		t.Fatal(err)
	}
	ob.fail.Store(true)
	if n, err := e.NotifyBooked(ctx, spends); err == nil || !errors.Is(err, errInjected) || n != 0 {
		t.Fatalf("NotifyBooked with the outbox failing: %d %v, want the failure", n, err)
	}
	ob.fail.Store(false)
	if n, err := e.NotifyBooked(ctx, spends); err != nil || n != 1 {
		t.Fatalf("NotifyBooked after the failure: %d %v, want 1 event", n, err)
	}
	for range 3 {
		if n, err := e.NotifyBooked(ctx, spends); err != nil || n != 0 {
			t.Fatalf("NotifyBooked again: %d %v, want nothing new", n, err)
		}
	}
	ids := outboxIDs(t, l)
	if len(ids) != 1 || !strings.HasPrefix(ids[0], "ops|budget.level:notify/budget-level/agent/1:a/day/") || !strings.HasSuffix(ids[0], "/warn") {
		t.Fatalf("outbox %v, want one agent a warn event", ids)
	}
	// Spend below every level notifies nothing.
	other := []ledger.Spend{{TraceID: "t2", SpanID: "s2", Time: time.Now(), Agent: "b", Cost: money.NanosPerUSD}}
	if n, err := e.NotifyBooked(ctx, other); err != nil || n != 0 {
		t.Fatalf("NotifyBooked of an unbudgeted agent: %d %v", n, err)
	}
}

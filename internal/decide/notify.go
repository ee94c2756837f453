package decide

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/notify"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Notifier stores notification events durably for delivery; *notify.Notifier is one. Emit
// returns once the event is stored (or dropped by a full outbox, which is counted there).
type Notifier interface {
	Emit(ctx context.Context, ev notify.Event) error
}

// emit stores ev before the operation that caused it answers. A failure is logged (rate limited
// with the ledger's warnings) and does not fail the operation: the ledger just did the operation
// itself, and refusing the answer would not undo it.
func (e *Engine) emit(ctx context.Context, ev notify.Event) {
	if e.cfg.Notifier == nil {
		return
	}
	if err := e.cfg.Notifier.Emit(ctx, ev); err != nil {
		e.warnLedger("store notification "+ev.Type, err)
	}
}

func nanosUSD(n money.Nanos) string { return n.String() }

// approvalEvent is the notification of an approval in its current state.
func approvalEvent(typ string, ap ledger.Approval, when time.Time) notify.Event {
	var payload approvalPayload
	_ = json.Unmarshal(ap.Payload, &payload)
	na := &notify.Approval{
		ID: ap.ID, State: string(ap.State), Agent: ap.Agent, Team: payload.Team, RunID: payload.RunID,
		Action: ap.Action, EstimateUSD: nanosUSD(ap.Estimate), RuleID: ap.Rule, Reason: ap.Reason,
		ExpiresAt: ap.ExpiresAt.UTC(),
	}
	if d := ap.Decision; d != nil {
		na.Reviewer, na.Note = d.Reviewer, d.Comment
	}
	return notify.Event{ID: typ + ":" + ap.ID, Type: typ, Time: when, Approval: na}
}

// expiredNoticeTTL keeps the marker that an expired approval was notified for (one per approval,
// across replicas) longer than any approval is listed.
const expiredNoticeTTL = 30 * 24 * time.Hour

// NotifyExpiredApprovals emits approval.expired for every approval expired unanswered since the
// last call (the first call after a start looks at every expired approval the ledger still
// keeps). A marker in the ledger makes it once per approval, across restarts and replicas. It
// returns the number of events emitted.
func (e *Engine) NotifyExpiredApprovals(ctx context.Context) (int, error) {
	if e.cfg.Notifier == nil {
		return 0, nil
	}
	e.notifyMu.Lock()
	defer e.notifyMu.Unlock()
	n := 0
	for {
		aps, err := e.ledger.ListApprovals(ctx, ledger.ApprovalExpired, e.expiredCursor, 100, e.now())
		if err != nil {
			return n, err
		}
		for _, ap := range aps {
			_, created, err := e.ledger.PutIfAbsent(ctx, "notify/approval-expired/"+ap.ID, []byte{1}, expiredNoticeTTL)
			if err != nil {
				return n, err
			}
			if created {
				e.emit(ctx, approvalEvent(notify.TypeApprovalExpired, ap, ap.ExpiresAt))
				n++
			}
		}
		if len(aps) < 100 {
			// Approvals still pending expire later: keep the cursor at the last expired one seen.
			if len(aps) > 0 {
				e.expiredCursor = aps[len(aps)-1].Cursor()
			}
			return n, nil
		}
		e.expiredCursor = aps[len(aps)-1].Cursor()
	}
}

// levelNoticeTTL keeps a level-crossing marker beyond any window instance but the lifetime one.
const levelNoticeTTL = 400 * 24 * time.Hour

// NotifyBudgetLevels emits budget.level for every scope of budgets above normal whose level was
// not notified yet in its window instance: once per (scope, window instance, level), across
// replicas (a marker in the ledger), so a scope that climbs normal → throttle → exhausted is
// notified twice and one that hovers around a threshold once. The receiver calls it with the
// budget state it publishes, so a crossing caused by booked spend is notified within
// publish_interval.
func (e *Engine) NotifyBudgetLevels(ctx context.Context, budgets decisionapi.BudgetsResponse) (int, error) {
	if e.cfg.Notifier == nil {
		return 0, nil
	}
	n := 0
	for _, s := range budgets.Scopes {
		if s.Level == decisionapi.LevelNormal || s.Level == "" {
			continue
		}
		start := ""
		if !s.WindowStart.IsZero() {
			start = strconv.FormatInt(s.WindowStart.Unix(), 10)
		}
		key := fmt.Sprintf("notify/budget-level/%s/%d:%s/%s/%s/%s", s.Scope, len(s.ID), s.ID, s.Window, start, s.Level)
		_, created, err := e.ledger.PutIfAbsent(ctx, key, []byte{1}, levelNoticeTTL)
		if err != nil {
			return n, err
		}
		if !created {
			continue
		}
		e.emit(ctx, notify.Event{ID: "budget.level:" + key, Type: notify.TypeBudgetLevel, Budget: &notify.Budget{
			Scope: s.Scope, ID: s.ID, Window: s.Window, Level: string(s.Level),
			SpentUSD:    strconv.FormatFloat(s.SpentUSD, 'f', -1, 64),
			ReservedUSD: strconv.FormatFloat(s.ReservedUSD, 'f', -1, 64),
			LimitUSD:    strconv.FormatFloat(s.LimitUSD, 'f', -1, 64),
			WindowStart: s.WindowStart,
		}})
		n++
	}
	return n, nil
}

// anomalyEvent is the notification of an action flagged against its baseline.
func anomalyEvent(decisionID, agent, action string, cost money.Nanos, detail string, when time.Time) notify.Event {
	return notify.Event{ID: notify.TypeActionAnomaly + ":" + decisionID, Type: notify.TypeActionAnomaly, Time: when,
		Anomaly: &notify.Anomaly{Agent: agent, Action: action, DecisionID: decisionID, CostUSD: nanosUSD(cost), Detail: detail}}
}

// freezeEvent is the notification of a new (frozen) or lifted freeze.
func freezeEvent(f decisionapi.Freeze, frozen bool, when time.Time) notify.Event {
	nf := &notify.Freeze{FreezeID: f.FreezeID, Scope: string(f.Scope), ID: f.ScopeID, Frozen: frozen, By: f.CreatedBy,
		Reason: f.Reason, ExpiresAt: f.ExpiresAt}
	id := "freeze:" + f.FreezeID
	if !frozen {
		nf.By, id = f.LiftedBy, "unfreeze:"+f.FreezeID
	}
	return notify.Event{ID: id, Type: notify.TypeFreeze, Time: when, Freeze: nf}
}

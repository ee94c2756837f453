package decide

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/notify"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Notifier stores notification events durably for delivery; *notify.Notifier is one. Emit
// returns once the event is stored (or dropped by a full outbox, which is counted there).
type Notifier interface {
	Emit(ctx context.Context, ev notify.Event) error
}

// emit stores ev before the operation that caused it answers. A failure is logged (rate limited
// with the ledger's warnings) and returned; each caller decides whether the operation can still
// answer (see docs/design.md, "Notifications").
func (e *Engine) emit(ctx context.Context, ev notify.Event) error {
	if e.cfg.Notifier == nil {
		return nil
	}
	if err := e.cfg.Notifier.Emit(ctx, ev); err != nil {
		e.warnLedger("store notification "+ev.Type, err)
		return fmt.Errorf("storing notification %s: %w", ev.Type, err)
	}
	return nil
}

// emitOnce emits ev unless the marker key says it was emitted before: a probe reads the marker,
// the event is stored, and only then is the marker written, so an event whose storing failed is
// emitted again by the next call instead of being lost behind its marker. Two replicas that
// probe at once both store it; the outbox keeps one copy while it waits, and receivers
// deduplicate by event id a copy delivered twice (at least once). emitted reports whether this
// call stored it.
//
// A marker seen or written is remembered in the process (markers outlive their window instance,
// so a remembered one is never stale): a scope that stays above a level costs the booking path
// one ledger read per batch, not a probe write.
func (e *Engine) emitOnce(ctx context.Context, key string, ttl time.Duration, ev notify.Event) (emitted bool, err error) {
	if e.marked.has(key) {
		return false, nil
	}
	existing, created, err := e.ledger.PutIfAbsent(ctx, key, probeSentinel, probeTTL)
	if err != nil {
		return false, fmt.Errorf("reading notification marker: %w", err)
	}
	if !created && !bytes.Equal(existing, probeSentinel) {
		e.marked.add(key)
		return false, nil // notified before
	}
	if err := e.emit(ctx, ev); err != nil {
		return false, err
	}
	for range 200 {
		existing, created, err := e.ledger.PutIfAbsent(ctx, key, []byte{1}, ttl)
		if err != nil {
			// Stored but not marked: a later call stores it again (deduplicated by its id).
			return true, fmt.Errorf("writing notification marker: %w", err)
		}
		if created || !bytes.Equal(existing, probeSentinel) {
			e.marked.add(key)
			return true, nil
		}
		time.Sleep(probeTTL + time.Millisecond) // a probe (ours or another's) is in the way
	}
	return true, nil
}

// maxMarked bounds the markers a process remembers; past it the cache starts again empty.
const maxMarked = 10000

// markedCache is a bounded set of notification markers known to be in the ledger.
type markedCache struct {
	mu   sync.Mutex
	keys map[string]struct{}
}

func (c *markedCache) has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.keys[key]
	return ok
}

func (c *markedCache) add(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil || len(c.keys) >= maxMarked {
		c.keys = make(map[string]struct{})
	}
	c.keys[key] = struct{}{}
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
		aps, err := e.ledger.ListApprovals(ctx, decisionapi.ApprovalExpired, e.expiredCursor, 100, e.now())
		if err != nil {
			return n, err
		}
		for _, ap := range aps {
			emitted, err := e.emitOnce(ctx, "notify/approval-expired/"+ap.ID, expiredNoticeTTL,
				approvalEvent(notify.TypeApprovalExpired, ap, ap.ExpiresAt))
			if emitted {
				n++
			}
			if err != nil {
				return n, err // the cursor stays: the next call tries again
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

// runLevelNoticeTTL keeps a run's level-crossing marker: runs are many and short-lived, so their
// markers do not stay as long as the other scopes'.
const runLevelNoticeTTL = 30 * 24 * time.Hour

// NotifyBudgetLevels emits budget.level for every scope of budgets above normal whose level was
// not notified yet in its window instance: once per (scope, window instance, level), across
// replicas (a marker in the ledger), so a scope that climbs normal → throttle → exhausted is
// notified twice and one that hovers around a threshold once. A crossing caused by booked spend
// is notified when it is booked (NotifyBooked); the receiver also calls it with the budget state
// it publishes, which notifies within publish_interval a crossing no booking caused (a
// reservation's) and one whose booking-time notification failed.
func (e *Engine) NotifyBudgetLevels(ctx context.Context, budgets decisionapi.BudgetsResponse) (int, error) {
	if e.cfg.Notifier == nil {
		return 0, nil
	}
	n := 0
	var errs error
	for _, s := range budgets.Scopes {
		if s.Level == decisionapi.LevelNormal || s.Level == "" {
			continue
		}
		start := ""
		if !s.WindowStart.IsZero() {
			start = strconv.FormatInt(s.WindowStart.Unix(), 10)
		}
		key := fmt.Sprintf("notify/budget-level/%s/%d:%s/%s/%s/%s", s.Scope, len(s.ID), s.ID, s.Window, start, s.Level)
		ttl := levelNoticeTTL
		if s.Scope == policy.ScopeRun.String() {
			ttl = runLevelNoticeTTL
		}
		emitted, err := e.emitOnce(ctx, key, ttl, notify.Event{ID: "budget.level:" + key, Type: notify.TypeBudgetLevel, Budget: &notify.Budget{
			Scope: s.Scope, ID: s.ID, Window: s.Window, Level: string(s.Level),
			SpentUSD:    strconv.FormatFloat(s.SpentUSD, 'f', -1, 64),
			ReservedUSD: strconv.FormatFloat(s.ReservedUSD, 'f', -1, 64),
			LimitUSD:    strconv.FormatFloat(s.LimitUSD, 'f', -1, 64),
			WindowStart: s.WindowStart,
		}})
		if emitted {
			n++
		}
		// One scope's failure does not hold back the others' events.
		errs = errors.Join(errs, err)
	}
	return n, errs
}

// NotifyBooked notifies the budget levels that the spends just booked may have crossed: it reads
// the state of every budgeted scope the spends touched (their agents, teams and runs, and the
// fleet) in one ledger read and emits budget.level like NotifyBudgetLevels. The costledger
// exporter runs it (through the budgetledger extension's OnBooked hooks) before it acknowledges
// the spans, so an error must fail the export: the spans are sent again, booking them is
// idempotent, and the retry emits the events this call could not store.
func (e *Engine) NotifyBooked(ctx context.Context, spends []ledger.Spend) (int, error) {
	if e.cfg.Notifier == nil || len(spends) == 0 {
		return 0, nil
	}
	p := e.cfg.Policy()
	type item struct {
		scope policy.Scope
		id    string
		b     policy.Budget
	}
	var items []item
	seen := map[[2]string]bool{}
	add := func(s policy.Scope, id string) {
		k := [2]string{s.String(), id}
		if seen[k] || (s != policy.ScopeFleet && id == "") {
			return
		}
		seen[k] = true
		if b, ok := p.Budget(s, id); ok {
			items = append(items, item{s, id, b})
		}
	}
	add(policy.ScopeFleet, "")
	for _, sp := range spends {
		add(policy.ScopeAgent, sp.Agent)
		add(policy.ScopeTeam, sp.Team)
		add(policy.ScopeRun, sp.Run())
	}
	if len(items) == 0 {
		return 0, nil
	}
	queries := make([]ledger.StateQuery, len(items))
	for i, it := range items {
		queries[i] = ledger.StateQuery{Scope: ledgerScope(it.scope), ID: ledgerID(it.scope, it.id), Window: ledgerWindow(it.b.Window)}
	}
	res, err := e.ledger.Read(ctx, ledger.ReadRequest{States: queries, Time: e.now()})
	if err != nil {
		return 0, fmt.Errorf("reading the budget state of booked spend: %w", err)
	}
	var budgets decisionapi.BudgetsResponse
	for i, it := range items {
		budgets.Scopes = append(budgets.Scopes, decisionapi.ScopeBudget{Scope: it.scope.String(), BudgetStatus: status(p, it.scope, res.States[i], it.b)})
	}
	return e.NotifyBudgetLevels(ctx, budgets)
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

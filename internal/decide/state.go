package decide

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// scopeState is one budgeted scope of a request as the ledger reported it.
type scopeState struct {
	configured bool
	budget     policy.Budget
	state      ledger.State
}

// requestState is what a decision reads from the ledger.
type requestState struct {
	policy policy.State
	scopes [policy.NumScopes]scopeState
}

// scopeID returns the request's id for a scope.
func scopeID(req *policy.Request, s policy.Scope) string {
	switch s {
	case policy.ScopeTeam:
		return req.Team
	case policy.ScopeAgent:
		return req.AgentID
	case policy.ScopeRun:
		return req.RunID
	}
	return ""
}

// gather reads, in one ledger read, the usage of every scope the policy budgets for the request
// (in the window it names) and the agent's last anomalies.
func (e *Engine) gather(ctx context.Context, p *policy.Policy, req *policy.Request, now time.Time) (requestState, error) {
	var (
		rs      requestState
		scopes  [policy.NumScopes]policy.Scope
		queries = make([]ledger.StateQuery, 0, policy.NumScopes)
	)
	for s := range policy.Scope(policy.NumScopes) {
		id := scopeID(req, s)
		b, ok := p.Budget(s, id)
		if !ok {
			continue
		}
		rs.scopes[s] = scopeState{configured: true, budget: b}
		scopes[len(queries)] = s
		queries = append(queries, ledger.StateQuery{Scope: ledgerScope(s), ID: ledgerID(s, id), Window: ledgerWindow(b.Window)})
	}
	res, err := e.ledger.Read(ctx, ledger.ReadRequest{States: queries, Agent: req.AgentID, Time: now})
	if err != nil {
		return rs, fmt.Errorf("reading the budget state: %w", err)
	}
	for i, st := range res.States {
		s := scopes[i]
		rs.scopes[s].state = st
		rs.policy.Usage[s] = policy.Usage{Spent: st.Spent, Reserved: st.Reserved}
	}
	rs.policy.LastCallAnomaly, rs.policy.LastActionAnomaly = res.LastCallAnomaly, res.LastActionAnomaly
	return rs, nil
}

// applyUsage updates the gathered states with a reservation's usage.
func (rs *requestState) applyUsage(usage []ledger.Usage) {
	for _, u := range usage {
		for s := range rs.scopes {
			sc := &rs.scopes[s]
			if sc.configured && sc.state.Scope == u.Scope && sc.state.ID == u.ID && sc.state.Window == u.Window {
				sc.state.Spent, sc.state.Reserved = u.Spent, u.Reserved
			}
		}
	}
}

// budgetMap is the response's budget: each configured scope by name.
func (rs *requestState) budgetMap(p *policy.Policy) map[string]decisionapi.BudgetStatus {
	var m map[string]decisionapi.BudgetStatus
	for s := range policy.Scope(policy.NumScopes) {
		sc := rs.scopes[s]
		if !sc.configured {
			continue
		}
		if m == nil {
			m = make(map[string]decisionapi.BudgetStatus, policy.NumScopes)
		}
		m[s.String()] = status(p, s, sc.state, sc.budget.Limit)
	}
	return m
}

// status is one scope's budget status for display: a fleet is normal, throttle or pause, every
// other scope normal or exhausted (nothing more fits).
func status(p *policy.Policy, s policy.Scope, st ledger.State, limit money.Nanos) decisionapi.BudgetStatus {
	used := st.Spent + st.Reserved
	level := decisionapi.LevelNormal
	if s == policy.ScopeFleet {
		level = fleetLevelName(p.FleetLevel(policy.Usage{Spent: st.Spent, Reserved: st.Reserved}))
	} else if used >= limit {
		level = decisionapi.LevelExhausted
	}
	util := 1.0
	if limit > 0 {
		util = float64(used) / float64(limit)
	}
	out := decisionapi.BudgetStatus{
		Window:      string(st.Window),
		SpentUSD:    usd(st.Spent),
		ReservedUSD: usd(st.Reserved),
		LimitUSD:    usd(limit),
		Utilization: util,
		Level:       level,
		ForecastUSD: usd(st.Forecast()),
		WindowStart: st.Start,
		WindowEnd:   st.End,
	}
	if s != policy.ScopeFleet {
		out.ID = st.ID
	}
	return out
}

func fleetLevelName(l policy.FleetLevel) decisionapi.BudgetLevel {
	switch l {
	case policy.FleetThrottled:
		return decisionapi.LevelThrottle
	case policy.FleetPaused:
		return decisionapi.LevelPause
	}
	return decisionapi.LevelNormal
}

// Budgets lists every scope the policy budgets with its state in the current window: the fleet,
// each team and agent with a budget of its own, and each team and agent under default_team or
// default_agent that has spend or reservations now. Runs are left out (ask a decision for one).
func (e *Engine) Budgets(ctx context.Context) (decisionapi.BudgetsResponse, error) {
	p := e.cfg.Policy()
	now := e.now()
	snap, err := e.ledger.Snapshot(ctx, now)
	if err != nil {
		e.warnLedger("snapshot", err)
		return decisionapi.BudgetsResponse{}, e.unavailableError(err)
	}
	type key struct {
		scope  ledger.Scope
		id     string
		window ledger.Window
	}
	active := make(map[key]ledger.State, len(snap.States))
	activeIDs := map[ledger.Scope][]string{}
	for _, st := range snap.States {
		k := key{st.Scope, st.ID, st.Window}
		if _, seen := active[k]; !seen && !slices.Contains(activeIDs[st.Scope], st.ID) {
			activeIDs[st.Scope] = append(activeIDs[st.Scope], st.ID)
		}
		active[k] = st
	}
	stateOf := func(s ledger.Scope, id string, w ledger.Window) ledger.State {
		if st, ok := active[key{s, id, w}]; ok {
			return st
		}
		start, end := ledger.WindowBounds(w, now, e.loc)
		return ledger.State{Scope: s, ID: id, Window: w, Start: start, End: end, At: now}
	}
	resp := decisionapi.BudgetsResponse{PolicyVersion: p.Version(), Fleet: decisionapi.FleetStatus{Name: decisionapi.LevelNormal}}
	if b, ok := p.Budget(policy.ScopeFleet, ""); ok {
		st := stateOf(ledger.ScopeFleet, ledger.FleetID, ledgerWindow(b.Window))
		level := p.FleetLevel(policy.Usage{Spent: st.Spent, Reserved: st.Reserved})
		resp.Fleet = decisionapi.FleetStatus{Level: int(level), Name: fleetLevelName(level)}
		resp.Scopes = append(resp.Scopes, decisionapi.ScopeBudget{Scope: "fleet", BudgetStatus: status(p, policy.ScopeFleet, st, b.Limit)})
	}
	for _, s := range [...]policy.Scope{policy.ScopeTeam, policy.ScopeAgent} {
		ids := p.BudgetIDs(s)
		// An id no policy names has only the default budget, if there is one.
		if _, ok := p.Budget(s, "\x00default"); ok {
			for _, id := range activeIDs[ledgerScope(s)] {
				if !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
			slices.Sort(ids)
		}
		for _, id := range ids {
			b, ok := p.Budget(s, id)
			if !ok {
				continue
			}
			st := stateOf(ledgerScope(s), id, ledgerWindow(b.Window))
			resp.Scopes = append(resp.Scopes, decisionapi.ScopeBudget{Scope: s.String(), BudgetStatus: status(p, s, st, b.Limit)})
		}
	}
	return resp, nil
}

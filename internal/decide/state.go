package decide

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/ledger"
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
	// freezes are the freezes active at the decision (read with the states).
	freezes []ledger.Freeze
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
	res, err := e.ledger.Read(ctx, ledger.ReadRequest{States: queries, Agent: req.AgentID, Freezes: true, Time: now})
	if err != nil {
		return rs, fmt.Errorf("reading the budget state: %w", err)
	}
	rs.freezes = res.Freezes
	for i, st := range res.States {
		s := scopes[i]
		rs.scopes[s].state = st
		rs.policy.Usage[s] = policy.Usage{Spent: st.Spent, Reserved: st.Reserved}
	}
	rs.policy.LastCallAnomaly, rs.policy.LastActionAnomaly = res.LastCallAnomaly, res.LastActionAnomaly
	rs.policy.LastRunAnomaly = res.LastRunAnomaly
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
		m[s.String()] = status(p, s, sc.state, sc.budget)
	}
	return m
}

// status is one scope's budget status for display: a fleet is normal, throttle or pause, every
// other scope normal or exhausted (nothing more fits); a scope otherwise normal is warn from its
// warn_at.
func status(p *policy.Policy, s policy.Scope, st ledger.State, b policy.Budget) decisionapi.BudgetStatus {
	limit := b.Limit
	used := st.Spent + st.Reserved
	level := decisionapi.LevelNormal
	if s == policy.ScopeFleet {
		level = fleetLevelName(p.FleetLevel(policy.Usage{Spent: st.Spent, Reserved: st.Reserved}))
	} else if used >= limit {
		level = decisionapi.LevelExhausted
	}
	if level == decisionapi.LevelNormal && b.Warned(used) {
		level = decisionapi.LevelWarn
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

// budgetItem is one budget of the budgets listing.
type budgetItem struct {
	scope policy.Scope
	id    string
	b     policy.Budget
}

// scopeRank orders the listing: fleet, teams, agents.
func scopeRank(name string) int {
	switch name {
	case "fleet":
		return 0
	case "team":
		return 1
	}
	return 2
}

// before reports whether the cursor is before the item, so that the item belongs to the page.
func (c budgetCursor) before(it budgetItem) bool {
	if c.scope == "" {
		return true
	}
	if r, rc := scopeRank(it.scope.String()), scopeRank(c.scope); r != rc {
		return r > rc
	}
	return it.id > c.id
}

// Budgets lists one page of the budgets the caller may see with their state in the current
// window, fleet first, then teams and agents by id: each team and agent with a budget of its own,
// and each team and agent under default_team or default_agent that has spend or reservations now.
// Runs are left out (ask a decision for one). An agent's token sees the fleet and its own agent
// budget only: a team is named by the request, not bound to the token, so it is not the agent's
// to read. NextCursor continues the list.
func (e *Engine) Budgets(ctx context.Context, c Caller, page decisionapi.ListParams) (decisionapi.BudgetsResponse, error) {
	after, err := parseBudgetCursor(page.Cursor)
	if err != nil {
		return decisionapi.BudgetsResponse{}, err
	}
	p := e.cfg.Policy()
	now := e.now()
	limit := page.PageSize()
	var items []budgetItem
	fleet, hasFleet := p.Budget(policy.ScopeFleet, "")
	if it := (budgetItem{policy.ScopeFleet, "", fleet}); hasFleet && after.before(it) {
		items = append(items, it)
	}
	if c.Role == access.RoleAgent {
		if b, ok := p.Budget(policy.ScopeAgent, c.Subject); ok && after.before(budgetItem{scope: policy.ScopeAgent, id: c.Subject}) {
			items = append(items, budgetItem{policy.ScopeAgent, c.Subject, b})
		}
	} else {
		for _, s := range [...]policy.Scope{policy.ScopeTeam, policy.ScopeAgent} {
			need := limit + 1 - len(items) // one more than the page tells whether another follows
			if need <= 0 || scopeRank(after.scope) > scopeRank(s.String()) && after.scope != "" {
				continue
			}
			from := ""
			if after.scope == s.String() {
				from = after.id
			}
			ids, err := e.budgetIDs(ctx, p, s, from, need, now)
			if err != nil {
				e.warnLedger("active scopes", err)
				return decisionapi.BudgetsResponse{}, e.unavailableError(err)
			}
			for _, id := range ids {
				if b, ok := p.Budget(s, id); ok {
					items = append(items, budgetItem{s, id, b})
				}
			}
		}
	}
	resp := decisionapi.BudgetsResponse{PolicyVersion: p.Version(), Fleet: decisionapi.FleetStatus{Name: decisionapi.LevelNormal}}
	if len(items) > limit {
		items = items[:limit]
		last := items[limit-1]
		resp.NextCursor = budgetCursor{scope: last.scope.String(), id: last.id}.String()
	}
	queries := make([]ledger.StateQuery, 0, len(items)+1)
	for _, it := range items {
		queries = append(queries, ledger.StateQuery{Scope: ledgerScope(it.scope), ID: ledgerID(it.scope, it.id), Window: ledgerWindow(it.b.Window)})
	}
	if hasFleet {
		queries = append(queries, ledger.StateQuery{Scope: ledger.ScopeFleet, ID: ledger.FleetID, Window: ledgerWindow(fleet.Window)})
	}
	if len(queries) == 0 {
		return resp, nil
	}
	res, err := e.ledger.Read(ctx, ledger.ReadRequest{States: queries, Time: now})
	if err != nil {
		e.warnLedger("read budgets", err)
		return decisionapi.BudgetsResponse{}, e.unavailableError(err)
	}
	if hasFleet {
		st := res.States[len(res.States)-1]
		level := p.FleetLevel(policy.Usage{Spent: st.Spent, Reserved: st.Reserved})
		resp.Fleet = decisionapi.FleetStatus{Level: int(level), Name: fleetLevelName(level)}
	}
	for i, it := range items {
		resp.Scopes = append(resp.Scopes, decisionapi.ScopeBudget{Scope: it.scope.String(), BudgetStatus: status(p, it.scope, res.States[i], it.b)})
	}
	return resp, nil
}

// budgetIDs returns, sorted, up to limit ids of scope after from that the listing shows: the ids
// the policy budgets by name, and when it has a default budget for the scope, every id with spend
// or reservations now.
func (e *Engine) budgetIDs(ctx context.Context, p *policy.Policy, s policy.Scope, from string, limit int, now time.Time) ([]string, error) {
	var ids []string
	for _, id := range p.BudgetIDs(s) {
		if id > from {
			ids = append(ids, id)
		}
	}
	// An id no policy names has only the default budget, if there is one.
	if _, ok := p.Budget(s, "\x00default"); ok {
		active, err := e.ledger.ActiveIDs(ctx, ledgerScope(s), from, limit, now)
		if err != nil {
			return nil, err
		}
		ids = append(ids, active...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > limit {
		ids = ids[:limit]
	}
	return ids, nil
}

// AllBudgets follows the budgets listing (as an open caller) page by page until it ends or holds
// at least max scopes; truncated reports the latter. The metrics pipeline publishes it.
func (e *Engine) AllBudgets(ctx context.Context, max int) (all decisionapi.BudgetsResponse, truncated bool, err error) {
	page := decisionapi.ListParams{Limit: decisionapi.MaxListLimit}
	for {
		resp, err := e.Budgets(ctx, Caller{Role: access.RoleOpen}, page)
		if err != nil {
			return all, false, err
		}
		scopes := append(all.Scopes, resp.Scopes...)
		all, all.Scopes = resp, scopes
		if resp.NextCursor == "" {
			return all, false, nil
		}
		if len(all.Scopes) >= max {
			return all, true, nil
		}
		page.Cursor = resp.NextCursor
	}
}

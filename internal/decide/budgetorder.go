package decide

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strconv"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// cursorBudgetsByUtilization is the kind of the utilization-ordered budgets listing's cursors, so
// that a cursor of one order is refused by the other.
const cursorBudgetsByUtilization = "u"

// MaxOrderedBudgets bounds the scopes GET /v1/budgets?order=utilization sorts: it reads every
// scope's state to order them, so a fleet with more is asked to page in the default order.
const MaxOrderedBudgets = 10000

// utilCursor is a place in the utilization-ordered listing: after the scope with this
// utilization, scope and id (utilization descending, then scope rank and id ascending).
type utilCursor struct {
	util  float64
	scope string
	id    string
}

func (c utilCursor) String() string {
	return encodeCursor(cursorBudgetsByUtilization, strconv.FormatFloat(c.util, 'g', -1, 64), c.scope, c.id)
}

func parseUtilCursor(s string) (utilCursor, bool, error) {
	if s == "" {
		return utilCursor{}, false, nil
	}
	parts, ok := decodeCursor(s, cursorBudgetsByUtilization, 3)
	if !ok {
		return utilCursor{}, false, badCursor()
	}
	u, err := strconv.ParseFloat(parts[0], 64)
	if err != nil || math.IsNaN(u) || math.IsInf(u, 0) || u < 0 || scopeRank(parts[1]) == 2 && parts[1] != "agent" {
		return utilCursor{}, false, badCursor()
	}
	return utilCursor{util: u, scope: parts[1], id: parts[2]}, true, nil
}

// compareByUtilization orders scopes by utilization descending, then scope rank and id.
func compareByUtilization(a, b decisionapi.ScopeBudget) int {
	if c := cmp.Compare(b.Utilization, a.Utilization); c != 0 {
		return c
	}
	if c := cmp.Compare(scopeRank(a.Scope), scopeRank(b.Scope)); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// BudgetsByUtilization lists one page of the budgets the caller may see, as Budgets does, ordered
// by utilization (highest first; ties by scope, fleet first, then id). It reads every scope's
// state and sorts them, so the order is that of the moment each page is asked for: a scope whose
// utilization changes between two pages may move across the page boundary (be seen twice or not
// at all); the cursor holds the last scope's utilization, scope and id. More than
// MaxOrderedBudgets scopes is a 400 naming order.
func (e *Engine) BudgetsByUtilization(ctx context.Context, c Caller, page decisionapi.ListParams) (decisionapi.BudgetsResponse, error) {
	after, hasAfter, err := parseUtilCursor(page.Cursor)
	if err != nil {
		return decisionapi.BudgetsResponse{}, err
	}
	var all decisionapi.BudgetsResponse
	sub := decisionapi.ListParams{Limit: decisionapi.MaxListLimit}
	for first := true; ; first = false {
		resp, err := e.Budgets(ctx, c, sub)
		if err != nil {
			return decisionapi.BudgetsResponse{}, err
		}
		if first {
			all.PolicyVersion, all.Fleet = resp.PolicyVersion, resp.Fleet
		}
		all.Scopes = append(all.Scopes, resp.Scopes...)
		if len(all.Scopes) > MaxOrderedBudgets {
			return decisionapi.BudgetsResponse{}, (&decisionapi.FieldError{Field: "order",
				Message: "utilization orders at most " + strconv.Itoa(MaxOrderedBudgets) + " scopes; list them without order and sort them yourself"}).APIError()
		}
		if resp.NextCursor == "" {
			break
		}
		sub.Cursor = resp.NextCursor
	}
	slices.SortFunc(all.Scopes, compareByUtilization)
	start := 0
	if hasAfter {
		mark := decisionapi.ScopeBudget{Scope: after.scope, BudgetStatus: decisionapi.BudgetStatus{ID: after.id, Utilization: after.util}}
		start, _ = slices.BinarySearchFunc(all.Scopes, mark, compareByUtilization)
		if start < len(all.Scopes) && compareByUtilization(all.Scopes[start], mark) == 0 {
			start++
		}
	}
	rest := all.Scopes[start:]
	limit := page.PageSize()
	out := all
	out.Scopes = rest
	if len(rest) > limit {
		out.Scopes = rest[:limit]
		last := out.Scopes[limit-1]
		out.NextCursor = utilCursor{util: last.Utilization, scope: last.Scope, id: last.ID}.String()
	}
	return out, nil
}

package budgetreceiver

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// TestBudgetsOrderedByUtilization: GET /v1/budgets?order=utilization pages every scope highest
// utilization first, the cursor carrying the order; a bad order is a 400 naming it, and a cursor
// of the default order is refused in this one.
func TestBudgetsOrderedByUtilization(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	for agent, usd := range map[string]float64{"drafting-agent": 4, "writer-agent": 2, "research-agent": 1} {
		e.book(ledger.Spend{Agent: agent, Team: "growth", Model: "gpt-4o", Cost: money.Nanos(usd * float64(money.NanosPerUSD))})
	}
	list := func(q url.Values) (int, decisionapi.BudgetsResponse, []byte) {
		status, body := e.do(http.MethodGet, decisionapi.PathBudgets+"?"+q.Encode(), reviewerToken, nil)
		var out decisionapi.BudgetsResponse
		if status == http.StatusOK {
			mustUnmarshal(t, body, &out)
		}
		return status, out, body
	}
	var got []string
	var utils []float64
	q := url.Values{"order": {"utilization"}, "limit": {"2"}}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("the ordered listing does not end")
		}
		status, out, body := list(q)
		if status != http.StatusOK || len(out.Scopes) > 2 {
			t.Fatalf("page %d: %d %s", pages, status, body)
		}
		for _, s := range out.Scopes {
			got = append(got, s.Scope+":"+s.ID)
			utils = append(utils, s.Utilization)
		}
		if out.NextCursor == "" {
			break
		}
		q.Set("cursor", out.NextCursor)
	}
	// drafting 4/5, writer 2/5, research 1/10, growth 7/50, fleet 7/100.
	want := []string{"agent:drafting-agent", "agent:writer-agent", "team:growth", "agent:research-agent", "fleet:"}
	if len(got) != len(want) {
		t.Fatalf("ordered listing %v (utilizations %v); want %v", got, utils, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ordered listing %v (utilizations %v); want %v", got, utils, want)
		}
	}

	if status, _, body := list(url.Values{"order": {"spend"}}); status != http.StatusBadRequest || apiError(t, body).Field != "order" {
		t.Errorf("order=spend: %d %s; want 400 naming order", status, body)
	}
	_, first, _ := list(url.Values{"limit": {"1"}})
	if first.NextCursor == "" {
		t.Fatal("the default order's first page has no cursor")
	}
	if status, _, body := list(url.Values{"order": {"utilization"}, "cursor": {first.NextCursor}}); status != http.StatusBadRequest || apiError(t, body).Field != "cursor" {
		t.Errorf("a scope-order cursor with order=utilization: %d %s; want 400 naming cursor", status, body)
	}
	// An agent sees only the fleet and itself, ordered too.
	status, body := e.do(http.MethodGet, decisionapi.PathBudgets+"?order=utilization", researchToken, nil)
	var mine decisionapi.BudgetsResponse
	mustUnmarshal(t, body, &mine)
	if status != http.StatusOK || len(mine.Scopes) != 2 || mine.Scopes[0].ID != "research-agent" || mine.Scopes[1].Scope != "fleet" {
		t.Errorf("agent's ordered listing: %d %s", status, body)
	}
}

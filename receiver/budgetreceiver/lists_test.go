package budgetreceiver

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/costmetrics"
	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// TestApprovalPendingCap: a flood of require_approval requests from one agent creates exactly
// approvals.max_pending_per_agent pending approvals; the rest are denied with the pending-cap rule
// and a reason naming the key; another agent still gets its approval; answering one makes room.
func TestApprovalPendingCap(t *testing.T) {
	e := startEnv(t, testPolicy+"approvals:\n  max_pending_per_agent: 3\n", withAccess)
	const flood = 24
	answers := make([]decisionapi.DecisionResponse, flood)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { answers[i] = e.decide(researchToken, research("job.batch", 2)) })
	}
	wg.Wait()
	var pending []string
	denied := 0
	for _, d := range answers {
		switch {
		case d.Decision == decisionapi.DecisionRequireApproval && d.ApprovalID != "":
			pending = append(pending, d.ApprovalID)
		case d.Decision == decisionapi.DecisionDeny && d.RuleID == decide.RuleApprovalPendingCap &&
			strings.Contains(d.Reason, "max_pending_per_agent") && d.ApprovalID == "" && d.LeaseID == "":
			denied++
		default:
			t.Errorf("flood answer %+v", d)
		}
	}
	if len(pending) != 3 || denied != flood-3 {
		t.Fatalf("%d approvals and %d pending-cap denies of %d, want 3 and %d", len(pending), denied, flood, flood-3)
	}
	if list := e.approvals(t, "state=pending"); len(list) != 3 {
		t.Errorf("the review queue holds %d, want 3", len(list))
	}
	other := decisionapi.DecisionRequest{AgentID: "drafting-agent", Action: "job.batch", EstimatedCostUSD: 1}
	if d := e.decide(draftingToken, other); d.Decision != decisionapi.DecisionRequireApproval || d.ApprovalID == "" {
		t.Errorf("another agent during the flood: %+v, want require_approval", d)
	}
	// A deny frees a place for one more, no more.
	if status, body := e.do(http.MethodPost, "/v1/approvals/"+pending[0]+"/deny", reviewerToken, decisionapi.DenyRequest{Reason: "no"}); status != http.StatusOK {
		t.Fatalf("deny: %d %s", status, body)
	}
	if d := e.decide(researchToken, research("job.batch", 2)); d.Decision != decisionapi.DecisionRequireApproval {
		t.Errorf("after a deny: %+v, want require_approval", d)
	}
	if d := e.decide(researchToken, research("job.batch", 2)); d.RuleID != decide.RuleApprovalPendingCap {
		t.Errorf("past the cap again: %+v, want a pending-cap deny", d)
	}
	e.waitMetric(costmetrics.NameDecisions, func(v float64) bool { return v >= flood-3+1 }, "decision", "deny", "rule", decide.RuleApprovalPendingCap)
}

// approvals follows GET /v1/approvals from the first page to the last (as the reviewer) and
// returns every approval; query holds the other parameters.
func (e *env) approvals(t *testing.T, query string) []decisionapi.Approval {
	t.Helper()
	var all []decisionapi.Approval
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 2000 {
			t.Fatal("the approvals list does not end")
		}
		q, _ := url.ParseQuery(query)
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		status, body := e.do(http.MethodGet, decisionapi.PathApprovals+"?"+q.Encode(), reviewerToken, nil)
		if status != http.StatusOK {
			t.Fatalf("approvals page %d: %d %s", pages, status, body)
		}
		var list decisionapi.ApprovalList
		mustUnmarshal(t, body, &list)
		all = append(all, list.Approvals...)
		if list.NextCursor == "" {
			return all
		}
		cursor = list.NextCursor
	}
}

// TestApprovalListPaging: more than a thousand approvals page through GET /v1/approvals each
// exactly once, oldest first, in default and maximum pages and filtered by state; bad paging
// parameters are 400s naming them.
func TestApprovalListPaging(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	const n = 1105
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				created := t0.Add(time.Duration(i/100) * time.Millisecond) // groups share a time
				_, err := e.ledger.CreateApproval(context.Background(), ledger.Approval{ID: fmt.Sprintf("apr_%04d", i),
					Agent: fmt.Sprintf("agent-%d", i%50), Action: "job.batch", CreatedAt: created, ExpiresAt: created.Add(time.Hour)}, 0)
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := 0; i < n; i += 5 {
		if status, body := e.do(http.MethodPost, fmt.Sprintf("/v1/approvals/apr_%04d/approve", i), reviewerToken, nil); status != http.StatusOK {
			t.Fatalf("approve: %d %s", status, body)
		}
	}
	for _, query := range []string{"", "limit=1000", "limit=7&state=pending", "state=approved&limit=1000"} {
		got := e.approvals(t, query)
		seen := map[string]bool{}
		for i, ap := range got {
			if seen[ap.ApprovalID] {
				t.Fatalf("%q: %s listed twice", query, ap.ApprovalID)
			}
			seen[ap.ApprovalID] = true
			if i > 0 && got[i-1].CreatedAt.After(ap.CreatedAt) {
				t.Fatalf("%q: %s listed after the younger %s", query, ap.ApprovalID, got[i-1].ApprovalID)
			}
		}
		want := n
		switch {
		case strings.Contains(query, "pending"):
			want = n - (n+4)/5
		case strings.Contains(query, "approved"):
			want = (n + 4) / 5
		}
		if len(seen) != want {
			t.Errorf("%q: listed %d approvals, want %d", query, len(seen), want)
		}
	}
	// A page holds at most limit and says where the next starts.
	status, body := e.do(http.MethodGet, decisionapi.PathApprovals+"?limit=1000", reviewerToken, nil)
	var first decisionapi.ApprovalList
	mustUnmarshal(t, body, &first)
	if status != http.StatusOK || len(first.Approvals) != 1000 || first.NextCursor == "" {
		t.Fatalf("first page of 1000: %d, %d approvals, next %q", status, len(first.Approvals), first.NextCursor)
	}
	budgetsPage := e.budgetsPage(t, reviewerToken, "limit=1")
	for _, tc := range []struct{ query, field string }{
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=x", "limit"},
		{"cursor=not-a-cursor", "cursor"},
		{"cursor=" + budgetsPage.NextCursor, "cursor"}, // another list's cursor
		{"cursor=", "cursor"},
	} {
		status, body := e.do(http.MethodGet, decisionapi.PathApprovals+"?"+tc.query, reviewerToken, nil)
		if ae := apiError(t, body); status != http.StatusBadRequest || ae.Field != tc.field {
			t.Errorf("%q: %d %s; want 400 naming %s", tc.query, status, body, tc.field)
		}
	}
}

func (e *env) budgetsPage(t *testing.T, token, query string) decisionapi.BudgetsResponse {
	t.Helper()
	status, body := e.do(http.MethodGet, decisionapi.PathBudgets+"?"+query, token, nil)
	if status != http.StatusOK {
		t.Fatalf("budgets %q: %d %s", query, status, body)
	}
	var resp decisionapi.BudgetsResponse
	mustUnmarshal(t, body, &resp)
	return resp
}

// allBudgets follows GET /v1/budgets to the last page and returns each scope as "scope/id".
func (e *env) allBudgets(t *testing.T, token string, limit int) []string {
	t.Helper()
	var all []string
	q := url.Values{"limit": {fmt.Sprint(limit)}}
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("the budgets list does not end")
		}
		resp := e.budgetsPage(t, token, q.Encode())
		if len(resp.Scopes) > limit {
			t.Fatalf("a page of %d scopes, limit %d", len(resp.Scopes), limit)
		}
		for _, sc := range resp.Scopes {
			all = append(all, sc.Scope+"/"+sc.ID)
		}
		if resp.NextCursor == "" {
			return all
		}
		q.Set("cursor", resp.NextCursor)
	}
}

// TestBudgetsPaging: every budgeted scope pages through GET /v1/budgets exactly once, fleet, then
// teams and agents by id, however small the page; an agent's token sees the fleet and its own
// budget only; bad paging parameters are 400s naming them.
func TestBudgetsPaging(t *testing.T) {
	policy := strings.Replace(testPolicy, "  runs:", "  default_team: {limit_usd: 5, window: month}\n  runs:", 1)
	e := startEnv(t, policy, withAccess)
	var spends []ledger.Spend
	want := []string{"fleet/"}
	var teams, agents []string
	for i := range 130 {
		agent, team := fmt.Sprintf("agent-%03d", i), fmt.Sprintf("team-%02d", i%12)
		spends = append(spends, ledger.Spend{TraceID: strings.Repeat("cd", 16), SpanID: fmt.Sprintf("%016x", i+1), Time: time.Now(),
			Agent: agent, Team: team, Cost: usd(t, "0.01")})
		agents = append(agents, "agent/"+agent)
		if i < 12 {
			teams = append(teams, "team/"+team)
		}
	}
	if _, err := e.ledger.Book(context.Background(), spends); err != nil {
		t.Fatal(err)
	}
	// growth and research-agent have budgets of their own without spend.
	want = append(want, "team/growth")
	want = append(want, teams...)
	want = append(want, agents...)
	want = append(want, "agent/research-agent")
	for _, limit := range []int{1, 7, 100, 1000} {
		if got := e.allBudgets(t, reviewerToken, limit); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("budgets by pages of %d:\n got %v\nwant %v", limit, got, want)
		}
	}
	// An agent sees the fleet and itself: no other agent, no team.
	if got := e.allBudgets(t, researchToken, 1); fmt.Sprint(got) != "[fleet/ agent/research-agent]" {
		t.Errorf("research-agent's budgets: %v", got)
	}
	if got := e.allBudgets(t, draftingToken, 100); fmt.Sprint(got) != "[fleet/ agent/drafting-agent]" {
		t.Errorf("drafting-agent's budgets (default_agent): %v", got)
	}
	for _, tc := range []struct{ query, field string }{
		{"limit=-1", "limit"},
		{"limit=5000", "limit"},
		{"cursor=%21%21", "cursor"},
		{"cursor=YnxydW58eA", "cursor"}, // a well-formed cursor naming the run scope
	} {
		status, body := e.do(http.MethodGet, decisionapi.PathBudgets+"?"+tc.query, reviewerToken, nil)
		if status != http.StatusBadRequest || apiError(t, body).Field != tc.field {
			t.Errorf("%q: %d %.200s; want 400 naming %s", tc.query, status, body, tc.field)
		}
	}
}

// TestExplainOnlyOwnSubject: an agent's token explains its own requests only; a reviewer
// explains any agent's.
func TestExplainOnlyOwnSubject(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	other := decisionapi.DecisionRequest{AgentID: "drafting-agent", Action: "job.research", EstimatedCostUSD: 1}
	status, body := e.do(http.MethodPost, decisionapi.PathExplain, researchToken, other)
	if status != http.StatusForbidden || apiError(t, body).Code != decisionapi.CodeForbidden || strings.Contains(string(body), "budget_layers") {
		t.Errorf("research-agent explains drafting-agent: %d %s; want 403", status, body)
	}
	if status, body := e.do(http.MethodPost, decisionapi.PathExplain, draftingToken, other); status != http.StatusOK {
		t.Errorf("drafting-agent explains itself: %d %s", status, body)
	}
	if status, body := e.do(http.MethodPost, decisionapi.PathExplain, reviewerToken, other); status != http.StatusOK {
		t.Errorf("the reviewer explains drafting-agent: %d %s", status, body)
	}
}

// TestApproveCostCapOnlyLowers: a reviewer's cost_cap_usd above the approval's estimate is a 400
// naming cost_cap_usd and leaves the approval pending; a cap at the estimate is accepted.
func TestApproveCostCapOnlyLowers(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	d := e.decide(researchToken, research("job.batch", 2))
	if d.ApprovalID == "" {
		t.Fatalf("decision %+v, want an approval", d)
	}
	path := "/v1/approvals/" + d.ApprovalID + "/approve"
	status, body := e.do(http.MethodPost, path, reviewerToken, decisionapi.ApproveRequest{CostCapUSD: ptr(2.000000001)})
	if ae := apiError(t, body); status != http.StatusBadRequest || ae.Field != "cost_cap_usd" || !strings.Contains(ae.Message, "$2") {
		t.Fatalf("cap above the estimate: %d %s; want 400 naming cost_cap_usd", status, body)
	}
	status, body = e.do(http.MethodGet, "/v1/approvals/"+d.ApprovalID, reviewerToken, nil)
	var ap decisionapi.Approval
	mustUnmarshal(t, body, &ap)
	if status != http.StatusOK || ap.State != decisionapi.ApprovalPending {
		t.Fatalf("after the refused cap: %d %s; want pending", status, body)
	}
	status, body = e.do(http.MethodPost, path, reviewerToken, decisionapi.ApproveRequest{CostCapUSD: ptr(2.0)})
	mustUnmarshal(t, body, &ap)
	if status != http.StatusOK || ap.State != decisionapi.ApprovalApproved || ap.CostCapUSD == nil || *ap.CostCapUSD != 2 {
		t.Errorf("cap at the estimate: %d %s", status, body)
	}
}

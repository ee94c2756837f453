package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// pagedAPI serves approvals and budgets in pages of pageSize whatever limit asks, with the next
// index as cursor; repeat makes every next_cursor the first page's (a list that never ends).
func pagedAPI(t *testing.T, n, pageSize int, repeat bool) (*httptest.Server, *[]string) {
	var (
		mu      sync.Mutex
		queries []string
	)
	page := func(r *http.Request) (from, to int, next string) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		if r.URL.Query().Get("limit") != "1000" {
			t.Errorf("limit %q, want the largest page", r.URL.Query().Get("limit"))
		}
		from, _ = strconv.Atoi(r.URL.Query().Get("cursor"))
		to = min(from+pageSize, n)
		if to < n {
			next = strconv.Itoa(to)
			if repeat {
				next = strconv.Itoa(pageSize)
			}
		}
		return from, to, next
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+decisionapi.PathApprovals, func(w http.ResponseWriter, r *http.Request) {
		from, to, next := page(r)
		list := decisionapi.ApprovalList{NextCursor: next}
		for i := from; i < to; i++ {
			list.Approvals = append(list.Approvals, decisionapi.Approval{ApprovalID: fmt.Sprintf("ap-%03d", i), State: decisionapi.ApprovalPending, AgentID: "a", Action: "x"})
		}
		writeJSON(w, list)
	})
	mux.HandleFunc("GET "+decisionapi.PathBudgets, func(w http.ResponseWriter, r *http.Request) {
		from, to, next := page(r)
		resp := decisionapi.BudgetsResponse{PolicyVersion: "v", Fleet: decisionapi.FleetStatus{Name: decisionapi.LevelNormal}, NextCursor: next}
		for i := from; i < to; i++ {
			resp.Scopes = append(resp.Scopes, decisionapi.ScopeBudget{Scope: "agent", BudgetStatus: decisionapi.BudgetStatus{ID: fmt.Sprintf("agent-%03d", i), Window: "day", LimitUSD: 1}})
		}
		writeJSON(w, resp)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &queries
}

// TestListCommandsFollowTheCursor: approvals list and budgets fetch every page, each item once,
// and stop with an error on a list that never ends.
func TestListCommandsFollowTheCursor(t *testing.T) {
	srv, queries := pagedAPI(t, 23, 5, false)
	tokenFile := writeFile(t, t.TempDir(), "reviewer.token", testToken+"\n")
	online := []string{"--endpoint", srv.URL, "--token-file", tokenFile}
	for _, tc := range []struct {
		args   []string
		prefix string
	}{
		{[]string{"approvals", "list"}, "ap-"},
		{[]string{"budgets"}, "agent-"},
	} {
		*queries = nil
		code, out, errOut := runCLI(t, append(tc.args, online...)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d\n%s%s", tc.args, code, out, errOut)
		}
		for i := range 23 {
			if c := strings.Count(out, fmt.Sprintf("%s%03d ", tc.prefix, i)); c != 1 {
				t.Errorf("%v: %s%03d printed %d times\n%s", tc.args, tc.prefix, i, c, out)
			}
		}
		if len(*queries) != 5 || !strings.Contains((*queries)[4], "cursor=20") {
			t.Errorf("%v: requests %q, want 5 pages", tc.args, *queries)
		}
	}
	// JSON output holds every item and no cursor.
	code, out, _ := runCLI(t, append([]string{"approvals", "list", "--output", "json"}, online...)...)
	if code != exitOK || strings.Count(out, `"approval_id"`) != 23 || strings.Contains(out, "next_cursor") {
		t.Errorf("approvals list --output json: exit %d\n%s", code, out)
	}

	loop, _ := pagedAPI(t, 23, 5, true)
	code, out, errOut := runCLI(t, "approvals", "list", "--endpoint", loop.URL, "--token-file", tokenFile)
	if code == exitOK || !strings.Contains(errOut, "does not end") {
		t.Errorf("a list that never ends: exit %d\n%s%s", code, out, errOut)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

const testToken = "s3cr3t-reviewer-token-0123456789"

// fakeAPI is a decision API that checks the bearer token and records what it was sent.
type fakeAPI struct {
	mu       sync.Mutex
	requests []recordedRequest
	srv      *httptest.Server
}

type recordedRequest struct {
	method, path, query, auth string
	body                      []byte
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{}
	created := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	pending := decisionapi.Approval{ApprovalID: "ap-7", State: decisionapi.ApprovalPending, AgentID: "research-agent",
		Action: "job.leads.batch-generate", EstimatedCostUSD: 60, RuleID: "approve-expensive-batch",
		RequestedBy: "research-agent", CreatedAt: created, ExpiresAt: created.Add(time.Hour)}

	mux := http.NewServeMux()
	mux.HandleFunc("POST "+decisionapi.PathDecisions, func(w http.ResponseWriter, r *http.Request) {
		var req decisionapi.DecisionRequest
		if err := decisionapi.Decode(r.Body, 0, &req); err != nil {
			decisionapi.WriteError(w, err)
			return
		}
		if err := req.Validate(); err != nil {
			decisionapi.WriteError(w, err)
			return
		}
		resp := decisionapi.DecisionResponse{Decision: decisionapi.DecisionAllowWithConstraints, DecisionID: "dec-1",
			RuleID: "throttle-llm-calls", Reason: "LLM calls throttled", PolicyVersion: "v1.9.0",
			Constraints: decisionapi.Constraints{MaxTokens: decisionapi.Limit(50000), RateLimit: "20/hour"},
			LeaseID:     "lease-1", EvidenceID: "ev-1",
			Budget: map[string]decisionapi.BudgetStatus{
				"agent": {ID: req.AgentID, Window: "hour", SpentUSD: 3, ReservedUSD: req.EstimatedCostUSD, LimitUSD: 50, Utilization: 0.18, Level: "normal", ForecastUSD: 12.5},
			}}
		if req.EstimatedCostUSD > 100 {
			resp = decisionapi.DecisionResponse{Decision: decisionapi.DecisionDeny, DecisionID: "dec-2",
				RuleID: "budget.per_action", Reason: "estimate above per_action_max_usd", PolicyVersion: "v1.9.0"}
		}
		writeJSON(w, resp)
	})
	mux.HandleFunc("GET "+decisionapi.PathBudgets, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, decisionapi.BudgetsResponse{PolicyVersion: "v1.9.0",
			Fleet: decisionapi.FleetStatus{Level: 1, Name: decisionapi.LevelThrottle},
			Scopes: []decisionapi.ScopeBudget{
				{Scope: "fleet", BudgetStatus: decisionapi.BudgetStatus{Window: "day", SpentUSD: 1700.25, ReservedUSD: 12, LimitUSD: 2000, Utilization: 0.85612, Level: "throttle", ForecastUSD: 2300}},
				{Scope: "agent", BudgetStatus: decisionapi.BudgetStatus{ID: "research-agent", Window: "hour", SpentUSD: 3.5, LimitUSD: 50, Utilization: 0.07, Level: "normal", ForecastUSD: 7}},
			}})
	})
	mux.HandleFunc("GET "+decisionapi.PathApprovals, func(w http.ResponseWriter, r *http.Request) {
		if _, err := decisionapi.ParseApprovalState(r.URL.Query().Get("state")); err != nil {
			decisionapi.WriteError(w, err)
			return
		}
		writeJSON(w, decisionapi.ApprovalList{Approvals: []decisionapi.Approval{pending}})
	})
	mux.HandleFunc("GET "+decisionapi.PathApproval, func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != pending.ApprovalID {
			decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeNotFound, "no approval %q", r.PathValue("id")))
			return
		}
		writeJSON(w, pending)
	})
	mux.HandleFunc("POST "+decisionapi.PathApprove, func(w http.ResponseWriter, r *http.Request) {
		var req decisionapi.ApproveRequest
		if err := decisionapi.Decode(r.Body, 0, &req); err != nil {
			decisionapi.WriteError(w, err)
			return
		}
		a := pending
		a.State, a.Reviewer, a.Comment, a.Constraints, a.CostCapUSD = decisionapi.ApprovalApproved, "alice@example.com", req.Comment, req.Constraints, req.CostCapUSD
		writeJSON(w, a)
	})
	mux.HandleFunc("POST "+decisionapi.PathDeny, func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "ap-done" {
			decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeConflict, "approval already resolved"))
			return
		}
		var req decisionapi.DenyRequest
		if err := decisionapi.Decode(r.Body, 0, &req); err != nil {
			decisionapi.WriteError(w, err)
			return
		}
		a := pending
		a.State, a.Reviewer, a.Comment = decisionapi.ApprovalDenied, "alice@example.com", req.Reason
		writeJSON(w, a)
	})

	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		f.mu.Lock()
		f.requests = append(f.requests, recordedRequest{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), body})
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeUnauthorized, "missing or unknown bearer token"))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) last(t *testing.T) recordedRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		t.Fatal("the server got no request")
	}
	return f.requests[len(f.requests)-1]
}

func TestOnlineCommands(t *testing.T) {
	api := newFakeAPI(t)
	tokenFile := writeFile(t, t.TempDir(), "reviewer.token", testToken+"\n")
	online := []string{"--endpoint", api.srv.URL, "--token-file", tokenFile}

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantMethod string
		wantPath   string
		wantQuery  string
		wantBody   map[string]any // the JSON body sent, when not nil
		wantOut    map[string]string
		wantRows   [][]string
		wantErr    string
	}{
		{
			name: "decide",
			args: []string{"decide", "--agent", "research-agent", "--action", "job.company.research", "--estimate", "6.25",
				"--tag", "llm", "--run", "run-9", "--meta", "ticket=OPS-1"},
			wantCode: exitOK, wantMethod: "POST", wantPath: "/v1/decisions",
			wantBody: map[string]any{"agent_id": "research-agent", "action": "job.company.research", "estimated_cost_usd": 6.25,
				"risk_tags": []any{"llm"}, "run_id": "run-9", "metadata": map[string]any{"ticket": "OPS-1"}},
			wantOut: map[string]string{"decision": "allow_with_constraints", "decided by": "throttle-llm-calls",
				"constraints": "rate_limit=20/hour max_tokens=50000", "lease": "lease-1", "evidence": "ev-1"},
			wantRows: [][]string{{"agent", "research-agent", "hour", "$3", "$6.25", "$50", "18.0%", "$12.5", "normal"}},
		},
		{
			name:     "decide deny with fail-on-deny",
			args:     []string{"decide", "--agent", "a", "--action", "job.a", "--estimate", "150", "--fail-on-deny"},
			wantCode: exitFindings, wantMethod: "POST", wantPath: "/v1/decisions",
			wantOut: map[string]string{"decision": "deny", "decided by": "budget.per_action"},
		},
		{
			name:     "budgets",
			args:     []string{"budgets"},
			wantCode: exitOK, wantMethod: "GET", wantPath: "/v1/budgets",
			wantRows: [][]string{
				{"fleet", "-", "day", "$1700.25", "$12", "$2000", "85.6%", "$2300", "throttle"},
				{"agent", "research-agent", "hour", "$3.5", "$0", "$50", "7.0%", "$7", "normal"},
			},
		},
		{
			name:     "approvals list",
			args:     []string{"approvals", "list"},
			wantCode: exitOK, wantMethod: "GET", wantPath: "/v1/approvals", wantQuery: "limit=1000&state=pending",
			wantRows: [][]string{{"ap-7", "pending", "research-agent", "job.leads.batch-generate", "$60", "approve-expensive-batch",
				"research-agent", "2026-03-02T10:00:00Z", "2026-03-02T11:00:00Z"}},
		},
		{
			name:     "approvals list all",
			args:     []string{"approvals", "list", "--state", "all"},
			wantCode: exitOK, wantMethod: "GET", wantPath: "/v1/approvals", wantQuery: "limit=1000",
		},
		{
			name:     "approvals get",
			args:     []string{"approvals", "get", "ap-7"},
			wantCode: exitOK, wantMethod: "GET", wantPath: "/v1/approvals/ap-7",
			wantOut: map[string]string{"approval": "ap-7", "state": "pending", "estimate": "$60"},
		},
		{
			name: "approve with tighter constraints",
			args: []string{"approvals", "approve", "ap-7", "--max-runtime-sec", "300", "--max-retries", "0",
				"--max-tokens", "20000", "--cost-cap", "55.5", "--comment", "one-off for the Q3 list"},
			wantCode: exitOK, wantMethod: "POST", wantPath: "/v1/approvals/ap-7/approve",
			// max_retries 0 is sent (no retries), the constraints not given are not.
			wantBody: map[string]any{"constraints": map[string]any{"max_runtime_sec": 300.0, "max_retries": 0.0, "max_tokens": 20000.0},
				"cost_cap_usd": 55.5, "comment": "one-off for the Q3 list"},
			wantOut: map[string]string{"state": "approved", "reviewer": "alice@example.com",
				"constraints": "max_runtime_sec=300 max_retries=0 max_tokens=20000", "cost cap": "$55.5"},
		},
		{
			name:     "approve with an empty body",
			args:     []string{"approvals", "approve", "ap-7"},
			wantCode: exitOK, wantMethod: "POST", wantPath: "/v1/approvals/ap-7/approve",
			wantBody: map[string]any{},
		},
		{
			name:     "deny",
			args:     []string{"approvals", "deny", "ap-7", "--reason", "not this quarter"},
			wantCode: exitOK, wantMethod: "POST", wantPath: "/v1/approvals/ap-7/deny",
			wantBody: map[string]any{"reason": "not this quarter"},
			wantOut:  map[string]string{"state": "denied", "deny reason": "not this quarter"},
		},
		{
			name:     "id is escaped in the path",
			args:     []string{"approvals", "get", "ap/../x"},
			wantCode: exitUsage, wantMethod: "GET", wantPath: "/v1/approvals/ap%2F..%2Fx",
			wantErr: "server answered 404 not_found",
		},
		{
			name:     "conflict is a usage error",
			args:     []string{"approvals", "deny", "ap-done", "--reason", "late"},
			wantCode: exitUsage, wantMethod: "POST", wantPath: "/v1/approvals/ap-done/deny",
			wantErr: "POST /v1/approvals/ap-done/deny: server answered 409 conflict: approval already resolved",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append(tt.args, online...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.wantCode, out, errOut)
			}
			if strings.Contains(out+errOut, testToken) {
				t.Fatalf("the token was printed:\n%s%s", out, errOut)
			}
			req := api.last(t)
			if req.auth != "Bearer "+testToken {
				t.Errorf("Authorization %q, want the bearer token", req.auth)
			}
			if req.method != tt.wantMethod || req.path != tt.wantPath || (tt.wantQuery != "" || tt.wantPath == "/v1/approvals") && req.query != tt.wantQuery {
				t.Errorf("request %s %s?%s, want %s %s?%s", req.method, req.path, req.query, tt.wantMethod, tt.wantPath, tt.wantQuery)
			}
			if tt.wantBody != nil {
				var got map[string]any
				if len(req.body) > 0 {
					if err := json.Unmarshal(req.body, &got); err != nil {
						t.Fatalf("body %s: %v", req.body, err)
					}
				}
				if g, w := mustJSON(t, got), mustJSON(t, tt.wantBody); g != w {
					t.Errorf("body %s, want %s", g, w)
				}
			}
			for label, want := range tt.wantOut {
				if got := labelled(t, out, label); got != want {
					t.Errorf("%s: %q, want %q", label, got, want)
				}
			}
			for _, want := range tt.wantRows {
				if got := lineWith(t, out, want[0]+" "); strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("row %q, want %q", got, want)
				}
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut, tt.wantErr)
			}
		})
	}
}

func TestOnlineJSONOutput(t *testing.T) {
	api := newFakeAPI(t)
	t.Setenv("AGENTCOST_TOKEN", testToken)
	t.Setenv("AGENTCOST_ENDPOINT", api.srv.URL)
	code, out, errOut := runCLI(t, "budgets", "-o", "json", "--scope", "agent")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	var resp decisionapi.BudgetsResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Scopes) != 1 || resp.Scopes[0].ID != "research-agent" || resp.Fleet.Name != decisionapi.LevelThrottle {
		t.Errorf("got %+v, want only the agent scope and the fleet at throttle", resp)
	}
	if api.last(t).auth != "Bearer "+testToken {
		t.Error("the token from AGENTCOST_TOKEN was not sent")
	}
}

func TestOnlineFailures(t *testing.T) {
	api := newFakeAPI(t)
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "reviewer.token", testToken)
	wrongToken := writeFile(t, dir, "wrong.token", "not-the-token")
	emptyToken := writeFile(t, dir, "empty.token", "\n")
	spacedToken := writeFile(t, dir, "spaced.token", "two words")
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"wrong token", []string{"budgets", "--endpoint", api.srv.URL, "--token-file", wrongToken}, exitUsage,
			"server answered 401 unauthorized: missing or unknown bearer token"},
		{"unreachable", []string{"budgets", "--endpoint", closed.URL, "--token-file", tokenFile}, exitIO, "cannot reach " + closed.URL},
		{"invalid request is not sent", []string{"decide", "--agent", "a", "--action", "job a", "--estimate", "1",
			"--endpoint", api.srv.URL, "--token-file", tokenFile}, exitUsage, "invalid request: action"},
		{"estimate required", []string{"decide", "--agent", "a", "--action", "job.a", "--endpoint", api.srv.URL}, exitUsage, "--estimate is required"},
		{"missing token file", []string{"budgets", "--endpoint", api.srv.URL, "--token-file", dir + "/none"}, exitIO, "reading token file"},
		{"empty token file", []string{"budgets", "--endpoint", api.srv.URL, "--token-file", emptyToken}, exitUsage, "is empty"},
		{"token with whitespace", []string{"budgets", "--endpoint", api.srv.URL, "--token-file", spacedToken}, exitUsage, "whitespace or control characters"},
		{"bad endpoint", []string{"budgets", "--endpoint", "ftp://x"}, exitUsage, "want an http:// or https:// URL"},
		{"deny needs a reason", []string{"approvals", "deny", "ap-7", "--endpoint", api.srv.URL}, exitUsage, "--reason is required"},
		{"bad state", []string{"approvals", "list", "--state", "limbo", "--endpoint", api.srv.URL}, exitUsage, `--state "limbo"`},
		{"bad rate limit", []string{"approvals", "approve", "ap-7", "--rate-limit", "3/fortnight", "--endpoint", api.srv.URL}, exitUsage, "constraints.rate_limit"},
		{"bad integer", []string{"approvals", "approve", "ap-7", "--max-tokens", "many", "--endpoint", api.srv.URL}, exitUsage, `"many" is not an integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.wantCode, out, errOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut, tt.wantErr)
			}
			if strings.Contains(out+errOut, testToken) || strings.Contains(out+errOut, "not-the-token") {
				t.Errorf("a token was printed:\n%s%s", out, errOut)
			}
		})
	}

	t.Run("5xx is exit 3", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeUnavailable, "ledger unavailable"))
		}))
		defer srv.Close()
		code, _, errOut := runCLI(t, "budgets", "--endpoint", srv.URL)
		if code != exitIO || !strings.Contains(errOut, "503 unavailable: ledger unavailable (retry after 7s)") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("plain http to a remote host warns", func(t *testing.T) {
		// Nothing listens on the TEST-NET address; a short timeout ends the attempt.
		t.Setenv("AGENTCOST_TOKEN", testToken)
		code, _, errOut := runCLI(t, "budgets", "--endpoint", "http://192.0.2.1:4320", "--timeout", "50ms")
		if code != exitIO || !strings.Contains(errOut, "warning: sending the bearer token over plain http to 192.0.2.1:4320") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
		if strings.Contains(errOut, testToken) {
			t.Error("the token was printed")
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

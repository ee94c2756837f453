package budgetreceiver

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// TestAccessAndRoles walks DESIGN.md's role table: no or unknown token is 401, a role the table
// does not list is 403, an agent acts only for its own subject, and agents never approve or deny.
func TestAccessAndRoles(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	own := e.decide(researchToken, decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.research", EstimatedCostUSD: 0.5})
	pending := e.decide(researchToken, decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.batch", EstimatedCostUSD: 1})
	if pending.Decision != decisionapi.DecisionRequireApproval || pending.ApprovalID == "" {
		t.Fatalf("job.batch: %+v, want require_approval with an approval_id", pending)
	}
	decideFor := func(agent string) decisionapi.DecisionRequest {
		return decisionapi.DecisionRequest{AgentID: agent, Action: "job.research", EstimatedCostUSD: 0.1}
	}
	approvalPath := "/v1/approvals/" + pending.ApprovalID

	cases := []struct {
		name   string
		method string
		path   string
		token  string
		body   any
		header []string
		want   int
	}{
		{"decide without a token", http.MethodPost, decisionapi.PathDecisions, "", decideFor("research-agent"), nil, 401},
		{"decide with an unknown token", http.MethodPost, decisionapi.PathDecisions, "not-a-configured-token-at-all", decideFor("research-agent"), nil, 401},
		{"decide with a basic credential", http.MethodPost, decisionapi.PathDecisions, "", decideFor("research-agent"), []string{"Authorization", "Basic " + researchToken}, 401},
		{"budgets without a token", http.MethodGet, decisionapi.PathBudgets, "", nil, nil, 401},
		{"approvals without a token", http.MethodGet, decisionapi.PathApprovals, "", nil, nil, 401},
		{"approve without a token", http.MethodPost, approvalPath + "/approve", "", nil, nil, 401},
		{"forwarder decides", http.MethodPost, decisionapi.PathDecisions, forwarderToken, decideFor("research-agent"), nil, 401},
		{"forwarder reads budgets", http.MethodGet, decisionapi.PathBudgets, forwarderToken, nil, nil, 401},

		{"agent decides for itself", http.MethodPost, decisionapi.PathDecisions, researchToken, decideFor("research-agent"), nil, 200},
		{"agent decides for another agent", http.MethodPost, decisionapi.PathDecisions, draftingToken, decideFor("research-agent"), nil, 403},
		{"reviewer decides", http.MethodPost, decisionapi.PathDecisions, reviewerToken, decideFor("research-agent"), nil, 403},
		{"reviewer releases", http.MethodPost, "/v1/leases/" + own.LeaseID + "/release", reviewerToken, nil, nil, 403},
		{"agent releases another agent's lease", http.MethodPost, "/v1/leases/" + own.LeaseID + "/release", draftingToken, nil, nil, 403},
		{"agent lists approvals", http.MethodGet, decisionapi.PathApprovals + "?state=pending", researchToken, nil, nil, 403},
		{"agent approves its own request", http.MethodPost, approvalPath + "/approve", researchToken, nil, nil, 403},
		{"agent denies", http.MethodPost, approvalPath + "/deny", researchToken, nil, nil, 403},
		{"agent polls another agent's approval", http.MethodGet, approvalPath, draftingToken, nil, nil, 403},
		{"agent polls its own approval", http.MethodGet, approvalPath, researchToken, nil, nil, 200},
		{"reviewer polls an approval", http.MethodGet, approvalPath, reviewerToken, nil, nil, 200},
		{"reviewer lists approvals", http.MethodGet, decisionapi.PathApprovals + "?state=pending", reviewerToken, nil, nil, 200},
		{"agent reads budgets", http.MethodGet, decisionapi.PathBudgets, researchToken, nil, nil, 200},
		{"reviewer reads budgets", http.MethodGet, decisionapi.PathBudgets, reviewerToken, nil, nil, 200},
		{"agent explains itself", http.MethodPost, decisionapi.PathExplain, draftingToken, decideFor("drafting-agent"), nil, 200},
		{"agent explains another agent", http.MethodPost, decisionapi.PathExplain, draftingToken, decideFor("research-agent"), nil, 403},
		{"reviewer explains", http.MethodPost, decisionapi.PathExplain, reviewerToken, decideFor("research-agent"), nil, 200},
		{"wrong method", http.MethodGet, decisionapi.PathDecisions, researchToken, nil, nil, 405},
		{"unknown lease", http.MethodPost, "/v1/leases/dec_nothing.AAAA/release", researchToken, nil, nil, 403},
		{"unknown approval", http.MethodGet, "/v1/approvals/apr_nothing", reviewerToken, nil, nil, 404},
		{"approve an unknown approval", http.MethodPost, "/v1/approvals/apr_nothing/approve", reviewerToken, nil, nil, 404},
		{"reviewer releases with an agent's lease id", http.MethodPost, "/v1/leases/" + own.LeaseID + "/release", reviewerToken, []byte(`{}`), nil, 403},
		{"agent releases its own lease", http.MethodPost, "/v1/leases/" + own.LeaseID + "/release", researchToken, nil, nil, 200},
		{"agent releases it again", http.MethodPost, "/v1/leases/" + own.LeaseID + "/release", researchToken, nil, nil, 409},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.do(tc.method, tc.path, tc.token, tc.body, tc.header...)
			if status != tc.want {
				t.Fatalf("status %d, want %d: %s", status, tc.want, body)
			}
			if status >= 400 {
				want := map[int]decisionapi.Code{401: decisionapi.CodeUnauthorized, 403: decisionapi.CodeForbidden,
					404: decisionapi.CodeNotFound, 405: decisionapi.CodeMethodNotAllowed, 409: decisionapi.CodeConflict}[status]
				if got := apiError(t, body).Code; got != want {
					t.Errorf("error code %q, want %q", got, want)
				}
			}
		})
	}
	// A token never appears in an answer, even one that rejects it.
	_, body := e.do(http.MethodPost, decisionapi.PathDecisions, "wrong-token-that-must-not-echo", decideFor("research-agent"))
	if bytes.Contains(body, []byte("wrong-token-that-must-not-echo")) {
		t.Errorf("401 body echoes the token: %s", body)
	}
}

// TestBadRequests: 400 names the field, 413 bounds the body.
func TestBadRequests(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess, func(cfg *Config) { cfg.MaxRequestBytes = 2048 })
	d := e.decide(researchToken, decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.research", EstimatedCostUSD: 0.5})
	cases := []struct {
		name   string
		method string
		path   string
		body   []byte
		status int
		field  string
	}{
		{"unknown field", "POST", decisionapi.PathDecisions, []byte(`{"agent_id":"research-agent","action":"job.x","estimated_cost_usd":1,"budget_hint":3}`), 400, "budget_hint"},
		{"missing agent_id", "POST", decisionapi.PathDecisions, []byte(`{"action":"job.x","estimated_cost_usd":1}`), 400, "agent_id"},
		{"wrong type", "POST", decisionapi.PathDecisions, []byte(`{"agent_id":"research-agent","action":"job.x","estimated_cost_usd":"1"}`), 400, "estimated_cost_usd"},
		{"negative estimate", "POST", decisionapi.PathDecisions, []byte(`{"agent_id":"research-agent","action":"job.x","estimated_cost_usd":-1}`), 400, "estimated_cost_usd"},
		{"bad risk tag", "POST", decisionapi.PathDecisions, []byte(`{"agent_id":"research-agent","action":"job.x","estimated_cost_usd":1,"risk_tags":["ok","not ok"]}`), 400, "risk_tags[1]"},
		{"malformed JSON", "POST", decisionapi.PathDecisions, []byte(`{"agent_id":`), 400, ""},
		{"oversize decision", "POST", decisionapi.PathDecisions, []byte(`{"agent_id":"research-agent","action":"job.x","estimated_cost_usd":1,"team":"` + strings.Repeat("x", 4096) + `"}`), 413, ""},
		{"oversize explain", "POST", decisionapi.PathExplain, bytes.Repeat([]byte(" "), 4096), 413, ""},
		{"unknown approval state", "GET", decisionapi.PathApprovals + "?state=maybe", nil, 400, "state"},
		{"negative actual cost", "POST", "/v1/leases/" + d.LeaseID + "/release", []byte(`{"actual_cost_usd":-2}`), 400, "actual_cost_usd"},
		{"unknown release status", "POST", "/v1/leases/" + d.LeaseID + "/release", []byte(`{"status":"meh"}`), 400, "status"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			token := researchToken
			if strings.HasPrefix(tc.path, decisionapi.PathApprovals) {
				token = reviewerToken
			}
			status, body := e.do(tc.method, tc.path, token, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			ae := apiError(t, body)
			if ae.Field != tc.field {
				t.Errorf("field %q, want %q (%s)", ae.Field, tc.field, ae.Message)
			}
			if tc.status == 413 && ae.Code != decisionapi.CodeBodyTooLarge {
				t.Errorf("code %q, want body_too_large", ae.Code)
			}
		})
	}
	// The lease survived the bad release requests.
	if r := e.release(researchToken, d.LeaseID, decisionapi.ReleaseRequest{}); r.DecisionID != d.DecisionID {
		t.Errorf("released decision %q, want %q", r.DecisionID, d.DecisionID)
	}
}

// TestInFlightBound answers 429 with Retry-After once max_in_flight requests are being served.
func TestInFlightBound(t *testing.T) {
	s := newServer(nil, nil, 1024, 1, newStats(time.Now(), decide.FailClosed.String()))
	if !s.slots.acquire(decide.Caller{Role: access.RoleOpen}) { // one request is being served
		t.Fatal("the first slot was refused")
	}
	rec := httptest.NewRecorder()
	s.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://localhost:4320"+decisionapi.PathBudgets, nil))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("status %d, Retry-After %q; want 429 and 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	checkResponse(t, http.MethodGet, decisionapi.PathBudgets, rec.Code, rec.Body.Bytes())
}

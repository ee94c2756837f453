package budgetreceiver

import (
	"net/http"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// freeze creates a freeze as the reviewer and expects a 200.
func (e *env) freeze(token string, req decisionapi.FreezeRequest) decisionapi.Freeze {
	e.t.Helper()
	status, body := e.do(http.MethodPost, decisionapi.PathFreezes, token, req)
	if status != http.StatusOK {
		e.t.Fatalf("freeze %+v: status %d: %s", req, status, body)
	}
	var out decisionapi.Freeze
	mustUnmarshal(e.t, body, &out)
	return out
}

// lease checks a lease and expects a 200.
func (e *env) lease(token, leaseID string) decisionapi.LeaseStatus {
	e.t.Helper()
	status, body := e.do(http.MethodGet, "/v1/leases/"+leaseID, token, nil)
	if status != http.StatusOK {
		e.t.Fatalf("lease %s: status %d: %s", leaseID, status, body)
	}
	var out decisionapi.LeaseStatus
	mustUnmarshal(e.t, body, &out)
	return out
}

// TestFreezeDeniesAndLifts: a reviewer freezes an agent; its next decision is denied with rule
// freeze and the reason, another agent's is not; the running action's lease check answers frozen;
// lifting restores the policy; freeze and unfreeze evidence records are written.
func TestFreezeDeniesAndLifts(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	req := decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.research", EstimatedCostUSD: 0.5}
	running := e.decide(researchToken, req)
	if running.Decision != decisionapi.DecisionAllow || running.LeaseID == "" {
		t.Fatalf("before the freeze: %+v", running)
	}
	if st := e.lease(researchToken, running.LeaseID); st.Frozen || st.State != decisionapi.LeaseOpen || st.AgentID != "research-agent" {
		t.Fatalf("lease before the freeze = %+v", st)
	}

	f := e.freeze(reviewerToken, decisionapi.FreezeRequest{Scope: decisionapi.FreezeAgent, ScopeID: "research-agent", Reason: "looping on the search tool"})
	if f.State != decisionapi.FreezeActive || f.CreatedBy != "alice@example.com" || f.FreezeID == "" {
		t.Fatalf("freeze = %+v", f)
	}
	d := e.decide(researchToken, req)
	if d.Decision != decisionapi.DecisionDeny || d.RuleID != decisionapi.RuleFreeze || !strings.Contains(d.Reason, "looping on the search tool") || d.LeaseID != "" {
		t.Fatalf("frozen agent's decision = %+v; want deny by rule freeze with the reason", d)
	}
	if other := e.decide(draftingToken, decisionapi.DecisionRequest{AgentID: "drafting-agent", Action: "job.research", EstimatedCostUSD: 0.5}); other.Decision != decisionapi.DecisionAllow {
		t.Fatalf("another agent's decision = %+v; want allow", other)
	}
	st := e.lease(researchToken, running.LeaseID)
	if !st.Frozen || st.Freeze == nil || st.Freeze.FreezeID != f.FreezeID {
		t.Fatalf("lease of the running action = %+v; want frozen by %s", st, f.FreezeID)
	}
	// Another agent cannot read the lease; a reviewer can.
	if status, body := e.do(http.MethodGet, "/v1/leases/"+running.LeaseID, draftingToken, nil); status != http.StatusForbidden {
		t.Fatalf("another agent's lease check: %d %s; want 403", status, body)
	}
	if st := e.lease(reviewerToken, running.LeaseID); !st.Frozen {
		t.Fatalf("reviewer's lease check = %+v", st)
	}

	status, body := e.do(http.MethodDelete, "/v1/freezes/"+f.FreezeID, reviewerToken, nil)
	var lifted decisionapi.Freeze
	if mustUnmarshal(t, body, &lifted); status != http.StatusOK || lifted.State != decisionapi.FreezeLifted || lifted.LiftedBy != "alice@example.com" {
		t.Fatalf("lift: %d %+v", status, lifted)
	}
	if d := e.decide(researchToken, req); d.Decision != decisionapi.DecisionAllow {
		t.Fatalf("after the lift: %+v; want allow", d)
	}
	if st := e.lease(researchToken, running.LeaseID); st.Frozen {
		t.Fatalf("lease after the lift = %+v", st)
	}
	if status, body := e.do(http.MethodDelete, "/v1/freezes/"+f.FreezeID, reviewerToken, nil); status != http.StatusConflict {
		t.Fatalf("second lift: %d %s; want 409", status, body)
	}
	if status, body := e.do(http.MethodDelete, "/v1/freezes/fz_nope", reviewerToken, nil); status != http.StatusNotFound {
		t.Fatalf("lift of an unknown freeze: %d %s; want 404", status, body)
	}
	e.release(researchToken, running.LeaseID, decisionapi.ReleaseRequest{})
	if st := e.lease(researchToken, running.LeaseID); st.State != decisionapi.LeaseSettled {
		t.Fatalf("lease after release = %+v; want settled", st)
	}

	fr := e.waitEvidence("freeze", func(r evidence.Record) bool { return r.Kind == evidence.KindFreeze && r.FreezeID == f.FreezeID })
	if fr.Reviewer != "alice@example.com" || fr.Scope != "agent" || fr.ScopeID != "research-agent" || fr.AgentID != "research-agent" || fr.Reason != "looping on the search tool" {
		t.Errorf("freeze record = %+v", fr)
	}
	e.waitEvidence("unfreeze", func(r evidence.Record) bool { return r.Kind == evidence.KindUnfreeze && r.FreezeID == f.FreezeID })
	e.waitEvidence("denied decision", func(r evidence.Record) bool {
		return r.Kind == evidence.KindDecision && r.RuleID == decisionapi.RuleFreeze && r.AgentID == "research-agent"
	})
}

// TestFreezeScopes: fleet, team and run freezes cover what they name and nothing else.
func TestFreezeScopes(t *testing.T) {
	e := startEnv(t, testPolicy)
	ask := func(agent, team, run string) decisionapi.DecisionResponse {
		return e.decide("", decisionapi.DecisionRequest{AgentID: agent, Team: team, RunID: run, Action: "job.x", EstimatedCostUSD: 0.01})
	}
	run := e.freeze("", decisionapi.FreezeRequest{Scope: decisionapi.FreezeRun, ScopeID: "run-7", Reason: "bad run"})
	if run.CreatedBy != "anonymous" {
		t.Errorf("open API freeze created_by %q; want anonymous", run.CreatedBy)
	}
	if d := ask("a1", "", "run-7"); d.RuleID != decisionapi.RuleFreeze {
		t.Errorf("frozen run: %+v", d)
	}
	if d := ask("a1", "", "run-8"); d.Decision != decisionapi.DecisionAllow {
		t.Errorf("other run: %+v", d)
	}
	e.freeze("", decisionapi.FreezeRequest{Scope: decisionapi.FreezeTeam, ScopeID: "growth", Reason: "audit"})
	if d := ask("a2", "growth", ""); d.RuleID != decisionapi.RuleFreeze || !strings.Contains(d.Reason, "audit") {
		t.Errorf("frozen team: %+v", d)
	}
	if d := ask("a2", "research", ""); d.Decision != decisionapi.DecisionAllow {
		t.Errorf("other team: %+v", d)
	}
	e.freeze("", decisionapi.FreezeRequest{Scope: decisionapi.FreezeFleet, Reason: "incident 42"})
	// billing-agent is critical in the policy: a freeze still stops it.
	if d := ask("billing-agent", "research", ""); d.RuleID != decisionapi.RuleFreeze || !strings.Contains(d.Reason, "incident 42") {
		t.Errorf("fleet freeze: %+v", d)
	}
	e.waitMetric(NameFreezesActive, func(v float64) bool { return v == 3 })
}

// TestFreezeRoles: agents cannot create, lift or list freezes; bad requests name the field.
func TestFreezeRoles(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	f := e.freeze(reviewerToken, decisionapi.FreezeRequest{Scope: decisionapi.FreezeFleet, Reason: "drill"})
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, decisionapi.PathFreezes, decisionapi.FreezeRequest{Scope: decisionapi.FreezeFleet, Reason: "x"}},
		{http.MethodGet, decisionapi.PathFreezes, nil},
		{http.MethodDelete, "/v1/freezes/" + f.FreezeID, nil},
	} {
		if status, body := e.do(c.method, c.path, researchToken, c.body); status != http.StatusForbidden {
			t.Errorf("agent %s %s: %d %s; want 403", c.method, c.path, status, body)
		}
	}
	if status, _ := e.do(http.MethodPut, decisionapi.PathFreezes, reviewerToken, nil); status != http.StatusMethodNotAllowed {
		t.Errorf("PUT %s: %d; want 405", decisionapi.PathFreezes, status)
	}
	for field, req := range map[string]decisionapi.FreezeRequest{
		"scope":          {Scope: "planet", Reason: "x"},
		"scope_id":       {Scope: decisionapi.FreezeAgent, Reason: "x"},
		"reason":         {Scope: decisionapi.FreezeFleet},
		"expires_in_sec": {Scope: decisionapi.FreezeFleet, Reason: "x", ExpiresInSec: new(int64)},
	} {
		status, body := e.do(http.MethodPost, decisionapi.PathFreezes, reviewerToken, req)
		if ae := apiError(t, body); status != http.StatusBadRequest || ae.Field != field {
			t.Errorf("freeze %+v: %d %s; want 400 naming %s", req, status, body, field)
		}
	}
	// The freeze is still in force: the lifted freeze of the role test stays active.
	status, body := e.do(http.MethodGet, decisionapi.PathFreezes+"?state=active", reviewerToken, nil)
	var list decisionapi.FreezeList
	if mustUnmarshal(t, body, &list); status != http.StatusOK || len(list.Freezes) != 1 || list.Freezes[0].FreezeID != f.FreezeID {
		t.Fatalf("active freezes: %d %s", status, body)
	}
	if status, body := e.do(http.MethodGet, decisionapi.PathFreezes+"?state=lifted", reviewerToken, nil); status != http.StatusBadRequest || apiError(t, body).Field != "state" {
		t.Errorf("state=lifted: %d %s; want 400 naming state", status, body)
	}
}

// TestFreezePaging follows next_cursor through every freeze, oldest first.
func TestFreezePaging(t *testing.T) {
	e := startEnv(t, testPolicy)
	var want []string
	for _, agent := range []string{"a", "b", "c", "d", "e"} {
		want = append(want, e.freeze("", decisionapi.FreezeRequest{Scope: decisionapi.FreezeAgent, ScopeID: agent, Reason: "r"}).FreezeID)
	}
	var got []string
	path := decisionapi.PathFreezes + "?limit=2"
	for range 10 {
		status, body := e.do(http.MethodGet, path, "", nil)
		var list decisionapi.FreezeList
		if mustUnmarshal(t, body, &list); status != http.StatusOK {
			t.Fatalf("list: %d %s", status, body)
		}
		for _, f := range list.Freezes {
			got = append(got, f.FreezeID)
		}
		if list.NextCursor == "" {
			break
		}
		path = decisionapi.PathFreezes + "?limit=2&cursor=" + list.NextCursor
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("paged freezes %v; want %v", got, want)
	}
	if status, body := e.do(http.MethodGet, decisionapi.PathApprovals+"?cursor="+strings.TrimPrefix(path, decisionapi.PathFreezes+"?limit=2&cursor="), "", nil); status != http.StatusBadRequest {
		t.Errorf("a freeze cursor given to the approvals list: %d %s; want 400", status, body)
	}
}

// TestLeaseCheckHasItsOwnBound: an agent whose share of the API's in-flight slots is taken still
// gets its lease checks answered (a watcher must not be starved by, or starve, its decisions).
func TestLeaseCheckHasItsOwnBound(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess, func(cfg *Config) { cfg.MaxInFlight = 4 })
	d := e.decide(researchToken, decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.x", EstimatedCostUSD: 0.1})
	agent := decide.Caller{Role: access.RoleAgent, Subject: "research-agent"}
	for e.r.api.slots.acquire(agent) {
		defer e.r.api.slots.release(agent)
	}
	if status, body := e.do(http.MethodPost, decisionapi.PathDecisions, researchToken,
		decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.x", EstimatedCostUSD: 0.1}); status != http.StatusTooManyRequests {
		t.Fatalf("decision with the agent's share taken: %d %s; want 429", status, body)
	}
	if st := e.lease(researchToken, d.LeaseID); st.State != decisionapi.LeaseOpen {
		t.Fatalf("lease check with the agent's share taken = %+v", st)
	}
}

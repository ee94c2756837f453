package budgetreceiver

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// teamToken is an agent token that may charge growth (its default team) and research.
const teamToken = "agent-token-growth-teams-0006"

// withTeamAccess is the inline test token list plus teamToken.
var withTeamAccess = func(cfg *Config) {
	cfg.Access = &AccessConfig{Tokens: append(append([]TokenConfig{}, accessTokens...),
		TokenConfig{Token: teamToken, Role: RoleAgent, Subject: "growth-agent", Teams: []string{"growth", "research"}})}
}

// TestAgentTokenTeams: an agent token that lists teams may decide (and explain) only for those:
// a request naming another team is refused 403 naming team, reserving nothing against it; a
// request naming none is decided for the token's default team, whose budget holds the
// reservation; a listed team is decided for itself. A token without teams decides for any team.
func TestAgentTokenTeams(t *testing.T) {
	policy := strings.Replace(testPolicy, "teams: {growth: {limit_usd: 50, window: month}}",
		"teams: {growth: {limit_usd: 50, window: month}, research: {limit_usd: 50, window: month}, victim: {limit_usd: 50, window: month}}", 1)
	if policy == testPolicy {
		t.Fatal("the test policy's team budgets changed")
	}
	e := startEnv(t, policy, withTeamAccess)
	ctx := context.Background()
	reserved := func(team string) int64 {
		t.Helper()
		st, err := e.ledger.State(ctx, ledger.ScopeTeam, team, ledger.Month, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return int64(st.Reserved)
	}
	req := func(team string) decisionapi.DecisionRequest {
		return decisionapi.DecisionRequest{AgentID: "growth-agent", Action: "job.research", EstimatedCostUSD: 1, Team: team}
	}

	for _, path := range []string{decisionapi.PathDecisions, decisionapi.PathExplain} {
		status, body := e.do(http.MethodPost, path, teamToken, req("victim"))
		if status != http.StatusForbidden {
			t.Fatalf("%s for team victim: status %d, want 403: %s", path, status, body)
		}
		if ae := apiError(t, body); ae.Code != decisionapi.CodeForbidden || !strings.HasPrefix(ae.Message, `team "victim"`) {
			t.Errorf("%s: error %+v, want forbidden naming team", path, ae)
		}
	}
	if got := reserved("victim"); got != 0 {
		t.Errorf("victim reserved %d after a refused request", got)
	}

	// No team: the default team's budget is reserved against.
	resp := e.decide(teamToken, req(""))
	if resp.Decision != decisionapi.DecisionAllow {
		t.Fatalf("no team: %+v", resp)
	}
	if b, ok := resp.Budget["team"]; !ok || b.ID != "growth" {
		t.Errorf("no team: the response shows no team budget: %+v", resp.Budget)
	}
	if got := reserved("growth"); got != 1e9 {
		t.Errorf("growth reserved %d, want $1 (the default team's)", got)
	}
	// A listed team stands.
	if resp := e.decide(teamToken, req("research")); resp.Decision != decisionapi.DecisionAllow {
		t.Fatalf("listed team: %+v", resp)
	}
	if got := reserved("research"); got != 1e9 {
		t.Errorf("research reserved %d, want $1", got)
	}
	// Explain without a team shows the default team's budget.
	status, body := e.do(http.MethodPost, decisionapi.PathExplain, teamToken, req(""))
	if status != http.StatusOK {
		t.Fatalf("explain without a team: %d %s", status, body)
	}
	var ex decisionapi.ExplainResponse
	mustUnmarshal(t, body, &ex)
	if b, ok := ex.Budget["team"]; !ok || b.ID != "growth" || b.ReservedUSD != 1 {
		t.Errorf("explain without a team: team budget %+v, want growth's $1 reserved", ex.Budget)
	}

	// A token without teams: the request's team stands, as before.
	if resp := e.decide(researchToken, decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.research", EstimatedCostUSD: 1, Team: "victim"}); resp.Decision != decisionapi.DecisionAllow {
		t.Fatalf("token without teams: %+v", resp)
	}
	if got := reserved("victim"); got != 1e9 {
		t.Errorf("victim reserved %d by a token without teams, want $1", got)
	}
}

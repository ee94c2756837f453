package budgetreceiver

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// TestTokensNeverLogged drives the API with valid, wrong and malformed credentials and checks that
// no token — configured or presented — appears in anything the receiver or the extension logged.
func TestTokensNeverLogged(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	const forged = "sk-live-forged-token-do-not-log-0042"
	e.decide(researchToken, decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.research.company", EstimatedCostUSD: 0.5})
	for _, token := range []string{forged, researchToken + "x", reviewerToken[:10]} {
		if status, _ := e.do(http.MethodPost, decisionapi.PathDecisions, token,
			decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.research.company"}); status != http.StatusUnauthorized {
			t.Errorf("token %q: HTTP %d, want 401", token, status)
		}
	}
	// An agent trying to approve, and a malformed Authorization header.
	if status, _ := e.do(http.MethodPost, "/v1/approvals/ap_x/approve", researchToken, map[string]any{}); status != http.StatusForbidden {
		t.Errorf("agent approving: HTTP %d, want 403", status)
	}
	req, _ := http.NewRequest(http.MethodGet, e.base+decisionapi.PathBudgets, nil)
	req.Header.Set("Authorization", "Basic "+forged)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("basic auth: HTTP %d, want 401", resp.StatusCode)
		}
	}
	entries := e.logged.All()
	if len(entries) == 0 {
		t.Fatal("nothing was logged: the check would prove nothing")
	}
	for _, entry := range entries {
		text := entry.Message + " " + fmt.Sprint(entry.ContextMap())
		for _, secret := range []string{forged, researchToken, draftingToken, reviewerToken} {
			if strings.Contains(text, secret) {
				t.Errorf("a token was logged: %q", text)
			}
		}
	}
}

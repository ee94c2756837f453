package policy

import (
	"os"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestShippedPoliciesApprovalsReachable: a require_approval rule with min_estimated_cost_usd must
// be reachable by the policy's own agents — some agent budget (named or default_agent) must exceed
// the threshold, so that an estimate at it fits with something already spent — else the budget layer denies every such request before a reviewer
// could see it (issue 13: the single-node rule at $50 against budgets of at most $50/hour).
func TestShippedPoliciesApprovalsReachable(t *testing.T) {
	configMap, err := os.ReadFile("../../deploy/kubernetes/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(configMap, &cm); err != nil || cm.Data["policy.yaml"] == "" {
		t.Fatalf("deploy/kubernetes/configmap.yaml: no data.policy.yaml (%v)", err)
	}
	policies := map[string]func() (*Policy, error){
		"single-node": func() (*Policy, error) { return Load("../../deploy/single-node/policy.yaml") },
		"docker":      func() (*Policy, error) { return Load("../../deploy/docker/policy.yaml") },
		"agentsim":    func() (*Policy, error) { return Load("../../cmd/agentsim/policy.yaml") },
		"kubernetes":  func() (*Policy, error) { return Parse("configmap.yaml#policy.yaml", []byte(cm.Data["policy.yaml"])) },
	}
	for name, load := range policies {
		t.Run(name, func(t *testing.T) {
			p, err := load()
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range p.rules {
				if r.decision != RequireApproval || !r.hasMin {
					continue
				}
				reachable := p.defaultAgent.Configured() && p.defaultAgent.Limit > r.minCost
				for _, b := range p.agentBudgets {
					reachable = reachable || b.Limit > r.minCost
				}
				if !reachable {
					t.Errorf("rule %q: min_estimated_cost_usd $%s is not below any agent budget: unreachable", r.id, r.minCost)
				}
			}
		})
	}
}

// TestSingleNodeBatchApproval pins the single-node rule's threshold as inclusive and reachable:
// research-agent's batch at exactly the threshold, nothing spent, needs approval; a nano-dollar
// below it does not.
func TestSingleNodeBatchApproval(t *testing.T) {
	p := mustLoad(t, "../../deploy/single-node/policy.yaml")
	now := time.Date(2026, time.March, 11, 10, 0, 0, 0, time.UTC)
	req := Request{AgentID: "research-agent", Action: "job.leads.batch-generate", RunID: "run-1", EstimatedCost: usdOf(t, "20")}
	if o := Evaluate(p, req, State{}, now); o.Decision != RequireApproval || o.RuleID != "approve-expensive-batch" {
		t.Fatalf("$20 batch: %v %q (%s), want require_approval by approve-expensive-batch", o.Decision, o.RuleID, o.Reason)
	}
	req.EstimatedCost = usdOf(t, "19.999999999")
	if o := Evaluate(p, req, State{}, now); o.RuleID == "approve-expensive-batch" {
		t.Fatalf("$19.999999999 batch matched the $20 rule: %v", o.Decision)
	}
}

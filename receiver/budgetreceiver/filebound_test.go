package budgetreceiver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// TestPolicyIdentityAndFileBound, over HTTP: a content change that keeps policy_version changes
// policy_sha256; a policy file above max_file_bytes is refused on reload (counted, the policy in
// force stays).
func TestPolicyIdentityAndFileBound(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess, func(cfg *Config) { cfg.MaxFileBytes = 4096 })
	write := func(s string) {
		t.Helper()
		tmp := filepath.Join(e.dir, "policy.tmp")
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, e.policyPath); err != nil {
			t.Fatal(err)
		}
	}
	first := e.decide(researchToken, research("job.research", 0))
	if len(first.PolicySHA256) != 64 {
		t.Fatalf("policy_sha256 %q, want 64 hex digits", first.PolicySHA256)
	}
	changed := strings.Replace(testPolicy, "default_decision: allow", "default_decision: deny", 1)
	if changed == testPolicy || !strings.Contains(changed, "policy_version: test-1") {
		t.Fatal("the test policy changed shape")
	}
	write(changed)
	var d decisionapi.DecisionResponse
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		d = e.decide(researchToken, research("job.research", 0))
		if d.Decision == decisionapi.DecisionDeny || time.Now().After(deadline) {
			break
		}
	}
	if d.Decision != decisionapi.DecisionDeny || d.PolicyVersion != "test-1" || d.PolicySHA256 == first.PolicySHA256 || len(d.PolicySHA256) != 64 {
		t.Fatalf("after a content change keeping policy_version: %+v, want deny, test-1 and a new policy_sha256 (was %s)", d, first.PolicySHA256)
	}

	write(strings.Replace(testPolicy, "policy_version: test-1", "policy_version: test-big", 1) + strings.Repeat("# padding\n", 500))
	e.waitMetric(NamePolicyReloadErrors, func(v float64) bool { return v >= 1 })
	if d2 := e.decide(researchToken, research("job.research", 0)); d2.PolicyVersion != "test-1" || d2.PolicySHA256 != d.PolicySHA256 {
		t.Errorf("after a policy above max_file_bytes: %s %s, want the policy in force kept", d2.PolicyVersion, d2.PolicySHA256)
	}
}

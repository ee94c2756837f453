package budgetreceiver

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"

	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// TestExplain lists every rule in order with why it matched or not, every budget layer, and the
// decision a request would get, without reserving anything.
func TestExplain(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	e.book(ledger.Spend{Agent: "research-agent", Cost: usd(t, "9.5")})
	status, body := e.do(http.MethodPost, decisionapi.PathExplain, researchToken, research("job.rated", 1))
	if status != 200 {
		t.Fatalf("explain: %d %s", status, body)
	}
	var ex decisionapi.ExplainResponse
	mustUnmarshal(t, body, &ex)
	p, err := policy.Load(e.policyPath)
	if err != nil {
		t.Fatal(err)
	}
	wantRules := p.RuleIDs()
	if len(ex.Rules) != len(wantRules) {
		t.Fatalf("explained %d rules, the policy has %d: %s", len(ex.Rules), len(wantRules), body)
	}
	for i, r := range ex.Rules {
		selected := r.RuleID == "limit-rate"
		if r.RuleID != wantRules[i] || r.Selected != selected || r.Matched != selected || (!selected && len(r.Why) == 0) {
			t.Errorf("rule %d: %+v", i, r)
		}
	}
	var layers []string
	for _, l := range ex.BudgetLayers {
		layers = append(layers, l.Layer+"="+string(l.Verdict))
	}
	if got := strings.Join(layers, " "); got != "per_action_cap=allow approval=allow run=allow agent=deny team=allow fleet=allow" {
		t.Errorf("layers %s", got)
	}
	if ex.Decision != decisionapi.DecisionDeny || ex.RuleID != policy.RuleAgentBudget || ex.SelectedRule != "limit-rate" || ex.PolicyVersion != "test-1" {
		t.Errorf("explanation %+v", ex)
	}
	if sc := e.budget("agent", "research-agent"); sc.ReservedUSD != 0 {
		t.Errorf("explain reserved $%v", sc.ReservedUSD)
	}
	// Explaining does not count against the rate limit: both real actions still pass... up to
	// the budget, which the explanation saw as the blocker.
	if d := e.decide(researchToken, research("job.rated", 0.25)); !d.Decision.Allowed() {
		t.Errorf("after explain: %+v", d)
	}
}

// TestHotReload: a valid change is swapped in; garbage keeps the old policy and shows in a metric.
func TestHotReload(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	write := func(s string) {
		t.Helper()
		// A rename is atomic: the watcher never reads a half-written file.
		tmp := filepath.Join(e.dir, "policy.tmp")
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, e.policyPath); err != nil {
			t.Fatal(err)
		}
	}
	waitVersion := func(version string) decisionapi.DecisionResponse {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			d := e.decide(researchToken, research("job.research", 0))
			if d.PolicyVersion == version || time.Now().After(deadline) {
				return d
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	write(strings.Replace(testPolicy, "policy_version: test-1\ndefault_decision: allow", "policy_version: test-2\ndefault_decision: deny", 1))
	if d := waitVersion("test-2"); d.PolicyVersion != "test-2" || d.Decision != decisionapi.DecisionDeny {
		t.Fatalf("after a valid change: %+v, want policy test-2 denying by default", d)
	}
	write("version: v1\nbudgets: {fleet: {limit_usd: -3}}\n")
	e.waitMetric(NamePolicyReloadErrors, func(v float64) bool { return v >= 1 })
	if d := e.decide(researchToken, research("job.research", 0)); d.PolicyVersion != "test-2" {
		t.Errorf("after an invalid change: policy %q, want test-2 kept", d.PolicyVersion)
	}
}

// TestLedgerUnavailable: with the ledger gone, fail_closed denies with the reason and fail_open
// answers the rule result without a lease; both count in a metric; other endpoints answer 503.
func TestLedgerUnavailable(t *testing.T) {
	for _, mode := range []string{decide.FailClosed.String(), decide.FailOpen.String()} {
		t.Run(mode, func(t *testing.T) {
			e := startEnv(t, testPolicy, withAccess, func(cfg *Config) { cfg.LedgerUnavailable.Decisions = mode })
			if err := e.ledger.Close(); err != nil {
				t.Fatal(err)
			}
			d := e.decide(researchToken, research("job.generate", 1))
			switch mode {
			case decide.FailClosed.String():
				if d.Decision != decisionapi.DecisionDeny || d.RuleID != decide.RuleLedgerUnavailable || d.RetryAfterSec != 5 || !strings.Contains(d.Reason, "unavailable") {
					t.Errorf("fail_closed: %+v", d)
				}
			case decide.FailOpen.String():
				if d.Decision != decisionapi.DecisionAllowWithConstraints || d.LeaseID != "" || d.RuleID != "cap-tokens" || *d.Constraints.MaxTokens != 1000 {
					t.Errorf("fail_open: %+v, want the rule's allow_with_constraints without a lease", d)
				}
				if d := e.decide(researchToken, research("job.batch", 1)); d.Decision != decisionapi.DecisionThrottle {
					t.Errorf("fail_open require_approval: %+v, want throttle", d)
				}
			}
			e.waitMetric(NameLedgerUnavailable, func(v float64) bool { return v >= 1 }, "fail_mode", mode)
			status, body := e.do(http.MethodGet, decisionapi.PathBudgets, researchToken, nil)
			if status != http.StatusServiceUnavailable || apiError(t, body).Code != decisionapi.CodeUnavailable {
				t.Errorf("budgets: %d %s; want 503", status, body)
			}
		})
	}
}

// TestMetricsPipeline: budget gauges per scope, id and window, the fleet level, decisions by
// decision and rule, and the decision latency histogram.
func TestMetricsPipeline(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	e.book(ledger.Spend{Agent: "research-agent", Team: "growth", Cost: usd(t, "2")})
	e.decide(researchToken, research("job.research", 1))
	e.decide(researchToken, research("job.batch", 1))
	e.decide(researchToken, research("job.batch", 1))
	scope := []string{"scope", "agent", "id", "research-agent", "window", "month"}
	e.waitMetric("agentcost_budget_spent_usd", func(v float64) bool { return v == 3 }, scope...) // spent 2 + reserved 1
	if v, _ := e.metric("agentcost_budget_limit_usd", scope...); v != 10 {
		t.Errorf("limit %v, want 10", v)
	}
	if v, _ := e.metric("agentcost_budget_utilization_ratio", scope...); v != 0.3 {
		t.Errorf("utilization %v, want 0.3", v)
	}
	if v, ok := e.metric("agentcost_budget_limit_usd", "scope", "team", "id", "growth", "window", "month"); !ok || v != 50 {
		t.Errorf("team limit %v (%v), want 50", v, ok)
	}
	if v, ok := e.metric("agentcost_budget_forecast_usd", "scope", "fleet", "id", "fleet"); !ok || v < 2 {
		t.Errorf("fleet forecast %v (%v), want at least the $2 spent", v, ok)
	}
	e.waitMetric("agentcost_decisions_total", func(v float64) bool { return v == 2 }, "decision", "require_approval", "rule", "approve-batch")
	if v, _ := e.metric("agentcost_decisions_total", "decision", "allow", "rule", "default_decision"); v != 1 {
		t.Errorf("allow decisions %v, want 1", v)
	}
	if v, _ := e.metric("agentcost_decision_duration_seconds"); v != 3 {
		t.Errorf("latency histogram count %v, want 3", v)
	}
	if v, ok := e.metric("agentcost_fleet_level"); !ok || v != 0 {
		t.Errorf("fleet level %v (%v), want 0", v, ok)
	}
}

// TestOpenAPIWithoutAccess: without access the loopback API needs no token, and unknown leases
// are 404.
func TestOpenAPIWithoutAccess(t *testing.T) {
	e := startEnv(t, testPolicy)
	d := e.decide("", decisionapi.DecisionRequest{AgentID: "anyone", Action: "job.batch", EstimatedCostUSD: 1})
	status, body := e.do(http.MethodPost, "/v1/approvals/"+d.ApprovalID+"/approve", "", nil)
	var ap decisionapi.Approval
	mustUnmarshal(t, body, &ap)
	if status != 200 || ap.Reviewer != "anonymous" {
		t.Errorf("open approve: %d %s", status, body)
	}
	if status, _ := e.do(http.MethodPost, "/v1/leases/dec_unknown.AAAA/release", "", nil); status != http.StatusNotFound {
		t.Errorf("unknown lease: %d, want 404", status)
	}
	if status, _ := e.do(http.MethodPost, "/v1/leases/no-dot/release", "", nil); status != http.StatusNotFound {
		t.Errorf("malformed lease: %d, want 404", status)
	}
}

// TestSharedInstance: the metrics and logs pipelines of one ID get one receiver and one server.
func TestSharedInstance(t *testing.T) {
	e := startEnv(t, testPolicy)
	if len(e.logs.AllLogs()) != 0 {
		t.Fatal("logs before any decision")
	}
	d := e.decide("", decisionapi.DecisionRequest{AgentID: "a", Action: "job.generate"})
	e.waitEvidence("decision through the shared instance", func(r evidence.Record) bool { return r.DecisionID == d.DecisionID })
	if n := receivers.Len(); n != 1 {
		t.Errorf("%d receivers registered for one configuration", n)
	}
}

func TestConfigValidate(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("  a-token-of-enough-length\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	valid := func() *Config {
		cfg := createDefaultConfig().(*Config)
		cfg.PolicyFile = "policy.yaml"
		return cfg
	}
	cases := []struct {
		name string
		tune func(*Config)
		want string // substring of the error; empty for valid
	}{
		{"defaults with a policy", func(*Config) {}, ""},
		{"no policy", func(c *Config) { c.PolicyFile = "" }, "policy_file: required"},
		{"open on all interfaces", func(c *Config) { c.NetAddr.Endpoint = "0.0.0.0:4320" }, "access: required"},
		{"open on a LAN address", func(c *Config) { c.NetAddr.Endpoint = "10.1.2.3:4320" }, "access: required"},
		{"open on ::1", func(c *Config) { c.NetAddr.Endpoint = "[::1]:4320" }, ""},
		{"tokens on all interfaces", func(c *Config) {
			c.NetAddr.Endpoint = ":4320"
			c.Access = &AccessConfig{Tokens: []TokenConfig{{TokenFile: tokenFile, Role: RoleAgent, Subject: "a"}}}
		}, ""},
		{"empty access", func(c *Config) { c.Access = &AccessConfig{} }, "access.tokens: at least one"},
		{"token and file", func(c *Config) {
			c.Access = &AccessConfig{Tokens: []TokenConfig{{Token: "x", TokenFile: tokenFile, Role: RoleAgent, Subject: "a"}}}
		}, "access.tokens[0]: set token_file or token, not both"},
		{"bad role", func(c *Config) {
			c.Access = &AccessConfig{Tokens: []TokenConfig{{TokenFile: tokenFile, Role: "admin", Subject: "a"}}}
		}, `access.tokens[0].role: "admin"`},
		{"no subject", func(c *Config) {
			c.Access = &AccessConfig{Tokens: []TokenConfig{{TokenFile: tokenFile, Role: RoleReviewer}}}
		}, "access.tokens[0].subject: required"},
		{"shared authenticator", func(c *Config) {
			c.NetAddr.Endpoint = ":4320"
			id := component.MustNewID("agentauth")
			c.Access = &AccessConfig{Authenticator: &id}
		}, ""},
		{"tokens and authenticator", func(c *Config) {
			id := component.MustNewID("agentauth")
			c.Access = &AccessConfig{Authenticator: &id, Tokens: []TokenConfig{{TokenFile: tokenFile, Role: RoleAgent, Subject: "a"}}}
		}, "access: set tokens or authenticator, not both"},
		{"agents on an agent token", func(c *Config) {
			c.Access = &AccessConfig{Tokens: []TokenConfig{{TokenFile: tokenFile, Role: RoleAgent, Subject: "a", Agents: []string{"b"}}}}
		}, "access.tokens[0].agents: only a forwarder token"},
		{"fail mode", func(c *Config) { c.LedgerUnavailable.Decisions = "shrug" }, "ledger_unavailable.decisions"},
		{"baseline multiplier", func(c *Config) { c.Baseline.Multiplier = 1 }, "baseline.multiplier"},
		{"baseline warmup_calls", func(c *Config) { c.Baseline.WarmupCalls = 0 }, "baseline.warmup_calls"},
		{"baseline warmup (older spelling)", func(c *Config) { c.Baseline.Warmup = -1 }, "baseline.warmup"},
		{"baseline escalation_calls", func(c *Config) { c.Baseline.EscalationCalls = 2 }, "baseline.escalation_calls"},
		{"midflight_interval", func(c *Config) { c.MidflightInterval = 0 }, "midflight_interval"},
		{"run_idle", func(c *Config) { c.RunIdle = -time.Second }, "run_idle"},
		{"tiny body limit", func(c *Config) { c.MaxRequestBytes = 10 }, "max_request_bytes"},
		{"file bound", func(c *Config) { c.MaxFileBytes = 0 }, "max_file_bytes"},
		{"publish interval", func(c *Config) { c.PublishInterval = 0 }, "publish_interval"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid()
			tc.tune(cfg)
			err := confmap.Validate(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestConfigUnmarshal reads the YAML keys of the design's minimal configuration and the access
// block, and loads token files with surrounding whitespace.
func TestConfigUnmarshal(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "agent.token")
	if err := os.WriteFile(tokenFile, []byte("agent-token-from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig().(*Config)
	cm := confmap.NewFromStringMap(map[string]any{
		"endpoint":    "0.0.0.0:4321",
		"policy_file": "./policy.yaml",
		"ledger":      "budgetledger/shared",
		"access": map[string]any{"tokens": []any{
			map[string]any{"token_file": tokenFile, "role": "agent", "subject": "research-agent"},
			map[string]any{"token": "reviewer-token-inline", "role": "reviewer", "subject": "alice@example.com"},
		}},
		"baseline":           map[string]any{"warmup": 7},
		"ledger_unavailable": map[string]any{"decisions": "fail_open"},
	})
	if err := cm.Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := confmap.Validate(cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Ledger != component.MustNewIDWithName("budgetledger", "shared") || cfg.Baseline.Warmup != 7 || cfg.Baseline.Multiplier != 3 ||
		cfg.LedgerUnavailable.Decisions != decide.FailOpen.String() || cfg.MaxRequestBytes != 64<<10 {
		t.Errorf("config %+v", cfg)
	}
	creds, err := cfg.Access.load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := creds.Lookup("agent-token-from-a-file"); !ok || id.Role != RoleAgent || id.Subject != "research-agent" {
		t.Errorf("agent token from the file: %+v %v", id, ok)
	}
	if id, ok := creds.Lookup("reviewer-token-inline"); !ok || id.Role != RoleReviewer {
		t.Errorf("inline reviewer token: %+v %v", id, ok)
	}
	short := &AccessConfig{Tokens: []TokenConfig{{Token: "short", Role: RoleAgent, Subject: "a"}}}
	if _, err := short.load(nil); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short token: %v", err)
	}
	dup := &AccessConfig{Tokens: []TokenConfig{{TokenFile: tokenFile, Role: RoleAgent, Subject: "a"}, {Token: "agent-token-from-a-file", Role: RoleReviewer, Subject: "b"}}}
	if _, err := dup.load(nil); err == nil || !strings.Contains(err.Error(), "same token") {
		t.Errorf("duplicate token: %v", err)
	}
}

package budgetreceiver

import (
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/extension/agentauthextension"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// TestSharedAccess: with access.authenticator the decision API takes its tokens from the agentauth
// extension (the list OTLP uses), with the same role table; a forwarder token is refused with 401.
func TestSharedAccess(t *testing.T) {
	e := startEnv(t, testPolicy, withSharedAccess)
	req := decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.research", EstimatedCostUSD: 0.1}
	cases := []struct {
		name  string
		token string
		want  int
	}{
		{"agent for itself", researchToken, 200},
		{"agent for another agent", draftingToken, 403},
		{"reviewer", reviewerToken, 403},
		{"forwarder", forwarderToken, 401},
		{"no token", "", 401},
		{"unknown token", "not-a-configured-token-at-all", 401},
	}
	for _, tc := range cases {
		status, body := e.do(http.MethodPost, decisionapi.PathDecisions, tc.token, req)
		if status != tc.want {
			t.Errorf("%s: status %d, want %d: %s", tc.name, status, tc.want, body)
		}
	}
}

// TestSharedAccessMissingExtension: an access.authenticator naming no agentauth extension fails the
// start with a message naming the key.
func TestSharedAccessMissingExtension(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	withSharedAccess(cfg)
	_, err := cfg.Access.load(componenttest.NewNopHost())
	if err == nil || !strings.Contains(err.Error(), "access.authenticator") {
		t.Fatalf("error %v, want one naming access.authenticator", err)
	}
}

// TestREADMESharedAccess loads the README's shared-token example: the agentauth extension's list
// and the receiver's access.authenticator.
func TestREADMESharedAccess(t *testing.T) {
	_, after, ok := strings.Cut(readme(t), "To require the same tokens on OTLP")
	if !ok {
		t.Fatal("README has no shared-token example")
	}
	_, block, _ := strings.Cut(after, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	var doc struct {
		Extensions map[string]map[string]any `yaml:"extensions"`
		Receivers  map[string]map[string]any `yaml:"receivers"`
	}
	if err := yaml.Unmarshal([]byte(block), &doc); err != nil {
		t.Fatal(err)
	}
	ext := agentauthextension.NewFactory().CreateDefaultConfig().(*agentauthextension.Config)
	if err := confmap.NewFromStringMap(doc.Extensions["agentauth"]).Unmarshal(ext); err != nil {
		t.Fatal(err)
	}
	if err := confmap.Validate(ext); err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig().(*Config)
	if err := confmap.NewFromStringMap(doc.Receivers["budget"]).Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := confmap.Validate(cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Access == nil || cfg.Access.Authenticator == nil || cfg.Access.Authenticator.Type().String() != "agentauth" {
		t.Errorf("access %+v, want the agentauth authenticator", cfg.Access)
	}
	if auth, _ := doc.Receivers["otlp"]["protocols"].(map[string]any)["grpc"].(map[string]any)["auth"].(map[string]any); auth["authenticator"] != "agentauth" {
		t.Errorf("the example's OTLP receiver does not authenticate with agentauth: %v", doc.Receivers["otlp"])
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Tokens of the authenticated end-to-end test.
const (
	e2eAgentToken     = "e2e-agent-token-research-0001"
	e2eReviewerToken  = "e2e-reviewer-token-alice-0002"
	e2eForwarderToken = "e2e-forwarder-token-tier1-0003"
)

// authSpans builds n gpt-4o spans ($0.035 each: 10,000 input and 1,000 output tokens) that claim
// agent claimed by span attribute, under a resource with the given attributes. seed keeps the span
// ids of separate batches apart.
func authSpans(n int, claimed string, res map[string]any, seed byte) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	_ = rs.Resource().Attributes().FromRaw(res)
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	now := time.Now()
	for i := range n {
		s := spans.AppendEmpty()
		s.SetName("chat gpt-4o")
		s.SetTraceID(pcommon.TraceID([16]byte{seed, 1, byte(i >> 8), byte(i)}))
		s.SetSpanID(pcommon.SpanID([8]byte{seed, 2, byte(i >> 8), byte(i)}))
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Second)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
		a := s.Attributes()
		a.PutStr("gen_ai.provider.name", "openai")
		a.PutStr("gen_ai.request.model", "gpt-4o")
		a.PutInt("gen_ai.usage.input_tokens", 10_000)
		a.PutInt("gen_ai.usage.output_tokens", 1_000)
		if claimed != "" {
			a.PutStr("gen_ai.agent.name", claimed)
		}
	}
	return td
}

// postTraces sends td over OTLP/HTTP (protobuf) with the bearer token (none when empty) and returns
// the status.
func postTraces(t *testing.T, endpoint, token string, td ptrace.Traces) int {
	t.Helper()
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+endpoint+"/v1/traces", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestEndToEndOTLPAuth runs a replica whose OTLP receiver and decision API share one agentauth
// token list, and a tier-1 edge collector in front of it (otlp with agentauth -> agentcost in
// forward mode -> otlp_grpc with the forwarder token). It checks the attack: a request
// without a token is refused 401 and books nothing; 100 spans sent with research-agent's token
// that claim the victim are booked to research-agent, directly and through tier 1; a forwarder
// carrying an agent outside its agents list books to the forwarder; the decision API takes the
// agent token and refuses the forwarder's. Issue 10's follow-up: the agent token lists its teams,
// so spans claiming the victim team (span, resource or service.namespace), directly and through
// tier 1, are booked to its default team and the victim team's spend stays 0, and a decision
// naming the victim team is refused 403; a reviewer token sending spans is refused 403 and books
// nothing.
func TestEndToEndOTLPAuth(t *testing.T) {
	redis := redistest.Start(t)
	dir := t.TempDir()
	grpcEP, httpEP, apiEP, metricsEP := collectortest.Endpoint(t), collectortest.Endpoint(t), collectortest.Endpoint(t), collectortest.Endpoint(t)
	policy, err := filepath.Abs(filepath.Join("..", "..", "deploy", "single-node", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	collectortest.Run(t, components, fmt.Sprintf(`
extensions:
  agentauth:
    tokens:
      - {token: %[1]s, role: agent, subject: research-agent, teams: [research, growth]}
      - {token: %[2]s, role: reviewer, subject: alice@example.com}
      - {token: %[3]s, role: forwarder, subject: tier1, agents: [research-agent]}
  budgetledger:
    backend: redis
    redis: {endpoint: %[4]s, key_prefix: "auth:"}
    evidence: {directory: %[5]s/evidence}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: %[6]s, auth: {authenticator: agentauth}}
      http: {endpoint: %[7]s, auth: {authenticator: agentauth}}
  budget:
    endpoint: %[8]s
    policy_file: %[9]s
    access: {authenticator: agentauth}
processors:
  agentcost: {}
exporters:
  costledger: {}
  prometheus: {endpoint: %[10]s, translation_strategy: UnderscoreEscapingWithoutSuffixes, without_scope_info: true, metric_expiration: 1h}
service:
  telemetry: {metrics: {level: none}}
  extensions: [agentauth, budgetledger]
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [costledger]}
    metrics: {receivers: [budget], exporters: [prometheus]}
`, e2eAgentToken, e2eReviewerToken, e2eForwarderToken, redis.Addr, dir, grpcEP, httpEP, apiEP, policy, metricsEP))

	tier1EP := collectortest.Endpoint(t)
	collectortest.Run(t, components, fmt.Sprintf(`
extensions:
  agentauth:
    tokens:
      - {token: %[1]s, role: agent, subject: research-agent, teams: [research, growth]}
receivers:
  otlp:
    protocols:
      http: {endpoint: %[2]s, auth: {authenticator: agentauth}}
processors:
  agentcost: {auth: {mode: forward}}
exporters:
  otlp_grpc:
    endpoint: %[3]s
    tls: {insecure: true}
    headers: {authorization: "Bearer %[4]s"}
    sending_queue: {enabled: false}
    retry_on_failure: {enabled: false}
service:
  telemetry: {metrics: {level: none}}
  extensions: [agentauth]
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [otlp_grpc]}
`, e2eAgentToken, tier1EP, grpcEP, e2eForwarderToken))

	l := openLedger(t, "", redis.Addr, "auth:")
	now := time.Now()
	spent := func(agent string) money.Nanos {
		st, err := l.State(t.Context(), ledger.ScopeAgent, agent, ledger.Day, now)
		if err != nil {
			t.Fatal(err)
		}
		return st.Spent
	}
	const perSpan = money.Nanos(35_000_000) // $0.035

	// No token, a wrong token, the token in another scheme: 401, nothing booked.
	for _, token := range []string{"", "not-a-configured-token-at-all"} {
		if got := postTraces(t, httpEP, token, authSpans(100, "victim", nil, 1)); got != http.StatusUnauthorized {
			t.Errorf("token %q: status %d, want 401", token, got)
		}
	}
	// research-agent's token, 100 spans claiming the victim: booked to research-agent.
	if got := postTraces(t, httpEP, e2eAgentToken, authSpans(100, "victim", map[string]any{"service.name": "victim"}, 2)); got != http.StatusOK {
		t.Fatalf("agent token: status %d", got)
	}
	if got := waitSpent(l, ledger.ScopeAgent, "research-agent", now, 100*perSpan, 10*time.Second); got != 100*perSpan {
		t.Errorf("research-agent spent %v, want %v", got, 100*perSpan)
	}
	// Through tier 1: the edge authenticates the agent and carries its subject; the replica trusts
	// it from the forwarder token.
	if got := postTraces(t, tier1EP, e2eAgentToken, authSpans(10, "victim", nil, 3)); got != http.StatusOK {
		t.Fatalf("through tier 1: status %d", got)
	}
	if got := waitSpent(l, ledger.ScopeAgent, "research-agent", now, 110*perSpan, 10*time.Second); got != 110*perSpan {
		t.Errorf("research-agent spent %v after tier 1, want %v", got, 110*perSpan)
	}
	if got := postTraces(t, tier1EP, "", authSpans(1, "victim", nil, 4)); got != http.StatusUnauthorized {
		t.Errorf("tier 1 without a token: status %d, want 401", got)
	}
	// A forwarder carrying an agent outside its agents list books to the forwarder.
	if got := postTraces(t, httpEP, e2eForwarderToken, authSpans(2, "", map[string]any{access.KeySubject: "victim"}, 5)); got != http.StatusOK {
		t.Fatalf("forwarder: status %d", got)
	}
	if got := waitSpent(l, ledger.ScopeAgent, "tier1", now, 2*perSpan, 10*time.Second); got != 2*perSpan {
		t.Errorf("tier1 spent %v, want %v", got, 2*perSpan)
	}
	if got := spent("victim"); got != 0 {
		t.Errorf("victim spent %v, want 0", got)
	}

	// Teams: the agent's spans claiming the victim team are booked to its default team, research,
	// as are those naming none (the 110 above).
	if got := postTraces(t, httpEP, e2eAgentToken, authSpans(5, "", map[string]any{"agentcost.team": "victim"}, 6)); got != http.StatusOK {
		t.Fatalf("agent claiming a team: status %d", got)
	}
	if got := postTraces(t, tier1EP, e2eAgentToken, authSpans(3, "", map[string]any{"service.namespace": "victim"}, 7)); got != http.StatusOK {
		t.Fatalf("agent claiming a team through tier 1: status %d", got)
	}
	if got := postTraces(t, tier1EP, e2eAgentToken, authSpans(2, "", map[string]any{"team": "growth"}, 8)); got != http.StatusOK {
		t.Fatalf("agent naming a listed team through tier 1: status %d", got)
	}
	// A reviewer token may not send spans: 403, nothing priced or booked.
	if got := postTraces(t, httpEP, e2eReviewerToken, authSpans(4, "", nil, 10)); got != http.StatusForbidden {
		t.Errorf("reviewer token: status %d, want 403", got)
	}
	teamSpent := func(team string, want money.Nanos) money.Nanos {
		return waitSpent(l, ledger.ScopeTeam, team, now, want, 10*time.Second)
	}
	if got := teamSpent("research", 118*perSpan); got != 118*perSpan {
		t.Errorf("team research spent %v, want %v", got, 118*perSpan)
	}
	if got := teamSpent("growth", 2*perSpan); got != 2*perSpan {
		t.Errorf("team growth spent %v, want %v", got, 2*perSpan)
	}
	if got := waitSpent(l, ledger.ScopeAgent, "research-agent", now, 120*perSpan, 10*time.Second); got != 120*perSpan {
		t.Errorf("research-agent spent %v, want %v", got, 120*perSpan)
	}
	st, err := l.State(t.Context(), ledger.ScopeTeam, "victim", ledger.Day, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Spent != 0 {
		t.Errorf("team victim spent %v, want 0", st.Spent)
	}
	if got := spent("alice@example.com"); got != 0 {
		t.Errorf("the reviewer's subject spent %v, want 0", got)
	}

	// The decision API shares the list: the agent decides (for its teams only), the forwarder is
	// refused.
	decideTeam := func(token, team string) int {
		body, _ := json.Marshal(decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.research.company", EstimatedCostUSD: 0.01, Team: team})
		req, _ := http.NewRequest(http.MethodPost, "http://"+apiEP+decisionapi.PathDecisions, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	decide := func(token string) int { return decideTeam(token, "") }
	if got := decide(e2eAgentToken); got != http.StatusOK {
		t.Errorf("decision with the agent token: %d, want 200", got)
	}
	if got := decideTeam(e2eAgentToken, "victim"); got != http.StatusForbidden {
		t.Errorf("decision for the victim team: %d, want 403", got)
	}
	if got := decideTeam(e2eAgentToken, "growth"); got != http.StatusOK {
		t.Errorf("decision for a listed team: %d, want 200", got)
	}
	if got := decide(e2eForwarderToken); got != http.StatusUnauthorized {
		t.Errorf("decision with the forwarder token: %d, want 401", got)
	}
}

// TestEndToEndAuthRequired: an OTLP receiver without auth in front of agentcost with
// auth.required — the misconfiguration it exists for — refuses every request (401, not retried)
// and passes nothing on.
func TestEndToEndAuthRequired(t *testing.T) {
	capture := &collectortest.Capture{}
	httpEP := collectortest.Endpoint(t)
	collectortest.Run(t, withCapture(capture), fmt.Sprintf(`
receivers:
  otlp:
    protocols:
      http: {endpoint: %s}
processors:
  agentcost: {auth: {required: true}}
exporters:
  capture: {}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [capture]}
`, httpEP))
	if got := postTraces(t, httpEP, e2eAgentToken, authSpans(3, "victim", nil, 9)); got != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", got)
	}
	if n := len(capture.Spans()); n != 0 {
		t.Errorf("%d spans passed on, want 0", n)
	}
}

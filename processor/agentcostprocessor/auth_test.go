package agentcostprocessor

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/agentcost/agentcost/internal/access"
)

// as returns a context authenticated by agentauth as id, as the OTLP receiver hands it on.
func as(id access.Identity) context.Context {
	return client.NewContext(context.Background(), client.Info{Auth: access.NewAuthData(id)})
}

func processAs(t *testing.T, ctx context.Context, cfg *Config, tel *componenttest.Telemetry, td ptrace.Traces) ptrace.Traces {
	t.Helper()
	p, sink := newTestProcessor(t, cfg, tel)
	if err := p.ConsumeTraces(ctx, td); err != nil {
		t.Fatal(err)
	}
	if n := len(sink.AllTraces()); n != 1 {
		t.Fatalf("%d batches forwarded, want 1", n)
	}
	return sink.AllTraces()[0]
}

func simCall(agent string) map[string]any {
	a := map[string]any{"gen_ai.request.model": "sim-llm", "gen_ai.usage.input_tokens": int64(40_000),
		"gen_ai.usage.output_tokens": int64(10_000)}
	if agent != "" {
		a["gen_ai.agent.name"] = agent
	}
	return a
}

func testConfig() *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Prices.Files = []string{filepath.Join("testdata", "prices.yaml")}
	return cfg
}

// TestAuthenticatedAgentWins: a span sent with agent A's token that claims agent B (by span
// attribute, by fields.agent override, or by a pre-priced agentcost.agent with its own cost) is
// priced here and booked to A; the claim is counted and kept in agentcost.auth.claimed_agent.
func TestAuthenticatedAgentWins(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	cfg := testConfig()
	cfg.Fields = map[string][]string{"agent": {`resource.attributes["k8s.deployment.name"]`}}
	forged := simCall("victim")
	forged["agentcost.cost_usd"] = 1237.5
	forged["agentcost.agent"] = "victim"
	td := buildTraces(t,
		spanSpec{name: "claims-victim", attrs: simCall("victim")},
		spanSpec{name: "override-claims-victim", attrs: simCall(""), resource: map[string]any{"k8s.deployment.name": "victim"}},
		spanSpec{name: "pre-priced", attrs: forged},
		spanSpec{name: "honest", attrs: simCall("research-agent")},
		spanSpec{name: "carried-subject", attrs: simCall(""), resource: map[string]any{access.KeySubject: "victim"}},
	)
	out := processAs(t, as(access.Identity{Role: access.RoleAgent, Subject: "research-agent"}), cfg, tel, td)
	for _, s := range spansOf(out) {
		if got := attrStr(s, "agentcost.agent"); got != "research-agent" {
			t.Errorf("span %s booked to %q, want the sender research-agent", s.Name(), got)
		}
		if got := attrDouble(t, s, "agentcost.cost_usd"); got != 0.75 {
			t.Errorf("span %s cost %v, want 0.75 priced from its usage", s.Name(), got)
		}
	}
	spans := spansOf(out)
	if got := attrStr(spans[0], "agentcost.auth.claimed_agent"); got != "victim" {
		t.Errorf("claimed agent %q, want victim", got)
	}
	if got := attrStr(spans[3], "agentcost.auth.claimed_agent"); got != "" {
		t.Errorf("honest span marked as claiming %q", got)
	}
	if _, ok := out.ResourceSpans().At(4).Resource().Attributes().Get(access.KeySubject); ok {
		t.Error("an agent's agentcost.auth.subject was kept")
	}
	// claims-victim, override-claims-victim, pre-priced; the carried subject from an agent is
	// removed, not a claim, and its span names no agent.
	if n := sumCounter(t, tel, "otelcol_processor_agentcost_spans_agent_overridden"); n != 3 {
		t.Errorf("%s = %d, want 3", "otelcol_processor_agentcost_spans_agent_overridden", n)
	}
}

// TestUnauthenticatedKeepsSpanAttribution: without agentauth data (auth not configured, or another
// authenticator) spans keep their own attribution, and a carried subject is never trusted.
func TestUnauthenticatedKeepsSpanAttribution(t *testing.T) {
	td := buildTraces(t, spanSpec{name: "s", attrs: simCall("drafting-agent"), resource: map[string]any{access.KeySubject: "victim"}})
	out := processAs(t, context.Background(), testConfig(), nil, td)
	if got := attrStr(spansOf(out)[0], "agentcost.agent"); got != "drafting-agent" {
		t.Errorf("agent %q, want drafting-agent", got)
	}
	if _, ok := out.ResourceSpans().At(0).Resource().Attributes().Get(access.KeySubject); ok {
		t.Error("an unauthenticated agentcost.auth.subject was kept")
	}
}

// TestForwarder: a forwarder's carried subject is the agent when its token may forward for it; a
// subject outside its agents list is booked to the forwarder, as are spans claiming such agents
// when nothing was carried.
func TestForwarder(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	fw := access.Identity{Role: access.RoleForwarder, Subject: "tier1", Agents: []string{"research-agent", "drafting-agent"}}
	td := buildTraces(t,
		spanSpec{name: "carried", attrs: simCall("victim"), resource: map[string]any{access.KeySubject: "research-agent"}},
		spanSpec{name: "carried-not-listed", attrs: simCall(""), resource: map[string]any{access.KeySubject: "victim"}},
		spanSpec{name: "own-listed", attrs: simCall("drafting-agent")},
		spanSpec{name: "own-not-listed", attrs: simCall("victim")},
		spanSpec{name: "pre-priced-not-listed", attrs: map[string]any{"agentcost.cost_usd": 0.5, "agentcost.agent": "victim"}},
	)
	out := processAs(t, as(fw), testConfig(), tel, td)
	want := []string{"research-agent", "tier1", "drafting-agent", "tier1", "tier1"}
	for i, s := range spansOf(out) {
		if got := attrStr(s, "agentcost.agent"); got != want[i] {
			t.Errorf("span %s booked to %q, want %q", s.Name(), got, want[i])
		}
	}
	// A trusted forwarder's pricing stands; only its agent obeys the agents list.
	if got := attrDouble(t, spansOf(out)[4], "agentcost.cost_usd"); got != 0.5 {
		t.Errorf("pre-priced span cost %v, want the forwarder's 0.5", got)
	}
	// carried (span claimed victim), own-not-listed, pre-priced-not-listed; carried-not-listed
	// names no agent of its own.
	if n := sumCounter(t, tel, "otelcol_processor_agentcost_spans_agent_overridden"); n != 3 {
		t.Errorf("%s = %d, want 3", "otelcol_processor_agentcost_spans_agent_overridden", n)
	}
	// Without an agents list a forwarder may send for any agent.
	unrestricted := access.Identity{Role: access.RoleForwarder, Subject: "node"}
	out = processAs(t, as(unrestricted), testConfig(), nil, buildTraces(t,
		spanSpec{name: "carried", attrs: simCall(""), resource: map[string]any{access.KeySubject: "victim"}},
		spanSpec{name: "own", attrs: simCall("billing-agent")}))
	if a, b := attrStr(spansOf(out)[0], "agentcost.agent"), attrStr(spansOf(out)[1], "agentcost.agent"); a != "victim" || b != "billing-agent" {
		t.Errorf("unrestricted forwarder: agents %q, %q", a, b)
	}
}

// TestForwardMode: the edge collector writes the authenticated agent's subject on the resource and
// prices nothing; it drops a subject an unauthenticated sender carried.
func TestForwardMode(t *testing.T) {
	cfg := testConfig()
	cfg.Auth.Mode = AuthModeForward
	out := processAs(t, as(access.Identity{Role: access.RoleAgent, Subject: "research-agent"}), cfg, nil,
		buildTraces(t, spanSpec{name: "s", attrs: simCall("victim"), resource: map[string]any{access.KeySubject: "victim"}}))
	if v, _ := out.ResourceSpans().At(0).Resource().Attributes().Get(access.KeySubject); v.AsString() != "research-agent" {
		t.Errorf("carried subject %q, want research-agent", v.AsString())
	}
	if _, ok := spansOf(out)[0].Attributes().Get("agentcost.cost_usd"); ok {
		t.Error("forward mode priced a span")
	}
	out = processAs(t, context.Background(), cfg, nil,
		buildTraces(t, spanSpec{name: "s", attrs: simCall(""), resource: map[string]any{access.KeySubject: "victim"}}))
	if _, ok := out.ResourceSpans().At(0).Resource().Attributes().Get(access.KeySubject); ok {
		t.Error("forward mode kept an unauthenticated carried subject")
	}
}

// TestAuthRequired: with auth.required a batch without agentauth authentication (a receiver without
// auth, or a batch processor in front that dropped the context) is refused with a permanent error
// and counted; an authenticated one passes.
func TestAuthRequired(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	cfg := testConfig()
	cfg.Auth.Required = true
	p, sink := newTestProcessor(t, cfg, tel)
	err := p.ConsumeTraces(context.Background(), buildTraces(t, spanSpec{name: "s", attrs: simCall("victim")}))
	if !consumererror.IsPermanent(err) || !strings.Contains(err.Error(), "auth.required") {
		t.Fatalf("error %v, want a permanent one naming auth.required", err)
	}
	if len(sink.AllTraces()) != 0 {
		t.Fatal("a refused batch was forwarded")
	}
	if n := sumCounter(t, tel, "otelcol_processor_agentcost_spans_unauthenticated"); n != 1 {
		t.Errorf("%s = %d, want 1", "otelcol_processor_agentcost_spans_unauthenticated", n)
	}
	if err := p.ConsumeTraces(as(access.Identity{Role: access.RoleAgent, Subject: "a"}), buildTraces(t, spanSpec{name: "s", attrs: simCall("")})); err != nil {
		t.Fatal(err)
	}
	if len(sink.AllTraces()) != 1 {
		t.Fatal("an authenticated batch was not forwarded")
	}
}

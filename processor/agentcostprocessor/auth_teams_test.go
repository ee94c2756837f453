package agentcostprocessor

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agentcost/agentcost/internal/access"
)

// teamAgent is an agent token that may charge research (its default) and growth.
var teamAgent = access.Identity{Role: access.RoleAgent, Subject: "research-agent", Teams: []string{"research", "growth"}}

func withTeam(attrs map[string]any, team string) map[string]any {
	attrs["agentcost.team"] = team
	return attrs
}

// TestAgentTokenTeams: the spans of an agent token that lists teams are booked to a listed team
// whatever they claim — by span attribute, resource attribute, service.namespace, fields.team
// override, or a forged pre-priced span — to the token's default team when they claim another
// (counted, the claim kept in agentcost.auth.claimed_team) or none (not counted); a listed team
// stands.
func TestAgentTokenTeams(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	cfg := testConfig()
	cfg.Fields = map[string][]string{"team": {`resource.attributes["k8s.namespace.name"]`}}
	forged := withTeam(simCall(""), "victim")
	forged["agentcost.cost_usd"] = 1237.5
	td := buildTraces(t,
		spanSpec{name: "span-claims-victim", attrs: withTeam(simCall(""), "victim")},
		spanSpec{name: "resource-claims-victim", attrs: simCall(""), resource: map[string]any{"team": "victim"}},
		spanSpec{name: "namespace-claims-victim", attrs: simCall(""), resource: map[string]any{"service.namespace": "victim"}},
		spanSpec{name: "override-claims-victim", attrs: simCall(""), resource: map[string]any{"k8s.namespace.name": "victim"}},
		spanSpec{name: "forged-pre-priced", attrs: forged},
		spanSpec{name: "listed", attrs: withTeam(simCall(""), "growth")},
		spanSpec{name: "no-team", attrs: simCall("")},
		spanSpec{name: "carried-teams-ignored", attrs: withTeam(simCall(""), "victim"), resource: map[string]any{access.KeyTeams: []any{"victim"}}},
	)
	out := processAs(t, as(teamAgent), cfg, tel, td)
	want := []struct{ team, claimed string }{
		{"research", "victim"}, {"research", "victim"}, {"research", "victim"}, {"research", "victim"},
		{"research", "victim"}, {"growth", ""}, {"research", ""}, {"research", "victim"},
	}
	for i, s := range spansOf(out) {
		if got := attrStr(s, "agentcost.team"); got != want[i].team {
			t.Errorf("span %s booked to team %q, want %q", s.Name(), got, want[i].team)
		}
		if got := attrStr(s, "agentcost.auth.claimed_team"); got != want[i].claimed {
			t.Errorf("span %s claimed team %q, want %q", s.Name(), got, want[i].claimed)
		}
		if got := attrDouble(t, s, "agentcost.cost_usd"); got != 0.75 {
			t.Errorf("span %s cost %v, want 0.75 priced from its usage", s.Name(), got)
		}
	}
	if _, ok := out.ResourceSpans().At(7).Resource().Attributes().Get(access.KeyTeams); ok {
		t.Error("an agent's agentcost.auth.teams was kept")
	}
	if n := sumCounter(t, tel, "otelcol_processor_agentcost_spans_team_overridden"); n != 6 {
		t.Errorf("%s = %d, want 6", "otelcol_processor_agentcost_spans_team_overridden", n)
	}
	if n := sumCounter(t, tel, "otelcol_processor_agentcost_spans_agent_overridden"); n != 0 {
		t.Errorf("%s = %d, want 0 (no span claimed another agent)", "otelcol_processor_agentcost_spans_agent_overridden", n)
	}

	// Without teams on the token the spans' team stands (the compatible default).
	out = processAs(t, as(access.Identity{Role: access.RoleAgent, Subject: "research-agent"}), testConfig(), nil,
		buildTraces(t, spanSpec{name: "claims-victim", attrs: withTeam(simCall(""), "victim")}))
	if got := attrStr(spansOf(out)[0], "agentcost.team"); got != "victim" {
		t.Errorf("token without teams: team %q, want the span's victim", got)
	}
}

// TestReviewerTokenRefused: a batch sent with a reviewer token is refused with a permanent
// PermissionDenied error (403 to an OTLP/HTTP sender), nothing of it is passed on, and its spans
// are counted; in price mode and at an edge in forward mode alike.
func TestReviewerTokenRefused(t *testing.T) {
	for _, mode := range []string{AuthModePrice, AuthModeForward} {
		t.Run(mode, func(t *testing.T) {
			tel := componenttest.NewTelemetry()
			t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
			cfg := testConfig()
			cfg.Auth.Mode = mode
			p, sink := newTestProcessor(t, cfg, tel)
			reviewer := access.Identity{Role: access.RoleReviewer, Subject: "alice@example.com"}
			err := p.ConsumeTraces(as(reviewer), buildTraces(t, spanSpec{name: "a", attrs: simCall("")}, spanSpec{name: "b", attrs: simCall("victim")}))
			if !consumererror.IsPermanent(err) || status.Code(err) != codes.PermissionDenied {
				t.Fatalf("error %v, want a permanent PermissionDenied", err)
			}
			if len(sink.AllTraces()) != 0 {
				t.Fatal("a reviewer's batch was passed on")
			}
			if n := sumCounter(t, tel, "otelcol_processor_agentcost_spans_forbidden"); n != 2 {
				t.Errorf("%s = %d, want 2", "otelcol_processor_agentcost_spans_forbidden", n)
			}
			if n := sumCounter(t, tel, "otelcol_processor_agentcost_spans_priced"); n != 0 {
				t.Errorf("%d spans priced", n)
			}
		})
	}
}

// TestForwarderCarriedTeams: behind an edge, the teams it carried with the agent's subject hold
// the spans as the agent token itself would; carried teams are dropped when the forwarder may not
// send for the carried subject, or when no subject was carried.
func TestForwarderCarriedTeams(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	fw := access.Identity{Role: access.RoleForwarder, Subject: "tier1", Agents: []string{"research-agent"}}
	teams := []any{"research", "growth"}
	td := buildTraces(t,
		spanSpec{name: "carried-claims-victim", attrs: withTeam(simCall(""), "victim"),
			resource: map[string]any{access.KeySubject: "research-agent", access.KeyTeams: teams}},
		spanSpec{name: "carried-listed", attrs: withTeam(simCall(""), "growth"),
			resource: map[string]any{access.KeySubject: "research-agent", access.KeyTeams: teams}},
		spanSpec{name: "carried-no-teams", attrs: withTeam(simCall(""), "victim"),
			resource: map[string]any{access.KeySubject: "research-agent"}},
		spanSpec{name: "subject-not-listed", attrs: withTeam(simCall(""), "victim"),
			resource: map[string]any{access.KeySubject: "victim", access.KeyTeams: []any{"victim"}}},
		spanSpec{name: "teams-without-subject", attrs: withTeam(simCall("research-agent"), "victim"),
			resource: map[string]any{access.KeyTeams: []any{"research"}}},
	)
	out := processAs(t, as(fw), testConfig(), tel, td)
	want := []struct{ agent, team string }{
		{"research-agent", "research"}, {"research-agent", "growth"}, {"research-agent", "victim"}, {"tier1", "victim"}, {"research-agent", "victim"},
	}
	for i, s := range spansOf(out) {
		if a, tm := attrStr(s, "agentcost.agent"), attrStr(s, "agentcost.team"); a != want[i].agent || tm != want[i].team {
			t.Errorf("span %s booked to %q/%q, want %q/%q", s.Name(), a, tm, want[i].agent, want[i].team)
		}
	}
	for i := 3; i < 5; i++ {
		if _, ok := out.ResourceSpans().At(i).Resource().Attributes().Get(access.KeyTeams); ok {
			t.Errorf("resource %d kept untrusted carried teams", i)
		}
	}
	if n := sumCounter(t, tel, "otelcol_processor_agentcost_spans_team_overridden"); n != 1 {
		t.Errorf("%s = %d, want 1", "otelcol_processor_agentcost_spans_team_overridden", n)
	}
}

func carried(t *testing.T, rs ptrace.ResourceSpans) (subject string, teams []string) {
	t.Helper()
	ra := rs.Resource().Attributes()
	if v, ok := ra.Get(access.KeySubject); ok {
		subject = v.AsString()
	}
	if v, ok := ra.Get(access.KeyTeams); ok {
		if v.Type() != pcommon.ValueTypeSlice {
			t.Fatalf("%s is a %s", access.KeyTeams, v.Type())
		}
		for _, x := range v.Slice().AsRaw() {
			teams = append(teams, x.(string))
		}
	}
	return subject, teams
}

// TestForwardModeTeams: the edge writes the agent token's teams beside its subject (replacing what
// the agent put there, removing them for a token without teams), passes a forwarder's carried
// teams on only with a subject it may send for, and drops them from an unauthenticated sender.
// The replica behind, authenticated by the edge's forwarder token, then books the spans to the
// agent's default team.
func TestForwardModeTeams(t *testing.T) {
	cfg := testConfig()
	cfg.Auth.Mode = AuthModeForward
	forged := map[string]any{access.KeySubject: "victim", access.KeyTeams: []any{"victim"}}
	fw := access.Identity{Role: access.RoleForwarder, Subject: "node-a", Agents: []string{"research-agent"}}
	for _, c := range []struct {
		name        string
		ctx         context.Context
		resource    map[string]any
		wantSubject string
		wantTeams   []string
	}{
		{"agent with teams", as(teamAgent), forged, "research-agent", []string{"research", "growth"}},
		{"agent without teams", as(access.Identity{Role: access.RoleAgent, Subject: "research-agent"}), forged, "research-agent", nil},
		{"unauthenticated", context.Background(), forged, "", nil},
		{"forwarder, listed subject", as(fw), map[string]any{access.KeySubject: "research-agent", access.KeyTeams: []any{"research"}}, "research-agent", []string{"research"}},
		{"forwarder, subject not listed", as(fw), forged, "node-a", nil},
		{"forwarder, no subject", as(fw), map[string]any{access.KeyTeams: []any{"victim"}}, "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := map[string]any{}
			for k, v := range c.resource {
				res[k] = v
			}
			out := processAs(t, c.ctx, cfg, nil, buildTraces(t, spanSpec{name: "s", attrs: withTeam(simCall(""), "victim"), resource: res}))
			subject, teams := carried(t, out.ResourceSpans().At(0))
			if subject != c.wantSubject || !slices.Equal(teams, c.wantTeams) {
				t.Errorf("carried %q %v, want %q %v", subject, teams, c.wantSubject, c.wantTeams)
			}
		})
	}
	// Edge then replica: the victim team is never charged.
	edgeOut := processAs(t, as(teamAgent), cfg, nil, buildTraces(t, spanSpec{name: "s", attrs: withTeam(simCall(""), "victim")}))
	out := processAs(t, as(access.Identity{Role: access.RoleForwarder, Subject: "tier1"}), testConfig(), nil, edgeOut)
	if a, tm := attrStr(spansOf(out)[0], "agentcost.agent"), attrStr(spansOf(out)[0], "agentcost.team"); a != "research-agent" || tm != "research" {
		t.Errorf("through the edge: booked to %q/%q, want research-agent/research", a, tm)
	}
}

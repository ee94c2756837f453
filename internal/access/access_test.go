package access

import (
	"strings"
	"testing"
)

// TestLookup: every token maps to its own identity, near misses (prefix, extension, case, empty)
// to none.
func TestLookup(t *testing.T) {
	s, err := Load("tokens", []TokenConfig{
		{Token: "agent-token-research-0001", Role: RoleAgent, Subject: "research-agent"},
		{Token: "forwarder-token-tier1-0002", Role: RoleForwarder, Subject: "tier1", Agents: []string{"research-agent"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := s.Lookup("agent-token-research-0001"); !ok || id.Role != RoleAgent || id.Subject != "research-agent" {
		t.Errorf("agent: %+v %v", id, ok)
	}
	if id, ok := s.Lookup("forwarder-token-tier1-0002"); !ok || !id.MayForward("research-agent") || id.MayForward("victim") {
		t.Errorf("forwarder: %+v %v", id, ok)
	}
	for _, miss := range []string{"", "agent-token-research-000", "agent-token-research-00011", "AGENT-TOKEN-RESEARCH-0001"} {
		if _, ok := s.Lookup(miss); ok {
			t.Errorf("%q matched", miss)
		}
	}
	if (Identity{Role: RoleAgent, Subject: "a"}).MayForward("a") {
		t.Error("an agent may forward")
	}
	if !(Identity{Role: RoleForwarder}).MayForward("anyone") {
		t.Error("a forwarder without agents may not forward")
	}
	if (*Set)(nil).Len() != 0 || s.Len() != 2 {
		t.Error("Len")
	}
}

func TestBearerToken(t *testing.T) {
	for h, want := range map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc", "Basic abc": "", "Bearer ": "", "abc": ""} {
		got, ok := BearerToken(h)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v", h, got, ok)
		}
	}
}

func TestValidateNamesKeys(t *testing.T) {
	err := Validate("access.tokens", []TokenConfig{{Token: "x", Role: "admin"}})
	for _, want := range []string{`access.tokens[0].role: "admin"`, "access.tokens[0].subject: required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}

// TestValidateTeams: only an agent token lists teams, and its entries are non-empty, trimmed and
// distinct; each message names the key.
func TestValidateTeams(t *testing.T) {
	ok := TokenConfig{Token: "x", Role: RoleAgent, Subject: "a", Teams: []string{"growth", "research"}}
	if err := Validate("tokens", []TokenConfig{ok}); err != nil {
		t.Fatalf("valid agent teams: %v", err)
	}
	for _, c := range []struct {
		tok  TokenConfig
		want string
	}{
		{TokenConfig{Token: "x", Role: RoleReviewer, Subject: "r", Teams: []string{"growth"}}, "tokens[1].teams: only an agent token lists teams"},
		{TokenConfig{Token: "x", Role: RoleForwarder, Subject: "f", Teams: []string{"growth"}}, "tokens[1].teams: only an agent token lists teams"},
		{TokenConfig{Token: "x", Role: RoleAgent, Subject: "a", Teams: []string{"growth", " "}}, "tokens[1].teams[1]: empty team"},
		{TokenConfig{Token: "x", Role: RoleAgent, Subject: "a", Teams: []string{" growth"}}, `tokens[1].teams[0]: " growth" has surrounding whitespace`},
		{TokenConfig{Token: "x", Role: RoleAgent, Subject: "a", Teams: []string{"growth", "growth"}}, `tokens[1].teams[1]: "growth" is listed twice`},
	} {
		err := Validate("tokens", []TokenConfig{ok, c.tok})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.tok, err, c.want)
		}
	}
}

// TestLoadKeepsTeams: Load keeps an agent token's teams in order (the first is the default), and
// the authentication data exposes them.
func TestLoadKeepsTeams(t *testing.T) {
	s, err := Load("tokens", []TokenConfig{
		{Token: "agent-token-research-0001", Role: RoleAgent, Subject: "research-agent", Teams: []string{"research", "growth"}},
		{Token: "agent-token-any-team-0002", Role: RoleAgent, Subject: "any-agent"},
	})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := s.Lookup("agent-token-research-0001")
	if len(id.Teams) != 2 || id.Teams[0] != "research" || id.Teams[1] != "growth" {
		t.Errorf("teams %v", id.Teams)
	}
	if got, ok := NewAuthData(id).GetAttribute(AttrTeams).([]string); !ok || len(got) != 2 || got[0] != "research" {
		t.Errorf("teams attribute %v", got)
	}
	if anyTeam, _ := s.Lookup("agent-token-any-team-0002"); anyTeam.Teams != nil {
		t.Errorf("a token without teams has %v", anyTeam.Teams)
	}
}

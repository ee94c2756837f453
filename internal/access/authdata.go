package access

import "slices"

// Attribute names of the authentication data (client.Info.Auth) the agentauth extension puts in
// an authenticated request's context.
const (
	// AttrSubject is the token's subject (string).
	AttrSubject = "subject"
	// AttrRole is the token's role (string).
	AttrRole = "role"
	// AttrMembership is the token's role as a one-element group list ([]string), the name other
	// authenticators use for group membership.
	AttrMembership = "membership"
	// AttrAgents is a forwarder's agent allow-list ([]string; empty: any agent).
	AttrAgents = "agents"
	// AttrTeams is an agent's team list ([]string; the first is its default; empty: any team).
	AttrTeams = "teams"
)

// KeySubject is the resource attribute in which an edge collector (the agentcost processor with
// auth.mode forward) carries the authenticated agent of the spans it forwards. It is trusted only
// from a request authenticated with a forwarder token; from anyone else it is removed.
const KeySubject = "agentcost.auth.subject"

// KeyTeams is the resource attribute (a string list) in which an edge collector carries the teams
// of the authenticated agent token (its tokens[].teams, the first the default) beside KeySubject;
// absent when the token lists none. Like KeySubject it is trusted only from a forwarder token
// that may forward for the carried subject, and removed otherwise.
const KeyTeams = "agentcost.auth.teams"

var attrNames = []string{AttrSubject, AttrRole, AttrMembership, AttrAgents, AttrTeams}

// AuthData is the client.AuthData of a request authenticated with an agentcost token.
type AuthData struct {
	id Identity
}

// NewAuthData returns the authentication data of id.
func NewAuthData(id Identity) *AuthData { return &AuthData{id: id} }

// Identity returns the authenticated identity.
func (a *AuthData) Identity() Identity { return a.id }

// GetAttribute returns the value of the attribute name: subject and role as strings, membership,
// agents and teams as string lists; nil for other names.
func (a *AuthData) GetAttribute(name string) any {
	switch name {
	case AttrSubject:
		return a.id.Subject
	case AttrRole:
		return string(a.id.Role)
	case AttrMembership:
		return []string{string(a.id.Role)}
	case AttrAgents:
		return slices.Clone(a.id.Agents)
	case AttrTeams:
		return slices.Clone(a.id.Teams)
	}
	return nil
}

// GetAttributeNames returns the names of the attributes.
func (a *AuthData) GetAttributeNames() []string { return slices.Clone(attrNames) }

// FromAuth returns the identity in auth when an agentcost authenticator produced it. Data from
// other authenticators is not trusted for attribution: it returns false.
func FromAuth(auth any) (Identity, bool) {
	a, ok := auth.(*AuthData)
	if !ok || a == nil {
		return Identity{}, false
	}
	return a.id, true
}

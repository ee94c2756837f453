// Package access is agentcost's token model, shared by the agentauth authenticator extension (OTLP)
// and the budget receiver (decision API): token entries with a role and a subject, their
// validation (messages name the YAML keys), loading (token files, a minimum length, no duplicates)
// and a constant-time lookup.
package access

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/config/configopaque"

	"github.com/agentcost/agentcost/internal/boundedfile"
)

// Role is what an authenticated caller may do: its token's role, or RoleOpen for every caller of
// an API without access control. It is the one definition of roles: the token lists, the
// agentcost processor and the decision API's engine all use it.
type Role string

// The roles. A token has one of agent, reviewer or forwarder.
const (
	// RoleOpen is every caller of an API without access control: it may use every endpoint and is
	// not held to a subject. No token has it.
	RoleOpen Role = ""
	// RoleAgent is an agent: it decides and releases for its subject, and its spans are booked to
	// its subject whatever they claim (and, when the token lists teams, to one of its teams).
	RoleAgent Role = "agent"
	// RoleReviewer is a reviewer: it lists, approves and denies approvals. It sends no spans: the
	// agentcost processor refuses OTLP from it.
	RoleReviewer Role = "reviewer"
	// RoleForwarder is a trusted collector in front (a load-balancing tier, a node collector): it
	// sends spans on behalf of agents (any, or those listed in agents). The decision API refuses it.
	RoleForwarder Role = "forwarder"
)

// String returns the role's name: open, agent, reviewer or forwarder.
func (r Role) String() string {
	if r == RoleOpen {
		return "open"
	}
	return string(r)
}

// MinTokenBytes is the shortest token accepted: shorter ones are guessable.
const MinTokenBytes = 16

// TokenConfig is one bearer token, as written in YAML.
type TokenConfig struct {
	// Token is the token itself; prefer TokenFile.
	Token configopaque.String `mapstructure:"token"`
	// TokenFile is a file holding the token (surrounding whitespace is ignored), read at start.
	TokenFile string `mapstructure:"token_file"`
	// Role is agent, reviewer or forwarder.
	Role Role `mapstructure:"role"`
	// Subject is the agent id of an agent token, the reviewer's identity of a reviewer token, the
	// forwarder's name (used in logs and as the agent of spans it may not forward) of a forwarder
	// token.
	Subject string `mapstructure:"subject"`
	// Agents restricts a forwarder token to these agents; empty lets it forward for any agent.
	// Only for role forwarder.
	Agents []string `mapstructure:"agents"`
	// Teams are the teams an agent token may charge, the first being the agent's default team:
	// its spans naming another team (or none) are booked to the first, and its decision requests
	// may name only these (none: the first). Empty leaves the team to the spans and requests.
	// Only for role agent.
	Teams []string `mapstructure:"teams"`
}

// Validate checks tokens; key is the YAML key of the list (e.g. "access.tokens") and prefixes
// every message.
func Validate(key string, tokens []TokenConfig) error {
	if len(tokens) == 0 {
		return fmt.Errorf("%s: at least one token is required", key)
	}
	var errs error
	for i, t := range tokens {
		k := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case t.Token == "" && t.TokenFile == "":
			errs = errors.Join(errs, fmt.Errorf("%s: set token_file or token", k))
		case t.Token != "" && t.TokenFile != "":
			errs = errors.Join(errs, fmt.Errorf("%s: set token_file or token, not both", k))
		}
		switch t.Role {
		case RoleAgent, RoleReviewer, RoleForwarder:
		default:
			errs = errors.Join(errs, fmt.Errorf("%s.role: %q is not agent, reviewer or forwarder", k, string(t.Role)))
		}
		if strings.TrimSpace(t.Subject) == "" {
			errs = errors.Join(errs, fmt.Errorf("%s.subject: required (the agent id, the reviewer's identity or the forwarder's name)", k))
		}
		if len(t.Agents) > 0 && t.Role != RoleForwarder {
			errs = errors.Join(errs, fmt.Errorf("%s.agents: only a forwarder token lists agents", k))
		}
		for j, a := range t.Agents {
			if strings.TrimSpace(a) == "" {
				errs = errors.Join(errs, fmt.Errorf("%s.agents[%d]: empty agent", k, j))
			}
		}
		if len(t.Teams) > 0 && t.Role != RoleAgent {
			errs = errors.Join(errs, fmt.Errorf("%s.teams: only an agent token lists teams", k))
		}
		for j, team := range t.Teams {
			switch {
			case strings.TrimSpace(team) == "":
				errs = errors.Join(errs, fmt.Errorf("%s.teams[%d]: empty team", k, j))
			case team != strings.TrimSpace(team):
				errs = errors.Join(errs, fmt.Errorf("%s.teams[%d]: %q has surrounding whitespace", k, j, team))
			case slices.Contains(t.Teams[:j], team):
				errs = errors.Join(errs, fmt.Errorf("%s.teams[%d]: %q is listed twice", k, j, team))
			}
		}
	}
	return errs
}

// Identity is who a token authenticates.
type Identity struct {
	// Role is RoleAgent, RoleReviewer or RoleForwarder.
	Role Role
	// Subject is the token's subject.
	Subject string
	// Agents is a forwarder's allow-list; empty allows every agent.
	Agents []string
	// Teams are the teams an agent may charge, the first its default; empty: any team.
	Teams []string
}

// MayForward reports whether a forwarder may send spans for agent.
func (id Identity) MayForward(agent string) bool {
	return id.Role == RoleForwarder && (len(id.Agents) == 0 || slices.Contains(id.Agents, agent))
}

// Set is a loaded token list. Its lookup hashes the presented token and compares the hash with
// every entry's in constant time, so neither the match nor its position leaks through timing.
type Set struct {
	sums []([sha256.Size]byte)
	ids  []Identity
}

// Load reads the tokens (token files now) and checks that they are long enough and distinct; key
// is the YAML key of the list, as in Validate. Call Validate first.
func Load(key string, tokens []TokenConfig) (*Set, error) {
	s := &Set{}
	seen := map[[sha256.Size]byte]int{}
	for i, t := range tokens {
		k := fmt.Sprintf("%s[%d]", key, i)
		tok := string(t.Token)
		if t.TokenFile != "" {
			data, err := boundedfile.Read(t.TokenFile, 0) // the bound every loaded file shares
			if err != nil {
				return nil, fmt.Errorf("%s.token_file: %w", k, err)
			}
			tok = strings.TrimSpace(string(data))
		}
		if len(tok) < MinTokenBytes {
			return nil, fmt.Errorf("%s: the token is %d bytes long; at least %d are required", k, len(tok), MinTokenBytes)
		}
		sum := sha256.Sum256([]byte(tok))
		if j, dup := seen[sum]; dup {
			return nil, fmt.Errorf("%s: the same token as %s[%d]", k, key, j)
		}
		seen[sum] = i
		s.sums = append(s.sums, sum)
		s.ids = append(s.ids, Identity{Role: t.Role, Subject: t.Subject, Agents: slices.Clone(t.Agents), Teams: slices.Clone(t.Teams)})
	}
	return s, nil
}

// Len returns the number of tokens; 0 for a nil set.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.ids)
}

// Lookup returns the identity of token, comparing against every entry in constant time.
func (s *Set) Lookup(token string) (Identity, bool) {
	if token == "" {
		return Identity{}, false
	}
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range s.sums {
		if subtle.ConstantTimeCompare(sum[:], s.sums[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Identity{}, false
	}
	return s.ids[found], true
}

// BearerToken returns the token of an "Authorization: Bearer <token>" header value.
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

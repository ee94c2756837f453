package decisionapi

import (
	"encoding/json"
	"time"
)

// The freeze and lease-check paths.
const (
	// PathFreezes creates (POST) and lists (GET) freezes; reviewers only.
	PathFreezes = "/v1/freezes"
	// PathFreeze lifts (DELETE) one freeze; reviewers only.
	PathFreeze = "/v1/freezes/{id}"
	// PathLease reads (GET) a lease's state and whether its scope is frozen; an agent reads its
	// own leases.
	PathLease = "/v1/leases/{id}"
)

// RuleFreeze is the rule_id of a decision denied because its scope is frozen.
const RuleFreeze = "freeze"

// FreezeScope is what a freeze stops.
type FreezeScope string

// The freeze scopes.
const (
	FreezeFleet FreezeScope = "fleet"
	FreezeTeam  FreezeScope = "team"
	FreezeAgent FreezeScope = "agent"
	FreezeRun   FreezeScope = "run"
)

// FreezeScopes lists the scopes.
func FreezeScopes() []FreezeScope {
	return []FreezeScope{FreezeFleet, FreezeTeam, FreezeAgent, FreezeRun}
}

// FreezeState is where a freeze is.
type FreezeState string

// The freeze states.
const (
	FreezeActive  FreezeState = "active"
	FreezeLifted  FreezeState = "lifted"
	FreezeExpired FreezeState = "expired"
)

// MaxFreezeSec bounds expires_in_sec: a year.
const MaxFreezeSec = 366 * 24 * 3600

// FreezeRequest is the body of POST /v1/freezes.
type FreezeRequest struct {
	// Scope is fleet, team, agent or run.
	Scope FreezeScope `json:"scope"`
	// ScopeID is the team, agent or run id; required except for the fleet, where it must be empty.
	ScopeID string `json:"scope_id,omitempty"`
	// Reason is why: every decision denied by the freeze carries it. Required.
	Reason string `json:"reason"`
	// ExpiresInSec, when set, ends the freeze that many seconds after it is created (1 to
	// MaxFreezeSec); without it the freeze holds until lifted.
	ExpiresInSec *int64 `json:"expires_in_sec,omitempty"`
}

// Validate checks the request, naming the field at fault.
func (r *FreezeRequest) Validate() error {
	if !oneOf(r.Scope, FreezeScopes()) {
		return fieldErr("scope", "unknown scope %q (want fleet, team, agent or run)", truncate(string(r.Scope)))
	}
	if r.Scope == FreezeFleet {
		if r.ScopeID != "" {
			return fieldErr("scope_id", "must be empty for a fleet freeze")
		}
	} else if err := requiredID("scope_id", r.ScopeID); err != nil {
		return err
	}
	if r.Reason == "" {
		return fieldErr("reason", "is required")
	}
	if err := validProse("reason", r.Reason, MaxTextBytes); err != nil {
		return err
	}
	if r.ExpiresInSec != nil && (*r.ExpiresInSec < 1 || *r.ExpiresInSec > MaxFreezeSec) {
		return fieldErr("expires_in_sec", "must be from 1 to %d, got %d", MaxFreezeSec, *r.ExpiresInSec)
	}
	return nil
}

// Freeze is a freeze as the API shows it.
type Freeze struct {
	// FreezeID identifies the freeze (DELETE /v1/freezes/{id} lifts it).
	FreezeID string      `json:"freeze_id"`
	Scope    FreezeScope `json:"scope"`
	ScopeID  string      `json:"scope_id,omitempty"`
	Reason   string      `json:"reason"`
	// State is active, lifted or expired at the time of the answer.
	State FreezeState `json:"state"`
	// CreatedBy is the reviewer who froze the scope.
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt, when set, is when the freeze ends by itself.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// LiftedBy and LiftedAt are set once a reviewer lifted it.
	LiftedBy string     `json:"lifted_by,omitempty"`
	LiftedAt *time.Time `json:"lifted_at,omitempty"`
}

// FreezeList is the answer to GET /v1/freezes.
type FreezeList struct {
	// Freezes are one page, oldest first.
	Freezes []Freeze `json:"freezes"`
	// NextCursor, when set, is the cursor of the next page; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// MarshalJSON encodes the list with an empty array, never null, for no freezes.
func (l FreezeList) MarshalJSON() ([]byte, error) {
	type plain FreezeList
	if l.Freezes == nil {
		l.Freezes = []Freeze{}
	}
	return json.Marshal(plain(l))
}

// ParseFreezeState parses the state query parameter of GET /v1/freezes: active, or empty for
// every state. The error is a *FieldError for field "state".
func ParseFreezeState(s string) (FreezeState, error) {
	if s == "" || s == string(FreezeActive) {
		return FreezeState(s), nil
	}
	return "", fieldErr("state", "unknown freeze filter %q (want active, or nothing for every freeze)", truncate(s))
}

// LeaseState is where a lease is.
type LeaseState string

// The lease states.
const (
	// LeaseOpen: the action may still be running.
	LeaseOpen LeaseState = "open"
	// LeaseExpired: past expires_at, not yet settled by the server.
	LeaseExpired LeaseState = "expired"
	// LeaseSettled: released or expired and settled.
	LeaseSettled LeaseState = "settled"
)

// LeaseStatus is the answer to GET /v1/leases/{id}: what a running action's watcher polls.
type LeaseStatus struct {
	LeaseID    string     `json:"lease_id"`
	DecisionID string     `json:"decision_id"`
	AgentID    string     `json:"agent_id"`
	State      LeaseState `json:"state"`
	ExpiresAt  time.Time  `json:"expires_at"`
	// Frozen is set when a freeze active now covers the lease's fleet, team, agent or run: the
	// action should stop. Freeze is the freeze (the oldest, when several apply).
	Frozen bool    `json:"frozen"`
	Freeze *Freeze `json:"freeze,omitempty"`
}

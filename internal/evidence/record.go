// Package evidence writes and verifies agentcost's cost evidence: append-only JSON lines, one
// record per line, each carrying the SHA-256 of the record before it so that an edit, a deletion
// or a reordering anywhere in the chain is detectable. One action's decision, approval and
// settlement records share its evidence_id.
//
// A record's hash is the lowercase hex SHA-256 of its JSON serialisation without the hash member,
// that is, of exactly the bytes of its line up to the trailing `,"hash":"…"` member, closed with
// `}`. The chain fields (seq, chain_id, prev_hash) come first and are assigned by the Writer.
package evidence

import (
	"errors"
	"fmt"
	"time"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Kind is the kind of an evidence record.
type Kind string

// The record kinds.
const (
	// KindDecision records a decision made before an action.
	KindDecision Kind = "decision"
	// KindApproval records a reviewer's answer to an approval request.
	KindApproval Kind = "approval"
	// KindSettlement records the settled cost of an action.
	KindSettlement Kind = "settlement"
	// KindAnomaly records a mid-flight anomaly: an open action's, or a running run's, running total
	// of booked spend crossed the multiplier × its baseline before it was settled (Level says which).
	KindAnomaly Kind = "anomaly"
	// KindFreeze records a reviewer freezing a scope (FreezeID, Scope, ScopeID, Reviewer, Reason).
	KindFreeze Kind = "freeze"
	// KindUnfreeze records a reviewer lifting a freeze.
	KindUnfreeze Kind = "unfreeze"
)

// USD is an exact dollar amount held in nano-dollars and written in JSON as a decimal number with at
// most nine fraction digits (0.000150225), so a reader parsing the text as a decimal gets it exactly.
type USD money.Nanos

// Nanos returns the amount in nano-dollars.
func (u USD) Nanos() money.Nanos { return money.Nanos(u) }

// MarshalJSON writes the amount as an exact decimal number.
func (u USD) MarshalJSON() ([]byte, error) {
	return []byte(money.Nanos(u).String()), nil
}

// UnmarshalJSON reads a decimal number (or a string holding one) exactly, rounding half-even past the
// nano-dollar.
func (u *USD) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
	}
	n, err := money.ParseUSD(string(b))
	if err != nil {
		return fmt.Errorf("dollar amount %s: %w", b, err)
	}
	*u = USD(n)
	return nil
}

// Tokens is the token usage of the spans matched to an action.
type Tokens struct {
	Input      int64 `json:"input"`
	Output     int64 `json:"output"`
	CacheRead  int64 `json:"cache_read,omitempty"`
	CacheWrite int64 `json:"cache_write,omitempty"`
	Reasoning  int64 `json:"reasoning,omitempty"`
}

// Anomaly is the per-action anomaly verdict of a settlement.
type Anomaly struct {
	Anomalous bool `json:"anomalous"`
	// Ratio is the actual cost over the baseline (finite; see internal/baseline).
	Ratio       float64 `json:"ratio,omitempty"`
	BaselineUSD USD     `json:"baseline_usd"`
}

// Record is one evidence record. Fields that do not belong to its kind stay empty and are omitted;
// an absent amount or count reads as zero.
type Record struct {
	// Seq is the record's position in the chain, from 1. Assigned by the Writer.
	Seq uint64 `json:"seq,omitempty"`
	// ChainID identifies the chain; it is created with the chain and never changes. Assigned by the
	// Writer.
	ChainID string `json:"chain_id,omitempty"`
	// PrevHash is the hash of the record before this one (64 zeros for the first). Assigned by the
	// Writer.
	PrevHash string `json:"prev_hash,omitempty"`

	// Kind is decision, approval, settlement, anomaly, freeze or unfreeze.
	Kind Kind `json:"kind"`
	// EvidenceID links the records of one action.
	EvidenceID string `json:"evidence_id"`
	// Time is when the event happened, in UTC; the Writer sets it when zero.
	Time time.Time `json:"time"`

	// Context shared by the kinds.
	RunID      string `json:"run_id,omitempty"`
	AgentID    string `json:"agent_id,omitempty"`
	Team       string `json:"team,omitempty"`
	Action     string `json:"action,omitempty"`
	DecisionID string `json:"decision_id,omitempty"`
	TraceID    string `json:"trace_id,omitempty"`
	LeaseID    string `json:"lease_id,omitempty"`
	ApprovalID string `json:"approval_id,omitempty"`

	// Decision fields.
	EstimatedCostUSD USD                      `json:"estimated_cost_usd,omitempty"`
	Decision         string                   `json:"decision,omitempty"`
	RuleID           string                   `json:"rule_id,omitempty"`
	Reason           string                   `json:"reason,omitempty"`
	PolicyVersion    string                   `json:"policy_version,omitempty"`
	PolicySHA256     string                   `json:"policy_sha256,omitempty"`
	Constraints      *decisionapi.Constraints `json:"constraints,omitempty"`

	// Approval fields.
	Reviewer string `json:"reviewer,omitempty"`
	// Outcome is the reviewer's answer: approved or denied.
	Outcome             string                   `json:"outcome,omitempty"`
	ModifiedConstraints *decisionapi.Constraints `json:"modified_constraints,omitempty"`
	CostCapUSD          USD                      `json:"cost_cap_usd,omitempty"`

	// Settlement fields.
	ActualCostUSD  USD                    `json:"actual_cost_usd,omitempty"`
	CostSource     decisionapi.CostSource `json:"cost_source,omitempty"`
	Tokens         *Tokens                `json:"tokens,omitempty"`
	SpansMatched   int64                  `json:"spans_matched,omitempty"`
	Anomaly        *Anomaly               `json:"anomaly,omitempty"`
	TokenCapBreach bool                   `json:"token_cap_breach,omitempty"`
	// ReportedCostUSD is the actual_cost_usd a release carried, before clipping; Clipped says it
	// was above the policy's bound and ActualCostUSD (when the cost came from the report) is the
	// bound that was booked.
	ReportedCostUSD *USD `json:"reported_cost_usd,omitempty"`
	Clipped         bool `json:"clipped,omitempty"`

	// Level is an anomaly record's level: action or run. Its ActualCostUSD is the running total
	// when it was flagged, SpansMatched the spans booked so far, Anomaly the verdict.
	Level string `json:"level,omitempty"`

	// Freeze and unfreeze fields: the freeze, its scope (fleet, team, agent or run) and scope id;
	// Reviewer is who froze or lifted it, Reason why it was frozen.
	FreezeID string `json:"freeze_id,omitempty"`
	Scope    string `json:"scope,omitempty"`
	ScopeID  string `json:"scope_id,omitempty"`

	// Hash is the record's own hash (see the package documentation). Assigned by the Writer, which
	// writes it as the line's last member.
	Hash string `json:"hash,omitempty"`
}

// validate checks what the Writer needs of a record before chaining it.
func (r *Record) validate() error {
	switch r.Kind {
	case KindDecision, KindApproval, KindSettlement, KindAnomaly, KindFreeze, KindUnfreeze:
	case "":
		return errors.New("kind is required")
	default:
		return fmt.Errorf("kind %q is not decision, approval, settlement, anomaly, freeze or unfreeze", r.Kind)
	}
	if r.EvidenceID == "" {
		return errors.New("evidence_id is required")
	}
	for _, f := range []struct {
		name string
		v    USD
	}{
		{"estimated_cost_usd", r.EstimatedCostUSD},
		{"cost_cap_usd", r.CostCapUSD},
		{"actual_cost_usd", r.ActualCostUSD},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s must not be negative", f.name)
		}
	}
	if r.Anomaly != nil && r.Anomaly.BaselineUSD < 0 {
		return errors.New("anomaly.baseline_usd must not be negative")
	}
	return nil
}

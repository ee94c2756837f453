package decisionapi

import "encoding/json"

// PathEvidence reads (GET) the cost-evidence records of one evidence_id that this replica wrote;
// reviewers only.
const PathEvidence = "/v1/evidence/{id}"

// EvidenceResponse is the answer to GET /v1/evidence/{id}: one action's records from this
// replica's evidence chain, in chain order (decision, approval, anomaly, settlement), and whether
// the chain verifies up to the last of them.
//
// Evidence is kept per replica: a replica answers only for the records it wrote, and 404 for an
// evidence_id another replica decided (read that replica's chain with `agentcostctl evidence`).
type EvidenceResponse struct {
	// EvidenceID is the id asked for.
	EvidenceID string `json:"evidence_id"`
	// ChainID is the id of this replica's chain.
	ChainID string `json:"chain_id"`
	// Records are the records, with the members the evidence file holds (seq, kind, hash, ...).
	Records []map[string]any `json:"records"`
	// Verified is true when the chain, from its first record to the last of these, has no problem:
	// every hash, seq and prev_hash checks.
	Verified bool `json:"verified"`
	// Problems describes the chain problems at or before the last of these records (at most 20).
	Problems []string `json:"problems,omitempty"`
}

// MarshalJSON encodes the response with an empty array, never null, for no records.
func (r EvidenceResponse) MarshalJSON() ([]byte, error) {
	type plain EvidenceResponse
	if r.Records == nil {
		r.Records = []map[string]any{}
	}
	return json.Marshal(plain(r))
}

// The budgets listing's order (GET /v1/budgets?order=...): by scope and id (the default), or by
// utilization, highest first. The cursor of one order is refused by the other.
const (
	QueryOrder       = "order"
	OrderScope       = "scope"
	OrderUtilization = "utilization"
)

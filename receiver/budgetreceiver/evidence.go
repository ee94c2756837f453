package budgetreceiver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// maxEvidenceRecords bounds the records one evidence_id answers with (an action has a handful).
const maxEvidenceRecords = 100

// maxEvidenceProblems bounds the chain problems an answer lists.
const maxEvidenceProblems = 20

// errEnoughRecords stops a scan once maxEvidenceRecords are found.
var errEnoughRecords = errors.New("enough records")

// evidence answers GET /v1/evidence/{id}: the records of one evidence_id in this replica's chain
// and whether the chain verifies up to the last of them. It reads the evidence files (a scan and
// a verification of the whole chain), so it is a reviewer's call, not an agent's hot path.
func (s *server) evidence(r *http.Request, _ decide.Caller) (any, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > 128 {
		ae := decisionapi.NewError(decisionapi.CodeInvalidField, "an evidence id of 1 to 128 characters is required")
		ae.Field = "id"
		return nil, ae
	}
	if s.evidenceDir == "" {
		return nil, decisionapi.NewError(decisionapi.CodeNotFound, "this replica keeps no evidence chain (budgetledger evidence is off)")
	}
	var out decisionapi.EvidenceResponse
	out.EvidenceID = id
	var last uint64
	err := evidence.Scan(s.evidenceDir, func(rec evidence.Record) error {
		if out.ChainID == "" {
			out.ChainID = rec.ChainID
		}
		if rec.EvidenceID != id {
			return nil
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		out.Records = append(out.Records, m)
		last = rec.Seq
		if len(out.Records) >= maxEvidenceRecords {
			return errEnoughRecords
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnoughRecords) {
		return nil, fmt.Errorf("reading the evidence chain: %w", err)
	}
	if len(out.Records) == 0 {
		return nil, decisionapi.NewError(decisionapi.CodeNotFound,
			"no evidence record %q on this replica: evidence is kept per replica, read the replica that decided the action (agentcostctl evidence)", id)
	}
	rep, err := evidence.Verify(s.evidenceDir)
	if err != nil {
		return nil, fmt.Errorf("verifying the evidence chain: %w", err)
	}
	out.Verified = true
	for _, p := range rep.Problems {
		// A problem past the last record does not touch it; one without a seq may.
		if p.Seq != 0 && p.Seq > last {
			continue
		}
		out.Verified = false
		if len(out.Problems) < maxEvidenceProblems {
			out.Problems = append(out.Problems, p.String())
		}
	}
	if rep.ProblemCount > len(rep.Problems) && out.Verified {
		// Problems beyond the listed ones are not known by seq: do not vouch for the chain.
		out.Verified = false
		out.Problems = append(out.Problems, fmt.Sprintf("%d problems in the chain, not all listed", rep.ProblemCount))
	}
	return out, nil
}

package budgetreceiver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// TestEvidenceEndpoint: GET /v1/evidence/{id} answers a reviewer with the decision and settlement
// records of one action and verified=true; an agent is 403, an unknown id 404 naming the
// per-replica rule; after a record at or before them is altered the answer says verified=false
// with the problem.
func TestEvidenceEndpoint(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	d := e.decide(researchToken, decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.generate", EstimatedCostUSD: 0.5})
	if d.EvidenceID == "" || d.LeaseID == "" {
		t.Fatalf("decision = %+v; want an evidence_id and a lease", d)
	}
	cost := 0.25
	e.release(researchToken, d.LeaseID, decisionapi.ReleaseRequest{ActualCostUSD: &cost})
	// Another action's records interleave in the chain but are not in the answer.
	e.decide(draftingToken, decisionapi.DecisionRequest{AgentID: "drafting-agent", Action: "job.generate", EstimatedCostUSD: 0.5})

	get := func(token, id string) (int, decisionapi.EvidenceResponse, []byte) {
		status, body := e.do(http.MethodGet, "/v1/evidence/"+id, token, nil)
		var out decisionapi.EvidenceResponse
		if status == http.StatusOK {
			mustUnmarshal(t, body, &out)
		}
		return status, out, body
	}
	status, out, body := get(reviewerToken, d.EvidenceID)
	if status != http.StatusOK || !out.Verified || out.ChainID == "" || len(out.Records) != 2 {
		t.Fatalf("GET evidence: %d %s; want 2 verified records", status, body)
	}
	var kinds []string
	for _, m := range out.Records {
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var rec evidence.Record
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.EvidenceID != d.EvidenceID || rec.Hash == "" || rec.Seq == 0 {
			t.Errorf("record %s", raw)
		}
		kinds = append(kinds, string(rec.Kind))
	}
	if strings.Join(kinds, ",") != "decision,settlement" {
		t.Errorf("kinds = %v; want decision, settlement", kinds)
	}

	if status, _, body := get(researchToken, d.EvidenceID); status != http.StatusForbidden {
		t.Errorf("agent GET evidence: %d %s; want 403", status, body)
	}
	if status, _, body := get(reviewerToken, "ev_nope"); status != http.StatusNotFound || !strings.Contains(string(body), "per replica") {
		t.Errorf("unknown evidence id: %d %s; want 404 naming the per-replica rule", status, body)
	}
	if status, _, body := get(reviewerToken, strings.Repeat("x", 129)); status != http.StatusBadRequest || apiError(t, body).Field != "id" {
		t.Errorf("overlong evidence id: %d %s; want 400 naming id", status, body)
	}

	// Alter the decision record's reason in the file: the chain no longer verifies up to it.
	path := filepath.Join(e.dir, "evidence", evidence.FileName(1))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	altered := bytes.Replace(data, []byte(`"estimated_cost_usd":0.5`), []byte(`"estimated_cost_usd":0.1`), 1)
	if bytes.Equal(altered, data) {
		t.Fatalf("no estimate to alter in %s", data)
	}
	if err := os.WriteFile(path, altered, 0o600); err != nil {
		t.Fatal(err)
	}
	status, out, body = get(reviewerToken, d.EvidenceID)
	if status != http.StatusOK || out.Verified || len(out.Problems) == 0 {
		t.Fatalf("GET evidence after tampering: %d %s; want verified=false with the problem", status, body)
	}
}

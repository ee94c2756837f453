package decide

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// framedSHA256 is the documented policy identity computed independently: SHA-256 over each
// part framed by its 8-byte big-endian length.
func framedSHA256(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestPolicySHA256 changes the policy's content while keeping its policy_version: the answer,
// the explanation and the evidence record carry the new content's SHA-256.
func TestPolicySHA256(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, FailClosed)
	changed := strings.Replace(enginePolicy, "max_runtime_sec: 60", "max_runtime_sec: 30", 1)
	var cur atomic.Pointer[policy.Policy]
	te.cfg.Policy = cur.Load // the policy in force is swapped below, like a hot reload
	agent := Caller{Role: access.RoleAgent, Subject: "a"}
	req := decisionapi.DecisionRequest{AgentID: "a", Action: "job.concurrent", EstimatedCostUSD: 0.01}
	var seen []string
	for _, src := range []string{enginePolicy, changed} {
		p, err := policy.Parse("policy.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		cur.Store(p)
		resp, err := te.Decide(ctx, agent, req, "")
		if err != nil {
			t.Fatal(err)
		}
		if resp.PolicyVersion != "unit-1" {
			t.Fatalf("policy_version %q, want unit-1 for both contents", resp.PolicyVersion)
		}
		if want := framedSHA256(src); resp.PolicySHA256 != want {
			t.Fatalf("policy_sha256 %q, want %q", resp.PolicySHA256, want)
		}
		if resp.EvidenceID == "" {
			t.Fatalf("no evidence for %+v", resp)
		}
		te.ev.mu.Lock()
		rec := te.ev.recs[len(te.ev.recs)-1]
		te.ev.mu.Unlock()
		if rec.DecisionID != resp.DecisionID || rec.PolicySHA256 != resp.PolicySHA256 {
			t.Fatalf("evidence record %s carries policy_sha256 %q, want %q", rec.DecisionID, rec.PolicySHA256, resp.PolicySHA256)
		}
		ex, err := te.Explain(ctx, agent, req)
		if err != nil || ex.PolicySHA256 != resp.PolicySHA256 {
			t.Fatalf("explain policy_sha256 %q (%v), want %q", ex.PolicySHA256, err, resp.PolicySHA256)
		}
		seen = append(seen, resp.PolicySHA256)
	}
	if seen[0] == seen[1] {
		t.Fatalf("changed content kept policy_sha256 %s", seen[0])
	}
}

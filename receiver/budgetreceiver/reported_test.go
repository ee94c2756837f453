package budgetreceiver

import (
	"testing"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// TestReportedCostClipped is the review's finding: an agent took a $0.01 decision and released
// it with actual_cost_usd 999999999. The report is clipped to the policy's bound (defaults: 3x the
// estimate, at least $1, at most per_action_max_usd $8, so $1), flagged as an anomaly, counted,
// and leaves a settlement record; the fleet stays open for the other agents.
func TestReportedCostClipped(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	d := e.decide(researchToken, research("job.crawl", 0.01))
	if d.Decision != decisionapi.DecisionAllow {
		t.Fatalf("decision %+v", d)
	}
	s := e.release(researchToken, d.LeaseID, decisionapi.ReleaseRequest{ActualCostUSD: ptr(999999999.0), Status: "ok"}).Settlement
	if !s.Clipped || s.ReportedCostUSD == nil || *s.ReportedCostUSD != 999999999 || s.ActualCostUSD != 1 ||
		s.Source != decisionapi.SourceReported || !s.Anomaly || s.EvidenceID == "" {
		t.Fatalf("settlement %+v, want 999999999 clipped to $1, an anomaly, with evidence", s)
	}
	rec := e.waitEvidence("clipped settlement", func(r evidence.Record) bool {
		return r.Kind == evidence.KindSettlement && r.DecisionID == d.DecisionID
	})
	if !rec.Clipped || rec.ReportedCostUSD == nil || rec.ReportedCostUSD.Nanos() != usd(t, "999999999") ||
		rec.ActualCostUSD.Nanos() != usd(t, "1") || rec.Anomaly == nil || !rec.Anomaly.Anomalous || rec.EvidenceID != s.EvidenceID {
		t.Errorf("settlement record %+v", rec)
	}
	e.waitMetric(NameReportedClipped, func(v float64) bool { return v == 1 }, "agent", "research-agent")

	// Only the bound was booked: the fleet ($100 a month) is nowhere near its pause level.
	if sc := e.budget("fleet", ""); sc.SpentUSD != 1 || sc.ReservedUSD != 0 {
		t.Errorf("fleet after the release: %+v, want $1 spent", sc)
	}
	if d := e.decide(draftingToken, decisionapi.DecisionRequest{AgentID: "drafting-agent", Action: "job.draft", EstimatedCostUSD: 0.1}); d.Decision != decisionapi.DecisionAllow {
		t.Errorf("another agent's decision: %+v, want allow", d)
	}
	// The clipped report is an action anomaly of the agent that made it (anomaly_within).
	if d := e.decide(researchToken, research("job.crawl", 0.01)); d.Decision != decisionapi.DecisionThrottle || d.RuleID != "throttle-anomalous" {
		t.Errorf("the reporting agent's next decision: %+v, want throttle by throttle-anomalous", d)
	}
}

// TestReportedCostEvidence: every release that carries actual_cost_usd leaves a settlement record,
// also for a plain allow whose decision wrote none and a report within the bound.
func TestReportedCostEvidence(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	d := e.decide(researchToken, research("job.crawl", 0.5))
	if d.Decision != decisionapi.DecisionAllow || d.EvidenceID != "" {
		t.Fatalf("decision %+v, want a plain allow without a decision record", d)
	}
	s := e.release(researchToken, d.LeaseID, decisionapi.ReleaseRequest{ActualCostUSD: ptr(1.2)}).Settlement
	if s.Clipped || s.ReportedCostUSD == nil || *s.ReportedCostUSD != 1.2 || s.ActualCostUSD != 1.2 || s.Anomaly || s.EvidenceID == "" {
		t.Fatalf("settlement %+v, want 1.2 as reported, with evidence", s)
	}
	rec := e.waitEvidence("settlement", func(r evidence.Record) bool {
		return r.Kind == evidence.KindSettlement && r.DecisionID == d.DecisionID
	})
	if rec.Clipped || rec.ReportedCostUSD == nil || rec.ReportedCostUSD.Nanos() != usd(t, "1.2") || rec.ActualCostUSD.Nanos() != usd(t, "1.2") {
		t.Errorf("settlement record %+v", rec)
	}
	if _, ok := e.metric(NameReportedClipped, "agent", "research-agent"); ok {
		t.Errorf("%s counted a report within the bound", NameReportedClipped)
	}
}

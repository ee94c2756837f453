package budgetreceiver

import (
	"net/http"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/pkg/decisionapi"
	"go.opentelemetry.io/collector/component"
)

// TestSettlementAnomaly: five releases at $0.10 warm the (agent, action) baseline up; a sixth at
// $0.40 (4x) is flagged: in the answer, the metric, the evidence and, through anomaly_within, the
// agent's next decision.
func TestSettlementAnomaly(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	settle := func(actual float64) decisionapi.Settlement {
		t.Helper()
		d := e.decide(researchToken, research("job.crawl", 0.2))
		if !d.Decision.Allowed() {
			t.Fatalf("decision %+v", d)
		}
		return e.release(researchToken, d.LeaseID, decisionapi.ReleaseRequest{ActualCostUSD: ptr(actual)}).Settlement
	}
	for i := range 5 {
		s := settle(0.10)
		if s.Anomaly || s.Source != decisionapi.SourceReported || s.ActualCostUSD != 0.10 || s.FreedUSD != 0.2 {
			t.Fatalf("settlement %d: %+v", i, s)
		}
	}
	s := settle(0.40)
	if !s.Anomaly || s.AnomalyRatio != 4 || s.BaselineUSD != 0.10 || s.EvidenceID == "" {
		t.Fatalf("$0.40 against a $0.10 baseline: %+v, want an anomaly of ratio 4 with evidence", s)
	}
	rec := e.waitEvidence("anomalous settlement", func(r evidence.Record) bool {
		return r.Kind == evidence.KindSettlement && r.Anomaly != nil && r.Anomaly.Anomalous
	})
	if rec.EvidenceID != s.EvidenceID || rec.ActualCostUSD.Nanos() != usd(t, "0.4") || rec.CostSource != decisionapi.SourceReported ||
		rec.Anomaly.BaselineUSD.Nanos() != usd(t, "0.1") || rec.AgentID != "research-agent" || rec.Action != "job.crawl" {
		t.Errorf("settlement record %+v", rec)
	}
	e.waitMetric("agentcost_anomalies_total", func(v float64) bool { return v == 1 }, "agent", "research-agent", "level", "action")

	d := e.decide(researchToken, research("job.research", 0.1))
	if d.Decision != decisionapi.DecisionThrottle || d.RuleID != "throttle-anomalous" || d.RetryAfterSec < 590 || d.RetryAfterSec > 600 {
		t.Errorf("next decision: %+v, want throttle by throttle-anomalous for about 10m", d)
	}
}

// TestSpanSettlement: spans matched by decision id (or, without one, by the traceparent's trace)
// settle the action; a reported cost is then ignored, and an output above max_tokens is a
// token-cap breach.
func TestSpanSettlement(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	d := e.decide(researchToken, research("job.generate", 0.5))
	if d.Decision != decisionapi.DecisionAllowWithConstraints || *d.Constraints.MaxTokens != 1000 || d.EvidenceID == "" {
		t.Fatalf("decision %+v", d)
	}
	e.book(ledger.Spend{Agent: "research-agent", DecisionID: d.DecisionID, Cost: usd(t, "0.12"), Tokens: ledger.Tokens{Input: 900, Output: 400}})
	e.book(ledger.Spend{Agent: "research-agent", DecisionID: d.DecisionID, Cost: usd(t, "0.20"), Tokens: ledger.Tokens{Input: 100, Output: 1500}})
	s := e.release(researchToken, d.LeaseID, decisionapi.ReleaseRequest{ActualCostUSD: ptr(9.0)}).Settlement
	// The report is shown as sent, ignored (spans matched) and so neither clipped nor an anomaly.
	if s.ReportedCostUSD == nil || *s.ReportedCostUSD != 9 {
		t.Errorf("reported_cost_usd %v, want 9", s.ReportedCostUSD)
	}
	s.ReportedCostUSD = nil
	want := decisionapi.Settlement{ActualCostUSD: 0.32, EstimatedCostUSD: 0.5, FreedUSD: 0.18, Source: decisionapi.SourceSpans,
		SpansMatched: 2, InputTokens: 1000, OutputTokens: 1900, TokenCapBreaches: 1, EvidenceID: d.EvidenceID}
	if s != want {
		t.Fatalf("settlement\n got %+v\nwant %+v", s, want)
	}
	rec := e.waitEvidence("settlement", func(r evidence.Record) bool { return r.Kind == evidence.KindSettlement })
	if !rec.TokenCapBreach || rec.SpansMatched != 2 || rec.Tokens == nil || rec.Tokens.Output != 1900 || rec.ActualCostUSD.Nanos() != usd(t, "0.32") ||
		rec.EvidenceID != d.EvidenceID || rec.DecisionID != d.DecisionID {
		t.Errorf("settlement record %+v", rec)
	}
	e.waitMetric(NameTokenCapBreaches, func(v float64) bool { return v == 1 }, "agent", "research-agent")

	// A span without a decision id matches by the trace of the decision's traceparent.
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	d = e.decide(researchToken, research("job.generate", 0.5), "traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	e.book(ledger.Spend{TraceID: trace, Agent: "research-agent", Cost: usd(t, "0.05"), Tokens: ledger.Tokens{Output: 10}})
	s = e.release(researchToken, d.LeaseID, decisionapi.ReleaseRequest{}).Settlement
	if s.SpansMatched != 1 || s.ActualCostUSD != 0.05 || s.TokenCapBreaches != 0 {
		t.Errorf("trace-matched settlement %+v", s)
	}
	rec = e.waitEvidence("decision with the trace", func(r evidence.Record) bool {
		return r.Kind == evidence.KindDecision && r.DecisionID == d.DecisionID
	})
	if rec.TraceID != trace {
		t.Errorf("decision record trace_id %q, want %q", rec.TraceID, trace)
	}
}

// TestExpiredReservations: a reservation nobody releases is settled at its TTL like a release
// without a reported cost; releasing it afterwards is a conflict.
func TestExpiredReservations(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess, func(cfg *Config) { cfg.ReservationTTL = 100 * time.Millisecond })
	d := e.decide(researchToken, research("job.generate", 0.5))
	e.book(ledger.Spend{Agent: "research-agent", DecisionID: d.DecisionID, Cost: usd(t, "0.3")})
	rec := e.waitEvidence("expired settlement", func(r evidence.Record) bool {
		return r.Kind == evidence.KindSettlement && r.DecisionID == d.DecisionID
	})
	if rec.Reason != string(ledger.ReasonExpired) || rec.ActualCostUSD.Nanos() != usd(t, "0.3") || rec.EvidenceID != d.EvidenceID {
		t.Errorf("settlement record %+v", rec)
	}
	if sc := e.budget("agent", "research-agent"); sc.ReservedUSD != 0 || sc.SpentUSD != 0.3 {
		t.Errorf("after expiry: %+v, want $0.30 spent and nothing reserved", sc)
	}
	status, body := e.do(http.MethodPost, "/v1/leases/"+d.LeaseID+"/release", researchToken, nil)
	if status != http.StatusConflict {
		t.Errorf("release after expiry: %d %s; want 409", status, body)
	}
}

// TestActionBaselinesSurviveRestart: with baseline.storage, a receiver that restarts keeps its
// per-(agent, action) baselines and flags a 4x action at once.
func TestActionBaselinesSurviveRestart(t *testing.T) {
	storage := component.MustNewID("file_storage")
	withStorage := func(cfg *Config) { cfg.Baseline.Storage = &storage }
	settle := func(e *env, actual float64) decisionapi.Settlement {
		t.Helper()
		d := e.decide(researchToken, research("job.crawl", 0.2))
		if !d.Decision.Allowed() {
			t.Fatalf("decision %+v", d)
		}
		return e.release(researchToken, d.LeaseID, decisionapi.ReleaseRequest{ActualCostUSD: ptr(actual)}).Settlement
	}
	first := startEnv(t, testPolicy, withAccess, withStorage)
	for range 5 {
		settle(first, 0.10)
	}
	first.stop()
	second := startEnv(t, testPolicy, withAccess, withStorage)
	if s := settle(second, 0.40); !s.Anomaly || s.BaselineUSD != 0.10 {
		t.Fatalf("first settlement after a restart: %+v, want an anomaly against the restored $0.10 baseline", s)
	}
}

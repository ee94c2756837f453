package policy

import (
	"testing"
	"time"
)

func BenchmarkEvaluate(b *testing.B) {
	article := mustLoad(b, articlePolicy, articleOverlay)
	design := mustLoad(b, designPolicy)
	var st State
	st.Usage[ScopeFleet] = Usage{Spent: usdOf(b, "1700")}
	st.Usage[ScopeAgent] = Usage{Spent: usdOf(b, "12")}
	now := time.Date(2026, time.March, 11, 10, 40, 0, 0, time.UTC)
	cases := []struct {
		name string
		p    *Policy
		req  Request
	}{
		{"article/throttled-llm-call", article, Request{AgentID: "research-agent", Action: "job.company.research", RiskTags: []string{"high-cost"}, RunID: "r"}},
		{"article/default-with-overlay", article, Request{AgentID: "research-agent", Action: "job.research.company", RunID: "r"}},
		{"article/cached-read", article, Request{AgentID: "research-agent", Action: "job.crm.read"}},
		{"design/all-budget-layers", design, Request{AgentID: "research-agent", Action: "job.leads.generate", RunID: "r", Team: "growth", EstimatedCost: usdOf(b, "6")}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Evaluate(tc.p, tc.req, st, now)
			}
		})
	}
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	p := mustLoad(t, designPolicy)
	req := Request{AgentID: "research-agent", Action: "job.leads.generate", RunID: "r", Team: "growth", EstimatedCost: usdOf(t, "6")}
	var st State
	st.Usage[ScopeFleet].Spent = usdOf(t, "1700")
	if n := testing.AllocsPerRun(100, func() { _ = Evaluate(p, req, st, noon) }); n != 0 {
		t.Fatalf("%v allocations per Evaluate", n)
	}
}

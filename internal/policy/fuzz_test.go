package policy

import (
	"os"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	for _, file := range []string{articlePolicy, articleOverlay, designPolicy} {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, []byte(nil))
	}
	overlay, _ := os.ReadFile(articleOverlay)
	article, _ := os.ReadFile(articlePolicy)
	f.Add(article, overlay)
	f.Add([]byte(matcherPolicy), []byte(`topics: {"job.**": {max_retries: 0}}`))
	for _, seed := range []string{
		"", "version: v1", "version: v1\nrules: [{id: a, decision: deny, match: {topics: ['**']}}]",
		"version: v1\nbudgets: {fleet: {limit_usd: 1e3, window: 1mo, throttle_at: .1, pause_at: 1}}",
		"version: v1\nrules:\n  - &a {id: x, decision: allow}\n  - *a\n",
		"version: v1\ntopics: {'a.*': {timeout_seconds: 0x10}}",
		"- [[[",
		"version: v1\nbudgets: {runs: {limit_usd: 99999999999999999999}}",
	} {
		f.Add([]byte(seed), []byte(nil))
	}
	reqs := []Request{
		{AgentID: "research-agent", Action: "job.research.company", RunID: "r", Team: "growth", EstimatedCost: 60_000_000_000, Items: 200},
		{AgentID: "billing-agent", Action: "job.a.batch-generate", RiskTags: []string{"high-cost", "batch"}, Approval: &ApprovedApproval{ID: "x", CostCap: 1}},
		{},
	}
	var st State
	st.Usage[ScopeFleet] = Usage{Spent: 1 << 62, Reserved: 1 << 62}
	st.Usage[ScopeAgent] = Usage{Spent: -5}
	st.LastCallAnomaly = noon.Add(-time.Minute)
	f.Fuzz(func(t *testing.T, data, overlay []byte) {
		var ovs []Source
		if overlay != nil {
			ovs = append(ovs, Source{Name: "overlay.yaml", Data: overlay})
		}
		p, err := Parse("fuzz.yaml", data, ovs...)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, r := range reqs {
			o := Evaluate(p, r, st, noon)
			if o.Decision > Deny {
				t.Fatalf("decision %d", o.Decision)
			}
			_ = Explain(p, r, st, noon)
		}
	})
}

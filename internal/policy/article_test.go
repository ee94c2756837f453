package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/money"
)

const (
	articlePolicy  = "testdata/safety.yaml"
	articleOverlay = "testdata/overlays/timeouts.patch.yaml"
	designPolicy   = "testdata/design.yaml"
)

// usdOf parses a decimal dollar amount for test inputs.
func usdOf(t testing.TB, s string) money.Nanos {
	t.Helper()
	n, err := money.ParseUSD(s)
	if err != nil {
		t.Fatalf("ParseUSD(%q): %v", s, err)
	}
	return n
}

func mustLoad(t testing.TB, path string, overlays ...string) *Policy {
	t.Helper()
	p, err := Load(path, overlays...)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	return p
}

func mustParse(t testing.TB, yml string, overlays ...Source) *Policy {
	t.Helper()
	p, err := Parse("policy.yaml", []byte(yml), overlays...)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

var noon = time.Date(2026, time.March, 11, 12, 0, 0, 0, time.UTC) // a Wednesday

// TestArticleFilesAreVerbatim guards the testdata copies: they must be the article's text.
func TestArticleFilesAreVerbatim(t *testing.T) {
	// shared/ sits beside the repository (in CI too); the testdata copies carry the tests without it.
	article, err := os.ReadFile("../../../shared/seed/agent-finops-article.txt")
	if err != nil {
		t.Skipf("article not available beside the repository: %v", err)
	}
	for _, f := range []string{articlePolicy, articleOverlay} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(article), string(data)) {
			t.Errorf("%s is not a verbatim excerpt of the article", f)
		}
	}
}

func TestArticlePolicyLoads(t *testing.T) {
	p := mustLoad(t, articlePolicy, articleOverlay)
	want := []string{"throttle-llm-calls", "approve-expensive-batch", "deny-unbounded-loop", "allow-cached-reads"}
	got := p.RuleIDs()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("rules = %v, want %v", got, want)
	}
	if p.DefaultDecision() != Allow {
		t.Errorf("default decision = %v, want allow", p.DefaultDecision())
	}
	// The overlay's four topics, as the article lists them.
	topics := []struct {
		topic            string
		timeout, retries int64
	}{
		{"job.research.company", 120, 1},
		{"job.draft.email", 60, 1},
		{"job.enrich.contacts", 30, 0},
		{"job.generate.report", 180, 1},
	}
	for _, tc := range topics {
		ts, ok := p.Topic(tc.topic)
		if !ok {
			t.Errorf("topic %q missing", tc.topic)
			continue
		}
		if v, ok := ts.TimeoutSeconds.Value(); !ok || v != tc.timeout {
			t.Errorf("%s timeout = %v, want %d", tc.topic, ts.TimeoutSeconds, tc.timeout)
		}
		if v, ok := ts.MaxRetries.Value(); !ok || v != tc.retries {
			t.Errorf("%s max_retries = %v, want %d", tc.topic, ts.MaxRetries, tc.retries)
		}
	}
	if _, ok := p.Topic("job.research.person"); ok {
		t.Error("a topic the overlay does not list has settings")
	}
}

func TestArticleVersionIsContentHash(t *testing.T) {
	base, _ := os.ReadFile(articlePolicy)
	overlay, _ := os.ReadFile(articleOverlay)
	h := sha256.New()
	for _, part := range [][]byte{base, overlay} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	want := "sha256:" + hex.EncodeToString(h.Sum(nil))[:12]
	p := mustLoad(t, articlePolicy, articleOverlay)
	if p.Version() != want || p.Hash() != want {
		t.Fatalf("version %q, hash %q; want %q", p.Version(), p.Hash(), want)
	}
	alone := mustLoad(t, articlePolicy)
	if alone.Version() == p.Version() {
		t.Error("the overlay does not change the derived version")
	}
	explicit := mustParse(t, "version: v1\npolicy_version: v1.9.0\n")
	if explicit.Version() != "v1.9.0" || !strings.HasPrefix(explicit.Hash(), "sha256:") {
		t.Errorf("explicit version %q, hash %q", explicit.Version(), explicit.Hash())
	}
}

func TestArticleDecisions(t *testing.T) {
	p := mustLoad(t, articlePolicy, articleOverlay)
	type want struct {
		decision Decision
		rule     string
		cons     Constraints
		evidence bool
	}
	llm := Constraints{MaxConcurrent: LimitOf(3), RateLimit: RateLimit{20, time.Hour}, MaxRuntimeSec: LimitOf(120)}
	cases := []struct {
		name string
		req  Request
		want want
	}{
		{"high-cost generate is throttled",
			Request{AgentID: "drafting-agent", Action: "job.draft.generate", RiskTags: []string{"high-cost"}},
			want{AllowWithConstraints, "throttle-llm-calls", llm, true}},
		{"synthesize matches the second pattern",
			Request{AgentID: "a", Action: "job.report.synthesize", RiskTags: []string{"pii", "high-cost"}},
			want{AllowWithConstraints, "throttle-llm-calls", llm, true}},
		{"generate without high-cost falls to the default",
			Request{AgentID: "a", Action: "job.draft.generate"},
			want{Allow, "", Constraints{}, false}},
		{"* is one segment only",
			Request{AgentID: "a", Action: "job.a.b.generate", RiskTags: []string{"high-cost"}},
			want{Allow, "", Constraints{}, false}},
		{"batch with both tags needs approval",
			Request{AgentID: "a", Action: "job.contacts.bulk-enrich", RiskTags: []string{"batch", "high-cost"}},
			want{RequireApproval, "approve-expensive-batch", Constraints{MaxRuntimeSec: LimitOf(600)}, true}},
		{"batch missing one tag is allowed",
			Request{AgentID: "a", Action: "job.contacts.bulk-enrich", RiskTags: []string{"batch"}},
			want{Allow, "", Constraints{}, false}},
		{"unbounded loop denied without constraints",
			Request{AgentID: "a", Action: "job.web.recursive-search", RiskTags: []string{"unbounded"}},
			want{Deny, "deny-unbounded-loop", Constraints{}, true}},
		{"reads pass, empty risk_tags match any",
			Request{AgentID: "a", Action: "job.crm.list", RiskTags: []string{"unbounded"}},
			want{Allow, "allow-cached-reads", Constraints{}, false}},
		{"overlay topic gets timeout and retries",
			Request{AgentID: "a", Action: "job.research.company"},
			want{AllowWithConstraints, "", Constraints{MaxRuntimeSec: LimitOf(120), MaxRetries: LimitOf(1)}, true}},
		{"max_retries 0 is a real constraint",
			Request{AgentID: "a", Action: "job.enrich.contacts"},
			want{AllowWithConstraints, "", Constraints{MaxRuntimeSec: LimitOf(30), MaxRetries: LimitOf(0)}, true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := Evaluate(p, tc.req, State{}, noon)
			if o.Decision != tc.want.decision || o.RuleID != tc.want.rule {
				t.Fatalf("decision %v rule %q (%s); want %v %q", o.Decision, o.RuleID, o.Reason, tc.want.decision, tc.want.rule)
			}
			if o.Constraints != tc.want.cons {
				t.Errorf("constraints %+v, want %+v", o.Constraints, tc.want.cons)
			}
			if o.Evidence != tc.want.evidence {
				t.Errorf("evidence %v, want %v", o.Evidence, tc.want.evidence)
			}
			if o.PolicyVersion != p.Version() {
				t.Errorf("policy version %q, want %q", o.PolicyVersion, p.Version())
			}
		})
	}
}

func TestArticleEnforcementKeys(t *testing.T) {
	p := mustLoad(t, articlePolicy, articleOverlay)
	o := Evaluate(p, Request{AgentID: "research-agent", Action: "job.company.research", RiskTags: []string{"high-cost"}}, State{}, noon)
	wantKey := LimitKey{RuleID: "throttle-llm-calls", AgentID: "research-agent"} // per (rule, agent) by default
	if o.Concurrency != (ConcurrencyLimit{Key: wantKey, Max: 3, TTL: 120 * time.Second}) {
		t.Errorf("concurrency %+v", o.Concurrency)
	}
	if o.RuleRate.Key != wantKey || o.RuleRate.Limit != (RateLimit{20, time.Hour}) || o.RuleRate.Reason != "LLM calls throttled to prevent runaway spend" {
		t.Errorf("rule rate %+v", o.RuleRate)
	}
	if !o.FleetRate.Limit.IsZero() {
		t.Errorf("fleet rate without a fleet budget: %+v", o.FleetRate)
	}
	// The approval rule's outcome is not allowed yet: nothing to enforce.
	o = Evaluate(p, Request{AgentID: "a", Action: "job.x.batch-generate", RiskTags: []string{"high-cost", "batch"}}, State{}, noon)
	if o.Concurrency.Max != 0 || !o.RuleRate.Limit.IsZero() {
		t.Errorf("require_approval carries enforcement: %+v %+v", o.Concurrency, o.RuleRate)
	}
}

// TestOverlayVersusRuleRuntime: the stricter of timeout_seconds and max_runtime_sec wins.
func TestOverlayVersusRuleRuntime(t *testing.T) {
	base, err := os.ReadFile(articlePolicy)
	if err != nil {
		t.Fatal(err)
	}
	req := Request{AgentID: "a", Action: "job.draft.generate", RiskTags: []string{"high-cost"}} // rule: 120 s
	for _, tc := range []struct {
		overlay string
		want    int64
	}{
		{`topics: {"job.draft.generate": {timeout_seconds: 60}}`, 60},
		{`topics: {"job.draft.generate": {timeout_seconds: 300}}`, 120},
		{`topics: {"job.*.generate": {timeout_seconds: 90, max_retries: 2}}`, 90},
	} {
		p, err := Parse(articlePolicy, base, Source{Name: "o.yaml", Data: []byte(tc.overlay)})
		if err != nil {
			t.Fatal(err)
		}
		o := Evaluate(p, req, State{}, noon)
		if v, _ := o.Constraints.MaxRuntimeSec.Value(); v != tc.want {
			t.Errorf("%s: max_runtime_sec %d, want %d", tc.overlay, v, tc.want)
		}
		if o.Concurrency.TTL != time.Duration(tc.want)*time.Second {
			t.Errorf("%s: lease TTL %v, want %ds", tc.overlay, o.Concurrency.TTL, tc.want)
		}
	}
}

// TestLaterOverlaysWin: overlays merge per field, later files winning.
func TestLaterOverlaysWin(t *testing.T) {
	p := mustParse(t, "version: v1\ntopics: {\"job.a.b\": {timeout_seconds: 100, max_retries: 3}}\n",
		Source{Name: "one.yaml", Data: []byte(`topics: {"job.a.b": {timeout_seconds: 50}, "job.*.c": {max_retries: 1}}`)},
		Source{Name: "two.yaml", Data: []byte(`topics: {"job.a.b": {max_retries: 2}, "job.**": {max_retries: 5}}`)},
	)
	ts, _ := p.Topic("job.a.b")
	if ts != (TopicSettings{TimeoutSeconds: LimitOf(50), MaxRetries: LimitOf(2)}) {
		t.Errorf("job.a.b = %+v, want timeout 50 (one.yaml), retries 2 (two.yaml)", ts)
	}
	// Both patterns match job.x.c; the later declared one (two.yaml) wins.
	if ts, _ := p.Topic("job.x.c"); ts.MaxRetries != LimitOf(5) {
		t.Errorf("job.x.c = %+v, want the later pattern's retries 5", ts)
	}
}

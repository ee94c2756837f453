package decisionapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/api"
	"github.com/agentcost/agentcost/api/openapicheck"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// wire lists every operation of the API with the Go types of its request and success bodies.
var wire = []struct {
	method, path string
	request      any // nil: no body
	response     any
}{
	{"POST", decisionapi.PathDecisions, decisionapi.DecisionRequest{}, decisionapi.DecisionResponse{}},
	{"POST", decisionapi.PathLeaseRelease, decisionapi.ReleaseRequest{}, decisionapi.ReleaseResponse{}},
	{"GET", decisionapi.PathBudgets, nil, decisionapi.BudgetsResponse{}},
	{"GET", decisionapi.PathApprovals, nil, decisionapi.ApprovalList{}},
	{"GET", decisionapi.PathApproval, nil, decisionapi.Approval{}},
	{"POST", decisionapi.PathApprove, decisionapi.ApproveRequest{}, decisionapi.Approval{}},
	{"POST", decisionapi.PathDeny, decisionapi.DenyRequest{}, decisionapi.Approval{}},
	{"POST", decisionapi.PathExplain, decisionapi.DecisionRequest{}, decisionapi.ExplainResponse{}},
	{"GET", decisionapi.PathLease, nil, decisionapi.LeaseStatus{}},
	{"GET", decisionapi.PathFreezes, nil, decisionapi.FreezeList{}},
	{"POST", decisionapi.PathFreezes, decisionapi.FreezeRequest{}, decisionapi.Freeze{}},
	{"DELETE", decisionapi.PathFreeze, nil, decisionapi.Freeze{}},
	{"GET", decisionapi.PathEvidence, nil, decisionapi.EvidenceResponse{}},
}

func loadDoc(t *testing.T) *openapicheck.Document {
	t.Helper()
	doc, err := openapicheck.Default()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestDocumentOperationsMatchGoTypes keeps api/openapi.yaml and the Go wire types identical: the
// same operations, and for each the request, success and error bodies' schemas equal to the Go
// structs, field for field, in both directions and recursively, and the same enums.
func TestDocumentOperationsMatchGoTypes(t *testing.T) {
	for _, err := range drift(loadDoc(t)) {
		t.Error(err)
	}
}

// TestDriftIsDetected edits the real document the ways it could drift from the code and checks
// that each edit is caught.
func TestDriftIsDetected(t *testing.T) {
	src := string(api.OpenAPI)
	cases := []struct {
		name, old, new, want string
	}{
		{"property removed", "        anomaly_ratio: {type: number, minimum: 0}\n", "",
			`Go field Settlement.AnomalyRatio (json "anomaly_ratio") has no property`},
		{"required property removed", "        forecast_usd: {$ref: '#/components/schemas/Usd'}\n", "",
			`required property "forecast_usd" is not among the properties`},
		{"property added", "        max_depth: {type: integer, format: int64, minimum: 0, maximum: 1000000000}\n",
			"        max_depth: {type: integer, format: int64, minimum: 0, maximum: 1000000000}\n        max_width: {type: integer}\n",
			`property "max_width" has no field in Go struct decisionapi.Constraints`},
		{"required dropped", "required: [actual_cost_usd, estimated_cost_usd, freed_usd, source, spans_matched, anomaly]",
			"required: [actual_cost_usd, estimated_cost_usd, freed_usd, source, spans_matched]",
			"Go field Settlement.Anomaly is always encoded but the schema does not require it"},
		{"required added", "required: [lease_id, decision_id, settlement]", "required: [lease_id, decision_id, settlement, evidence]",
			`required property "evidence" is not among the properties`},
		{"type changed", "spans_matched: {type: integer", "spans_matched: {type: string",
			`Go type int64 encodes as integer, the schema says "string"`},
		{"nested type changed", "        level: {$ref: '#/components/schemas/BudgetLevel'}\n        forecast_usd",
			"        level: {type: integer}\n        forecast_usd", `encodes as string, the schema says "integer"`},
		{"enum value dropped", "enum: [allow, allow_with_constraints, throttle, require_approval, deny]",
			"enum: [allow, allow_with_constraints, require_approval, deny]", "schema Decision: enum"},
		{"unknown keyword", "    DecisionRequest:\n      type: object\n", "    DecisionRequest:\n      type: object\n      oneOf: []\n",
			"unsupported schema keyword"},
		{"dangling ref", "schema: {$ref: '#/components/schemas/ReleaseResponse'}", "schema: {$ref: '#/components/schemas/ReleaseResult'}",
			"does not resolve"},
		{"error status dropped", "        '503': {$ref: '#/components/responses/Unavailable'}\n  /v1/budgets:", "  /v1/budgets:",
			"POST /v1/leases/{id}/release: status 503 is not documented"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if strings.Count(src, c.old) == 0 {
				t.Fatalf("the document no longer contains %q", c.old)
			}
			doc, err := openapicheck.Load([]byte(strings.Replace(src, c.old, c.new, 1)))
			var errs []error
			if err != nil {
				errs = []error{err}
			} else {
				errs = drift(doc)
			}
			for _, e := range errs {
				if strings.Contains(e.Error(), c.want) {
					return
				}
			}
			t.Errorf("edit not detected; want an error containing %q, got %v", c.want, errs)
		})
	}
}

func drift(doc *openapicheck.Document) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	documented := map[string]*openapicheck.Operation{}
	for _, op := range doc.Operations() {
		documented[op.Method+" "+op.Path] = op
	}
	errorStatuses := map[int]bool{}
	for _, c := range decisionapi.Codes() {
		errorStatuses[c.Status()] = true
	}
	for _, w := range wire {
		key := w.method + " " + w.path
		op, ok := documented[key]
		if !ok {
			fail("%s is not documented", key)
			continue
		}
		delete(documented, key)
		if w.request == nil {
			if op.Request != "" {
				fail("%s: documented with a request body %s, Go has none", key, op.Request)
			}
		} else if err := doc.CheckType(op.Request, w.request); err != nil {
			fail("%s request: %w", key, err)
		}
		if err := doc.CheckType(op.Responses[http.StatusOK], w.response); err != nil {
			fail("%s 200 response: %w", key, err)
		}
		for status, schema := range op.Responses {
			if status == http.StatusOK {
				continue
			}
			if !errorStatuses[status] {
				fail("%s: status %d has no error code", key, status)
			}
			if schema != "ErrorResponse" {
				fail("%s: status %d body is %q, want ErrorResponse", key, status, schema)
			}
		}
		for _, must := range []int{401, 403, 429, 500, 503} {
			if _, ok := op.Responses[must]; !ok {
				fail("%s: status %d is not documented", key, must)
			}
		}
		if w.request != nil {
			for _, must := range []int{400, 413} {
				if _, ok := op.Responses[must]; !ok {
					fail("%s takes a body but does not document %d", key, must)
				}
			}
		}
	}
	for key := range documented {
		fail("%s is documented but not in the Go wire table", key)
	}
	if err := doc.CheckType("ErrorResponse", decisionapi.ErrorResponse{}); err != nil {
		fail("%w", err)
	}
	strs := func(vs any) []string {
		var out []string
		b, _ := json.Marshal(vs)
		_ = json.Unmarshal(b, &out)
		return out
	}
	for schema, values := range map[string][]string{
		"Decision":         strs(decisionapi.Decisions()),
		"BudgetLevel":      strs(decisionapi.BudgetLevels()),
		"ApprovalState":    strs(decisionapi.ApprovalStates()),
		"SettlementStatus": strs(decisionapi.SettlementStatuses()),
		"CostSource":       strs(decisionapi.CostSources()),
		"ErrorCode":        strs(decisionapi.Codes()),
		"FreezeScope":      strs(decisionapi.FreezeScopes()),
		"FreezeState":      strs([]decisionapi.FreezeState{decisionapi.FreezeActive, decisionapi.FreezeLifted, decisionapi.FreezeExpired}),
		"LeaseState":       strs([]decisionapi.LeaseState{decisionapi.LeaseOpen, decisionapi.LeaseExpired, decisionapi.LeaseSettled}),
	} {
		if err := doc.CheckEnum(schema, values...); err != nil {
			fail("%w", err)
		}
	}
	return errs
}

func TestScopeNamesMatchDocument(t *testing.T) {
	doc := loadDoc(t)
	scopes, _ := doc.Schema("ScopeBudget")
	var scopeEnum []string
	for _, e := range scopes.Properties["scope"].Enum {
		scopeEnum = append(scopeEnum, e.(string))
	}
	want := decisionapi.Scopes()
	sort.Strings(scopeEnum)
	sort.Strings(want)
	if !slices.Equal(scopeEnum, want) {
		t.Errorf("ScopeBudget.scope enum %v, Go scopes %v", scopeEnum, want)
	}
}

// TestEverySchemaIsUsed finds components.schemas entries that no operation reaches: stale
// leftovers the Go types no longer have.
func TestEverySchemaIsUsed(t *testing.T) {
	doc := loadDoc(t)
	reached := map[string]bool{}
	var walk func(s *openapicheck.Schema)
	walk = func(s *openapicheck.Schema) {
		if s == nil {
			return
		}
		if s.Ref != "" {
			if reached[s.Ref] {
				return
			}
			reached[s.Ref] = true
			named, _ := doc.Schema(s.Ref)
			walk(named)
			return
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Additional)
		walk(s.Items)
	}
	for _, op := range doc.Operations() {
		for _, name := range append([]string{op.Request}, mapValues(op.Responses)...) {
			if name != "" {
				walk(&openapicheck.Schema{Ref: name})
			}
		}
		for _, q := range op.Query {
			walk(q)
		}
	}
	for _, name := range doc.SchemaNames() {
		if !reached[name] {
			t.Errorf("schema %s is not used by any operation", name)
		}
	}
}

func mapValues(m map[int]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestFullBodiesValidate encodes fully populated Go values and validates them against the
// document, so that formats, enums and bounds agree with what the Go types produce.
func TestFullBodiesValidate(t *testing.T) {
	doc := loadDoc(t)
	now := time.Date(2026, 3, 2, 10, 30, 0, 0, time.UTC)
	cost := 1.25
	cons := decisionapi.Constraints{
		MaxRuntimeSec: decisionapi.Limit(120), MaxRetries: decisionapi.Limit(0), MaxConcurrent: decisionapi.Limit(3),
		RateLimit: "20/hour", MaxTokens: decisionapi.Limit(50000), MaxToolCalls: decisionapi.Limit(40), MaxDepth: decisionapi.Limit(2),
	}
	status := decisionapi.BudgetStatus{ID: "research-agent", Window: "hour", SpentUSD: 12.5, ReservedUSD: 3, LimitUSD: 50,
		Utilization: 0.31, Level: decisionapi.LevelNormal, ForecastUSD: 40, WindowStart: now, WindowEnd: now.Add(time.Hour)}
	approval := decisionapi.Approval{ApprovalID: "ap_1", State: decisionapi.ApprovalApproved, AgentID: "research-agent",
		Action: "job.research.batch-generate", RunID: "run-7", Team: "growth", RiskTags: []string{"high-cost"},
		EstimatedCostUSD: 75, Items: 200, RuleID: "approve-expensive-batch", Reason: "expensive batch",
		RequestedBy: "research-agent", Reviewer: "alice@example.com", Comment: "ok", CreatedAt: now,
		ExpiresAt: now.Add(time.Hour), DecidedAt: now.Add(time.Minute), Constraints: cons, CostCapUSD: &cost, EvidenceID: "ev_1"}
	req := decisionapi.DecisionRequest{RunID: "run-7", AgentID: "research-agent", Action: "job.research.company",
		RiskTags: []string{"high-cost"}, EstimatedCostUSD: 0.42, Items: 3, Team: "growth", ApprovalID: "ap_1",
		IdempotencyKey: "k1", Metadata: map[string]string{"ticket": "T-1"}}
	cases := []struct {
		method, path string
		status       int
		body         any
	}{
		{"POST", "/v1/decisions", 200, decisionapi.DecisionResponse{Decision: decisionapi.DecisionAllowWithConstraints,
			DecisionID: "d1", RuleID: "throttle-llm-calls", Reason: "r", PolicyVersion: "v1.9.0", Constraints: cons,
			RetryAfterSec: 3, LeaseID: "l1", ApprovalID: "ap_1", EvidenceID: "ev_1", ExpiresAt: now,
			Budget: map[string]decisionapi.BudgetStatus{"agent": status, "fleet": {Window: "day", LimitUSD: 2000, Level: decisionapi.LevelThrottle}}}},
		{"POST", "/v1/decisions", 200, decisionapi.DecisionResponse{Decision: decisionapi.DecisionAllow, DecisionID: "d2", PolicyVersion: "v1"}},
		{"POST", "/v1/leases/l1/release", 200, decisionapi.ReleaseResponse{LeaseID: "l1", DecisionID: "d1",
			Settlement: decisionapi.Settlement{ActualCostUSD: 0.4, EstimatedCostUSD: 0.42, FreedUSD: 0.02, Source: decisionapi.SourceSpans,
				SpansMatched: 3, InputTokens: 1000, OutputTokens: 200, TokenCapBreaches: 1, Anomaly: true, AnomalyRatio: 3.2,
				BaselineUSD: 0.125, EvidenceID: "ev_1"}}},
		{"GET", "/v1/budgets", 200, decisionapi.BudgetsResponse{PolicyVersion: "v1", Fleet: decisionapi.FleetStatus{Level: 1, Name: decisionapi.LevelThrottle},
			Scopes: []decisionapi.ScopeBudget{{Scope: "agent", BudgetStatus: status}}}},
		{"GET", "/v1/budgets", 200, decisionapi.BudgetsResponse{PolicyVersion: "v1", Fleet: decisionapi.FleetStatus{Name: decisionapi.LevelNormal}}},
		{"GET", "/v1/approvals?state=pending", 200, decisionapi.ApprovalList{Approvals: []decisionapi.Approval{approval}}},
		{"GET", "/v1/approvals?state=pending&limit=1", 200, decisionapi.ApprovalList{Approvals: []decisionapi.Approval{approval}, NextCursor: "YXwxfGFwXzE"}},
		{"GET", "/v1/budgets?limit=1&cursor=YnxmbGVldHw", 200, decisionapi.BudgetsResponse{PolicyVersion: "v1", Fleet: decisionapi.FleetStatus{Name: decisionapi.LevelNormal},
			Scopes: []decisionapi.ScopeBudget{{Scope: "agent", BudgetStatus: status}}, NextCursor: "YnxhZ2VudHxy"}},
		{"GET", "/v1/approvals", 200, decisionapi.ApprovalList{}},
		{"GET", "/v1/approvals/ap_1", 200, approval},
		{"POST", "/v1/approvals/ap_1/approve", 200, approval},
		{"POST", "/v1/approvals/ap_1/deny", 200, approval},
		{"POST", "/v1/explain", 200, decisionapi.ExplainResponse{Decision: decisionapi.DecisionDeny, RuleID: "budget.agent",
			Reason: "r", PolicyVersion: "v1", Constraints: cons, RetryAfterSec: 60, DerivedTags: []string{"high-cost"},
			SelectedRule: "throttle-llm-calls", Rules: []decisionapi.RuleTrace{{RuleID: "x", Decision: decisionapi.DecisionThrottle, Matched: false, Why: []string{"topics"}}},
			BudgetLayers: []decisionapi.LayerTrace{{Layer: "agent", Verdict: decisionapi.DecisionDeny, Detail: "d"}},
			Budget:       map[string]decisionapi.BudgetStatus{"agent": status}}},
		{"POST", "/v1/explain", 200, decisionapi.ExplainResponse{Decision: decisionapi.DecisionAllow, PolicyVersion: "v1"}},
		{"POST", "/v1/decisions", 400, decisionapi.ErrorResponse{Error: decisionapi.APIError{Code: decisionapi.CodeInvalidField, Field: "action", Message: "m"}}},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.body)
		if err != nil {
			t.Fatal(err)
		}
		if err := doc.CheckResponse(c.method, c.path, c.status, b); err != nil {
			t.Errorf("%s\n%s", err, b)
		}
	}
	requests := []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/decisions", req},
		{"POST", "/v1/explain", req},
		{"POST", "/v1/leases/l1/release", decisionapi.ReleaseRequest{ActualCostUSD: &cost, Status: decisionapi.StatusPanic}},
		{"POST", "/v1/approvals/ap_1/approve", decisionapi.ApproveRequest{Constraints: cons, CostCapUSD: &cost, Comment: "fine"}},
		{"POST", "/v1/approvals/ap_1/deny", decisionapi.DenyRequest{Reason: "too expensive"}},
	}
	for _, r := range requests {
		b, _ := json.Marshal(r.body)
		if err := doc.CheckRequest(r.method, r.path, b); err != nil {
			t.Errorf("%s\n%s", err, b)
		}
	}
}

// TestDocumentRejectsWhatValidateRejects checks that the bounds in the document agree with
// Validate at the edges it can express.
func TestDocumentRejectsWhatValidateRejects(t *testing.T) {
	doc := loadDoc(t)
	long := strings.Repeat("a", decisionapi.MaxIDBytes+1)
	tags := make([]string, decisionapi.MaxRiskTags+1)
	for i := range tags {
		tags[i] = "t"
	}
	for _, r := range []decisionapi.DecisionRequest{
		{AgentID: long, Action: "a"},
		{AgentID: "a", Action: "a", EstimatedCostUSD: -1},
		{AgentID: "a", Action: "a", EstimatedCostUSD: 2e9},
		{AgentID: "a", Action: "a", Items: -1},
		{AgentID: "a", Action: "a", RiskTags: tags},
		{AgentID: "a", Action: "a", RiskTags: []string{"has space"}},
	} {
		if r.Validate() == nil {
			t.Errorf("Validate accepts %+v", r)
		}
		b, _ := json.Marshal(r)
		if doc.CheckRequest("POST", "/v1/decisions", b) == nil {
			t.Errorf("the document accepts %s", b)
		}
	}
}

func TestDocumentActionPatternAgreesWithValidate(t *testing.T) {
	doc := loadDoc(t)
	for _, action := range []string{"chat", "job.research.company", "job..x", ".job", "job.", "job.*", "job x", "a.b-c_d/e"} {
		r := decisionapi.DecisionRequest{AgentID: "a", Action: action}
		b, _ := json.Marshal(r)
		valid, documented := r.Validate() == nil, doc.CheckRequest("POST", "/v1/decisions", b) == nil
		if valid != documented {
			t.Errorf("action %q: Validate accepts %v, the document %v", action, valid, documented)
		}
	}
}

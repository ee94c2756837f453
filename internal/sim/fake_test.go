package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentcost/agentcost/api/openapicheck"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
	"github.com/agentcost/agentcost/pkg/guard"
)

const (
	agentToken    = "agent-token"
	reviewerToken = "reviewer-token"
	// simNanosPerToken is sim-llm's price: $15 per million tokens is 15,000 nano-dollars a token.
	simNanosPerToken = 15_000
)

// fakeDecisionAPI is a small decision API with a scripted policy, checked against the OpenAPI
// document both ways. It settles a released lease on the spans the in-memory exporter holds for
// the decision (attribute agentcost.decision_id), priced at sim-llm's $15 per million tokens, so a
// test sees whether the fleet's spans carry the decision and reach the exporter before the
// release. Its policy:
//
//   - topics ending ".agent-loop" tagged unbounded: deny by deny-unbounded-loop;
//   - an approved approval_id: allow (consumed); a batch-generate of $50 or more: require_approval;
//   - fleet (when limit > 0) at 95% of limit (settled + reserved): deny by budget.fleet; at 80%:
//     every second ask of each agent is throttled by budget.fleet;
//   - research-agent: allow_with_constraints with max_tokens researchMaxTokens; else allow;
//   - a settlement costing 3x or more the first settlement of its agent and topic is anomalous.
type fakeDecisionAPI struct {
	t     *testing.T
	srv   *httptest.Server
	spans *tracetest.InMemoryExporter
	// limit is the fleet budget (0: none); researchMaxTokens caps research-agent's output.
	limit             money.Nanos
	researchMaxTokens int64
	// failDecisions answers every decision with a 500.
	failDecisions bool

	mu           sync.Mutex
	seq          int
	spent        money.Nanos
	reserved     money.Nanos
	byKey        map[string]decisionapi.DecisionResponse
	decisions    map[string]*fakeDecision
	leases       map[string]string
	approvals    map[string]*decisionapi.Approval
	baselines    map[string]money.Nanos
	throttleNext map[string]bool
	requests     int
}

type fakeDecision struct {
	req         decisionapi.DecisionRequest
	traceparent string
	estimate    money.Nanos
	released    bool
}

func newFakeDecisionAPI(t *testing.T, spans *tracetest.InMemoryExporter) *fakeDecisionAPI {
	f := &fakeDecisionAPI{t: t, spans: spans, researchMaxTokens: 8000,
		byKey: map[string]decisionapi.DecisionResponse{}, decisions: map[string]*fakeDecision{}, leases: map[string]string{},
		approvals: map[string]*decisionapi.Approval{}, baselines: map[string]money.Nanos{}, throttleNext: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+decisionapi.PathDecisions, f.decide)
	mux.HandleFunc("POST "+decisionapi.PathLeaseRelease, f.release)
	mux.HandleFunc("GET "+decisionapi.PathApprovals, f.listApprovals)
	mux.HandleFunc("GET "+decisionapi.PathApproval, f.getApproval)
	mux.HandleFunc("POST "+decisionapi.PathApprove, f.approve)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeDecisionAPI) role(r *http.Request) string {
	switch r.Header.Get("Authorization") {
	case "Bearer " + agentToken:
		return "agent"
	case "Bearer " + reviewerToken:
		return "reviewer"
	}
	return ""
}

// body checks a request against the document and decodes it strictly.
func (f *fakeDecisionAPI) body(w http.ResponseWriter, r *http.Request, v interface{ Validate() error }) bool {
	raw, _ := io.ReadAll(r.Body)
	if err := openapicheck.CheckRequest(r.Method, r.URL.RequestURI(), raw); err != nil {
		f.t.Errorf("%s %s does not match the document: %v\n%s", r.Method, r.URL.Path, err, raw)
	}
	err := decisionapi.Decode(bytes.NewReader(raw), decisionapi.DefaultBodyLimit, v)
	if err == nil {
		err = v.Validate()
	}
	if err != nil {
		f.t.Errorf("%s %s: invalid request: %v", r.Method, r.URL.Path, err)
		decisionapi.WriteError(w, err)
		return false
	}
	return true
}

func (f *fakeDecisionAPI) reply(w http.ResponseWriter, r *http.Request, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Error(err)
		return
	}
	if err := openapicheck.CheckResponse(r.Method, r.URL.Path, http.StatusOK, b); err != nil {
		f.t.Errorf("the fake's own %s %s answer does not match the document: %v", r.Method, r.URL.Path, err)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (f *fakeDecisionAPI) fleetLevel() decisionapi.BudgetLevel {
	used := f.spent + f.reserved
	switch {
	case f.limit == 0:
		return decisionapi.LevelNormal
	case used*100 >= f.limit*95:
		return decisionapi.LevelPause
	case used*100 >= f.limit*80:
		return decisionapi.LevelThrottle
	}
	return decisionapi.LevelNormal
}

func (f *fakeDecisionAPI) decide(w http.ResponseWriter, r *http.Request) {
	if f.role(r) != "agent" {
		f.t.Errorf("decision request with Authorization %q", r.Header.Get("Authorization"))
	}
	var req decisionapi.DecisionRequest
	if !f.body(w, r, &req) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if f.failDecisions {
		decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeInternal, "policy store unavailable"))
		return
	}
	if resp, ok := f.byKey[req.IdempotencyKey]; ok {
		f.reply(w, r, resp)
		return
	}
	f.seq++
	n := strconv.Itoa(f.seq)
	resp := decisionapi.DecisionResponse{DecisionID: "dec-" + n, PolicyVersion: "fake-v1", PolicySHA256: strings.Repeat("0", 64)}
	estimate, err := money.FromUSD(req.EstimatedCostUSD)
	if err != nil {
		f.t.Errorf("estimate %v: %v", req.EstimatedCostUSD, err)
	}
	level := f.fleetLevel()
	approval := f.approvals[req.ApprovalID]
	switch {
	case strings.HasSuffix(req.Action, ".agent-loop") && slices.Contains(req.RiskTags, "unbounded"):
		resp.Decision, resp.RuleID = decisionapi.DecisionDeny, "deny-unbounded-loop"
	case approval != nil && approval.State == decisionapi.ApprovalApproved:
		approval.State = decisionapi.ApprovalConsumed
		resp.Decision, resp.ApprovalID = decisionapi.DecisionAllow, approval.ApprovalID
	case strings.HasSuffix(req.Action, ".batch-generate") && req.EstimatedCostUSD >= 50:
		now := time.Now().UTC()
		ap := &decisionapi.Approval{ApprovalID: "ap-" + n, State: decisionapi.ApprovalPending, AgentID: req.AgentID,
			Action: req.Action, RunID: req.RunID, Team: req.Team, EstimatedCostUSD: req.EstimatedCostUSD, Items: req.Items,
			RuleID: "approve-expensive-batch", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		f.approvals[ap.ApprovalID] = ap
		resp.Decision, resp.RuleID, resp.ApprovalID = decisionapi.DecisionRequireApproval, ap.RuleID, ap.ApprovalID
	case level == decisionapi.LevelPause:
		resp.Decision, resp.RuleID, resp.RetryAfterSec = decisionapi.DecisionDeny, "budget.fleet", 3600
	case level == decisionapi.LevelThrottle && f.throttleNext[req.AgentID]:
		resp.Decision, resp.RuleID, resp.RetryAfterSec = decisionapi.DecisionThrottle, "budget.fleet", 1
	case req.AgentID == "research-agent":
		resp.Decision = decisionapi.DecisionAllowWithConstraints
		resp.Constraints = decisionapi.Constraints{MaxTokens: decisionapi.Limit(f.researchMaxTokens), MaxRuntimeSec: decisionapi.Limit(120)}
	default:
		resp.Decision = decisionapi.DecisionAllow
	}
	if level == decisionapi.LevelThrottle {
		f.throttleNext[req.AgentID] = !f.throttleNext[req.AgentID]
	}
	if f.limit > 0 {
		resp.Budget = map[string]decisionapi.BudgetStatus{"fleet": {Window: "day", SpentUSD: f.spent.USD(),
			ReservedUSD: f.reserved.USD(), LimitUSD: f.limit.USD(), Utilization: float64(f.spent+f.reserved) / float64(f.limit), Level: level}}
	}
	if resp.Decision.Allowed() {
		resp.LeaseID = "lease-" + n
		f.leases[resp.LeaseID] = resp.DecisionID
		f.reserved += estimate
	}
	f.decisions[resp.DecisionID] = &fakeDecision{req: req, traceparent: r.Header.Get("traceparent"), estimate: estimate}
	f.byKey[req.IdempotencyKey] = resp
	f.reply(w, r, resp)
}

func (f *fakeDecisionAPI) release(w http.ResponseWriter, r *http.Request) {
	var req decisionapi.ReleaseRequest
	if !f.body(w, r, &req) {
		return
	}
	if req.ActualCostUSD != nil {
		f.t.Errorf("release reports a cost %v: a traced agent must let its spans settle", *req.ActualCostUSD)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.leases[r.PathValue("id")]
	d := f.decisions[id]
	if d == nil || d.released {
		decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeNotFound, "no lease %q", r.PathValue("id")))
		return
	}
	d.released = true
	s := decisionapi.Settlement{Source: decisionapi.SourceNone, EstimatedCostUSD: d.estimate.USD()}
	var cost money.Nanos
	for _, span := range f.spans.GetSpans() {
		attrs := attrMap(span.Attributes)
		if attrs[guard.BaggageDecisionID].AsString() != id || attrs["gen_ai.operation.name"].AsString() != "chat" {
			continue
		}
		in, out := attrs["gen_ai.usage.input_tokens"].AsInt64(), attrs["gen_ai.usage.output_tokens"].AsInt64()
		s.SpansMatched++
		s.InputTokens += in
		s.OutputTokens += out
		cost += money.Nanos((in + out) * simNanosPerToken)
	}
	if s.SpansMatched > 0 {
		s.Source = decisionapi.SourceSpans
	}
	s.ActualCostUSD = cost.USD()
	f.spent += cost
	f.reserved -= d.estimate
	key := d.req.AgentID + " " + d.req.Action
	if base, ok := f.baselines[key]; !ok {
		f.baselines[key] = cost
	} else if base > 0 && cost >= 3*base {
		s.Anomaly, s.AnomalyRatio, s.BaselineUSD = true, float64(cost)/float64(base), base.USD()
	}
	f.reply(w, r, decisionapi.ReleaseResponse{LeaseID: r.PathValue("id"), DecisionID: id, Settlement: s})
}

func (f *fakeDecisionAPI) listApprovals(w http.ResponseWriter, r *http.Request) {
	if f.role(r) != "reviewer" {
		decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeForbidden, "reviewers only"))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var list decisionapi.ApprovalList
	for _, ap := range f.approvals {
		if string(ap.State) == r.URL.Query().Get("state") {
			list.Approvals = append(list.Approvals, *ap)
		}
	}
	f.reply(w, r, list)
}

func (f *fakeDecisionAPI) getApproval(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ap, ok := f.approvals[r.PathValue("id")]
	if !ok {
		decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeNotFound, "no approval"))
		return
	}
	f.reply(w, r, *ap)
}

func (f *fakeDecisionAPI) approve(w http.ResponseWriter, r *http.Request) {
	if f.role(r) != "reviewer" {
		f.t.Errorf("approve with Authorization %q", r.Header.Get("Authorization"))
		decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeForbidden, "reviewers only"))
		return
	}
	var req decisionapi.ApproveRequest
	if !f.body(w, r, &req) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ap, ok := f.approvals[r.PathValue("id")]
	if !ok || ap.State != decisionapi.ApprovalPending {
		decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeConflict, "not pending"))
		return
	}
	ap.State, ap.Reviewer, ap.Comment, ap.DecidedAt = decisionapi.ApprovalApproved, "reviewer@example.com", req.Comment, time.Now().UTC()
	f.reply(w, r, *ap)
}

// addForeignApproval adds a pending approval of another client, which the fleet's reviewer must
// leave alone.
func (f *fakeDecisionAPI) addForeignApproval(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now().UTC()
	f.approvals[id] = &decisionapi.Approval{ApprovalID: id, State: decisionapi.ApprovalPending, AgentID: "other-agent",
		Action: "job.other.batch-generate", RunID: "other-run", EstimatedCostUSD: 80, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
}

func (f *fakeDecisionAPI) approvalState(id string) decisionapi.ApprovalState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.approvals[id].State
}

func (f *fakeDecisionAPI) decision(id string) (fakeDecision, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.decisions[id]
	if !ok {
		return fakeDecision{}, false
	}
	return *d, true
}

func (f *fakeDecisionAPI) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// keptExporter is the in-memory exporter without the reset its Shutdown does, so a test reads
// the spans after the fleet closed.
type keptExporter struct{ *tracetest.InMemoryExporter }

func (keptExporter) Shutdown(context.Context) error { return nil }

var _ sdktrace.SpanExporter = keptExporter{}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// fakeMetrics serves agentcost_anomalies_total: the first scrape shows before, later ones after.
func fakeMetrics(t *testing.T, before, after string) string {
	var mu sync.Mutex
	scrapes := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		scrapes++
		body := after
		if scrapes == 1 {
			body = before
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

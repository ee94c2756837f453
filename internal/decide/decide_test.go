package decide

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/ledger/ledgertest"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

const enginePolicy = `version: v1
policy_version: unit-1
default_decision: allow
budgets:
  default_agent: {limit_usd: 5, window: day}
rules:
  - id: two-at-a-time
    match: {topics: ["job.concurrent"]}
    decision: allow_with_constraints
    constraints: {max_concurrent: 2, max_runtime_sec: 60, max_tokens: 100}
`

// failingLedger fails the operations named in fail.
type failingLedger struct {
	ledger.Ledger
	mu   sync.Mutex
	fail map[string]bool
}

var errInjected = errors.New("injected ledger failure")

func (f *failingLedger) failing(op string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail[op]
}

func (f *failingLedger) Reserve(ctx context.Context, req ledger.ReserveRequest) (ledger.Reservation, error) {
	if f.failing("reserve") {
		return ledger.Reservation{}, errInjected
	}
	return f.Ledger.Reserve(ctx, req)
}

func (f *failingLedger) Read(ctx context.Context, req ledger.ReadRequest) (ledger.ReadResult, error) {
	if f.failing("read") {
		return ledger.ReadResult{}, errInjected
	}
	return f.Ledger.Read(ctx, req)
}

type memEvidence struct {
	mu   sync.Mutex
	recs []evidence.Record
}

func (m *memEvidence) Append(r evidence.Record) (evidence.Appended, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, r)
	return evidence.Appended{Record: r}, nil
}

type testEngine struct {
	*Engine
	ledger *failingLedger
	ev     *memEvidence
	clock  time.Time
	mu     sync.Mutex
}

func (te *testEngine) advance(d time.Duration) {
	te.mu.Lock()
	te.clock = te.clock.Add(d)
	te.mu.Unlock()
}

func newTestEngine(t *testing.T, mode FailMode) *testEngine {
	t.Helper()
	return newTestEngineOn(t, ledgertest.NewEmbedded(t), mode)
}

func newTestEngineOn(t *testing.T, l ledger.Ledger, mode FailMode) *testEngine {
	t.Helper()
	return newTestEngineWith(t, l, mode, enginePolicy, nil)
}

// newTestEngineWith builds a test engine on l with the policy text; edit, when set, changes the
// engine's configuration before it is built.
func newTestEngineWith(t *testing.T, l ledger.Ledger, mode FailMode, policyText string, edit func(*Config)) *testEngine {
	t.Helper()
	p, err := policy.Parse("policy.yaml", []byte(policyText))
	if err != nil {
		t.Fatal(err)
	}
	bl, err := baseline.New(baseline.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	te := &testEngine{ledger: &failingLedger{Ledger: l, fail: map[string]bool{}}, ev: &memEvidence{},
		clock: time.Date(2026, time.March, 11, 10, 0, 0, 0, time.UTC)}
	cfg := Config{
		Policy: func() *policy.Policy { return p }, Ledger: te.ledger, Evidence: te.ev, Baselines: bl, FailMode: mode,
		Now: func() time.Time { te.mu.Lock(); defer te.mu.Unlock(); return te.clock },
	}
	if edit != nil {
		edit(&cfg)
	}
	te.Engine, err = New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return te
}

func TestParseTraceparent(t *testing.T) {
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		header, want string
	}{
		{"00-" + trace + "-00f067aa0ba902b7-01", trace},
		{" 00-" + trace + "-00f067aa0ba902b7-00 ", trace},
		{"01-" + trace + "-00f067aa0ba902b7-01-future", trace}, // a later version may append fields
		{"00-" + trace + "-00f067aa0ba902b7-01-extra", ""},     // version 00 may not
		{"ff-" + trace + "-00f067aa0ba902b7-01", ""},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"00-" + trace + "-0000000000000000-01", ""},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""},
		{"00-" + trace + "_00f067aa0ba902b7-01", ""},
		{"", ""},
	} {
		if got := parseTraceparent(tc.header); got != tc.want {
			t.Errorf("parseTraceparent(%q) = %q, want %q", tc.header, got, tc.want)
		}
	}
}

// TestFailureUndo: a reservation that fails after the concurrency slot was taken gives the slot
// back before answering under the fail mode.
func TestFailureUndo(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, FailClosed)
	req := decisionapi.DecisionRequest{AgentID: "a", Action: "job.concurrent", EstimatedCostUSD: 1}
	te.ledger.fail["reserve"] = true
	for range 3 {
		d, err := te.Decide(ctx, Caller{}, req, "")
		if err != nil || d.Decision != decisionapi.DecisionDeny || d.RuleID != RuleLedgerUnavailable || d.RetryAfterSec != 5 || d.Budget != nil {
			t.Fatalf("with a failing reserve: %+v %v", d, err)
		}
	}
	te.ledger.fail["reserve"] = false
	for i := range 2 {
		if d, _ := te.Decide(ctx, Caller{}, req, ""); !d.Decision.Allowed() {
			t.Fatalf("slot %d after the failures: %+v; the failed decisions kept their slots", i, d)
		}
	}
	if d, _ := te.Decide(ctx, Caller{}, req, ""); d.Decision != decisionapi.DecisionThrottle {
		t.Errorf("third slot: %+v, want throttle", d)
	}
	// Every answer here is evidence-worthy: three denials, two allow_with_constraints, a throttle.
	var decisions []string
	for _, r := range te.ev.recs {
		decisions = append(decisions, r.Decision)
	}
	if got := strings.Join(decisions, " "); got != "deny deny deny allow_with_constraints allow_with_constraints throttle" {
		t.Errorf("evidence of the decisions: %s", got)
	}
}

// TestFailOpen answers the rule's result on empty state, without a lease.
func TestFailOpen(t *testing.T) {
	te := newTestEngine(t, FailOpen)
	te.ledger.fail["read"] = true
	d, err := te.Decide(context.Background(), Caller{}, decisionapi.DecisionRequest{AgentID: "a", Action: "job.concurrent", EstimatedCostUSD: 1}, "")
	if err != nil || d.Decision != decisionapi.DecisionAllowWithConstraints || d.LeaseID != "" || d.RuleID != "two-at-a-time" || *d.Constraints.MaxTokens != 100 {
		t.Errorf("fail_open: %+v %v", d, err)
	}
}

// TestIdempotencyAnswers: a repeat waits for the first answer, a stored API error is answered
// again, and a claim whose decision never finished is abandoned after two minutes.
func TestIdempotencyAnswers(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, FailClosed)
	te.idemWait = 50 * time.Millisecond
	req := decisionapi.DecisionRequest{AgentID: "a", Action: "job.x", EstimatedCostUSD: 1, IdempotencyKey: "k1"}

	// A claim without an answer: still being decided, then abandoned.
	claim, _ := json.Marshal(idemClaim{DecisionID: "dec_lost", RequestHash: requestHash(&req, ""), At: te.clock})
	if _, _, err := te.ledger.PutIfAbsent(ctx, idemClaimKey(Caller{}, &req), claim, time.Hour); err != nil {
		t.Fatal(err)
	}
	_, err := te.Decide(ctx, Caller{}, req, "")
	if ae := decisionapi.AsAPIError(err); ae.Status != http.StatusServiceUnavailable || ae.RetryAfterSec != 1 {
		t.Errorf("repeat of an unfinished decision: %v, want 503 retry after 1s", err)
	}
	te.advance(3 * time.Minute)
	_, err = te.Decide(ctx, Caller{}, req, "")
	if ae := decisionapi.AsAPIError(err); ae.Status != http.StatusConflict {
		t.Errorf("repeat of an abandoned decision: %v, want 409", err)
	}

	// The writer gets past a live probe.
	req.IdempotencyKey = "k2"
	first, err := te.Decide(ctx, Caller{}, req, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := te.ledger.PutIfAbsent(ctx, idemAnswerKey("dec_x"), probeSentinel, probeTTL); err != nil {
		t.Fatal(err)
	}
	te.storeAnswer(ctx, "dec_x", first, nil)
	got, err := te.awaitAnswer(ctx, "k", idemClaim{DecisionID: "dec_x", At: te.clock})
	if err != nil || got.DecisionID != first.DecisionID {
		t.Errorf("answer stored past a probe: %+v %v", got, err)
	}

	// An API error is the answer of every repeat.
	req.IdempotencyKey, req.ApprovalID = "k3", "apr_missing"
	for range 2 {
		_, err := te.Decide(ctx, Caller{}, req, "")
		if ae := decisionapi.AsAPIError(err); ae.Status != http.StatusBadRequest || ae.Field != "approval_id" {
			t.Errorf("unknown approval: %v, want 400 naming approval_id", err)
		}
	}
}

// TestLeaseOwnership: a lease id is bound to its agent; engines sharing a ledger share the key.
func TestLeaseOwnership(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, FailClosed)
	d, err := te.Decide(ctx, Caller{Role: access.RoleAgent, Subject: "a"}, decisionapi.DecisionRequest{AgentID: "a", Action: "job.x", EstimatedCostUSD: 1}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		caller Caller
		lease  string
		status int
	}{
		{Caller{Role: access.RoleAgent, Subject: "b"}, d.LeaseID, http.StatusForbidden},
		{Caller{Role: access.RoleAgent, Subject: "a"}, d.LeaseID + "x", http.StatusForbidden},
		{Caller{Role: access.RoleReviewer, Subject: "r"}, d.LeaseID, http.StatusForbidden},
	} {
		_, err := te.Release(ctx, tc.caller, tc.lease, decisionapi.ReleaseRequest{})
		if ae := decisionapi.AsAPIError(err); ae == nil || ae.Status != tc.status {
			t.Errorf("%+v releasing %q: %v, want %d", tc.caller, tc.lease, err, tc.status)
		}
	}
	other, err := New(ctx, te.cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := other.Release(ctx, Caller{Role: access.RoleAgent, Subject: "a"}, d.LeaseID, decisionapi.ReleaseRequest{})
	if err != nil || r.DecisionID != d.DecisionID {
		t.Errorf("release through a second engine on the same ledger: %+v %v", r, err)
	}
}

// TestSettleBaseline: actions that matched no span and reported nothing leave the baseline alone.
func TestSettleBaseline(t *testing.T) {
	te := newTestEngine(t, FailClosed)
	ctx := context.Background()
	s := ledger.Settlement{ID: "dec_1", Agent: "a", Action: "job.x", Source: decisionapi.SourceNone, Estimate: money.NanosPerUSD}
	if out := te.settle(ctx, s); out.FreedUSD != 1 || out.Source != decisionapi.SourceNone {
		t.Errorf("settlement %+v", out)
	}
	if _, n, ok := te.cfg.Baselines.Lookup(baselineKey("a", "job.x")); ok {
		t.Errorf("a cost-less settlement was observed (%d observations)", n)
	}
	s.Source, s.Cost, s.ReportedCost, s.HasReported = decisionapi.SourceReported, 2*money.NanosPerUSD, 2*money.NanosPerUSD, true
	te.settle(ctx, s)
	if b, n, ok := te.cfg.Baselines.Lookup(baselineKey("a", "job.x")); !ok || n != 1 || b != 2*money.NanosPerUSD {
		t.Errorf("baseline %v after one $2 action (%d observations, %v)", b, n, ok)
	}
}

// TestBackends runs one action's life on both ledger backends: an idempotent decision (the
// Redis probe is a one-millisecond key), the concurrency slot, and the release that settles it.
func TestBackends(t *testing.T) {
	backends := map[string]func(t *testing.T) ledger.Ledger{
		"embedded": func(t *testing.T) ledger.Ledger { return ledgertest.NewEmbedded(t) },
		"redis":    func(t *testing.T) ledger.Ledger { return ledgertest.NewRedis(t, redistest.Start(t)) },
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			te := newTestEngineOn(t, open(t), FailClosed)
			agent := Caller{Role: access.RoleAgent, Subject: "a"}
			req := decisionapi.DecisionRequest{AgentID: "a", Action: "job.concurrent", EstimatedCostUSD: 1, IdempotencyKey: "once"}
			first, err := te.Decide(ctx, agent, req, "")
			if err != nil || !first.Decision.Allowed() {
				t.Fatalf("first: %+v %v", first, err)
			}
			again, err := te.Decide(ctx, agent, req, "")
			if err != nil || again.DecisionID != first.DecisionID {
				t.Fatalf("repeat: %+v %v", again, err)
			}
			req.IdempotencyKey = ""
			if d, _ := te.Decide(ctx, agent, req, ""); !d.Decision.Allowed() {
				t.Fatalf("second slot: %+v", d)
			}
			if d, _ := te.Decide(ctx, agent, req, ""); d.Decision != decisionapi.DecisionThrottle {
				t.Fatalf("third slot: %+v, want throttle", d)
			}
			r, err := te.Release(ctx, agent, first.LeaseID, decisionapi.ReleaseRequest{ActualCostUSD: ptr(0.5)})
			if err != nil || r.Settlement.Source != decisionapi.SourceReported || r.Settlement.ActualCostUSD != 0.5 {
				t.Fatalf("release: %+v %v", r, err)
			}
			if d, _ := te.Decide(ctx, agent, req, ""); !d.Decision.Allowed() {
				t.Errorf("after the release: %+v, want the freed slot", d)
			}
			st, err := te.ledger.State(ctx, ledger.ScopeAgent, "a", ledger.Day, te.clock)
			if err != nil || st.Spent != money.NanosPerUSD/2 || st.Reserved != 2*money.NanosPerUSD {
				t.Errorf("agent state %+v %v, want $0.50 spent and $2 reserved", st, err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

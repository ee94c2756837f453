package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/agentcost/agentcost/api/openapicheck"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

const testToken = "s3cret-token"

// fakeAPI is a scripted decision API. It checks every request the way the real server would
// (bearer token, strict JSON, Validate, the OpenAPI document) and checks its own responses against
// the document, so the client is tested against the documented contract.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex
	// decisions is the script of POST /v1/decisions answers, one per call; the last repeats.
	decisions []decisionapi.DecisionResponse
	// failDecisions answers the first n decision calls with status failStatus.
	failDecisions int
	failStatus    int
	// approvalStates is the script of GET /v1/approvals/{id} states; the last repeats.
	approvalStates []decisionapi.ApprovalState
	// rawDecision, when set, is written verbatim as every decision answer (unchecked).
	rawDecision string
	// releaseStatus, when set, is the status of every release answer.
	releaseStatus int

	gotDecisions   []decisionapi.DecisionRequest
	gotTraceparent []string
	gotPolls       []string
	gotReleases    []releaseCall
}

type releaseCall struct {
	leaseID string
	req     decisionapi.ReleaseRequest
	raw     string
}

func newFakeAPI(t *testing.T, decisions ...decisionapi.DecisionResponse) *fakeAPI {
	f := &fakeAPI{t: t, decisions: decisions}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+decisionapi.PathDecisions, f.decide)
	mux.HandleFunc("GET "+decisionapi.PathApproval, f.approval)
	mux.HandleFunc("POST "+decisionapi.PathLeaseRelease, f.release)
	f.srv = httptest.NewServer(f.auth(mux))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
			f.t.Errorf("%s %s: Authorization %q", r.Method, r.URL.Path, got)
			decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeUnauthorized, "bad token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// body reads, document-checks and strictly decodes a request body.
func (f *fakeAPI) body(w http.ResponseWriter, r *http.Request, v interface{ Validate() error }) ([]byte, bool) {
	raw, _ := io.ReadAll(r.Body)
	if r.Header.Get("Content-Type") != "application/json" {
		f.t.Errorf("%s %s: Content-Type %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
	}
	if err := openapicheck.CheckRequest(r.Method, r.URL.RequestURI(), raw); err != nil {
		f.t.Errorf("request does not match the document: %v\n%s", err, raw)
	}
	err := decisionapi.Decode(bytes.NewReader(raw), decisionapi.DefaultBodyLimit, v)
	if err == nil {
		err = v.Validate()
	}
	if err != nil {
		f.t.Errorf("%s %s: invalid request: %v", r.Method, r.URL.Path, err)
		decisionapi.WriteError(w, err)
		return raw, false
	}
	return raw, true
}

// reply writes v as JSON after checking it against the document.
func (f *fakeAPI) reply(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := openapicheck.CheckResponse(r.Method, r.URL.Path, status, b); err != nil {
		f.t.Errorf("the fake's own response does not match the document: %v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (f *fakeAPI) decide(w http.ResponseWriter, r *http.Request) {
	var req decisionapi.DecisionRequest
	if _, ok := f.body(w, r, &req); !ok {
		return
	}
	f.mu.Lock()
	f.gotDecisions = append(f.gotDecisions, req)
	f.gotTraceparent = append(f.gotTraceparent, r.Header.Get("traceparent"))
	if f.failDecisions > 0 {
		f.failDecisions--
		f.mu.Unlock()
		e := decisionapi.NewError(decisionapi.CodeUnavailable, "ledger unavailable")
		e.Status, e.RetryAfterSec = f.failStatus, 1
		decisionapi.WriteError(w, e)
		return
	}
	if f.rawDecision != "" {
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, f.rawDecision)
		return
	}
	if len(f.decisions) == 0 {
		f.mu.Unlock()
		f.t.Error("unexpected decision request")
		decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeInternal, "no script"))
		return
	}
	resp := f.decisions[0]
	if len(f.decisions) > 1 {
		f.decisions = f.decisions[1:]
	}
	n := len(f.gotDecisions)
	f.mu.Unlock()
	if resp.DecisionID == "" {
		resp.DecisionID = "dec-" + strconv.Itoa(n)
	}
	if resp.PolicyVersion == "" {
		resp.PolicyVersion = "v1.9.0"
	}
	if resp.Decision.Allowed() && resp.LeaseID == "" {
		resp.LeaseID = "lease-" + strconv.Itoa(n)
	}
	f.reply(w, r, http.StatusOK, resp)
}

func (f *fakeAPI) approval(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	f.gotPolls = append(f.gotPolls, id)
	if len(f.approvalStates) == 0 {
		f.mu.Unlock()
		decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeNotFound, "no approval %q", id))
		return
	}
	state := f.approvalStates[0]
	if len(f.approvalStates) > 1 {
		f.approvalStates = f.approvalStates[1:]
	}
	f.mu.Unlock()
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	ap := decisionapi.Approval{ApprovalID: id, State: state, AgentID: "research-agent", Action: "job.research.batch-generate",
		EstimatedCostUSD: 75, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if state != decisionapi.ApprovalPending {
		ap.Reviewer, ap.DecidedAt = "alice@example.com", now.Add(time.Minute)
	}
	if state == decisionapi.ApprovalDenied {
		ap.Comment = "too expensive this week"
	}
	f.reply(w, r, http.StatusOK, ap)
}

func (f *fakeAPI) release(w http.ResponseWriter, r *http.Request) {
	var req decisionapi.ReleaseRequest
	raw, ok := f.body(w, r, &req)
	if !ok {
		return
	}
	id := r.PathValue("id")
	f.mu.Lock()
	f.gotReleases = append(f.gotReleases, releaseCall{leaseID: id, req: req, raw: string(raw)})
	status := f.releaseStatus
	f.mu.Unlock()
	if status != 0 {
		decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeInternal, "boom"))
		return
	}
	s := decisionapi.Settlement{Source: decisionapi.SourceNone}
	if req.ActualCostUSD != nil {
		s.Source, s.ActualCostUSD = decisionapi.SourceReported, *req.ActualCostUSD
	}
	f.reply(w, r, http.StatusOK, decisionapi.ReleaseResponse{LeaseID: id, DecisionID: "dec-1", Settlement: s})
}

func (f *fakeAPI) snapshot() (decisions []decisionapi.DecisionRequest, traceparents, polls []string, releases []releaseCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]decisionapi.DecisionRequest(nil), f.gotDecisions...), append([]string(nil), f.gotTraceparent...),
		append([]string(nil), f.gotPolls...), append([]releaseCall(nil), f.gotReleases...)
}

// fakeClock replaces the client's clock: sleeps return at once, advance the time and are
// recorded.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// newTestClient returns a client of f with a fake clock.
func newTestClient(t *testing.T, f *fakeAPI, opts ...Option) (*Client, *fakeClock) {
	t.Helper()
	base := []Option{WithToken(testToken), WithAgent("research-agent"), WithTeam("growth"), WithRunID("run-7")}
	c, err := New(f.srv.URL, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	c.now, c.sleep = clock.Now, clock.Sleep
	return c, clock
}

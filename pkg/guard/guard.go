// Package guard is the Go client agents use before each expensive action: it asks agentcost's
// decision API, obeys the answer, runs the action under its deadline with the decision in OTel
// baggage, and releases the lease afterwards.
//
//	c, err := guard.New("http://localhost:4320", guard.WithToken(token), guard.WithAgent("research-agent"))
//	err = c.Run(ctx, guard.Action{Name: "job.research.company", EstimatedCostUSD: 0.40},
//		func(ctx context.Context, d *guard.Decision) error { return research(ctx, d.Constraints.MaxTokens) })
//
// allow and allow_with_constraints run the action; throttle waits retry_after_sec and asks again;
// require_approval polls the approval and asks again with its approval_id once approved; deny
// returns a *DeniedError without running the action.
package guard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Defaults of the client's options.
const (
	DefaultHTTPTimeout        = 30 * time.Second
	DefaultMaxApprovalWait    = 15 * time.Minute
	DefaultPollInterval       = 2 * time.Second
	DefaultMaxThrottleRetries = 10
	DefaultMaxThrottleWait    = 2 * time.Minute
	// releaseTimeout bounds a release, which runs even when the caller's context is done.
	releaseTimeout = 10 * time.Second
	// maxApprovalRounds bounds how often one Run waits for an approval: a server that keeps
	// answering require_approval after approvals is not waited on forever.
	maxApprovalRounds = 3
)

// Client calls the decision API. It is safe for concurrent use.
type Client struct {
	base               string
	http               *http.Client
	token              string
	agentID            string
	team               string
	runID              string
	propagator         propagation.TextMapPropagator
	tracer             trace.Tracer
	maxApprovalWait    time.Duration
	pollInterval       time.Duration
	maxThrottleRetries int
	maxThrottleWait    time.Duration
	maxRetryWait       time.Duration
	logger             *slog.Logger

	// leaseWatch is how often a running action's lease is checked for a freeze (0: never).
	leaseWatch time.Duration

	// now and sleep are the clock; tests replace them.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// Option configures a Client.
type Option func(*Client)

// WithToken sets the bearer token sent with every request.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient sets the HTTP client (default: one with a 30-second timeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithAgent sets the agent_id of every decision: the agent's canonical key, the same one its spans
// are attributed to (gen_ai.agent.name, else service.name).
func WithAgent(agentID string) Option { return func(c *Client) { c.agentID = agentID } }

// WithTeam sets the default team of every decision.
func WithTeam(team string) Option { return func(c *Client) { c.team = team } }

// WithRunID sets the default run_id of every decision; Action.RunID overrides it.
func WithRunID(runID string) Option { return func(c *Client) { c.runID = runID } }

// WithPropagator sets the propagator that writes the action's trace context into the decision
// request (default: W3C trace context, the traceparent header).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *Client) { c.propagator = p }
}

// WithTracerProvider makes Run start a span around each guarded action (decision, action and
// release), so that an action called without a span still gets a trace of its own.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *Client) { c.tracer = tp.Tracer("github.com/agentcost/agentcost/pkg/guard") }
}

// WithMaxApprovalWait bounds how long Run waits for a reviewer (default 15 minutes).
func WithMaxApprovalWait(d time.Duration) Option { return func(c *Client) { c.maxApprovalWait = d } }

// WithPollInterval sets how often Run polls a pending approval (default 2 seconds).
func WithPollInterval(d time.Duration) Option { return func(c *Client) { c.pollInterval = d } }

// WithMaxThrottleRetries bounds how often Run asks again after throttle (default 10).
func WithMaxThrottleRetries(n int) Option { return func(c *Client) { c.maxThrottleRetries = n } }

// WithMaxThrottleWait bounds the total time Run waits on throttle answers (default 2 minutes); a
// retry_after_sec beyond it ends the wait with a *ThrottledError at once.
func WithMaxThrottleWait(d time.Duration) Option { return func(c *Client) { c.maxThrottleWait = d } }

// WithLogger sets the logger for waits, retries and failed releases (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.logger = l } }

// New returns a client of the decision API at endpoint, e.g. "http://localhost:4320".
func New(endpoint string, opts ...Option) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("guard: parsing endpoint %q: %w", endpoint, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("guard: endpoint %q is not an http(s)://host[:port][/prefix] URL", endpoint)
	}
	c := &Client{
		base:               strings.TrimRight(u.String(), "/"),
		http:               &http.Client{Timeout: DefaultHTTPTimeout},
		propagator:         propagation.TraceContext{},
		tracer:             noop.NewTracerProvider().Tracer(""),
		maxApprovalWait:    DefaultMaxApprovalWait,
		pollInterval:       DefaultPollInterval,
		maxThrottleRetries: DefaultMaxThrottleRetries,
		maxThrottleWait:    DefaultMaxThrottleWait,
		maxRetryWait:       30 * time.Second,
		logger:             slog.New(slog.DiscardHandler),
		leaseWatch:         DefaultLeaseWatchInterval,
		now:                time.Now,
		sleep:              sleepCtx,
	}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil || c.propagator == nil || c.logger == nil {
		return nil, errors.New("guard: nil HTTP client, propagator or logger option")
	}
	if c.pollInterval <= 0 || c.maxApprovalWait < 0 || c.maxThrottleRetries < 0 || c.maxThrottleWait < 0 || c.leaseWatch < 0 {
		return nil, errors.New("guard: poll interval must be positive and waits, retries and the lease watch not negative")
	}
	return c, nil
}

// Action is an action to guard.
type Action struct {
	// Name is the action topic the policy matches, e.g. "job.research.company".
	Name string
	// EstimatedCostUSD is the estimate reserved against the budgets while the action runs.
	EstimatedCostUSD float64
	// Items is the number of items a batch action processes.
	Items int64
	// RiskTags are the risk tags the agent declares, e.g. "high-cost".
	RiskTags []string
	// RunID overrides the client's run id.
	RunID string
	// Team overrides the client's team.
	Team string
	// IdempotencyKey makes retried requests safe; Run generates one when empty. Later asks of the
	// same Run (after throttle or an approval) use the key with a suffix, "-r2", "-r3"….
	IdempotencyKey string
	// ApprovalID names an approval already granted for this action.
	ApprovalID string
	// Metadata is recorded with the decision's evidence.
	Metadata map[string]string
	// Model is the model the action intends to call (e.g. "gpt-4o"). With it, a policy's
	// degrade entries may allow a cheaper model instead of refusing; Decision.Model says which
	// model to call.
	Model string
}

// Decision is an allowed decision, handed to the guarded function.
type Decision struct {
	decisionapi.DecisionResponse
	// RunID and Action are the run and topic the decision was asked for.
	RunID  string
	Action string
	// RequestedModel is the Action's Model.
	RequestedModel string

	mu         sync.Mutex
	reported   money.Nanos
	hasReport  bool
	settlement *decisionapi.Settlement
}

// Model returns the model the action must call: the cheaper constraints.model when the policy
// degraded the request, else the Action's own Model (empty when it named none).
func (d *Decision) Model() string {
	if d.Constraints.Model != "" {
		return d.Constraints.Model
	}
	return d.RequestedModel
}

// Degraded reports whether the policy swapped the requested model for a cheaper one.
func (d *Decision) Degraded() bool {
	return d.Constraints.Model != "" && d.Constraints.Model != d.RequestedModel
}

// ReportCost adds usd to the action's reported cost, sent as actual_cost_usd on release. Only
// agents without tracing need it: the server settles on the spend of the action's spans and uses
// a reported cost only when no span matched.
func (d *Decision) ReportCost(usd float64) error {
	n, err := money.FromUSD(usd)
	if err != nil {
		return fmt.Errorf("guard: reporting cost %v: %w", usd, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reported > money.MaxNanos-n {
		return fmt.Errorf("guard: reported cost exceeds %s USD", money.MaxNanos)
	}
	d.reported += n
	d.hasReport = true
	return nil
}

// ReportedCostUSD returns the cost reported so far, and whether any was.
func (d *Decision) ReportedCostUSD() (float64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reported.USD(), d.hasReport
}

// Settlement returns the settlement the server answered the release with, once Run released the
// lease.
func (d *Decision) Settlement() (decisionapi.Settlement, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.settlement == nil {
		return decisionapi.Settlement{}, false
	}
	return *d.settlement, true
}

type decisionKey struct{}

// DecisionFromContext returns the decision of the guarded action ctx belongs to, or nil.
func DecisionFromContext(ctx context.Context) *Decision {
	d, _ := ctx.Value(decisionKey{}).(*Decision)
	return d
}

// Run asks whether action may run, obeys the answer and, when allowed, runs fn under the
// decision's max_runtime_sec with the decision in ctx's baggage, then releases the lease —
// also when fn fails or panics (the panic continues after the release). A release that fails
// is logged, not returned: the server frees the lease when it expires.
//
// Run returns fn's error; a *DeniedError, *ThrottledError or *ApprovalError when the action did
// not run; a *decisionapi.APIError when the API refused the request; or ctx's error. When fn
// fails after max_runtime_sec passed, the error also matches ErrMaxRuntime.
func (c *Client) Run(ctx context.Context, a Action, fn func(ctx context.Context, d *Decision) error) (err error) {
	if fn == nil {
		return errors.New("guard: Run needs a function")
	}
	ctx, span := c.tracer.Start(ctx, "guard "+a.Name, trace.WithAttributes(attribute.String(BaggageAction, a.Name)))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	d, err := c.obtain(ctx, a)
	if err != nil {
		return err
	}
	span.SetAttributes(attribute.String(BaggageDecisionID, d.DecisionID), attribute.String("agentcost.decision", string(d.Decision)))
	return c.execute(ctx, d, fn)
}

// Decide asks once whether action may run and returns the raw answer without obeying it. An
// allowed answer holds a reservation and a lease: the caller must release it with Release.
func (c *Client) Decide(ctx context.Context, a Action) (*decisionapi.DecisionResponse, error) {
	req, err := c.request(a)
	if err != nil {
		return nil, err
	}
	return c.decide(ctx, &req)
}

// Release releases a lease and returns the action's settlement.
func (c *Client) Release(ctx context.Context, leaseID string, req decisionapi.ReleaseRequest) (*decisionapi.ReleaseResponse, error) {
	if err := decisionapi.ValidateID("lease_id", leaseID); err != nil {
		return nil, err
	}
	var out decisionapi.ReleaseResponse
	if err := c.do(ctx, http.MethodPost, "/v1/leases/"+url.PathEscape(leaseID)+"/release", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Approval returns an approval's current state.
func (c *Client) Approval(ctx context.Context, approvalID string) (*decisionapi.Approval, error) {
	if err := decisionapi.ValidateID("approval_id", approvalID); err != nil {
		return nil, err
	}
	var out decisionapi.Approval
	if err := c.do(ctx, http.MethodGet, "/v1/approvals/"+url.PathEscape(approvalID), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// request builds and validates the decision request of a.
func (c *Client) request(a Action) (decisionapi.DecisionRequest, error) {
	req := decisionapi.DecisionRequest{
		RunID: first(a.RunID, c.runID), AgentID: c.agentID, Action: a.Name, RiskTags: a.RiskTags,
		EstimatedCostUSD: a.EstimatedCostUSD, Items: a.Items, Team: first(a.Team, c.team),
		ApprovalID: a.ApprovalID, IdempotencyKey: a.IdempotencyKey, Metadata: a.Metadata,
		Model: a.Model,
	}
	if err := req.Validate(); err != nil {
		return req, fmt.Errorf("guard: invalid action: %w", err)
	}
	return req, nil
}

func (c *Client) decide(ctx context.Context, req *decisionapi.DecisionRequest) (*decisionapi.DecisionResponse, error) {
	var out decisionapi.DecisionResponse
	if err := c.do(ctx, http.MethodPost, decisionapi.PathDecisions, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// obtain asks until the answer allows the action or stops it.
func (c *Client) obtain(ctx context.Context, a Action) (*Decision, error) {
	req, err := c.request(a)
	if err != nil {
		return nil, err
	}
	baseKey := req.IdempotencyKey
	if baseKey == "" {
		baseKey = randomKey()
	}
	var (
		throttles        int
		throttleWaited   time.Duration
		approvalRounds   int
		approvalDeadline time.Time
	)
	for attempt := 1; ; attempt++ {
		req.IdempotencyKey = attemptKey(baseKey, attempt)
		resp, err := c.decide(ctx, &req)
		if err != nil {
			return nil, err
		}
		switch resp.Decision {
		case decisionapi.DecisionAllow, decisionapi.DecisionAllowWithConstraints:
			return &Decision{DecisionResponse: *resp, RunID: req.RunID, Action: req.Action, RequestedModel: req.Model}, nil
		case decisionapi.DecisionDeny:
			return nil, &DeniedError{Reason: resp.Reason, RuleID: resp.RuleID, DecisionID: resp.DecisionID,
				RetryAfter: seconds(resp.RetryAfterSec)}
		case decisionapi.DecisionThrottle:
			wait := seconds(resp.RetryAfterSec)
			if wait <= 0 {
				wait = c.pollInterval
			}
			if throttles >= c.maxThrottleRetries || throttleWaited+wait > c.maxThrottleWait {
				return nil, &ThrottledError{Reason: resp.Reason, RuleID: resp.RuleID, DecisionID: resp.DecisionID,
					RetryAfter: seconds(resp.RetryAfterSec), Attempts: attempt}
			}
			throttles++
			throttleWaited += wait
			c.logger.InfoContext(ctx, "action throttled; asking again", "action", req.Action, "rule_id", resp.RuleID,
				"reason", resp.Reason, "wait", wait)
			if err := c.sleep(ctx, wait); err != nil {
				return nil, err
			}
		case decisionapi.DecisionRequireApproval:
			if resp.ApprovalID == "" {
				return nil, fmt.Errorf("guard: decision %s requires approval but names no approval_id", resp.DecisionID)
			}
			if approvalRounds >= maxApprovalRounds {
				return nil, &ApprovalError{ApprovalID: resp.ApprovalID, State: decisionapi.ApprovalPending,
					Reason: fmt.Sprintf("still requires approval after %d approvals", approvalRounds)}
			}
			approvalRounds++
			if approvalDeadline.IsZero() {
				approvalDeadline = c.now().Add(c.maxApprovalWait)
			}
			c.logger.InfoContext(ctx, "action requires approval; waiting for a reviewer", "action", req.Action,
				"approval_id", resp.ApprovalID, "rule_id", resp.RuleID, "reason", resp.Reason)
			if err := c.awaitApproval(ctx, resp.ApprovalID, approvalDeadline); err != nil {
				return nil, err
			}
			req.ApprovalID = resp.ApprovalID
		default:
			return nil, fmt.Errorf("guard: unknown decision %q; not running the action", truncate(string(resp.Decision)))
		}
	}
}

// awaitApproval polls an approval until it is approved (nil), resolved otherwise or expired (an
// *ApprovalError), or deadline passes. Transient failures keep polling; 4xx answers stop it.
func (c *Client) awaitApproval(ctx context.Context, id string, deadline time.Time) error {
	for {
		ap, err := c.Approval(ctx, id)
		switch {
		case err != nil:
			var ae *decisionapi.APIError
			if ctx.Err() != nil || errors.As(err, &ae) && ae.Status < 500 && ae.Status != http.StatusTooManyRequests {
				return err
			}
			c.logger.WarnContext(ctx, "polling approval failed; polling on", "approval_id", id, "error", err)
		case ap.State == decisionapi.ApprovalApproved:
			return nil
		case ap.State == decisionapi.ApprovalPending:
		default:
			return &ApprovalError{ApprovalID: id, State: ap.State, Reviewer: ap.Reviewer, Reason: ap.Comment}
		}
		remaining := deadline.Sub(c.now())
		if remaining <= 0 {
			return &ApprovalError{ApprovalID: id, State: decisionapi.ApprovalPending, TimedOut: true,
				Reason: fmt.Sprintf("no reviewer answered within %s", c.maxApprovalWait)}
		}
		if err := c.sleep(ctx, min(c.pollInterval, remaining)); err != nil {
			return err
		}
	}
}

// execute runs fn under the decision and releases the lease however fn ends.
func (c *Client) execute(ctx context.Context, d *Decision, fn func(context.Context, *Decision) error) (err error) {
	runCtx := withBaggage(ctx, d, c.logger)
	runCtx = context.WithValue(runCtx, decisionKey{}, d)
	maxRuntime, limited := d.Constraints.MaxRuntime()
	if limited {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(runCtx, maxRuntime)
		defer cancel()
	}
	runCtx, stopWatch := c.startWatch(runCtx, d)
	returned := false
	// Without recover: a panic of fn runs this release and then continues with its own stack.
	defer func() {
		frozen := stopWatch()
		status := decisionapi.StatusPanic
		if returned {
			status = outcome(ctx, runCtx, err)
		}
		if frozen != nil && returned && err != nil {
			// A freeze stopped the action; one that finished anyway keeps its success.
			status = decisionapi.StatusCanceled
			err = fmt.Errorf("%w: %w", frozen, err)
		}
		c.releaseLease(ctx, d, status)
		if returned && status == decisionapi.StatusTimeout {
			err = fmt.Errorf("%w: action %q ran past %s: %w", ErrMaxRuntime, d.Action, maxRuntime, err)
		}
	}()
	err = fn(runCtx, d)
	returned = true
	return err
}

// outcome classifies how fn ended for the release.
func outcome(ctx, runCtx context.Context, err error) decisionapi.SettlementStatus {
	switch {
	case err == nil:
		return decisionapi.StatusOK
	case ctx.Err() != nil:
		return decisionapi.StatusCanceled
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		return decisionapi.StatusTimeout
	}
	return decisionapi.StatusError
}

func (c *Client) releaseLease(ctx context.Context, d *Decision, status decisionapi.SettlementStatus) {
	if d.LeaseID == "" {
		c.logger.WarnContext(ctx, "allowed decision carries no lease_id; nothing to release", "decision_id", d.DecisionID)
		return
	}
	// The caller's context may be done (often why fn ended); the release must still go out.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	req := decisionapi.ReleaseRequest{Status: status}
	if usd, ok := d.ReportedCostUSD(); ok {
		req.ActualCostUSD = &usd
	}
	resp, err := c.Release(rctx, d.LeaseID, req)
	if err != nil {
		c.logger.WarnContext(ctx, "releasing lease failed; the server frees it when it expires",
			"lease_id", d.LeaseID, "decision_id", d.DecisionID, "error", err)
		return
	}
	d.mu.Lock()
	d.settlement = &resp.Settlement
	d.mu.Unlock()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func seconds(n int64) time.Duration { return time.Duration(n) * time.Second }

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func randomKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// attemptKey derives the idempotency key of the attempt-th ask of one Run: later asks are new
// requests (a throttle must not be replayed), each with its own stable key.
func attemptKey(base string, attempt int) string {
	if attempt == 1 {
		return base
	}
	suffix := "-r" + strconv.Itoa(attempt)
	if len(base)+len(suffix) > decisionapi.MaxIDBytes {
		sum := sha256.Sum256([]byte(base))
		base = hex.EncodeToString(sum[:16])
	}
	return base + suffix
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

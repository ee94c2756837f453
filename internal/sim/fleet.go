package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
	"github.com/agentcost/agentcost/pkg/guard"
)

// FleetConfig configures how the simulated agents act: with or without the decision API, and
// where their spans go.
type FleetConfig struct {
	// DecisionURL is the decision API ("http://localhost:4320"); empty runs the fleet ungoverned.
	DecisionURL string
	// Token is the agents' bearer token; AgentTokens overrides it per agent (an API with access
	// configured binds each agent token to one agent).
	Token       string
	AgentTokens map[string]string
	// Pricer prices the simulated model.
	Pricer *Pricer
	// DegradeTo, on a governed fleet, makes the agents name their model (Pricer's) in each
	// decision request and call the cheaper model a policy degrade entry answers with, which must
	// be DegradeTo's; nil: the agents name no model, so degrade never applies.
	DegradeTo *Pricer
	// Exporter receives the spans; nil exports OTLP/gRPC to OTLPEndpoint.
	Exporter sdktrace.SpanExporter
	// OTLPEndpoint is the collector's OTLP/gRPC endpoint when Exporter is nil.
	OTLPEndpoint string
	// FlushPerAction exports a governed action's spans before its lease is released, so that
	// the collector settles the action on them rather than on spans arriving later.
	FlushPerAction bool
	// PollInterval is how often a pending approval is polled.
	PollInterval time.Duration
	// ApprovalWait bounds the wait for a reviewer, in real time; 0 gives up at the first poll.
	ApprovalWait time.Duration
	// ThrottleWait bounds the waits on throttle answers per action, in real time; an action
	// throttled beyond it is not run (the agent sheds the work).
	ThrottleWait time.Duration
	// ThrottleRetries bounds the asks after throttle answers per action.
	ThrottleRetries int
	// HTTPTransport is the transport of the decision API calls (nil: a pooled default).
	HTTPTransport http.RoundTripper
	// Logger receives the guard's logs (nil: discard).
	Logger *slog.Logger
}

// Governed reports whether the fleet asks the decision API.
func (c *FleetConfig) Governed() bool { return c.DecisionURL != "" }

// Status is how a planned action ended.
type Status string

// The action outcomes.
const (
	// StatusRan: the action ran (allowed, or ungoverned).
	StatusRan Status = "ran"
	// StatusDenied: the decision was deny.
	StatusDenied Status = "denied"
	// StatusThrottled: the decision stayed throttle past the agent's wait; the work was shed.
	StatusThrottled Status = "throttled"
	// StatusApprovalDenied: a reviewer denied the approval (or it expired).
	StatusApprovalDenied Status = "approval_denied"
	// StatusApprovalTimeout: no reviewer answered within the agent's wait.
	StatusApprovalTimeout Status = "approval_timeout"
	// StatusError: the decision API or the action failed.
	StatusError Status = "error"
	// StatusNotRun: the run ended (duration or interrupt) before the action's turn.
	StatusNotRun Status = "not_run"
)

// Statuses returns every status in report order.
func Statuses() []Status {
	return []Status{StatusRan, StatusDenied, StatusThrottled, StatusApprovalDenied, StatusApprovalTimeout, StatusError, StatusNotRun}
}

// Outcome is what became of one planned action.
type Outcome struct {
	Action *Action
	Status Status
	// RuleID and Reason are the deciding rule of a denial, throttle or approval outcome.
	RuleID string
	Reason string
	// Calls, InputTokens, OutputTokens and Cost are the actual usage of the calls that ran,
	// priced exactly; output is capped at a decision's max_tokens.
	Calls        int
	InputTokens  int64
	OutputTokens int64
	Cost         money.Nanos
	// CappedCalls counts calls whose output was cut to the decision's max_tokens.
	CappedCalls int
	// Settlement is the collector's settlement of the action's lease, once released.
	Settlement *decisionapi.Settlement
	// Answers are the decision answers the action got, in order; Approvals the approvals it
	// waited for.
	Answers   []decisionapi.Decision
	Approvals []string
	// Err is the error of a StatusError outcome.
	Err error
	// DegradedTo is the cheaper model the decision named (constraints.model), when it did;
	// AskedCost is then what the same calls would have cost on the asked model.
	DegradedTo string
	AskedCost  money.Nanos
}

// Fleet runs actions as the simulated agents: one guard client and one tracer provider per agent.
type Fleet struct {
	cfg   FleetConfig
	clock *Clock
	tel   *Telemetry
	probe *probe
	http  *http.Client

	flushFailed atomic.Bool

	mu       sync.Mutex
	clients  map[string]*guard.Client
	problems []error
}

// NewFleet prepares a fleet; Close flushes its spans.
func NewFleet(ctx context.Context, cfg FleetConfig, clock *Clock) (*Fleet, error) {
	if cfg.Pricer == nil {
		return nil, errors.New("fleet: a pricer is required")
	}
	exp := cfg.Exporter
	if exp == nil {
		var err error
		if exp, err = NewOTLPExporter(ctx, cfg.OTLPEndpoint); err != nil {
			return nil, err
		}
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	next := cfg.HTTPTransport
	if next == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 256
		next = t
	}
	p := newProbe(next, clock)
	return &Fleet{cfg: cfg, clock: clock, tel: NewTelemetry(exp), probe: p,
		http: &http.Client{Transport: p, Timeout: guard.DefaultHTTPTimeout}, clients: map[string]*guard.Client{}}, nil
}

// Close flushes every agent's spans and stops the exporter.
func (f *Fleet) Close(ctx context.Context) error { return f.tel.Shutdown(ctx) }

// Flush exports the spans of agent's actions that have ended, governed or not.
func (f *Fleet) Flush(ctx context.Context, agent, team string) error {
	fctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	return f.tel.Provider(agent, team).ForceFlush(fctx)
}

func (f *Fleet) client(agent, team string) (*guard.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[agent]; ok {
		return c, nil
	}
	token, ok := f.cfg.AgentTokens[agent]
	if !ok {
		token = f.cfg.Token
	}
	c, err := guard.New(f.cfg.DecisionURL, guard.WithToken(token), guard.WithAgent(agent), guard.WithTeam(team),
		guard.WithHTTPClient(f.http), guard.WithPollInterval(f.cfg.PollInterval),
		guard.WithMaxApprovalWait(f.cfg.ApprovalWait), guard.WithMaxThrottleWait(f.cfg.ThrottleWait),
		guard.WithMaxThrottleRetries(f.cfg.ThrottleRetries), guard.WithLogger(f.cfg.Logger))
	if err != nil {
		return nil, err
	}
	f.clients[agent] = c
	return c, nil
}

// Do runs one action: governed, through the guard (decide, obey, run under the deadline,
// release); ungoverned, at once. Its calls become GenAI spans under one trace per action.
func (f *Fleet) Do(ctx context.Context, a *Action) Outcome {
	o := Outcome{Action: a}
	tp := f.tel.Provider(a.Agent, a.Team)
	tracer := tp.Tracer("github.com/agentcost/agentcost/internal/sim")
	ctx, span := tracer.Start(ctx, a.Topic, trace.WithAttributes(
		attribute.String(guard.BaggageAction, a.Topic), attribute.String("gen_ai.agent.name", a.Agent)))
	defer func() {
		span.SetAttributes(attribute.String("agentsim.outcome", string(o.Status)))
		if o.RuleID != "" {
			span.SetAttributes(attribute.String("agentsim.rule_id", o.RuleID))
		}
		span.End()
	}()

	if !f.cfg.Governed() {
		o.Status = StatusRan
		if err := f.run(ungovernedBaggage(ctx, a), tracer, tp, a, &o, 0); err != nil {
			o.Status, o.Err = StatusError, err
		}
		return o
	}
	c, err := f.client(a.Agent, a.Team)
	if err != nil {
		o.Status, o.Err = StatusError, err
		return o
	}
	log := &attempts{}
	var dec *guard.Decision
	ga := guard.Action{Name: a.Topic, EstimatedCostUSD: a.Cost.USD(), Items: a.Items,
		RiskTags: a.RiskTags, RunID: a.RunID, Team: a.Team, IdempotencyKey: a.Key}
	if f.cfg.DegradeTo != nil {
		ga.Model = f.cfg.Pricer.Model
	}
	err = c.Run(withAttempts(ctx, log), ga,
		func(ctx context.Context, d *guard.Decision) error {
			dec = d
			var maxTokens int64
			if d.Constraints.MaxTokens != nil {
				maxTokens = *d.Constraints.MaxTokens
			}
			pricer, err := f.pricerFor(d)
			if err != nil {
				return err
			}
			if pricer != f.cfg.Pricer {
				o.DegradedTo = pricer.Model
			}
			return f.runOn(ctx, tracer, tp, a, &o, maxTokens, pricer)
		})
	o.Answers, o.Approvals = log.snapshot()
	if dec != nil {
		if s, ok := dec.Settlement(); ok {
			o.Settlement = &s
		}
	}
	o.Status, o.RuleID, o.Reason = classify(err, dec != nil)
	if o.Status == StatusError {
		o.Err = err
	}
	return o
}

// run emits the action's calls, capping output at maxTokens (> 0), and with FlushPerAction
// exports them before returning.
func (f *Fleet) run(ctx context.Context, tracer trace.Tracer, tp *sdktrace.TracerProvider, a *Action, o *Outcome, maxTokens int64) error {
	return f.runOn(ctx, tracer, tp, a, o, maxTokens, f.cfg.Pricer)
}

// runOn is run calling pricer's model: the fleet's own, or the cheaper one a degrade answer
// named, whose calls are priced (and their asked-model cost kept in o.AskedCost) here.
func (f *Fleet) runOn(ctx context.Context, tracer trace.Tracer, tp *sdktrace.TracerProvider, a *Action, o *Outcome, maxTokens int64, pricer *Pricer) error {
	for _, c := range a.Calls {
		if maxTokens > 0 && c.OutputTokens > maxTokens {
			cost, err := f.cfg.Pricer.Cost(c.InputTokens, maxTokens)
			if err != nil {
				return err
			}
			c.OutputTokens, c.Cost = maxTokens, cost
			o.CappedCalls++
		}
		if pricer != f.cfg.Pricer {
			o.AskedCost += c.Cost
			cost, err := pricer.Cost(c.InputTokens, c.OutputTokens)
			if err != nil {
				return err
			}
			c.Cost = cost
		}
		emitCall(ctx, tracer, pricer.Model, pricer.Provider, c, maxTokens)
		o.Calls++
		o.InputTokens += c.InputTokens
		o.OutputTokens += c.OutputTokens
		o.Cost += c.Cost
	}
	if f.cfg.FlushPerAction && f.cfg.Governed() && !f.flushFailed.Load() {
		fctx, cancel := context.WithTimeout(ctx, flushTimeout)
		defer cancel()
		if err := tp.ForceFlush(fctx); err != nil {
			// One failed flush stops the per-action flushes: with the collector unreachable each
			// would wait out the exporter's retries. The batch processor still exports.
			f.flushFailed.Store(true)
			f.mu.Lock()
			f.problems = append(f.problems, fmt.Errorf("exporting the spans of action %s before its release: %w; no longer flushing per action", a.Topic, err))
			f.mu.Unlock()
		}
	}
	return nil
}

// pricerFor returns the pricer of the model the decision tells the agent to call: the fleet's,
// or DegradeTo's when a degrade answer named it; any other model is an error (agentsim cannot
// price it).
func (f *Fleet) pricerFor(d *guard.Decision) (*Pricer, error) {
	m := d.Constraints.Model
	switch {
	case m == "" || strings.EqualFold(m, f.cfg.Pricer.Model):
		return f.cfg.Pricer, nil
	case f.cfg.DegradeTo != nil && strings.EqualFold(m, f.cfg.DegradeTo.Model):
		return f.cfg.DegradeTo, nil
	}
	return nil, fmt.Errorf("the decision names model %q, which agentsim does not price (--degrade-to)", m)
}

// flushTimeout bounds the export of one action's spans before its release.
const flushTimeout = 5 * time.Second

// Problems returns the fleet's failures outside the actions' own outcomes.
func (f *Fleet) Problems() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.problems...)
}

// classify maps the guard's result to an outcome status with the deciding rule.
func classify(err error, ran bool) (Status, string, string) {
	var (
		denied    *guard.DeniedError
		throttled *guard.ThrottledError
		approval  *guard.ApprovalError
	)
	switch {
	case err == nil:
		return StatusRan, "", ""
	case errors.As(err, &denied):
		return StatusDenied, denied.RuleID, denied.Reason
	case errors.As(err, &throttled):
		return StatusThrottled, throttled.RuleID, throttled.Reason
	case errors.As(err, &approval) && approval.TimedOut:
		return StatusApprovalTimeout, "", approval.Reason
	case errors.As(err, &approval):
		return StatusApprovalDenied, "", approval.Reason
	case !ran && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return StatusNotRun, "", ""
	}
	return StatusError, "", ""
}

// ungovernedBaggage attributes an ungoverned action's spans to its run and topic as the guard
// would, without a decision.
func ungovernedBaggage(ctx context.Context, a *Action) context.Context {
	bag := baggage.FromContext(ctx)
	for _, kv := range [...][2]string{{guard.BaggageRunID, a.RunID}, {guard.BaggageAction, a.Topic}} {
		if kv[1] == "" {
			continue
		}
		if m, err := baggage.NewMemberRaw(kv[0], kv[1]); err == nil {
			if b, err := bag.SetMember(m); err == nil {
				bag = b
			}
		}
	}
	return baggage.ContextWithBaggage(ctx, bag)
}

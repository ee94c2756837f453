// Package ledger books priced spend into calendar windows and guards budgets with atomic
// reservations, leases, rate limits, idempotency records, approvals and anomaly state.
//
// The costledger exporter books spans through Book; the budget receiver reserves before an action
// (Reserve), settles it afterwards (Release, ExpireDue) and reads budget state (State, Snapshot).
// Two backends implement Ledger: an embedded bbolt file (one process, durable on local disk) and
// Redis (several collector processes share one truth; every compound mutation is one Lua script).
//
// Money is money.Nanos throughout and never negative. A zero time.Time passed anywhere means
// time.Now(). Every window is calendar aligned in the ledger's time zone.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Ledger is the budget ledger shared by the costledger exporter and the budget receiver. All methods
// are safe for concurrent use; every method that returns without error has made its mutation durable
// (embedded: a bbolt commit with fsync, or for Reserve a synced journal record; Redis: as durable as
// the Redis server is configured).
type Ledger interface {
	// Book books a batch of priced spends in one transaction (embedded) or one script (Redis). It is
	// idempotent on (TraceID, SpanID) within the idempotency horizon. A spend whose DecisionID names
	// an open reservation, or else whose TraceID is an open reservation's trace, commits against it
	// when it is the reservation's agent's spend (and its run's, when the reservation has a run);
	// a decision id of another agent's or run's reservation is counted in BookResult.Mismatched.
	// An invalid spend rejects the whole batch before anything is written.
	Book(ctx context.Context, spends []Spend) (BookResult, error)

	// Reserve atomically checks every limit and reserves the estimate in every listed scope. When any
	// check would end with spent + reserved + estimate above its limit it returns an *ExhaustedError
	// and reserves nothing. A request ID that already exists returns ErrExists.
	Reserve(ctx context.Context, req ReserveRequest) (Reservation, error)

	// Release settles an open reservation: it frees the remainder of its estimate in every scope and
	// returns the Settlement. A reported cost is booked (as model-less spend of the reservation's
	// agent, team, run and the fleet) only when no span matched. Releasing an already settled
	// reservation changes nothing and returns the first settlement with AlreadySettled set; an
	// unknown (or long-forgotten) ID returns ErrNotFound.
	Release(ctx context.Context, req ReleaseRequest) (Settlement, error)

	// ExpireDue settles every open reservation whose TTL has passed at now, like a release without a
	// reported cost. Each settlement is returned to exactly one caller, also across Redis replicas.
	ExpireDue(ctx context.Context, now time.Time) ([]Settlement, error)

	// State returns spent and reserved for one scope in the window instance containing now.
	State(ctx context.Context, scope Scope, id string, window Window, now time.Time) (State, error)

	// Read returns what a decision reads, in one read transaction (embedded) or one round trip
	// (Redis): the State of each query and the agent's latest anomalies.
	Read(ctx context.Context, req ReadRequest) (ReadResult, error)

	// Snapshot lists the state of every agent, team, model and fleet scope with spend or
	// reservations in the windows current at now (runs are left out: ask State for one run). It
	// considers at most the configured snapshot_limit counters and sets Truncated beyond that.
	Snapshot(ctx context.Context, now time.Time) (Snapshot, error)

	// ActiveIDs returns, sorted, up to limit ids of scope (agent, team or model) after the id
	// after (every id when empty) that have spend or reservations in a calendar window current at
	// now. Unlike Snapshot it is not bounded by snapshot_limit: a caller pages by passing the last
	// id it got.
	ActiveIDs(ctx context.Context, scope Scope, after string, limit int, now time.Time) ([]string, error)

	// AcquireLease takes one of max concurrent leases on key for ttl. When all max are held (expired
	// leases do not count) ok is false and retryAfter is the time until the earliest lease expires.
	AcquireLease(ctx context.Context, key string, limit int, ttl time.Duration, now time.Time) (leaseID string, ok bool, retryAfter time.Duration, err error)

	// ReleaseLease gives a lease back. Releasing an unknown or expired lease is not an error.
	ReleaseLease(ctx context.Context, key, leaseID string) error

	// AllowRate admits one event on key when at most limit events per period have been admitted
	// (GCRA: a full burst of limit, then one every per/limit). When refused, retryAfter is the time
	// until the next event would be admitted. Time is counted in microseconds; a rate too fine to
	// count exactly (about 1000 per second and above) is an error.
	AllowRate(ctx context.Context, key string, limit int, per time.Duration, now time.Time) (ok bool, retryAfter time.Duration, err error)

	// PutIfAbsent stores value under key for ttl (measured on the wall clock) unless a live value
	// exists, which it returns instead.
	PutIfAbsent(ctx context.Context, key string, value []byte, ttl time.Duration) (existing []byte, created bool, err error)

	// CreateApproval stores a new pending approval. An existing ID returns ErrExists. When
	// maxPending > 0 and the approval's agent already has maxPending approvals pending (unexpired
	// and unresolved) it stores nothing and returns a *PendingCapError (errors.Is ErrPendingCap);
	// the count and the insert are one atomic step, so concurrent creates cannot pass the cap.
	CreateApproval(ctx context.Context, a Approval, maxPending int) (Approval, error)
	// GetApproval returns an approval with its state as of now (a pending or approved approval past
	// ExpiresAt reads as expired).
	GetApproval(ctx context.Context, id string, now time.Time) (Approval, error)
	// ListApprovals returns up to limit approvals in state as of now (all states when state is
	// empty) that come after the cursor, oldest first (by ApprovalCursor order); limit <= 0 means
	// 1000. The last approval's Cursor() continues the list.
	ListApprovals(ctx context.Context, state decisionapi.ApprovalState, after ApprovalCursor, limit int, now time.Time) ([]Approval, error)
	// ResolveApproval approves or denies a pending, unexpired approval. Any other state returns an
	// *ApprovalStateError (errors.Is ErrConflict).
	ResolveApproval(ctx context.Context, id string, res Resolution) (Approval, error)
	// ConsumeApproval marks an approved, unexpired approval consumed. It succeeds exactly once; every
	// other call returns an *ApprovalStateError (errors.Is ErrConflict).
	ConsumeApproval(ctx context.Context, id string, now time.Time) (Approval, error)

	// RecordAnomaly records an anomaly of level (LevelCall, LevelAction or LevelRun) for agent at t; the
	// latest time is kept.
	RecordAnomaly(ctx context.Context, agent string, level AnomalyLevel, t time.Time) error
	// LastAnomaly returns the time of agent's latest anomaly of level; ok is false when none is known.
	LastAnomaly(ctx context.Context, agent string, level AnomalyLevel) (t time.Time, ok bool, err error)

	// OpenSpend lists up to limit open reservations that have matched span spend (Book committed at
	// least one span against them), earliest expiring first: what a mid-flight check compares with
	// the action's baseline while the action still runs. Reservations without matched spend are
	// skipped, not listed.
	OpenSpend(ctx context.Context, limit int) ([]OpenSpend, error)

	// Freezer stores the freezes (emergency brakes) reviewers put on scopes.
	Freezer

	// Totals returns the cumulative totals Book has counted (see Family), for the metrics.
	Totals(ctx context.Context) (Totals, error)

	// Location returns the time zone that aligns every window.
	Location() *time.Location

	// Close releases the backend. It is safe to call more than once.
	Close() error
}

// Tokens counts the tokens of one or more LLM calls in GenAI semantic-convention terms.
type Tokens struct {
	Input      int64 `json:"input,omitempty"`
	Output     int64 `json:"output,omitempty"`
	CacheRead  int64 `json:"cache_read,omitempty"`
	CacheWrite int64 `json:"cache_write,omitempty"`
	Reasoning  int64 `json:"reasoning,omitempty"`
}

func (t Tokens) add(o Tokens) Tokens {
	return Tokens{t.Input + o.Input, t.Output + o.Output, t.CacheRead + o.CacheRead, t.CacheWrite + o.CacheWrite, t.Reasoning + o.Reasoning}
}

func (t Tokens) negative() bool {
	return t.Input < 0 || t.Output < 0 || t.CacheRead < 0 || t.CacheWrite < 0 || t.Reasoning < 0
}

// Spend is the priced usage of one span.
type Spend struct {
	// TraceID and SpanID identify the span; together they make booking idempotent. Both are required.
	TraceID string
	SpanID  string
	// Time places the spend in its windows (the span's end time).
	Time     time.Time
	Agent    string
	Team     string
	Model    string
	Provider string
	// RunID is the run the span belongs to; empty means the trace is the run.
	RunID string
	// DecisionID is the agentcost.decision_id the guard client copied onto the span, if any.
	DecisionID string
	Cost       money.Nanos
	Tokens     Tokens
	// Anomaly marks a span the processor flagged as a per-call anomaly.
	Anomaly bool
	// Escalating marks a span the processor flagged as escalating (its agent's cost per call with
	// the model climbs steadily); like Anomaly it records a call-level anomaly for anomaly_within.
	Escalating bool
	// ParentSpanID is the span's parent in its trace (empty for a root span).
	ParentSpanID string
	// CallKey fingerprints the provider call the span describes (the priced model and the cost; see
	// booking.CallKey). Two spends of one trace with the same CallKey where one's
	// span is the other's direct parent are the same call, wrapped by two instrumentations: the one
	// booked second is not booked but counted in BookResult.SameCall. Empty opts out of the rule.
	CallKey string
	// Unbooked, when set (TotalUnpriced, TotalMalformed or TotalRefused), marks a span the
	// exporter does not book: Book only counts it once in that family's total, with the label
	// UnbookedLabel, recording it under its trace and span id so a redelivery counts nothing (a
	// span without both ids is counted on every delivery). Its cost and tokens are ignored.
	Unbooked      Family
	UnbookedLabel string
}

// Run returns the run a spend is booked into: RunID, else the trace id.
func (s Spend) Run() string {
	if s.RunID != "" {
		return s.RunID
	}
	return s.TraceID
}

func (s Spend) validate() error {
	if s.Unbooked != "" {
		if !unbookedFamilies[s.Unbooked] {
			return fmt.Errorf("unbooked family %q is not unpriced, malformed or refused", s.Unbooked)
		}
		return nil
	}
	switch {
	case s.TraceID == "":
		return errors.New("trace id is empty")
	case s.SpanID == "":
		return errors.New("span id is empty")
	case s.Cost < 0:
		return fmt.Errorf("cost %d nano-dollars is negative", s.Cost)
	case s.Cost > money.MaxNanos:
		return fmt.Errorf("cost %s USD exceeds the maximum of %s USD", s.Cost, money.MaxNanos)
	case s.Tokens.negative():
		return errors.New("token count is negative")
	}
	return nil
}

// BookResult counts what one Book call did.
type BookResult struct {
	// Booked spends were new and added to their windows.
	Booked int
	// Duplicates were already booked (same trace and span id) and counted nothing.
	Duplicates int
	// Matched spends (a subset of Booked) committed against an open reservation.
	Matched int
	// Mismatched spends (a subset of Booked, not of Matched) carried the decision id of an open
	// reservation of another agent, or of another run when the reservation has one: they were
	// booked as their own agent's spend and did not commit against it.
	Mismatched int
	// SameCall spends (not in Booked) repeated a call already booked for the span's direct parent
	// or child in the same trace (same CallKey): an LLM span wrapping another LLM span of the same
	// provider call. They were recorded (so a retry counts them as Duplicates) but not booked.
	SameCall int
	// SameCallCost is the cost the SameCall spends carried, which a sum of every span's cost would
	// count twice.
	SameCallCost money.Nanos
	// New tells, per spend of the call in order, whether this call booked it (false: a duplicate
	// or the same call as a booked one).
	New []bool
	// Same tells, per spend of the call in order, whether it was counted in SameCall.
	Same []bool
}

// IsSameCall reports whether spend i of the call repeated a booked call (see SameCall).
func (r BookResult) IsSameCall(i int) bool { return i < len(r.Same) && r.Same[i] }

// IsNew reports whether spend i of the call was booked by it rather than before.
func (r BookResult) IsNew(i int) bool { return i < len(r.New) && r.New[i] }

// Check is one budget a reservation must fit in: scope, id and window name the counter, Limit the
// most spent + reserved may reach. With Unlimited set the estimate is reserved without a check.
type Check struct {
	Scope     Scope
	ID        string
	Window    Window
	Limit     money.Nanos
	Unlimited bool
}

// ReserveRequest asks to reserve an action's estimate against a set of budgets.
type ReserveRequest struct {
	// ID is the reservation id: the decision id the guard client copies onto the action's spans.
	ID string
	// TraceID, when set, matches the action's spans that carry no decision id.
	TraceID string
	Checks  []Check
	// Estimate is reserved in every checked scope; zero only checks (and still opens a reservation
	// that spans match and that settles).
	Estimate money.Nanos
	// TTL is how long the reservation holds before ExpireDue settles it.
	TTL time.Duration
	// Time is when the action was decided; it picks the window instances reserved in.
	Time time.Time
	// Agent, Team, RunID and Action describe the action; a reported cost on release is booked to
	// agent, team and run. Empty Agent, Team and RunID are taken from the checks of those scopes.
	Agent  string
	Team   string
	RunID  string
	Action string
	// Metadata is returned unchanged in the Settlement.
	Metadata map[string]string
}

// Usage is the state of one checked scope right after a successful reservation.
type Usage struct {
	Check
	Spent    money.Nanos
	Reserved money.Nanos
	Start    time.Time
	End      time.Time
}

// StateQuery names one scope's counter in a Read.
type StateQuery struct {
	Scope  Scope
	ID     string
	Window Window
}

// ReadRequest is one Read.
type ReadRequest struct {
	// States are the counters to read, in the window instances containing Time.
	States []StateQuery
	// Agent, when set, is the agent whose latest anomalies are read.
	Agent string
	// Freezes asks for the freezes active at Time, read with the states.
	Freezes bool
	// Time is when the read happens.
	Time time.Time
}

// ReadResult is what a Read found.
type ReadResult struct {
	// States holds one State per query, in request order.
	States []State
	// LastCallAnomaly, LastActionAnomaly and LastRunAnomaly are the agent's latest anomaly of each
	// level; zero when none is known (or no agent was named).
	LastCallAnomaly, LastActionAnomaly, LastRunAnomaly time.Time
	// Freezes are the freezes active at the read's Time (every scope), when asked for.
	Freezes []Freeze
}

// Reservation is an open reservation.
type Reservation struct {
	ID        string
	TraceID   string
	Estimate  money.Nanos
	CreatedAt time.Time
	ExpiresAt time.Time
	// Usage holds each checked scope's spent and reserved after this reservation, in request order
	// (checks naming the same counter are merged into the first, with the tighter limit).
	Usage []Usage
}

// ReleaseRequest settles a reservation.
type ReleaseRequest struct {
	ID string
	// ReportedCost is the caller's own figure (actual_cost_usd), used only when no span matched and
	// HasReported is set.
	ReportedCost money.Nanos
	HasReported  bool
	// ReportedLimit, when set, returns the most of a reported cost that counts, given the
	// reservation's estimate: a larger ReportedCost is clipped to it (and booked clipped) and the
	// Settlement says so. Nil counts any reported cost in full.
	ReportedLimit func(estimate money.Nanos) money.Nanos
	// Time is when the release happened; a reported cost is booked into the windows containing it.
	Time time.Time
}

// SettleReason says what settled a reservation.
type SettleReason string

// The settle reasons.
const (
	ReasonReleased SettleReason = "released"
	ReasonExpired  SettleReason = "expired"
)

// Settlement is the outcome of a settled reservation: what the action actually cost.
type Settlement struct {
	ID       string
	TraceID  string
	Agent    string
	Team     string
	RunID    string
	Action   string
	Metadata map[string]string
	Estimate money.Nanos
	// MatchedCost, SpansMatched, MaxOutputTokens, Tokens and AnomalousSpans sum the matched spans.
	MatchedCost     money.Nanos
	SpansMatched    int64
	MaxOutputTokens int64
	Tokens          Tokens
	AnomalousSpans  int64
	// ReportedCost is the caller's figure when HasReported, clipped to the release's ReportedLimit;
	// it counts only for decisionapi.SourceReported.
	ReportedCost money.Nanos
	HasReported  bool
	// ReportedClaimed is the figure the caller reported before clipping, and ReportedClipped says
	// it was above the release's ReportedLimit and counted (decisionapi.SourceReported) clipped; a
	// report ignored because spans matched is never clipped. Only the call that settled sets them (a
	// settlement read back with AlreadySettled has the clipped ReportedCost alone).
	ReportedClaimed money.Nanos
	ReportedClipped bool
	Source          decisionapi.CostSource
	// Cost is the settled cost of the action: MatchedCost, ReportedCost or zero, by Source.
	Cost      money.Nanos
	Reason    SettleReason
	CreatedAt time.Time
	ExpiresAt time.Time
	SettledAt time.Time
	// AlreadySettled is set when this call found the reservation settled by an earlier one.
	AlreadySettled bool
}

// flagged reports whether the spend records a call-level anomaly: anomalous or escalating.
func (sp *Spend) flagged() bool { return sp.Anomaly || sp.Escalating }

// AnomalyLevel is the level an anomaly was detected at.
type AnomalyLevel string

// The anomaly levels.
const (
	LevelCall   AnomalyLevel = "call"
	LevelAction AnomalyLevel = "action"
	// LevelRun is a run whose running total crossed its agent's baseline of completed runs.
	LevelRun AnomalyLevel = "run"
)

// anomalyLevels lists the levels in ReadResult order.
var anomalyLevels = [...]AnomalyLevel{LevelCall, LevelAction, LevelRun}

func (l AnomalyLevel) validate() error {
	if l != LevelCall && l != LevelAction && l != LevelRun {
		return fmt.Errorf("unknown anomaly level %q (want %q, %q or %q)", l, LevelCall, LevelAction, LevelRun)
	}
	return nil
}

// OpenSpend is an open reservation with matched spend, as OpenSpend lists it.
type OpenSpend struct {
	ID       string
	TraceID  string
	Agent    string
	Team     string
	RunID    string
	Action   string
	Metadata map[string]string
	Estimate money.Nanos
	// Matched is the spend of the spans committed against the reservation so far, and Spans
	// their number.
	Matched   money.Nanos
	Spans     int64
	CreatedAt time.Time
	ExpiresAt time.Time
}

var (
	// ErrNotFound is returned for an unknown reservation or approval.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when creating a reservation or approval whose id is taken.
	ErrExists = errors.New("already exists")
	// ErrConflict is matched by every *ApprovalStateError.
	ErrConflict = errors.New("conflict")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("ledger is closed")
)

// ExhaustedError is returned by Reserve when a check does not fit: spent + reserved + estimate
// would exceed the limit.
type ExhaustedError struct {
	Scope    Scope
	ID       string
	Window   Window
	Spent    money.Nanos
	Reserved money.Nanos
	Estimate money.Nanos
	Limit    money.Nanos
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("budget %s %q (%s) exhausted: spent %s + reserved %s + estimate %s USD exceeds limit %s USD",
		e.Scope, e.ID, e.Window, e.Spent, e.Reserved, e.Estimate, e.Limit)
}

// at returns t, or time.Now() for the zero time.
func at(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

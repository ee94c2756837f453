// Package decide is the budget receiver's decision engine: it answers pre-execution decision
// requests by evaluating the policy on budget state read from the ledger and enforcing the outcome
// atomically through the ledger (rate limits, concurrency leases, reservations, approvals), settles
// released and expired actions against their per-action baselines, and writes cost evidence. It
// speaks the wire types of pkg/decisionapi; the HTTP layer that serves them lives in the receiver.
package decide

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Caller is the caller of an operation as the HTTP layer authenticated it.
type Caller struct {
	// Role is the token's role (access.RoleOpen on an API without access control).
	Role access.Role
	// Subject is the token's subject: the agent id of an agent, the identity of a reviewer; empty
	// for access.RoleOpen.
	Subject string
	// Teams are the teams an agent may charge (its token's teams), the first its default: a
	// request naming another team is refused (403), a request naming none is decided for the
	// first. Empty: the request's team stands. Read-only; not part of a caller's identity.
	Teams []string
}

// team returns the team a request of c naming team is decided for, or a 403 naming the team field
// when c's token does not list it.
func (c Caller) team(team string) (string, error) {
	if c.Role != access.RoleAgent || len(c.Teams) == 0 {
		return team, nil
	}
	if team == "" {
		return c.Teams[0], nil
	}
	if !slices.Contains(c.Teams, team) {
		return "", decisionapi.NewError(decisionapi.CodeForbidden,
			"team %q is not one of the agent's teams (its token lists %s)", team, strings.Join(c.Teams, ", "))
	}
	return team, nil
}

// anonymousReviewer is recorded as the reviewer of an approval resolved on an open API.
const anonymousReviewer = "anonymous"

// FailMode says how decisions are answered while the ledger fails.
type FailMode uint8

// The fail modes.
const (
	// FailClosed denies every decision the ledger cannot back, with the reason.
	FailClosed FailMode = iota
	// FailOpen answers the policy's rule result on empty budget state without reserving anything;
	// require_approval becomes throttle (approvals need the ledger) and deny stays deny.
	FailOpen
)

// String returns fail_closed or fail_open, the spelling of ledger_unavailable.decisions.
func (m FailMode) String() string {
	if m == FailOpen {
		return "fail_open"
	}
	return "fail_closed"
}

// ParseFailMode parses the configured spelling of a fail mode: fail_closed or fail_open.
func ParseFailMode(s string) (FailMode, bool) {
	for _, m := range [...]FailMode{FailClosed, FailOpen} {
		if m.String() == s {
			return m, true
		}
	}
	return FailClosed, false
}

// EvidenceAppender appends cost-evidence records; *evidence.Writer is one.
type EvidenceAppender interface {
	Append(evidence.Record) (evidence.Appended, error)
}

// Recorder is told what the engine did, for the receiver's metrics and logs pipelines. Its
// methods must be cheap and safe for concurrent use.
type Recorder interface {
	// Decided counts one fresh decision (idempotent replays are not counted again).
	Decided(decision policy.Decision, ruleID string)
	// LedgerUnavailable counts one decision answered under the fail mode.
	LedgerUnavailable(mode FailMode)
	// ActionAnomaly counts one action flagged against its per-action baseline, at settlement or
	// mid-flight (once per action).
	ActionAnomaly(agent string)
	// RunAnomaly counts one running run flagged against its agent's baseline of completed runs.
	RunAnomaly(agent string)
	// TokenCapBreach counts one settled action whose matched spans exceeded its max_tokens.
	TokenCapBreach(agent string)
	// ReportedCostClipped counts one release whose actual_cost_usd was above the policy's bound
	// (policy.Policy.ReportedCostLimit) and was clipped to it.
	ReportedCostClipped(agent string)
	// Evidence is told about every evidence record written (for the logs pipeline).
	Evidence(rec evidence.Record)
	// EvidenceFailed counts a record that could not be written.
	EvidenceFailed()
}

// NopRecorder records nothing.
type NopRecorder struct{}

// Decided implements Recorder.
func (NopRecorder) Decided(policy.Decision, string) {}

// LedgerUnavailable implements Recorder.
func (NopRecorder) LedgerUnavailable(FailMode) {}

// ActionAnomaly implements Recorder.
func (NopRecorder) ActionAnomaly(string) {}

// RunAnomaly implements Recorder.
func (NopRecorder) RunAnomaly(string) {}

// TokenCapBreach implements Recorder.
func (NopRecorder) TokenCapBreach(string) {}

// ReportedCostClipped implements Recorder.
func (NopRecorder) ReportedCostClipped(string) {}

// Evidence implements Recorder.
func (NopRecorder) Evidence(evidence.Record) {}

// EvidenceFailed implements Recorder.
func (NopRecorder) EvidenceFailed() {}

// Config configures an Engine.
type Config struct {
	// Policy returns the policy in force (a Watcher's Policy); it must not return nil.
	Policy func() *policy.Policy
	// Ledger is the budget ledger.
	Ledger ledger.Ledger
	// Evidence receives the cost-evidence records; nil writes none.
	Evidence EvidenceAppender
	// Location is the time zone that aligns every window (the ledger's).
	Location *time.Location
	// Baselines holds the per-(agent, action) baselines.
	Baselines *baseline.Store
	// RunBaselines holds the per-agent baselines of completed runs' totals; nil turns the
	// mid-flight run check off.
	RunBaselines *baseline.Store
	// RunIdle is how long a run must show no activity (no change of its ledger spent or reserved,
	// no open reservation with booked spend) to count as complete (default 10m).
	RunIdle time.Duration
	// ApprovalTTL is how long a pending or approved approval stays valid (default 24h).
	ApprovalTTL time.Duration
	// ReservationTTL is how long an allowed action's reservation holds when the decision sets no
	// max_runtime_sec (default 10m).
	ReservationTTL time.Duration
	// IdempotencyTTL is how long an idempotency key returns its first answer (default 24h).
	IdempotencyTTL time.Duration
	// FailMode answers decisions while the ledger fails.
	FailMode FailMode
	// FailOpenTopics fail open, and FailClosedTopics fail closed, whatever FailMode says (for
	// example: cheap reads open, risky batches closed).
	FailOpenTopics, FailClosedTopics policy.TopicSet
	// RetryAfter is the retry hint of an answer the ledger could not back (default 5s).
	RetryAfter time.Duration
	// LedgerTimeout bounds the ledger calls of one decision; past it the ledger counts as
	// unavailable and the decision is answered under the fail mode (0: no bound of its own).
	LedgerTimeout time.Duration
	// Prices re-estimates a request's cost for the cheaper model of a policy `degrade:` entry
	// (the receiver's price table); nil, degrade never applies.
	Prices policy.Repricer
	// Recorder is told what happened; nil records nothing.
	Recorder Recorder
	// Notifier stores notification events (approvals requested, resolved and expired, action
	// anomalies, budget level crossings) before the operation that caused them answers; nil
	// notifies nobody.
	Notifier Notifier
	// Logger logs ledger failures (rate limited) and nothing per request.
	Logger *zap.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Engine answers the decision API's operations. It is safe for concurrent use.
type Engine struct {
	cfg    Config
	ledger ledger.Ledger
	loc    *time.Location
	rec    Recorder
	log    *zap.Logger
	// macs pools HMAC-SHA256 states keyed with the ledger's lease key, which authenticate lease
	// ids (keying one costs two hash blocks).
	macs sync.Pool

	// idemWait bounds how long a repeated idempotency key waits for the first answer.
	idemWait time.Duration

	warnMu   sync.Mutex
	lastWarn time.Time

	// midMu serialises CheckMidFlight; runs are the runs it follows.
	midMu sync.Mutex
	runs  map[string]*runState
	// flaggedOpen are the open reservations whose flag is known taken.
	flaggedOpen map[string]struct{}
	// notedMu guards noted: runs of actions settled since the last check, so that a run whose
	// actions all settle between two checks is still followed.
	notedMu sync.Mutex
	noted   map[string]runNote

	// notifyMu serialises NotifyExpiredApprovals; expiredCursor is where its listing resumes.
	notifyMu      sync.Mutex
	expiredCursor ledger.ApprovalCursor
	// marked caches the notification markers known to be in the ledger (see emitOnce).
	marked markedCache
}

// leaseKeyName is the ledger record that holds the key lease ids are authenticated with; every
// receiver sharing the ledger reads the same one.
const leaseKeyName = "budget-receiver/lease-key/v1"

// leaseKeyTTL keeps the lease key for good (the ledger needs a TTL).
const leaseKeyTTL = 10 * 365 * 24 * time.Hour

// New returns an Engine. It reads (or creates) the lease-id key in the ledger, so it fails when
// the ledger does.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	switch {
	case cfg.Policy == nil:
		return nil, errors.New("decide: no policy")
	case cfg.Ledger == nil:
		return nil, errors.New("decide: no ledger")
	case cfg.Baselines == nil:
		return nil, errors.New("decide: no baseline store")
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.ApprovalTTL <= 0 {
		cfg.ApprovalTTL = 24 * time.Hour
	}
	if cfg.ReservationTTL <= 0 {
		cfg.ReservationTTL = 10 * time.Minute
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = 24 * time.Hour
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.Recorder == nil {
		cfg.Recorder = NopRecorder{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RunIdle <= 0 {
		cfg.RunIdle = 10 * time.Minute
	}
	e := &Engine{runs: map[string]*runState{}, noted: map[string]runNote{}, cfg: cfg, ledger: cfg.Ledger, loc: cfg.Location, rec: cfg.Recorder, log: cfg.Logger, idemWait: idemWait}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	existing, created, err := e.ledger.PutIfAbsent(ctx, leaseKeyName, key, leaseKeyTTL)
	if err != nil {
		return nil, fmt.Errorf("reading the lease key from the ledger: %w", err)
	}
	if !created {
		key = existing
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("the ledger's lease key %q is %d bytes long; at least 16 are needed", leaseKeyName, len(key))
	}
	e.macs.New = func() any { return hmac.New(sha256.New, key) }
	return e, nil
}

// now returns the current time in the ledger's time zone.
func (e *Engine) now() time.Time { return e.cfg.Now().In(e.loc) }

// warnLedger logs a ledger failure at most every ten seconds.
func (e *Engine) warnLedger(op string, err error) {
	e.warnMu.Lock()
	now := time.Now()
	quiet := now.Sub(e.lastWarn) < 10*time.Second
	if !quiet {
		e.lastWarn = now
	}
	e.warnMu.Unlock()
	if !quiet {
		e.log.Warn("Budget ledger operation failed", zap.String("operation", op), zap.Error(err))
	}
}

// appendEvidence writes rec and tells the recorder; a failure is counted and logged, never
// returned: evidence does not decide.
func (e *Engine) appendEvidence(rec evidence.Record) bool {
	if e.cfg.Evidence == nil {
		return false
	}
	out, err := e.cfg.Evidence.Append(rec)
	if err != nil {
		e.rec.EvidenceFailed()
		e.warnLedger("evidence append", err)
		return false
	}
	e.rec.Evidence(out.Record)
	return true
}

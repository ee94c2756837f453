package guard

import (
	"errors"
	"fmt"
	"time"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Sentinels that the typed errors match with errors.Is.
var (
	// ErrDenied matches a *DeniedError.
	ErrDenied = errors.New("guard: action denied")
	// ErrThrottled matches a *ThrottledError.
	ErrThrottled = errors.New("guard: action throttled")
	// ErrApprovalDenied matches an *ApprovalError of a denied approval.
	ErrApprovalDenied = errors.New("guard: approval denied")
	// ErrApprovalExpired matches an *ApprovalError of an expired approval.
	ErrApprovalExpired = errors.New("guard: approval expired")
	// ErrApprovalTimeout matches an *ApprovalError of an approval still pending at the client's
	// maximum wait.
	ErrApprovalTimeout = errors.New("guard: approval wait timed out")
	// ErrMaxRuntime matches the error of an action that failed after its max_runtime_sec passed.
	ErrMaxRuntime = errors.New("guard: max_runtime_sec exceeded")
)

// DeniedError is returned when the decision is deny; the action did not run.
type DeniedError struct {
	// Reason and RuleID are the server's reason and the rule or budget layer that denied.
	Reason string
	RuleID string
	// DecisionID identifies the decision.
	DecisionID string
	// RetryAfter is when asking again can succeed (an exhausted windowed budget); 0 means
	// waiting does not help.
	RetryAfter time.Duration
}

// Error describes the denial with its rule, reason and retry hint.
func (e *DeniedError) Error() string {
	s := "guard: action denied"
	if e.RuleID != "" {
		s += " by " + e.RuleID
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Is makes a DeniedError match ErrDenied.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// ThrottledError is returned when the decision stayed throttle past the client's retries or
// maximum wait; the action did not run.
type ThrottledError struct {
	Reason     string
	RuleID     string
	DecisionID string
	// RetryAfter is the last answer's retry_after_sec.
	RetryAfter time.Duration
	// Attempts is how often the decision was asked.
	Attempts int
}

// Error describes the throttle with its attempts, rule, reason and retry hint.
func (e *ThrottledError) Error() string {
	s := fmt.Sprintf("guard: action still throttled after %d attempts", e.Attempts)
	if e.RuleID != "" {
		s += " by " + e.RuleID
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Is makes a ThrottledError match ErrThrottled.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// ApprovalError is returned when an action's approval did not come: denied, expired, consumed by
// another request, or still pending when the client stopped waiting (TimedOut). The action did
// not run.
type ApprovalError struct {
	ApprovalID string
	// State is the approval's last known state.
	State decisionapi.ApprovalState
	// TimedOut reports that the client's maximum wait passed while the approval was pending.
	TimedOut bool
	// Reviewer is the reviewer who denied, if known.
	Reviewer string
	// Reason is the reviewer's reason, or why the client gave up.
	Reason string
}

// Error describes the approval's outcome.
func (e *ApprovalError) Error() string {
	s := fmt.Sprintf("guard: approval %s is %s", e.ApprovalID, e.State)
	if e.TimedOut {
		s = fmt.Sprintf("guard: approval %s still pending", e.ApprovalID)
	}
	if e.Reviewer != "" {
		s += " by " + e.Reviewer
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Is makes an ApprovalError match ErrApprovalDenied, ErrApprovalExpired or ErrApprovalTimeout.
func (e *ApprovalError) Is(target error) bool {
	switch target {
	case ErrApprovalDenied:
		return e.State == decisionapi.ApprovalDenied
	case ErrApprovalExpired:
		return e.State == decisionapi.ApprovalExpired
	case ErrApprovalTimeout:
		return e.TimedOut
	}
	return false
}

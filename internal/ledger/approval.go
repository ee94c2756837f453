package ledger

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Approval is a request for a human decision on one action, and its outcome.
type Approval struct {
	ID        string                    `json:"id"`
	Agent     string                    `json:"agent"`
	Action    string                    `json:"action"`
	Estimate  money.Nanos               `json:"estimate"`
	Items     int64                     `json:"items,omitempty"`
	Rule      string                    `json:"rule,omitempty"`
	Reason    string                    `json:"reason,omitempty"`
	Requester string                    `json:"requester,omitempty"`
	CreatedAt time.Time                 `json:"created_at"`
	ExpiresAt time.Time                 `json:"expires_at"`
	Payload   []byte                    `json:"payload,omitempty"`
	State     decisionapi.ApprovalState `json:"state"`
	Decision  *ApprovalResult           `json:"decision,omitempty"`
	// ConsumedAt is set once the approved action has been allowed through.
	ConsumedAt time.Time `json:"consumed_at,omitzero"`
}

// ApprovalResult records a reviewer's resolution.
type ApprovalResult struct {
	Approved bool      `json:"approved"`
	Reviewer string    `json:"reviewer"`
	At       time.Time `json:"at"`
	Comment  string    `json:"comment,omitempty"`
	// Constraints is the reviewer's modified constraints (opaque to the ledger), if any.
	Constraints []byte `json:"constraints,omitempty"`
	// CostCap, when HasCostCap, is the lower cost cap the reviewer set.
	CostCap    money.Nanos `json:"cost_cap,omitempty"`
	HasCostCap bool        `json:"has_cost_cap,omitempty"`
}

// Resolution is a reviewer's answer to a pending approval.
type Resolution struct {
	Approve     bool
	Reviewer    string
	Comment     string
	Constraints []byte
	CostCap     money.Nanos
	HasCostCap  bool
	// Time is when the reviewer answered; it must be before the approval expires.
	Time time.Time
}

func (r Resolution) validate() error {
	if r.Reviewer == "" {
		return errors.New("reviewer is empty")
	}
	if r.HasCostCap && r.CostCap < 0 {
		return fmt.Errorf("cost cap %d nano-dollars is negative", r.CostCap)
	}
	return nil
}

// effective returns the approval's state as of now: pending and approved read as expired once
// ExpiresAt has passed.
func (a Approval) effective(now time.Time) Approval {
	if (a.State == decisionapi.ApprovalPending || a.State == decisionapi.ApprovalApproved) && !now.Before(a.ExpiresAt) {
		a.State = decisionapi.ApprovalExpired
	}
	return a
}

func (a Approval) validate() error {
	switch {
	case a.ID == "":
		return errors.New("approval id is empty")
	case a.Estimate < 0:
		return fmt.Errorf("approval estimate %d nano-dollars is negative", a.Estimate)
	case a.ExpiresAt.IsZero():
		return errors.New("approval expiry is not set")
	case !a.ExpiresAt.After(at(a.CreatedAt)):
		return errors.New("approval expires before it is created")
	}
	return nil
}

// ApprovalCursor is a place in the order ListApprovals lists in: creation time (to the
// microsecond, the precision both backends index), then id. The zero ApprovalCursor is the start.
type ApprovalCursor struct {
	CreatedMicros int64
	ID            string
}

// IsZero reports whether c is the start of the list.
func (c ApprovalCursor) IsZero() bool { return c == ApprovalCursor{} }

// Cursor returns the cursor that lists the approvals after a.
func (a Approval) Cursor() ApprovalCursor {
	return ApprovalCursor{CreatedMicros: micros(a.CreatedAt), ID: a.ID}
}

// compare orders a cursor against another in list order.
func (c ApprovalCursor) compare(o ApprovalCursor) int {
	if c.CreatedMicros != o.CreatedMicros {
		return cmp.Compare(c.CreatedMicros, o.CreatedMicros)
	}
	return strings.Compare(c.ID, o.ID)
}

// PendingCapError is returned by CreateApproval when the agent already has the most pending
// approvals it may have; it matches ErrPendingCap.
type PendingCapError struct {
	Agent string
	// Max is the cap that refused the approval.
	Max int
}

func (e *PendingCapError) Error() string {
	return fmt.Sprintf("agent %q already has %d pending approvals, the most allowed", e.Agent, e.Max)
}

// Is makes every PendingCapError match ErrPendingCap.
func (e *PendingCapError) Is(target error) bool { return target == ErrPendingCap }

// ErrPendingCap is matched by every *PendingCapError.
var ErrPendingCap = errors.New("too many pending approvals")

// pageApprovals sorts as in list order and keeps the first limit after the cursor.
func pageApprovals(as []Approval, after ApprovalCursor, limit int) []Approval {
	if !after.IsZero() {
		as = slices.DeleteFunc(as, func(a Approval) bool { return a.Cursor().compare(after) <= 0 })
	}
	slices.SortFunc(as, func(a, b Approval) int { return a.Cursor().compare(b.Cursor()) })
	if len(as) > limit {
		as = as[:limit]
	}
	return as
}

// approvalIndexKey is an approval's key in the embedded list-order index: created (8 bytes, Unix
// microseconds, big-endian) then the id, so that byte order is ApprovalCursor order.
func approvalIndexKey(c ApprovalCursor) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(c.CreatedMicros)), c.ID...)
}

// indexApprovals fills the embedded list-order index from the approvals when it is empty and they
// are not: a file written before the index existed. Opening the file calls it.
func indexApprovals(t *txn) error {
	if k, _ := t.approvalsByCreated().Cursor().First(); k != nil {
		return nil
	}
	return t.approvals().ForEach(func(k, v []byte) error {
		var a Approval
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("decoding approval %q: %w", k, err)
		}
		return t.approvalsByCreated().Put(approvalIndexKey(a.Cursor()), nil)
	})
}

// pendingKey is the key of an agent's pending approval in the embedded pending index: the
// length-prefixed agent, then the id, so that one agent's entries are one prefix.
func pendingKey(agent, id string) []byte {
	return append(pendingPrefix(agent), id...)
}

func pendingPrefix(agent string) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(agent))), agent...)
}

// ApprovalStateError is returned when an approval cannot move to the asked state from the one it is
// in: resolving twice, resolving after expiry, consuming an unapproved or consumed approval.
type ApprovalStateError struct {
	ID string
	// State is the approval's state when the operation was refused.
	State decisionapi.ApprovalState
	// Op is the refused operation: "resolve" or "consume".
	Op string
}

func (e *ApprovalStateError) Error() string {
	return fmt.Sprintf("approval %q is %s: cannot %s", e.ID, e.State, e.Op)
}

// Is makes every ApprovalStateError match ErrConflict.
func (e *ApprovalStateError) Is(target error) bool { return target == ErrConflict }

// resolve applies res to a (already brought to its effective state), or refuses.
func (a Approval) resolve(res Resolution, now time.Time) (Approval, error) {
	if a.State != decisionapi.ApprovalPending {
		return a, &ApprovalStateError{ID: a.ID, State: a.State, Op: "resolve"}
	}
	a.State = decisionapi.ApprovalDenied
	if res.Approve {
		a.State = decisionapi.ApprovalApproved
	}
	a.Decision = &ApprovalResult{
		Approved: res.Approve, Reviewer: res.Reviewer, At: now, Comment: res.Comment,
		Constraints: res.Constraints, CostCap: res.CostCap, HasCostCap: res.HasCostCap,
	}
	return a, nil
}

// consume marks a consumed, or refuses.
func (a Approval) consume(now time.Time) (Approval, error) {
	if a.State != decisionapi.ApprovalApproved {
		return a, &ApprovalStateError{ID: a.ID, State: a.State, Op: "consume"}
	}
	a.State = decisionapi.ApprovalConsumed
	a.ConsumedAt = now
	return a, nil
}

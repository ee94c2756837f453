package decide

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Cursors are opaque to clients: base64url of a kind letter and the position, "|"-separated.
// A cursor of one list is refused by another.
const (
	cursorApprovals = "a"
	cursorBudgets   = "b"
	cursorFreezes   = "f"
)

func encodeCursor(kind string, parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "|" + strings.Join(parts, "|")))
}

// decodeCursor returns the n parts of a cursor of kind; ok is false for anything else.
func decodeCursor(s, kind string, n int) ([]string, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	parts := strings.SplitN(string(raw), "|", n+1)
	if len(parts) != n+1 || parts[0] != kind {
		return nil, false
	}
	return parts[1:], true
}

func badCursor() error {
	return (&decisionapi.FieldError{Field: decisionapi.QueryCursor, Message: "is not a cursor of this list"}).APIError()
}

// approvalCursor encodes where the next page of approvals starts.
func approvalCursor(c ledger.ApprovalCursor) string { return createdCursor(cursorApprovals, c) }

func parseApprovalCursor(s string) (ledger.ApprovalCursor, error) {
	return parseCreatedCursor(s, cursorApprovals)
}

// createdCursor encodes a place in a list ordered by creation time and id, for the list kind.
func createdCursor(kind string, c ledger.ApprovalCursor) string {
	return encodeCursor(kind, strconv.FormatInt(c.CreatedMicros, 10), c.ID)
}

// parseCreatedCursor decodes a createdCursor of the list kind ("" is the first page).
func parseCreatedCursor(s, kind string) (ledger.ApprovalCursor, error) {
	if s == "" {
		return ledger.ApprovalCursor{}, nil
	}
	parts, ok := decodeCursor(s, kind, 2)
	if !ok {
		return ledger.ApprovalCursor{}, badCursor()
	}
	us, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || us <= 0 || parts[1] == "" {
		return ledger.ApprovalCursor{}, badCursor()
	}
	return ledger.ApprovalCursor{CreatedMicros: us, ID: parts[1]}, nil
}

// budgetCursor is a place in the budgets listing: after the scope's id (fleet has none).
type budgetCursor struct {
	scope string
	id    string
}

func (c budgetCursor) String() string { return encodeCursor(cursorBudgets, c.scope, c.id) }

func parseBudgetCursor(s string) (budgetCursor, error) {
	if s == "" {
		return budgetCursor{}, nil
	}
	parts, ok := decodeCursor(s, cursorBudgets, 2)
	if !ok {
		return budgetCursor{}, badCursor()
	}
	c := budgetCursor{scope: parts[0], id: parts[1]}
	switch {
	case c.scope == "fleet" && c.id == "":
	case (c.scope == "team" || c.scope == "agent") && c.id != "":
	default:
		return budgetCursor{}, badCursor()
	}
	return c, nil
}

// freezeCursor encodes where the next page of freezes starts.
func freezeCursor(c ledger.ApprovalCursor) string { return createdCursor(cursorFreezes, c) }

func parseFreezeCursor(s string) (ledger.ApprovalCursor, error) {
	return parseCreatedCursor(s, cursorFreezes)
}

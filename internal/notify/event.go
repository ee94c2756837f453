// Package notify delivers agentcost's notifications to people: events (an approval requested,
// resolved or expired, a budget scope crossing a level, an action anomaly, a freeze) are written
// to the ledger's durable outbox before whatever caused them is answered, and a dispatcher
// delivers each at least once to every webhook subscribed to its type, signed with HMAC-SHA256,
// retried with exponential backoff and jitter, as versioned JSON or as a Slack message.
package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schema names the version of the JSON an event is delivered as. A change that removes or
// renames a field gets a new version; new fields may be added within one.
const Schema = "agentcost.notification/v1"

// The event types.
const (
	// TypeApprovalRequested: a decision asked for a person's approval.
	TypeApprovalRequested = "approval.requested"
	// TypeApprovalResolved: a reviewer approved or denied an approval.
	TypeApprovalResolved = "approval.resolved"
	// TypeApprovalExpired: an approval's time ran out before a reviewer answered.
	TypeApprovalExpired = "approval.expired"
	// TypeBudgetLevel: a budget scope's level changed (once per crossing).
	TypeBudgetLevel = "budget.level"
	// TypeActionAnomaly: an action's cost crossed its per-action baseline.
	TypeActionAnomaly = "anomaly.action"
	// TypeFreeze: a scope was frozen or unfrozen.
	TypeFreeze = "freeze"
)

// Types lists every event type, the values a webhook's events setting accepts.
var Types = []string{TypeApprovalRequested, TypeApprovalResolved, TypeApprovalExpired, TypeBudgetLevel,
	TypeActionAnomaly, TypeFreeze}

// Event is one notification as delivered in the json format: the schema, a unique id (receivers
// deduplicate on it: delivery is at least once), the type, the time it happened, and the object
// of its type.
type Event struct {
	// Schema is always Schema.
	Schema string `json:"schema"`
	// ID identifies the event; a redelivery carries the same id.
	ID string `json:"id"`
	// Type is one of the Type constants.
	Type string `json:"type"`
	// Time is when the event happened (RFC 3339, UTC).
	Time time.Time `json:"time"`
	// Approval is set for the approval.* types.
	Approval *Approval `json:"approval,omitempty"`
	// Budget is set for budget.level.
	Budget *Budget `json:"budget,omitempty"`
	// Anomaly is set for anomaly.action.
	Anomaly *Anomaly `json:"anomaly,omitempty"`
	// Freeze is set for freeze.
	Freeze *Freeze `json:"freeze,omitempty"`
}

// Approval describes an approval event.
type Approval struct {
	// ID is the approval id.
	ID string `json:"id"`
	// State is pending, approved, denied or expired.
	State string `json:"state"`
	// Agent, Team, RunID and Action describe the action waiting for approval.
	Agent  string `json:"agent"`
	Team   string `json:"team,omitempty"`
	RunID  string `json:"run_id,omitempty"`
	Action string `json:"action"`
	// EstimateUSD is the action's cost estimate in USD (a decimal string, exact).
	EstimateUSD string `json:"estimate_usd"`
	// RuleID and Reason are the policy rule that asked for approval and why.
	RuleID string `json:"rule_id,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Reviewer and Note are the resolving reviewer and their note (approval.resolved).
	Reviewer string `json:"reviewer,omitempty"`
	Note     string `json:"note,omitempty"`
	// ExpiresAt is when the approval expires unanswered.
	ExpiresAt time.Time `json:"expires_at"`
}

// Budget describes a budget level crossing.
type Budget struct {
	// Scope (fleet, team, agent, run), ID and Window name the budget.
	Scope  string `json:"scope"`
	ID     string `json:"id"`
	Window string `json:"window"`
	// Level is the level entered (warn, throttle, pause or exhausted).
	Level string `json:"level"`
	// SpentUSD, ReservedUSD and LimitUSD are the budget's figures when the crossing was seen.
	SpentUSD    string `json:"spent_usd"`
	ReservedUSD string `json:"reserved_usd"`
	LimitUSD    string `json:"limit_usd"`
	// WindowStart is the start of the window instance crossed.
	WindowStart time.Time `json:"window_start"`
}

// Anomaly describes an action anomaly.
type Anomaly struct {
	Agent  string `json:"agent"`
	Action string `json:"action,omitempty"`
	// DecisionID is the anomalous action's decision id.
	DecisionID string `json:"decision_id,omitempty"`
	// CostUSD is what the action cost (so far, when flagged mid-flight).
	CostUSD string `json:"cost_usd,omitempty"`
	// Detail says what crossed what.
	Detail string `json:"detail,omitempty"`
}

// Freeze describes a freeze or an unfreeze.
type Freeze struct {
	// FreezeID identifies the freeze (DELETE /v1/freezes/{id} lifts it).
	FreezeID string `json:"freeze_id"`
	// Scope (fleet, team, agent, run) and ID name what is frozen.
	Scope string `json:"scope"`
	ID    string `json:"id,omitempty"`
	// Frozen is true for a new freeze, false for a lifted one.
	Frozen bool `json:"frozen"`
	// By is the reviewer who froze or lifted it; Reason is the freeze's reason.
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`
	// ExpiresAt, when set, is when the freeze ends by itself.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Headers of a delivery.
const (
	// HeaderSignature carries "sha256=" and the hex HMAC-SHA256, keyed with the webhook's secret,
	// of the timestamp header's value, a ".", and the body.
	HeaderSignature = "X-Agentcost-Signature"
	// HeaderTimestamp carries the delivery's Unix time in seconds; a receiver refuses one too far
	// from its clock (say 5 minutes), which stops a captured delivery being replayed later.
	HeaderTimestamp = "X-Agentcost-Timestamp"
	// HeaderEventID carries the event id (the body's id), for deduplication without parsing.
	HeaderEventID = "X-Agentcost-Event-Id"
	// HeaderEventType carries the event type.
	HeaderEventType = "X-Agentcost-Event-Type"
)

// Sign returns the signature header value of body delivered at ts with secret.
func Sign(secret []byte, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a delivery's signature and timestamp headers against secret, in constant time,
// refusing a timestamp more than tolerance away from now: what a receiver of webhooks does.
func Verify(secret []byte, signature, timestamp string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%s %q is not a Unix time", HeaderTimestamp, timestamp)
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return fmt.Errorf("%s %s is more than %v from now", HeaderTimestamp, ts.UTC().Format(time.RFC3339), tolerance)
	}
	want := Sign(secret, ts, body)
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return fmt.Errorf("%s does not match the body", HeaderSignature)
	}
	return nil
}

// slackText renders ev as a Slack message text (mrkdwn).
func slackText(ev Event, approveHint func(id string) string) string {
	var b strings.Builder
	switch {
	case ev.Approval != nil:
		a := ev.Approval
		switch ev.Type {
		case TypeApprovalRequested:
			fmt.Fprintf(&b, ":raising_hand: *Approval requested* `%s`\n", a.ID)
		case TypeApprovalExpired:
			fmt.Fprintf(&b, ":hourglass: *Approval expired* `%s`\n", a.ID)
		default:
			fmt.Fprintf(&b, ":white_check_mark: *Approval %s* `%s`", a.State, a.ID)
			if a.Reviewer != "" {
				fmt.Fprintf(&b, " by %s", a.Reviewer)
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "*Agent:* %s\n*Action:* %s\n*Estimate:* $%s\n", a.Agent, a.Action, a.EstimateUSD)
		if a.Team != "" {
			fmt.Fprintf(&b, "*Team:* %s\n", a.Team)
		}
		if a.RuleID != "" {
			fmt.Fprintf(&b, "*Rule:* %s\n", a.RuleID)
		}
		if a.Reason != "" {
			fmt.Fprintf(&b, "*Reason:* %s\n", a.Reason)
		}
		if a.Note != "" {
			fmt.Fprintf(&b, "*Note:* %s\n", a.Note)
		}
		if ev.Type == TypeApprovalRequested {
			fmt.Fprintf(&b, "*Expires:* %s\n", a.ExpiresAt.UTC().Format(time.RFC3339))
			b.WriteString(approveHint(a.ID))
		}
	case ev.Budget != nil:
		bu := ev.Budget
		fmt.Fprintf(&b, ":warning: *Budget %s %s (%s) is now %s*\n*Spent:* $%s  *Reserved:* $%s  *Limit:* $%s\n",
			bu.Scope, bu.ID, bu.Window, bu.Level, bu.SpentUSD, bu.ReservedUSD, bu.LimitUSD)
	case ev.Anomaly != nil:
		an := ev.Anomaly
		fmt.Fprintf(&b, ":rotating_light: *Cost anomaly* agent %s", an.Agent)
		if an.Action != "" {
			fmt.Fprintf(&b, ", action %s", an.Action)
		}
		b.WriteString("\n")
		if an.CostUSD != "" {
			fmt.Fprintf(&b, "*Cost:* $%s\n", an.CostUSD)
		}
		if an.Detail != "" {
			fmt.Fprintf(&b, "%s\n", an.Detail)
		}
	case ev.Freeze != nil:
		f := ev.Freeze
		verb := "frozen"
		if !f.Frozen {
			verb = "unfrozen"
		}
		fmt.Fprintf(&b, ":ice_cube: *%s %s %s* (`%s`)", f.Scope, f.ID, verb, f.FreezeID)
		if f.By != "" {
			fmt.Fprintf(&b, " by %s", f.By)
		}
		if f.Reason != "" {
			fmt.Fprintf(&b, ": %s", f.Reason)
		}
		b.WriteString("\n")
	default:
		fmt.Fprintf(&b, "agentcost event %s\n", ev.Type)
	}
	fmt.Fprintf(&b, "_event %s at %s_", ev.ID, ev.Time.UTC().Format(time.RFC3339))
	return b.String()
}

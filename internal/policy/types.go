package policy

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Decision is the answer to a pre-execution decision request. Its numeric order is its
// strictness: when several results apply, the greatest wins.
type Decision uint8

// The five decisions, from the most permissive to the strictest.
const (
	Allow Decision = iota
	AllowWithConstraints
	Throttle
	RequireApproval
	Deny
)

var decisionNames = [...]string{
	Allow:                "allow",
	AllowWithConstraints: "allow_with_constraints",
	Throttle:             "throttle",
	RequireApproval:      "require_approval",
	Deny:                 "deny",
}

// String returns the decision's wire name, e.g. "allow_with_constraints".
func (d Decision) String() string {
	if int(d) < len(decisionNames) {
		return decisionNames[d]
	}
	return "decision(" + strconv.Itoa(int(d)) + ")"
}

// ParseDecision maps a wire name to its Decision.
func ParseDecision(s string) (Decision, bool) {
	for d, name := range decisionNames {
		if name == s {
			return Decision(d), true
		}
	}
	return 0, false
}

// Allowed reports whether the action may run now (allow or allow_with_constraints).
func (d Decision) Allowed() bool { return d == Allow || d == AllowWithConstraints }

// MarshalText encodes the decision as its wire name.
func (d Decision) MarshalText() ([]byte, error) {
	if int(d) >= len(decisionNames) {
		return nil, fmt.Errorf("invalid decision %d", d)
	}
	return []byte(decisionNames[d]), nil
}

// UnmarshalText decodes a wire name.
func (d *Decision) UnmarshalText(b []byte) error {
	v, ok := ParseDecision(string(b))
	if !ok {
		return fmt.Errorf("unknown decision %q (want %s)", b, strings.Join(decisionNames[:], "|"))
	}
	*d = v
	return nil
}

// Scope is a budget scope the ledger books spend into.
type Scope uint8

// The budget scopes a decision checks, in the order Outcome.Budgets lists them.
const (
	ScopeFleet Scope = iota
	ScopeTeam
	ScopeAgent
	ScopeRun
	// NumScopes is the number of scopes; Outcome.Budgets and State.Usage are indexed by Scope.
	NumScopes = 4
)

var scopeNames = [NumScopes]string{"fleet", "team", "agent", "run"}

// String returns the ledger's name for the scope: fleet, team, agent or run.
func (s Scope) String() string {
	if int(s) < NumScopes {
		return scopeNames[s]
	}
	return "scope(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText encodes the scope as its name.
func (s Scope) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Window is the calendar window a budget limit applies to.
type Window uint8

// The budget windows. WindowNone is the zero value of an unconfigured budget.
const (
	WindowNone Window = iota
	Minute
	Hour
	Day
	Week
	Month
	Lifetime
)

var windowNames = [...]string{"", "minute", "hour", "day", "week", "month", "lifetime"}

// String returns the ledger's name for the window, e.g. "hour".
func (w Window) String() string {
	if int(w) < len(windowNames) {
		return windowNames[w]
	}
	return "window(" + strconv.Itoa(int(w)) + ")"
}

// MarshalText encodes the window as its name.
func (w Window) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// ParseWindow maps a window name or alias (1m, 1h, 24h, 1d, 7d, 1w, 1mo) to its Window.
// "lifetime" is accepted here; the policy allows it for runs only.
func ParseWindow(s string) (Window, bool) {
	switch s {
	case "minute", "1m":
		return Minute, true
	case "hour", "1h":
		return Hour, true
	case "day", "24h", "1d":
		return Day, true
	case "week", "7d", "1w":
		return Week, true
	case "month", "1mo":
		return Month, true
	case "lifetime":
		return Lifetime, true
	}
	return WindowNone, false
}

// Bounds returns the calendar window that holds t, in t's location: the ledger's time zone
// governs windows, so callers pass a time already in it. Weeks are ISO weeks (Monday first).
// Lifetime and WindowNone have no bounds and return zero times.
func (w Window) Bounds(t time.Time) (start, end time.Time) {
	switch w {
	case Minute, Hour:
		end = w.End(t)
		if w == Minute {
			return end.Add(-time.Minute), end
		}
		return end.Add(-time.Hour), end
	case Day, Week, Month:
		y, mo, d := t.Date()
		loc := t.Location()
		switch w {
		case Day:
			start = time.Date(y, mo, d, 0, 0, 0, 0, loc)
		case Week:
			start = time.Date(y, mo, d-(int(t.Weekday())+6)%7, 0, 0, 0, 0, loc)
		default:
			start = time.Date(y, mo, 1, 0, 0, 0, 0, loc)
		}
		return start, w.End(t)
	}
	return time.Time{}, time.Time{}
}

// End returns the end of the window that holds t (see Bounds); zero for Lifetime.
func (w Window) End(t time.Time) time.Time {
	switch w {
	case Minute:
		_, _, s := t.Clock()
		return t.Add(time.Minute - time.Duration(s)*time.Second - time.Duration(t.Nanosecond()))
	case Hour:
		// Clock arithmetic rather than time.Date: cheaper, and exact in every zone whose
		// offset changes on whole hours.
		_, m, s := t.Clock()
		return t.Add(time.Hour - time.Duration(m)*time.Minute - time.Duration(s)*time.Second - time.Duration(t.Nanosecond()))
	case Day:
		y, mo, d := t.Date()
		return time.Date(y, mo, d+1, 0, 0, 0, 0, t.Location())
	case Week:
		y, mo, d := t.Date()
		return time.Date(y, mo, d-(int(t.Weekday())+6)%7+7, 0, 0, 0, 0, t.Location())
	case Month:
		y, mo, _ := t.Date()
		return time.Date(y, mo+1, 1, 0, 0, 0, 0, t.Location())
	}
	return time.Time{}
}

// Limit is an optional non-negative integer constraint. The zero Limit is unset; a set Limit
// may be 0 (max_retries: 0 forbids retries).
type Limit struct {
	n   int64
	set bool
}

// LimitOf returns a set Limit of n.
func LimitOf(n int64) Limit { return Limit{n: n, set: true} }

// Value returns the limit and whether it is set.
func (l Limit) Value() (int64, bool) { return l.n, l.set }

// IsZero reports whether the limit is unset (so `omitzero` drops it from JSON).
func (l Limit) IsZero() bool { return !l.set }

// Tighter returns the stricter (smaller) of two limits; an unset limit never wins.
func (l Limit) Tighter(o Limit) Limit {
	if !o.set || (l.set && l.n <= o.n) {
		return l
	}
	return o
}

// String returns the number, or "unset".
func (l Limit) String() string {
	if !l.set {
		return "unset"
	}
	return strconv.FormatInt(l.n, 10)
}

// MarshalJSON encodes a set limit as a number and an unset one as null.
func (l Limit) MarshalJSON() ([]byte, error) {
	if !l.set {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, l.n, 10), nil
}

// UnmarshalJSON decodes a non-negative integer, or null for unset.
func (l *Limit) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*l = Limit{}
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("limit %s is not an integer", b)
	}
	if n < 0 {
		return fmt.Errorf("limit %d is negative", n)
	}
	*l = LimitOf(n)
	return nil
}

// RateLimit is a number of actions per period. The zero RateLimit is unset.
type RateLimit struct {
	// Count is the number of actions allowed per Period; at least 1 when set.
	Count int64
	// Period is one second, minute, hour or day.
	Period time.Duration
}

const maxRateCount = 1_000_000_000

var rateUnits = []struct {
	names  []string
	period time.Duration
}{
	{[]string{"second", "sec", "s"}, time.Second},
	{[]string{"minute", "min"}, time.Minute},
	{[]string{"hour", "h"}, time.Hour},
	{[]string{"day", "d"}, 24 * time.Hour},
}

// ParseRateLimit parses "N/second|minute|hour|day" (short units: s, sec, min, h, d), N ≥ 1.
func ParseRateLimit(s string) (RateLimit, error) {
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return RateLimit{}, fmt.Errorf("%q is not N/second|minute|hour|day", s)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 1 || n > maxRateCount {
		return RateLimit{}, fmt.Errorf("%q is not N/second|minute|hour|day with N from 1 to %d", s, maxRateCount)
	}
	unit = strings.TrimSpace(unit)
	for _, u := range rateUnits {
		for _, name := range u.names {
			if unit == name {
				return RateLimit{Count: n, Period: u.period}, nil
			}
		}
	}
	return RateLimit{}, fmt.Errorf("%q is not N/second|minute|hour|day", s)
}

// IsZero reports whether the rate limit is unset.
func (r RateLimit) IsZero() bool { return r.Count == 0 }

// String formats the limit as "N/unit", e.g. "20/hour".
func (r RateLimit) String() string {
	if r.Count == 0 {
		return "unset"
	}
	for _, u := range rateUnits {
		if u.period == r.Period {
			return strconv.FormatInt(r.Count, 10) + "/" + u.names[0]
		}
	}
	return strconv.FormatInt(r.Count, 10) + "/" + r.Period.String()
}

// Tighter returns the stricter of two rate limits: the lower rate, on equal rates the smaller
// burst (fewer actions per shorter period). An unset limit never wins.
func (r RateLimit) Tighter(o RateLimit) RateLimit {
	if o.Count <= 0 || o.Period <= 0 {
		return r
	}
	if r.Count <= 0 || r.Period <= 0 {
		return o
	}
	// Compare r.Count/r.Period with o.Count/o.Period exactly in 128 bits.
	ah, al := bits.Mul64(uint64(r.Count), uint64(o.Period))
	bh, bl := bits.Mul64(uint64(o.Count), uint64(r.Period))
	less := ah < bh || (ah == bh && al < bl)
	equal := ah == bh && al == bl
	if less || (equal && r.Count <= o.Count) {
		return r
	}
	return o
}

// MarshalText encodes the limit as "N/unit".
func (r RateLimit) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses "N/unit".
func (r *RateLimit) UnmarshalText(b []byte) error {
	v, err := ParseRateLimit(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Constraints are the limits an allowed action runs under. Unset fields impose nothing.
type Constraints struct {
	// MaxRuntimeSec is the deadline of the action in seconds.
	MaxRuntimeSec Limit `json:"max_runtime_sec,omitzero"`
	// MaxRetries is the number of retries the action may make.
	MaxRetries Limit `json:"max_retries,omitzero"`
	// MaxConcurrent is the number of such actions that may run at once (counted per Per).
	MaxConcurrent Limit `json:"max_concurrent,omitzero"`
	// RateLimit is the number of such actions per period (counted per Per).
	RateLimit RateLimit `json:"rate_limit,omitzero"`
	// MaxTokens is the output tokens per LLM call, what the agent passes as max_tokens.
	MaxTokens Limit `json:"max_tokens,omitzero"`
	// MaxToolCalls is the tool calls per run.
	MaxToolCalls Limit `json:"max_tool_calls,omitzero"`
	// MaxDepth is the agent recursion depth per run.
	MaxDepth Limit `json:"max_depth,omitzero"`
}

// IsZero reports whether no constraint is set.
func (c Constraints) IsZero() bool { return c == Constraints{} }

// Merge returns the tighter value of each constraint of c and o.
func (c Constraints) Merge(o Constraints) Constraints {
	return Constraints{
		MaxRuntimeSec: c.MaxRuntimeSec.Tighter(o.MaxRuntimeSec),
		MaxRetries:    c.MaxRetries.Tighter(o.MaxRetries),
		MaxConcurrent: c.MaxConcurrent.Tighter(o.MaxConcurrent),
		RateLimit:     c.RateLimit.Tighter(o.RateLimit),
		MaxTokens:     c.MaxTokens.Tighter(o.MaxTokens),
		MaxToolCalls:  c.MaxToolCalls.Tighter(o.MaxToolCalls),
		MaxDepth:      c.MaxDepth.Tighter(o.MaxDepth),
	}
}

// Per says what a rule's max_concurrent and rate_limit count per.
type Per uint8

// The counting keys of max_concurrent and rate_limit; PerAgent (rule and agent) is the default.
const (
	PerAgent Per = iota
	PerRule
	PerAgentTopic
)

var perNames = [...]string{"agent", "rule", "agent_topic"}

// String returns the policy name of the key: agent, rule or agent_topic.
func (p Per) String() string {
	if int(p) < len(perNames) {
		return perNames[p]
	}
	return "per(" + strconv.Itoa(int(p)) + ")"
}

// LimitKey identifies the counter a concurrency or rate limit counts in. Empty parts are not
// part of the key.
type LimitKey struct {
	// Fleet marks the fleet throttle counter (per agent) rather than a rule's.
	Fleet bool `json:"fleet,omitzero"`
	// RuleID is the rule whose limit this is.
	RuleID string `json:"rule_id,omitzero"`
	// AgentID is set when the limit counts per agent.
	AgentID string `json:"agent_id,omitzero"`
	// Topic is set when the limit counts per agent and topic.
	Topic string `json:"topic,omitzero"`
}

// String encodes the key unambiguously for a ledger, e.g. `rule:"throttle-llm-calls"/agent:"a"`.
func (k LimitKey) String() string {
	var b []byte
	if k.Fleet {
		b = append(b, "fleet"...)
	} else {
		b = append(b, "rule:"...)
		b = strconv.AppendQuote(b, k.RuleID)
	}
	if k.AgentID != "" {
		b = append(b, "/agent:"...)
		b = strconv.AppendQuote(b, k.AgentID)
	}
	if k.Topic != "" {
		b = append(b, "/topic:"...)
		b = strconv.AppendQuote(b, k.Topic)
	}
	return string(b)
}
